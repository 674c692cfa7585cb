"""Survivor selection shared by both engines (SlimPajama-DC section 2, "one survivor per component", made
deterministic and, in verified mode, safe).

Every document gets a priority rank: source priority (the order given in `source_priority`, unlisted sources after,
all tied), then longer raw text first, then smaller id (byte order). The engines compute, per document row:
- `rep_row`: the best-ranked document with the same normalised text (exact-duplicate group), -1 if too short;
- `comp`: a connected-component label over LSH edges (verified edges in verified mode), -1 when not in the graph;
- verified mode: the greedy result per graph node (`node_kept`, `node_dup`, `node_sim`, see
  `kernels.greedy_survivors`);
and `assemble` turns them into the decisions table that `outputs.finalize` writes.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sift.dedup.config import DedupConfig
from sift.dedup.outputs import DECISIONS_SCHEMA


def source_ranks(sources: pa.Array | pa.ChunkedArray, priority: list[str]) -> np.ndarray:
    """Index of each source in the priority list; unlisted sources get len(priority)."""
    order = {s: i for i, s in enumerate(priority)}
    uniq = pc.unique(sources).to_pylist()
    table = pa.array([order.get(s, len(priority)) for s in uniq], pa.int64())
    return pc.take(table, pc.index_in(sources, value_set=pa.array(uniq, pa.string()))).to_numpy()


def priority_rank(meta: pa.Table, priority: list[str]) -> np.ndarray:
    """rank[row] (0 = most preferred) from `source`, `length`, `id`; meta is sorted by `_row`."""
    keys = pa.table(
        {
            "src_rank": source_ranks(meta.column("source"), priority),
            "length": meta.column("length"),
            "id": meta.column("id"),
        }
    )
    order = pc.sort_indices(
        keys, sort_keys=[("src_rank", "ascending"), ("length", "descending"), ("id", "ascending")]
    ).to_numpy()
    rank = np.empty(meta.num_rows, np.int64)
    rank[order] = np.arange(meta.num_rows, dtype=np.int64)
    return rank


def assemble(
    meta: pa.Table,
    config: DedupConfig,
    rank: np.ndarray,
    rep_row: np.ndarray,
    comp: np.ndarray,
    node_kept: np.ndarray | None = None,
    node_dup: np.ndarray | None = None,
    node_sim: np.ndarray | None = None,
) -> pa.Table:
    """Decisions (DECISIONS_SCHEMA, one row per document, in `_row` order)."""
    n = meta.num_rows
    ids = meta.column("id").combine_chunks() if n else pa.array([], pa.string())
    h1 = meta.column("h1").to_numpy()
    h2 = meta.column("h2").to_numpy()
    too_short = rep_row < 0
    rows = np.arange(n, dtype=np.int64)
    # Exact duplicates join their representative's component; a representative outside the graph is its own.
    eligible = ~too_short
    label = np.full(n, -1, np.int64)
    rep_comp = np.where(eligible, comp[np.where(eligible, rep_row, 0)], -1)
    label[eligible] = np.where(rep_comp[eligible] >= 0, rep_comp[eligible], n + rep_row[eligible])
    # Cluster = label group of size >= 2; cluster id = id of its best-ranked member.
    sizes = np.zeros(2 * n + 1, np.int64)
    np.add.at(sizes, label[eligible], 1)
    best = np.full(2 * n + 1, np.iinfo(np.int64).max, np.int64)
    np.minimum.at(best, label[eligible], rank[eligible])
    row_of_rank = np.empty(n, np.int64)
    row_of_rank[rank] = rows
    in_cluster = eligible & (sizes[np.maximum(label, 0)] >= 2)
    cluster_row = np.where(in_cluster, row_of_rank[np.where(in_cluster, best[np.maximum(label, 0)], 0)], -1)

    kept = np.zeros(n, np.bool_)
    dup = np.full(n, -1, np.int64)
    sim = np.full(n, np.nan)
    reason = np.full(n, None, dtype=object)
    reason[too_short] = "too_short"
    if config.mode == "slimpajama":
        survivor = np.where(in_cluster, cluster_row, rows)
        kept = eligible & (survivor == rows)
        removed = eligible & ~kept
        dup[removed] = survivor[removed]
        same = removed & (h1 == h1[np.maximum(dup, 0)]) & (h2 == h2[np.maximum(dup, 0)])
        reason[same] = "exact_duplicate"
        sim[same] = 1.0
        reason[removed & ~same] = "near_duplicate"
    else:
        assert node_kept is not None and node_dup is not None and node_sim is not None
        is_rep = eligible & (rep_row == rows)
        kept = is_rep & node_kept
        near = is_rep & ~node_kept
        dup[near] = node_dup[near]
        sim[near] = node_sim[near]
        reason[near] = "near_duplicate"
        copy = eligible & ~is_rep
        rep = rep_row[copy]
        rep_kept = node_kept[rep]
        cidx = np.flatnonzero(copy)
        dup[cidx] = np.where(rep_kept, rep, node_dup[rep])
        sim[cidx] = np.where(rep_kept, 1.0, node_sim[rep])
        reason[cidx] = np.where(rep_kept, "exact_duplicate", "near_duplicate")
    dup_ids = pc.take(ids, pa.array(np.where(dup >= 0, dup, 0))) if n else ids
    dup_ids = pc.if_else(pa.array(dup >= 0), dup_ids, pa.nulls(n, pa.string()))
    cl_ids = pc.take(ids, pa.array(np.where(cluster_row >= 0, cluster_row, 0))) if n else ids
    cl_ids = pc.if_else(pa.array(cluster_row >= 0), cl_ids, pa.nulls(n, pa.string()))
    return pa.table(
        [
            pa.array(rows),
            ids,
            meta.column("source").combine_chunks() if n else pa.array([], pa.string()),
            pa.array(kept),
            pa.array(list(reason), pa.string()),
            dup_ids,
            pa.array(sim, mask=np.isnan(sim)),
            cl_ids,
            meta.column("nbytes").combine_chunks() if n else pa.array([], pa.int64()),
        ],
        schema=DECISIONS_SCHEMA,
    )
