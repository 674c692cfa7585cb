"""Components and survivors of SlimPajama near-duplicate dedup (SlimPajama-DC, section 2: the connected components
of the LSH graph, one document kept per component), and the greedy survivors of Sift's verified mode.

- `connected_components`: union-find labels of the nodes under a list of edges.
- `greedy_survivors`: in priority order, a document is kept unless it has a verified edge to an already kept one.
"""

from __future__ import annotations

import numpy as np

from sift.pipelines.core.kernel_cache import kernel


@kernel()
def _union_find(n, a, b):
    parent = np.arange(n)
    for e in range(a.shape[0]):
        x = a[e]
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        y = b[e]
        while parent[y] != y:
            parent[y] = parent[parent[y]]
            y = parent[y]
        if x != y:
            if x < y:
                parent[y] = x
            else:
                parent[x] = y
    for i in range(n):  # parents point to smaller ids, so one pass in order finds every root
        parent[i] = parent[parent[i]]
    return parent


def connected_components(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Label of each node 0..n-1 under the undirected edges (a, b): the smallest node of its component
    (union-find with path halving; the components of the LSH graph in SlimPajama's recipe)."""
    return _union_find(n, np.ascontiguousarray(a, np.int64), np.ascontiguousarray(b, np.int64))


@kernel()
def _greedy(n, adj_off, adj_nb, adj_sim, kept, dup, sim):
    for i in range(n):
        best = -1
        best_sim = -1.0
        for p in range(adj_off[i], adj_off[i + 1]):
            j = adj_nb[p]
            if j < i and kept[j] and (adj_sim[p] > best_sim or (adj_sim[p] == best_sim and j < best)):
                best = j
                best_sim = adj_sim[p]
        if best < 0:
            kept[i] = True
            dup[i] = -1
            sim[i] = np.nan
        else:
            kept[i] = False
            dup[i] = best
            sim[i] = best_sim


def greedy_survivors(n: int, a: np.ndarray, b: np.ndarray, similarity: np.ndarray):
    """Nodes 0..n-1 are in priority order (0 = most preferred); edges (a, b, similarity) are verified.

    Walking the nodes in order, a node is kept unless it has an edge to an already kept node; then it is removed
    with `duplicate_of` = that kept node of highest similarity (ties: the more preferred). Returns
    (kept bool[n], duplicate_of int64[n] (-1 if kept), similarity float64[n] (NaN if kept)).
    Linear in nodes + edges; the result of a node depends only on its own component.
    """
    a = np.asarray(a, np.int64)
    b = np.asarray(b, np.int64)
    s = np.asarray(similarity, np.float64)
    src = np.concatenate([a, b])
    dst = np.concatenate([b, a])
    ss = np.concatenate([s, s])
    order = np.lexsort((dst, src))
    src, dst, ss = src[order], dst[order], ss[order]
    adj_off = np.zeros(n + 1, np.int64)
    np.cumsum(np.bincount(src, minlength=n), out=adj_off[1:])
    kept = np.zeros(n, np.bool_)
    dup = np.full(n, -1, np.int64)
    sim = np.full(n, np.nan, np.float64)
    _greedy(n, adj_off, dst, ss, kept, dup, sim)
    return kept, dup, sim
