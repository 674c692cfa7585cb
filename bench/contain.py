"""Containment benchmark: Sift's R2D2 hierarchy against a brute-force pairwise check (issue 4, "Benchmark").

Runs, in the same run and on the same machine, each in its own subprocess:
1. Sift through its CLI contract: ``sift contain LAKE --output DIR --engine E`` (containment.parquet, stats.json);
2. the brute-force checker ``bench/contain_brute.py`` (every schema-compatible ordered pair loaded and anti-joined).

Prints precision and recall of Sift's (contained, container) pairs against the brute force, the wall time and peak
RSS of each and the speed ratio (target: exact results at least 20x faster than brute force), the pairs left after
each of Sift's steps (from its stats.json), and how both agree with the ground truth the lake builder constructed
(``LAKE.truth.parquet``, written by bench/contain_lake.py). Writes everything as JSON too.

Usage: ``python bench/contain.py LAKE [--engine polars|spark] [--output DIR] [--json PATH] [--case-insensitive]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TARGET_SPEEDUP = 20.0

Pair = tuple[str, str]


def sift_command() -> list[str]:
    """The `sift` console script if installed, else the CLI module run by this interpreter."""
    exe = shutil.which("sift")
    if exe:
        return [exe]
    local = Path(sys.executable).parent / "sift"
    if local.exists():
        return [str(local)]
    return [sys.executable, "-m", "sift.pipelines.cli"]


def run_measured(cmd: list[str], log: Path) -> dict:
    """Run ``cmd``; its wall time, exit code and peak RSS (MiB, from wait4's rusage of that child alone)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in [str(ROOT), env.get("PYTHONPATH", "")] if p)
    with open(log, "wb") as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    tail = log.read_text(errors="replace")[-3000:]
    return {
        "command": cmd,
        "returncode": proc.returncode,
        "seconds": wall,
        "peak_rss_mib": usage.ru_maxrss / 1024.0,
        "cpu_seconds": usage.ru_utime + usage.ru_stime,
        "log_tail": tail if proc.returncode != 0 else "",
    }


def warm_page_cache(lake: Path) -> int:
    """Read every file of the lake once, so that no tool pays for reading it cold from disk (this VM's page cache
    is reclaimed within minutes, and Sift runs first). Returns the bytes read."""
    total = 0
    for root, _dirs, files in os.walk(lake):
        for name in files:
            with open(os.path.join(root, name), "rb") as f:
                while chunk := f.read(1 << 22):
                    total += len(chunk)
    return total


def profile_top(path: Path, n: int = 25) -> str:
    """The ``n`` functions with the most cumulative time in a cProfile dump."""
    import io
    import pstats

    buf = io.StringIO()
    pstats.Stats(str(path), stream=buf).sort_stats("cumulative").print_stats(n)
    return buf.getvalue()


def read_pairs(path: Path) -> set[Pair]:
    """The ordered (contained, container) pairs of a containment table, self pairs dropped."""
    table = pq.read_table(path, columns=["contained", "container"])
    return {(a, b) for a, b in zip(*(c.to_pylist() for c in table.columns), strict=True) if a != b}


def closure(pairs: set[Pair]) -> set[Pair]:
    """Transitive closure (for a tool that reports only part of a transitively closed relation)."""
    succ: dict[str, set[str]] = {}
    for a, b in pairs:
        succ.setdefault(a, set()).add(b)
    out: set[Pair] = set()
    for a in succ:
        seen: set[str] = set()
        stack = list(succ[a])
        while stack:
            b = stack.pop()
            if b in seen:
                continue
            seen.add(b)
            stack.extend(succ.get(b, ()))
        out.update((a, b) for b in seen if b != a)
    return out


def score(found: set[Pair], truth: set[Pair]) -> dict:
    """Precision and recall of ``found`` against ``truth`` (1.0 when the denominator is empty)."""
    tp = len(found & truth)
    return {
        "found": len(found),
        "true": len(truth),
        "true_positives": tp,
        "false_positives": len(found - truth),
        "false_negatives": len(truth - found),
        "precision": tp / len(found) if found else 1.0,
        "recall": tp / len(truth) if truth else 1.0,
    }


def truth_agreement(truth_path: Path, pairs: set[Pair], case_insensitive: bool) -> dict:
    """How a tool's pairs agree with the relations the lake builder constructed (and guarantees)."""
    rows = pq.read_table(truth_path).to_pylist()
    key = "expected_case_insensitive" if case_insensitive else "expected"
    wrong = [r for r in rows if ((r["contained"], r["container"]) in pairs) != r[key]]
    by_kind: dict[str, list[int]] = {}
    for r in rows:
        ok = ((r["contained"], r["container"]) in pairs) == r[key]
        by_kind.setdefault(r["kind"], [0, 0])[0 if ok else 1] += 1
    return {
        "constructed_relations": len(rows),
        "agree": len(rows) - len(wrong),
        "disagree": len(wrong),
        "by_kind": {k: {"agree": v[0], "disagree": v[1]} for k, v in sorted(by_kind.items())},
        "examples": [
            {"contained": r["contained"], "container": r["container"], "expected": r[key], "kind": r["kind"]}
            for r in wrong[:10]
        ],
    }


def flatten_numbers(obj: object, prefix: str = "") -> dict[str, float]:
    """Every numeric leaf of a JSON object, keyed by its dotted path."""
    out: dict[str, float] = {}
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.update(flatten_numbers(v, f"{prefix}.{k}" if prefix else str(k)))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out.update(flatten_numbers(v, f"{prefix}[{i}]"))
    elif isinstance(obj, bool):
        pass
    elif isinstance(obj, int | float):
        out[prefix] = obj
    return out


def step_lines(stats: dict) -> list[str]:
    """Sift's per-step pair counts and timings as printable lines (whatever names its stats.json uses)."""
    flat = flatten_numbers(stats)
    words = (
        "pair",
        "candidate",
        "pruned",
        "considered",
        "left",
        "remaining",
        "verified",
        "edges",
        "second",
        "time",
    )
    return [
        f"  {k:<58} {v:>14,.3f}" if isinstance(v, float) else f"  {k:<58} {v:>14,}"
        for k, v in flat.items()
        if any(w in k.lower() for w in words)
    ]


CONTAINMENT_STEPS = ("read_metadata", "schema_graph", "minmax_prune", "content_check")


def containment_seconds(stats: dict) -> float | None:
    """Seconds Sift's stats.json gives its containment steps (metadata, schema graph, min-max, content check)."""
    found = [
        stats[k]["seconds"]
        for k in CONTAINMENT_STEPS
        if isinstance(stats.get(k), dict) and "seconds" in stats[k]
    ]
    return float(sum(found)) if found else None


def funnel(stats: dict) -> list[tuple[str, int]]:
    """Pairs left after each step, where stats.json has the counts (all ordered pairs -> contained pairs)."""
    rows: list[tuple[str, int]] = []
    sg, mm, cc = stats.get("schema_graph", {}), stats.get("minmax_prune", {}), stats.get("content_check", {})
    if "all_pairs" in sg:
        rows.append(("all ordered pairs", int(sg["all_pairs"])))
    if "candidates" in sg:
        rows.append(("after schema containment graph", int(sg["candidates"])))
    if "considered" in mm and "pruned" in mm:
        rows.append(("after min-max pruning (footers only)", int(mm["considered"]) - int(mm["pruned"])))
    if "contained_pairs" in cc:
        rows.append(("after content check (contained)", int(cc["contained_pairs"])))
    return rows


def examples(pairs: set[Pair], origin: dict[str, str], k: int = 10) -> list[dict]:
    return [
        {"contained": a, "container": b, "origins": [origin.get(a), origin.get(b)]}
        for a, b in sorted(pairs)[:k]
    ]


def run_bench(
    lake: Path,
    out: Path,
    *,
    engine: str = "polars",
    case_insensitive: bool = False,
    sift_cmd: list[str] | None = None,
    extra_sift_args: list[str] | None = None,
    with_cached_peer: bool = True,
    profile_sift: bool = False,
    repeat: int = 1,
) -> dict:
    """Run Sift and the brute force on ``lake``, compare them, and return the results (also printed by main).
    The lake is read once first (warm page cache for every tool); with ``repeat`` > 1 Sift runs that many times
    and its fastest run counts (the brute force, minutes long, runs once)."""
    out.mkdir(parents=True, exist_ok=True)
    warm_page_cache(lake)
    sift_dir = out / "sift"
    if sift_dir.exists():
        shutil.rmtree(sift_dir)
    ci = ["--case-insensitive"] if case_insensitive else []
    cmd = [
        *(sift_cmd or sift_command()),
        "contain",
        str(lake),
        "--output",
        str(sift_dir),
        "--engine",
        engine,
        *ci,
    ]
    cmd += extra_sift_args or []
    if profile_sift:
        script = cmd[0] if cmd[0] != sys.executable else None
        prof = ["-m", "cProfile", "-o", str(out / "sift.prof")]
        cmd = [sys.executable, *prof, script, *cmd[1:]] if script else [sys.executable, *prof, *cmd[1:]]
    runs = []
    for _ in range(max(1, repeat)):
        if sift_dir.exists():
            shutil.rmtree(sift_dir)
        runs.append(run_measured(cmd, out / "sift.log"))
    ok = [r for r in runs if r["returncode"] == 0]
    sift = min(ok, key=lambda r: r["seconds"]) if ok else runs[-1]
    sift["rounds_seconds"] = [round(r["seconds"], 2) for r in runs]
    if profile_sift and (out / "sift.prof").exists():
        sift["profile_top"] = profile_top(out / "sift.prof")
    brute_pairs_path = out / "brute_pairs.parquet"
    brute = run_measured(
        [
            sys.executable,
            str(HERE / "contain_brute.py"),
            str(lake),
            "--output",
            str(brute_pairs_path),
            "--json",
            str(out / "brute_stats.json"),
            *ci,
        ],
        out / "brute.log",
    )
    cached = None
    if with_cached_peer:
        cached = run_measured(
            [
                sys.executable,
                str(HERE / "contain_brute.py"),
                str(lake),
                "--cached",
                "--output",
                str(out / "brute_cached_pairs.parquet"),
                "--json",
                str(out / "brute_cached_stats.json"),
                *ci,
            ],
            out / "brute_cached.log",
        )
    result: dict = {
        "lake": str(lake),
        "engine": engine,
        "case_insensitive": case_insensitive,
        "sift": sift,
        "brute_force": brute,
    }
    if cached is not None:
        result["brute_force_cached"] = cached
    manifest_path = Path(f"{lake}.manifest.json")
    origin: dict[str, str] = {}
    if manifest_path.exists():
        manifest = json.loads(manifest_path.read_text())
        origin = {e["name"]: e["origin"] for e in manifest["entries"]}
        result["lake_summary"] = {k: v for k, v in manifest.items() if k != "entries"}
    if brute["returncode"] != 0:
        result["error"] = "brute force failed"
        return result
    truth_pairs = read_pairs(brute_pairs_path)
    if cached is not None and cached["returncode"] == 0:
        cached["stats"] = json.loads((out / "brute_cached_stats.json").read_text())
        cached["same_pairs_as_pairwise"] = read_pairs(out / "brute_cached_pairs.parquet") == truth_pairs
    result["brute_force"]["stats"] = json.loads((out / "brute_stats.json").read_text())
    truth_path = Path(f"{lake}.truth.parquet")
    if truth_path.exists():
        result["brute_force"]["vs_constructed_truth"] = truth_agreement(
            truth_path, truth_pairs, case_insensitive
        )
    if sift["returncode"] != 0 or not (sift_dir / "containment.parquet").exists():
        result["error"] = f"sift contain failed (exit {sift['returncode']})"
        return result
    sift_pairs = read_pairs(sift_dir / "containment.parquet")
    result["sift"]["vs_brute_force"] = score(sift_pairs, truth_pairs)
    result["sift"]["closure_vs_brute_force"] = score(closure(sift_pairs), truth_pairs)
    result["sift"]["false_positive_examples"] = examples(sift_pairs - truth_pairs, origin)
    result["sift"]["false_negative_examples"] = examples(truth_pairs - sift_pairs, origin)
    if truth_path.exists():
        result["sift"]["vs_constructed_truth"] = truth_agreement(truth_path, sift_pairs, case_insensitive)
    stats_path = sift_dir / "stats.json"
    if stats_path.exists():
        result["sift"]["stats"] = json.loads(stats_path.read_text())
    result["speedup_vs_brute_force"] = brute["seconds"] / sift["seconds"] if sift["seconds"] > 0 else None
    if sift["cpu_seconds"] > 0:
        result["cpu_ratio_vs_brute_force"] = brute["cpu_seconds"] / sift["cpu_seconds"]
    if cached is not None and cached["returncode"] == 0 and sift["seconds"] > 0:
        result["speedup_vs_brute_force_cached"] = cached["seconds"] / sift["seconds"]
    steps_s = containment_seconds(result["sift"].get("stats", {}))
    if steps_s:
        result["sift"]["containment_steps_seconds"] = steps_s
        result["speedup_containment_steps_vs_brute_force"] = brute["seconds"] / steps_s
    result["target_speedup"] = TARGET_SPEEDUP
    exact = result["sift"]["vs_brute_force"]["false_positives"] == 0 and (
        result["sift"]["vs_brute_force"]["false_negatives"] == 0
    )
    result["exact"] = exact
    result["target_met"] = bool(exact and (result["speedup_vs_brute_force"] or 0) >= TARGET_SPEEDUP)
    return result


def report(result: dict) -> str:
    """The human-readable summary of a result."""
    lines = [f"containment benchmark on {result['lake']} (engine {result['engine']})"]
    ls = result.get("lake_summary")
    if ls:
        lines.append(
            f"  lake: {ls['tables']} tables ({ls['real_tables']} real), {ls['rows']:,} rows, "
            f"{ls['bytes'] / 1e6:.1f} MB on disk, formats {ls['by_format']}"
        )
    for key, label in (
        ("sift", "sift contain"),
        ("brute_force", "brute force"),
        ("brute_force_cached", "brute cached"),
    ):
        r = result.get(key)
        if r is None:
            continue
        rounds = r.get("rounds_seconds", [])
        lines.append(
            f"  {label:<13} wall {r['seconds']:9.2f} s   cpu {r['cpu_seconds']:9.2f} s   "
            f"peak RSS {r['peak_rss_mib']:8.1f} MiB   exit {r['returncode']}"
            + (f"   (fastest of {len(rounds)}: {rounds})" if len(rounds) > 1 else "")
        )
    b = result["brute_force"].get("stats")
    if b:
        lines.append(
            f"  brute force: {b['ordered_pairs']:,} ordered pairs, {b['schema_candidates']:,} schema-compatible, "
            f"{b['contained_pairs']:,} contained"
        )
    vt = result["brute_force"].get("vs_constructed_truth")
    if vt:
        lines.append(f"  brute force vs constructed truth: {vt['agree']}/{vt['constructed_relations']} agree")
    if "error" in result:
        lines.append(f"  ERROR: {result['error']}")
        tail = result["sift"].get("log_tail") or result["brute_force"].get("log_tail")
        if tail:
            lines.append("  --- log tail ---\n" + tail)
        return "\n".join(lines)
    s = result["sift"]["vs_brute_force"]
    c = result["sift"]["closure_vs_brute_force"]
    lines.append(
        f"  sift vs brute force: precision {s['precision']:.4f}  recall {s['recall']:.4f}  "
        f"(found {s['found']:,}, true {s['true']:,}, FP {s['false_positives']}, FN {s['false_negatives']})"
    )
    lines.append(
        f"  (after transitive closure of sift's pairs: precision {c['precision']:.4f} recall {c['recall']:.4f})"
    )
    vt = result["sift"].get("vs_constructed_truth")
    if vt:
        lines.append(f"  sift vs constructed truth: {vt['agree']}/{vt['constructed_relations']} agree")
    for name in ("false_positive_examples", "false_negative_examples"):
        for e in result["sift"][name][:5]:
            lines.append(f"    {name[:14]}: {e['contained']} <= {e['container']}  {e['origins']}")
    sp = result["speedup_vs_brute_force"]
    lines.append(
        f"  speed: sift {result['sift']['seconds']:.2f} s vs brute force {result['brute_force']['seconds']:.2f} s "
        f"-> {sp:.1f}x (target >= {TARGET_SPEEDUP:.0f}x with exact results: "
        f"{'MET' if result['target_met'] else 'NOT MET'})"
    )
    if result.get("cpu_ratio_vs_brute_force"):
        lines.append(
            f"  cpu seconds ratio (less sensitive to a busy machine): {result['cpu_ratio_vs_brute_force']:.1f}x"
        )
    spc = result.get("speedup_vs_brute_force_cached")
    if spc is not None:
        same = result["brute_force_cached"].get("same_pairs_as_pairwise")
        lines.append(
            f"  vs brute force with every table cached in memory: {result['brute_force_cached']['seconds']:.2f} s "
            f"-> {spc:.1f}x (same pairs as pairwise brute force: {same})"
        )
    steps_s = result["sift"].get("containment_steps_seconds")
    if steps_s:
        lines.append(
            f"  sift's containment steps alone (stats.json: metadata, schema, min-max, content; no process start, "
            f"plan, recipes or report): {steps_s:.2f} s -> {result['speedup_containment_steps_vs_brute_force']:.1f}x"
        )
    stats = result["sift"].get("stats")
    if stats and funnel(stats):
        lines.append("  pairs left after each step:")
        lines.extend(f"    {label:<40} {n:>12,}" for label, n in funnel(stats))
    if stats:
        lines.append("  sift stats.json (pairs per step, timings):")
        lines.extend(step_lines(stats))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("lake", help="lake folder (built by bench/contain_lake.py, or any lake)")
    parser.add_argument("--engine", default="polars", choices=["polars", "spark"])
    parser.add_argument("--output", help="working folder (default: LAKE.bench)")
    parser.add_argument("--json", help="results JSON (default: OUTPUT/contain_bench.json)")
    parser.add_argument("--case-insensitive", action="store_true")
    parser.add_argument(
        "--profile-sift", action="store_true", help="run sift under cProfile, print hot spots"
    )
    parser.add_argument("--no-cached-peer", action="store_true", help="skip the cached brute-force peer")
    parser.add_argument("--repeat", type=int, default=1, help="run sift N times, keep its fastest run")
    parser.add_argument(
        "--sift", help="command that runs the sift CLI (default: `sift`, else python -m sift.pipelines.cli)"
    )
    args, extra = parser.parse_known_args(argv)
    lake = Path(args.lake)
    if not lake.is_dir():
        print(
            f"error: lake {lake} is not a directory (build one with bench/contain_lake.py)", file=sys.stderr
        )
        return 2
    out = Path(args.output) if args.output else Path(f"{lake}.bench")
    result = run_bench(
        lake,
        out,
        engine=args.engine,
        case_insensitive=args.case_insensitive,
        sift_cmd=args.sift.split() if args.sift else None,
        extra_sift_args=extra,
        with_cached_peer=not args.no_cached_peer,
        profile_sift=args.profile_sift,
        repeat=args.repeat,
    )
    json_path = Path(args.json) if args.json else out / "contain_bench.json"
    json_path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(report(result))
    if result["sift"].get("profile_top"):
        print(result["sift"]["profile_top"])
    print(f"results: {json_path}")
    return 0 if "error" not in result else 1


if __name__ == "__main__":
    raise SystemExit(main())
