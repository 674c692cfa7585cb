"""Containment assets (R2D2, issue 4): table statistics, the containment graph and the lossless deletion plan
over the lake's `tables/` folder, with checks that the plan never deletes a table without a kept container and
that every recipe rebuilds its table exactly. `containment_demo_tables` writes a small lake of tables derived
from the ingested demo documents (subsets, projections, copies, a near miss, a CSV) under `tables/demo/`."""

import os

import dagster as dg
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from sift.pipelines.resources import EngineResource, LakeResource

GROUP = "containment"


def _local(lake: LakeResource, *parts: str) -> str:
    path = lake.path(*parts)
    if "://" in path and not path.startswith("file://"):
        raise ValueError(f"containment reads tables from local paths; lake root {lake.root} is remote")
    return path.removeprefix("file://")


def write_demo_tables(documents: pa.Table, folder: str) -> list[str]:
    """Derived tables of the demo documents with known containment; returns the files written."""
    os.makedirs(folder, exist_ok=True)
    text = documents.column("text").to_pylist()
    facts = pa.table(
        {
            "id": documents.column("id"),
            "source": documents.column("source"),
            "n_chars": pa.array([len(t) for t in text], pa.int64()),
            "n_words": pa.array([len(t.split()) for t in text], pa.int64()),
            "first_word": pa.array([(t.split() or [""])[0][:40] for t in text]),
        }
    )
    rng = np.random.default_rng(0)
    n = facts.num_rows
    median = float(np.median(facts.column("n_chars").to_numpy())) if n else 0.0
    tables = {"documents": facts, "documents_copy": facts.take(rng.permutation(n))}
    for source in sorted(set(facts.column("source").to_pylist())):
        tables[f"by_source/{source}"] = facts.filter(pc.equal(facts.column("source"), source))
    tables["long_documents"] = facts.filter(pc.greater(facts.column("n_chars"), median))
    tables["word_counts"] = facts.select(["source", "n_words"])
    tables["word_counts_float"] = tables["word_counts"].cast(
        pa.schema([("source", pa.string()), ("n_words", pa.float64())])
    )
    near = tables["long_documents"].slice(0, 40).to_pydict()
    if near["n_words"]:
        near["n_words"][0] += 1
    tables["near_miss"] = pa.table(near, schema=facts.schema)
    written = []
    for name, table in tables.items():
        path = os.path.join(folder, f"{name}.parquet")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        pq.write_table(table, path + ".tmp")
        os.replace(path + ".tmp", path)
        written.append(path)
    csv = os.path.join(folder, "sample.csv")
    pacsv.write_csv(facts.slice(0, 50).select(["id", "n_chars"]), csv)
    written.append(csv)
    with open(os.path.join(folder, "README.txt"), "w") as f:
        f.write("Demo tables derived from the ingested documents (not a table: listed as skipped).\n")
    return written


@dg.asset(
    group_name=GROUP,
    deps=["raw_documents"],
    kinds={"parquet"},
    description="Demo lake for the containment stage: tables derived from the ingested documents under "
    "tables/demo/ (per-source subsets, projections, a shuffled copy, an int->float variant, a near miss, a CSV).",
)
def containment_demo_tables(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    folder = _local(lake, "raw_documents")
    parts = sorted(
        os.path.join(folder, f)
        for f in (os.listdir(folder) if os.path.isdir(folder) else [])
        if f.endswith(".parquet")
    )
    if not parts:
        raise FileNotFoundError(f"no raw documents under {folder}: materialise raw_documents first")
    docs = pa.concat_tables([pq.read_table(p).select(["id", "source", "text"]) for p in parts])
    written = write_demo_tables(docs, _local(lake, "tables", "demo"))
    return dg.MaterializeResult(metadata={"tables_written": len(written), "documents": docs.num_rows})


@dg.asset(
    group_name=GROUP,
    deps=[containment_demo_tables],
    kinds={"parquet"},
    description="Per table and column: type class, rows, NULLs, min/max (Parquet footers; CSV computed once), "
    "and the inputs under tables/ that are not readable tables, with their error.",
)
def table_statistics(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    from sift.dedup.containment.api import SKIPPED_SCHEMA, _atomic_parquet
    from sift.dedup.containment.config import ContainConfig
    from sift.dedup.containment.graph import read_metadata
    from sift.dedup.containment.stats import stats_rows
    from sift.pipelines.core.config import load_config
    from sift.pipelines.lake_tables import discover_tables

    cfg = load_config(ContainConfig)
    out = _local(lake, "containment")
    os.makedirs(out, exist_ok=True)
    refs, problems = discover_tables(_local(lake, "tables"))
    good, schemas, stats, problems = read_metadata(
        refs, cfg, cache_dir=os.path.join(out, "cache", "csv_stats"), problems=problems
    )
    rows = [r for i, ref in enumerate(good) for r in stats_rows(ref.name, schemas[i], stats[i])]
    table = pa.Table.from_pylist(rows) if rows else pa.table({"table": pa.array([], pa.string())})
    _atomic_parquet(table, os.path.join(out, "table_statistics.parquet"))
    skipped = pa.Table.from_pylist(
        [{"table": p.get("table"), "path": p.get("path"), "error": p.get("error")} for p in problems],
        schema=SKIPPED_SCHEMA,
    )
    _atomic_parquet(skipped, os.path.join(out, "skipped.parquet"))
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
    group_name=GROUP,
    deps=[table_statistics],
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
    from sift.pipelines.lake_tables import discover_tables

    cfg = load_config(ContainConfig, {"engine": engine.name})
    out = _local(lake, "containment")
    refs, problems = discover_tables(_local(lake, "tables"))
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
    group_name=GROUP,
    deps=[containment_graph],
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
def deletion_plan(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    from sift.dedup.containment.api import load_result, plan_and_write, rebuild_table
    from sift.dedup.containment.config import ContainConfig
    from sift.dedup.containment.recipes import table_checksum
    from sift.pipelines.core.config import load_config

    cfg = load_config(ContainConfig)
    out = _local(lake, "containment")
    result = load_result(os.path.join(out, "containment_result.json"))
    context.log.info(f"contain: plan, recipes and outputs ({len(result.edges)} containment pairs)")
    stats = plan_and_write(result, out, cfg)
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


ASSETS = [containment_demo_tables, table_statistics, containment_graph, deletion_plan]
CHECKS: list = []
