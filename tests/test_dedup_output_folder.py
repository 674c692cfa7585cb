"""Issue 9 item 10: one dedup run at a time per output folder; a run never leaves another run's outputs or its own
temporary files beside its work.

- A second run into a folder another run is writing refuses with one line (exit 2 from `sift dedup`) and the first
  run ends with the same bytes as if it had been alone.
- A run with other options removes the previous run's outputs before it writes anything, so a run that fails or is
  killed leaves no stale `kept.parquet` beside its work.
- `*.tmp` files a killed run left behind are removed when the next run starts.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sift import dedup
from sift.dedup import DedupConfig

ROOT = Path(__file__).resolve().parents[1]
OUTPUTS = ("kept.parquet", "removed.parquet", "clusters.parquet", "quarantine.parquet", "stats.json", "report.md",
           "cluster_sizes.png", "timings.json")  # fmt: skip
COMPARED = OUTPUTS[:-1]  # timings.json differs between runs

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

dedup.run(batches(), DedupConfig(batch_rows=40, seed=int(sys.argv[4])), sys.argv[2], input_fingerprint="corpus-v1")
"""


def _files(out: Path) -> dict[str, bytes]:
    return {name: (out / name).read_bytes() for name in COMPARED}


def _script(tmp_path: Path) -> Path:
    script = tmp_path / "slow_run.py"
    script.write_text(SLOW_RUN)
    return script


def _start(script: Path, corpus: Path, out: Path, delay: float, seed: int = 0) -> subprocess.Popen[str]:
    args = [sys.executable, str(script), str(corpus), str(out), str(delay), str(seed)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        args, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _wait_for_facts(proc: subprocess.Popen[str], out: Path, count: int) -> None:
    deadline = time.monotonic() + 240
    while len(list((out / "_work" / "facts").glob("*.done"))) < count:
        assert proc.poll() is None, f"the run ended too early: {proc.communicate()[1][-2000:]}"
        assert time.monotonic() < deadline
        time.sleep(0.01)


@pytest.fixture()
def corpus(real_docs: pa.Table, tmp_path: Path) -> Path:
    path = tmp_path / "corpus.parquet"
    pq.write_table(real_docs.slice(0, 1200), path)
    return path


@pytest.mark.parametrize("second", ["same-options", "other-options-cli"])
def test_second_concurrent_run_into_one_folder_is_refused(
    corpus: Path, tmp_path: Path, sift_cli, second: str
) -> None:
    script = _script(tmp_path)
    reference = tmp_path / "reference"
    proc = _start(script, corpus, reference, 0.0)
    assert proc.wait(timeout=300) == 0, proc.communicate()[1][-2000:]

    out = tmp_path / "out"
    first = _start(script, corpus, out, 0.08)
    _wait_for_facts(first, out, 3)
    if second == "same-options":
        other = _start(script, corpus, out, 0.0)
        stderr = other.communicate(timeout=300)[1]
        rc = other.returncode
        assert rc != 0 and "OutputBusyError" in stderr and "another sift run" in stderr, stderr[-2000:]
    else:
        done = sift_cli("dedup", str(corpus), "--output", str(out), "--seed", "7")
        rc, stderr = done.returncode, done.stderr
        assert rc == 2, stderr[-2000:]
        lines = stderr.strip().splitlines()
        assert len(lines) == 1 and "another sift run" in lines[0] and str(out) in lines[0], stderr
    assert first.poll() is None, "the first run should still be running"
    assert first.wait(timeout=300) == 0, first.communicate()[1][-2000:]
    assert _files(out) == _files(reference)
    assert sorted(p.name for p in out.iterdir()) == sorted(OUTPUTS)


def test_run_with_other_options_removes_previous_outputs_before_writing(
    real_docs: pa.Table, tmp_path: Path
) -> None:
    docs = real_docs.slice(0, 600)
    out = tmp_path / "out"
    dedup.run(docs, DedupConfig(batch_rows=100, seed=1), out, input_fingerprint="x")
    assert all((out / name).exists() for name in OUTPUTS)

    def failing() -> Iterator[pa.Table]:
        yield docs.slice(0, 100)
        yield docs.slice(100, 100)
        raise OSError("the input store went away")

    with pytest.raises(OSError, match="went away"):
        dedup.run(failing(), DedupConfig(batch_rows=100, seed=2), out, input_fingerprint="x")
    # The failed run's work is there; the first run's outputs are not (they would pass for this run's).
    assert (out / "_work" / "input" / "part-00001.arrow.done").exists()
    assert [name for name in OUTPUTS if (out / name).exists()] == []


def test_tmp_files_of_a_killed_run_are_removed_on_restart(real_docs: pa.Table, tmp_path: Path) -> None:
    docs = real_docs.slice(0, 600)
    out = tmp_path / "out"
    cfg = DedupConfig(batch_rows=100, keep_work=True)
    dedup.run(docs, cfg, out, input_fingerprint="x")
    reference = _files(out)
    # What a run killed while writing leaves behind: temporary siblings named with its pid.
    leftovers = [
        out / ".kept.parquet.999999.tmp",
        out / ".stats.json.999999.tmp",
        out / "_work" / ".candidates.parquet.999999.tmp",
        out / "_work" / "facts" / ".part-00002.arrow.999999.tmp",
        out / "_work" / "input" / ".part-00004.arrow.999999.tmp",
    ]
    for path in leftovers:
        path.write_bytes(b"half a file")
    dedup.run(docs, cfg, out, input_fingerprint="x")
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*.tmp")) == []
    assert _files(out) == reference
