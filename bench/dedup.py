"""Benchmark of issue 3: Sift's SlimPajama near-duplicate dedup (SlimPajama-DC) against two recipe peers.

``python bench/dedup.py CORPUS.jsonl [--sample-pairs 3000] [--threshold 0.8] [--tools sift,rensa,datasketch]``

Runs, one after another, each in its own subprocess of this process (one process tree, same machine):

- ``sift``: ``sift dedup CORPUS --output DIR --mode verified --engine polars --threshold T`` (the CLI contract);
- ``rensa``: the SlimPajama recipe on rensa with numpy-prehashed 13-grams (``dedup_peer_rensa.py --input prehashed``,
  its fastest path); ``rensa-tokens``: the same with 13-gram strings (rensa's documented token-set API);
- ``datasketch``: the SlimPajama recipe on datasketch (``dedup_peer_datasketch.py``).

For each it prints wall time, MB/s (corpus file bytes / wall time), CPU seconds (user + system: less sensitive than wall time to other work on a shared machine, whose 1-minute
load average is recorded before and after each tool), peak RSS (``ru_maxrss`` of the
tool's process tree from ``os.wait4``: the largest single process), documents removed as too short and as
duplicates, Sift's throughput ratio to each peer, and precision/recall against exact Jaccard ground truth:

- similarity = exact Jaccard of the character 13-gram sets of SlimPajama-normalised text (``dedup_recipe``);
  documents whose normalised text is under 200 characters are out of scope (every tool drops them);
- precision = share of a tool's duplicate removals (a random sample of at most ``--sample-pairs``) whose removed
  document has similarity >= T with the document the tool says stands for it (``duplicate_of``; for the peers the
  survivor of its component);
- recall = share of true pairs (similarity >= T) of which the tool does not keep both documents, on three samples:
  ``lsh`` pairs drawn at random from the buckets of an independent high-recall LSH (32 bands x 4 rows over 128 rensa
  slots, estimated similarity >= 0.6: it proposes a pair at similarity 0.8 with probability > 0.999), ``claimed``
  pairs drawn from the union of every tool's (removed, duplicate_of) pairs, and ``injected`` pairs (edited copies
  written by ``dedup_corpus.py``, with their original). ``near`` restricts the lsh sample to T <= similarity < 1.

``--repeat N`` runs the tools N times round robin and reports each tool's fastest run (all rounds are in the JSON),
which damps the noise of other work on a shared machine. Results are also written as JSON (``--json``, default ``OUTDIR/results.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

import dedup_recipe as recipe
import numpy as np
import pyarrow.json as pj
import pyarrow.parquet as pq

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
PEERS = ("rensa", "rensa-tokens", "datasketch")


def sift_command() -> list[str]:
    """How to call the ``sift`` CLI: the console script next to this interpreter, on PATH, or the module."""
    script = Path(sys.executable).with_name("sift")
    if script.exists():
        return [str(script)]
    if shutil.which("sift"):
        return [str(shutil.which("sift"))]
    return [
        sys.executable,
        "-c",
        "import sys; from sift.pipelines.cli import main; sys.argv[0] = 'sift'; main()",
    ]


def profiled(cmd: list[str], prof: Path) -> list[str]:
    """``cmd`` (a Python console script or ``python -m/-c``) run under cProfile, writing ``prof``."""
    if cmd[0] == sys.executable:
        if cmd[1] == "-c":
            return [sys.executable, "-m", "cProfile", "-o", str(prof), "-m", "sift.pipelines.cli", *cmd[3:]]
        return [sys.executable, "-m", "cProfile", "-o", str(prof), *cmd[1:]]
    return [sys.executable, "-m", "cProfile", "-o", str(prof), *cmd]


def profile_summary(prof: Path, top: int = 30) -> str:
    """The top functions of a cProfile dump by cumulative and by own time."""
    import io
    import pstats

    buf = io.StringIO()
    stats = pstats.Stats(str(prof), stream=buf)
    stats.sort_stats("cumulative").print_stats(top)
    stats.sort_stats("tottime").print_stats(top)
    return buf.getvalue()


def tool_command(tool: str, corpus: Path, out: Path, threshold: float, sift_cmd: list[str]) -> list[str]:
    """The command line of one tool."""
    if tool == "sift":
        return [
            *sift_cmd,
            "dedup",
            str(corpus),
            "--output",
            str(out),
            "--mode",
            "verified",
            "--engine",
            "polars",
            "--threshold",
            str(threshold),
        ]
    if tool in ("rensa", "rensa-tokens"):
        mode = "prehashed" if tool == "rensa" else "tokens"
        return [
            sys.executable,
            str(BENCH / "dedup_peer_rensa.py"),
            str(corpus),
            "--output",
            str(out),
            "--input",
            mode,
        ]
    if tool == "datasketch":
        return [sys.executable, str(BENCH / "dedup_peer_datasketch.py"), str(corpus), "--output", str(out)]
    raise ValueError(f"unknown tool {tool!r}")


def run_tool(cmd: list[str], out: Path, timeout: float) -> dict:
    """Run one tool as a child process; return wall time, CPU time, peak RSS and exit status."""
    if out.exists():
        shutil.rmtree(out)
    log = out.with_name(out.name + ".log")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in [str(ROOT), env.get("PYTHONPATH", "")] if p)
    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    with log.open("w") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        deadline = t0 + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.05)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    return {
        "command": cmd,
        "returncode": proc.returncode,
        "wall_s": round(wall, 3),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "load_avg_1min_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "log": str(log),
        "log_tail": log.read_text(errors="replace")[-1500:] if proc.returncode else "",
    }


class Corpus:
    """The corpus in memory: ids, texts, and cached normalised texts / shingle sets for the documents sampled."""

    def __init__(self, path: Path) -> None:
        table = pj.read_json(str(path), read_options=pj.ReadOptions(block_size=16 << 20))
        self.ids: list[str] = [str(v) for v in table.column("id").to_pylist()]
        self.texts: list[str] = [v or "" for v in table.column("text").to_pylist()]
        self.row = {doc_id: i for i, doc_id in enumerate(self.ids)}
        self._shingles: dict[int, set[str] | None] = {}

    def shingles(self, row: int) -> set[str] | None:
        """Shingle set of a document, or None when its normalised text is under 200 characters."""
        if row not in self._shingles:
            norm = recipe.normalise(self.texts[row])
            self._shingles[row] = recipe.shingles(norm) if len(norm) >= recipe.MIN_CHARS else None
            if len(self._shingles) > 50_000:
                self._shingles.pop(next(iter(self._shingles)))
        return self._shingles[row]

    def similarity(self, a: int, b: int) -> float | None:
        """Exact Jaccard of two documents, None when either is out of scope (too short)."""
        sa, sb = self.shingles(a), self.shingles(b)
        if sa is None or sb is None:
            return None
        return recipe.jaccard(sa, sb)


def load_result(out: Path, corpus: Corpus) -> dict:
    """A tool's removals: the kept mask over corpus rows and its (removed row, duplicate_of row) claims."""
    removed = pq.read_table(
        out / "removed.parquet", columns=["id", "reason", "duplicate_of", "similarity"]
    ).to_pylist()
    kept = np.ones(len(corpus.ids), dtype=bool)
    claims: list[tuple[int, int | None]] = []
    stated: dict[tuple[int, int], float] = {}
    reasons: dict[str, int] = {}
    for rec in removed:
        row = corpus.row[rec["id"]]
        kept[row] = False
        reasons[rec["reason"]] = reasons.get(rec["reason"], 0) + 1
        if rec["reason"] != "too_short":
            dup = rec["duplicate_of"]
            claims.append((row, corpus.row.get(dup) if dup is not None else None))
            if claims[-1][1] is not None and rec["similarity"] is not None:
                stated[(row, claims[-1][1])] = rec["similarity"]
    return {"kept": kept, "claims": claims, "reasons": reasons, "stated": stated}


def lsh_pairs(corpus_path: Path, n_docs: int, limit: int, rng: random.Random) -> list[tuple[int, int]]:
    """Random pairs from the buckets of a high-recall LSH (32 x 4 over 128 rensa slots), est. similarity >= 0.6."""
    import dedup_peer_rensa as rensa_peer

    sigs = np.zeros((n_docs, recipe.NUM_PERM), dtype=np.uint32)
    eligible = np.zeros(n_docs, dtype=bool)
    for batch in recipe.iter_corpus(corpus_path, batch_rows=2048):
        norms = [recipe.normalise(t) for t in batch.texts]
        ok = [i for i, t in enumerate(norms) if len(t) >= recipe.MIN_CHARS]
        if ok:
            sigs[np.asarray(ok) + batch.start] = rensa_peer.signatures([norms[i] for i in ok], "prehashed")
            eligible[np.asarray(ok) + batch.start] = True
    rows = np.flatnonzero(eligible)
    keys = recipe.band_keys(sigs[rows], bands=32, rows=4)
    u, v = recipe.bucket_edges(keys, rows)
    pairs = np.unique(np.stack([np.minimum(u, v), np.maximum(u, v)], axis=1), axis=0)
    estimate = (sigs[pairs[:, 0]] == sigs[pairs[:, 1]]).mean(axis=1)
    pairs = pairs[estimate >= 0.6]
    picked = rng.sample(range(len(pairs)), min(limit, len(pairs)))
    return [(int(pairs[i, 0]), int(pairs[i, 1])) for i in sorted(picked)]


def evaluate(
    corpus: Corpus,
    corpus_path: Path,
    results: dict[str, dict],
    threshold: float,
    sample: int,
    seed: int,
) -> dict:
    """Precision and recall of each tool against exact Jaccard on sampled pairs (definitions: module docstring)."""
    rng = random.Random(seed)
    quality: dict[str, dict] = {}
    for tool, res in results.items():
        claims = res["claims"]
        picked = rng.sample(claims, min(sample, len(claims)))
        correct = judged = 0
        errors: list[float] = []
        for removed_row, dup_row in picked:
            sim = corpus.similarity(removed_row, dup_row) if dup_row is not None else 0.0
            judged += 1
            correct += sim is not None and sim >= threshold
            said = res["stated"].get((removed_row, dup_row)) if dup_row is not None else None
            if said is not None and sim is not None:
                errors.append(abs(said - sim))
        dup_not_kept = sum(1 for _, d in claims if d is None or not res["kept"][d])
        quality[tool] = {
            "precision": round(correct / judged, 4) if judged else None,
            "precision_sample": judged,
            "removals_whose_duplicate_of_is_not_kept": dup_not_kept,
            "stated_similarity_abs_error": (
                {"mean": round(float(np.mean(errors)), 4), "max": round(float(np.max(errors)), 4)}
                if errors
                else None
            ),
        }
    strata: dict[str, list[tuple[int, int]]] = {}
    strata["lsh"] = lsh_pairs(corpus_path, len(corpus.ids), sample, rng)
    union = sorted(
        {(min(a, b), max(a, b)) for res in results.values() for a, b in res["claims"] if b is not None}
    )
    strata["claimed"] = rng.sample(union, min(sample, len(union)))
    truth = corpus_path.with_name(corpus_path.name.removesuffix(".jsonl") + ".injected.jsonl")
    injected = []
    if truth.exists():
        for line in truth.read_text().splitlines():
            rec = json.loads(line)
            if rec["original"] in corpus.row and rec["copy"] in corpus.row:
                injected.append((corpus.row[rec["original"]], corpus.row[rec["copy"]]))
    strata["injected"] = rng.sample(injected, min(sample, len(injected)))
    counts: dict[str, dict] = {}
    true_pairs: dict[str, list[tuple[int, int]]] = {}
    for name, pairs in strata.items():
        sims = [(a, b, corpus.similarity(a, b)) for a, b in pairs]
        true = [(a, b, s) for a, b, s in sims if s is not None and s >= threshold]
        counts[name] = {"pairs_judged": len(pairs), "true_pairs": len(true)}
        true_pairs[name] = [(a, b) for a, b, _ in true]
        if name == "lsh":
            true_pairs["near"] = [(a, b) for a, b, s in true if s < 1.0]
            counts["near"] = {"pairs_judged": len(pairs), "true_pairs": len(true_pairs["near"])}
    for tool, res in results.items():
        kept = res["kept"]
        for name, pairs in true_pairs.items():
            found = sum(1 for a, b in pairs if not (kept[a] and kept[b]))
            quality[tool][f"recall_{name}"] = round(found / len(pairs), 4) if pairs else None
    return {"quality": quality, "strata": counts}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", type=Path)
    parser.add_argument("--sample-pairs", type=int, default=3000)
    parser.add_argument("--threshold", type=float, default=recipe.THRESHOLD)
    parser.add_argument("--tools", default="sift,rensa,rensa-tokens,datasketch")
    parser.add_argument("--outdir", type=Path, default=ROOT / ".bench" / "dedup" / "run")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument(
        "--sift-cmd", default=None, help="command prefix that runs the sift CLI (default: found)"
    )
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per tool (default 1800)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--skip-quality", action="store_true", help="time the tools only, no precision/recall"
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="run the tools N times, round robin, and keep each one's fastest run",
    )
    parser.add_argument(
        "--profile-sift", action="store_true", help="run sift under cProfile (slower) and print its hot spots"
    )
    args = parser.parse_args()
    corpus_path = args.corpus.resolve()
    if not corpus_path.exists():
        parser.error(f"corpus {corpus_path} does not exist: build it with bench/dedup_corpus.py")
    mb = corpus_path.stat().st_size / 1e6
    args.outdir.mkdir(parents=True, exist_ok=True)
    sift_cmd = args.sift_cmd.split() if args.sift_cmd else sift_command()
    tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    runs: dict[str, dict] = {}
    # Read the corpus once first: this VM's page cache is reclaimed within minutes, and whichever tool ran first
    # would otherwise read it cold from disk (Sift runs first).
    with open(corpus_path, "rb") as f:
        while f.read(1 << 24):
            pass
    for round_no in range(args.repeat):
        for tool in tools:
            out = args.outdir / tool
            print(f"running {tool} (round {round_no + 1}/{args.repeat}) ...", flush=True)
            cmd = tool_command(tool, corpus_path, out, args.threshold, sift_cmd)
            prof = args.outdir / f"{tool}.prof"
            profile = tool == "sift" and args.profile_sift and round_no == 0
            run = run_tool(profiled(cmd, prof) if profile else cmd, out, args.timeout)
            if profile and prof.exists():
                summary = profile_summary(prof)
                prof.with_suffix(".prof.txt").write_text(summary)
                run["profile"] = str(prof.with_suffix(".prof.txt"))
                print(summary[:6000])
            run["mb_per_s"] = round(mb / max(run["wall_s"], 1e-3), 2)
            status = (
                "ok" if run["returncode"] == 0 else f"FAILED (exit {run['returncode']}, see {run['log']})"
            )
            print(
                f"  {tool}: {run['wall_s']} s, {run['mb_per_s']} MB/s, CPU {run['cpu_s']} s, "
                f"peak RSS {run['peak_rss_mb']} MB, {status} (load before/after: {run['load_avg_1min_before_after']})",
                flush=True,
            )
            if run["returncode"]:
                print("  " + run["log_tail"].replace("\n", "\n  "), flush=True)
            best = runs.get(tool)
            rounds = (best or {}).get("rounds", []) + [
                {
                    k: run[k]
                    for k in ("wall_s", "cpu_s", "peak_rss_mb", "returncode", "load_avg_1min_before_after")
                }
            ]
            if best is None or (
                run["returncode"] == 0 and (best["returncode"] != 0 or run["wall_s"] < best["wall_s"])
            ):
                best = run
            best["rounds"] = rounds
            runs[tool] = best
    corpus = Corpus(corpus_path)
    results = {
        t: load_result(args.outdir / t, corpus)
        for t, r in runs.items()
        if r["returncode"] == 0 and (args.outdir / t / "removed.parquet").exists()
    }
    if args.skip_quality:
        evaluation = {"quality": {t: {} for t in results}, "strata": {}}
    else:
        print("evaluating against exact Jaccard ...", flush=True)
        evaluation = evaluate(corpus, corpus_path, results, args.threshold, args.sample_pairs, args.seed)
    report = {
        "corpus": str(corpus_path),
        "corpus_mb": round(mb, 1),
        "documents": len(corpus.ids),
        "threshold": args.threshold,
        "machine": {"cpus": os.cpu_count()},
        "tools": {},
        "sift_throughput_ratio": {},
        "sift_cpu_time_ratio": {},
        "ground_truth": evaluation["strata"],
        "definitions": {
            "similarity": "exact Jaccard of character 13-gram sets of SlimPajama-normalised text",
            "precision": "share of sampled duplicate removals with similarity >= T to their duplicate_of",
            "recall": "share of true pairs (similarity >= T) of which the tool does not keep both documents",
            "recall_lsh": "true pairs sampled from an independent 32x4 LSH (est. similarity >= 0.6)",
            "recall_near": "recall_lsh restricted to T <= similarity < 1",
            "recall_claimed": "true pairs sampled from the union of all tools' (removed, duplicate_of) pairs",
            "recall_injected": "true pairs among injected edited copies and their originals",
            "peak_rss_mb": "ru_maxrss of the tool's process tree (largest single process) from os.wait4",
        },
    }
    for tool, run in runs.items():
        entry = dict(run)
        entry.pop("log_tail", None)
        for name in ("stats.json", "timings.json"):
            path = args.outdir / tool / name
            if path.exists():
                entry[name.removesuffix(".json")] = json.loads(path.read_text())
        if tool in results:
            entry["removed"] = results[tool]["reasons"]
            entry.update(evaluation["quality"][tool])
        report["tools"][tool] = entry
    if "sift" in results:
        for peer in PEERS:
            if peer in results:
                report["sift_throughput_ratio"][peer] = round(
                    runs[peer]["wall_s"] / max(runs["sift"]["wall_s"], 1e-3), 2
                )
                report["sift_cpu_time_ratio"][peer] = round(
                    runs[peer]["cpu_s"] / max(runs["sift"]["cpu_s"], 1e-9), 2
                )
    print_report(report)
    out_json = args.json or args.outdir / "results.json"
    out_json.write_text(json.dumps(report, indent=2))
    print(f"results written to {out_json}")


def print_report(report: dict) -> None:
    """The human-readable table."""
    print(
        f"\ncorpus {report['corpus']}: {report['corpus_mb']} MB, {report['documents']} documents, T={report['threshold']}"
    )
    header = f"{'tool':<13}{'wall s':>8}{'MB/s':>8}{'CPU s':>8}{'RSS MB':>8}{'short':>7}{'dups':>7}"
    header += f"{'prec':>7}{'R lsh':>7}{'R near':>7}{'R claim':>8}{'R inj':>7}"
    print(header)
    for tool, t in report["tools"].items():
        if "removed" not in t:
            print(
                f"{tool:<13}{t['wall_s']:>8}{'':>8}{t['cpu_s']:>8}{t['peak_rss_mb']:>8}  FAILED (exit {t['returncode']})"
            )
            continue
        short = t["removed"].get("too_short", 0)
        dups = sum(v for k, v in t["removed"].items() if k != "too_short")

        def f(x: float | None) -> str:
            return "-" if x is None else f"{x:.3f}"

        line = f"{tool:<13}{t['wall_s']:>8}{t['mb_per_s']:>8}{t['cpu_s']:>8}{t['peak_rss_mb']:>8}{short:>7}{dups:>7}"
        line += f"{f(t.get('precision')):>7}{f(t.get('recall_lsh')):>7}{f(t.get('recall_near')):>7}"
        line += f"{f(t.get('recall_claimed')):>8}{f(t.get('recall_injected')):>7}"
        print(line)
    for tool, t in report["tools"].items():
        if t.get("stated_similarity_abs_error"):
            print(
                f"{tool}: |stated similarity - exact Jaccard| on the precision sample: {t['stated_similarity_abs_error']}"
            )
        if t.get("timings"):
            print(f"{tool} phase timings: {t['timings']}")
    for peer, ratio in report["sift_throughput_ratio"].items():
        target = " (target >= 3x)" if peer == "rensa" else ""
        cpu = report["sift_cpu_time_ratio"][peer]
        print(f"sift throughput / {peer}: {ratio}x{target} (by wall time; by CPU time: {cpu}x)")
    print(
        "ground truth pairs judged / true:",
        {k: (v["pairs_judged"], v["true_pairs"]) for k, v in report["ground_truth"].items()},
    )
    for key in (
        "similarity",
        "precision",
        "recall",
        "recall_lsh",
        "recall_near",
        "recall_claimed",
        "recall_injected",
    ):
        print(f"  {key}: {report['definitions'][key]}")


if __name__ == "__main__":
    main()
