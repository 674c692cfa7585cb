"""R2D2 side worker (dedup/containment/side.py): a run that reads half of the metadata and draws the graph in a
spawned worker process writes the same files, byte for byte, as a run on one process; a worker that cannot run
the work falls back to doing it in the caller."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_contain_core import build_lake

from sift.dedup.containment import api as run_module
from sift.dedup.containment.api import run_contain
from sift.dedup.containment.config import ContainConfig
from sift.dedup.containment.graph import read_metadata
from sift.dedup.containment.side import call, side_worker, using
from sift.pipelines.core.lake.tables import discover_tables

OUTPUTS = (
    "containment.parquet",
    "deletion_plan.parquet",
    "recipes.parquet",
    "table_statistics.parquet",
    "skipped.parquet",
    "containment_graph.png",
)


@pytest.fixture(scope="module")
def lake(tmp_path_factory, real_docs) -> Path:
    root = tmp_path_factory.mktemp("side_lake")
    build_lake(root, real_docs)
    (root / "broken.parquet").write_bytes(b"PAR1 not really parquet")
    return root


def test_metadata_read_on_two_processes_equals_one(lake):
    refs, _ = discover_tables(lake)
    alone = read_metadata(refs)
    with side_worker() as pool, using(pool):
        assert pool is not None
        both = read_metadata(refs)
    assert [r.name for r in both[0]] == [r.name for r in alone[0]]
    assert [(s.index, s.name, s.schema, [c.key for c in s.columns]) for s in both[1]] == [
        (s.index, s.name, s.schema, [c.key for c in s.columns]) for s in alone[1]
    ]
    assert both[2] == alone[2]  # statistics
    assert both[3] == alone[3] and any(p["table"] == "broken" for p in both[3])


def test_run_with_side_worker_writes_identical_files(lake, tmp_path, monkeypatch):
    refs, problems = discover_tables(lake)
    run_contain(refs, str(tmp_path / "one"), ContainConfig(), problems=problems)
    monkeypatch.setattr(run_module, "SIDE_MIN_TABLES", 1)  # the test lake is small: use the worker anyway
    with side_worker() as pool, using(pool):
        stats = run_contain(refs, str(tmp_path / "two"), ContainConfig(), problems=problems)
    assert stats["graph"]["nodes"] > 0
    for name in OUTPUTS:
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes(), name


def test_unusable_worker_falls_back_to_the_caller():
    with side_worker() as pool:
        assert call(pool, sum, [1, 2, 3])() == 6
    # the pool is shut down now: submitting fails, and the work runs here instead
    assert call(pool, sum, [4, 5])() == 9
    assert call(None, max, [4, 5])() == 5
