"""Shingling of SlimPajama near-duplicate dedup (SlimPajama-DC, section 2: character 13-grams of the normalised
text): tokens (code points, or space-separated words) mixed to 64 bits, then a rolling polynomial hash over each
window of n tokens, mixed again.

- `_ascii_tokens`: the token value of each ASCII code point (a lookup instead of a mix).
- `_tokens`, `_window_hashes`, `_doc_shingles`: one document's tokens, then its shingle hashes.
"""

from __future__ import annotations

import numpy as np

from sift.dedup.kernels.hashing import _POLY, _decode
from sift.pipelines.core.hashing_numba import splitmix64
from sift.pipelines.core.kernel_cache import kernel


@kernel()
def _ascii_tokens(seed: np.uint64) -> np.ndarray:
    """The token value of each ASCII code point (a lookup instead of a mix for most characters)."""
    out = np.empty(128, np.uint64)
    for cp in range(128):
        out[cp] = splitmix64(np.uint64(cp) ^ seed)
    return out


# The character-shingle loop exists four times: here (`_tokens` + `_window_hashes`, the reference, also used for
# word shingles) and fused into its consumer in `signatures._oph_char_fused`, `jaccard._char_set` and
# `jaccard._char_probe` (a ring of the last n tokens instead of token and shingle arrays). Measured on the
# 60 MB bench corpus: sharing the loops as numba helpers made the facts kernel 1.0 s -> 1.5-1.8 s; sharing only
# the per-character token (a helper with inline="always") made it 0.53 s -> 1.5 s and Jaccard verification
# 1.3 s -> 2.7 s (CPU seconds, one thread). So the copies stay; a change to one must be made to all four, and
# tests/test_dedup_kernels.py checks that they agree.
@kernel()
def _tokens(data, start, end, word, seed, out, asc) -> int:
    """Write one mixed 64-bit value per token (code point, or space-separated word) of data[start:end] into out;
    asc = _ascii_tokens(seed)."""
    n = 0
    i = start
    if not word:
        while i < end:
            b0 = data[i]
            if b0 < 0x80:
                out[n] = asc[b0]
                n += 1
                i += 1
                continue
            cp, ln = _decode(data, i)
            out[n] = splitmix64(np.uint64(cp) ^ seed)
            n += 1
            i += ln
        return n
    h = np.uint64(0)
    inword = False
    while i < end:
        b = data[i]
        if b == 32:
            if inword:
                out[n] = splitmix64(h ^ seed)
                n += 1
                inword = False
                h = np.uint64(0)
        else:
            h = h * _POLY + np.uint64(b) + np.uint64(1)
            inword = True
        i += 1
    if inword:
        out[n] = splitmix64(h ^ seed)
        n += 1
    return n


@kernel()
def _window_hashes(tok: np.ndarray, ntok: int, ngram: int, out: np.ndarray) -> int:
    """Rolling polynomial hash of every `ngram`-token window (one window of all tokens if fewer), mixed."""
    if ntok == 0:
        return 0
    if ntok < ngram:
        h = np.uint64(0)
        for j in range(ntok):
            h = h * _POLY + tok[j]
        out[0] = splitmix64(h ^ np.uint64(ntok))
        return 1
    top = np.uint64(1)
    for _ in range(ngram - 1):
        top = top * _POLY
    h = np.uint64(0)
    for j in range(ngram):
        h = h * _POLY + tok[j]
    out[0] = splitmix64(h ^ np.uint64(ngram))
    n = 1
    for j in range(ngram, ntok):
        h = (h - tok[j - ngram] * top) * _POLY + tok[j]
        out[n] = splitmix64(h ^ np.uint64(ngram))
        n += 1
    return n


@kernel()
def _doc_shingles(data, start, end, ngram, word, seed, tok, out, asc) -> int:
    ntok = _tokens(data, start, end, word, seed, tok, asc)
    return _window_hashes(tok, ntok, ngram, out)
