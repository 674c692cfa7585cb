"""Ingest's documents and quarantine tables as both engines hand them over: the options, the documents of every
batch put together with one set of column types, and the canonical column order and row order written."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pyarrow as pa

from sift.pipelines.core.lake import QUARANTINE_SCHEMA
from sift.pipelines.core.lake.read import concat_documents

__all__ = ["IngestOptions", "Progress", "canonical", "concat_documents"]

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
