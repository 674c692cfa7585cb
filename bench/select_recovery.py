"""A miniature of the PASER paper's recovery table (issue 12, "Benchmark"): train a tiny causal LM on a real
multi-capability instruction mix, prune it by half, recover copies of the pruned model on equal budgets of PASER-,
random- and length-selected data (and on the full pool, the paper's reference), and report the held-out perplexity
of each capability group and overall: before pruning, after pruning and after each recovery.

- Data: the six capability groups of sift.pipelines.demo_instructions (`instructions()`: code, licence, timezone,
  unicode; `more_instructions()`: mime, calendar), real offline text; each group split (seeded) into a training
  pool and a held-out evaluation set.
- Model: a GPT-2 of `--layers` blocks and a byte-level BPE tokenizer (demo_models.train_tiny_lm builds both,
  untrained) trained on the pool with the loss on all tokens (prompt and response); a copy pruned 50% by magnitude
  (demo_models.magnitude_prune); both saved as Hugging Face folders.
- Selection: `sift.selection.run` with strategy paser (JSD of the saved model pair), random and length, each with
  the same budget and seed.
- Recovery: a copy of the pruned model fine-tuned on each selected set with the same epochs, batch size, learning
  rate and seed, loss on the response tokens only (instruction tuning); the pruning mask is applied again after
  every optimiser step, so the recovered models stay 50% sparse.
- Evaluation: perplexity of the held-out responses given their prompts, per group and overall (token-weighted).

    PYTHONPATH=... .venv/bin/python bench/select_recovery.py [--per-group 100] [--eval-per-group 20]
        [--budgets 0.1,0.2] [--seeds 0,1,2] [--train-steps 400] [--epochs 3] [--work DIR]

Prints the settings, the wall time, a markdown table (mean over seeds, with the spread) and writes results.json.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

STRATEGIES = ("paser", "random", "length")


def say(line: str = "") -> None:
    """Print a line at once (progress shows while the run goes on, also into a file)."""
    print(line, flush=True)


def load_mix(
    per_group: int, eval_per_group: int, seed: int = 0
) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """The instruction mix, split per group into (pool, held-out evaluation set); the split is seeded."""
    from sift.pipelines.demo_instructions import instructions, more_instructions

    rows = instructions(per_group) + more_instructions(per_group)
    if not 0 < eval_per_group < per_group:
        raise ValueError(f"--eval-per-group must be between 1 and {per_group - 1}")
    rng = np.random.default_rng(seed)
    pool, held = [], []
    for group in dict.fromkeys(r["group"] for r in rows):
        members = [r for r in rows if r["group"] == group]
        order = rng.permutation(len(members))
        held += [members[i] for i in sorted(order[:eval_per_group])]
        pool += [members[i] for i in sorted(order[eval_per_group:])]
    return pool, held


def encode_rows(
    tokenizer: Any, rows: Sequence[dict[str, str]], max_tokens: int
) -> list[tuple[list[int], int]]:
    """Token ids of prompt + response of each row (as the degradation scores see them) and the first response
    token's index."""
    from sift.selection.kernels.degradation import encode, prompt_text

    prompts = [prompt_text(r["instruction"], r.get("input") or None) for r in rows]
    return encode(tokenizer, prompts, [r["output"] for r in rows], max_tokens)


def _batch(items: Sequence[tuple[list[int], int]], pad: int, response_only: bool) -> tuple[Any, Any, Any]:
    import torch

    width = max(len(ids) for ids, _ in items)
    ids = torch.full((len(items), width), pad, dtype=torch.long)
    mask = torch.zeros((len(items), width), dtype=torch.long)
    labels = torch.full((len(items), width), -100, dtype=torch.long)
    for j, (seq, first) in enumerate(items):
        ids[j, : len(seq)] = torch.tensor(seq)
        mask[j, : len(seq)] = 1
        start = first if response_only else 0
        labels[j, start : len(seq)] = torch.tensor(seq[start:])
    return ids, mask, labels


def prune_masks(model: Any) -> list[tuple[Any, Any]]:
    """(parameter, mask of its kept weights) for every weight matrix of the blocks that pruning touched."""
    return [
        (p, (p != 0).to(p.dtype))
        for name, p in model.named_parameters()
        if p.dim() == 2 and name.startswith("transformer.h.")
    ]


def fit(
    model: Any,
    items: Sequence[tuple[list[int], int]],
    *,
    steps: int,
    batch_size: int,
    lr: float,
    seed: int,
    pad: int,
    response_only: bool,
    masks: Sequence[tuple[Any, Any]] = (),
    label: str = "",
) -> float:
    """Train `model` `steps` steps of AdamW (learning rate decaying linearly to 0) on `items`, in seeded epochs of
    batches of similar length; re-apply `masks` after every step; print the loss every 100 steps when `label` is
    given. Returns the mean loss of the last tenth of the steps."""
    import torch

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: max(0.0, 1.0 - s / max(steps, 1)))
    lengths = np.array([len(ids) for ids, _ in items])
    queue: list[np.ndarray] = []
    losses: list[float] = []
    model.train()
    for _ in range(steps):
        if not queue:
            # an epoch: batches of similar length (little padding), in shuffled order
            perm = rng.permutation(len(items))
            perm = perm[np.argsort(lengths[perm], kind="stable")]
            batches = [perm[i : i + batch_size] for i in range(0, len(perm), batch_size)]
            queue = [batches[i] for i in rng.permutation(len(batches))]
        rows = queue.pop()
        ids, mask, labels = _batch([items[i] for i in rows], pad, response_only)
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad()
        if masks:
            with torch.no_grad():
                for p, m in masks:
                    p.mul_(m)
        losses.append(loss.item())
        if label and (len(losses) % 100 == 0 or len(losses) == steps):
            say(f"{label}: step {len(losses)}/{steps}, loss {np.mean(losses[-100:]):.3f}")
    model.eval()
    tail = losses[-max(1, steps // 10) :]
    return float(np.mean(tail)) if tail else math.nan


def perplexity(
    model: Any, items: Sequence[tuple[list[int], int]], groups: Sequence[str], pad: int, batch_size: int = 16
) -> dict[str, float]:
    """Perplexity of the response tokens given their prompts, per group and `overall` (token-weighted)."""
    import torch

    nll = np.zeros(len(items))
    count = np.zeros(len(items))
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(items), batch_size):
            chunk = items[start : start + batch_size]
            ids, mask, labels = _batch(chunk, pad, response_only=True)
            logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
            target = labels[:, 1:]
            per = torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), target.reshape(-1), ignore_index=-100, reduction="none"
            ).reshape(target.shape)
            nll[start : start + len(chunk)] = per.sum(-1).numpy()
            count[start : start + len(chunk)] = (target != -100).sum(-1).numpy()
    out = {}
    names = np.asarray(groups)
    for g in dict.fromkeys(groups):
        sel = names == g
        out[g] = math.exp(nll[sel].sum() / count[sel].sum())
    out["overall"] = math.exp(nll.sum() / count.sum())
    return out


def sparsity(model: Any) -> float:
    """The fraction of zeros in the weight matrices of the blocks."""
    zeros = total = 0
    for name, p in model.named_parameters():
        if p.dim() == 2 and name.startswith("transformer.h."):
            zeros += int((p == 0).sum())
            total += p.numel()
    return zeros / total


def select(
    pool_path: Path, strategy: str, budget: float, seed: int, out: Path, models: Path, max_tokens: int,
    embed_cache: Path | None,
) -> dict[str, Any]:  # fmt: skip
    """Run `sift.selection.run` with `strategy` into `out`; a PASER run reuses the embeddings of `embed_cache`."""
    from sift import selection
    from sift.selection.config import SelectionConfig

    if (
        strategy == "paser"
        and embed_cache is not None
        and embed_cache.exists()
        and not (out / "_work").exists()
    ):
        shutil.copytree(embed_cache, out / "_work")
    config = SelectionConfig(budget=budget, strategy=strategy, seed=seed, max_tokens=max_tokens)
    if strategy != "paser":
        return selection.run(str(pool_path), config, out)
    return selection.run(
        str(pool_path), config, out, original=str(models / "original"), pruned=str(models / "pruned")
    )


def _fmt(values: Sequence[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{np.mean(values):.2f} ± {np.std(values, ddof=1):.2f}"


def table(results: dict[str, Any]) -> str:
    """The markdown table of `results`: one row per model, one column per group, overall (token-weighted) and the
    geometric mean of the groups' perplexities (each group counts the same, whatever its response lengths)."""
    groups = results["groups"]
    lines = [
        "| model | samples | " + " | ".join(groups) + " | overall | group mean |",
        "|---|---:|" + "---:|" * (len(groups) + 2),
    ]
    for row in results["rows"]:
        cells = [_fmt([run[g] for run in row["runs"]]) for g in [*groups, "overall"]]
        cells.append(_fmt([math.exp(np.mean([math.log(run[g]) for g in groups])) for run in row["runs"]]))
        lines.append(f"| {row['name']} | {row['samples']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-group", type=int, default=100, help="instructions per capability group")
    parser.add_argument("--eval-per-group", type=int, default=20, help="of them held out for evaluation")
    parser.add_argument("--budgets", default="0.1,0.2", help="recovery budgets, fractions of the pool")
    parser.add_argument("--seeds", default="0,1,2", help="seeds of selection and recovery (one run each)")
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--embd", type=int, default=128)
    parser.add_argument("--vocab", type=int, default=1500)
    parser.add_argument(
        "--max-tokens", type=int, default=128, help="token cap of a sample (prompt + response)"
    )
    parser.add_argument("--train-steps", type=int, default=400)
    parser.add_argument("--train-lr", type=float, default=3e-3)
    parser.add_argument("--epochs", type=float, default=3, help="recovery epochs over each selected set")
    parser.add_argument("--recover-lr", type=float, default=1e-3)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--prune", type=float, default=0.5, help="fraction of each block matrix pruned")
    parser.add_argument(
        "--work", type=Path, default=None, help="folder for models and selections (default: temp)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (on a loaded 2-core machine, 2 threads ran 10x slower)",
    )
    args = parser.parse_args(argv)

    import torch

    from sift.pipelines.demo_models import magnitude_prune, train_tiny_lm

    torch.set_num_threads(args.threads)
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    t_start = time.perf_counter()
    budgets = [float(b) for b in args.budgets.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    work = args.work or Path(tempfile.mkdtemp(prefix="sift-recovery-"))
    work.mkdir(parents=True, exist_ok=True)
    say("settings: " + json.dumps({k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}))

    pool, held = load_mix(args.per_group, args.eval_per_group)
    groups = list(dict.fromkeys(r["group"] for r in pool))
    pool_path = work / "pool.jsonl"
    pool_path.write_text("".join(json.dumps(r) + "\n" for r in pool))
    say(f"pool {len(pool)} instructions, held out {len(held)}, groups {', '.join(groups)}")

    # the original model: tokenizer and untrained GPT-2 from demo_models, trained here on whole samples
    texts = [f"{r['instruction']}\n\n{r['input']}\n\n{r['output']}" for r in pool]
    model, tokenizer = train_tiny_lm(
        texts, vocab_size=args.vocab, n_embd=args.embd, n_layer=args.layers, n_head=4, steps=0, seed=0
    )
    pad = tokenizer.pad_token_id
    pool_items = encode_rows(tokenizer, pool, args.max_tokens)
    held_items = encode_rows(tokenizer, held, args.max_tokens)
    held_groups = [r["group"] for r in held]
    untrained = perplexity(model, held_items, held_groups, pad)
    t = time.perf_counter()
    train_loss = fit(
        model, pool_items, steps=args.train_steps, batch_size=args.batch, lr=args.train_lr, seed=0, pad=pad,
        response_only=False, label="training the original",
    )  # fmt: skip
    t_train = time.perf_counter() - t
    original = perplexity(model, held_items, held_groups, pad)
    pruned_model = magnitude_prune(copy.deepcopy(model), args.prune)
    pruned = perplexity(pruned_model, held_items, held_groups, pad)
    models = work / "models"
    for name, m in (("original", model), ("pruned", pruned_model)):
        m.save_pretrained(models / name)
        tokenizer.save_pretrained(models / name)
    say(f"trained {args.train_steps} steps in {t_train:.0f} s (final loss {train_loss:.3f}); "
          f"overall perplexity untrained {untrained['overall']:.1f}, original {original['overall']:.2f}, "
          f"pruned {pruned['overall']:.2f} (sparsity {sparsity(pruned_model):.2f})")  # fmt: skip

    by_id = {r["id"]: (item, r["group"]) for r, item in zip(pool, pool_items, strict=True)}

    def recover(ids: Sequence[str], seed: int) -> tuple[dict[str, float], float]:
        m = copy.deepcopy(pruned_model)
        masks = prune_masks(m)
        items = [by_id[i][0] for i in ids]
        steps = math.ceil(args.epochs * len(items) / args.batch)
        fit(m, items, steps=steps, batch_size=args.batch, lr=args.recover_lr, seed=seed, pad=pad,
            response_only=True, masks=masks)  # fmt: skip
        return perplexity(m, held_items, held_groups, pad), sparsity(m)

    rows: list[dict[str, Any]] = [
        {"name": "untrained", "samples": 0, "runs": [untrained]},
        {"name": "original (before pruning)", "samples": len(pool), "runs": [original]},
        {"name": f"pruned {args.prune:.0%} (no recovery)", "samples": 0, "runs": [pruned]},
    ]
    full_row: dict[str, Any] = {"name": "full pool recovery", "samples": len(pool), "runs": []}
    rows.append(full_row)
    picked: dict[str, dict[str, int]] = {}
    tokens: dict[str, int] = {}  # prompt + response tokens of each selected set (budgets count samples)
    clusters: dict[str, Any] = {}
    sparsities: list[float] = []
    select_rows: dict[tuple[float, str], dict[str, Any]] = {
        (b, s): {"name": f"{s} {b:g}", "samples": 0, "runs": []} for b in budgets for s in STRATEGIES
    }
    rows += list(select_rows.values())
    embed_cache: Path | None = None
    t_select = t_recover = 0.0
    for seed in seeds:
        t = time.perf_counter()
        ppl, sp = recover([r["id"] for r in pool], seed)
        t_recover += time.perf_counter() - t
        full_row["runs"].append(ppl)
        say(f"seed {seed} full pool: {len(pool)} samples, overall perplexity {ppl['overall']:.2f}")
        sparsities.append(sp)
        for b in budgets:
            for s in STRATEGIES:
                out = work / f"select-{s}-{b:g}-seed{seed}"
                t = time.perf_counter()
                stats = select(pool_path, s, b, seed, out, models, args.max_tokens, embed_cache)
                t_select += time.perf_counter() - t
                if s == "paser" and embed_cache is None:
                    embed_cache = work / "embeddings"
                    shutil.copytree(out / "_work", embed_cache)
                import pyarrow.parquet as pq

                ids = pq.read_table(out / "selected.parquet", columns=["id"]).column("id").to_pylist()
                counts = {g: 0 for g in groups}
                for i in ids:
                    counts[by_id[i][1]] += 1
                picked[f"{s} {b:g} seed {seed}"] = counts
                tokens[f"{s} {b:g} seed {seed}"] = sum(len(by_id[i][0][0]) for i in ids)
                if s == "paser":
                    clusters[f"{b:g} seed {seed}"] = _cluster_summary(out, by_id, stats)
                t = time.perf_counter()
                ppl, sp = recover(ids, seed)
                t_recover += time.perf_counter() - t
                select_rows[(b, s)]["runs"].append(ppl)
                select_rows[(b, s)]["samples"] = len(ids)
                sparsities.append(sp)
                say(f"seed {seed} {s} {b:g}: {len(ids)} samples, overall perplexity {ppl['overall']:.2f}")
    wall = time.perf_counter() - t_start
    results = {
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "groups": groups,
        "pool": len(pool),
        "held_out": len(held),
        "rows": rows,
        "selected_per_group": picked,
        "selected_tokens": tokens,
        "paser_clusters": clusters,
        "pruned_sparsity": sparsity(pruned_model),
        "recovered_sparsity_min": min(sparsities) if sparsities else None,
        "seconds": {
            "train": round(t_train, 1),
            "select": round(t_select, 1),
            "recover": round(t_recover, 1),
            "wall": round(wall, 1),
        },
    }
    (work / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    say()
    say(table(results))
    say()
    say("selected per group (first seed):")
    for key, per_group in picked.items():
        if key.endswith(f"seed {seeds[0]}"):
            say(
                f"  {key}: " + ", ".join(f"{g} {n}" for g, n in per_group.items()) + f"; {tokens[key]} tokens"
            )
    for key, c in clusters.items():
        say(f"PASER clusters ({key}): K={c['k']}, adjusted Rand index vs groups {c['ari']:.3f}, "
              f"CDS by group {c['cds_by_group']}")  # fmt: skip
    say(f"recovered models' block sparsity >= {results['recovered_sparsity_min']:.3f}")
    say(
        f"wall {wall:.0f} s (train {t_train:.0f}, select {t_select:.0f}, recover {t_recover:.0f}); work {work}"
    )
    return results


def _cluster_summary(out: Path, by_id: dict[str, tuple[Any, str]], stats: dict[str, Any]) -> dict[str, Any]:
    """PASER's clusters against the known groups (adjusted Rand index) and the mean JSD (CDS) of each group."""
    import pyarrow.parquet as pq
    from sklearn.metrics import adjusted_rand_score

    t = pq.read_table(out / "clusters.parquet", columns=["id", "cluster", "jsd"]).to_pylist()
    truth = [by_id[r["id"]][1] for r in t]
    ari = adjusted_rand_score(truth, [r["cluster"] for r in t])
    cds: dict[str, list[float]] = {}
    for r, g in zip(t, truth, strict=True):
        cds.setdefault(g, []).append(r["jsd"])
    return {
        "k": stats["clusters"]["k"],
        "ari": round(float(ari), 4),
        "cds_by_group": {g: round(float(np.mean(v)), 4) for g, v in cds.items()},
    }


if __name__ == "__main__":
    main()
