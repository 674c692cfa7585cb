"""Ingest's Polars plan (the embedded default): stream the input's batches through the lake's kernels on one
machine; Polars puts the accepted rows together (documents.concat_documents)."""

from __future__ import annotations

import pyarrow as pa

from sift.pipelines.core.lake import QUARANTINE_SCHEMA, IngestResult, ingest_stats, iter_documents
from sift.pipelines.ingest.documents import IngestOptions, Progress, canonical, concat_documents


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
    docs = concat_documents(docs_parts)
    quarantine = pa.concat_tables(q_parts) if q_parts else QUARANTINE_SCHEMA.empty_table()
    docs, quarantine = canonical(docs, quarantine)
    return IngestResult(docs, quarantine, ingest_stats(docs, quarantine))
