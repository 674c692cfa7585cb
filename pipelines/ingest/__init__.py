"""The ingest stage: raw inputs -> the documents contract plus a quarantine, on Polars (embedded) or Spark.

Both engine plans (engines/polars.py, engines/spark.py) share the kernels of `sift.pipelines.core.lake` (per-record parsing
and validation), so they accept and reject the same rows with the same messages. The Polars plan streams batches on
one machine; the Spark plan reads the input with the lake's Spark reader (the executors parse the files through
`mapInArrow`, repeated ids are settled with a window over the whole input, first by file, then row) and its
executors write the outputs as Parquet datasets. Outputs are in input order (file, then row), so both engines write
the same rows and values (documents.py).

An input of which no record is accepted, every one quarantined for the same reason (most often records whose
fields have other names than the options say), is refused with one line naming the reason, the keys seen and the
flags to use, rather than ingested into an empty table (rejections.py).

The stage's entry is `run(inputs, IngestConfig(...), output, engine)` (pipelines/core/stage.py); `ingest` and
`run_ingest` (api.py) take the options and an engine name.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from sift.pipelines.core.stage import Engine, one_input
from sift.pipelines.ingest.api import ingest, run_ingest
from sift.pipelines.ingest.config import IngestConfig
from sift.pipelines.ingest.documents import IngestOptions, Progress
from sift.pipelines.ingest.rejections import refuse_if_all_rejected

__all__ = ["IngestConfig", "IngestOptions", "ingest", "refuse_if_all_rejected", "run", "run_ingest"]


def run(
    inputs: str | Sequence[str],
    config: IngestConfig | None,
    output: str | os.PathLike[str],
    engine: Engine,
    *,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Ingest one input (a file or a folder) into `output`: documents.parquet, quarantine.parquet and stats.json
    (returned). `progress` is called with the number of records read, batch by batch."""
    uri = one_input(inputs, "ingest")
    options = IngestOptions(**(config or IngestConfig()).model_dump())
    return run_ingest(uri, output, options, engine=engine, progress=progress)
