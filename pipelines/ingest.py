"""Ingest: raw inputs -> the documents contract plus a quarantine, on Polars (embedded) or Spark.

Both plans share the kernels of `pipelines.lake` (per-record parsing and validation), so they accept and reject the
same rows with the same messages. The Polars plan streams batches on one machine; the Spark plan parses files in
parallel through `mapInArrow` and settles repeated ids with a window over the whole input (first by file, then row).
Outputs are sorted by (file, row) before they are written, so both engines write the same bytes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa

from pipelines.lake import (
    QUARANTINE_SCHEMA,
    Fields,
    IngestResult,
    _extras_table,
    default_source_for,
    ingest_stats,
    input_files,
    iter_documents,
    list_input_files,
    normalise_source,
    parse_file,
    write_json_atomic,
    write_parquet_atomic,
)

Progress = Callable[[int], None]


@dataclass(frozen=True)
class IngestOptions:
    id_field: str = "id"
    text_field: str = "text"
    source_field: str = "source"
    default_source: str | None = None
    batch_rows: int = 65536


def _canonical(docs: pa.Table, quarantine: pa.Table) -> tuple[pa.Table, pa.Table]:
    """Fixed column order and types, quarantine sorted by (file, row): the same bytes from every engine."""
    base = ["id", "source", "text"]
    docs = docs.select(base + sorted(c for c in docs.column_names if c not in base))
    docs = docs.cast(pa.schema([docs.schema.field(c) for c in docs.column_names]))
    quarantine = quarantine.cast(QUARANTINE_SCHEMA).sort_by([("file", "ascending"), ("row", "ascending")])
    return docs, quarantine


def ingest_polars(uri: str, options: IngestOptions, progress: Progress | None = None) -> IngestResult:
    """The embedded plan: stream batches through the kernels; Polars puts the accepted rows together."""
    docs_parts: list[pl.DataFrame] = []
    q_parts: list[pa.Table] = []
    for part in iter_documents(
        uri,
        id_field=options.id_field,
        text_field=options.text_field,
        source_field=options.source_field,
        default_source=options.default_source,
        batch_rows=options.batch_rows,
    ):
        docs_parts.append(pl.from_arrow(part.documents))  # type: ignore[arg-type]
        q_parts.append(part.quarantine)
        if progress:
            progress(part.documents.num_rows + part.quarantine.num_rows)
    if docs_parts:
        docs = pl.concat(docs_parts, how="diagonal_relaxed").to_arrow()
        docs = docs.cast(pa.schema([pa.field(f.name, _plain(f.type)) for f in docs.schema]))
    else:
        docs = pa.schema([("id", pa.string()), ("source", pa.string()), ("text", pa.string())]).empty_table()
    quarantine = pa.concat_tables(q_parts) if q_parts else QUARANTINE_SCHEMA.empty_table()
    docs, quarantine = _canonical(docs, quarantine)
    return IngestResult(docs, quarantine, ingest_stats(docs, quarantine))


def _plain(t: pa.DataType) -> pa.DataType:
    """Polars hands strings back as large/view strings; the lake stores plain `string`."""
    if pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return pa.string()
    if pa.types.is_large_list(t):
        return pa.list_(_plain(t.value_type))
    return t


_SPARK_ROW_SCHEMA = pa.schema(
    [
        ("file_index", pa.int32()),
        ("file", pa.string()),
        ("row", pa.int64()),
        ("id", pa.string()),
        ("source", pa.string()),
        ("text", pa.string()),
        ("extras", pa.string()),
        ("error", pa.string()),
        ("payload", pa.string()),
    ]
)


def _spark_parse_kernel(fields: Fields, fmt: str, files: dict[str, tuple[int, str, str]], batch_rows: int):
    """mapInArrow kernel: (path, content) rows -> one row per record, accepted (error null) or rejected."""

    def kernel(batches):
        for rb in batches:
            for path, content in zip(
                rb.column("path").to_pylist(), rb.column("content").to_pylist(), strict=True
            ):
                index, display, src = files[path]
                for b in parse_file(content, path, display, fmt, fields, src, batch_rows):
                    n, m = len(b.ids), len(b.q_rows)
                    extras = [
                        json.dumps(e, ensure_ascii=False, sort_keys=True, default=str) for e in b.extras
                    ]
                    yield pa.RecordBatch.from_pydict(
                        {
                            "file_index": [index] * (n + m),
                            "file": [display] * (n + m),
                            "row": b.rows + b.q_rows,
                            "id": b.ids + [None] * m,
                            "source": b.sources + [None] * m,
                            "text": b.texts + [None] * m,
                            "extras": extras + [None] * m,
                            "error": [None] * n + b.q_errors,
                            "payload": [None] * n + b.q_payloads,
                        },
                        schema=_SPARK_ROW_SCHEMA,
                    )

    return kernel


def ingest_spark(
    uri: str, options: IngestOptions, master: str | None = None, progress: Progress | None = None
) -> IngestResult:
    """The cluster plan: files parsed in parallel by the shared kernel; repeated ids settled by a window."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    from pipelines.engines import get_spark

    spark = get_spark(master)
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
    accepted = rows.filter(F.col("error").isNull())
    order = Window.partitionBy("id").orderBy("file_index", "row")
    ranked = (
        accepted.withColumn("rank", F.row_number().over(order))
        .withColumn("first_file_index", F.first("file_index").over(order))
        .withColumn("first_file", F.first("file").over(order))
        .withColumn("first_row", F.first("row").over(order))
    )
    docs_arrow = ranked.filter(F.col("rank") == 1).orderBy("file_index", "row").toArrow()
    dups = ranked.filter(F.col("rank") > 1).orderBy("file_index", "row").toArrow()
    rejected = rows.filter(F.col("error").isNotNull()).select("file", "row", "error", "payload").toArrow()

    extras = [json.loads(e) for e in docs_arrow.column("extras").to_pylist()]
    cols: dict[str, Any] = {
        "id": docs_arrow.column("id").cast(pa.string()),
        "source": docs_arrow.column("source").cast(pa.string()),
        "text": docs_arrow.column("text").cast(pa.string()),
    }
    for name, arr in _extras_table(extras).items():
        cols[name if name not in cols else f"{name}_input"] = arr
    docs = pa.table(cols)
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
            "payload": [
                json.dumps(
                    {"id": d["id"], "source": d["source"], "text": d["text"], **json.loads(d["extras"])},
                    ensure_ascii=False,
                    default=str,
                )
                for d in dup_rows
            ],
        },
        schema=QUARANTINE_SCHEMA,
    )
    quarantine = pa.concat_tables([rejected.cast(QUARANTINE_SCHEMA), dup_table])
    docs, quarantine = _canonical(docs, quarantine)
    if progress:
        progress(docs.num_rows + quarantine.num_rows)
    return IngestResult(docs, quarantine, ingest_stats(docs, quarantine))


def _match(spark_path: str, files: dict[str, Any]) -> str:
    for url in files:
        if url == spark_path or url.replace("file://", "file:") == spark_path:
            return url
    raise KeyError(spark_path)


def _spark_schema(spark):
    from pyspark.sql.types import IntegerType, LongType, StringType, StructField, StructType

    types = {"file_index": IntegerType(), "row": LongType()}
    return StructType([StructField(f.name, types.get(f.name, StringType()), True) for f in _SPARK_ROW_SCHEMA])


def ingest(
    uri: str,
    options: IngestOptions,
    *,
    engine: str = "polars",
    spark_master: str | None = None,
    progress: Progress | None = None,
) -> IngestResult:
    """Ingest `uri` with the chosen engine, in memory."""
    if engine == "spark":
        return ingest_spark(uri, options, spark_master, progress)
    return ingest_polars(uri, options, progress)


def run_ingest(
    uri: str,
    output: str | Path,
    options: IngestOptions,
    *,
    engine: str = "polars",
    spark_master: str | None = None,
    progress: Progress | None = None,
) -> IngestResult:
    """Ingest `uri` with the chosen engine and write documents.parquet, quarantine.parquet and stats.json."""
    start = time.perf_counter()
    result = ingest(uri, options, engine=engine, spark_master=spark_master, progress=progress)
    out = Path(output)
    write_parquet_atomic(result.documents, out / "documents.parquet")
    write_parquet_atomic(result.quarantine, out / "quarantine.parquet")
    result.stats.update(
        {
            "input": str(uri),
            "skipped_files": input_files(uri).skipped,
            "engine": engine,
            "seconds": round(time.perf_counter() - start, 3),
        }
    )
    write_json_atomic(result.stats, out / "stats.json")
    return result
