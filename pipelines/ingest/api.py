"""Ingest with an engine (an `Engine` object or its name), in memory (`ingest`) or written to an output folder
(`run_ingest`)."""

from __future__ import annotations

import time
from pathlib import Path

from sift.pipelines.core import atomic
from sift.pipelines.core.lake import Fields, IngestResult, input_files, write_table
from sift.pipelines.core.stage import Engine, SparkEngine
from sift.pipelines.ingest.documents import IngestOptions, Progress
from sift.pipelines.ingest.engines.polars import ingest_polars
from sift.pipelines.ingest.engines.spark import ingest_spark
from sift.pipelines.ingest.engines.spark import plan as spark_plan
from sift.pipelines.ingest.rejections import Rejections


def ingest(
    uri: str,
    options: IngestOptions,
    *,
    engine: str | Engine = "polars",
    spark_master: str | None = None,
    progress: Progress | None = None,
) -> IngestResult:
    """Ingest `uri` with the chosen engine, in memory (`spark_master`: for engine="spark", the master of the
    process's session).

    Raises `InputError` when no record was accepted and every one failed for the same reason (say, records whose
    fields have other names than the options give): one line with the reason, the keys seen and the flags to use.
    """
    if isinstance(engine, SparkEngine):
        result = spark_plan(engine.session, uri, options, progress)
    elif engine == "spark":
        result = ingest_spark(uri, options, spark_master, progress)
    else:
        result = ingest_polars(uri, options, progress)
    seen = Rejections(Fields(id=options.id_field, text=options.text_field, source=options.source_field))
    seen.add(result.documents.num_rows, result.quarantine)
    seen.check(str(uri))
    return result


def run_ingest(
    uri: str,
    output: str | Path,
    options: IngestOptions,
    *,
    engine: str | Engine = "polars",
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
            "engine": engine if isinstance(engine, str) else engine.name,
            "seconds": round(time.perf_counter() - start, 3),
        }
    )
    atomic.write_json(result.stats, out / "stats.json", default=str)
    return result
