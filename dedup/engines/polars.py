"""Polars engine of SlimPajama near-duplicate dedup (SlimPajama-DC section 2: MinHash LSH, global or local scope).

Plan, each phase a resumable work table (dedup/work.py):
1. facts per input shard (kernels.facts_batch, computed while the batch streams in);
2. exact-duplicate groups (hash of the normalised text) and LSH candidate edges: a Polars window over (band, band
   key, plus the source in local scope) links every member to its bucket's best-ranked member, so a bucket of
   10,000 documents costs 9,999 edges, not 50 million; many bands go in one query;
3. verified mode: exact Jaccard of every candidate edge from the shingle sets of only the documents involved;
4. components (union-find, kernels.connected_components) and survivors (plan.assemble; greedy in verified mode).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from sift.dedup import kernels
from sift.dedup.config import DedupConfig
from sift.dedup.plan import assemble, priority_rank
from sift.dedup.work import WorkDir, phase
from sift.pipelines.core.workdir import read_work_table, write_work_parquet, write_work_table

META_COLUMNS = ["_row", "id", "source", "length", "nbytes", "nchars", "nshingles", "h1", "h2"]
EDGE_SCHEMA = pa.schema([("a", pa.int64()), ("b", pa.int64()), ("similarity", pa.float64())])


def warm_up(config: DedupConfig) -> None:
    """Run the facts kernels once on two tiny documents: numba loads its cached machine code and starts its
    threads on the first call, which then overlaps the first shard's parse instead of delaying its facts (the
    runtime calls this on its worker thread: `PolarsEngine.warm`)."""
    tiny = pa.record_batch(
        {
            "_row": pa.array([0, 1], pa.int64()),
            "id": pa.array(["a", "b"]),
            "source": pa.array(["s", "s"]),
            "text": pa.array(["warm up the facts kernels once", "Warm up, the facts kernels once!"]),
        }
    )
    kernels.facts_batch(tiny, config)


def facts_for_shard(work: WorkDir, i: int, table: pa.Table, config: DedupConfig) -> None:
    path = work.facts_shard(i)
    if work.done(path):
        return
    facts = kernels.facts_batch(table, config)
    write_work_table(pa.Table.from_batches([facts]), path)
    work.mark(path)


def ensure_facts(work: WorkDir, config: DedupConfig) -> list[str]:
    """Facts of every input shard (computing those a killed run left undone)."""
    paths = []
    for i, shard in enumerate(work.input_shards()):
        if not work.done(work.facts_shard(i)):
            facts_for_shard(work, i, work.read_input(shard, ["_row", "id", "source", "text"]), config)
        paths.append(str(work.facts_shard(i)))
    return paths


def read_meta(fact_paths: list[str]) -> pa.Table:
    if not fact_paths:
        return pa.table(
            {c: pa.array([], pa.string() if c in ("id", "source") else pa.int64()) for c in META_COLUMNS}
        )
    return pa.concat_tables([read_work_table(p, META_COLUMNS) for p in fact_paths]).combine_chunks()


def exact_representatives(meta: pa.Table, rank: np.ndarray, config: DedupConfig) -> np.ndarray:
    """rep_row[row]: best-ranked row with the same normalised text (and source, in local scope); -1 if too short."""
    import polars as pl  # (imported by `run` while the last facts finish, not by the facts thread)

    n = meta.num_rows
    df = pl.DataFrame(
        {
            "row": np.arange(n, dtype=np.int64),
            "rank": rank,
            "h1": meta.column("h1").to_numpy(),
            "h2": meta.column("h2").to_numpy(),
            "source": meta.column("source").combine_chunks() if n else pa.array([], pa.string()),
            "eligible": meta.column("nchars").to_numpy() >= config.min_length,
        }
    )
    keys = ["h1", "h2"] + (["source"] if config.scope == "local" else [])
    best = (
        df.filter(pl.col("eligible"))
        .with_columns(best=pl.col("rank").min().over(keys))
        .select("row", "best")
        .sort("row")
    )
    row_of_rank = np.empty(n, np.int64)
    row_of_rank[rank] = np.arange(n, dtype=np.int64)
    rep = np.full(n, -1, np.int64)
    rep[best["row"].to_numpy()] = row_of_rank[best["best"].to_numpy()]
    return rep


BAND_ROWS = 1 << 22  # (band, key, rank) rows per candidate query: bands are grouped in one query up to this


def candidate_edges(
    fact_paths: list[str], meta: pa.Table, rank: np.ndarray, nodes: np.ndarray, config: DedupConfig
) -> tuple[np.ndarray, np.ndarray]:
    """(a, b) row pairs, a = the best-ranked member of a band bucket b shares, unique, sorted.

    One Polars query per group of bands (as many as fit in `BAND_ROWS` rows, so memory stays bounded): a bucket
    is a (band, key) pair, plus the source in local scope; its centre is the member of least rank (a window
    minimum), and every other member gives one edge, as a (centre rank * n + rank) code that one `np.unique`
    sorts and dedupes across bands."""
    n = meta.num_rows
    bands, _ = config.banding
    node_rows = np.flatnonzero(nodes)
    m = node_rows.size
    if not fact_paths or not m:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    names = kernels.band_columns(bands)
    member = rank[node_rows]
    codes = None  # the nodes' source codes, in local scope only
    if config.scope == "local":
        codes = pc.dictionary_encode(meta.column("source").combine_chunks()).indices.to_numpy()[node_rows]
    group = ["band", "key"] + (["source"] if codes is not None else [])
    import polars as pl

    per_query = max(1, BAND_ROWS // m)
    found: list[np.ndarray] = []
    for lo in range(0, bands, per_query):
        part = names[lo : lo + per_query]
        keys = pa.concat_tables([read_work_table(p, part) for p in fact_paths])
        columns = {
            "band": np.repeat(np.arange(len(part), dtype=np.int32), m),
            "key": np.concatenate([keys.column(name).to_numpy()[node_rows] for name in part]),
            "rank": np.tile(member, len(part)),
        }
        if codes is not None:
            columns["source"] = np.tile(codes, len(part))
        buckets = pl.DataFrame(columns)
        edges = (
            buckets.lazy()
            .with_columns(centre=pl.col("rank").min().over(group))
            .filter(pl.col("rank") != pl.col("centre"))
            .select(code=pl.col("centre") * n + pl.col("rank"))
            .collect()
        )
        found.append(edges["code"].to_numpy())
    pairs = np.unique(np.concatenate(found))
    row_of_rank = np.empty(n, np.int64)
    row_of_rank[rank] = np.arange(n, dtype=np.int64)
    return row_of_rank[pairs // n], row_of_rank[pairs % n]


def _signatures(
    fact_paths: list[str], shard_rows: list[tuple[int, int]], rows: np.ndarray, k: int
) -> np.ndarray:
    """Signatures (int64[len(rows), k]) of the given sorted rows, read shard by shard."""
    out = np.empty((rows.size, k), np.int64)
    for path, (first, n) in zip(fact_paths, shard_rows, strict=True):
        lo, hi = np.searchsorted(rows, [first, first + n])
        if lo == hi:
            continue
        col = read_work_table(path, ["signature"]).column("signature").combine_chunks()
        out[lo:hi] = col.flatten().to_numpy().reshape(n, k)[rows[lo:hi] - first]
    return out


def verify_edges(
    work: WorkDir, fact_paths: list[str], a: np.ndarray, b: np.ndarray, config: DedupConfig
) -> np.ndarray:
    """Exact Jaccard of each candidate edge (NaN where the signature prefilter rejected it), from the raw texts of
    only the documents of edges that pass (all that is held in memory), each normalised inside the kernel. An
    edge below the threshold may hold an upper bound below it instead (the kernel stops once it is out of
    reach); every similarity at or above the threshold is exact."""
    sim = np.full(a.size, np.nan)
    cut = kernels.prefilter_count(config)
    todo = np.arange(a.size)
    if cut > 0 and a.size:
        nodes = np.unique(np.concatenate([a, b]))
        sigs = _signatures(fact_paths, work.shard_rows(), nodes, config.num_perm)
        agree = kernels.signature_agreement(
            sigs, rows_a=np.searchsorted(nodes, a), rows_b=np.searchsorted(nodes, b)
        )
        todo = np.flatnonzero(agree >= cut)
    a, b = a[todo], b[todo]
    involved = np.unique(np.concatenate([a, b]))
    if involved.size == 0:
        return sim
    texts: list[pa.Array] = []
    for shard, (first, rows) in zip(work.input_shards(), work.shard_rows(), strict=True):
        lo, hi = np.searchsorted(involved, [first, first + rows])
        if lo == hi:
            continue
        table = work.read_input(shard, ["text"])
        part = table.column("text").take(pa.array(involved[lo:hi] - first))
        texts.append(pc.fill_null(part.combine_chunks().cast(pa.large_string()), ""))
    raw = pa.concat_arrays(texts)
    ia, ib = np.searchsorted(involved, a), np.searchsorted(involved, b)
    sim[todo] = kernels.jaccard_texts(
        raw,
        ia,
        ib,
        ngram=config.ngram,
        word=config.shingle == "word",
        seed=config.seed,
        normalise_first=True,
        unicode_punctuation=config.strip_unicode_punctuation,
        threshold=config.threshold,
    )
    return sim


def components(n: int, a: np.ndarray, b: np.ndarray, nodes: np.ndarray) -> np.ndarray:
    """comp[row]: component label of graph nodes (rows touched by an edge), -1 elsewhere."""
    comp = np.full(n, -1, np.int64)
    if a.size == 0:
        return comp
    labels = kernels.connected_components(n, a, b)
    touched = np.zeros(n, np.bool_)
    touched[a] = True
    touched[b] = True
    comp[touched] = labels[touched]
    return comp


def run(work: WorkDir, config: DedupConfig, timings: dict[str, float]) -> tuple[pa.Table, dict[str, Any]]:
    """Phases 1-4 after the input is spilled; returns (decisions, phase counts)."""
    t = time.perf_counter()
    fact_paths = ensure_facts(work, config)
    meta = read_meta(fact_paths)
    n = meta.num_rows
    timings["facts"] = timings.get("facts", 0.0) + time.perf_counter() - t

    t = time.perf_counter()
    phase("candidates", f"{n} documents")
    rank = priority_rank(meta, config.source_priority)
    rep = exact_representatives(meta, rank, config)
    rows = np.arange(n, dtype=np.int64)
    nodes = (rep == rows) & (meta.column("nshingles").to_numpy() > 0)
    cand_path = work.table("candidates")
    if work.done(cand_path):
        cand = pq.read_table(cand_path)
        a, b = cand.column("a").to_numpy(), cand.column("b").to_numpy()
    else:
        a, b = candidate_edges(fact_paths, meta, rank, nodes, config)
        write_work_parquet(pa.table({"a": a, "b": b}), cand_path)
        work.mark(cand_path)
    timings["candidates"] = time.perf_counter() - t
    phases: dict[str, Any] = {"candidate_edges": int(a.size)}

    t = time.perf_counter()
    if config.mode == "verified":
        phase("verification", f"{a.size} candidate edges")
        edge_path = work.table("edges")
        if work.done(edge_path):
            sim = pq.read_table(edge_path).column("similarity").to_numpy(zero_copy_only=False)
        else:
            sim = verify_edges(work, fact_paths, a, b, config)
            sim_col = pa.array(sim, mask=np.isnan(sim))
            write_work_parquet(
                pa.table({"a": a, "b": b, "similarity": sim_col}, schema=EDGE_SCHEMA), edge_path
            )
            work.mark(edge_path)
        phases["prefiltered_edges"] = int(np.isnan(sim).sum())
        ok = sim >= config.threshold
        a, b, sim = a[ok], b[ok], sim[ok]
        phases["verified_edges"] = int(ok.sum())
        phases["rejected_edges"] = int((~ok).sum())
    timings["verify"] = time.perf_counter() - t

    t = time.perf_counter()
    phase("components", f"{a.size} edges")
    comp = components(n, a, b, nodes)
    if config.mode == "verified":
        kept_r, dup_r, sim_r = kernels.greedy_survivors(n, rank[a], rank[b], sim)
        row_of_rank = np.empty(n, np.int64)
        row_of_rank[rank] = rows
        node_kept = kept_r[rank]
        dup_rank = dup_r[rank]
        node_dup = np.where(dup_rank >= 0, row_of_rank[np.maximum(dup_rank, 0)], -1)
        node_sim = sim_r[rank]
        decisions = assemble(meta, config, rank, rep, comp, node_kept, node_dup, node_sim)
    else:
        decisions = assemble(meta, config, rank, rep, comp)
    timings["survivors"] = time.perf_counter() - t
    return decisions, phases
