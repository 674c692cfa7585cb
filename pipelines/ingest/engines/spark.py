"""Ingest's Spark plan: files parsed in parallel by the lake's kernel inside `mapInArrow`; repeated ids settled by a
window over the whole input (first by file, then row); the same per-batch tables as the Polars plan rebuilt on the
driver, so both engines write the same bytes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa

from sift.pipelines.core.lake import (
    QUARANTINE_SCHEMA,
    Batch,
    Fields,
    IngestResult,
    default_source_for,
    extras_table,
    ingest_stats,
    list_input_files,
    normalise_source,
    parse_file,
)
from sift.pipelines.ingest.documents import IngestOptions, Progress, canonical, concat_documents

# Rows the Spark kernel hands back. A record row (`table` null) is an accepted record (error null) or a rejected
# one; `batch` numbers the reader's batches within a file and `pos` is an accepted record's place among the
# accepted records of its batch; `extras` holds a per-line record's other fields as JSON (for the payload, should
# its id be repeated). Each batch also gets one marker row (`row` null) whose `table` holds the batch's other
# columns (Arrow IPC, every type kept), so the driver rebuilds the same per-batch tables as the Polars plan.
_SPARK_ROW_SCHEMA = pa.schema(
    [
        ("file_index", pa.int32()),
        ("file", pa.string()),
        ("batch", pa.int32()),
        ("pos", pa.int64()),
        ("row", pa.int64()),
        ("id", pa.string()),
        ("source", pa.string()),
        ("text", pa.string()),
        ("extras", pa.string()),
        ("error", pa.string()),
        ("payload", pa.string()),
        ("table", pa.binary()),
    ]
)
_BASE = ("id", "source", "text")


def _accepted_table(b: Batch) -> pa.Table:
    """A batch's accepted records as `sift.pipelines.core.lake.validate.finish_batch` builds them (id, source, text, other columns)."""
    if b.arrow is not None:
        return b.arrow
    cols: dict[str, Any] = {
        "id": pa.array(b.ids, pa.string()),
        "source": pa.array(b.sources, pa.string()),
        "text": pa.array(b.texts, pa.string()),
    }
    for name, arr in extras_table(b.extras).items():
        cols[name if name not in cols else f"{name}_input"] = arr
    return pa.table(cols)


def _padded(column: pa.ChunkedArray, nulls: int) -> pa.Array:
    """A string column followed by `nulls` nulls, as one array (no Python objects made)."""
    return pa.concat_arrays([column.combine_chunks().cast(pa.string()), pa.nulls(nulls, pa.string())])


def _ipc(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def _from_ipc(data: bytes) -> pa.Table:
    return pa.ipc.open_stream(data).read_all()


def _spark_parse_kernel(fields: Fields, fmt: str, files: dict[str, tuple[int, str, str]], batch_rows: int):
    """mapInArrow kernel: (path, content) rows -> per batch one marker row, then one row per record, accepted
    (error null) or rejected."""

    def kernel(batches):
        for rb in batches:
            for path, content in zip(
                rb.column("path").to_pylist(), rb.column("content").to_pylist(), strict=True
            ):
                index, display, src = files[path]
                for k, b in enumerate(parse_file(content, path, display, fmt, fields, src, batch_rows)):
                    accepted = _accepted_table(b)
                    n, m = accepted.num_rows, len(b.q_rows)
                    marker: dict[str, list[Any]] = {name: [None] for name in _SPARK_ROW_SCHEMA.names}
                    marker.update(
                        file_index=[index],
                        file=[display],
                        batch=[k],
                        table=[_ipc(accepted.drop_columns(list(_BASE)))],
                    )
                    yield pa.RecordBatch.from_pydict(marker, schema=_SPARK_ROW_SCHEMA)
                    # A repeated id's payload is built as the lake's id registry builds it: from the parsed
                    # record on the per-line path (kept here as JSON), from the batch's table on the fast path.
                    if b.arrow is None:
                        extras = [json.dumps(e, ensure_ascii=False, default=str) for e in b.extras]
                    else:
                        extras = [None] * n
                    yield pa.RecordBatch.from_pydict(
                        {
                            "file_index": [index] * (n + m),
                            "file": [display] * (n + m),
                            "batch": [k] * (n + m),
                            "pos": list(range(n)) + [None] * m,
                            "row": b.rows + b.q_rows,
                            **{c: _padded(accepted.column(c), m) for c in _BASE},
                            "extras": extras + [None] * m,
                            "error": [None] * n + b.q_errors,
                            "payload": [None] * n + b.q_payloads,
                            "table": [None] * (n + m),
                        },
                        schema=_SPARK_ROW_SCHEMA,
                    )

    return kernel


def ingest_spark(
    uri: str, options: IngestOptions, master: str | None = None, progress: Progress | None = None
) -> IngestResult:
    """The cluster plan on the process's Spark session on `master` (started on first use)."""
    from sift.pipelines.core.engines import get_spark

    return plan(get_spark(master), uri, options, progress)


def plan(spark: Any, uri: str, options: IngestOptions, progress: Progress | None = None) -> IngestResult:
    """The cluster plan: files parsed in parallel by the shared kernel; repeated ids settled by a window."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    fs, paths, fmt = list_input_files(uri)
    root = fs._strip_protocol(str(uri)) if hasattr(fs, "_strip_protocol") else str(uri)
    files: dict[str, tuple[int, str, str]] = {}
    urls = []
    for i, p in enumerate(paths):
        display = str(uri) if p == root else str(Path(p).relative_to(root))
        src = normalise_source(options.default_source) if options.default_source else default_source_for(p)
        url = fs.unstrip_protocol(p)
        files[url] = (i, display, src)
        urls.append(url)
    raw = spark.read.format("binaryFile").load(urls).select("path", "content")
    # Spark reports local paths as file:/x (one slash); key the kernel by what Spark hands it.
    spark_paths = [r.path for r in raw.select("path").collect()]
    files = {sp: files[_match(sp, files)] for sp in spark_paths}
    fields = Fields(id=options.id_field, text=options.text_field, source=options.source_field)
    rows = raw.mapInArrow(_spark_parse_kernel(fields, fmt, files, options.batch_rows), _spark_schema(spark))
    rows = rows.localCheckpoint()
    markers = rows.filter(F.col("table").isNotNull()).select("file_index", "batch", "table")
    records = rows.filter(F.col("table").isNull())
    accepted = records.filter(F.col("error").isNull())
    order = Window.partitionBy("id").orderBy("file_index", "row")
    ranked = (
        accepted.withColumn("rank", F.row_number().over(order))
        .withColumn("first_file_index", F.first("file_index").over(order))
        .withColumn("first_file", F.first("file").over(order))
        .withColumn("first_row", F.first("row").over(order))
    )
    kept = (
        ranked.filter(F.col("rank") == 1)
        .select("file_index", "batch", "pos", "id", "source", "text")
        .orderBy("file_index", "row")
        .toArrow()
    )
    dups = ranked.filter(F.col("rank") > 1).orderBy("file_index", "row").toArrow()
    rejected = records.filter(F.col("error").isNotNull()).select("file", "row", "error", "payload").toArrow()
    tables = {
        (m["file_index"], m["batch"]): _from_ipc(m["table"])
        for m in markers.orderBy("file_index", "batch").toArrow().to_pylist()
    }

    docs = concat_documents(_batch_documents(kept, tables))
    dup_rows = dups.to_pylist()
    dup_table = pa.table(
        {
            "file": [d["file"] for d in dup_rows],
            "row": [d["row"] for d in dup_rows],
            "error": [
                f"duplicate id: '{d['id']}' first seen at "
                + (
                    f"row {d['first_row']}"
                    if d["first_file"] == d["file"]
                    else f"{d['first_file']} row {d['first_row']}"
                )
                for d in dup_rows
            ],
            "payload": [_dup_payload(d, tables) for d in dup_rows],
        },
        schema=QUARANTINE_SCHEMA,
    )
    quarantine = pa.concat_tables([rejected.cast(QUARANTINE_SCHEMA), dup_table])
    docs, quarantine = canonical(docs, quarantine)
    if progress:
        progress(docs.num_rows + quarantine.num_rows)
    return IngestResult(docs, quarantine, ingest_stats(docs, quarantine))


def _batch_documents(kept: pa.Table, tables: dict[tuple[int, int], pa.Table]) -> list[pa.Table]:
    """Per reader batch, in input order, its kept records with all their columns: the tables the Polars plan
    concatenates (a batch whose records were all rejected or repeated still brings its columns)."""
    keys = list(zip(kept.column("file_index").to_pylist(), kept.column("batch").to_pylist(), strict=True))
    starts: dict[tuple[int, int], int] = {}
    for i, key in enumerate(keys):
        starts.setdefault(key, i)
    parts = []
    for key, extras in tables.items():  # (ordered by file, then batch)
        start = starts.get(key, 0)
        stop = start
        while stop < len(keys) and keys[stop] == key:
            stop += 1
        rows = kept.slice(start, stop - start)
        names, arrays = list(_BASE), [rows.column(c).cast(pa.string()) for c in _BASE]
        taken = extras.take(rows.column("pos").cast(pa.int64()))
        names += taken.column_names
        arrays += [taken.column(c) for c in taken.column_names]
        parts.append(pa.Table.from_arrays(arrays, names=names))
    return parts


def _dup_payload(d: dict[str, Any], tables: dict[tuple[int, int], pa.Table]) -> str:
    """A repeated record's quarantine payload, the same string the lake's id registry writes."""
    base = {"id": d["id"], "source": d["source"], "text": d["text"]}
    if d["extras"] is not None:
        extras = json.loads(d["extras"])
    else:
        extras = tables[(d["file_index"], d["batch"])].slice(d["pos"], 1).to_pylist()[0]
    return json.dumps({**base, **extras}, ensure_ascii=False, default=str)


def _match(spark_path: str, files: dict[str, Any]) -> str:
    for url in files:
        if url == spark_path or url.replace("file://", "file:") == spark_path:
            return url
    raise KeyError(spark_path)


def _spark_schema(spark):
    from pyspark.sql.types import (
        BinaryType,
        IntegerType,
        LongType,
        StringType,
        StructField,
        StructType,
    )

    types = {"file_index": IntegerType(), "batch": IntegerType(), "pos": LongType(), "row": LongType()}
    types["table"] = BinaryType()
    return StructType([StructField(f.name, types.get(f.name, StringType()), True) for f in _SPARK_ROW_SCHEMA])
