"""Ingest asset: each source's raw input -> the documents contract, with a quarantine and an accounting check.

Partitioned by source (dynamic partitions `sources`); a run of a partition range (a backfill: single-run policy, so
one Spark session serves every source of the range) ingests each source of the range in turn, and its checks hold
for every source of the run."""

import dagster as dg
import pyarrow as pa

from sift.pipelines.core.lake import count_input_records, read_table, write_table
from sift.pipelines.ingest import IngestOptions, ingest
from sift.pipelines.resources import SOURCES_PARTITIONS, EngineResource, LakeResource


class IngestRunConfig(dg.Config):
    """Run config of `raw_documents` (None = the stage config from sift.toml / environment)."""

    id_field: str | None = None
    text_field: str | None = None


def column_schema(table: pa.Table) -> dg.TableSchema:
    """A Dagster table schema from an Arrow schema."""
    return dg.TableSchema(columns=[dg.TableColumn(f.name, str(f.type)) for f in table.schema])


@dg.asset(
    group_name="raw",
    partitions_def=SOURCES_PARTITIONS,
    pool="spark",  # Spark-heavy: runs in a slot of the `spark` pool (pipelines/automation.py)
    kinds={"polars", "spark", "parquet"},
    owners=["team:data-platform"],
    # Spark-backed: a backfill of many sources is one run (one Spark session), not one run per source.
    backfill_policy=dg.BackfillPolicy.single_run(),
    description="Documents of one source (id, source, text, other columns), ids and sources normalised; "
    "unreadable rows quarantined with their row number, error and payload.",
    check_specs=[
        # blocking: a raw table that lost a record or repeats an id stops the run before dedup reads it
        dg.AssetCheckSpec(
            "every_record_accounted",
            asset="raw_documents",
            description="input = documents + quarantine",
            blocking=True,
        ),
        dg.AssetCheckSpec(
            "ids_unique", asset="raw_documents", description="document ids are unique", blocking=True
        ),
    ],
)
def raw_documents(
    context: dg.AssetExecutionContext, config: IngestRunConfig, lake: LakeResource, engine: EngineResource
) -> dg.MaterializeResult:
    from sift.pipelines.core.config import load_config
    from sift.pipelines.ingest.config import IngestConfig

    cfg = load_config(IngestConfig, config.model_dump())
    if engine.name == "spark":
        engine.spark()  # the session starts with the resource's Spark settings
    # One source per partition; a single-run backfill hands one run every source of the range.
    sources = list(context.partition_keys)
    rows, quarantined, records_in, dup_ids = 0, 0, 0, 0
    per_source: dict[str, dict[str, int]] = {}
    by_error: dict[str, int] = {}
    text_bytes = 0
    written = None
    for source in sources:
        options = IngestOptions(
            id_field=cfg.id_field,
            text_field=cfg.text_field,
            # Inside a partition the source is the partition: no record field names it (a record's own `source`
            # is kept as `source_input`).
            source_field=None,
            default_source=source,
            batch_rows=cfg.batch_rows,
        )
        uri = lake.incoming(source)
        result = ingest(uri, options, engine=engine.name, spark_master=engine.spark_master)
        docs_path = lake.path("raw_documents", f"{source}.parquet")
        write_table(result.documents, docs_path)
        write_table(result.quarantine, lake.path("raw_documents", "_quarantine", f"{source}.parquet"))
        context.log.info(
            f"{source}: {result.stats['documents']} documents, {result.stats['quarantined']} quarantined"
        )
        written = read_table(docs_path)
        ids = written.column("id")
        dup_ids += written.num_rows - len(pa.compute.unique(ids))
        n_in = count_input_records(uri)
        records_in += n_in
        rows += written.num_rows
        quarantined += result.quarantine.num_rows
        text_bytes += result.stats["text_bytes"]
        for error, n in result.stats["quarantine_by_error"].items():
            by_error[error] = by_error.get(error, 0) + n
        per_source[source] = {
            "records_in": n_in,
            "documents": written.num_rows,
            "quarantined": result.quarantine.num_rows,
        }
    one = len(sources) == 1
    docs_path = lake.path("raw_documents", f"{sources[0]}.parquet") if one else lake.path("raw_documents")
    quarantine_path = (
        lake.path("raw_documents", "_quarantine", f"{sources[0]}.parquet")
        if one
        else lake.path("raw_documents", "_quarantine")
    )
    schema = {"dagster/column_schema": column_schema(written)} if written is not None else {}
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": rows,
            **schema,
            "path": dg.MetadataValue.path(docs_path),
            "quarantine_path": dg.MetadataValue.path(quarantine_path),
            "quarantined": quarantined,
            "quarantine_by_error": dg.MetadataValue.json(by_error),
            "text_bytes": text_bytes,
            "engine": engine.name,
            **({} if one else {"per_source": dg.MetadataValue.json(per_source)}),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name="every_record_accounted",
                passed=all(s["records_in"] == s["documents"] + s["quarantined"] for s in per_source.values()),
                metadata={"records_in": records_in, "documents": rows, "quarantined": quarantined},
            ),
            dg.AssetCheckResult(check_name="ids_unique", passed=dup_ids == 0, metadata={"documents": rows}),
        ],
    )


ASSETS = [raw_documents]
CHECKS: list = []
