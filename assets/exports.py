"""Export assets: the curated sets for the downstream stages (model compression and training) as Parquet and
JSONL.zst shards of bounded size with a `manifest.json`, published atomically (pipelines/core/export.py: each
export is a version folder, and `<export>/current` is a symlink swapped in one rename, so a reader sees the old
export or the new one, never half of one).

- `curated_export`: the sampled training mixture (`sampled_mixture`, `<lake>/sampling/sampled_documents.parquet`)
  as `<lake>/exports/curated/current/`. Its manifest records the stages that produced it: the ingest quarantine per
  source (`raw_documents`' `_quarantine/` files), the dedup run's config and removals (`duplicate_clusters`'
  `dedup/run/stats.json`), the sampling run's config and the documents not drawn (`sample_allocation`'s
  `sampling/run/stats.json`).
- `recovery_export`: the PASER recovery set (`recovery_set`, `<lake>/select/recovery_set/recovery_set.parquet`)
  as `<lake>/exports/recovery/current/`, with the selection run's settings and removals (`instruction_clusters`'
  `select/run/stats.json`).

Each manifest also names the Dagster run that exported it and, per upstream asset, the run of its latest
materialisation and that run's config of the asset. A blocking check re-reads every shard against the manifest.
"""

import glob
import json
import os
from typing import Any

import dagster as dg
import pyarrow.parquet as pq

from sift.pipelines.resources import LakeResource

GROUP = "exports"
STAGE = "export"
OWNERS = ["team:data-platform"]


class ExportRunConfig(dg.Config):
    """Shard bounds of an export: rows, and bytes of uncompressed JSON lines, per shard; the zstd level."""

    max_rows: int = 100_000
    max_bytes: int = 256 * 1024 * 1024
    zstd_level: int = 10


def _stats(path: str) -> dict[str, Any]:
    with open(path) as f:
        return dict(json.load(f))


def _upstream_runs(context: dg.AssetExecutionContext, keys: list[str]) -> dict[str, Any]:
    """Per upstream asset: the run of its latest materialisation and that run's config of the asset."""
    out: dict[str, Any] = {}
    for key in keys:
        event = context.instance.get_latest_materialization_event(dg.AssetKey(key))
        if event is None:
            out[key] = None
            continue
        run = context.instance.get_run_by_id(event.run_id)
        ops = (run.run_config or {}).get("ops", {}) if run is not None else {}
        out[key] = {
            "run_id": event.run_id,
            "partition": event.dagster_event.partition if event.dagster_event is not None else None,
            "run_config": ops.get(key, {}).get("config", {}),
        }
    return out


def _publish(
    context: dg.AssetExecutionContext,
    config: ExportRunConfig,
    table_path: str,
    out: str,
    dataset: str,
    upstream: list[str],
    stages: dict[str, Any],
    removed: dict[str, int],
) -> dg.MaterializeResult:
    from sift.pipelines.core.export import ShardLimits, export_table, read_manifest, verify

    table = pq.read_table(table_path)
    limits = ShardLimits(max_rows=config.max_rows, max_bytes=config.max_bytes, zstd_level=config.zstd_level)
    folder = export_table(
        table,
        out,
        context.run.run_id,
        limits,
        manifest={
            "dataset": dataset,
            "run_id": context.run.run_id,
            "source": table_path,
            "stages": stages,
            "upstream": _upstream_runs(context, upstream),
            "removed": removed,
        },
    )
    manifest = read_manifest(out)
    bad = verify(out)
    shards = manifest["shards"]
    context.log.info(
        f"export: {table.num_rows} rows of {dataset} in {len(shards['parquet'])} shards per format, {out}/current"
    )
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": table.num_rows,
            "dagster/column_schema": dg.TableSchema(
                columns=[dg.TableColumn(f["name"], f["type"]) for f in manifest["schema"]]
            ),
            "shards": len(shards["parquet"]),
            "parquet_bytes": sum(e["bytes"] for e in shards["parquet"]),
            "jsonl_zst_bytes": sum(e["bytes"] for e in shards["jsonl.zst"]),
            "removed": dg.MetadataValue.json(removed),
            "current": dg.MetadataValue.path(os.path.join(out, "current")),
            "version": dg.MetadataValue.path(str(folder)),
            "manifest": dg.MetadataValue.path(os.path.join(folder, "manifest.json")),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name="manifest_matches_shards",
                passed=not bad,
                metadata={"shards": 2 * len(shards["parquet"]), "mismatched": dg.MetadataValue.json(bad)},
            )
        ],
    )


def _check(asset: str) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(
        "manifest_matches_shards",
        asset=asset,
        description="every shard's size and SHA-256 on disk match the published manifest",
        blocking=True,
    )


@dg.asset(
    group_name=GROUP,
    deps=["sampled_mixture", "sample_allocation", "duplicate_clusters", "raw_documents"],
    kinds={"parquet", "json"},
    owners=OWNERS,
    description="The curated training mixture for the downstream stages: Parquet and JSONL.zst shards of bounded "
    "size with manifest.json (rows, bytes, SHA-256 per shard; schema; run; each stage's config and removals), "
    "published atomically as <lake>/exports/curated/current/.",
    check_specs=[_check("curated_export")],
)
def curated_export(
    context: dg.AssetExecutionContext, config: ExportRunConfig, lake: LakeResource
) -> dg.MaterializeResult:
    dedup = _stats(lake.local("dedup", "run", "stats.json", stage=STAGE))
    sample = _stats(lake.local("sampling", "run", "stats.json", stage=STAGE))
    quarantine = {
        os.path.basename(p).removesuffix(".parquet"): pq.read_metadata(p).num_rows
        for p in sorted(glob.glob(lake.local("raw_documents", "_quarantine", "*.parquet", stage=STAGE)))
    }
    stages = {
        "ingest": {"quarantined_per_source": quarantine},
        "dedup": {
            "config": dedup.get("config"),
            "rows_in": dedup.get("rows_in"),
            "kept": dedup.get("kept"),
            "removed_by_reason": dedup.get("removed_by_reason"),
        },
        "sample": {
            "config": sample.get("config"),
            "rows_in": sample.get("rows_in"),
            "budget": sample.get("budget"),
            "spent": sample.get("spent"),
            "allocation": sample.get("final", {}).get("allocation"),
        },
    }
    removed = {
        "ingest_quarantined": sum(quarantine.values()),
        "dedup_removed": int(dedup.get("removed", 0)),
        "dedup_quarantined": int(dedup.get("quarantined", 0)),
        "sample_dropped": int(sum((sample.get("dropped") or {}).values())),
        "sample_not_drawn": int(sample.get("not_sampled", 0)),
    }
    return _publish(
        context,
        config,
        lake.local("sampling", "sampled_documents.parquet", stage=STAGE),
        lake.local("exports", "curated", stage=STAGE),
        "curated",
        ["raw_documents", "duplicate_clusters", "sample_allocation", "sampled_mixture"],
        stages,
        removed,
    )


@dg.asset(
    group_name=GROUP,
    deps=["recovery_set", "instruction_clusters"],
    kinds={"parquet", "json"},
    owners=OWNERS,
    description="The PASER recovery set for the recovery fine-tuning stage: Parquet and JSONL.zst shards with "
    "manifest.json (the selection's settings and removals), published atomically as <lake>/exports/recovery/current/.",
    check_specs=[_check("recovery_export")],
)
def recovery_export(
    context: dg.AssetExecutionContext, config: ExportRunConfig, lake: LakeResource
) -> dg.MaterializeResult:
    select = _stats(lake.local("select", "run", "stats.json", stage=STAGE))
    stages = {
        "select": {
            k: select.get(k)
            for k in ("budget", "seed", "strategy", "embedder", "degradation", "rows_in", "pool", "selected")
        }
    }
    removed = {
        "select_rejected": int(select.get("rejected", 0)),
        "select_not_selected": int(select.get("not_selected", 0)),
    }
    return _publish(
        context,
        config,
        lake.local("select", "recovery_set", "recovery_set.parquet", stage=STAGE),
        lake.local("exports", "recovery", stage=STAGE),
        "recovery",
        ["selection_instructions", "instruction_clusters", "recovery_set"],
        stages,
        removed,
    )


ASSETS = [curated_export, recovery_export]
CHECKS: list[Any] = []
