"""Reading an input into the documents contract: one batch at a time, whole, or one file held in memory.

`iter_documents` streams every file of an input (see `files.input_files`) through the reader of its format
(`jsonl`, `parquet` for Parquet and Arrow, `csv`) and settles repeated ids across the whole input (`IdRegistry`:
the first occurrence by file, then row, stays), yielding documents and quarantine rows per batch;
`read_documents` gathers them into two tables with their statistics. `parse_file` parses one file's bytes held in
memory (validated batches out; repeated ids are settled by the caller). `concat_documents` puts per-batch
documents tables together with one set of column types (Polars settles them), and `conform_documents` casts one
batch to such a set (the Spark reader, `spark.read_documents_spark`, does it batch by batch on the executors).
`read_table` reads a table as it is, with no validation.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterator
from typing import Any, cast

import orjson
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from sift.pipelines.core.lake.compression import open_bytes
from sift.pipelines.core.lake.csv import iter_csv
from sift.pipelines.core.lake.files import Opener, fs_and_path, list_input_files, opener
from sift.pipelines.core.lake.jsonl import is_blank_line, iter_jsonl
from sift.pipelines.core.lake.parquet import iter_arrow, iter_parquet
from sift.pipelines.core.lake.stats import ingest_stats
from sift.pipelines.core.lake.validate import (
    DOC_SCHEMA,
    QUARANTINE_SCHEMA,
    Batch,
    Fields,
    IdRegistry,
    IngestResult,
    default_source_for,
    finish_batch,
    normalise_source,
)

# A reader: (opener, path, display name, fields, default source, batch rows) -> validated batches, in row order.
Reader = Callable[[Opener, str, str, Fields, str, int], Iterator[Batch]]
_READERS: dict[str, Reader] = {
    "jsonl": iter_jsonl,
    "parquet": iter_parquet,
    "csv": iter_csv,
    "arrow": iter_arrow,
}


def parse_file(
    content: bytes,
    path: str,
    display: str,
    fmt: str,
    fields: Fields,
    default_source: str,
    batch_rows: int = 65536,
) -> Iterator[Batch]:
    """Parse one whole input file held in memory."""
    yield from _READERS[fmt](lambda: io.BytesIO(content), path, display, fields, default_source, batch_rows)


def iter_documents(
    uri: str | os.PathLike[str],
    *,
    id_field: str = "id",
    text_field: str = "text",
    source_field: str = "source",
    default_source: str | None = None,
    batch_rows: int = 65536,
) -> Iterator[IngestResult]:
    """Stream validated documents and quarantine rows from an input, one batch at a time.

    Duplicate ids are checked across the whole input: the first occurrence by (file, row) stays.
    """
    fs, paths, fmt = list_input_files(uri)
    fields = Fields(id=id_field, text=text_field, source=source_field)
    registry = IdRegistry()
    root = fs_and_path(uri)[1]
    for path in paths:
        display = str(uri) if path == root else os.path.relpath(path, root)
        src = normalise_source(default_source) if default_source else default_source_for(path)
        for batch in _READERS[fmt](opener(fs, path), path, display, fields, src, batch_rows):
            yield finish_batch(batch, registry)


def read_documents(
    uri: str | os.PathLike[str],
    *,
    id_field: str = "id",
    text_field: str = "text",
    source_field: str = "source",
    default_source: str | None = None,
) -> IngestResult:
    """Read a whole input into one documents table and one quarantine table."""
    parts = list(
        iter_documents(
            uri,
            id_field=id_field,
            text_field=text_field,
            source_field=source_field,
            default_source=default_source,
        )
    )
    docs = pa.concat_tables([p.documents for p in parts], promote_options="permissive") if parts else None
    if docs is None:
        docs = DOC_SCHEMA.empty_table()
    quarantine = pa.concat_tables([p.quarantine for p in parts]) if parts else QUARANTINE_SCHEMA.empty_table()
    return IngestResult(docs, quarantine, ingest_stats(docs, quarantine))


def read_table(uri: str | os.PathLike[str]) -> pa.Table:
    """A whole table from Parquet (file or folder), CSV or Arrow, with no validation."""
    fs, paths, fmt = list_input_files(uri)
    if fmt == "parquet":
        return pa.concat_tables(
            [pq.read_table(fs.open(p, "rb")) for p in paths], promote_options="permissive"
        )
    if fmt == "csv":
        return pa.concat_tables(
            [pacsv.read_csv(open_bytes(fs, p)) for p in paths], promote_options="permissive"
        )
    if fmt == "jsonl":
        rows: list[Any] = []
        for p in paths:
            with open_bytes(fs, p) as s:
                rows.extend(orjson.loads(line) for line in s if not is_blank_line(line))
        return pa.Table.from_pylist(rows)
    return pa.concat_tables([pa.ipc.open_stream(fs.open(p, "rb").read()).read_all() for p in paths])


def concat_documents(parts: list[pa.Table]) -> pa.Table:
    """The documents of every batch, in order, as one table: Polars settles the column types across batches (a
    column missing or all null in one batch takes its type from the others)."""
    import polars as pl  # here, so that `sift dedup` can import this module without loading Polars early

    if not parts:
        return DOC_SCHEMA.empty_table()
    frames = [cast(pl.DataFrame, pl.from_arrow(p)) for p in parts]  # a Table gives a DataFrame
    docs = pl.concat(frames, how="diagonal_relaxed").to_arrow()
    return docs.cast(pa.schema([pa.field(f.name, plain_type(f.type)) for f in docs.schema]))


def conform_documents(part: pa.Table, schema: pa.Schema) -> pa.Table:
    """One batch's documents cast to `schema`, the schema `concat_documents` gives for this batch and others: the
    same columns, types and values as this batch's rows in `concat_documents`'s table."""
    import polars as pl

    frames = [
        cast(pl.DataFrame, pl.from_arrow(schema.empty_table())),
        cast(pl.DataFrame, pl.from_arrow(part)),
    ]
    docs = pl.concat(frames, how="diagonal_relaxed").to_arrow()
    return docs.cast(pa.schema([pa.field(f.name, plain_type(f.type)) for f in docs.schema]))


def plain_type(t: pa.DataType) -> pa.DataType:
    """Polars hands strings back as large/view strings; the lake stores plain `string`."""
    if pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return pa.string()
    if pa.types.is_large_list(t):
        return pa.list_(plain_type(t.value_type))
    return t
