"""The lake read on Spark (`read_documents_spark`): executors open and parse the files, and the documents and the
quarantine are those of the lake's own reader (`iter_documents`), repeated ids included; no per-record data is
collected to the driver (a run under a tiny `spark.driver.maxResultSize` still works)."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

BAD = [
    b'{"id": "1", "source": "web", "text": "a good document"}',
    b'{"id": "2", "text": "malformed because the quote never ends}',
    b'{"id": "3", "text": "invalid utf-8 \xc3\x28 here"}',
    b'{"id": "4", "source": "web"}',
    b"[1, 2]",
    b'{"id": " ", "text": "blank id"}',
    b"",
    b'{"id": "1", "source": "books", "text": "a repeated id", "k": {"deep": [1, 2]}}',
    b'{"id": "c7", "text": "repeated from the clean file"}',
]


def _clean(n: int, start: int = 0) -> bytes:
    """Clean JSONL (Arrow's fast path) with flat extras; ids c0.. repeat across files."""
    lines = []
    for i in range(start, start + n):
        rec = {"id": f"c{i}", "text": f"clean document {i} " + "words " * (i % 5), "n": i, "f": i / 3}
        rec["source"] = ["web", "Books", None][i % 3]
        if i % 2:
            rec["label"] = f"l{i % 4}"
        lines.append(json.dumps(rec))
    return ("\n".join(lines) + "\n").encode()


def _dirty(n: int) -> bytes:
    """Per-line JSONL: nested and mixed-type extras (other types than the clean file's `n`) and repeated ids."""
    lines = [b'{"id": "d0", "text": 5}']
    for i in range(n):
        rec: dict = {"id": f"d{i % (n - 20)}", "text": f"dirty document {i}", "n": str(i) if i % 2 else i}
        if i < n // 2:
            rec["meta"] = {"k": i, "tags": ["a", "b"][: i % 3]}
        lines.append(json.dumps(rec).encode())
    return b"\n".join(lines) + b"\n"


def _jsonl_folder(folder: Path, compress: str | None = None) -> Path:
    folder.mkdir()
    files = {"a-bad.jsonl": b"\n".join(BAD), "b-clean.jsonl": _clean(700), "c-dirty.jsonl": _dirty(600)}
    files["d-clean.jsonl"] = _clean(300, start=650)  # 50 ids repeated from b-clean
    for name, data in files.items():
        if compress == "gz":
            (folder / f"{name}.gz").write_bytes(gzip.compress(data))
        elif compress == "zst":
            (folder / f"{name}.zst").write_bytes(zstandard.ZstdCompressor().compress(data))
        else:
            (folder / name).write_bytes(data)
    if compress == "gz":  # a compressed file cut short: its whole lines are kept, the cut one quarantined
        whole = gzip.compress(_clean(200, start=2000))
        (folder / "e-cut.jsonl.gz").write_bytes(whole[: len(whole) * 2 // 3])
    return folder


def _parquet_folder(folder: Path) -> Path:
    """Parquet files with typed extras that differ between the files, and ids repeated across them."""
    import datetime as dt

    folder.mkdir()
    for part, ids in enumerate((range(0, 700), range(600, 1300))):
        ids = list(ids)
        table = pa.table(
            {
                "id": [f"p{i}" for i in ids],
                "text": [f"parquet document {i}" for i in ids],
                "ts": pa.array(
                    [dt.datetime(2020, 1, 1) + dt.timedelta(hours=i) for i in ids], pa.timestamp("us")
                ),
                "n": pa.array(ids, pa.int64() if part == 0 else pa.float64()),
                "tags": pa.array([[f"t{i % 4}"] * (i % 3) for i in ids], pa.list_(pa.string())),
                "none": pa.nulls(len(ids), pa.string()),
            }
        )
        if part == 1:
            table = table.drop_columns(["tags"]).append_column("only_second", pa.array(ids))
        pq.write_table(table, folder / f"part-{part}.parquet", row_group_size=300)
    return folder


def _csv(path: Path) -> Path:
    lines = ["id,text,n,label"]
    for i in range(900):
        rid = "" if i == 7 else str(i % 800)
        lines.append(f'{rid},"csv document {i}, quoted",{i},l{i % 3}')
    lines[500] += ",extra"
    path.write_text("\n".join(lines) + "\n")
    return path


def _lake(uri: Path) -> tuple[list[dict], list[dict]]:
    """The lake's own reading: documents as `concat_documents` puts the batches together, quarantine by (file, row)."""
    from sift.pipelines.core.lake import iter_documents
    from sift.pipelines.core.lake.read import concat_documents

    parts = list(iter_documents(str(uri), batch_rows=250))
    docs = concat_documents([p.documents for p in parts]).to_pylist()
    quarantine = pa.concat_tables([p.quarantine for p in parts]).to_pylist()
    return docs, sorted(quarantine, key=lambda r: (r["file"], r["row"]))


@pytest.mark.spark
@pytest.mark.parametrize("kind", ["jsonl", "jsonl_gz", "jsonl_zst", "parquet", "csv"])
def test_spark_read_gives_the_lakes_documents_and_quarantine(kind: str, tmp_path: Path, spark) -> None:
    from sift.pipelines.core.lake import Fields
    from sift.pipelines.core.lake.spark import read_documents_spark

    if kind.startswith("jsonl"):
        uri = _jsonl_folder(tmp_path / "in", kind.partition("_")[2] or None)
    elif kind == "parquet":
        uri = _parquet_folder(tmp_path / "in")
    else:
        uri = _csv(tmp_path / "docs.csv")
    (tmp_path / "in").mkdir(exist_ok=True)
    (tmp_path / "in" / "_SUCCESS").write_text("")
    want_docs, want_quarantine = _lake(uri)
    got = read_documents_spark(spark, str(uri), Fields(), batch_rows=250)
    docs = got.documents.orderBy("_row").toArrow()
    quarantine = got.quarantine.orderBy("_order").toArrow()
    assert docs.column_names[:4] == ["_row", "id", "source", "text"]
    assert docs.drop_columns(["_row"]).to_pylist() == want_docs
    assert quarantine.drop_columns(["_order"]).to_pylist() == want_quarantine
    assert any(r["error"].startswith("duplicate id:") for r in want_quarantine)
    rows = docs.column("_row").to_pylist()
    assert rows == sorted(rows) and len(set(rows)) == len(rows)
    if uri.is_dir():
        assert got.files == sorted(p.name for p in uri.iterdir() if not p.name.startswith("_"))
        assert got.skipped == ["_SUCCESS"]
    if kind == "parquet":
        assert docs.column_names[4:] == ["ts", "n", "tags", "none", "only_second"]
        assert docs.schema.field("n").type == pa.float64()  # int64 in one file, float64 in the other
    if kind == "jsonl_gz":
        assert any(r["error"].startswith("truncated input") for r in want_quarantine)


@pytest.mark.spark
def test_spark_read_one_file_per_task(tmp_path: Path, spark) -> None:
    """Each input file is its own Spark task: parsing spreads over the executors."""
    from pyspark.sql import functions as F

    from sift.pipelines.core.lake import Fields
    from sift.pipelines.core.lake.spark import read_documents_spark

    uri = _jsonl_folder(tmp_path / "in")
    got = read_documents_spark(spark, str(uri), Fields(), batch_rows=250)
    per_part = got.documents.groupBy(F.spark_partition_id().alias("p")).agg(
        F.countDistinct(F.shiftright("_row", 40)).alias("files")
    )
    files = [r["files"] for r in per_part.collect()]
    assert len(files) == 4 and set(files) == {1}  # the four files of the folder, each keeps documents


_SMALL_RESULT = textwrap.dedent(
    """
    import json, sys
    from sift.pipelines.core.engines import get_spark
    from sift.pipelines.core.lake import Fields
    from sift.pipelines.core.lake.spark import read_documents_spark

    spark = get_spark("local[2]", conf={"spark.driver.maxResultSize": "1m"})
    got = read_documents_spark(spark, sys.argv[1], Fields(), batch_rows=1000)
    got.documents.drop("_row").write.parquet(sys.argv[2] + "/documents")
    got.quarantine.drop("_order").write.parquet(sys.argv[2] + "/quarantine")
    print(json.dumps({"docs": got.documents.count(), "files": got.files}))
    """
)


def write_wide_jsonl(folder: Path) -> Path:
    """Three JSONL files of 1,200 documents of about 3 KB each (about ten times `spark.driver.maxResultSize=1m`),
    plus one repeated id per file; 3,600 documents and 3 quarantine rows in all."""
    folder.mkdir()
    for part in range(3):
        lines = [
            json.dumps({"id": f"{part}-{i}", "text": f"document {i} " + "x" * 3000, "k": i})
            for i in range(1200)
        ]
        lines.append(json.dumps({"id": "0-5", "text": "repeated"}))
        (folder / f"part-{part}.jsonl").write_text("\n".join(lines) + "\n")
    return folder


@pytest.mark.spark
@pytest.mark.slow
def test_spark_read_needs_no_driver_memory_per_record(tmp_path: Path) -> None:
    """Ten times more text than the driver may receive (`spark.driver.maxResultSize=1m`): the read succeeds and the
    executors' output has the lake's rows."""
    folder = write_wide_jsonl(tmp_path / "in")
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-c", _SMALL_RESULT, str(folder), str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1])["docs"] == 3600
    want_docs, want_quarantine = _lake(folder)
    docs = pq.read_table(out / "documents").sort_by("id").to_pylist()
    assert docs == sorted(want_docs, key=lambda r: r["id"])
    quarantine = pq.read_table(out / "quarantine").to_pylist()
    assert sorted(quarantine, key=lambda r: (r["file"], r["row"])) == want_quarantine
