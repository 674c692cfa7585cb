"""Spark engine of SlimPajama near-duplicate dedup (SlimPajama-DC section 2), for corpora beyond one machine.

Every per-document table is a DataFrame from the input to the outputs; the driver only plans, collects counts and
aggregates bounded by the number of sources and cluster sizes, and writes the small summary files:
- input: the documents read by the executors (`sift.pipelines.core.lake.spark.read_documents_spark`) or, for
  documents the caller already holds, a DataFrame made from them; `_row` increases in input order but need not be
  dense, so nothing here assumes 0..n-1;
- facts: the same kernels as the Polars engine (dedup/kernels) through `mapInArrow`;
- exact-duplicate representatives and band buckets with window minima of the priority STRUCT (source rank, minus
  length, id, `_row`): each bucket links its members to its best member (linear work, no global sort);
- verification (verified mode): exact Jaccard of each candidate edge in `mapInArrow`;
- connected components in pure DataFrames with the alternating large-star / small-star algorithm (Kiveris et al.
  2014), checkpointed every round and run until the edge set stops changing;
- survivors: the greedy kernel per component with `groupBy(...).applyInArrow` (verified mode);
- decisions: `plan.assemble`'s rules as DataFrame joins and aggregations (too short, exact or near duplicate,
  duplicate_of, similarity, cluster_id = the id of the best member of the document's cluster);
- outputs: `kept.parquet/`, `removed.parquet/`, `clusters.parquet/`, `quarantine.parquet/` are folders of Parquet
  part files written by the executors in `_row` order and renamed `part-NNNNN.parquet` by the driver (a rerun gives
  the same bytes); `stats.json`, `report.md` and `cluster_sizes.png` come from Spark aggregations.

Each phase's table is written by Spark under `<output>/_work/spark/` and then marked complete, so a killed run
resumes from its last finished phase.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from sift.dedup.config import DedupConfig
from sift.dedup.kernels import band_columns
from sift.dedup.outputs import (
    CLUSTERS_SCHEMA,
    OUTPUT_COMPRESSION,
    REMOVED_SCHEMA,
    compute_stats,
    report_markdown,
)
from sift.dedup.plots import cluster_histogram
from sift.dedup.work import WorkDir, phase, split_documents
from sift.pipelines.core.atomic import atomic_dir, write_json, write_text
from sift.pipelines.core.lake import QUARANTINE_SCHEMA

MAX_ROUNDS = 1000  # a guard against a bug, never a silent cap: exceeding it raises
URI_ROW_SHIFT = 56  # several input URIs: `_row` of URI i is offset by i << URI_ROW_SHIFT (order kept, unique)
GREEDY_SCHEMA = "row long, kept boolean, dup_row long, dup_id string, sim double"


def _facts_schema(bands: int) -> str:
    cols = ["_row long", "id string", "source string", "length long", "nbytes long", "nchars long"]
    cols += ["nshingles long", "h1 long", "h2 long"] + [f"{c} long" for c in band_columns(bands)]
    cols += ["signature array<bigint>"]
    return ", ".join(cols)


def _facts_fn(cfg_json: str):
    def fn(batches):
        from sift.dedup import kernels
        from sift.dedup.config import DedupConfig

        cfg = DedupConfig.model_validate_json(cfg_json)
        for batch in batches:
            if batch.num_rows:
                yield kernels.facts_batch(batch, cfg)

    return fn


def _jaccard_fn(cfg_json: str):
    def fn(batches):
        import numpy as np

        from sift.dedup import kernels
        from sift.dedup.config import DedupConfig

        cfg = DedupConfig.model_validate_json(cfg_json)
        cut = kernels.prefilter_count(cfg)
        k = cfg.num_perm
        for batch in batches:
            n = batch.num_rows
            if not n:
                continue
            todo = np.arange(n)
            if cut > 0:
                sa = batch.column("sa").flatten().to_numpy().reshape(n, k)
                sb = batch.column("sb").flatten().to_numpy().reshape(n, k)
                todo = np.flatnonzero(kernels.signature_agreement(sa, sb) >= cut)
            sim = np.full(n, np.nan)
            if todo.size:
                idx = pa.array(todo)
                na = kernels.normalise(
                    batch.column("ta").take(idx), unicode_punctuation=cfg.strip_unicode_punctuation
                )
                nb = kernels.normalise(
                    batch.column("tb").take(idx), unicode_punctuation=cfg.strip_unicode_punctuation
                )
                sim[todo] = kernels.jaccard_pairs(
                    na,
                    nb,
                    ngram=cfg.ngram,
                    word=cfg.shingle == "word",
                    seed=cfg.seed,
                    threshold=cfg.threshold,
                )
            yield pa.RecordBatch.from_arrays(
                [batch.column("a"), batch.column("b"), pa.array(sim, mask=np.isnan(sim))],
                names=["a", "b", "similarity"],
            )

    return fn


def _greedy_fn(table: pa.Table) -> pa.Table:
    """Greedy survivors of one component: nodes sorted by priority (source rank, longer, id)."""
    import pyarrow.compute as pc

    from sift.dedup.kernels import greedy_survivors

    nodes = pa.concat_tables(
        [
            table.select(["a", "a_p0", "a_p1", "a_p2"]).rename_columns(["row", "p0", "p1", "p2"]),
            table.select(["b", "b_p0", "b_p1", "b_p2"]).rename_columns(["row", "p0", "p1", "p2"]),
        ]
    )
    nodes = nodes.group_by(["row", "p0", "p1", "p2"]).aggregate([])
    nodes = nodes.take(
        pc.sort_indices(nodes, sort_keys=[("p0", "ascending"), ("p1", "ascending"), ("p2", "ascending")])
    )
    rows = nodes.column("row").to_numpy()
    order = np.argsort(rows)
    local = lambda r: order[np.searchsorted(rows[order], r)]  # noqa: E731
    kept, dup, sim = greedy_survivors(
        len(rows), local(table.column("a").to_numpy()), local(table.column("b").to_numpy()),
        table.column("similarity").to_numpy(),
    )  # fmt: skip
    dup_row = np.where(dup >= 0, rows[np.maximum(dup, 0)], -1)
    ids = nodes.column("p2").combine_chunks().cast(pa.string())
    dup_id = pc.if_else(
        pa.array(dup >= 0), ids.take(pa.array(np.maximum(dup, 0))), pa.scalar(None, pa.string())
    )
    return pa.table(
        {
            "row": rows,
            "kept": kept,
            "dup_row": dup_row,
            "dup_id": dup_id,
            "sim": pa.array(sim, mask=np.isnan(sim)),
        }
    )


def _join(left: DataFrame, right: DataFrame, on: str, how: str = "inner") -> DataFrame:
    """A shuffle join: per-document tables (documents, edges, nodes) are never broadcast, which would send them
    through the driver, whatever size Spark estimates for them."""
    return left.join(right.hint("shuffle_merge"), on, how)


def _checkpoint(df: DataFrame) -> DataFrame:
    return df.localCheckpoint(eager=True)


def connected_components(edges: DataFrame) -> DataFrame:
    """(node, comp) for every node of an undirected edge list (a, b); comp = the smallest node id of its component.

    Alternating large-star and small-star rounds until the canonical edge set (u > v) no longer changes; then every
    component is a star around its minimum.
    """
    e = edges.select(F.greatest("a", "b").alias("u"), F.least("a", "b").alias("v")).where("u != v").distinct()
    e = _checkpoint(e)
    e_count = e.count()
    for _ in range(MAX_ROUNDS):
        # Large star: each node x links its larger neighbours to m(x) = min(x, neighbours).
        both = e.select(F.col("u").alias("x"), F.col("v").alias("y")).unionAll(
            e.select(F.col("v").alias("x"), F.col("u").alias("y"))
        )
        m = both.groupBy("x").agg(F.least(F.min("y"), F.col("x")).alias("m"))
        large = (
            _join(both, m, "x")
            .where(F.col("y") > F.col("x"))
            .select(F.col("y").alias("p"), F.col("m").alias("q"))
        )
        large = (
            large.select(F.greatest("p", "q").alias("u"), F.least("p", "q").alias("v"))
            .where("u != v")
            .distinct()
        )
        # Small star: each node u links itself and its smaller neighbours to the smallest of them.
        sm = large.groupBy("u").agg(F.min("v").alias("m"))
        small = (
            _join(large, sm, "u")
            .select(F.col("v").alias("p"), F.col("m").alias("q"))
            .unionAll(sm.select(F.col("u").alias("p"), F.col("m").alias("q")))
        )
        small = (
            small.select(F.greatest("p", "q").alias("u"), F.least("p", "q").alias("v"))
            .where("u != v")
            .distinct()
        )
        small = _checkpoint(small)
        # Converged when the edge set is unchanged: same size and no edge that was not there before.
        small_count = small.count()
        if small_count == e_count and small.subtract(e).isEmpty():
            return (
                small.select(F.col("u").alias("node"), F.col("v").alias("comp"))
                .unionAll(small.select(F.col("v").alias("node"), F.col("v").alias("comp")))
                .distinct()
            )
        e, e_count = small, small_count
    raise RuntimeError(f"connected components did not converge in {MAX_ROUNDS} rounds")


def _priority(config: DedupConfig) -> tuple[Any, Any, Any]:
    """Spark columns (p0, p1, p2): source rank, minus length, id; ascending = preferred first."""
    rank = F.lit(len(config.source_priority)).cast("long")
    for i, s in reversed(list(enumerate(config.source_priority))):
        rank = F.when(F.col("source") == s, F.lit(i).cast("long")).otherwise(rank)
    return rank, -F.col("length"), F.col("id")


def _uri(path: Path) -> str:
    """A local path as the `file://` URI Spark reads and writes (the cluster's default file system may differ)."""
    return path.resolve().as_uri()


def _persist(spark: SparkSession, work: WorkDir, name: str, build: Callable[[], DataFrame]) -> DataFrame:
    """Read a finished work table, or build it, have Spark write it and mark it complete."""
    path = work.root / "spark" / name
    if not work.done(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        build().write.mode("overwrite").parquet(_uri(path))
        work.mark(path)
    return spark.read.parquet(_uri(path))


# input ------------------------------------------------------------------------------------------------------------
DOCS_SCHEMA = pa.schema(
    [("_row", pa.int64()), ("id", pa.string()), ("source", pa.string()), ("text", pa.string())]
)
QUARANTINE_ORDERED = pa.schema([*QUARANTINE_SCHEMA, pa.field("_order", pa.int64())])


def read_uris(
    spark: SparkSession, uris: list[str], fields: Any, batch_rows: int
) -> tuple[DataFrame, DataFrame]:
    """(documents, quarantine) of the input URIs, read and parsed by the executors (the lake's Spark reader)."""
    from sift.pipelines.core.lake.spark import read_documents_spark

    docs: DataFrame | None = None
    quarantine: DataFrame | None = None
    for i, uri in enumerate(uris):
        got = read_documents_spark(spark, uri, fields, batch_rows=batch_rows)
        d, q = got.documents, got.quarantine.select(*QUARANTINE_ORDERED.names)
        if i:
            d = d.withColumn("_row", F.col("_row") + F.lit(i << URI_ROW_SHIFT))
            q = q.withColumn("_order", F.col("_order") + F.lit(i << URI_ROW_SHIFT))
        docs = d if docs is None else docs.unionByName(d, allowMissingColumns=True)
        quarantine = q if quarantine is None else quarantine.unionByName(q)
    if docs is None or quarantine is None:
        raise ValueError("dedup needs at least one input URI")
    return docs, quarantine


def read_tables(spark: SparkSession, items: Iterable[Any], batch_rows: int) -> tuple[DataFrame, DataFrame]:
    """(documents, quarantine) as DataFrames made from documents the caller already holds in memory (a Table, a
    RecordBatch, or an iterable of those or of ingest results), conformed as the Polars engine conforms them."""
    docs: list[pa.Table] = []
    quarantine: list[pa.Table] = []
    first = 0
    for d, q in split_documents(items, batch_rows):
        docs.append(d.add_column(0, "_row", pa.array(range(first, first + d.num_rows), pa.int64())))
        quarantine.append(q)
        first += d.num_rows
    table = pa.concat_tables(docs, promote_options="permissive") if docs else DOCS_SCHEMA.empty_table()
    q = pa.concat_tables(quarantine) if quarantine else QUARANTINE_SCHEMA.empty_table()
    q = q.append_column("_order", pa.array(range(q.num_rows), pa.int64()))
    return _frame(spark, table), _frame(spark, q)


def _frame(spark: SparkSession, table: pa.Table) -> DataFrame:
    if table.num_rows:
        return spark.createDataFrame(table)
    from pyspark.sql.pandas.types import from_arrow_schema

    return spark.createDataFrame([], from_arrow_schema(table.schema))


# plan -------------------------------------------------------------------------------------------------------------
def _decisions(
    facts: DataFrame, reps: DataFrame, labels: DataFrame, greedy: DataFrame | None, config: DedupConfig
) -> DataFrame:
    """One row per document (outputs.DECISIONS_SCHEMA): `plan.assemble`'s rules on DataFrames.

    A document is eligible when long enough (it has a representative, the best member of its exact-duplicate
    group). Exact duplicates join their representative's component; a representative outside the graph is its own
    group (label -rep_row - 1, disjoint from component labels, which are rows). A group of two or more eligible
    documents is a cluster; its best member (the minimum priority STRUCT) gives `cluster_id` and, in slimpajama
    mode, the survivor. In verified mode the representative's greedy result decides: a kept representative keeps
    itself and removes its copies as exact duplicates; a removed one and its copies are near duplicates of the
    member that removed it."""
    d = _join(
        facts.select("_row", "id", "source", "nbytes", "h1", "h2"),
        reps.select("_row", "prio", "rep_row", "rep_id"),
        "_row",
        "left",
    )
    d = _join(
        d, labels.select(F.col("node").alias("rep_row"), F.col("comp").alias("rep_comp")), "rep_row", "left"
    )
    eligible = F.col("rep_row").isNotNull()
    d = d.withColumn("label", F.when(eligible, F.coalesce(F.col("rep_comp"), -F.col("rep_row") - 1)))
    best = F.min(
        F.struct(*(F.col(f"prio.{c}").alias(c) for c in ("p0", "p1", "p2", "p3")), F.col("h1"), F.col("h2"))
    )
    clusters = (
        d.where(F.col("label").isNotNull())
        .groupBy("label")
        .agg(F.count(F.lit(1)).alias("size"), best.alias("best"))
        .where(F.col("size") >= 2)
        .select(
            "label",
            F.col("best.p2").alias("cluster_id"),
            F.col("best.p3").alias("cluster_row"),
            F.col("best.h1").alias("cluster_h1"),
            F.col("best.h2").alias("cluster_h2"),
        )
    )
    d = _join(d, clusters, "label", "left")
    null_str = F.lit(None).cast("string")
    null_dbl = F.lit(None).cast("double")
    if config.mode == "slimpajama":
        kept = eligible & F.coalesce(F.col("cluster_row") == F.col("_row"), F.col("cluster_row").isNull())
        same = (F.col("h1") == F.col("cluster_h1")) & (F.col("h2") == F.col("cluster_h2"))
        reason = (
            F.when(~eligible, F.lit("too_short"))
            .when(kept, null_str)
            .when(same, F.lit("exact_duplicate"))
            .otherwise(F.lit("near_duplicate"))
        )
        dup = F.when(eligible & ~kept, F.col("cluster_id"))
        sim = F.when(eligible & ~kept & same, F.lit(1.0)).otherwise(null_dbl)
    else:
        assert greedy is not None
        g = greedy.select(
            F.col("row").alias("rep_row"),
            F.col("kept").alias("rep_kept"),
            F.col("dup_id").alias("rep_dup_id"),
            F.col("sim").alias("rep_sim"),
        )
        d = _join(d, g, "rep_row", "left")
        node_kept = F.coalesce(F.col("rep_kept"), F.lit(True))
        is_rep = F.col("rep_row") == F.col("_row")
        kept = eligible & node_kept & is_rep
        reason = (
            F.when(~eligible, F.lit("too_short"))
            .when(kept, null_str)
            .when(node_kept, F.lit("exact_duplicate"))
            .otherwise(F.lit("near_duplicate"))
        )
        dup = (
            F.when(~eligible | kept, null_str).when(node_kept, F.col("rep_id")).otherwise(F.col("rep_dup_id"))
        )
        sim = F.when(~eligible | kept, null_dbl).when(node_kept, F.lit(1.0)).otherwise(F.col("rep_sim"))
    return d.select(
        "_row",
        "id",
        "source",
        F.coalesce(kept, F.lit(False)).alias("kept"),
        reason.alias("reason"),
        dup.alias("duplicate_of"),
        sim.alias("similarity"),
        F.when(eligible, F.col("cluster_id")).alias("cluster_id"),
        "nbytes",
    )


def _plan(
    spark: SparkSession,
    work: WorkDir,
    docs: DataFrame,
    config: DedupConfig,
    timings: dict[str, float],
) -> tuple[DataFrame, dict[str, Any]]:
    """Facts, candidates, verification, components, survivors: the decisions table and the phase counts."""
    cfg_json = config.model_dump_json()
    bands, _ = config.banding
    band_cols = band_columns(bands)
    local = config.scope == "local"

    t = time.perf_counter()
    phase("facts", "documents hashed by the executors")
    facts = _persist(
        spark,
        work,
        "facts",
        lambda: docs.select("_row", "id", "source", "text").mapInArrow(
            _facts_fn(cfg_json), _facts_schema(bands)
        ),
    )
    timings["facts"] = time.perf_counter() - t

    t = time.perf_counter()
    phase("candidates", "exact-duplicate groups and band buckets")
    p0, p1, p2 = _priority(config)
    prio = F.struct(p0.alias("p0"), p1.alias("p1"), p2.alias("p2"), F.col("_row").alias("p3"))
    keys = ["h1", "h2"] + (["source"] if local else [])

    def representatives() -> DataFrame:
        return (
            facts.where(F.col("nchars") >= config.min_length)
            .withColumn("prio", prio)
            .withColumn("rep", F.min("prio").over(Window.partitionBy(*keys)))
            .select(
                "_row",
                "source",
                "nshingles",
                "prio",
                F.col("rep.p3").alias("rep_row"),
                F.col("rep.p2").alias("rep_id"),
                *band_cols,
            )
        )

    reps = _persist(spark, work, "representatives", representatives)

    def candidates() -> DataFrame:
        nodes = reps.where((F.col("rep_row") == F.col("_row")) & (F.col("nshingles") > 0))
        exploded = nodes.select(
            "_row", "source", "prio", F.posexplode(F.array(*band_cols)).alias("band", "key")
        )
        group = ["band", "key"] + (["source"] if local else [])
        centred = exploded.withColumn("center", F.min("prio").over(Window.partitionBy(*group)))
        return (
            centred.where(F.col("center.p3") != F.col("_row"))
            .select(F.col("center.p3").alias("a"), F.col("_row").alias("b"))
            .distinct()
        )

    cand = _persist(spark, work, "candidates", candidates)
    phases: dict[str, Any] = {"candidate_edges": cand.count()}
    timings["candidates"] = time.perf_counter() - t

    t = time.perf_counter()
    if config.mode == "verified":
        phase("verification", f"{phases['candidate_edges']} candidate edges")
        texts = docs.select("_row", "text")
        sigs = facts.select("_row", "signature")

        def verified() -> DataFrame:
            pairs = _join(cand, texts.select(F.col("_row").alias("a"), F.col("text").alias("ta")), "a")
            pairs = _join(pairs, texts.select(F.col("_row").alias("b"), F.col("text").alias("tb")), "b")
            pairs = _join(pairs, sigs.select(F.col("_row").alias("a"), F.col("signature").alias("sa")), "a")
            pairs = _join(pairs, sigs.select(F.col("_row").alias("b"), F.col("signature").alias("sb")), "b")
            return pairs.select("a", "b", "ta", "tb", "sa", "sb").mapInArrow(
                _jaccard_fn(cfg_json), "a long, b long, similarity double"
            )

        scored = _persist(spark, work, "edges", verified)
        edges = scored.where(F.col("similarity") >= config.threshold)
        counts = scored.agg(
            F.count(F.when(F.col("similarity").isNull(), 1)).alias("prefiltered"),
            F.count(F.when(F.col("similarity") >= config.threshold, 1)).alias("verified"),
        ).first()
        assert counts is not None
        phases["prefiltered_edges"] = int(counts["prefiltered"])
        phases["verified_edges"] = int(counts["verified"])
        phases["rejected_edges"] = phases["candidate_edges"] - phases["verified_edges"]
    else:
        edges = cand
    timings["verify"] = time.perf_counter() - t

    t = time.perf_counter()
    phase("components", "large-star/small-star rounds")
    labels = _persist(spark, work, "components", lambda: connected_components(edges.select("a", "b")))
    greedy = None
    if config.mode == "verified":

        def survivors() -> DataFrame:
            pr = reps.select("_row", *(F.col(f"prio.{c}").alias(c) for c in ("p0", "p1", "p2")))
            ea = pr.select(
                [F.col(c).alias(f"a_{c}") for c in ("p0", "p1", "p2")] + [F.col("_row").alias("a")]
            )
            eb = pr.select(
                [F.col(c).alias(f"b_{c}") for c in ("p0", "p1", "p2")] + [F.col("_row").alias("b")]
            )
            ec = _join(_join(edges, ea, "a"), eb, "b")
            ec = _join(ec, labels.select(F.col("node").alias("a"), "comp"), "a")
            return ec.groupBy("comp").applyInArrow(_greedy_fn, GREEDY_SCHEMA)

        greedy = _persist(spark, work, "survivors", survivors)
    decisions = _persist(spark, work, "decisions", lambda: _decisions(facts, reps, labels, greedy, config))
    timings["survivors"] = time.perf_counter() - t
    return decisions, phases


# outputs ----------------------------------------------------------------------------------------------------------
def _publish(
    spark: SparkSession, work: WorkDir, name: str, build: Callable[[], DataFrame], target: Path
) -> None:
    """Have the executors write `build()` (already in output order) as Parquet part files, then put them in place as
    the folder `target` holding part-00000.parquet, part-00001.parquet, ... in that order (hard links to the work
    table's files, which the work folder's removal then drops)."""
    path = work.root / "spark" / "out" / name
    if not work.done(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        build().write.mode("overwrite").option("compression", OUTPUT_COMPRESSION).parquet(_uri(path))
        work.mark(path)
    # Spark names its files part-<partition>-<job uuid>-c000...: by name is in partition order.
    parts = sorted(p for p in path.iterdir() if p.name.startswith("part-") and p.name.endswith(".parquet"))
    with atomic_dir(target) as tmp:
        for i, part in enumerate(parts):
            dst = tmp / f"part-{i:05d}.parquet"
            try:
                os.link(part, dst)
            except OSError:
                shutil.copyfile(part, dst)


def _conformed(df: DataFrame, schema: pa.Schema) -> DataFrame:
    from pyspark.sql.pandas.types import from_arrow_type

    return df.select(*(F.col(f.name).cast(from_arrow_type(f.type)).alias(f.name) for f in schema))


def run(
    spark: SparkSession,
    read: Callable[[], tuple[DataFrame, DataFrame]],
    work: WorkDir,
    out: Path,
    config: DedupConfig,
    timings: dict[str, float],
) -> dict[str, Any]:
    """The whole Spark run: input, plan, outputs; returns the stats (also written to `out/stats.json`).

    `read()` gives the (documents, quarantine) DataFrames; it is called only when the input is not already in the
    work folder."""
    t = time.perf_counter()
    phase("input", "read by the executors")
    source: list[tuple[DataFrame, DataFrame]] = []

    def input_part(i: int) -> DataFrame:
        if not source:
            source.append(read())
        return source[0][i]

    docs = _persist(spark, work, "input", lambda: input_part(0))
    quarantine = _persist(spark, work, "quarantine", lambda: _conformed(input_part(1), QUARANTINE_ORDERED))
    timings["ingest"] = time.perf_counter() - t

    decisions, phases = _plan(spark, work, docs, config, timings)

    t = time.perf_counter()
    phase("outputs", f"writing {out}")
    # To the driver: one row per (source, kept, reason) and one per distinct cluster size, never one per document.
    groups = [
        (r["source"], bool(r["kept"]), r["reason"], int(r["bytes"]), int(r["documents"]))
        for r in decisions.groupBy("source", "kept", "reason")
        .agg(F.sum("nbytes").alias("bytes"), F.count(F.lit(1)).alias("documents"))
        .collect()
    ]
    sizes = (
        decisions.where(F.col("cluster_id").isNotNull())
        .groupBy("cluster_id")
        .agg(F.count(F.lit(1)).alias("size"))
        .groupBy("size")
        .agg(F.count(F.lit(1)).alias("clusters"))
    )
    histogram = {int(r["size"]): int(r["clusters"]) for r in sizes.collect()}
    stats = compute_stats(groups, histogram, quarantine.count(), config, phases)
    cluster_histogram(stats, out / "cluster_sizes.png")
    kept_rows = decisions.where(F.col("kept")).select("_row")
    _publish(
        spark,
        work,
        "kept",
        lambda: _join(docs, kept_rows, "_row", "left_semi").orderBy("_row").drop("_row"),
        out / "kept.parquet",
    )
    _publish(
        spark,
        work,
        "removed",
        lambda: _conformed(decisions.where(~F.col("kept")).orderBy("_row"), REMOVED_SCHEMA),
        out / "removed.parquet",
    )
    _publish(
        spark,
        work,
        "clusters",
        lambda: _conformed(decisions.where(F.col("cluster_id").isNotNull()).orderBy("_row"), CLUSTERS_SCHEMA),
        out / "clusters.parquet",
    )
    _publish(
        spark,
        work,
        "quarantine",
        lambda: _conformed(quarantine.orderBy("_order"), QUARANTINE_SCHEMA),
        out / "quarantine.parquet",
    )
    write_json(stats, out / "stats.json")
    write_text(report_markdown(stats), out / "report.md")
    timings["write"] = time.perf_counter() - t
    return stats
