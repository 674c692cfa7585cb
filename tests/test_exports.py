"""The export writer (pipelines/core/export.py): Parquet and JSONL.zst shards of bounded size with a manifest whose
sizes and SHA-256 match the files, readable as they are by `datasets`, Polars, `pyarrow.dataset` and Spark; the
same bytes run to run; published by a symlink swap, so a reader never sees half an export (checked by killing an
export at each step and by reading while exports are published)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sift.pipelines.core.export import (
    ShardLimits,
    cut_shards,
    export_table,
    json_lines,
    read_manifest,
    verify,
)

LIMITS = ShardLimits(max_rows=70, max_bytes=16_000)


def _table(n: int = 300, seed: int = 0) -> pa.Table:
    """Documents with texts of varied length (some rows far above the average), a nullable and a nested column."""
    texts = [f"doc {i} " + "lorem ipsum é " * ((i * 37 + seed) % 120) for i in range(n)]
    texts[5] = "x" * 20_000  # one row above max_bytes: a shard of its own
    return pa.table(
        {
            "id": [f"d{i:04d}" for i in range(n)],
            "source": [["python_docs", "package_docs", "stdlib"][i % 3] for i in range(n)],
            "text": texts,
            "score": [None if i % 7 == 0 else i / 10 for i in range(n)],
            "tags": [[f"t{i % 4}"] for i in range(n)],
        }
    )


def _shards(out: Path, fmt: str) -> list[str]:
    return [str(out / "current" / e["path"]) for e in read_manifest(out)["shards"][fmt]]


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pa.Table]:
    out = tmp_path_factory.mktemp("export") / "curated"
    table = _table()
    export_table(table, out, "v1", LIMITS, manifest={"run_id": "r1", "removed": {"dedup_removed": 3}})
    return out, table


def test_cut_shards_bounds_rows_and_bytes() -> None:
    limits = ShardLimits(max_rows=3, max_bytes=10)
    assert cut_shards([4, 4, 4, 1, 1, 1, 1, 20, 2], limits) == [(0, 2), (2, 3), (5, 2), (7, 1), (8, 1)]
    assert cut_shards([], limits) == [(0, 0)]  # an empty table still has one (empty) shard with the schema
    with pytest.raises(ValueError, match="positive"):
        ShardLimits(max_rows=0)


def test_manifest_matches_the_shards_and_the_shards_are_bounded(exported: tuple[Path, pa.Table]) -> None:
    out, table = exported
    manifest = read_manifest(out)
    assert (out / "current").is_symlink() and os.readlink(out / "current") == "versions/v1"
    assert manifest["rows"] == table.num_rows and manifest["run_id"] == "r1"
    assert manifest["removed"] == {"dedup_removed": 3}
    assert [f["name"] for f in manifest["schema"]] == table.column_names
    assert manifest["limits"]["max_rows"] == 70
    assert verify(out) == []
    lines = json_lines(table)
    start = 0
    for pq_entry, js_entry in zip(
        manifest["shards"]["parquet"], manifest["shards"]["jsonl.zst"], strict=True
    ):
        for e in (pq_entry, js_entry):
            path = out / "current" / e["path"]
            data = path.read_bytes()
            assert e["bytes"] == len(data) and e["sha256"] == hashlib.sha256(data).hexdigest()
        rows = pq_entry["rows"]
        assert rows == js_entry["rows"] and 1 <= rows <= LIMITS.max_rows
        data_bytes = sum(len(line) for line in lines[start : start + rows])
        assert pq_entry["data_bytes"] == data_bytes
        assert data_bytes <= LIMITS.max_bytes or rows == 1  # a single oversized row is a shard of its own
        # the Parquet shard and the JSONL shard hold the same rows, in order
        assert pq.read_table(out / "current" / pq_entry["path"]).equals(table.slice(start, rows))
        start += rows
    assert start == table.num_rows
    assert len(manifest["shards"]["parquet"]) > table.num_rows // LIMITS.max_rows  # bytes cut some shards
    # a changed byte is caught
    victim = out / "current" / manifest["shards"]["jsonl.zst"][0]["path"]
    original = victim.read_bytes()
    try:
        victim.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
        assert verify(out) == [manifest["shards"]["jsonl.zst"][0]["path"]]
    finally:
        victim.write_bytes(original)


def test_same_bytes_run_to_run(tmp_path: Path) -> None:
    table = _table()
    export_table(table, tmp_path / "a", "x1", LIMITS)
    export_table(table, tmp_path / "b", "x2", LIMITS)
    a, b = read_manifest(tmp_path / "a"), read_manifest(tmp_path / "b")
    assert a["shards"] == b["shards"]  # paths, rows, bytes and SHA-256 of every shard


def test_pyarrow_dataset_and_polars_read_the_shards(exported: tuple[Path, pa.Table]) -> None:
    import polars as pl
    import pyarrow.dataset as ds

    out, table = exported
    by_id = table.sort_by("id")
    assert ds.dataset(_shards(out, "parquet"), format="parquet").to_table().sort_by("id").equals(by_id)
    assert ds.dataset(str(out / "current" / "parquet"), format="parquet").count_rows() == table.num_rows

    scanned = pl.scan_parquet(str(out / "current" / "parquet" / "*.parquet")).collect()
    assert scanned.sort("id").equals(pl.from_arrow(by_id))
    frames = [pl.read_ndjson(p) for p in _shards(out, "jsonl.zst")]  # .zst read as it is
    jsonl = pl.concat(frames).sort("id")
    assert jsonl["id"].to_list() == by_id.column("id").to_pylist()
    assert jsonl["text"].to_list() == by_id.column("text").to_pylist()
    assert jsonl["tags"].to_list() == by_id.column("tags").to_pylist()
    assert jsonl["score"].to_list() == by_id.column("score").to_pylist()


def test_datasets_loads_both_formats_offline(
    exported: tuple[Path, pa.Table], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    import datasets

    out, table = exported
    cache = str(tmp_path / "cache")
    parquet = datasets.load_dataset(
        "parquet", data_files=_shards(out, "parquet"), split="train", cache_dir=cache
    )
    jsonl = datasets.load_dataset(
        "json", data_files=_shards(out, "jsonl.zst"), split="train", cache_dir=cache
    )
    for loaded in (parquet, jsonl):
        assert loaded.num_rows == table.num_rows
        assert loaded["id"] == table.column("id").to_pylist()  # shard order is row order
        assert loaded["text"] == table.column("text").to_pylist()


@pytest.mark.slow
@pytest.mark.spark
def test_spark_reads_the_parquet_and_the_jsonl_zst_shards(exported: tuple[Path, pa.Table], spark) -> None:
    out, table = exported
    parquet = spark.read.parquet(*_shards(out, "parquet"))
    assert parquet.count() == table.num_rows
    rows = {r["id"]: r["text"] for r in parquet.select("id", "text").collect()}
    assert rows == dict(zip(table.column("id").to_pylist(), table.column("text").to_pylist(), strict=True))
    jsonl = spark.read.json(_shards(out, "jsonl.zst"))  # the .zst extension picks Hadoop's zstd codec
    assert jsonl.count() == table.num_rows
    assert sorted(r["id"] for r in jsonl.select("id").collect()) == table.column("id").to_pylist()


def test_a_new_export_replaces_the_old_one_and_keeps_one_previous(tmp_path: Path) -> None:
    out = tmp_path / "curated"
    for n, name in enumerate(["v1", "v2", "v3"]):
        export_table(_table(50 + n), out, name, LIMITS)
        assert read_manifest(out)["rows"] == 50 + n and verify(out) == []
    assert sorted(p.name for p in (out / "versions").iterdir()) == ["v2", "v3"]
    with pytest.raises(FileExistsError):
        export_table(_table(10), out, "v3", LIMITS)  # the current version is never rewritten in place
    assert read_manifest(out)["rows"] == 52 and verify(out) == []


SCRIPT = """
import sys
import pyarrow as pa
from sift.pipelines.core.export import ShardLimits, export_table
n = int(sys.argv[3])
table = pa.table({"id": [f"d{i}" for i in range(n)], "text": ["t" * (i % 50) for i in range(n)]})
export_table(table, sys.argv[1], sys.argv[2], ShardLimits(max_rows=7, max_bytes=300))
"""


@pytest.mark.parametrize("kill_at", ["versions/v2", "current"])
def test_an_export_killed_midway_leaves_the_previous_one_current(tmp_path: Path, kill_at: str) -> None:
    out = tmp_path / "curated"

    def export(name: str, rows: int, kill: str | None = None) -> int:
        env = {**os.environ, **({"SIFT_TEST_KILL_AT": kill} if kill else {})}
        cmd = [sys.executable, "-c", SCRIPT, str(out), name, str(rows)]
        return subprocess.run(cmd, env=env, check=False, timeout=120).returncode

    assert export("v1", 40) == 0
    assert export("v2", 60, kill=kill_at) == -9  # SIGKILLed after writing every shard, before publishing
    assert os.readlink(out / "current") == "versions/v1"
    assert read_manifest(out)["rows"] == 40 and verify(out) == []
    assert export("v3", 80) == 0  # the next export clears what the killed one left
    assert read_manifest(out)["rows"] == 80 and verify(out) == []
    assert not [p for p in (out / "versions").iterdir() if p.name.startswith(".")]
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


def test_readers_never_see_a_partial_export(tmp_path: Path) -> None:
    """A reader resolving `current` over and over while exports are published always finds a whole version:
    the manifest and every shard it names, with matching checksums."""
    out = tmp_path / "curated"
    export_table(_table(40), out, "v0", LIMITS)
    done = threading.Event()
    seen: list[int] = []
    errors: list[str] = []

    def reader() -> None:
        while not done.is_set():
            folder = (out / "current").resolve()  # a reader pins the version it resolved
            try:
                manifest = json.loads((folder / "manifest.json").read_text())
                for e in manifest["shards"]["parquet"] + manifest["shards"]["jsonl.zst"]:
                    data = (folder / e["path"]).read_bytes()
                    if hashlib.sha256(data).hexdigest() != e["sha256"]:
                        errors.append(f"{folder.name}/{e['path']}: checksum")
                seen.append(manifest["rows"])
            except FileNotFoundError as exc:  # only when the version was removed two exports later
                if (out / "versions" / folder.name).exists():
                    errors.append(str(exc))

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for n in range(1, 12):
            export_table(_table(40 + n), out, f"v{n}", LIMITS)
    finally:
        done.set()
        thread.join()
    assert not errors
    assert seen and set(seen) <= set(range(40, 52))
