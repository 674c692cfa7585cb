"""Reading an input into the documents contract: one batch at a time, whole, or one file held in memory.

`iter_documents` streams every file of an input (see `files.input_files`) through the reader of its format
(`jsonl`, `parquet` for Parquet and Arrow, `csv`) and settles repeated ids across the whole input (`IdRegistry`:
the first occurrence by file, then row, stays), yielding documents and quarantine rows per batch;
`read_documents` gathers them into two tables with their statistics. `parse_file` is the per-file kernel of the
Spark engine (a whole file's bytes in, validated batches out; repeated ids are settled by the engine).
`read_table` reads a table as it is, with no validation.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterator
from typing import Any

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
    """Parse one whole input file held in memory (the Spark engine's per-file kernel)."""
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
