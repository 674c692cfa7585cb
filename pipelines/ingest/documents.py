"""Ingest's documents and quarantine tables as both engines hand them over: the options, the documents of every
batch put together with one set of column types, and the canonical column order and row order written."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import pyarrow as pa

from sift.pipelines.core.lake import DOC_SCHEMA, QUARANTINE_SCHEMA

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


def canonical(docs: pa.Table, quarantine: pa.Table) -> tuple[pa.Table, pa.Table]:
    """Fixed column order and types, quarantine sorted by (file, row): the same bytes from every engine."""
    base = ["id", "source", "text"]
    docs = docs.select(base + sorted(c for c in docs.column_names if c not in base))
    docs = docs.cast(pa.schema([docs.schema.field(c) for c in docs.column_names]))
    quarantine = quarantine.cast(QUARANTINE_SCHEMA).sort_by([("file", "ascending"), ("row", "ascending")])
    return docs, quarantine


def concat_documents(parts: list[pa.Table]) -> pa.Table:
    """The documents of every batch, in order, as one table: Polars settles the column types across batches (a
    column missing or all null in one batch takes its type from the others). Both engines end here, with the same
    per-batch tables, so they write the same columns and types."""
    import polars as pl  # here, so that `sift dedup` can import this module without loading Polars early

    if not parts:
        return DOC_SCHEMA.empty_table()
    frames = [cast(pl.DataFrame, pl.from_arrow(p)) for p in parts]  # a Table gives a DataFrame
    docs = pl.concat(frames, how="diagonal_relaxed").to_arrow()
    return docs.cast(pa.schema([pa.field(f.name, _plain(f.type)) for f in docs.schema]))


def _plain(t: pa.DataType) -> pa.DataType:
    """Polars hands strings back as large/view strings; the lake stores plain `string`."""
    if pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return pa.string()
    if pa.types.is_large_list(t):
        return pa.list_(_plain(t.value_type))
    return t
