"""Exact Jaccard verification of candidate pairs (the check Sift's verified mode adds to SlimPajama-DC's LSH step,
section 2): the similarity of two documents' sets of character (or word) n-gram shingle hashes.

- `jaccard_texts`: Jaccard of pairs of texts by hash-set intersection, grouped so a star's centre is shingled
  once, with an early stop for pairs that cannot reach a threshold; `_jaccard_grouped` is its numba kernel.
- `jaccard_pairs`: the same for row-aligned pairs of texts (the Spark engine's verification).
- `shingle_sets`, `jaccard_edges`: sorted unique shingle sets as CSR and the Jaccard of pairs of them (a slower,
  simpler path the tests compare with).
"""

from __future__ import annotations

import numba as nb
import numpy as np
import pyarrow as pa

from sift.dedup.kernels.hashing import _POLY, _decode
from sift.dedup.kernels.normalise import _sources, _text_of, string_buffers
from sift.dedup.kernels.shingles import _ascii_tokens, _doc_shingles
from sift.pipelines.core.hashing import GOLDEN
from sift.pipelines.core.hashing_numba import splitmix64
from sift.pipelines.core.kernel_cache import kernel


@kernel()
def _count_bound(offsets: np.ndarray) -> np.ndarray:
    n = offsets.shape[0] - 1
    out = np.zeros(n + 1, np.int64)
    for d in range(n):
        out[d + 1] = out[d] + max(offsets[d + 1] - offsets[d], 1)
    return out


@kernel()
def _shingle_sets(offsets, data, ngram, word, seed, bound, values, lengths):
    n = offsets.shape[0] - 1
    tok = np.empty(64, np.uint64)
    asc = _ascii_tokens(seed)
    for d in range(n):
        s = offsets[d]
        e = offsets[d + 1]
        if e - s > tok.shape[0]:
            tok = np.empty(2 * (e - s), np.uint64)
        seg = values[bound[d] : bound[d + 1]]
        m = _doc_shingles(data, s, e, ngram, word, seed, tok, seg, asc)
        if m == 0:
            lengths[d] = 0
            continue
        srt = np.sort(seg[:m])
        u = 1
        for j in range(1, m):
            if srt[j] != srt[u - 1]:
                srt[u] = srt[j]
                u += 1
        seg[:u] = srt[:u]
        lengths[d] = u


def shingle_sets(normalised: pa.Array, *, ngram: int, word: bool, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted unique shingle hashes of each text as CSR: (offsets int64[n+1], values uint64)."""
    offsets, data = string_buffers(normalised)
    bound = _count_bound(offsets)
    values = np.empty(int(bound[-1]), np.uint64)
    lengths = np.zeros(len(normalised), np.int64)
    _shingle_sets(offsets, data, ngram, word, np.uint64(seed), bound, values, lengths)
    out_off = np.zeros(len(normalised) + 1, np.int64)
    np.cumsum(lengths, out=out_off[1:])
    keep = np.zeros(values.shape[0], np.bool_)
    _mark_prefix(bound, lengths, keep)
    return out_off, values[keep]


@kernel()
def _mark_prefix(bound, lengths, keep):
    for d in range(lengths.shape[0]):
        keep[bound[d] : bound[d] + lengths[d]] = True


@kernel()
def _jaccard(va: np.ndarray, vb: np.ndarray) -> float:
    i = 0
    j = 0
    inter = 0
    na = va.shape[0]
    nb_ = vb.shape[0]
    while i < na and j < nb_:
        if va[i] == vb[j]:
            inter += 1
            i += 1
            j += 1
        elif va[i] < vb[j]:
            i += 1
        else:
            j += 1
    union = na + nb_ - inter
    if union == 0:
        return 0.0
    return inter / union


@kernel(parallel=True)
def jaccard_edges(offsets: np.ndarray, values: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Exact Jaccard of the shingle sets of documents a[i] and b[i] (indices into the CSR sets)."""
    out = np.empty(a.shape[0], np.float64)
    for i in nb.prange(a.shape[0]):
        out[i] = _jaccard(
            values[offsets[a[i]] : offsets[a[i] + 1]], values[offsets[b[i]] : offsets[b[i] + 1]]
        )
    return out


@kernel(inline="always")
def _set_insert(keys: np.ndarray, mask: int, h: np.uint64) -> bool:
    """Insert h (nonzero) into an open-addressing set in keys[0..mask] (0 = empty slot); True if it was new."""
    i = int(h) & mask
    while keys[i] != 0:
        if keys[i] == h:
            return False
        i = (i + 1) & mask
    keys[i] = h
    return True


@kernel(inline="always")
def _set_contains(keys: np.ndarray, mask: int, h: np.uint64) -> bool:
    i = int(h) & mask
    while keys[i] != 0:
        if keys[i] == h:
            return True
        i = (i + 1) & mask
    return False


@kernel(inline="always")
def _nonzero(h: np.uint64) -> np.uint64:
    """Shingle hash as a set key: 0 marks empty slots, so the hash 0 (probability 2^-64) takes another value."""
    return h if h != 0 else GOLDEN


@kernel(inline="always")
def _table_mask(m: int) -> int:
    """Mask of the smallest power-of-two table with at least 2m slots (load <= 1/2)."""
    size = 16
    while size < 2 * m:
        size *= 2
    return size - 1


@kernel(inline="always")
def _out_of_reach(inter: int, rest: int, na: int, nb_: int, thr: float) -> bool:
    """Whether a pair can no longer reach Jaccard thr: with `inter` shared and `nb_` unique shingles of b seen
    and at most `rest` shingles of b to come, J <= min(inter + rest, na) / (na + nb_ - inter)."""
    top = inter + rest
    if top > na:
        top = na
    return top < thr * (na + nb_ - inter)


@kernel()
def _char_set(src, s, e, ngram, seed, asc, keys, mask) -> int:
    """Insert every character n-gram shingle hash of src[s:e] into the set keys[0..mask] (the values of
    `_doc_shingles`, computed in one pass with a ring of the last n tokens); returns the number of new ones."""
    top = np.uint64(1)
    for _ in range(ngram):
        top = top * _POLY  # (h - gone * POLY^(n-1)) * POLY == h * POLY - gone * POLY^n
    mixed_n = np.uint64(ngram)
    ring = np.empty(64, np.uint64)  # callers keep ngram <= 64
    h = np.uint64(0)
    n = 0
    u = 0
    i = s
    while i < e:
        b0 = src[i]
        if b0 < 0x80:
            t = asc[b0]
            i += 1
        else:
            cp, ln = _decode(src, i)
            t = splitmix64(np.uint64(cp) ^ seed)
            i += ln
        gone = ring[(n - ngram) & 63] if n >= ngram else np.uint64(0)
        h = h * _POLY + (t - gone * top)
        ring[n & 63] = t
        n += 1
        if n >= ngram and _set_insert(keys, mask, _nonzero(splitmix64(h ^ mixed_n))):
            u += 1
    if 0 < n < ngram and _set_insert(keys, mask, _nonzero(splitmix64(h ^ np.uint64(n)))):
        u += 1
    return u


@kernel()
def _char_probe(src, s, e, ngram, seed, asc, keys, mask, keys_a, mask_a, na, thr):
    """b's side of a pair, in one pass like `_char_set`: each shingle of src[s:e] is inserted into b's set and,
    when new, looked up in a's. Returns (shared, unique of b, rest): rest is 0 when b was streamed whole; with
    thr > 0 it stops as soon as Jaccard thr is out of reach (`_out_of_reach`; each byte still to come is at most
    one more shingle), and rest is the bytes it left."""
    top = np.uint64(1)
    for _ in range(ngram):
        top = top * _POLY
    mixed_n = np.uint64(ngram)
    ring = np.empty(64, np.uint64)
    h = np.uint64(0)
    n = 0
    u = 0
    inter = 0
    check = 0
    i = s
    while i < e:
        if thr > 0.0 and n >= check:
            if _out_of_reach(inter, e - i, na, u, thr):
                return inter, u, e - i
            check = n + 128
        b0 = src[i]
        if b0 < 0x80:
            t = asc[b0]
            i += 1
        else:
            cp, ln = _decode(src, i)
            t = splitmix64(np.uint64(cp) ^ seed)
            i += ln
        gone = ring[(n - ngram) & 63] if n >= ngram else np.uint64(0)
        h = h * _POLY + (t - gone * top)
        ring[n & 63] = t
        n += 1
        if n >= ngram:
            v = _nonzero(splitmix64(h ^ mixed_n))
            if _set_insert(keys, mask, v):
                u += 1
                if _set_contains(keys_a, mask_a, v):
                    inter += 1
    if 0 < n < ngram:
        v = _nonzero(splitmix64(h ^ np.uint64(n)))
        if _set_insert(keys, mask, v):
            u += 1
            if _set_contains(keys_a, mask_a, v):
                inter += 1
    return inter, u, 0


@kernel()
def _jaccard_chunk(sources, ea, eb, lo, hi, ngram, word, seed, thr, out):
    """Edges lo..hi (grouped by ea): the shingle set of each distinct `a` is built once, every `b` streamed.
    Each set is a table of only as many slots as its own document needs (cleared before use, one cache line
    touched per probe), so a huge document met earlier does not spread later small ones over a large table.
    With normalise_first the texts are raw and each is normalised into a small buffer first. Character
    shingles (ngram <= 64) are hashed straight into the sets; word shingles go through token arrays. With
    thr > 0, a `b` stops streaming once the pair cannot reach thr, and out[e] is then an upper bound below thr."""
    asc = _ascii_tokens(seed)
    fused = not word and ngram <= 64
    tok = np.empty(1024, np.uint64)
    sh = np.empty(1024, np.uint64)
    buf = np.empty(1024, np.uint8)
    keys_a = np.zeros(2048, np.uint64)
    keys_b = np.zeros(2048, np.uint64)
    mask_a = 0
    cur = -1
    na = 0
    for e in range(lo, hi):
        if ea[e] != cur:
            cur = ea[e]
            src, s, t, buf = _text_of(cur, sources, buf)
            mask_a = _table_mask(t - s)  # at most one shingle per byte
            if mask_a + 1 > keys_a.shape[0]:
                keys_a = np.zeros(mask_a + 1, np.uint64)
            else:
                keys_a[: mask_a + 1] = 0
            if fused:
                na = _char_set(src, s, t, ngram, seed, asc, keys_a, mask_a)
            else:
                if t - s + 1 > tok.shape[0]:
                    tok = np.empty(2 * (t - s + 1), np.uint64)
                    sh = np.empty(2 * (t - s + 1), np.uint64)
                m = _doc_shingles(src, s, t, ngram, word, seed, tok, sh, asc)
                na = 0
                for j in range(m):
                    if _set_insert(keys_a, mask_a, _nonzero(sh[j])):
                        na += 1
        src, s, t, buf = _text_of(eb[e], sources, buf)
        mask_b = _table_mask(t - s)
        if mask_b + 1 > keys_b.shape[0]:
            keys_b = np.zeros(mask_b + 1, np.uint64)
        else:
            keys_b[: mask_b + 1] = 0
        if fused:
            inter, nb_, rest = _char_probe(src, s, t, ngram, seed, asc, keys_b, mask_b, keys_a, mask_a, na,
                                              thr)  # fmt: skip
        else:
            if t - s + 1 > tok.shape[0]:
                tok = np.empty(2 * (t - s + 1), np.uint64)
                sh = np.empty(2 * (t - s + 1), np.uint64)
            m = _doc_shingles(src, s, t, ngram, word, seed, tok, sh, asc)
            nb_ = 0
            inter = 0
            rest = 0
            for j in range(m):
                if thr > 0.0 and (j & 127) == 0 and _out_of_reach(inter, m - j, na, nb_, thr):
                    rest = m - j
                    break
                h = _nonzero(sh[j])
                if _set_insert(keys_b, mask_b, h):
                    nb_ += 1
                    if _set_contains(keys_a, mask_a, h):
                        inter += 1
        # exact when b was streamed whole (rest == 0, inter <= na); else the bound `_out_of_reach` compared
        union = na + nb_ - inter
        out[e] = min(inter + rest, na) / union if union > 0 else 0.0


@kernel(parallel=True, nogil=True)
def _jaccard_grouped(sources, ea, eb, bounds, ngram, word, seed, thr, out):
    """Edge chunks across threads (`_jaccard_chunk`); sources: the text buffers (`_sources`)."""
    for c in nb.prange(bounds.shape[0] - 1):
        _jaccard_chunk(sources, ea, eb, bounds[c], bounds[c + 1], ngram, word, seed, thr, out)


def jaccard_texts(
    texts: pa.Array,
    a: np.ndarray,
    b: np.ndarray,
    *,
    ngram: int,
    word: bool,
    seed: int,
    normalise_first: bool = False,
    unicode_punctuation: bool = True,
    threshold: float = 0.0,
) -> np.ndarray:
    """Exact Jaccard of the shingle sets of texts a[i] and b[i] (indices into `texts`: normalised texts, or raw
    ones normalised on the fly with `normalise_first`). With a `threshold`, a pair stops being streamed once
    it cannot reach it, and its value is then an upper bound below the threshold; values at or above it are
    always exact.

    Hash-set intersection, no sorting: edges are grouped by `a` so a star's centre is shingled once; the work is
    linear in the characters of the edges' documents, and memory is the texts, not their shingles.
    """
    n = a.shape[0]
    out = np.empty(n, np.float64)
    if n == 0:
        return out
    texts, sources = _sources(texts, normalise_first=normalise_first, unicode_punctuation=unicode_punctuation)
    order = np.argsort(a, kind="stable")
    sa = np.ascontiguousarray(a[order], dtype=np.int64)
    sb = np.ascontiguousarray(b[order], dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, sa[1:] != sa[:-1]])
    chunks = max(1, min(len(starts), 8 * nb.get_num_threads()))
    bounds = np.r_[starts[np.linspace(0, len(starts), chunks, endpoint=False).astype(np.int64)], n].astype(
        np.int64
    )
    res = np.empty(n, np.float64)
    _jaccard_grouped(
        sources, sa, sb, np.unique(bounds), ngram, word, np.uint64(seed), _stop_at(threshold), res
    )
    out[order] = res
    return out


def _stop_at(threshold: float) -> float:
    """The threshold the kernels stop at, a hair below the given one: a pair stopped there has Jaccard below
    `threshold` even after the rounding of its final division."""
    return float(threshold) * (1.0 - 1e-12) if threshold > 0 else 0.0


def jaccard_pairs(
    norm_a: pa.Array, norm_b: pa.Array, *, ngram: int, word: bool, seed: int, threshold: float = 0.0
) -> np.ndarray:
    """Exact Jaccard of row-aligned pairs of normalised texts (the Spark engine's verification kernel); with a
    `threshold`, as in `jaccard_texts`."""
    n = len(norm_a)
    both = pa.concat_arrays([norm_a.cast(pa.large_string()), norm_b.cast(pa.large_string())])
    idx = np.arange(n, dtype=np.int64)
    return jaccard_texts(both, idx, idx + n, ngram=ngram, word=word, seed=seed, threshold=threshold)
