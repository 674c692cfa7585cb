"""Issue 3 (SlimPajama-DC dedup): a run killed with SIGKILL resumes to byte-identical output; the `sift dedup` CLI
contract (exit codes, outputs, record accounting).

Issue 9: the run is killed in every phase, not only while the facts are computed: the test-only hook
SIFT_TEST_KILL_AT=<file> (pipelines/core/atomic.py, kill_point) SIGKILLs `sift dedup` just before that file of the run is put in
place: an input shard, a facts shard's marker, the candidate and verified edge tables and their markers, the end
of the components phase and each output file, on the Polars engine and on local Spark.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import sift_command
from test_dedup_spark import assert_same_content

ROOT = Path(__file__).resolve().parents[1]
OUTPUTS = ("kept.parquet", "removed.parquet", "clusters.parquet", "quarantine.parquet", "stats.json", "report.md",
           "cluster_sizes.png")  # fmt: skip
# Kill points of the Polars engine in the order a run reaches them (batches of 200 documents: 6 input shards).
POLARS_KILL_POINTS = (
    "input/part-00002.arrow",  # spilling the input (an input shard written, not yet renamed into place)
    "facts/part-00002.arrow.done",  # facts: a shard's facts in place, its marker not
    "input/_SUCCESS",  # every input shard spilled, the input not yet marked complete
    "candidates.parquet",  # LSH candidate edges computed, not in place
    "candidates.parquet.done",  # candidate edges in place, not marked
    "edges.parquet",  # verification: exact Jaccard computed, not in place
    "edges.parquet.done",  # verified edges in place, not marked
    "cluster_sizes.png",  # components and survivors decided, no output written yet
    "kept.parquet",
    "removed.parquet",
    "clusters.parquet",
    "quarantine.parquet",
    "stats.json",
    "report.md",
    "timings.json",  # every output in place, the work folder not yet removed
)
# Kill points of the Spark engine (each Spark work table is a folder written by Spark, then marked; each output
# table a folder of part files put in place whole).
SPARK_KILL_POINTS = (
    "spark/input.done",
    "spark/facts.done",
    "spark/candidates.done",
    "spark/edges.done",
    "spark/survivors.done",
    "spark/decisions.done",
    "kept.parquet",
    "stats.json",
)

# The input arrives slowly (as from a remote store), one 40-document batch at a time.
SLOW_RUN = """
import sys, time
import pyarrow.parquet as pq
from sift import dedup
from sift.dedup import DedupConfig

table = pq.read_table(sys.argv[1])

def batches():
    for b in table.to_batches(max_chunksize=40):
        time.sleep(float(sys.argv[3]))
        yield b

cfg = DedupConfig(batch_rows=40, keep_work=len(sys.argv) > 4)
dedup.run(batches(), cfg, sys.argv[2], input_fingerprint="corpus-v1")
"""


def _pythonpath() -> str:
    """The subprocess's PYTHONPATH: the caller's (where it names the code under test) and the repository root."""
    return os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), str(ROOT)) if p)


def _files(out: Path) -> dict[str, bytes]:
    return {name: (out / name).read_bytes() for name in OUTPUTS}


def _run(script: Path, corpus: Path, out: Path, delay: float, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": _pythonpath()}
    args = [sys.executable, str(script), str(corpus), str(out), str(delay), *extra]
    return subprocess.Popen(args, env=env, cwd=ROOT)


def test_sigkilled_run_resumes_to_byte_identical_output(real_docs: pa.Table, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.parquet"
    pq.write_table(real_docs.slice(0, 1200), corpus)
    script = tmp_path / "slow_run.py"
    script.write_text(SLOW_RUN)

    reference = tmp_path / "reference"
    assert _run(script, corpus, reference, 0.0).wait(timeout=300) == 0

    out = tmp_path / "killed"
    proc = _run(script, corpus, out, 0.05)
    markers = out / "_work" / "facts"
    deadline = time.monotonic() + 240
    while len(list(markers.glob("*.done"))) < 8:
        assert proc.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    finished = sorted(p.name for p in markers.glob("*.done"))
    assert 8 <= len(finished) < 30 and not (out / "stats.json").exists()
    before = {p: (markers / p.replace(".done", "")).stat().st_mtime_ns for p in finished}

    assert _run(script, corpus, out, 0.0, "keep-work").wait(timeout=300) == 0
    assert _files(out) == _files(reference)
    # The restart reused the shards finished before the kill instead of recomputing them.
    after = {p: (markers / p.replace(".done", "")).stat().st_mtime_ns for p in finished}
    assert after == before


def _sift_killed_at(point: str | None, *args: str) -> subprocess.CompletedProcess[str]:
    """`sift ARGS...` with the kill hook set to `point` (None: no kill)."""
    env = {**os.environ, "PYTHONPATH": _pythonpath()}
    env.pop("SIFT_TEST_KILL_AT", None)
    if point is not None:
        env["SIFT_TEST_KILL_AT"] = point
    return subprocess.run(
        [*sift_command(), *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=900, check=False
    )


@pytest.fixture(scope="module")
def kill_corpus(real_docs: pa.Table, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(corpus, config, reference output): 1,200 real documents, batches of 200, one uninterrupted Polars run."""
    folder = tmp_path_factory.mktemp("kill-corpus")
    corpus, config = folder / "corpus.parquet", folder / "sift.toml"
    pq.write_table(real_docs.slice(0, 1200), corpus)
    config.write_text("[dedup]\nbatch_rows = 200\n")
    reference = folder / "reference"
    done = _sift_killed_at(None, "dedup", str(corpus), "--output", str(reference), "--config", str(config))
    assert done.returncode == 0, done.stderr[-3000:]
    stats = json.loads((reference / "stats.json").read_text())
    # Every phase has work to do: several shards, candidate edges, verified near duplicates, clusters.
    assert stats["phases"]["verified_edges"] > 0 and stats["removed_by_reason"]["near_duplicate"] > 0
    return corpus, config, reference


def _assert_clean_resume(out: Path, reference: Path) -> None:
    assert _files(out) == _files(reference)
    assert sorted(p.name for p in out.iterdir()) == sorted([*OUTPUTS, "timings.json"])


@pytest.mark.parametrize("point", POLARS_KILL_POINTS)
def test_cli_killed_in_any_phase_resumes_to_byte_identical_output(
    kill_corpus: tuple[Path, Path, Path], tmp_path: Path, point: str
) -> None:
    corpus, config, reference = kill_corpus
    out = tmp_path / "out"
    args = ("dedup", str(corpus), "--output", str(out), "--config", str(config))
    killed = _sift_killed_at(point, *args)
    assert killed.returncode == -signal.SIGKILL, f"not killed at {point}: {killed.stderr[-3000:]}"
    assert not (out / "_work" / point).exists() and not (out / point).exists()
    resumed = _sift_killed_at(None, *args)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    _assert_clean_resume(out, reference)


@pytest.mark.slow
@pytest.mark.spark
def test_cli_spark_killed_in_every_phase_resumes_to_byte_identical_output(
    kill_corpus: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    """Local Spark through `sift dedup --engine spark`, killed at each phase in turn: every run resumes the work
    the run before it left and is killed at the next phase, and the last run ends with the content of the
    uninterrupted run (Polars; both engines decide the same). A JVM per run, so one chain, not one pair of runs
    per phase."""
    corpus, config, reference = kill_corpus
    out = tmp_path / "out"
    args = ("dedup", str(corpus), "--output", str(out), "--config", str(config), "--engine", "spark",
            "--spark-master", "local[2]")  # fmt: skip
    for point in SPARK_KILL_POINTS:
        killed = _sift_killed_at(point, *args)
        assert killed.returncode == -signal.SIGKILL, f"not killed at {point}: {killed.stderr[-3000:]}"
        assert not (out / "_work" / point).exists() and not (out / point).exists()
    resumed = _sift_killed_at(None, *args)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert_same_content(out, reference)
    assert sorted(p.name for p in out.iterdir()) == sorted([*OUTPUTS, "timings.json"])


def test_resume_reuses_finished_shards(real_docs: pa.Table, tmp_path: Path) -> None:
    from sift import dedup
    from sift.dedup import DedupConfig

    docs = real_docs.slice(0, 600)
    cfg = DedupConfig(batch_rows=100, keep_work=True)
    dedup.run(docs, cfg, tmp_path / "a", input_fingerprint="x")
    work = tmp_path / "a" / "_work"
    first = {p.name: p.stat().st_mtime_ns for p in (work / "facts").glob("*.arrow")}
    # Drop the later phases' markers and one shard's: only that shard and the later phases are redone.
    for name in ("candidates.parquet.done", "edges.parquet.done", "facts/part-00003.arrow.done"):
        (work / name).unlink()
    reference = _files(tmp_path / "a")
    dedup.run(docs, cfg, tmp_path / "a", input_fingerprint="x")
    again = {p.name: p.stat().st_mtime_ns for p in (work / "facts").glob("*.arrow")}
    assert {k for k in first if first[k] != again[k]} == {"part-00003.arrow"}
    assert _files(tmp_path / "a") == reference
    # A different input fingerprint starts over.
    dedup.run(docs, cfg, tmp_path / "a", input_fingerprint="y")
    assert all(p.stat().st_mtime_ns != first[p.name] for p in (work / "facts").glob("*.arrow"))


def test_cli_outputs_exit_codes_and_accounting(real_docs: pa.Table, tmp_path: Path, sift_cli) -> None:
    rows = real_docs.slice(0, 400).to_pylist()
    # A document long enough to be kept, copied into the preferred source "mirror".
    first = next(r for r in rows if len(r["text"]) >= 1000)
    lines = [
        json.dumps({"doc": r["id"], "body": r["text"], "origin": r["source"], "extra": i})
        for i, r in enumerate(rows)
    ]
    lines += [
        json.dumps({"doc": first["id"] + "#copy", "body": first["text"], "origin": "mirror", "extra": -1})
    ]
    lines.insert(10, "{not json")
    lines.insert(20, json.dumps({"doc": "no-text", "origin": "x"}))
    src = tmp_path / "docs.jsonl"
    src.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    proc = sift_cli("dedup", str(src), "--output", str(out), "--id-field", "doc", "--text-field", "body",
                    "--source-field", "origin", "--source-priority", "mirror", "--seed", "3")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    for name in OUTPUTS:
        assert (out / name).exists(), name
    kept, removed = pq.read_table(out / "kept.parquet"), pq.read_table(out / "removed.parquet")
    quarantine = pq.read_table(out / "quarantine.parquet")
    assert quarantine.num_rows == 2
    assert kept.num_rows + removed.num_rows + quarantine.num_rows == len(lines)
    assert "extra" in kept.column_names and kept.column("id").null_count == 0
    assert removed.schema.names == ["id", "source", "reason", "duplicate_of", "similarity"]
    # The mirror copy is preferred by --source-priority; the original points at it.
    rec = [r for r in removed.to_pylist() if r["id"] == first["id"]]
    assert len(rec) == 1
    assert rec[0]["duplicate_of"] == first["id"] + "#copy" and rec[0]["reason"] == "exact_duplicate"
    stats = json.loads((out / "stats.json").read_text())
    assert stats["rows_in"] == len(lines) and stats["config"]["seed"] == 3

    assert sift_cli("dedup", str(tmp_path / "missing.jsonl"), "--output", str(out)).returncode == 2
    assert sift_cli("dedup", str(src), "--output", str(out), "--mode", "fast").returncode == 2
    assert sift_cli("dedup", str(src), "--output", str(out), "--threshold", "1.5").returncode == 2
    assert sift_cli("dedup", str(src)).returncode == 2


@pytest.mark.slow
def test_cli_slimpajama_local_mode_runs(real_docs: pa.Table, tmp_path: Path, sift_cli) -> None:
    src = tmp_path / "docs.parquet"
    pq.write_table(real_docs, src)
    proc = sift_cli(
        "dedup", str(src), "--output", str(tmp_path / "o"), "--mode", "slimpajama", "--scope", "local"
    )
    assert proc.returncode == 0, proc.stderr
    stats = json.loads((tmp_path / "o" / "stats.json").read_text())
    assert stats["banding"]["bands"] == 9 and stats["config"]["scope"] == "local"
    assert stats["kept"] + stats["removed"] + stats["quarantined"] == stats["rows_in"] == real_docs.num_rows
