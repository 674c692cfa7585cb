"""`sift compile` and the package-owned kernel cache (sift.pipelines.core.kernel_cache): the numba kernels are
compiled once per installation, and a fresh process (a first `sift dedup`, a Spark executor's Python worker) loads
them instead of compiling, also from a copy of the installation and with an empty NUMBA_CACHE_DIR."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sift.pipelines.core import kernel_cache

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("assets", "dedup", "pipelines", "sampling", "selection")

# A process that runs `sift ARGS` in-process and appends one line to $COMPILE_LOG for each numba compilation.
_COUNTING_SIFT = """
import os, sys
from numba.core import event

class Count(event.Listener):
    def on_start(self, ev):
        d = ev.data["dispatcher"]
        with open(os.environ["COMPILE_LOG"], "a") as f:
            f.write(f"{d.py_func.__module__}.{d.py_func.__qualname__}\\n")
    def on_end(self, ev):
        pass

event.register("numba:compile", Count())
from sift.pipelines.cli import main
sys.argv = ["sift", *sys.argv[1:]]
main()
"""


def _install(target: Path) -> Path:
    """A copy of Sift's packages under target/sift (new paths, new mtimes, no caches): a fresh installation."""
    site = target / "site"
    for name in PACKAGES:
        shutil.copytree(
            ROOT / name, site / "sift" / name, ignore=shutil.ignore_patterns("__pycache__", "_kernel_cache")
        )
    return site


def _env(site: Path, numba_cache: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("SIFT_KERNEL_CACHE", "NUMBA_CACHE_DIR")}
    env.update(PYTHONPATH=str(site), NUMBA_CACHE_DIR=str(numba_cache), **extra)
    return env


def _compile(site: Path, numba_cache: Path) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "sift.pipelines.compile"],
        env=_env(site, numba_cache), capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def _compiled_count(stdout: str) -> int:
    found = re.search(r"(\d+) compiled, (\d+) loaded", stdout)
    assert found, stdout
    return int(found.group(1))


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh installation with `sift compile` run once (its install step)."""
    site = _install(tmp_path_factory.mktemp("install"))
    _compile(site, tmp_path_factory.mktemp("numba-cache"))
    assert any((site / "sift" / "pipelines" / "core" / "_kernel_cache").rglob("*.nbc"))
    return site


def _jsonl(docs: pa.Table, path: Path, size: int) -> Path:
    """Real documents as JSONL, about `size` bytes."""
    written = 0
    with open(path, "w") as f:
        for row in docs.select(["id", "source", "text"]).to_pylist():
            line = json.dumps(row) + "\n"
            f.write(line)
            written += len(line.encode())
            if written >= size:
                break
    return path


def _run_counting(site: Path, numba_cache: Path, log: Path, *args: str) -> list[str]:
    log.write_text("")
    proc = subprocess.run(
        [sys.executable, "-c", _COUNTING_SIFT, *args],
        env=_env(site, numba_cache, COMPILE_LOG=str(log)), capture_output=True, text=True, timeout=600,
        check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return log.read_text().split()


def test_every_kernel_is_declared_through_the_package_cache() -> None:
    """No module calls numba.njit itself (its kernels would compile per process), and every module declaring
    kernels is in KERNEL_MODULES (whose contents stamp the cache)."""
    direct = [
        str(p.relative_to(ROOT))
        for name in PACKAGES
        for p in (ROOT / name).rglob("*.py")
        if re.search(r"\bnjit\(", p.read_text()) and p.name != "kernel_cache.py"
    ]
    assert direct == []
    declaring = {
        "sift." + ".".join(p.relative_to(ROOT).with_suffix("").parts)
        for name in PACKAGES
        for p in (ROOT / name).rglob("*.py")
        if "@kernel(" in p.read_text()
    }
    assert declaring == set(kernel_cache.KERNEL_MODULES)


def test_kernel_refuses_a_module_missing_from_the_stamp() -> None:
    def f(x):
        return x

    with pytest.raises(RuntimeError, match="KERNEL_MODULES"):
        kernel_cache.kernel()(f)


def test_numba_still_has_the_caching_internals_the_cache_uses() -> None:
    """Pins numba's behaviour: when an upgrade removes what kernel_cache builds on, this fails (and `sift compile`
    fails with the same message) instead of every process silently compiling again."""
    kernel_cache.check_numba()
    from sift.dedup.kernels import signatures

    assert isinstance(signatures._doc_facts._cache, kernel_cache.KernelCache)


def test_the_stamp_is_the_content_of_the_kernel_modules(tmp_path: Path) -> None:
    """A copy with new paths and mtimes has the same stamp (tested end to end below); an edit changes it."""
    site = tmp_path / "site"
    for name in ("pipelines", "dedup"):
        shutil.copytree(
            ROOT / name, site / "sift" / name, ignore=shutil.ignore_patterns("__pycache__", "_kernel*")
        )
    code = "from sift.pipelines.core import kernel_cache as k; print(k.source_stamp())"

    def stamp() -> str:
        env = {**os.environ, "PYTHONPATH": str(site)}
        return subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        ).stdout

    first = stamp()
    assert first.strip() == kernel_cache.source_stamp()
    jaccard = site / "sift" / "dedup" / "kernels" / "jaccard.py"
    jaccard.write_text(jaccard.read_text() + "\n# edited\n")
    assert stamp() != first


def test_an_unusable_package_folder_falls_back_to_numbas_own_cache(tmp_path: Path) -> None:
    """When the package folder cannot be written (here: it would be under a file), a kernel is compiled once and
    kept in numba's normal cache (`NUMBA_CACHE_DIR`), from which the next process loads it."""
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    env = {
        **os.environ,
        "SIFT_KERNEL_CACHE": str(blocker / "cache"),
        "NUMBA_CACHE_DIR": str(tmp_path / "numba"),
    }
    code = (
        "import numpy as np; from sift.dedup.kernels import survivors as s; "
        "s.connected_components(3, np.array([0]), np.array([2])); "
        "print(sum(s._union_find.stats.cache_misses.values()), sum(s._union_find.stats.cache_hits.values()))"
    )

    def run() -> str:
        proc = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        return proc.stdout.split()

    assert run() == ["1", "0"]  # compiled
    assert any((tmp_path / "numba").rglob("survivors._union_find-*.nbc"))
    assert run() == ["0", "1"]  # loaded from numba's cache


@pytest.mark.slow
def test_a_copied_installation_loads_every_kernel_without_compiling(installed: Path, tmp_path: Path) -> None:
    """The compiled cache travels with the installation (an image copy, a wheel built from it): moved to another
    path with new mtimes and an empty NUMBA_CACHE_DIR, `sift compile` finds every signature and compiles none."""
    copy = tmp_path / "copy"
    shutil.copytree(installed, copy)
    for p in copy.rglob("*.py"):
        p.touch()
    assert _compiled_count(_compile(copy, tmp_path / "numba")) == 0
    assert not any((tmp_path / "numba").rglob("*.nbc"))


@pytest.mark.slow
def test_after_compile_dedup_and_contain_compile_nothing(
    installed: Path, tmp_path: Path, real_docs: pa.Table
) -> None:
    """The compile step covers what the jobs call: `sift dedup` in both modes and scopes and `sift contain` on
    a table with long values (containment's numba hash) compile no kernel in a fresh process."""
    docs = _jsonl(real_docs, tmp_path / "docs.jsonl", 500_000)
    numba = tmp_path / "numba"
    log = tmp_path / "compiles.log"
    for i, opts in enumerate((["--mode", "verified"], ["--mode", "slimpajama"], ["--scope", "local"])):
        out = tmp_path / f"dedup{i}"
        assert _run_counting(installed, numba, log, "dedup", str(docs), "--output", str(out), *opts) == []
        assert (out / "kept.parquet").exists()
    lake = tmp_path / "lake" / "t"
    lake.mkdir(parents=True)
    long_text = [" ".join(["containment"] * 4000) + f" {i}" for i in range(8)]  # > 32 KB: the numba hash
    big = pa.table({"id": list(range(8)), "body": long_text})
    pq.write_table(big, lake / "big.parquet")
    pq.write_table(big.slice(2, 4), lake / "small.parquet")
    out = tmp_path / "contain"
    assert _run_counting(installed, numba, log, "contain", str(lake.parent), "--output", str(out)) == []
    assert pq.read_table(out / "containment.parquet").num_rows >= 1


_EXECUTOR_TASK = """
import os, sys
import pyarrow as pa
from pyspark.sql import SparkSession

def task(batches):
    from numba.core import event
    compiles = []

    class Count(event.Listener):
        def on_start(self, ev):
            d = ev.data["dispatcher"]
            compiles.append(f"{d.py_func.__module__}.{d.py_func.__qualname__}{ev.data['args']}")
        def on_end(self, ev):
            pass

    event.register("numba:compile", Count())
    from sift.dedup import kernels
    from sift.dedup.config import DedupConfig

    cfg = DedupConfig()
    for batch in batches:
        if batch.num_rows:
            facts = kernels.facts_batch(batch, cfg)
            text = batch.column("text")
            sim = kernels.jaccard_pairs(kernels.normalise(text), kernels.normalise(text), ngram=cfg.ngram,
                                        word=False, seed=cfg.seed, threshold=cfg.threshold)
            assert facts.num_rows == batch.num_rows and len(sim) == batch.num_rows
    yield pa.record_batch({"pid": [os.getpid()], "compiles": [";".join(compiles)]})

spark = SparkSession.builder.master("local[1]").config("spark.ui.enabled", "false").getOrCreate()
docs = spark.createDataFrame(
    [(i, f"d{i}", "s", f"the executor task {i} reads its kernels from the installation, caf\\u00e9")
     for i in range(50)],
    "_row long, id string, source string, text string",
).coalesce(1)
row = docs.mapInArrow(task, "pid long, compiles string").collect()[0]
print("EXECUTOR", row.pid, os.getpid(), "COMPILED", row.compiles)
spark.stop()
"""


@pytest.mark.slow
@pytest.mark.spark
def test_a_fresh_spark_executor_worker_loads_the_kernels(installed: Path, tmp_path: Path) -> None:
    """The first mapInArrow task of a fresh local Spark session's Python worker (another process than the
    driver) runs the facts and verification kernels without compiling any."""
    proc = subprocess.run(
        [sys.executable, "-c", _EXECUTOR_TASK],
        env=_env(installed, tmp_path / "numba", PYSPARK_PYTHON=sys.executable), capture_output=True, text=True,
        timeout=600, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = re.search(r"EXECUTOR (\d+) (\d+) COMPILED (.*)", proc.stdout)
    assert found, proc.stdout + proc.stderr[-2000:]
    assert found.group(1) != found.group(2)  # the task ran in a Python worker, not in the driver
    assert found.group(3).strip() == ""


def _timed_dedup(site: Path, numba_cache: Path, docs: Path, out: Path) -> float:
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "sift.pipelines.cli", "dedup", str(docs), "--output", str(out)],
        env=_env(site, numba_cache), capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return time.perf_counter() - start


@pytest.mark.slow
def test_first_dedup_after_install_is_at_most_3s_slower_than_the_second(
    installed: Path, tmp_path: Path, real_docs: pa.Table
) -> None:
    """Issue 11's acceptance line: after a fresh installation (with its `sift compile` step), the first `sift
    dedup` with an empty NUMBA_CACHE_DIR on a 2 MB input takes no more than 3 s longer than the second. The
    machine is shared, so the better of two fresh attempts counts."""
    docs = _jsonl(real_docs, tmp_path / "docs.jsonl", 2_000_000)
    assert docs.stat().st_size >= 1_900_000
    gaps = []
    for attempt in range(2):
        numba = tmp_path / f"numba{attempt}"
        first = _timed_dedup(installed, numba, docs, tmp_path / f"first{attempt}")
        second = _timed_dedup(installed, numba, docs, tmp_path / f"second{attempt}")
        gaps.append(first - second)
        if gaps[-1] <= 3.0:
            break
    assert min(gaps) <= 3.0, gaps
