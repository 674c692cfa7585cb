"""Signatures and LSH band keys of SlimPajama near-duplicate dedup (SlimPajama-DC, section 2: MinHash of the
shingle sets, then LSH bands), computed per document in one fused pass with the exact-duplicate hash.

- `document_facts`: per document, the exact hashes of the normalised text, its length in code points, its shingle
  count, its band keys and its signature (k-permutation MinHash, or one-permutation hashing with optimal
  densification, Shrivastava 2017); `_doc_facts` is the parallel numba kernel behind it.
- `facts_batch`: the same as one Arrow record batch per input batch, the kernel both engines map over documents.
- `signature_agreement`, `prefilter_count`: equal signature positions of candidate pairs (the MinHash estimate of
  their Jaccard), which verified mode uses to reject candidates before exact verification.
"""

from __future__ import annotations

import numba as nb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sift.dedup.kernels.hashing import _EMPTY, _POLY, _decode, _seeds
from sift.dedup.kernels.normalise import _chunk_bounds, _sources, _text_of
from sift.dedup.kernels.shingles import _ascii_tokens, _tokens, _window_hashes
from sift.pipelines.core.hashing import M1, M2
from sift.pipelines.core.hashing_numba import splitmix64
from sift.pipelines.core.kernel_cache import kernel


@kernel()
def _exact_hash(data: np.ndarray, start: int, end: int, seed: np.uint64) -> tuple[np.uint64, np.uint64]:
    """Two independent 64-bit hashes of a byte range (128 bits against accidental exact-duplicate collisions),
    eight bytes (one little-endian word) per step, the tail byte by byte."""
    h1 = np.uint64(0xCBF29CE484222325) ^ seed
    h2 = splitmix64(seed ^ np.uint64(0x5851F42D4C957F2D))
    i = start
    while i + 8 <= end:
        w = np.uint64(0)
        for q in range(8):
            w |= np.uint64(data[i + q]) << np.uint64(8 * q)
        h1 = (h1 ^ w) * M2
        h1 = h1 ^ (h1 >> np.uint64(31))
        h2 = (h2 + w + np.uint64(1)) * M1
        h2 = h2 ^ (h2 >> np.uint64(29))
        i += 8
    while i < end:
        b = np.uint64(data[i])
        h1 = (h1 ^ b) * np.uint64(0x100000001B3)
        h2 = (h2 + b + np.uint64(1)) * M1
        h2 = h2 ^ (h2 >> np.uint64(29))
        i += 1
    n = np.uint64(end - start)
    return splitmix64(h1 ^ n), splitmix64(h2 + n)


@kernel()
def _signature_minhash(sh: np.ndarray, n: int, perm_seeds: np.ndarray, sig: np.ndarray) -> None:
    k = perm_seeds.shape[0]
    for p in range(k):
        sig[p] = _EMPTY
    for j in range(n):
        x = sh[j]
        for p in range(k):
            v = splitmix64(x ^ perm_seeds[p])
            if v < sig[p]:
                sig[p] = v


@kernel()
def _signature_oph(sh: np.ndarray, n: int, k: int, seed: np.uint64, sig: np.ndarray) -> None:
    """One-permutation hashing into k bins, then optimal densification: an empty bin copies the value of the
    first non-empty bin on its own seeded probe sequence (the same sequence in every document)."""
    for p in range(k):
        sig[p] = _EMPTY
    kk = np.uint64(k)
    for j in range(n):
        v = sh[j]  # a shingle hash is already a seeded splitmix64 output
        b = int(((v >> np.uint64(32)) * kk) >> np.uint64(32))  # bin from the high bits, no division
        if v < sig[b]:
            sig[b] = v
    _densify(sig, k, seed)


@kernel()
def _oph_char_fused(src, s, e, ngram, seed, k, asc, sig) -> tuple[int, int]:
    """Character n-gram shingles of src[s:e] straight into a one-permutation signature (the values and bins of
    `_tokens` + `_window_hashes` + `_signature_oph`'s first pass, in one pass with a ring of the last n tokens
    instead of token and shingle arrays). Returns (tokens, shingles); densification is left to the caller."""
    for p in range(k):
        sig[p] = _EMPTY
    kk = np.uint64(k)
    # k a power of two (128 by default): the bin ((v >> 32) * k) >> 32 is just the top log2(k) bits
    lg = 0
    while (1 << (lg + 1)) <= k:
        lg += 1
    shift = np.uint64(64 - lg) if (1 << lg) == k and lg > 0 else np.uint64(0)
    top = np.uint64(1)
    for _ in range(ngram):
        top = top * _POLY  # POLY^n: (h - gone * POLY^(n-1)) * POLY == h * POLY - gone * POLY^n
    mixed_n = np.uint64(ngram)
    ring = np.empty(64, np.uint64)  # callers keep ngram <= 64
    h = np.uint64(0)
    n = 0
    m = 0
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
        gone = ring[(n - ngram) & 63] if n >= ngram else np.uint64(0)  # the token leaving the window
        h = h * _POLY + (t - gone * top)  # the subtraction stays off the chain through h
        ring[n & 63] = t
        n += 1
        if n >= ngram:
            v = splitmix64(h ^ mixed_n)
            b = int(v >> shift) if shift else int(((v >> np.uint64(32)) * kk) >> np.uint64(32))
            if v < sig[b]:
                sig[b] = v
            m += 1
    if 0 < n < ngram:  # one window of all tokens
        v = splitmix64(h ^ np.uint64(n))
        b = int(((v >> np.uint64(32)) * kk) >> np.uint64(32))
        sig[b] = v
        m = 1
    return n, m


@kernel()
def _densify(sig, k, seed) -> None:
    """Optimal densification of a one-permutation signature: each empty bin takes the value of the first
    non-empty bin on its own seeded probe sequence (the same sequence in every document)."""
    kk = np.uint64(k)
    filled = 0
    for p in range(k):
        if sig[p] != _EMPTY:
            filled += 1
    if filled == 0 or filled == k:
        return
    orig = sig.copy()
    for p in range(k):
        if orig[p] == _EMPTY:
            attempt = np.uint64(1)
            while True:
                b = int(splitmix64(seed ^ (np.uint64(p) << np.uint64(32)) ^ attempt) % kk)
                if orig[b] != _EMPTY:
                    sig[p] = orig[b] ^ splitmix64(np.uint64(attempt))
                    break
                attempt += np.uint64(1)


@kernel()
def _facts_one(src, s, e, d, params, tok, sh, sig, asc, out):
    """Facts of one normalised text src[s:e] into row d of out (`_doc_facts`; tok and sh hold at least e - s
    values)."""
    ngram, word, seed, perm_seeds, use_oph, k, bands, rows, band_seeds = params
    h1, h2, nchars, nsh, keys, sigs = out
    a, b = _exact_hash(src, s, e, seed)
    h1[d] = a
    h2[d] = b
    fused = use_oph and not word and ngram <= 64  # the default path: shingles straight into the signature
    if fused:
        ntok, m = _oph_char_fused(src, s, e, ngram, seed, k, asc, sig)
        nchars[d] = ntok  # one token per code point
    else:
        ntok = _tokens(src, s, e, word, seed, tok, asc)
        if word:
            c = 0
            i = s
            while i < e:
                _, ln = _decode(src, i)
                i += ln
                c += 1
            nchars[d] = c
        else:
            nchars[d] = ntok  # one token per code point
        m = _window_hashes(tok, ntok, ngram, sh)
    nsh[d] = m
    if m == 0:
        for bb in range(bands):
            keys[d, bb] = np.uint64(0)
        for p in range(k):
            sigs[d, p] = _EMPTY
        return
    if fused:
        _densify(sig, k, seed)
    elif use_oph:
        _signature_oph(sh, m, k, seed, sig)
    else:
        _signature_minhash(sh, m, perm_seeds, sig)
    for bb in range(bands):
        key = band_seeds[bb]
        for r in range(rows):
            key = splitmix64(key ^ sig[bb * rows + r])
        keys[d, bb] = key
    for p in range(k):
        sigs[d, p] = sig[p]


@kernel()
def _doc_facts_range(lo, hi, sources, params, out):
    """Documents lo..hi. With normalise_first, each raw text (or its pre-folded non-ASCII form in alt_data) is
    normalised into a small per-thread buffer that stays in cache, and hashed from there; no normalised copy
    of the batch is ever built."""
    seed = params[2]
    tok = np.empty(64, np.uint64)
    sh = np.empty(64, np.uint64)
    sig = np.empty(params[5], np.uint64)
    buf = np.empty(64, np.uint8)
    asc = _ascii_tokens(seed)
    for d in range(lo, hi):
        src, s, e, buf = _text_of(d, sources, buf)
        if e - s > tok.shape[0]:
            tok = np.empty(2 * (e - s), np.uint64)
            sh = np.empty(2 * (e - s), np.uint64)
        _facts_one(src, s, e, d, params, tok, sh, sig, asc, out)


@kernel(parallel=True, nogil=True)
def _doc_facts(bounds, sources, params, out):
    """Documents in chunks across threads; every output row depends only on its own document. sources: the text
    buffers (`_sources`); params: (ngram, word, seed, perm_seeds, use_oph, k, bands, rows, band_seeds); out:
    (h1, h2, nchars, nsh, keys, sigs), one row per document."""
    for c in nb.prange(bounds.shape[0] - 1):
        _doc_facts_range(bounds[c], bounds[c + 1], sources, params, out)


def document_facts(
    texts: pa.Array,
    *,
    ngram: int,
    word: bool,
    seed: int,
    signature: str,
    num_perm: int,
    bands: int,
    rows: int,
    normalise_first: bool = False,
    unicode_punctuation: bool = True,
) -> dict[str, np.ndarray]:
    """For each normalised text (or each raw text, normalised on the fly, with `normalise_first`): exact hashes
    `h1`, `h2` (int64 bit patterns) of the normalised text, `nchars` (its code points), `nshingles`, `bands`
    int64[n, bands] LSH band keys (0 where a document has no shingles) and the `signature` int64[n, num_perm]."""
    texts, sources = _sources(texts, normalise_first=normalise_first, unicode_punctuation=unicode_punctuation)
    n = len(texts)
    h1 = np.empty(n, np.uint64)
    h2 = np.empty(n, np.uint64)
    nchars = np.empty(n, np.int64)
    nsh = np.empty(n, np.int64)
    keys = np.empty((n, bands), np.uint64)
    sigs = np.empty((n, num_perm), np.uint64)
    params = (ngram, word, np.uint64(seed), _seeds(seed, num_perm, 1), signature == "oph", num_perm, bands, rows,
              _seeds(seed, bands, 2))  # fmt: skip
    bounds = _chunk_bounds(sources[0], 4 * nb.get_num_threads())
    _doc_facts(bounds, sources, params, (h1, h2, nchars, nsh, keys, sigs))
    return {
        "h1": h1.view(np.int64),
        "h2": h2.view(np.int64),
        "nchars": nchars,
        "nshingles": nsh,
        "bands": keys.view(np.int64),
        "signature": sigs.view(np.int64),
    }


@kernel(parallel=True, nogil=True)
def _agreement(sigs: np.ndarray, ia: np.ndarray, ib: np.ndarray) -> np.ndarray:
    n = ia.shape[0]
    k = sigs.shape[1]
    out = np.zeros(n, np.int64)
    for i in nb.prange(n):
        a = ia[i]
        b = ib[i]
        c = 0
        for p in range(k):
            if sigs[a, p] == sigs[b, p]:
                c += 1
        out[i] = c
    return out


def signature_agreement(
    sig_a: np.ndarray,
    sig_b: np.ndarray | None = None,
    *,
    rows_a: np.ndarray | None = None,
    rows_b: np.ndarray | None = None,
) -> np.ndarray:
    """Number of equal positions of row-aligned signatures (the MinHash/OPH estimate of Jaccard is count / k):
    of sig_a[i] and sig_b[i], or, with rows_a/rows_b, of sig_a[rows_a[i]] and sig_a[rows_b[i]] (no gathered
    copies of the signature rows)."""
    if rows_a is not None and rows_b is not None:
        return _agreement(sig_a, np.asarray(rows_a, np.int64), np.asarray(rows_b, np.int64))
    n = sig_a.shape[0]
    both = np.concatenate([sig_a, sig_b])
    idx = np.arange(n, dtype=np.int64)
    return _agreement(both, idx, idx + n)


def prefilter_count(config) -> int:
    """Verified mode: candidate edges whose signatures agree in fewer positions are rejected without exact
    verification (estimate below threshold - prefilter_margin); -1 disables the prefilter."""
    if config.mode != "verified" or config.prefilter_margin >= config.threshold:
        return -1
    return int(np.ceil((config.threshold - config.prefilter_margin) * config.num_perm - 1e-9))


def band_columns(bands: int) -> list[str]:
    return [f"band_{b:02d}" for b in range(bands)]


def facts_batch(batch: pa.RecordBatch | pa.Table, config) -> pa.RecordBatch:
    """Documents (`_row`, `id`, `source`, `text`) -> one row of facts per document: `_row`, `id`, `source`,
    `length` (characters of the raw text), `nbytes` (its UTF-8 bytes), `nchars` (normalised characters),
    `nshingles`, `h1`/`h2` (exact hash of the normalised text) and one int64 LSH key per band."""
    text = batch.column("text")
    if isinstance(text, pa.ChunkedArray):
        text = text.combine_chunks() if text.num_chunks != 1 else text.chunk(0)
    text = pc.fill_null(text.cast(pa.string()), "")
    bands, rows = config.banding
    f = document_facts(
        text,
        normalise_first=True,
        unicode_punctuation=config.strip_unicode_punctuation,
        ngram=config.ngram,
        word=config.shingle == "word",
        seed=config.seed,
        signature=config.signature_kind,
        num_perm=config.num_perm,
        bands=bands,
        rows=rows,
    )
    cols: dict[str, pa.Array] = {
        "_row": batch.column("_row"),
        "id": batch.column("id"),
        "source": batch.column("source"),
        "length": pc.utf8_length(text).cast(pa.int64()),
        "nbytes": pc.binary_length(text).cast(pa.int64()),
        "nchars": pa.array(f["nchars"]),
        "nshingles": pa.array(f["nshingles"]),
        "h1": pa.array(f["h1"]),
        "h2": pa.array(f["h2"]),
    }
    keys = f["bands"]
    for b, name in enumerate(band_columns(bands)):
        cols[name] = pa.array(keys[:, b])
    k = config.num_perm
    flat = pa.array(f["signature"].reshape(-1))
    cols["signature"] = pa.ListArray.from_arrays(
        pa.array(np.arange(0, (len(text) + 1) * k, k, dtype=np.int32)), flat
    )
    arrays = [c.combine_chunks() if isinstance(c, pa.ChunkedArray) else c for c in cols.values()]
    return pa.RecordBatch.from_arrays(arrays, names=list(cols))
