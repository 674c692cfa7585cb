"""Reading an input into the documents contract on Spark: the driver lists the files, the executors open and parse
them, and nothing per record comes back to the driver.

`read_documents_spark` gives what `read.iter_documents` gives (the same documents with the same values, the same
quarantine rows, repeated ids settled the same way: the first occurrence by file, then row, stays) as two lazily
evaluated DataFrames. Every pass is a `mapInArrow` over a small table of the input's files (one task per file):
the executor opens its file by URL through fsspec (local paths, file:// URIs and any scheme the executors'
fsspec/pyarrow file systems support) and streams it through the lake's reader of its format (`read._READERS`,
batch by batch, as `iter_documents` does). A big JSONL or CSV file is read by one task; Parquet files are not split
by row group either.

1. scan: per reader batch the schema of its documents table, per accepted record its id and `_row`, and every
   quarantine row. This pass is kept (`localCheckpoint`: ids and quarantine rows, no document text); the driver
   collects the distinct schemas only (bounded by the files and batches, not by records) and settles one schema
   for all of them as the Polars path does (`read.concat_documents`).
2. repeated ids: a window over (id, `_row`) of the whole input; their quarantine error is built in Spark SQL with
   the lake's wording (`validate.IdRegistry`), and the `_row`s to drop are listed per file.
3. documents: every file parsed again; each batch's accepted records, less the repeated ids, cast to the one
   schema (`read.conform_documents`) on the executor.
4. the repeated records' payloads: only files that hold repeated ids are parsed again, and each repeated record's
   payload is built as the lake's id registry builds it (`validate.record_payload`).

`_row` (and the quarantine's `_order`) is `file_index * 2**40 + row`: it grows in input order.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from sift.pipelines.core.lake.files import fs_and_path, input_files
from sift.pipelines.core.lake.read import concat_documents
from sift.pipelines.core.lake.validate import (
    DOC_SCHEMA,
    Fields,
    default_source_for,
    normalise_source,
)

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

ROW_BITS = 40  # `_row` = file_index << ROW_BITS | row
_ROW_MASK = (1 << ROW_BITS) - 1
_CHUNK_BYTES = 64 << 20  # documents handed to Spark in Arrow batches of about this many bytes at most

# The scan pass's rows: kind 0 is a reader batch's schema, 1 an accepted record (its id), 2 a quarantine row.
_SCAN = pa.schema(
    [
        ("kind", pa.int32()),
        ("file_index", pa.int32()),
        ("batch", pa.int32()),
        ("_row", pa.int64()),
        ("id", pa.string()),
        ("file", pa.string()),
        ("error", pa.string()),
        ("payload", pa.string()),
        ("schema", pa.binary()),
    ]
)
_SCHEMA, _DOC, _QUARANTINE = 0, 1, 2
_PAYLOADS = pa.schema([("_row", pa.int64()), ("payload", pa.string())])


@dataclass(frozen=True)
class SparkDocuments:
    """An input read on Spark. `documents`: `_row` long (grows in input order), `id`, `source`, `text`, then the
    input's other columns (one schema over all files, in first-seen order); its partitions are ranges of files in
    input order, so `sortWithinPartitions("_row")` puts it in input order without a shuffle. `quarantine`: `file`, `row`, `error`,
    `payload` (QUARANTINE_SCHEMA's columns) and `_order` long (input order). `files`: the files read (display
    names); `skipped`: files under the input that are not read (relative paths; `files.input_files` gives the
    reasons)."""

    documents: DataFrame
    quarantine: DataFrame
    files: list[str]
    skipped: list[str]


def read_documents_spark(
    spark: SparkSession,
    uri: str,
    fields: Fields,
    *,
    default_source: str | None = None,
    batch_rows: int = 65536,
) -> SparkDocuments:
    """Read `uri` on Spark's executors into documents and quarantine DataFrames (see the module docstring).

    Runs two Spark jobs now (the scan pass, kept, and the collection of its distinct batch schemas); the
    DataFrames returned are evaluated when the caller writes or persists them."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    found = input_files(uri)
    root = fs_and_path(uri)[1]
    tasks_rows = []
    for i, path in enumerate(found.paths):
        display = str(uri) if path == root else os.path.relpath(path, root)
        src = normalise_source(default_source) if default_source else default_source_for(path)
        tasks_rows.append((i, found.fs.unstrip_protocol(path), path, display, src))
    n = len(tasks_rows)
    tasks = spark.createDataFrame(
        tasks_rows, "file_index int, url string, path string, file string, source string"
    )
    kernel = _Kernel(found.format, fields, batch_rows)

    def per_file(frame: DataFrame) -> DataFrame:
        return frame.repartitionByRange(max(n, 1), "file_index")

    scan = per_file(tasks).mapInArrow(kernel.scan, _spark_schema(_SCAN)).localCheckpoint(eager=True)

    # One schema for every batch's documents, settled as the Polars path settles it, in first-seen order (to the
    # driver: one row per distinct batch schema, not per batch or record).
    marks = (
        scan.filter(F.col("kind") == _SCHEMA)
        .groupBy("schema")
        .agg(F.min(F.struct("file_index", "batch")).alias("first"))
        .collect()
    )
    schemas = [pa.ipc.read_schema(pa.py_buffer(m["schema"])) for m in sorted(marks, key=lambda m: m["first"])]
    unified = concat_documents([s.empty_table() for s in schemas]).schema if schemas else DOC_SCHEMA
    spark_types = pa.schema([pa.field(f.name, _spark_arrow_type(f.type)) for f in unified])
    doc_schema = _spark_schema(pa.schema([pa.field("_row", pa.int64())] + list(spark_types)))

    # Repeated ids: every occurrence after the first by `_row` (file, then row) is quarantined.
    names = tasks.select("file_index", "file")
    ids = scan.filter(F.col("kind") == _DOC).select("_row", "id")
    first = F.min("_row").over(Window.partitionBy("id"))
    dups = (
        ids.withColumn("_first", first)
        .filter(F.col("_row") != F.col("_first"))
        .withColumn("file_index", F.shiftright("_row", ROW_BITS).cast("int"))
        .withColumn("_first_index", F.shiftright("_first", ROW_BITS).cast("int"))
        .join(F.broadcast(names), "file_index")
        .join(
            F.broadcast(
                names.select(F.col("file_index").alias("_first_index"), F.col("file").alias("_first_file"))
            ),
            "_first_index",
        )
    )
    first_row = F.col("_first").bitwiseAND(_ROW_MASK).cast("string")
    where = F.when(
        F.col("_first_index") == F.col("file_index"), F.concat(F.lit("row "), first_row)
    ).otherwise(F.concat(F.col("_first_file"), F.lit(" row "), first_row))
    dup_rows = dups.select(
        "file_index",
        "file",
        F.col("_row").bitwiseAND(_ROW_MASK).alias("row"),
        F.concat(F.lit("duplicate id: '"), F.col("id"), F.lit("' first seen at "), where).alias("error"),
        "_row",
    )
    drops = dup_rows.groupBy("file_index").agg(F.collect_list("_row").alias("drop"))

    documents = per_file(tasks.join(drops, "file_index", "left")).mapInArrow(
        kernel.documents(unified, doc_schema), doc_schema
    )
    payloads = per_file(tasks.join(drops, "file_index", "inner")).mapInArrow(
        kernel.payloads, _spark_schema(_PAYLOADS)
    )
    duplicates = dup_rows.join(payloads, "_row").select(
        "file", "row", "error", "payload", F.col("_row").alias("_order")
    )
    parsed = scan.filter(F.col("kind") == _QUARANTINE).select(
        "file",
        F.col("_row").bitwiseAND(_ROW_MASK).alias("row"),
        "error",
        "payload",
        F.col("_row").alias("_order"),
    )
    quarantine = parsed.unionByName(duplicates)
    files = [row[3] for row in tasks_rows]
    skipped = list(found.skipped)
    return SparkDocuments(documents, quarantine, files, skipped)


class _Kernel:
    """The executors' side of `read_documents_spark`: each task row names one file (`file_index`, `url`, `path`,
    display name `file`, default `source`, and `drop`, the `_row`s of its repeated ids); its batches come from the
    lake's reader of the input's format."""

    def __init__(self, fmt: str, fields: Fields, batch_rows: int) -> None:
        self.fmt, self.fields, self.batch_rows = fmt, fields, batch_rows

    def _batches(self, tasks: Iterator[pa.RecordBatch]) -> Iterator[tuple[dict[str, Any], int, Any]]:
        """(task, batch number, Batch) for every reader batch of every file of the tasks, in order."""
        import fsspec

        from sift.pipelines.core.lake.read import _READERS

        for rb in tasks:
            for task in rb.to_pylist():
                fs, path = fsspec.core.url_to_fs(task["url"])

                def opener(fs: Any = fs, path: str = path) -> Any:
                    return fs.open(path, "rb")

                reader = _READERS[self.fmt](
                    opener, task["path"], task["file"], self.fields, task["source"], self.batch_rows
                )
                for k, batch in enumerate(reader):
                    yield task, k, batch

    def scan(self, tasks: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        import numpy as np

        from sift.pipelines.core.lake.validate import accepted_table

        for task, k, b in self._batches(tasks):
            index = task["file_index"]
            base = index << ROW_BITS
            accepted = accepted_table(b)
            yield _scan_batch(
                1, kind=_SCHEMA, file_index=index, batch=k, schema=[accepted.schema.serialize().to_pybytes()]
            )
            n = accepted.num_rows
            if n:
                rows = pa.array(np.asarray(b.rows, np.int64) + base)
                yield _scan_batch(
                    n, kind=_DOC, file_index=index, batch=k, _row=rows, id=accepted.column("id")
                )
            m = len(b.q_rows)
            if m:
                yield _scan_batch(
                    m,
                    kind=_QUARANTINE,
                    file_index=index,
                    batch=k,
                    _row=pa.array(np.asarray(b.q_rows, np.int64) + base),
                    file=[b.file] * m,
                    error=b.q_errors,
                    payload=b.q_payloads,
                )

    def documents(
        self, unified: pa.Schema, spark_schema: Any
    ) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
        """The documents pass: every batch cast to `unified` (as `concat_documents` would), then to the Arrow form
        of `spark_schema` (`_row` first)."""
        from pyspark.sql.pandas.types import to_arrow_schema

        target = to_arrow_schema(spark_schema, timezone="UTC")

        def run(tasks: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
            import numpy as np

            from sift.pipelines.core.lake.read import conform_documents
            from sift.pipelines.core.lake.validate import accepted_table

            for task, _k, b in self._batches(tasks):
                accepted = accepted_table(b)
                if not accepted.num_rows:
                    continue
                rows = np.asarray(b.rows, np.int64) + (task["file_index"] << ROW_BITS)
                drop = task["drop"]
                if drop:
                    keep = ~np.isin(rows, np.asarray(drop, np.int64))
                    accepted, rows = accepted.filter(pa.array(keep)), rows[keep]
                    if not accepted.num_rows:
                        continue
                docs = _cast_to(conform_documents(accepted, unified), target, rows)
                yield from _chunks(docs)

        return run

    def payloads(self, tasks: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        from sift.pipelines.core.lake.validate import record_payload

        for task, _k, b in self._batches(tasks):
            base = task["file_index"] << ROW_BITS
            drop = set(task["drop"] or ())
            found = [(base + row, i) for i, row in enumerate(b.rows) if base + row in drop]
            if found:
                yield pa.RecordBatch.from_pydict(
                    {"_row": [r for r, _ in found], "payload": [record_payload(b, i) for _, i in found]},
                    schema=_PAYLOADS,
                )


def _scan_batch(n: int, **columns: Any) -> pa.RecordBatch:
    """A batch of `n` scan rows: the given columns (a scalar is repeated), the others null."""
    arrays = []
    for field in _SCAN:
        value = columns.get(field.name)
        if value is None:
            arrays.append(pa.nulls(n, field.type))
        elif isinstance(value, int):
            arrays.append(pa.array([value] * n, field.type))
        elif isinstance(value, pa.ChunkedArray):
            arrays.append(value.combine_chunks().cast(field.type))
        elif isinstance(value, pa.Array):
            arrays.append(value.cast(field.type))
        else:
            arrays.append(pa.array(value, field.type))
    return pa.RecordBatch.from_arrays(arrays, schema=_SCAN)


def _cast_to(docs: pa.Table, target: pa.Schema, rows: Any) -> pa.Table:
    """Documents with `_row` in front, cast to the Arrow schema Spark expects."""
    docs = docs.add_column(0, "_row", pa.array(rows, pa.int64()))
    return docs.cast(target)


def _chunks(table: pa.Table) -> Iterator[pa.RecordBatch]:
    """A table as record batches of about _CHUNK_BYTES at most (Spark's Arrow strings hold 2 GiB per batch)."""
    parts = max(1, -(-table.nbytes // _CHUNK_BYTES))
    step = max(1, -(-table.num_rows // parts))
    for start in range(0, table.num_rows, step):
        yield from table.slice(start, step).combine_chunks().to_batches()


def _spark_arrow_type(t: pa.DataType) -> pa.DataType:
    """An Arrow type Spark holds for a documents column: plain (not large or view) strings, binaries and lists, and
    a column null in every record as strings (Spark's Parquet writer has no null type)."""
    if pa.types.is_null(t):
        return pa.string()
    if pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return pa.string()
    if pa.types.is_large_binary(t) or pa.types.is_binary_view(t):
        return pa.binary()
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_list_view(t):
        return pa.list_(_spark_arrow_type(t.value_type))
    if pa.types.is_struct(t):
        return pa.struct([pa.field(f.name, _spark_arrow_type(f.type)) for f in t])
    return t


def _spark_schema(schema: pa.Schema) -> Any:
    from pyspark.sql.pandas.types import from_arrow_schema

    return from_arrow_schema(schema)
