"""Ingest asset: each source's raw input -> the documents contract, with a quarantine and an accounting check."""

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

    source = context.partition_key
    cfg = load_config(IngestConfig, config.model_dump())
    options = IngestOptions(
        id_field=cfg.id_field,
        text_field=cfg.text_field,
        # Inside a partition the source is the partition: no record field names it (a record's own `source` is
        # kept as `source_input`).
        source_field=None,
        default_source=source,
        batch_rows=cfg.batch_rows,
    )
    uri = lake.incoming(source)
    if engine.name == "spark":
        engine.spark()  # the session starts with the resource's Spark settings
    result = ingest(uri, options, engine=engine.name, spark_master=engine.spark_master)

    docs_path = lake.path("raw_documents", f"{source}.parquet")
    quarantine_path = lake.path("raw_documents", "_quarantine", f"{source}.parquet")
    write_table(result.documents, docs_path)
    write_table(result.quarantine, quarantine_path)
    context.log.info(
        f"{source}: {result.stats['documents']} documents, {result.stats['quarantined']} quarantined"
    )

    records_in = count_input_records(uri)
    written = read_table(docs_path)
    accounted = written.num_rows + result.quarantine.num_rows
    ids = written.column("id")
    unique = len(pa.compute.unique(ids)) == written.num_rows
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": written.num_rows,
            "dagster/column_schema": column_schema(written),
            "path": dg.MetadataValue.path(docs_path),
            "quarantine_path": dg.MetadataValue.path(quarantine_path),
            "quarantined": result.stats["quarantined"],
            "quarantine_by_error": dg.MetadataValue.json(result.stats["quarantine_by_error"]),
            "text_bytes": result.stats["text_bytes"],
            "engine": engine.name,
        },
        check_results=[
            dg.AssetCheckResult(
                check_name="every_record_accounted",
                passed=records_in == accounted,
                metadata={
                    "records_in": records_in,
                    "documents": written.num_rows,
                    "quarantined": accounted - written.num_rows,
                },
            ),
            dg.AssetCheckResult(
                check_name="ids_unique", passed=unique, metadata={"documents": written.num_rows}
            ),
        ],
    )


ASSETS = [raw_documents]
CHECKS: list = []
