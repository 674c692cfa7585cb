"""Compiled kernels (issue 11, "compile once, not per process"): what a fresh installation costs, the first
`sift dedup` after it against the second, and the first `mapInArrow` task on a fresh Spark executor worker.

    .venv/bin/python bench/compile_kernels.py [--mb 2] [--site DIR] [--no-compile] [--spark] [--json PATH]

Sift's packages are copied to a temporary folder (a fresh installation: new paths, no caches), or `--site` names a
folder holding `sift/` to use as it is (an older checkout, to measure the behaviour before). Then:
1. `python -m sift.pipelines.compile`, the install step (skipped with `--no-compile` or when the site has none);
2. `sift dedup` on a JSONL of real documents (`--mb` MB, from the demo corpus) twice, each with the same empty
   `NUMBA_CACHE_DIR`: first and second wall time;
3. with `--spark`: a fresh local Spark session runs one `mapInArrow` task (facts + verification kernels on 50
   documents) in its fresh Python worker, with the installation's kernel cache present and with it absent (an empty
   `SIFT_KERNEL_CACHE` and `NUMBA_CACHE_DIR`): the task's own time inside the worker and the action's wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("assets", "dedup", "pipelines", "sampling", "selection")

_TASK = """
import os, sys, time
import pyarrow as pa
from pyspark.sql import SparkSession

def task(batches):
    start = time.perf_counter()
    from sift.dedup import kernels
    from sift.dedup.config import DedupConfig

    cfg = DedupConfig()
    for batch in batches:
        if batch.num_rows:
            kernels.facts_batch(batch, cfg)
            t = batch.column("text")
            kernels.jaccard_pairs(kernels.normalise(t), kernels.normalise(t), ngram=cfg.ngram, word=False,
                                  seed=cfg.seed, threshold=cfg.threshold)
    yield pa.record_batch({"seconds": [time.perf_counter() - start]})

spark = SparkSession.builder.master("local[1]").config("spark.ui.enabled", "false").getOrCreate()
docs = spark.createDataFrame(
    [(i, f"d{i}", "s", f"document {i} of the first executor task, caf\\u00e9 " * 20) for i in range(50)],
    "_row long, id string, source string, text string",
).coalesce(1)
start = time.perf_counter()
inside = docs.mapInArrow(task, "seconds double").collect()[0].seconds
print(f"TASK {inside:.3f} {time.perf_counter() - start:.3f}")
spark.stop()
"""


def install(target: Path) -> Path:
    site = target / "site"
    for name in PACKAGES:
        shutil.copytree(
            ROOT / name, site / "sift" / name, ignore=shutil.ignore_patterns("__pycache__", "_kernel_cache")
        )
    return site


def corpus(path: Path, size: int) -> Path:
    from sift.pipelines.demo_corpus import real_documents

    written = 0
    with open(path, "w") as f:
        for row in real_documents().select(["id", "source", "text"]).to_pylist():
            line = json.dumps(row) + "\n"
            f.write(line)
            written += len(line.encode())
            if written >= size:
                break
    return path


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-3000:])
    return time.perf_counter() - start, proc.stdout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=float, default=2.0)
    ap.add_argument("--site", type=Path, default=None)
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--spark", action="store_true")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="sift-compile-bench-"))
    site = args.site or install(tmp)
    base = {k: v for k, v in os.environ.items() if k not in ("SIFT_KERNEL_CACHE", "NUMBA_CACHE_DIR")}
    env = {
        **base,
        "PYTHONPATH": str(site),
        "NUMBA_CACHE_DIR": str(tmp / "numba"),
        "PYSPARK_PYTHON": sys.executable,
    }
    result: dict[str, object] = {"site": str(site), "mb": args.mb}
    has_compile = (site / "sift" / "pipelines" / "compile.py").exists()
    if has_compile and not args.no_compile:
        secs, out = timed(
            [sys.executable, "-m", "sift.pipelines.compile"], {**env, "NUMBA_CACHE_DIR": str(tmp / "c")}
        )
        result["compile_s"] = round(secs, 2)
        result["compile_out"] = out.strip()
    docs = corpus(tmp / "docs.jsonl", int(args.mb * 1e6))
    dedup = [sys.executable, "-m", "sift.pipelines.cli", "dedup", str(docs), "--output"]
    result["first_s"] = round(timed([*dedup, str(tmp / "o1")], env)[0], 2)
    result["second_s"] = round(timed([*dedup, str(tmp / "o2")], env)[0], 2)
    if args.spark:
        for name, extra in (
            ("present", {}),
            ("absent", {"SIFT_KERNEL_CACHE": str(tmp / "empty-k"), "NUMBA_CACHE_DIR": str(tmp / "empty-n")}),
        ):
            _, out = timed([sys.executable, "-c", _TASK], {**env, **extra})
            task_s, action_s = out.split("TASK ")[1].split()
            result[f"executor_{name}_task_s"] = float(task_s)
            result[f"executor_{name}_action_s"] = float(action_s)
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
