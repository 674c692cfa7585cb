"""PASER step 1, semantic-structural recovery instruction clustering (S2RIC), on sparse matrices only.

From the instruction embeddings (rows L2-normalised): a k-nearest-neighbour graph (exact neighbours by cosine, computed in
blocks of rows, so memory stays bounded), weighted by a Gaussian diffusion kernel exp(-d²/2σ²) with σ the median
neighbour distance and made symmetric; its normalised affinity A = D^-1/2 W D^-1/2 (the normalised Laplacian is
I - A); the leading eigenvectors of A (scipy's sparse eigsh) give the spectral (diffusion-map) coordinates, and the
eigengap of A's spectrum picks the number of clusters K when it is not fixed; the clusters come from a rank-K
non-negative factorisation of A (NMF-based spectral clustering: each sample joins the component it loads most on).
No N×N dense matrix is ever built: the graph holds N·k edges.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp


@dataclass
class Clustering:
    """Cluster of each row (0..K-1), the 2-D coordinates of each row (for the picture), and how K was
    chosen (`method`: "fixed", "eigengap" or "trivial"; `eigenvalues` of A, leading first)."""

    labels: np.ndarray
    coords: np.ndarray
    k: int
    method: str
    eigenvalues: list[float] = field(default_factory=list)
    sigma: float = 0.0
    sample: int | None = None  # clustered on a sample of this many rows, the rest assigned out of sample


def knn(
    x: np.ndarray, k: int, base: np.ndarray | None = None, block_cells: int = 1 << 25
) -> tuple[np.ndarray, np.ndarray]:
    """The `k` nearest neighbours of every row of the L2-normalised float32 `x` among the rows of `base` (default:
    `x` itself, each row left out of its own list): their indices and Euclidean distances, nearest first.
    Exact: one float32 matrix product per block of rows against all of `base` (at most `block_cells`
    similarities held at once) and the top k of each row (torch's topk when torch is installed, as with the
    `models` extra: an order of magnitude faster than numpy's partial sort)."""
    import importlib.util

    torch: Any = importlib.import_module("torch") if importlib.util.find_spec("torch") else None
    own = base is None
    y = x if base is None else base
    n, m = x.shape[0], y.shape[0]
    rows = max(1, min(n, block_cells // max(m, 1)))
    idx = np.empty((n, k), dtype=np.int64)
    best = np.empty((n, k), dtype=np.float32)
    xt = torch.from_numpy(np.ascontiguousarray(x)) if torch is not None else None
    yt = torch.from_numpy(np.ascontiguousarray(y)) if torch is not None else None
    for start in range(0, n, rows):
        stop = min(n, start + rows)
        diag = (np.arange(stop - start), np.arange(start, stop))
        if xt is not None and yt is not None:
            sim_t = xt[start:stop] @ yt.T
            if own:
                sim_t[diag] = -float("inf")  # not its own neighbour
            top_sim, top = torch.topk(sim_t, k, dim=1, sorted=True)
            best[start:stop], idx[start:stop] = top_sim.numpy(), top.numpy()
        else:
            sim = x[start:stop] @ y.T
            if own:
                sim[diag] = -np.inf
            part = np.argpartition(-sim, k - 1, axis=1)[:, :k]
            part_sim = np.take_along_axis(sim, part, axis=1)
            order = np.argsort(-part_sim, axis=1, kind="stable")
            idx[start:stop] = np.take_along_axis(part, order, axis=1)
            best[start:stop] = np.take_along_axis(part_sim, order, axis=1)
    return idx, np.sqrt(np.maximum(2.0 - 2.0 * best, 0.0))


def knn_affinity(x: np.ndarray, k: int) -> tuple[sp.csr_matrix, float]:
    """The symmetric Gaussian-kernel kNN affinity of the rows of `x` (sparse, N·k edges at most twice) and σ."""
    n = x.shape[0]
    k = min(k, n - 1)
    idx, dist = knn(x, k)
    rows = np.repeat(np.arange(n), k)
    d = dist.ravel().astype(np.float64)
    positive = d[d > 0]
    sigma = float(np.median(positive)) if positive.size else 1.0
    w = np.exp(-(d**2) / (2.0 * sigma**2))
    g = sp.csr_matrix((w, (rows, idx.ravel())), shape=(n, n))
    return g.maximum(g.T).tocsr(), sigma


def normalised_affinity(w: sp.csr_matrix) -> tuple[sp.csr_matrix, np.ndarray]:
    """A = D^-1/2 W D^-1/2 and D^-1/2 (D: the degrees)."""
    deg = np.asarray(w.sum(axis=1)).ravel()
    inv_sqrt = np.where(deg > 0, 1.0 / np.sqrt(np.maximum(deg, 1e-300)), 0.0)
    dm = sp.diags(inv_sqrt)
    return (dm @ w @ dm).tocsr(), inv_sqrt


def spectrum(a: sp.csr_matrix, m: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The `m` largest eigenvalues of the symmetric sparse A (leading first) and their eigenvectors.

    Each connected component of the graph gives A the eigenvalue 1 once, with the eigenvector D^1/2·1 on that
    component; Lanczos alone may merge such repeated eigenvalues, so they are written down directly and eigsh
    runs on A with them deflated (a linear operator: A x - V Vᵀx)."""
    from scipy.sparse.csgraph import connected_components
    from scipy.sparse.linalg import LinearOperator, eigsh

    n = a.shape[0]
    m = max(1, min(m, n - 2))
    count, comp = connected_components(a, directed=False)
    deg_sqrt = np.sqrt(np.asarray(a.sum(axis=1)).ravel())  # A's eigenvector of eigenvalue 1, per component
    fixed = np.zeros((n, 0))
    if 1 < count < m:
        fixed = np.zeros((n, count))
        fixed[np.arange(n), comp] = deg_sqrt
        fixed /= np.maximum(np.linalg.norm(fixed, axis=0), 1e-300)
        op = LinearOperator((n, n), matvec=lambda x: a @ x - fixed @ (fixed.T @ x), dtype=np.float64)
        rest = m - count
    else:
        op, rest = a, m
    v0 = np.random.default_rng(seed).uniform(0.5, 1.0, n)
    vals, vecs = eigsh(op, k=rest, which="LA", v0=v0, tol=1e-6, maxiter=max(1000, 20 * n))
    if fixed.shape[1]:
        vals = np.concatenate([np.ones(fixed.shape[1]), vals])
        vecs = np.concatenate([fixed, vecs], axis=1)
    order = np.argsort(-vals, kind="stable")
    vecs = vecs[:, order]
    # a sign convention, so the same input gives the same picture
    signs = np.sign(vecs[np.argmax(np.abs(vecs), axis=0), np.arange(vecs.shape[1])])
    return vals[order], vecs * np.where(signs == 0, 1.0, signs)


def eigengap_k(vals: np.ndarray, max_k: int) -> int:
    """K with the largest gap λ_K - λ_{K+1} among 2..max_k (eigenvalues leading first)."""
    top = min(max_k, vals.size - 1)
    if top < 2:
        return 1
    gaps = vals[1:top] - vals[2 : top + 1]  # gap after the 2nd, 3rd, ... top-th eigenvalue
    return int(np.argmax(gaps)) + 2


def nmf_labels(a: sp.csr_matrix, k: int, init: np.ndarray, iterations: int = 300) -> np.ndarray:
    """NMF-based spectral clustering (Ding, He and Simon, "On the equivalence of nonnegative matrix factorization
    and spectral clustering"): the symmetric factorisation A ≈ H·Hᵀ, H ≥ 0 of rank k, by the damped multiplicative
    update H ← H·(½ + ½·AH / HHᵀH) (sparse AH; HHᵀH as H·(HᵀH), k×k), started from the absolute values of the
    leading k eigenvectors, until no row changes column over ten updates; each row joins the column it loads
    most on."""
    h = np.abs(init[:, :k]) + 1e-6
    labels = np.argmax(h, axis=1)
    for i in range(iterations):
        ah = a @ h
        hhh = h @ (h.T @ h)
        h *= 0.5 + 0.5 * ah / np.maximum(hhh, 1e-12)
        if i % 10 == 9:  # stop once no row changes cluster over ten updates
            now = np.argmax(h, axis=1)
            if np.array_equal(now, labels):
                break
            labels = now
    return np.argmax(h, axis=1).astype(np.int64)


def relabel(labels: np.ndarray) -> np.ndarray:
    """Cluster numbers by first appearance (0 is the first row's cluster), dropping empty components."""
    _, first = np.unique(labels, return_index=True)
    order = np.argsort(first, kind="stable")
    mapping = np.empty(labels.max() + 1, dtype=np.int64)
    mapping[np.unique(labels)[order]] = np.arange(order.size)
    return mapping[labels]


def s2ric(
    embeddings: np.ndarray, clusters: int | str = "auto", *, k_neighbors: int = 15, max_clusters: int = 30,
    seed: int = 0, sample: int | None = None,
) -> Clustering:  # fmt: skip
    """Cluster the rows of `embeddings` (S2RIC); `clusters` "auto" (eigengap) or a fixed K.

    Beyond `sample` rows, S2RIC runs on a random sample of that many (seeded) and every other row is assigned
    out of sample: the cluster with the largest kernel weight among its k nearest sampled rows, and the kernel-
    weighted mean of their map coordinates."""
    x = np.asarray(embeddings, dtype=np.float32)
    n = x.shape[0]
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    x = (x / np.where(norms > 0, norms, 1.0)).astype(np.float32)
    if n < 4 or clusters == 1:
        return Clustering(np.zeros(n, dtype=np.int64), np.zeros((n, 2)), 1, "trivial" if n < 4 else "fixed")
    if sample is None or n <= sample:
        return _s2ric(x, clusters, k_neighbors, max_clusters, seed)
    pick = np.sort(np.random.default_rng(seed).choice(n, size=sample, replace=False))
    core = _s2ric(x[pick], clusters, k_neighbors, max_clusters, seed)
    rest = np.setdiff1d(np.arange(n), pick)
    k = min(k_neighbors, sample)
    idx, dist = knn(x[rest], k, base=x[pick])
    w = np.exp(-(dist.astype(np.float64) ** 2) / (2.0 * core.sigma**2)) + 1e-300
    votes = np.zeros((rest.size, core.k))
    np.add.at(votes, (np.repeat(np.arange(rest.size), k), core.labels[idx].ravel()), w.ravel())
    labels = np.empty(n, dtype=np.int64)
    labels[pick], labels[rest] = core.labels, np.argmax(votes, axis=1)
    coords = np.empty((n, 2))
    coords[pick] = core.coords
    coords[rest] = np.einsum("rk,rkc->rc", w, core.coords[idx]) / w.sum(axis=1, keepdims=True)
    labels = relabel(labels)
    return Clustering(
        labels, coords, int(labels.max()) + 1, core.method, core.eigenvalues, core.sigma, sample
    )


def _s2ric(x: np.ndarray, clusters: int | str, k_neighbors: int, max_clusters: int, seed: int) -> Clustering:
    n = x.shape[0]
    w, sigma = knn_affinity(x, k_neighbors)
    a, inv_sqrt = normalised_affinity(w)
    want = max_clusters if clusters == "auto" else int(clusters)
    vals, vecs = spectrum(a, max(want + 1, 3), seed)
    if clusters == "auto":
        k, method = eigengap_k(vals, max_clusters), "eigengap"
    else:
        k, method = min(int(clusters), n), "fixed"
    # diffusion-map coordinates (one step): λ_i · D^-1/2 u_i of every eigenvector computed (the clusters' own
    # and the next ones, which spread each cluster out), rows scaled to unit length; their two principal axes
    # are the 2-D picture
    diffusion = vecs * inv_sqrt[:, None] * np.maximum(vals, 0.0)[None, :]
    diffusion /= np.maximum(np.linalg.norm(diffusion, axis=1, keepdims=True), 1e-300)
    centred = diffusion - diffusion.mean(axis=0)
    _, _, axes = np.linalg.svd(centred, full_matrices=False)  # lead × lead: small
    coords = centred @ axes[:2].T
    coords *= np.where(coords[np.argmax(np.abs(coords), axis=0), [0, 1]] < 0, -1.0, 1.0)
    labels = relabel(nmf_labels(a, k, vecs)) if k > 1 else np.zeros(n, dtype=np.int64)
    return Clustering(labels, coords, int(labels.max()) + 1, method, [float(v) for v in vals], sigma)
