"""Ingest with an engine (an `Engine` object or its name), in memory (`ingest`) or written to an output folder
(`run_ingest`): on Polars one Parquet file per table, on Spark one Parquet dataset (a folder of part files) per
table, written by the executors."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from sift.pipelines.core import atomic
from sift.pipelines.core.lake import Fields, IngestResult, input_files, write_table
from sift.pipelines.core.stage import Engine, SparkEngine
from sift.pipelines.ingest.documents import IngestOptions, Progress
from sift.pipelines.ingest.engines.polars import ingest_polars
from sift.pipelines.ingest.engines.spark import ingest_spark, write_ingest
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
    output: str | os.PathLike[str],
    options: IngestOptions,
    *,
    engine: str | Engine = "polars",
    spark_master: str | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Ingest `uri` with the chosen engine into the folder `output` (a local path or a URL): documents.parquet,
    quarantine.parquet and stats.json; returns the statistics.

    Polars writes one Parquet file per table. Spark's executors write one Parquet dataset per table (a folder of
    part files, `engines/spark.py`), and no document or quarantine row travels to the driver."""
    start = time.perf_counter()
    out = os.fspath(output)
    if isinstance(engine, SparkEngine) or engine == "spark":
        if isinstance(engine, SparkEngine):
            session = engine.session
        else:
            from sift.pipelines.core.engines import get_spark

            session = get_spark(spark_master)
        stats = write_ingest(session, uri, out, options, progress)
    else:
        result = ingest(uri, options, engine=engine, progress=progress)
        write_table(result.documents, _child(out, "documents.parquet"))
        write_table(result.quarantine, _child(out, "quarantine.parquet"))
        stats = result.stats
    stats.update(
        {
            "input": str(uri),
            "skipped_files": input_files(uri).skipped,
            "engine": engine if isinstance(engine, str) else engine.name,
            "seconds": round(time.perf_counter() - start, 3),
        }
    )
    atomic.write_json(stats, _child(out, "stats.json"), default=str)
    return stats


def _child(folder: str, name: str) -> str:
    """`name` inside the output folder, a local path or a URL."""
    if "://" in folder:
        return f"{folder.rstrip('/')}/{name}"
    return str(Path(folder) / name)
