"""Dedup with a side worker (dedup/side.py): the report drawn in a spawned process gives the same files, byte for
byte, as a run in one process; the CLI starts the worker only for large local inputs; work shared with the
worker comes back whole and in order."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pyarrow as pa

import dedup
from dedup import DedupConfig
from dedup.outputs import OUTPUT_FILES
from dedup.side import REPORT_MODULES, share, side_worker
from pipelines.cli_dedup import SIDE_MIN_BYTES, _input_bytes


def test_report_drawn_in_a_side_worker_is_byte_identical(real_docs: pa.Table, tmp_path: Path) -> None:
    docs = real_docs.slice(0, 800)
    cfg = DedupConfig(batch_rows=300)
    dedup.run(docs, cfg, tmp_path / "one")
    with side_worker(True, REPORT_MODULES) as pool:
        assert pool is not None
        dedup.run(docs, cfg, tmp_path / "two", pool=pool)
    for name in OUTPUT_FILES:
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes(), name


def test_side_worker_only_for_large_local_inputs(tmp_path: Path) -> None:
    small = tmp_path / "small.jsonl"
    small.write_text('{"id": "a", "text": "x"}\n')
    assert _input_bytes(str(small)) < SIDE_MIN_BYTES
    folder = tmp_path / "parts"
    folder.mkdir()
    for i in range(3):
        (folder / f"p{i}.jsonl").write_bytes(b"x" * (SIDE_MIN_BYTES // 2))
    assert _input_bytes(str(folder)) >= SIDE_MIN_BYTES
    assert _input_bytes("s3://bucket/corpus/") >= SIDE_MIN_BYTES


def _tagged(items: list[int]) -> list[tuple[int, int]]:
    time.sleep(0.02 * len(items))
    return [(x * x, os.getpid()) for x in items]


def test_shared_work_comes_back_whole_and_in_order() -> None:
    items = list(range(200))
    with side_worker(True) as pool:
        assert pool is not None
        got = share(pool, _tagged, items, chunks=20)
    assert [v for v, _pid in got] == [x * x for x in items]
    pids = {pid for _v, pid in got}
    assert os.getpid() in pids and len(pids) == 2  # both processes took chunks
    # without a worker, or with one that is shut down, the caller does it all (with `local` when given)
    assert share(None, _tagged, items[:5]) == [(x * x, os.getpid()) for x in items[:5]]
    local = share(pool, _tagged, items[:30], local=lambda xs: [(-x, 0) for x in xs])
    assert local == [(-x, 0) for x in items[:30]]
