"""Ingest: raw inputs -> the documents contract plus a quarantine, on Polars (embedded) or Spark.

Both plans share the kernels of the lake readers (`sift.pipelines.core.lake`: per-record parsing and validation),
so they accept and reject the same rows with the same messages. The Polars plan streams batches on one machine; the Spark plan parses files in
parallel through `mapInArrow` and settles repeated ids with a window over the whole input (first by file, then row).
Outputs are sorted by (file, row) before they are written, so both engines write the same bytes.

An input of which no record is accepted, every one quarantined for the same reason (most often records whose
fields have other names than the options say), is refused with one line naming the reason, the keys seen and the
flags to use, rather than ingested into an empty table.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from sift.pipelines.core import atomic
from sift.pipelines.core.errors import InputError
from sift.pipelines.core.lake import (
    DOC_SCHEMA,
    QUARANTINE_SCHEMA,
    Batch,
    Fields,
    IngestResult,
    default_source_for,
    extras_table,
    ingest_stats,
    input_files,
    iter_documents,
    list_input_files,
    normalise_source,
    parse_file,
    write_table,
)

Progress = Callable[[int], None]


@dataclass(frozen=True)
class IngestOptions:
    id_field: str = "id"
    text_field: str = "text"
    # None: the records carry no source; every document's source is `default_source` (a record's own `source`
    # field is then kept as an ordinary column, `source_input`)
    source_field: str | None = "source"
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
    docs_parts: list[pa.Table] = []
    q_parts: list[pa.Table] = []
    for part in iter_documents(
        uri,
        id_field=options.id_field,
        text_field=options.text_field,
        source_field=options.source_field,
        default_source=options.default_source,
        batch_rows=options.batch_rows,
    ):
        docs_parts.append(part.documents)
        q_parts.append(part.quarantine)
        if progress:
            progress(part.documents.num_rows + part.quarantine.num_rows)
    docs = _concat_documents(docs_parts)
    quarantine = pa.concat_tables(q_parts) if q_parts else QUARANTINE_SCHEMA.empty_table()
    docs, quarantine = _canonical(docs, quarantine)
    return IngestResult(docs, quarantine, ingest_stats(docs, quarantine))


def _concat_documents(parts: list[pa.Table]) -> pa.Table:
    """The documents of every batch, in order, as one table: Polars settles the column types across batches (a
    column missing or all null in one batch takes its type from the others). Both engines end here, with the same
    per-batch tables, so they write the same columns and types."""
    import polars as pl  # here, so that `sift dedup` can import this module without loading Polars early

    if not parts:
        return DOC_SCHEMA.empty_table()
    docs = pl.concat([pl.from_arrow(p) for p in parts], how="diagonal_relaxed").to_arrow()  # type: ignore[misc]
    return docs.cast(pa.schema([pa.field(f.name, _plain(f.type)) for f in docs.schema]))


def _plain(t: pa.DataType) -> pa.DataType:
    """Polars hands strings back as large/view strings; the lake stores plain `string`."""
    if pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return pa.string()
    if pa.types.is_large_list(t):
        return pa.list_(_plain(t.value_type))
    return t


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
    """The cluster plan: files parsed in parallel by the shared kernel; repeated ids settled by a window."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    from sift.pipelines.core.engines import get_spark

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

    docs = _concat_documents(_batch_documents(kept, tables))
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
    docs, quarantine = _canonical(docs, quarantine)
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


class _Rejections:
    """Watches an ingest's outcome: when no record was accepted and every one failed for the same reason, the
    input was most likely read with the wrong options (say other field names), so the run stops with one line
    that names the reason, the keys the records hold and the flags to use, instead of an empty table."""

    SAMPLE = 1000  # payloads looked at for the keys the records hold

    def __init__(self, fields: Fields) -> None:
        self.fields = fields
        self.documents = 0
        self.quarantined = 0
        self.kinds: set[str] = set()
        self.first: tuple[str, int, str] | None = None
        self.records: list[dict[str, Any]] = []

    def add(self, documents: int, quarantine: pa.Table) -> None:
        self.documents += documents
        self.quarantined += quarantine.num_rows
        if self.documents or len(self.kinds) > 1 or not quarantine.num_rows:
            return  # the run goes on: no need for the details
        files, rows = quarantine.column("file").to_pylist(), quarantine.column("row").to_pylist()
        errors = quarantine.column("error").to_pylist()
        self.kinds.update(e.split(":")[0] for e in errors)
        if self.first is None:
            self.first = (files[0], rows[0], errors[0])
        for payload in quarantine.column("payload").to_pylist()[: self.SAMPLE - len(self.records)]:
            try:
                rec = json.loads(payload)
            except (TypeError, ValueError):
                continue
            if isinstance(rec, dict):
                self.records.append(rec)

    def check(self, uri: str) -> None:
        """Raise `InputError` when every record was rejected for one reason."""
        if self.documents or not self.quarantined or len(self.kinds) != 1 or self.first is None:
            return
        file, row, error = self.first
        n = self.quarantined
        line = (
            f"{uri}: {'all ' + str(n) + ' records were' if n > 1 else 'the only record was'} quarantined, "
            f"each for: {next(iter(self.kinds))} (first at {file} row {row}: {error})"
        )
        keys = sorted({k for rec in self.records for k in rec})
        if keys:
            line += f"; keys seen: {', '.join(keys)}"
            flags = self._flags(keys)
            if flags:
                line += f"; read them with {flags}"
        raise InputError(line)

    def _flags(self, keys: list[str]) -> str:
        """`--id-field X --text-field Y` for the required fields the records lack, X and Y guessed from them."""
        flags = []
        taken = {self.fields.id, self.fields.text}
        if self.fields.id not in keys:
            ids = [k for k in keys if k not in taken and k.lower().endswith("id")]
            ids.sort(key=lambda k: not k.lower().endswith(("_id", "-id")))  # doc_id before, say, uuid
            flags.append(f"--id-field {ids[0] if ids else 'NAME'}")
            taken.update(ids[:1])
        if self.fields.text not in keys:
            size: dict[str, int] = {}
            for rec in self.records:
                for k, v in rec.items():
                    if isinstance(v, str) and k not in taken:
                        size[k] = size.get(k, 0) + len(v)
            longest = max(sorted(size), key=size.__getitem__) if size else "NAME"
            flags.append(f"--text-field {longest}")
        return " ".join(flags)


def refuse_if_all_rejected(parts: Iterable[IngestResult], uri: str, fields: Fields) -> Iterator[IngestResult]:
    """Pass ingest batches through; at the end, raise `InputError` if no record was accepted and every one failed
    for the same reason (see `_Rejections`). For readers of `iter_documents` that stream (`sift dedup`)."""
    seen = _Rejections(fields)
    for part in parts:
        seen.add(part.documents.num_rows, part.quarantine)
        yield part
    seen.check(uri)


def ingest(
    uri: str,
    options: IngestOptions,
    *,
    engine: str = "polars",
    spark_master: str | None = None,
    progress: Progress | None = None,
) -> IngestResult:
    """Ingest `uri` with the chosen engine, in memory.

    Raises `InputError` when no record was accepted and every one failed for the same reason (say, records whose
    fields have other names than the options give): one line with the reason, the keys seen and the flags to use.
    """
    if engine == "spark":
        result = ingest_spark(uri, options, spark_master, progress)
    else:
        result = ingest_polars(uri, options, progress)
    seen = _Rejections(Fields(id=options.id_field, text=options.text_field, source=options.source_field))
    seen.add(result.documents.num_rows, result.quarantine)
    seen.check(str(uri))
    return result


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
    write_table(result.documents, out / "documents.parquet")
    write_table(result.quarantine, out / "quarantine.parquet")
    result.stats.update(
        {
            "input": str(uri),
            "skipped_files": input_files(uri).skipped,
            "engine": engine,
            "seconds": round(time.perf_counter() - start, 3),
        }
    )
    atomic.write_json(result.stats, out / "stats.json", default=str)
    return result
