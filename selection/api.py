"""Python entry point of PASER recovery-data selection (the five steps of the paper), shared by the CLI and tests.

`run(inputs, config, output, engine, scores=..., original=..., pruned=...)` reads the instructions (`id`,
`instruction`, optional `input`, `output`) with the lake's readers, gets each sample's degradation score (a SCORES
table `id`, `jsd` [, `tokens`], or the JSD of an original/pruned model pair, kernels/degradation.py), embeds the
instructions (kernels/embed.py, cached in `output/_work/`), clusters them (S2RIC, kernels/cluster.py), splits the
budget by cluster degradation and ranks inside clusters (kernels/budget.py), and takes samples in rank order
through the concept consistency filter (kernels/concepts.py) until every cluster's share is filled, sharing again
what a cluster cannot fill. The random and length baselines take the budget without clusters or scores.

Every input record ends in exactly one place: selected.parquet, clusters.parquet with status `not_selected`
(cluster and rank given), or rejected.parquet with its reason (unreadable record, empty instruction, no or bad
score, empty response, concept conflict); stats.json counts them and report.md shows the cluster map and the
budget per cluster. Runs on one machine (PolarsEngine); the clustering holds the embedding matrix in memory.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sift.pipelines.core.atomic import remove_tmp_files, write_json
from sift.pipelines.core.errors import InputError
from sift.pipelines.core.lake.write import write_table
from sift.pipelines.core.locks import output_lock
from sift.pipelines.core.stage import Engine, PolarsEngine, one_input
from sift.pipelines.core.workdir import WorkDir
from sift.selection.config import SelectionConfig, budget_count
from sift.selection.kernels.budget import allocate, efficiency, rank_within

PROGRESS = logging.getLogger("sift.select")
OUTPUTS = ("selected.parquet", "clusters.parquet", "rejected.parquet", "stats.json", "report.md",
           "cluster_map.png", "cluster_budget.png")  # fmt: skip
REJECTED_SCHEMA = pa.schema(
    [("id", pa.string()), ("reason", pa.string()), ("cluster", pa.int64()), ("file", pa.string()),
     ("row", pa.int64())]
)  # fmt: skip


def phase(name: str) -> None:
    PROGRESS.info("select: %s", name)


class _Rejected:
    """Rejected records, in the order they are found."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def add(self, id_: str | None, reason: str, *, cluster: int | None = None, file: str | None = None,
            row: int | None = None) -> None:  # fmt: skip
        self.rows.append({"id": id_, "reason": reason, "cluster": cluster, "file": file, "row": row})

    def table(self) -> pa.Table:
        return pa.Table.from_pylist(self.rows, schema=REJECTED_SCHEMA)


def _read(uri: str, rejected: _Rejected) -> pa.Table:
    """The instructions with a usable id and a non-empty instruction; every other record is rejected."""
    from sift.pipelines.core.lake import iter_documents

    parts = []
    for batch in iter_documents(uri, text_field="instruction"):
        q = batch.quarantine
        if q.num_rows:
            for f, r, err in zip(*(q.column(c).to_pylist() for c in ("file", "row", "error")), strict=True):
                rejected.add(None, f"unreadable record: {err}", file=f, row=r)
        parts.append(batch.documents)
    docs = pa.concat_tables(parts, promote_options="permissive") if parts else None
    if docs is None or docs.num_rows == 0:
        reasons = {r["reason"] for r in rejected.rows}
        if any("'instruction'" in r for r in reasons):
            raise InputError(
                f"{uri}: no record has an `instruction` field (the instruction column is missing)"
            )
        raise InputError(f"{uri}: no instruction to select from")
    docs = docs.rename_columns(["instruction" if c == "text" else c for c in docs.column_names])
    for col in ("input", "output"):
        if col not in docs.column_names:
            docs = docs.append_column(col, pa.nulls(docs.num_rows, pa.string()))
        elif docs.schema.field(col).type != pa.string():
            docs = docs.set_column(docs.column_names.index(col), col, pc.cast(docs.column(col), pa.string()))
    empty = pc.equal(pc.utf8_trim_whitespace(docs.column("instruction")), "")
    for id_ in docs.filter(empty).column("id").to_pylist():
        rejected.add(id_, "empty instruction")
    return docs.filter(pc.invert(empty))


def _scores_table(
    path: str, docs: pa.Table, rejected: _Rejected
) -> tuple[pa.Table, np.ndarray, np.ndarray | None]:
    """The pool with a valid SCORES row, its JSD and, when SCORES has them, its token lengths."""
    from sift.pipelines.core.lake import read_table

    try:
        table = read_table(path)
    except InputError:
        raise
    except Exception as exc:
        raise InputError(f"--scores {path}: cannot be read ({exc})") from exc
    missing = [c for c in ("id", "jsd") if c not in table.column_names]
    if missing:
        raise InputError(f"--scores {path}: no `{'`, `'.join(missing)}` column (a table of id, jsd)")
    ids = pc.cast(table.column("id"), pa.string()).to_pylist()
    try:
        jsd = np.asarray(
            pc.cast(table.column("jsd"), pa.float64()).to_numpy(zero_copy_only=False), np.float64
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise InputError(f"--scores {path}: `jsd` is not numeric ({exc})") from exc
    seen: dict[str, int] = {}
    for i, id_ in enumerate(ids):
        if id_ in seen:
            raise InputError(f"--scores {path}: id {id_!r} appears twice (rows {seen[id_] + 1} and {i + 1})")
        seen[id_] = i
    has_tokens = "tokens" in table.column_names
    if has_tokens and table.column("tokens").null_count:
        raise InputError(
            f"--scores {path}: `tokens` has empty values (give every row a token count, or no column)"
        )
    try:
        tok = (
            pc.cast(table.column("tokens"), pa.int64()).to_numpy(zero_copy_only=False) if has_tokens else None
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise InputError(f"--scores {path}: `tokens` is not a whole number ({exc})") from exc
    keep, scores, lengths = [], [], []
    for row, id_ in enumerate(docs.column("id").to_pylist()):
        at = seen.get(id_)
        if at is None:
            rejected.add(id_, "no degradation score: id missing from SCORES")
        elif math.isnan(jsd[at]):
            rejected.add(id_, "degradation score is NaN")
        elif jsd[at] < 0:
            rejected.add(id_, f"degradation score is negative ({jsd[at]:g})")
        elif not math.isfinite(jsd[at]):
            rejected.add(id_, "degradation score is infinite")
        else:
            keep.append(row)
            scores.append(jsd[at])
            if tok is not None:
                lengths.append(tok[at])
    return (
        docs.take(keep),
        np.asarray(scores, dtype=np.float64),
        np.asarray(lengths, dtype=np.int64) if tok is not None else None,
    )


def _model_scores(
    original: str, pruned: str, docs: pa.Table, config: SelectionConfig, rejected: _Rejected
) -> tuple[pa.Table, np.ndarray, np.ndarray]:
    """The pool with a response to score, its JSD between the model pair, and its scored token lengths."""
    from sift.selection.kernels.degradation import load_causal_lm, prompt_text, score_pairs

    orig = load_causal_lm(original, "--original")
    prun = load_causal_lm(pruned, "--pruned")
    outputs = docs.column("output").to_pylist()
    has = [i for i, o in enumerate(outputs) if o is not None and o.strip()]
    for i in sorted(set(range(docs.num_rows)) - set(has)):
        rejected.add(docs.column("id")[i].as_py(), "empty response: nothing to score")
    docs = docs.take(has)
    prompts = [
        prompt_text(a, b)
        for a, b in zip(docs.column("instruction").to_pylist(), docs.column("input").to_pylist(), strict=True)
    ]
    t0 = time.perf_counter()
    last = [t0]

    def progress(done: int) -> None:
        now = time.perf_counter()
        if now - last[0] > 5 or done == len(prompts):
            PROGRESS.info(
                "select: scored %d/%d samples (%.1f samples/s)", done, len(prompts), done / (now - t0)
            )
            last[0] = now

    jsd, tokens = score_pairs(
        orig, prun, prompts, docs.column("output").to_pylist(), max_tokens=config.max_tokens,
        batch_size=config.score_batch, progress=progress,
    )  # fmt: skip
    ok = ~np.isnan(jsd)
    for id_ in docs.filter(pa.array(~ok)).column("id").to_pylist():
        rejected.add(id_, "response has no token within max_tokens")
    return docs.filter(pa.array(ok)), jsd[ok], tokens[ok]


def _texts(docs: pa.Table, with_output: bool) -> list[str]:
    inst = docs.column("instruction").to_pylist()
    inp = docs.column("input").to_pylist()
    out = docs.column("output").to_pylist() if with_output else [None] * len(inst)
    return ["\n\n".join(part for part in (a, b, c) if part) for a, b, c in zip(inst, inp, out, strict=True)]


def run(
    inputs: str | Sequence[str],
    config: SelectionConfig | None = None,
    output: str | os.PathLike[str] = "select_out",
    engine: Engine | None = None,
    *,
    scores: str | None = None,
    original: str | None = None,
    pruned: str | None = None,
) -> dict[str, Any]:
    """Select recovery data from the instructions at `inputs`; write selected.parquet, clusters.parquet,
    rejected.parquet, stats.json and report.md into `output`; return the stats."""
    config = config or SelectionConfig()
    engine = engine or PolarsEngine()
    if not isinstance(engine, PolarsEngine):
        raise InputError(f"sift select runs on the polars engine; the {engine.name} plan is not built yet")
    uri = one_input(inputs, "select")
    if config.strategy == "paser":
        if scores is not None and (original or pruned):
            raise InputError("give degradation scores one way: --scores, or --original and --pruned")
        if scores is None and not (original and pruned):
            raise InputError(
                "PASER needs degradation scores: --scores SCORES (id, jsd), or both --original and --pruned models"
            )
    out = Path(output)
    with output_lock(out):
        remove_tmp_files(out)
        for name in OUTPUTS:
            (out / name).unlink(missing_ok=True)
        return _run(uri, config, out, scores, original, pruned)


def _run(
    uri: str, config: SelectionConfig, out: Path, scores: str | None, original: str | None, pruned: str | None
) -> dict[str, Any]:
    from sift.selection.kernels.embed import default_embedder, embed_cached, token_lengths

    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    rejected = _Rejected()
    phase(f"reading {uri}")
    docs = _read(uri, rejected)
    rows_in = docs.num_rows + len(rejected.rows)
    embedder = config.embedder or default_embedder()
    jsd: np.ndarray | None = None
    tokens: np.ndarray | None = None
    if config.strategy == "paser":
        if scores is not None:
            docs, jsd, tokens = _scores_table(scores, docs, rejected)
        else:
            assert original is not None and pruned is not None
            phase("scoring the model pair")
            t = time.perf_counter()
            docs, jsd, tokens = _model_scores(original, pruned, docs, config, rejected)
            timings["score"] = time.perf_counter() - t
    pool = docs.num_rows
    if pool == 0:
        raise InputError(
            f"{uri}: no usable instruction left ({len(rejected.rows)} rejected, see the reasons)"
        )
    want = budget_count(config.budget, pool)
    if want > pool:
        raise InputError(
            f"budget {config.budget:g} is larger than the pool of {pool} usable instructions"
            f" ({len(rejected.rows)} of {rows_in} rejected)"
        )
    if tokens is None:
        t = time.perf_counter()
        tokens = token_lengths(embedder, _texts(docs, with_output=True))
        timings["tokens"] = time.perf_counter() - t

    work = WorkDir(out, {"stage": "select", "format": 1})
    n = pool
    labels = np.full(n, -1, dtype=np.int64)
    coords = np.full((n, 2), np.nan)
    eff = np.full(n, np.nan)
    status = np.array(["not_selected"] * n, dtype=object)
    reasons: dict[int, str] = {}
    cluster_stats: dict[str, Any] = {}
    embed_info: dict[str, Any] = {}
    if config.strategy == "paser":
        from sift.selection.kernels.cluster import s2ric
        from sift.selection.kernels.concepts import ConceptGraph

        assert jsd is not None
        phase(f"embedding {n} instructions")
        t = time.perf_counter()
        vectors, embed_info = embed_cached(
            _texts(docs, with_output=False), embedder, max_tokens=config.max_tokens,
            batch_size=config.embed_batch, cache_dir=work.root, backend=config.embed_backend,
        )  # fmt: skip
        timings["embed"] = time.perf_counter() - t
        phase("clustering (S2RIC)")
        t = time.perf_counter()
        clustering = s2ric(
            vectors, config.clusters, k_neighbors=config.k_neighbors, max_clusters=config.max_clusters,
            seed=config.seed, sample=config.cluster_sample,
        )  # fmt: skip
        timings["cluster"] = time.perf_counter() - t
        labels, coords = clustering.labels, clustering.coords
        t = time.perf_counter()
        eff = efficiency(jsd, tokens)
        order, rank = rank_within(labels, eff)
        k = clustering.k
        sizes = np.bincount(labels, minlength=k)
        cds = np.bincount(labels, weights=jsd, minlength=k) / np.maximum(sizes, 1)
        members = np.split(order, np.cumsum(sizes)[:-1])  # each cluster's rows, best first
        alloc0 = allocate(want, cds, sizes)
        alloc = alloc0.copy()
        pointer = np.zeros(k, dtype=np.int64)
        taken = np.zeros(k, dtype=np.int64)
        graph = ConceptGraph(max_concepts=config.max_concepts)
        inst = docs.column("instruction").to_pylist()
        inp = docs.column("input").to_pylist()
        resp = docs.column("output").to_pylist()
        picked: list[int] = []
        while True:
            for c in range(k):
                while taken[c] < alloc[c] and pointer[c] < sizes[c]:
                    row = int(members[c][pointer[c]])
                    pointer[c] += 1
                    reason = (
                        graph.check(f"{inst[row]}\n{inp[row] or ''}", resp[row] or "")
                        if config.conflict_filter
                        else None
                    )
                    if reason is None:
                        taken[c] += 1
                        status[row] = "selected"
                        picked.append(row)
                    else:
                        status[row] = "rejected"
                        reasons[row] = reason
            short = want - len(picked)
            left = sizes - pointer
            if short == 0 or left.sum() == 0:
                break
            alloc = taken + allocate(short, cds, left)
        timings["select"] = time.perf_counter() - t
        selection_order = np.asarray(picked, dtype=np.int64)
        cluster_stats = {
            "k": k,
            "method": clustering.method,
            "eigenvalues": [round(v, 6) for v in clustering.eigenvalues[: config.max_clusters + 1]],
            "sigma": round(clustering.sigma, 6),
            "sample": clustering.sample,
            "per_cluster": [
                {
                    "cluster": c,
                    "size": int(sizes[c]),
                    "cds": round(float(cds[c]), 8),
                    "budget": int(alloc0[c]),
                    "selected": int(taken[c]),
                    "rejected": int(sum(1 for r in reasons if labels[r] == c)),
                }  # fmt: skip
                for c in range(k)
            ],
        }
    else:
        if config.strategy == "random":
            order = np.random.default_rng(config.seed).permutation(n)
        else:  # length: longest instruction + response first, ties by row
            order = np.lexsort((np.arange(n), -tokens))
        rank = np.empty(n, dtype=np.int64)
        rank[order] = np.arange(n)
        labels = np.zeros(n, dtype=np.int64) - 1
        selection_order = order[:want]
        status[selection_order] = "selected"

    ids = docs.column("id").to_pylist()
    for row in sorted(reasons):
        rejected.add(ids[row], reasons[row], cluster=int(labels[row]) if labels[row] >= 0 else None)
    cluster_col = pa.array(np.where(labels >= 0, labels, 0), pa.int64(), mask=labels < 0)
    extra = {
        "cluster": cluster_col,
        "rank": pa.array(rank, pa.int64()),
        "jsd": pa.array(jsd if jsd is not None else np.full(n, np.nan), pa.float64()),
        "tokens": pa.array(tokens, pa.int64()),
        "efficiency": pa.array(eff, pa.float64()),
    }
    full = docs
    for name, col in extra.items():
        if name in full.column_names:
            full = full.drop_columns([name])
        full = full.append_column(name, col)
    selected = full.take(pa.array(selection_order, pa.int64()))
    clusters = pa.table(
        {"id": docs.column("id"), **extra, "status": pa.array(list(status), pa.string()),
         "x": pa.array(coords[:, 0], pa.float64()), "y": pa.array(coords[:, 1], pa.float64())}
    )  # fmt: skip
    rejected_table = rejected.table()
    phase(f"writing {out}")
    write_table(selected, out / "selected.parquet")
    write_table(clusters, out / "clusters.parquet")
    write_table(rejected_table, out / "rejected.parquet")
    not_selected = int(np.sum(status == "not_selected"))
    by_reason: dict[str, int] = {}
    for r in rejected.rows:
        kind = r["reason"].split(":")[0].split(" (")[0]
        by_reason[kind] = by_reason.get(kind, 0) + 1
    timings["total"] = time.perf_counter() - t0
    stats: dict[str, Any] = {
        "strategy": config.strategy,
        "rows_in": rows_in,
        "pool": pool,
        "budget": want,
        "selected": int(selected.num_rows),
        "not_selected": not_selected,
        "rejected": rejected_table.num_rows,
        "rejected_by_reason": dict(sorted(by_reason.items())),
        "seed": config.seed,
        "embedder": embedder if config.strategy == "paser" else None,
        "embeddings": embed_info,
        "clusters": cluster_stats,
        "degradation": "scores" if scores else ("model pair" if original else None),
        "seconds": {k: round(v, 3) for k, v in timings.items()},
    }
    assert stats["selected"] + not_selected + stats["rejected"] == rows_in
    from sift.selection.report import write_report

    write_report(stats, clusters, out)
    # stats.json holds no timings, so the same input and seed give the same bytes
    write_json({k: v for k, v in stats.items() if k not in ("seconds", "embeddings")}, out / "stats.json")
    return stats
