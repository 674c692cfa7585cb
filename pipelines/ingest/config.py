"""Typed configuration of the ingest stage: how raw inputs map onto the documents contract."""

from __future__ import annotations

from pydantic import Field

from sift.pipelines.core.config import StageConfig


class IngestConfig(StageConfig, stage="ingest"):
    """How raw inputs map onto the documents contract."""

    id_field: str = Field("id", description="Input field holding the record id.")
    text_field: str = Field("text", description="Input field holding the text.")
    source_field: str = Field("source", description="Input field holding the source name.")
    default_source: str | None = Field(
        None, description="Source for records without one (default: the input file's name)."
    )
    batch_rows: int = Field(65536, gt=0, description="Rows per streamed batch.")
