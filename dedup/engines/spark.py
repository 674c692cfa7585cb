"""Spark engine of SlimPajama near-duplicate dedup (SlimPajama-DC section 2), for corpora beyond one machine.

The same kernels as the Polars engine (dedup/kernels.py) through `mapInArrow`; exact-duplicate groups and band
buckets with window functions (each bucket links its members to its best-ranked member: linear work); candidate
edges verified by exact Jaccard in `mapInArrow`; connected components in pure DataFrames with the alternating
large-star / small-star algorithm (Kiveris et al. 2014), checkpointed every round and run until the edge set stops
changing; the greedy survivor kernel per component with `groupBy(...).applyInArrow`. The per-document results are
collected to the driver and assembled and written by the same code as the Polars engine (dedup/plan.py,
dedup/outputs.py), so both engines write byte-identical files.

Facts, candidate edges and verified edges are written under `_work/spark/` with completion markers, so a killed
run resumes from the last finished phase.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from sift.dedup.config import DedupConfig
from sift.dedup.kernels import band_columns
from sift.dedup.plan import assemble, priority_rank
from sift.dedup.work import WorkDir, phase

MAX_ROUNDS = 1000  # a guard against a bug, never a silent cap: exceeding it raises


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
    return pa.table({"row": rows, "kept": kept, "dup_row": dup_row, "sim": sim})


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
            both.join(m, "x")
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
            large.join(sm, "u")
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


def _persist(spark: SparkSession, work: WorkDir, name: str, build) -> DataFrame:
    """Read a finished work table, or build, write and mark it."""
    path = work.root / "spark" / name
    if work.done(path):
        return spark.read.parquet(str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    build().write.mode("overwrite").parquet(str(path))
    work.mark(path)
    return spark.read.parquet(str(path))


def _collect(df: DataFrame) -> pa.Table:
    """A DataFrame on the driver as Arrow, large types narrowed to the Polars engine's (string, not large_string)."""
    table = df.toArrow()
    fields = [pa.field(f.name, pa.string()) if pa.types.is_large_string(f.type) else f for f in table.schema]
    return table.cast(pa.schema(fields))


def run(
    spark: SparkSession, work: WorkDir, config: DedupConfig, timings: dict[str, float]
) -> tuple[pa.Table, dict[str, Any]]:
    """The Spark plan after the input is spilled; returns (decisions, phase counts) like the Polars engine."""
    cfg_json = config.model_dump_json()
    bands, _ = config.banding
    band_cols = band_columns(bands)
    shards = [str(p) for p in work.input_shards()]
    local = config.scope == "local"

    t = time.perf_counter()
    phase("facts", f"{len(shards)} input shards")
    if shards:
        docs = spark.read.parquet(*shards).select("_row", "id", "source", "text")
    else:
        docs = spark.createDataFrame([], "_row long, id string, source string, text string")
    facts = _persist(spark, work, "facts", lambda: docs.mapInArrow(_facts_fn(cfg_json), _facts_schema(bands)))
    meta_cols = ["_row", "id", "source", "length", "nbytes", "nchars", "nshingles", "h1", "h2"]
    meta = _collect(facts.select(*meta_cols).orderBy("_row"))
    timings["facts"] = time.perf_counter() - t

    t = time.perf_counter()
    phase("candidates", f"{meta.num_rows} documents")
    p0, p1, p2 = _priority(config)
    prio = F.struct(p0.alias("p0"), p1.alias("p1"), p2.alias("p2"), F.col("_row").alias("p3"))
    keys = ["h1", "h2"] + (["source"] if local else [])
    reps = (
        facts.where(F.col("nchars") >= config.min_length)
        .withColumn("prio", prio)
        .withColumn("rep", F.min("prio").over(Window.partitionBy(*keys)))
        .select("_row", "source", "nshingles", "prio", F.col("rep.p3").alias("rep_row"), *band_cols)
    )
    rep_rows = _collect(reps.select("_row", "rep_row"))

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
            pairs = (
                cand.join(texts.select(F.col("_row").alias("a"), F.col("text").alias("ta")), "a")
                .join(texts.select(F.col("_row").alias("b"), F.col("text").alias("tb")), "b")
                .join(sigs.select(F.col("_row").alias("a"), F.col("signature").alias("sa")), "a")
                .join(sigs.select(F.col("_row").alias("b"), F.col("signature").alias("sb")), "b")
            )
            return pairs.select("a", "b", "ta", "tb", "sa", "sb").mapInArrow(
                _jaccard_fn(cfg_json), "a long, b long, similarity double"
            )

        scored = _persist(spark, work, "edges", verified)
        edges = scored.where(F.col("similarity") >= config.threshold)
        phases["prefiltered_edges"] = scored.where(F.col("similarity").isNull()).count()
        phases["verified_edges"] = edges.count()
        phases["rejected_edges"] = phases["candidate_edges"] - phases["verified_edges"]
    else:
        edges = cand
    timings["verify"] = time.perf_counter() - t

    t = time.perf_counter()
    phase("components", "large-star/small-star rounds")
    n = meta.num_rows
    comp = np.full(n, -1, np.int64)
    node_kept = node_dup = node_sim = None
    if not edges.isEmpty():
        labels = _persist(spark, work, "components", lambda: connected_components(edges.select("a", "b")))
        lab = _collect(labels)
        comp[lab.column("node").to_numpy()] = lab.column("comp").to_numpy()
        if config.mode == "verified":
            pr = reps.select(
                "_row",
                F.col("prio.p0").alias("p0"),
                F.col("prio.p1").alias("p1"),
                F.col("prio.p2").alias("p2"),
            )
            ea = pr.select(
                [F.col(c).alias(f"a_{c}") for c in ("p0", "p1", "p2")] + [F.col("_row").alias("a")]
            )
            eb = pr.select(
                [F.col(c).alias(f"b_{c}") for c in ("p0", "p1", "p2")] + [F.col("_row").alias("b")]
            )
            ec = edges.join(ea, "a").join(eb, "b").join(labels.select(F.col("node").alias("a"), "comp"), "a")
            greedy = ec.groupBy("comp").applyInArrow(
                _greedy_fn, "row long, kept boolean, dup_row long, sim double"
            )
            g = _collect(greedy)
            node_kept = np.ones(n, np.bool_)
            node_dup = np.full(n, -1, np.int64)
            node_sim = np.full(n, np.nan)
            rows = g.column("row").to_numpy()
            node_kept[rows] = g.column("kept").to_numpy(zero_copy_only=False)
            node_dup[rows] = g.column("dup_row").to_numpy()
            node_sim[rows] = g.column("sim").to_numpy(zero_copy_only=False)
    if config.mode == "verified" and node_kept is None:
        node_kept = np.ones(n, np.bool_)
        node_dup = np.full(n, -1, np.int64)
        node_sim = np.full(n, np.nan)

    rep = np.full(n, -1, np.int64)
    rep[rep_rows.column("_row").to_numpy()] = rep_rows.column("rep_row").to_numpy()
    rank = priority_rank(meta, config.source_priority)
    decisions = assemble(meta, config, rank, rep, comp, node_kept, node_dup, node_sim)
    timings["survivors"] = time.perf_counter() - t
    return decisions, phases
