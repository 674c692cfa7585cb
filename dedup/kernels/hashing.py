"""Hash primitives of SlimPajama near-duplicate dedup (SlimPajama-DC, section 2): UTF-8 decoding for the numba loops,
the seeds of the hash functions, and the constants of the rolling hash. The 64-bit mixing function every shingle,
signature and band key is built from is the runtime core's `splitmix64` (pipelines/core/hashing_numba.py), a
bijection of uint64 (a permutation for MinHash: `splitmix64(x ^ seed)`).

- `_decode`: one UTF-8 code point from a byte buffer.
- `_seeds`: odd 64-bit seeds drawn from a seed and a salt (permutations, band keys).
"""

from __future__ import annotations

import numpy as np

from sift.pipelines.core.kernel_cache import kernel

_POLY = np.uint64(0x100000001B3 * 2 + 0x5BD1E995 * 2 + 1)  # odd multiplier of the rolling polynomial hash
_EMPTY = np.uint64(0xFFFFFFFFFFFFFFFF)


@kernel(inline="always")
def _decode(data: np.ndarray, i: int) -> tuple[int, int]:
    """(code point, byte length) of the UTF-8 sequence starting at data[i]."""
    b0 = int(data[i])
    if b0 < 0x80:
        return b0, 1
    if b0 < 0xE0:
        return ((b0 & 0x1F) << 6) | (int(data[i + 1]) & 0x3F), 2
    if b0 < 0xF0:
        return ((b0 & 0x0F) << 12) | ((int(data[i + 1]) & 0x3F) << 6) | (int(data[i + 2]) & 0x3F), 3
    return (
        ((b0 & 0x07) << 18)
        | ((int(data[i + 1]) & 0x3F) << 12)
        | ((int(data[i + 2]) & 0x3F) << 6)
        | (int(data[i + 3]) & 0x3F),
        4,
    )


def _seeds(seed: int, count: int, salt: int) -> np.ndarray:
    rng = np.random.Generator(np.random.PCG64([seed, salt]))
    return rng.integers(0, 2**63, size=count, dtype=np.int64).astype(np.uint64) * np.uint64(2) + np.uint64(1)
