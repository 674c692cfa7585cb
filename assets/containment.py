"""Containment assets (R2D2, issue 4): table statistics, the containment graph and the lossless deletion plan
over the lake's tables, with checks that the plan never deletes a table without a kept container and that every
recipe rebuilds its table exactly.

Lineage: `lake_tables` is the lake's tables folder (`LakeResource.tables`, default `<lake>/tables/`), written by
whoever owns the lake, not by Sift (an external asset: `sift demo` writes its demo tables there before it
materialises). `table_statistics` and `containment_graph` both read those tables (the graph reads their schemas and
statistics itself, sharing the CSV statistics cache with `table_statistics`); `deletion_plan` reads the graph's
hand-off, `containment_result.json` (JSON with a schema version), and the tables themselves to verify each recipe.
"""

import os

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq

from sift.pipelines.core.atomic import write_parquet
from sift.pipelines.resources import EngineResource, LakeResource

GROUP = "containment"
STAGE = "containment"

lake_tables = dg.AssetSpec(
    "lake_tables",
    group_name=GROUP,
    owners=["team:data-platform"],
    kinds={"parquet", "csv"},
    description="The lake's tables that containment considers (Parquet files and folders, CSV): the folder "
    "`tables` of the lake resource (default <lake>/tables/). Written outside Sift; `sift demo` writes its demo "
    "tables under tables/demo/.",
)


@dg.asset(
    group_name=GROUP,
    owners=["team:data-platform"],
    deps=[lake_tables],
    kinds={"parquet"},
    description="Per table and column: type class, rows, NULLs, min/max (Parquet footers; CSV computed once), "
    "and the inputs in the lake's tables folder that are not readable tables, with their error.",
)
def table_statistics(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    from sift.dedup.containment.api import SKIPPED_SCHEMA
    from sift.dedup.containment.config import ContainConfig
    from sift.dedup.containment.graph import read_metadata
    from sift.dedup.containment.stats import stats_rows
    from sift.pipelines.core.config import load_config
    from sift.pipelines.core.lake.tables import discover_tables

    cfg = load_config(ContainConfig)
    out = lake.local("containment", stage=STAGE)
    os.makedirs(out, exist_ok=True)
    refs, problems = discover_tables(lake.tables_path(STAGE))
    good, schemas, stats, problems = read_metadata(
        refs, cfg, cache_dir=os.path.join(out, "cache", "csv_stats"), problems=problems
    )
    rows = [r for i, ref in enumerate(good) for r in stats_rows(ref.name, schemas[i], stats[i])]
    table = pa.Table.from_pylist(rows) if rows else pa.table({"table": pa.array([], pa.string())})
    write_parquet(table, os.path.join(out, "table_statistics.parquet"))
    skipped = pa.Table.from_pylist(
        [{"table": p.get("table"), "path": p.get("path"), "error": p.get("error")} for p in problems],
        schema=SKIPPED_SCHEMA,
    )
    write_parquet(skipped, os.path.join(out, "skipped.parquet"))
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": table.num_rows,
            "tables": len(good),
            "skipped": dg.MetadataValue.md(
                "\n".join(f"- `{p.get('table')}`: {p.get('error')}" for p in problems) or "none"
            ),
            "path": dg.MetadataValue.path(os.path.join(out, "table_statistics.parquet")),
        }
    )


@dg.asset(
    pool="spark",  # Spark-heavy: runs in a slot of the `spark` pool (pipelines/automation.py)
    group_name=GROUP,
    owners=["team:data-platform"],
    deps=[lake_tables],
    kinds={"polars", "spark", "parquet"},
    description="Every exact containment A <= B among the lake's tables (schema graph, min-max pruning, content "
    "check), with the method and evidence of each; the graph's transitive reduction drawn as a PNG.",
)
def containment_graph(
    context: dg.AssetExecutionContext, lake: LakeResource, engine: EngineResource
) -> dg.MaterializeResult:
    from sift.dedup.containment.api import save_result, write_graph
    from sift.dedup.containment.config import ContainConfig
    from sift.dedup.containment.graph import find_containment
    from sift.pipelines.core.config import load_config
    from sift.pipelines.core.lake.tables import discover_tables

    cfg = load_config(ContainConfig, {"engine": engine.name})
    out = lake.local("containment", stage=STAGE)
    refs, problems = discover_tables(lake.tables_path(STAGE))
    spark = engine.spark() if cfg.engine == "spark" else None
    context.log.info(
        f"contain: containment ({len(refs)} tables: schema graph, min-max pruning, content check)"
    )
    result = find_containment(
        refs, cfg, spark=spark, cache_dir=os.path.join(out, "cache", "csv_stats"), problems=problems
    )
    info = write_graph(result, out)
    save_result(result, os.path.join(out, "containment_result.json"))
    steps = result.steps
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(result.edges),
            "tables": steps["tables"],
            "pairs_after_schema_graph": steps["schema_graph"]["kept"],
            "pairs_after_minmax": steps["minmax_prune"]["kept"],
            "containment_pairs": len(result.edges),
            "steps": dg.MetadataValue.json({k: v for k, v in steps.items() if isinstance(v, dict)}),
            "graph": dg.MetadataValue.md(
                f"![containment graph]({os.path.join(out, 'containment_graph.png')})"
            ),
            "graph_nodes": info["nodes"],
            "path": dg.MetadataValue.path(os.path.join(out, "containment.parquet")),
            "engine": cfg.engine,
        }
    )


@dg.asset(
    pool="spark",  # Spark-heavy: runs in a slot of the `spark` pool (pipelines/automation.py)
    group_name=GROUP,
    owners=["team:data-platform"],
    # the plan reads the graph's hand-off; its recipe check rebuilds deleted tables from the kept tables
    deps=[containment_graph, lake_tables],
    kinds={"parquet"},
    description="Which contained tables to delete (storage + expected rebuild cost, latency bound; HiGHS MILP), "
    "with an exact rebuild recipe per deleted table, verified by rebuilding and checksumming. Plans only: "
    "moving tables to the trash is `sift contain --apply`.",
    check_specs=[
        dg.AssetCheckSpec(
            "deleted_tables_have_kept_container",
            asset="deletion_plan",
            description="every deleted table is contained in a table the plan keeps",
            blocking=True,
        ),
        dg.AssetCheckSpec(
            "every_recipe_verified",
            asset="deletion_plan",
            description="every deleted table's recipe rebuilds it with the original checksum",
            blocking=True,
        ),
    ],
)
def deletion_plan(
    context: dg.AssetExecutionContext, lake: LakeResource, engine: EngineResource
) -> dg.MaterializeResult:
    from sift.dedup.containment.api import load_result, plan_and_write, rebuild_table
    from sift.dedup.containment.config import ContainConfig
    from sift.dedup.containment.recipes import table_checksum
    from sift.pipelines.core.config import load_config

    cfg = load_config(ContainConfig)
    out = lake.local("containment", stage=STAGE)
    result = load_result(os.path.join(out, "containment_result.json"))
    context.log.info(f"contain: plan, recipes and outputs ({len(result.edges)} containment pairs)")
    # On Spark the executors build, verify and write the recipes (one task per planned deletion).
    stats = plan_and_write(result, out, cfg, spark=engine.spark() if engine.name == "spark" else None)
    plan = pq.read_table(os.path.join(out, "deletion_plan.parquet")).to_pylist()
    edges = pq.read_table(os.path.join(out, "containment.parquet"))
    pairs = set(
        zip(edges.column("contained").to_pylist(), edges.column("container").to_pylist(), strict=True)
    )
    action = {r["table"]: r["action"] for r in plan}
    deleted = [r for r in plan if r["action"] == "delete"]
    orphans = [
        r["table"]
        for r in deleted
        if action.get(r["reconstruct_from"]) != "keep" or (r["table"], r["reconstruct_from"]) not in pairs
    ]
    recipes = {r["table"]: r for r in pq.read_table(os.path.join(out, "recipes.parquet")).to_pylist()}
    unverified = []
    for r in deleted:
        try:
            ok = table_checksum(rebuild_table(out, r["table"])) == recipes[r["table"]]["checksum"]
        except Exception:
            ok = False
        if not ok:
            unverified.append(r["table"])
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(plan),
            "deleted": len(deleted),
            "bytes_deletable": stats["bytes_deletable"],
            "bytes_total": stats["bytes_total"],
            "solver": stats["plan"].get("solver", ""),
            "path": dg.MetadataValue.path(os.path.join(out, "deletion_plan.parquet")),
            "report": dg.MetadataValue.path(os.path.join(out, "report.md")),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name="deleted_tables_have_kept_container",
                passed=not orphans,
                metadata={"deleted": len(deleted), "without_kept_container": dg.MetadataValue.json(orphans)},
            ),
            dg.AssetCheckResult(
                check_name="every_recipe_verified",
                passed=not unverified,
                metadata={
                    "verified": len(deleted) - len(unverified),
                    "failed": dg.MetadataValue.json(unverified),
                },
            ),
        ],
    )


ASSETS = [lake_tables, table_statistics, containment_graph, deletion_plan]
CHECKS: list = []
