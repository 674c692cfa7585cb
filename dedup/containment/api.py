"""R2D2 end to end: containment graph, deletion plan with verified recipes, report, and the optional apply step.

`run_contain` writes into the output directory:
- containment.parquet: contained, container, columns, method, evidence, contained_rows, container_rows
- deletion_plan.parquet: table, action, reconstruct_from, bytes, access_frequency, storage_cost, rebuild_cost,
  rebuild_seconds, verified, reason, applied, trash_path
- recipes.parquet: one exact rebuild recipe per deleted table (see recipes.py); on Spark a folder of part files,
  one per recipe, written by the executors (engines/spark_recipes.py), read by pyarrow as the same table
- table_statistics.parquet, tables.json, skipped.parquet (inputs that are not readable tables, with the error)
- stats.json (pairs considered and pruned per step, timings, the solver's objective/bound), report.md and
  containment_graph.png
- applies/<run>/recipes.parquet and journal.jsonl with `apply` (see apply.py)
- cache/csv_stats/*.json: CSV statistics (JSON with a schema version)
With `apply`, every table planned for deletion is checked again (its files, its content, its recipe) and only then
moved (never erased) to LAKE/.sift_trash/<run>/, after the recipes that rebuild it are on disk (apply.py).
"""

from __future__ import annotations

import functools
import json
import logging
import os
import shutil
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from sift.dedup.containment.apply import apply_plan, find_recipe, finish_apply
from sift.dedup.containment.config import ContainConfig
from sift.dedup.containment.content import Edge
from sift.dedup.containment.engines.polars import PolarsEngine
from sift.dedup.containment.graph import ContainmentResult, find_containment
from sift.dedup.containment.plan import choose_deletions
from sift.dedup.containment.recipes import (
    RECIPE_SCHEMA,
    make_recipe,
    original_text,
    rebuild,
    source_record,
    table_checksum,
)
from sift.dedup.containment.report import draw_graph
from sift.dedup.containment.schema import ColumnInfo, TableSchema
from sift.dedup.containment.side import SIDE_MIN_TABLES, call, current, share, using
from sift.dedup.containment.stats import TableStats, stats_rows
from sift.dedup.containment.tables import TableRef, forget_csv, read_table
from sift.pipelines.core.atomic import atomic_path, write_bytes, write_parquet, write_text

PROGRESS = logging.getLogger("sift.contain")  # one line per phase (pipelines/progress.py shows it)

PLAN_SCHEMA = pa.schema(
    [
        ("table", pa.string()),
        ("action", pa.string()),
        ("reconstruct_from", pa.string()),
        ("bytes", pa.int64()),
        ("access_frequency", pa.float64()),
        ("storage_cost", pa.float64()),
        ("rebuild_cost", pa.float64()),
        ("rebuild_seconds", pa.float64()),
        ("verified", pa.bool_()),
        ("reason", pa.string()),
        ("applied", pa.bool_()),
        ("trash_path", pa.string()),
    ]
)
SKIPPED_SCHEMA = pa.schema([("table", pa.string()), ("path", pa.string()), ("error", pa.string())])


def read_access_log(path: str) -> dict[str, float]:
    """Accesses per table from a Parquet or CSV table with a `table` column and optionally `count` (or
    `accesses`); without a count column every row is one access."""
    t = pq.read_table(path) if path.endswith(".parquet") or os.path.isdir(path) else pacsv.read_csv(path)
    if "table" not in t.column_names:
        raise ValueError(f"{path}: the access log needs a 'table' column (has {t.column_names})")
    names = t.column("table").cast(pa.string()).to_pylist()
    count_col = next((c for c in ("count", "accesses") if c in t.column_names), None)
    counts = t.column(count_col).cast(pa.float64()).to_pylist() if count_col else [1.0] * len(names)
    out: dict[str, float] = defaultdict(float)
    for n, c in zip(names, counts, strict=True):
        if n is not None and c is not None:
            out[n] += float(c)
    return dict(out)


def _recipe(item: tuple, original: pa.Table | None = None, container: pa.Table | None = None) -> dict:
    """One verified-or-failed recipe. item = (table, container, ref, schema, container ref, container schema,
    row mapping); the tables are read here unless given."""
    _t, _c, ref, schema, cref, cschema, mapping = item
    try:
        return make_recipe(
            ref,
            schema,
            cref,
            cschema,
            mapping,
            original=read_table(ref) if original is None else original,
            container_table=read_table(cref) if container is None else container,
        )
    except Exception as exc:
        return {"table": ref.name, "verified": False, "error": f"{type(exc).__name__}: {exc}"}


def _recipes(items: list[tuple]) -> list[dict]:
    """Recipes that read their own tables (the side worker's share)."""
    return [_recipe(item) for item in items]


def build_recipes(
    result: ContainmentResult,
    plan: dict,
    config: ContainConfig,
    engine: PolarsEngine | None = None,
) -> dict[int, dict]:
    """A verified-or-failed recipe for every planned deletion (row mapping from the fingerprints). With a side
    worker (side.current()) the recipes are shared out with it: it reads its tables itself, this process uses the
    engine's cached ones."""
    engine = engine or PolarsEngine(result.refs, result.schemas, config.cache_bytes)
    items = []
    for t, e in sorted(plan.items()):
        c = e.container
        keys = tuple(sorted(result.schemas[t].keys))
        mapping = engine.mapping(engine.projection(t, keys), engine.projection(c, keys))
        items.append((t, c, result.refs[t], result.schemas[t], result.refs[c], result.schemas[c], mapping))

    def local(part: list[tuple]) -> list[dict]:
        return [_recipe(item, engine.table(item[0]), engine.table(item[1])) for item in part]

    recipes = share(current(), _recipes, items, local=local)
    return {item[0]: rec for item, rec in zip(items, recipes, strict=True)}


def run_contain(
    refs: list[TableRef],
    output_dir: str,
    config: ContainConfig | None = None,
    *,
    spark: Any = None,
    lake_root: str | None = None,
    access_log: str | None = None,
    apply: bool = False,
    problems: list[dict] | None = None,
    run_id: str | None = None,
) -> dict:
    """Find containment, plan deletions, write every output; optionally apply the plan. Returns stats.json.

    The runtime's side worker, when there is one (side.current(); `sift contain` starts one), shares the metadata
    reads and the recipes, solves the plan and draws the graph, on lakes of SIDE_MIN_TABLES tables or more (Polars
    engine). Outputs are the same."""
    config = config or ContainConfig()
    os.makedirs(output_dir, exist_ok=True)
    if access_log:
        read_access_log(access_log)  # fail on a bad log before the long work
    # a small lake is done before the worker would help; a Spark run has its cluster
    pool = current() if spark is None and len(refs) >= SIDE_MIN_TABLES else None
    with using(pool):
        return _run_contain(refs, output_dir, config, spark, lake_root, access_log, apply, problems, run_id)


def _run_contain(
    refs: list[TableRef],
    output_dir: str,
    config: ContainConfig,
    spark: Any,
    lake_root: str | None,
    access_log: str | None,
    apply: bool,
    problems: list[dict] | None,
    run_id: str | None,
) -> dict:
    try:  # find_containment starts with no parsed CSV kept; none is kept past the run
        PROGRESS.info(
            "contain: containment (%d tables: schema graph, min-max pruning, content check)", len(refs)
        )
        result = find_containment(
            refs,
            config,
            spark=spark,
            cache_dir=os.path.join(output_dir, "cache", "csv_stats"),
            problems=problems,
        )
        PROGRESS.info("contain: plan, recipes and outputs (%d containment pairs)", len(result.edges))
        return plan_and_write(
            result,
            output_dir,
            config,
            lake_root=lake_root,
            access_log=access_log,
            apply=apply,
            run_id=run_id,
            spark=spark,
        )
    finally:
        forget_csv()


RESULT_SCHEMA_VERSION = 1  # of containment_result.json (the hand-off between the containment assets)


def save_result(result: ContainmentResult, path: str) -> None:
    """Keep a containment result for a later planning step, as JSON with a schema version."""
    doc = {
        "schema_version": RESULT_SCHEMA_VERSION,
        "refs": [r.to_dict() for r in result.refs],
        "schemas": [
            {
                "name": s.name,
                "arrow_schema": s.schema.serialize().to_pybytes().hex(),
                "columns": [[c.position, c.name, c.key, c.klass] for c in s.columns],
            }
            for s in result.schemas
        ],
        "stats": [s.to_json() for s in result.stats],
        "edges": [[e.contained, e.container, e.method, e.evidence] for e in result.edges],
        "representative": sorted(result.representative.items()),
        "problems": result.problems,
        "steps": result.steps,
    }
    write_text(json.dumps(doc, default=str, sort_keys=True), path)


def load_result(path: str) -> ContainmentResult:
    """A result saved by `save_result` (refused when written by another schema version)."""
    with open(path) as f:
        doc = json.load(f)
    if doc.get("schema_version") != RESULT_SCHEMA_VERSION:
        raise ValueError(
            f"{path}: schema version {doc.get('schema_version')}, expected {RESULT_SCHEMA_VERSION}"
        )
    schemas = []
    for i, s in enumerate(doc["schemas"]):
        arrow = pa.ipc.read_schema(pa.py_buffer(bytes.fromhex(s["arrow_schema"])))
        cols = [ColumnInfo(p, n, k, c, arrow.field(p).type) for p, n, k, c in s["columns"]]
        schemas.append(TableSchema(i, s["name"], arrow, cols))
    return ContainmentResult(
        refs=[TableRef.from_dict(r) for r in doc["refs"]],
        schemas=schemas,
        stats=[TableStats.from_json(s) for s in doc["stats"]],
        edges=[Edge(a, b, m, ev) for a, b, m, ev in doc["edges"]],
        representative={int(k): int(v) for k, v in doc["representative"]},
        problems=doc["problems"],
        steps=doc["steps"],
    )


def plan_and_write(
    result: ContainmentResult,
    output_dir: str,
    config: ContainConfig | None = None,
    *,
    lake_root: str | None = None,
    access_log: str | None = None,
    apply: bool = False,
    run_id: str | None = None,
    spark: Any = None,
) -> dict:
    """Plan deletions for a containment result, build and verify recipes, write every output, optionally apply.
    The runtime's side worker, when there is one (side.current()), solves the plan and draws the graph
    meanwhile. With a Spark session the recipes are built and written by its executors (`SparkRecipes`)."""
    config = config or ContainConfig()
    os.makedirs(output_dir, exist_ok=True)
    t0 = time.perf_counter()
    freq_log = read_access_log(access_log) if access_log else None
    names = [r.name for r in result.refs]
    nbytes = [r.bytes for r in result.refs]
    if freq_log is None:
        freq = [config.default_access_frequency] * len(names)
    else:
        freq = [freq_log.get(n, 0.0) for n in names]
    t1 = time.perf_counter()
    # The solver runs on the side worker when there is one (it imports scipy there, not here); the first plan is
    # asked for before the graph drawing, which then runs there while this process builds the recipes.
    choose = functools.partial(
        choose_deletions,
        storage_cost=config.storage_cost_per_byte,
        scan_cost=config.scan_cost_per_byte,
        scan_bps=config.scan_bytes_per_second,
        max_seconds=config.max_rebuild_seconds,
        milp_max_edges=config.milp_max_edges,
        time_limit=config.milp_time_limit_s,
    )
    # Plan, build recipes, and re-plan without any edge whose recipe failed verification (e.g. a container
    # holding NaN where the table holds NULL: contained, but not rebuildable bit for bit).
    all_edges = [(e.contained, e.container) for e in result.edges]
    failed: set[tuple[int, int]] = set()
    cache: dict[tuple[int, int], dict] = {}
    recipe_s = 0.0
    recipe_engine = result.engine or PolarsEngine(result.refs, result.schemas, config.cache_bytes)
    on_spark = None
    if spark is not None:
        from sift.dedup.containment.engines.spark_recipes import SparkRecipes

        on_spark = SparkRecipes(spark, result.refs, result.schemas, output_dir, files=apply)
    pool = current()
    planned = call(pool, choose, all_edges, names, nbytes, freq)
    graph = start_graph(result, output_dir)
    rounds = 0
    for _ in range(20):
        rounds += 1
        plan, plan_info = planned()
        tr = time.perf_counter()
        todo = {t: e for t, e in plan.items() if (t, e.container) not in cache}
        if on_spark is not None:
            cache.update(on_spark.build([(t, e.container) for t, e in sorted(todo.items())]))
        else:
            for t, built in build_recipes(result, todo, config, recipe_engine).items():
                cache[(t, todo[t].container)] = built
        recipe_s += time.perf_counter() - tr
        bad = {(t, e.container) for t, e in plan.items() if not cache[(t, e.container)].get("verified")}
        if not bad:
            break
        failed |= bad
        planned = call(pool, choose, [e for e in all_edges if e not in failed], names, nbytes, freq)
    plan_info.update(rounds=rounds, edges_failed_verification=len(failed))
    recipes = {t: cache[(t, e.container)] for t, e in plan.items()}
    failed_by_table = {t: f"from {names[c]}: {cache[(t, c)].get('error')}" for t, c in sorted(failed)}
    t2 = time.perf_counter() - recipe_s
    t3 = time.perf_counter()

    contained_in: dict[int, list[int]] = defaultdict(list)
    for edge in result.edges:
        contained_in[edge.contained].append(edge.container)
    used_as_container = {e.container for e in plan.values()}
    rows: list[dict[str, Any]] = []
    for t, name in enumerate(names):
        storage = config.storage_cost_per_byte * nbytes[t]
        e = plan.get(t)
        rec = recipes.get(t)
        row: dict[str, Any] = {
            "table": name,
            "action": "keep",
            "reconstruct_from": None,
            "bytes": nbytes[t],
            "access_frequency": freq[t],
            "storage_cost": storage,
            "rebuild_cost": None,
            "rebuild_seconds": None,
            "verified": None,
            "reason": "",
            "applied": False,
            "trash_path": None,
        }
        if e is not None and rec is not None and rec.get("verified"):
            row.update(
                action="delete",
                reconstruct_from=names[e.container],
                rebuild_cost=e.rebuild_cost,
                rebuild_seconds=e.rebuild_seconds,
                verified=True,
                reason=f"saves {e.saving:.6g} per period; recipe verified",
            )
        elif e is not None:
            row.update(verified=False, reason=f"kept: recipe not verified ({(rec or {}).get('error')})")
        elif t in used_as_container:
            row["reason"] = "kept: container of a deleted table"
        elif t in failed_by_table:
            row.update(verified=False, reason=f"kept: no recipe verified ({failed_by_table[t]})")
        elif contained_in.get(t):
            row["reason"] = "kept: rebuilding costs more than storing, or too slow"
        else:
            row["reason"] = "kept: not contained in another table"
        rows.append(row)

    if on_spark is not None:  # the executors kept what the recipe keeps of the table it deletes
        on_spark.write(recipes)
        if apply:  # moving the lake's files happens here, with the recipes of the tables it moves
            recipes = {
                t: on_spark.read(t) if rows[t]["action"] == "delete" else r for t, r in recipes.items()
            }
    else:
        for t, row in enumerate(rows):  # what the recipe keeps of the table it deletes (a CSV's text; files)
            if row["action"] == "delete":
                recipes[t].update(source_record(result.refs[t], recipe_engine.table(t), files=apply))
    applied = 0
    apply_info: dict | None = None
    if apply:
        if lake_root is None:
            raise ValueError("--apply needs the lake root")
        apply_info = apply_plan(rows, recipes, result.refs, output_dir, lake_root, run_id)
        applied = apply_info["applied"]
    t4 = time.perf_counter()

    write_parquet(
        pa.Table.from_pylist(rows, schema=PLAN_SCHEMA), os.path.join(output_dir, "deletion_plan.parquet")
    )
    if on_spark is None:
        recipe_rows = [r for _t, r in sorted(recipes.items()) if "schema" in r]
        if os.path.isdir(os.path.join(output_dir, "recipes.parquet")):  # a Spark run's folder of part files
            shutil.rmtree(os.path.join(output_dir, "recipes.parquet"))
        write_parquet(
            pa.Table.from_pylist(recipe_rows, schema=RECIPE_SCHEMA),
            os.path.join(output_dir, "recipes.parquet"),
        )
    srows = [r for i, n in enumerate(names) for r in stats_rows(n, result.schemas[i], result.stats[i])]
    write_parquet(pa.Table.from_pylist(srows), os.path.join(output_dir, "table_statistics.parquet"))
    write_parquet(
        pa.Table.from_pylist(
            [
                {"table": p.get("table"), "path": p.get("path"), "error": p.get("error")}
                for p in result.problems
            ],
            schema=SKIPPED_SCHEMA,
        ),
        os.path.join(output_dir, "skipped.parquet"),
    )
    write_text(
        json.dumps([r.to_dict() for r in result.refs], indent=1), os.path.join(output_dir, "tables.json")
    )

    graph_info = graph()

    stats = {
        **result.steps,
        "containment_pairs": len(result.edges),
        "graph": graph_info,
        "plan": plan_info,
        "recipes": {
            "built": len(recipes),
            "verified": sum(1 for r in recipes.values() if r.get("verified")),
            "seconds": t3 - t2,
        },
        "deleted": sum(1 for r in rows if r["action"] == "delete"),
        "bytes_deletable": int(sum(r["bytes"] for r in rows if r["action"] == "delete")),
        "bytes_total": int(sum(nbytes)),
        "applied": applied,
        "apply": None
        if apply_info is None
        else {
            "run": apply_info["run"],
            "trash": apply_info["trash"],
            "recipes": os.path.join(output_dir, "applies", apply_info["run"], "recipes.parquet"),
            "interrupted_earlier": apply_info["interrupted_earlier"],
        },
        "skipped": result.problems,
        "timings": {
            "containment_s": result.steps.get("seconds", 0.0),
            "access_log_s": t1 - t0,
            "plan_s": t2 - t1,
            "recipes_s": t3 - t2,
            "apply_s": t4 - t3,
            "total_s": result.steps.get("seconds", 0.0) + time.perf_counter() - t0,
        },
    }
    write_text(
        json.dumps(stats, indent=1, default=str, sort_keys=True), os.path.join(output_dir, "stats.json")
    )
    write_text(render_report(stats, rows, result), os.path.join(output_dir, "report.md"))
    if apply_info is not None:
        finish_apply(apply_info)
    return stats


def start_graph(result: ContainmentResult, output_dir: str) -> Callable[[], dict]:
    """Write containment.parquet and start drawing the graph (on the side worker if there is one); the returned
    callable waits for the drawing and gives the graph's counts."""
    os.makedirs(output_dir, exist_ok=True)
    write_parquet(result.table(), os.path.join(output_dir, "containment.parquet"))
    groups, node_edges = _graph_nodes(result)
    return call(current(), _draw, groups, node_edges, os.path.join(output_dir, "containment_graph.png"))


def _draw(groups: dict[str, int], node_edges: set[tuple[str, str]], path: str) -> dict:
    drawn = draw_graph(groups, node_edges, path)
    return {"nodes": len(groups), "node_edges": len(node_edges), "reduced_edges_drawn": drawn}


def _graph_nodes(result: ContainmentResult) -> tuple[dict[str, int], set[tuple[str, str]]]:
    names = [r.name for r in result.refs]
    groups: dict[str, int] = defaultdict(int)
    for r in result.representative.values():
        groups[names[r]] += 1
    node_edges = {
        (names[result.representative[e.contained]], names[result.representative[e.container]])
        for e in result.edges
        if result.representative[e.contained] != result.representative[e.container]
    }
    return dict(groups), node_edges


def write_graph(result: ContainmentResult, output_dir: str) -> dict:
    """containment.parquet and containment_graph.png (collapsed identical tables, transitive reduction)."""
    os.makedirs(output_dir, exist_ok=True)
    write_parquet(result.table(), os.path.join(output_dir, "containment.parquet"))
    groups, node_edges = _graph_nodes(result)
    return _draw(groups, node_edges, os.path.join(output_dir, "containment_graph.png"))


def render_report(stats: dict, plan_rows: list[dict], result: ContainmentResult) -> str:
    s1, s2, s3 = stats["schema_graph"], stats["minmax_prune"], stats["content_check"]
    lines = [
        "# Containment report (R2D2)",
        "",
        f"{stats['tables']} tables read, {len(result.problems)} inputs skipped; "
        f"{stats['containment_pairs']} containment pairs.",
        "",
        "![containment graph](containment_graph.png)",
        "",
        "| step | pairs considered | pruned | kept | seconds |",
        "|---|---|---|---|---|",
        f"| 1 schema graph | {s1['all_pairs']} | {s1['pruned']} | {s1['kept']} | {s1['seconds']:.3f} |",
        f"| 2 min-max | {s2['considered']} | {s2['pruned']} | {s2['kept']} | {s2['seconds']:.3f} |",
        f"| 3 content | {s3['considered']} | {s3['pruned']} | {s3['considered'] - s3['pruned']} | {s3['seconds']:.3f} |",
        "",
        f"Plan ({stats['plan'].get('solver')}): delete {stats['deleted']} tables, "
        f"{stats['bytes_deletable']} of {stats['bytes_total']} bytes; {stats['applied']} moved to trash.",
        "",
    ]
    deleted = [r for r in plan_rows if r["action"] == "delete"]
    if deleted:
        lines += ["| table | rebuilt from | bytes | applied |", "|---|---|---|---|"]
        lines += [
            f"| {r['table']} | {r['reconstruct_from']} | {r['bytes']} | {r['applied']} |" for r in deleted
        ]
        lines.append("")
    if result.problems:
        lines += ["## Skipped inputs", "", "| table | path | error |", "|---|---|---|"]
        for p in result.problems:
            err = str(p.get("error", "")).replace("|", "\\|").replace("\n", " ")[:300]
            lines.append(f"| {p.get('table')} | {p.get('path')} | {err} |")
        lines.append("")
    return "\n".join(lines)


def rebuild_table(plan_dir: str, table: str) -> pa.Table:
    """Rebuild one deleted table from the recipes of a plan directory (the last run's, else each apply's, newest
    first); raises if the checksum differs."""
    recipe = find_recipe(plan_dir, table)
    out = rebuild(recipe)
    if table_checksum(out) != recipe["checksum"]:
        raise ValueError(
            f"{table}: rebuilt table does not match the original's checksum (container changed?)"
        )
    return out


def original_file(plan_dir: str, table: str) -> bytes | None:
    """The original text of a deleted CSV table, when its recipe keeps it (see recipes.source_record)."""
    return original_text(find_recipe(plan_dir, table))


def write_table(table: pa.Table, path: str, original: bytes | None = None) -> None:
    """Write a rebuilt table (CSV when the path ends in .csv, else Parquet), atomically. A CSV is written as
    `original` (the deleted CSV's own text, from `original_file`) when given, so it comes back byte for byte."""
    if path.endswith(".csv") and original is not None:
        write_bytes(original, path)
    elif path.endswith(".csv"):
        with atomic_path(path) as tmp:
            pacsv.write_csv(table, tmp)
    else:
        write_parquet(table, path)


__all__ = ["original_file", "rebuild_table", "read_access_log", "run_contain", "write_table"]
