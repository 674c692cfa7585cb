"""R2D2 steps 1-3 end to end: from table references to the verified containment graph.

`find_containment` reads every table's schema and statistics (on the executors with Spark; problems are recorded and
the table skipped), builds the schema containment graph (step 1), prunes it with min-max statistics (step 2) and
decides the rest by content (step 3), recording per step how many pairs it considered and pruned and how long it
took.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from sift.dedup.containment.config import ContainConfig
from sift.dedup.containment.content import ContentCheck, Edge, evidence_json
from sift.dedup.containment.schema import TableSchema, column_infos, schema_graph
from sift.dedup.containment.side import LATER, current, share, warm
from sift.dedup.containment.stats import TableStats, prune_reason, table_stats
from sift.dedup.containment.tables import TableRef, forget_csv, read_schema, read_table

CONTAINMENT_SCHEMA = pa.schema(
    [
        ("contained", pa.string()),
        ("container", pa.string()),
        ("columns", pa.list_(pa.string())),
        ("method", pa.string()),
        ("evidence", pa.string()),
        ("contained_rows", pa.int64()),
        ("container_rows", pa.int64()),
    ]
)


@dataclass
class ContainmentResult:
    refs: list[TableRef]
    schemas: list[TableSchema]
    stats: list[TableStats]
    edges: list[Edge]
    representative: dict[int, int]
    problems: list[dict] = field(default_factory=list)
    steps: dict[str, Any] = field(default_factory=dict)
    engine: Any = None  # the embedded engine with its caches, reused by the plan step (never saved)

    def index(self) -> dict[str, int]:
        return {r.name: i for i, r in enumerate(self.refs)}

    def table(self) -> pa.Table:
        rows = []
        for e in sorted(self.edges, key=lambda e: (self.refs[e.contained].name, self.refs[e.container].name)):
            rows.append(
                {
                    "contained": self.refs[e.contained].name,
                    "container": self.refs[e.container].name,
                    "columns": [c.name for c in self.schemas[e.contained].columns],
                    "method": e.method,
                    "evidence": evidence_json(e.evidence),
                    "contained_rows": self.stats[e.contained].rows,
                    "container_rows": self.stats[e.container].rows,
                }
            )
        return pa.Table.from_pylist(rows, schema=CONTAINMENT_SCHEMA)


def make_engine(name: str, refs, schemas, config: ContainConfig, spark: Any = None):
    if name == "polars":
        from sift.dedup.containment.engines.polars import PolarsEngine

        return PolarsEngine(refs, schemas, config.cache_bytes)
    if name == "spark":
        from sift.dedup.containment.engines.spark import SparkEngine

        if spark is None:
            raise ValueError("the spark engine needs a SparkSession")
        return SparkEngine(refs, schemas, config.cache_bytes, spark)
    raise ValueError(f"unknown engine {name!r} (polars or spark)")


def _metadata_part(
    refs: list[TableRef], config: ContainConfig, cache_dir: str | None
) -> list[tuple[TableRef, TableSchema | None, TableStats | None, dict | None]]:
    """Schema and statistics of each table (index -1 until merged), or the problem that makes it unreadable."""
    out: list[tuple[TableRef, TableSchema | None, TableStats | None, dict | None]] = []
    for ref in refs:
        try:
            whole = read_table(ref) if ref.format == "csv" else None  # CSV: one parse for schema and stats
            sch = read_schema(ref) if whole is None else whole.schema
            ts = TableSchema(-1, ref.name, sch, column_infos(sch, config.case_insensitive))
            st = table_stats(ref, ts, cache_dir, table=whole)
        except Exception as exc:  # any unreadable table is reported and skipped
            out.append(
                (
                    ref,
                    None,
                    None,
                    {"table": ref.name, "path": ref.location, "error": f"{type(exc).__name__}: {exc}"},
                )
            )
            continue
        out.append((ref, ts, st, None))
    return out


METADATA_SCHEMA = "i int, schema binary, stats string, problem string"


def _metadata_tasks(batches, case_insensitive: bool, cache_dir: str | None):
    """mapInArrow body: `_metadata_part` of each table on an executor, as (index, Arrow schema, statistics JSON,
    problem JSON); a table whose statistics JSON cannot hold is sent with neither (read again by the driver)."""
    import json

    config = ContainConfig(case_insensitive=case_insensitive)
    for batch in batches:
        out: list[dict] = []
        for task in batch.to_pylist():
            ref = TableRef.from_dict(json.loads(task["ref"]))
            [(_ref, ts, st, problem)] = _metadata_part([ref], config, cache_dir)
            row: dict[str, Any] = {"i": task["i"], "schema": None, "stats": None, "problem": None}
            if problem is not None:
                row["problem"] = json.dumps(problem)
            elif ts is not None and st is not None:
                try:
                    row["stats"] = json.dumps(st.to_json())
                    row["schema"] = ts.schema.serialize().to_pybytes()
                except (TypeError, ValueError):
                    pass
            out.append(row)
        if out:
            yield pa.RecordBatch.from_pylist(
                out,
                schema=pa.schema(
                    [
                        ("i", pa.int32()),
                        ("schema", pa.binary()),
                        ("stats", pa.string()),
                        ("problem", pa.string()),
                    ]
                ),
            )


def _metadata_on_spark(
    spark: Any, refs: list[TableRef], config: ContainConfig, cache_dir: str | None
) -> list[tuple[TableRef, TableSchema | None, TableStats | None, dict | None]]:
    """`_metadata_part` of every table on the executors (one row per table reaches the driver: the schema, the
    column statistics and any problem, never the table's rows)."""
    import json

    from sift.dedup.containment.schema import column_infos

    if not refs:
        return []
    tasks = [{"i": i, "ref": json.dumps(r.to_dict())} for i, r in enumerate(refs)]
    body = functools.partial(_metadata_tasks, case_insensitive=config.case_insensitive, cache_dir=cache_dir)
    # To the driver: one row per table (its schema and statistics), never its rows.
    got = {
        r["i"]: r
        for r in spark.createDataFrame(tasks, "i int, ref string")
        .repartition(min(len(tasks), 64))
        .mapInArrow(body, METADATA_SCHEMA)
        .collect()
    }
    out: list[tuple[TableRef, TableSchema | None, TableStats | None, dict | None]] = []
    for i, ref in enumerate(refs):
        r = got[i]
        if r["problem"] is not None:
            out.append((ref, None, None, json.loads(r["problem"])))
        elif r["schema"] is None:
            out += _metadata_part([ref], config, cache_dir)
        else:
            sch = pa.ipc.read_schema(pa.py_buffer(r["schema"]))
            ts = TableSchema(-1, ref.name, sch, column_infos(sch, config.case_insensitive))
            out.append((ref, ts, TableStats.from_json(json.loads(r["stats"])), None))
    return out


def read_metadata(
    refs: list[TableRef],
    config: ContainConfig | None = None,
    *,
    cache_dir: str | None = None,
    problems: list[dict] | None = None,
    spark: Any = None,
) -> tuple[list[TableRef], list[TableSchema], list[TableStats], list[dict]]:
    """Schemas and statistics of every readable table (sorted by name); unreadable ones become problems.

    With a side worker process (the runtime's current one, side.current()), the tables are shared out with it in
    chunks; with a Spark session they are read by its executors. The result is the same as reading them all
    here."""
    config = config or ContainConfig()
    problems = list(problems or [])
    ordered = sorted(refs, key=lambda r: r.name)
    if spark is not None:
        parts = _metadata_on_spark(spark, ordered, config, cache_dir)
    else:
        pool = current()
        parts = share(pool, functools.partial(_metadata_part, config=config, cache_dir=cache_dir), ordered)
        warm(pool, LATER)
    good: list[TableRef] = []
    schemas: list[TableSchema] = []
    tstats: list[TableStats] = []
    for ref, ts, st, problem in parts:
        if problem is not None:
            problems.append(problem)
            continue
        assert ts is not None and st is not None  # a table without a problem has its schema and statistics
        good.append(ref)
        schemas.append(TableSchema(len(schemas), ts.name, ts.schema, ts.columns))
        tstats.append(st)
    return good, schemas, tstats, problems


def find_containment(
    refs: list[TableRef],
    config: ContainConfig | None = None,
    *,
    spark: Any = None,
    cache_dir: str | None = None,
    problems: list[dict] | None = None,
    engine_factory: Any = None,
) -> ContainmentResult:
    """Every exact containment A <= B among the tables (see the package docstring for the definition). The
    runtime's side worker, when there is one (side.current()), shares the tables' metadata reads."""
    config = config or ContainConfig()
    forget_csv()  # a CSV parsed by an earlier run may have been rewritten since
    t0 = time.perf_counter()
    good, schemas, tstats, problems = read_metadata(
        refs,
        config,
        cache_dir=cache_dir,
        problems=problems,
        spark=spark if config.engine == "spark" else None,
    )
    t1 = time.perf_counter()

    pairs, s1 = schema_graph(schemas)
    t2 = time.perf_counter()

    survivors = []
    prune_counts: dict[str, int] = {}
    for a, b in pairs:
        why = prune_reason(schemas[a], tstats[a], schemas[b], tstats[b])
        if why is None:
            survivors.append((a, b))
        else:
            kind = why.split(":")[0]
            prune_counts[kind] = prune_counts.get(kind, 0) + 1
    t3 = time.perf_counter()

    if engine_factory is not None:
        engine = engine_factory(good, schemas, config.cache_bytes)
    else:
        engine = make_engine(config.engine, good, schemas, config, spark)
    try:
        check = ContentCheck(
            good,
            schemas,
            [s.rows for s in tstats],
            engine,
            config.sample_rows,
            config.seed,
            canon_cache_bytes=config.cache_bytes // 4,
        )
        edges, rep, t_content = check.run(survivors)
    finally:
        engine.close()
    t4 = time.perf_counter()

    survivor_set = set(survivors)
    steps = {
        "seconds": t4 - t0,
        "tables": len(good),
        "tables_skipped": len(problems),
        "read_metadata": {"seconds": t1 - t0},
        "schema_graph": {
            **s1,
            "pruned": s1["all_pairs"] - len(pairs),
            "kept": len(pairs),
            "seconds": t2 - t1,
        },
        "minmax_prune": {
            "considered": len(pairs),
            "pruned": len(pairs) - len(survivors),
            "kept": len(survivors),
            "pruned_by": prune_counts,
            "seconds": t3 - t2,
        },
        "content_check": {
            "considered": len(survivors),
            "engine": config.engine,
            **{k: (int(v) if isinstance(v, int | bool) else v) for k, v in sorted(check.stats.items())},
            "pruned": len(survivors) - len(survivor_set & {(e.contained, e.container) for e in edges}),
            **t_content,
            "seconds": t4 - t3,
        },
    }
    kept_engine = engine if getattr(engine, "name", "") == "polars" else None
    return ContainmentResult(good, schemas, tstats, edges, rep, problems, steps, kept_engine)
