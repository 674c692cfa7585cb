"""R2D2 step 3 kernels compiled with numba: the byte-string hash of `kernels.py` for columns holding long values.

Same function as the numpy version in `kernels.py` (bit for bit); numpy walks 8-byte words across all rows at
once, which costs a pass per word of the longest value, so long texts are hashed here one row at a time instead.
Imported only when such a column appears (loading numba costs about a second).
"""

from __future__ import annotations

import numpy as np

from sift.pipelines.core.hashing_numba import mix64
from sift.pipelines.core.kernel_cache import kernel


@kernel()
def _hash_words(words, valid, seed, null_hash):
    n, k = words.shape
    out = np.empty(n, dtype=np.uint64)
    for i in range(n):
        if not valid[i]:
            out[i] = null_hash
            continue
        h = seed
        for j in range(k):
            h = mix64(h ^ np.uint64(words[i, j]) + np.uint64(0x632BE59BD9B4E019) * np.uint64(j + 1))
        out[i] = h
    return out


@kernel()
def _hash_bytes(offsets, data, valid, seed, null_hash):
    n = offsets.shape[0] - 1
    out = np.empty(n, dtype=np.uint64)
    m = np.uint64(0x9FB21C651E98DF25)
    for i in range(n):
        if not valid[i]:
            out[i] = null_hash
            continue
        start = offsets[i]
        end = offsets[i + 1]
        h = seed ^ (np.uint64(end - start) * m)
        p = start
        while p + 8 <= end:
            w = np.uint64(0)
            for b in range(8):
                w |= np.uint64(data[p + b]) << np.uint64(8 * b)
            h = mix64(h ^ w) * m
            p += 8
        w = np.uint64(0)
        b = 0
        while p < end:
            w |= np.uint64(data[p]) << np.uint64(8 * b)
            p += 1
            b += 1
        out[i] = mix64(h ^ w ^ np.uint64(0xD6E8FEB86659FD93))
    return out


@kernel()
def _fold(acc, col):
    out = np.empty(acc.shape[0], dtype=np.uint64)
    for i in range(acc.shape[0]):
        out[i] = mix64(acc[i] * np.uint64(0xC2B2AE3D27D4EB4F) + col[i])
    return out
