"""Shared hashing primitives compiled with numba: splitmix64 and its finaliser on one uint64, for numba loops.

The same functions as `hashing.py` (bit for bit), inlined into the calling loop (`inline="always"`): SlimPajama
dedup's shingle, signature and band-key kernels call `splitmix64`, R2D2 containment's long-value kernels `mix64`.
"""

from __future__ import annotations

import numpy as np

from sift.pipelines.core.hashing import GOLDEN, M1, M2
from sift.pipelines.core.kernel_cache import kernel


@kernel(inline="always")
def mix64(x: np.uint64) -> np.uint64:
    """splitmix64's finaliser: a bijection of uint64 with good avalanche."""
    x = (x ^ (x >> np.uint64(30))) * M1
    x = (x ^ (x >> np.uint64(27))) * M2
    return x ^ (x >> np.uint64(31))


@kernel(inline="always")
def splitmix64(x: np.uint64) -> np.uint64:
    """splitmix64: the finaliser of `x + GOLDEN` (a permutation of uint64; `splitmix64(x ^ seed)` for MinHash)."""
    x = x + GOLDEN  # (the finaliser written out again: one inlined body, not an inlined call of mix64)
    x = (x ^ (x >> np.uint64(30))) * M1
    x = (x ^ (x >> np.uint64(27))) * M2
    return x ^ (x >> np.uint64(31))
