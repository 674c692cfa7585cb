"""Ingest's Spark plan: the lake read on Spark (`sift.pipelines.core.lake.spark.read_documents_spark`: the executors
open and parse the files, repeated ids are settled in Spark), written by the executors.

`write_ingest` writes `documents.parquet/` and `quarantine.parquet/` as Parquet datasets (folders of part files,
in input order, named part-00000.parquet, ... so a run's bytes do not depend on Spark's file names), and takes the
statistics (`ingest_stats`' counts) and the "every record failed the same way" check from Spark aggregations of
what it wrote: what reaches the driver is counts, one row per source and per kind of error, and at most
`Rejections.SAMPLE` quarantine rows when no record was accepted. `ingest_spark` is the in-memory form (the whole
tables collected, for callers that want tables).
"""

from __future__ import annotations

import os
import re
import uuid
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from sift.pipelines.core.lake import QUARANTINE_SCHEMA, Fields, IngestResult, ingest_stats
from sift.pipelines.ingest.documents import IngestOptions, Progress, canonical
from sift.pipelines.ingest.rejections import Rejections

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from sift.pipelines.core.lake.spark import SparkDocuments

_BASE = ["id", "source", "text"]
_PART = re.compile(r"part-(\d+)")


def fields_of(options: IngestOptions) -> Fields:
    return Fields(id=options.id_field, text=options.text_field, source=options.source_field)


def read(spark: SparkSession, uri: str, options: IngestOptions) -> SparkDocuments:
    """The input read on Spark with the ingest options."""
    from sift.pipelines.core.lake.spark import read_documents_spark

    return read_documents_spark(
        spark, uri, fields_of(options), default_source=options.default_source, batch_rows=options.batch_rows
    )


def _documents_in_order(docs: DataFrame) -> DataFrame:
    """Documents in input order, in ingest's column order (id, source, text, the other columns by name). The reader
    hands them in partitions of files in input order: sorting each partition suffices (no shuffle, no sampling
    pass over the input)."""
    others = sorted(c for c in docs.columns if c not in _BASE and c != "_row")
    return docs.sortWithinPartitions("_row").select(*_BASE, *others)


def ingest_spark(
    uri: str, options: IngestOptions, master: str | None = None, progress: Progress | None = None
) -> IngestResult:
    """In memory, on the process's Spark session on `master` (started on first use): the tables collected."""
    from sift.pipelines.core.engines import get_spark

    return plan(get_spark(master), uri, options, progress)


def plan(spark: Any, uri: str, options: IngestOptions, progress: Progress | None = None) -> IngestResult:
    """In memory: the input read on Spark, the documents and quarantine tables collected to the driver."""
    got = read(spark, uri, options)
    docs = _documents_in_order(got.documents).toArrow()
    quarantine = got.quarantine.orderBy("_order").drop("_order").toArrow().cast(QUARANTINE_SCHEMA)
    docs, quarantine = canonical(docs, quarantine)
    if progress:
        progress(docs.num_rows + quarantine.num_rows)
    return IngestResult(docs, quarantine, ingest_stats(docs, quarantine))


def write_ingest(
    spark: SparkSession, uri: str, output: str, options: IngestOptions, progress: Progress | None = None
) -> dict[str, Any]:
    """Ingest `uri` into the folder `output` (a local path or a URL Spark and fsspec both reach): the executors
    write documents.parquet/ and quarantine.parquet/; returns the statistics (the caller writes stats.json).

    Raises `InputError`, with nothing written, when no record was accepted and every one failed the same way."""
    import fsspec

    got = read(spark, uri, options)
    fs, root = fsspec.core.url_to_fs(output)
    fs.makedirs(root, exist_ok=True)
    url = _spark_url(output)
    run = uuid.uuid4().hex[:12]
    staged = {}
    try:
        for name, frame in (
            ("documents.parquet", _documents_in_order(got.documents)),
            ("quarantine.parquet", got.quarantine.orderBy("_order").drop("_order")),
        ):
            tmp = f".{name}.{run}.tmp"
            frame.write.mode("overwrite").option("compression", "zstd").parquet(f"{url}/{tmp}")
            staged[name] = f"{root}/{tmp}"
            _name_parts(fs, staged[name])
        docs = spark.read.parquet(f"{url}/{os.path.basename(staged['documents.parquet'])}")
        quarantine = spark.read.parquet(f"{url}/{os.path.basename(staged['quarantine.parquet'])}")
        stats = _stats(docs, quarantine)
        _refuse_if_all_rejected(quarantine, stats, uri, fields_of(options))
        for name, tmp in staged.items():
            target = f"{root}/{name}"
            if fs.exists(target):
                fs.rm(target, recursive=True)
            fs.mv(tmp, target, recursive=True)
        staged = {}
    finally:
        for tmp in staged.values():
            if fs.exists(tmp):
                fs.rm(tmp, recursive=True)
    if progress:
        progress(stats["rows_in"])
    return stats


def _spark_url(output: str) -> str:
    """The output folder as Spark names it: a URL as it is, a local path as an absolute file:// URL."""
    if "://" in output:
        return output.rstrip("/")
    return "file://" + os.path.abspath(output)


def _name_parts(fs: Any, folder: str) -> None:
    """Spark's part files renamed part-00000.parquet, ... in Spark's order; its other files (_SUCCESS, .crc
    checksums) removed: the folder's bytes depend on the rows alone."""
    entries = sorted(fs.ls(folder, detail=False))
    parts = []
    for path in entries:
        name = os.path.basename(path)
        match = _PART.match(name)
        if match and name.endswith(".parquet"):
            parts.append((int(match[1]), path))
        else:
            fs.rm(path, recursive=True)
    for i, (_, path) in enumerate(sorted(parts)):
        fs.mv(path, f"{folder}/part-{i:05d}.parquet")


def _stats(docs: DataFrame, quarantine: DataFrame) -> dict[str, Any]:
    """`ingest_stats`' counts, from Spark aggregations (one row per source and per kind of error)."""
    from pyspark.sql import functions as F

    per_source = {r["source"]: r["count"] for r in docs.groupBy("source").count().orderBy("source").collect()}
    kind = F.substring_index("error", ":", 1).alias("kind")
    errors = {r["kind"]: r["count"] for r in quarantine.groupBy(kind).count().orderBy("kind").collect()}
    text_bytes = docs.agg(F.sum(F.octet_length("text")).alias("n")).collect()[0]["n"] or 0
    documents, quarantined = sum(per_source.values()), sum(errors.values())
    return {
        "rows_in": documents + quarantined,
        "documents": documents,
        "quarantined": quarantined,
        "documents_per_source": per_source,
        "quarantine_by_error": errors,
        "text_bytes": int(text_bytes),
    }


def _refuse_if_all_rejected(quarantine: DataFrame, stats: dict[str, Any], uri: str, fields: Fields) -> None:
    """`Rejections.check` from the counts, with the first `Rejections.SAMPLE` quarantine rows as its sample."""
    if stats["documents"] or len(stats["quarantine_by_error"]) != 1:
        return
    seen = Rejections(fields)
    sample: pa.Table = quarantine.orderBy("file", "row").limit(Rejections.SAMPLE).toArrow()
    seen.add(0, sample.cast(QUARANTINE_SCHEMA))
    seen.quarantined = stats["quarantined"]
    seen.check(uri)
