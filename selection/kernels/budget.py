"""PASER steps 3 and 4: the degradation-aware budget per cluster and the ranking inside a cluster.

Step 3 gives cluster k the share B·CDS_k/Σ_j CDS_j of the budget B (CDS_k: the mean degradation score of its
samples), made integer by the largest-remainder method; a cluster asked for more than it holds keeps what it holds
and the rest is shared again among the clusters with room, by the same rule. Step 4 orders a cluster's samples by
efficiency = JSD / log(L)², L the token length of instruction + response: the most degraded samples per token first.
Numpy arrays in and out; ties are broken by cluster number and by row, so the same input gives the same output.
"""

from __future__ import annotations

import numpy as np


def largest_remainder(total: int, weights: np.ndarray) -> np.ndarray:
    """`total` split into integers proportional to `weights` (non-negative, not all zero): floor of each share,
    then one more to the largest remainders (ties: the lower index first). Sums to `total` exactly."""
    w = np.asarray(weights, dtype=np.float64)
    if total <= 0 or w.size == 0:
        return np.zeros(w.size, dtype=np.int64)
    s = w.sum()
    if not s > 0:
        raise ValueError("weights must have a positive sum")
    exact = total * w / s
    base = np.floor(exact).astype(np.int64)
    left = int(total - base.sum())
    if left > 0:
        rem = exact - base
        order = np.lexsort((np.arange(w.size), -rem))  # largest remainder first, then lower index
        base[order[:left]] += 1
    return base


def allocate(budget: int, cds: np.ndarray, capacity: np.ndarray) -> np.ndarray:
    """Samples per cluster: `budget` split by the clusters' degradation `cds` (largest remainder), each capped at
    its `capacity`; what a full cluster cannot take goes again to the clusters with room, in proportion to their
    CDS (clusters whose CDS is all zero share by size when no cluster with room has a positive CDS)."""
    cds = np.asarray(cds, dtype=np.float64)
    capacity = np.asarray(capacity, dtype=np.int64)
    if cds.shape != capacity.shape:
        raise ValueError("cds and capacity must have the same length")
    if np.any(~np.isfinite(cds)) or np.any(cds < 0):
        raise ValueError("cluster degradation scores must be finite and non-negative")
    alloc = np.zeros(cds.size, dtype=np.int64)
    remaining = min(int(budget), int(capacity.sum()))
    while remaining > 0:
        room = capacity - alloc
        open_ = room > 0
        weights = np.where(open_, cds, 0.0)
        if not weights.sum() > 0:
            weights = np.where(open_, room, 0).astype(np.float64)
        share = np.minimum(largest_remainder(remaining, weights), room)
        alloc += share
        remaining -= int(share.sum())
    return alloc


def efficiency(jsd: np.ndarray, tokens: np.ndarray) -> np.ndarray:
    """JSD / log(L)², L the token length of instruction + response (at least 2, so the log is positive)."""
    length = np.maximum(np.asarray(tokens, dtype=np.float64), 2.0)
    return np.asarray(jsd, dtype=np.float64) / np.log(length) ** 2


def rank_within(cluster: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rows ordered by cluster, then by `score` highest first, then by row; and each row's rank in its
    cluster (0 = best)."""
    cluster = np.asarray(cluster, dtype=np.int64)
    n = cluster.size
    order = np.lexsort((np.arange(n), -np.asarray(score, dtype=np.float64), cluster))
    rank = np.empty(n, dtype=np.int64)
    if n:
        sorted_c = cluster[order]
        starts = np.r_[0, np.flatnonzero(np.diff(sorted_c)) + 1]
        first = np.repeat(starts, np.diff(np.r_[starts, n]))
        rank[order] = np.arange(n) - first
    return order, rank
