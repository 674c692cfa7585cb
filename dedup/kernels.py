"""Kernels of SlimPajama near-duplicate dedup (SlimPajama-DC, section 2): normalisation, shingles, signatures,
LSH band keys, exact Jaccard and greedy survivor selection.

Pure functions over Arrow arrays and numpy arrays; no engine, no Dagster. Both engines (Polars and Spark
`mapInArrow`) call exactly these, so the same input and seed give the same numbers everywhere.

- `normalise`: NFC, lower case, punctuation stripped, whitespace collapsed (pyarrow compute, vectorised).
- `shingle_hashes`: walks the UTF-8 buffer of an Arrow string array in numba, one 64-bit hash per character (or word)
  n-gram with a rolling polynomial hash over per-token mixed values.
- `signatures`: k-permutation MinHash (each permutation a bijection of uint64: splitmix64 of the hash xor a seed) or
  one-permutation hashing with optimal densification (Shrivastava 2017), both numba.
- `band_keys`: one 64-bit key per band from its rows and the band index.
- `jaccard_edges`: exact Jaccard of sorted unique shingle sets, for verifying candidate edges.
- `greedy_survivors`: in priority order, a document is kept unless it has a verified edge to an already kept one.
"""

from __future__ import annotations

import os
import string
import sys
import unicodedata
from pathlib import Path

# Numba's OpenMP threads otherwise spin between parallel regions, taking a core from the thread that parses and
# spills the next shard meanwhile (sift dedup on 2 cores: 4 CPU seconds of spinning). Set before OpenMP loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numba as nb  # noqa: E402
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

U64 = np.uint64
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_POLY = np.uint64(0x100000001B3 * 2 + 0x5BD1E995 * 2 + 1)  # odd multiplier of the rolling polynomial hash
_EMPTY = np.uint64(0xFFFFFFFFFFFFFFFF)


# ---------------------------------------------------------------------------------------------------------------
# Hash primitives


@nb.njit(inline="always", cache=True)
def _mix(x: np.uint64) -> np.uint64:
    """splitmix64 finaliser: a bijection of uint64 with good avalanche."""
    x = x + _GOLDEN
    x = (x ^ (x >> np.uint64(30))) * _M1
    x = (x ^ (x >> np.uint64(27))) * _M2
    return x ^ (x >> np.uint64(31))


@nb.njit(inline="always", cache=True)
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


# ---------------------------------------------------------------------------------------------------------------
# Normalisation


_CLASS_TABLE: np.ndarray | None = None
_PUNCT_ASCII, _PUNCT, _SPACE, _NFC_MAYBE = 1, 2, 4, 8


def _lower_map() -> np.ndarray:
    """int64 per code point: its lower case as pyarrow's `utf8_lower` maps it (utf8proc's simple mapping, one code
    point to one code point, without context; checked here), so the kernels can fold case themselves."""
    cps = np.r_[np.arange(0xD800), np.arange(0xE000, 0x110000)]  # every scalar value (no surrogates)
    lengths = np.where(cps < 0x80, 1, np.where(cps < 0x800, 2, np.where(cps < 0x10000, 3, 4)))
    offsets = np.zeros(cps.size + 1, np.int32)
    np.cumsum(lengths, out=offsets[1:])
    data = "".join(map(chr, cps.tolist())).encode("utf-8")
    every = pa.StringArray.from_buffers(cps.size, pa.py_buffer(offsets), pa.py_buffer(data))
    lowered = pc.utf8_lower(every)
    if pc.min(pc.utf8_length(lowered)).as_py() != 1 or pc.max(pc.utf8_length(lowered)).as_py() != 1:
        raise RuntimeError("pyarrow's utf8_lower maps a code point to several: the case table cannot hold it")
    out = np.arange(0x110000, dtype=np.int64)
    changed = np.flatnonzero(pc.not_equal(lowered, every).to_numpy(zero_copy_only=False))
    out[cps[changed]] = [ord(t) for t in lowered.take(pa.array(changed)).to_pylist()]
    return out


def _nfc_maybe() -> np.ndarray:
    """bool per code point: a text without any of these is in NFC (canonical combining marks, code points that
    NFC changes, and those that can compose with what precedes them, Hangul vowel and trailing jamo included)."""
    out = np.zeros(0x110000, np.bool_)
    for cp in range(0x110000):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        ch = chr(cp)
        if unicodedata.combining(ch) or unicodedata.normalize("NFC", ch) != ch:
            out[cp] = True
        parts = unicodedata.decomposition(ch).split()
        if len(parts) == 2 and not parts[0].startswith("<"):
            out[int(parts[1], 16)] = True  # the second half of a canonical pair
    out[0x1161:0x1176] = True  # Hangul vowel jamo (compose with a leading consonant)
    out[0x11A8:0x11C3] = True  # Hangul trailing jamo (compose with an LV syllable)
    return out


def _char_classes() -> np.ndarray:
    """int32 per code point: bits 0-7 its classes (1 = ASCII punctuation, string.punctuation; 2 = Unicode
    punctuation, category P*; 4 = whitespace, Python's str.isspace; 8 = may make a text non-NFC), bits 8+ its
    lower case (`_lower_map`). Built once and cached on disk per Unicode, Python and pyarrow version."""
    global _CLASS_TABLE
    if _CLASS_TABLE is not None:
        return _CLASS_TABLE
    cache = Path(os.environ.get("SIFT_CACHE", Path.home() / ".cache" / "sift"))
    version = f"{unicodedata.unidata_version}-{sys.version_info[0]}{sys.version_info[1]}-{pa.__version__}"
    path = cache / f"chartable-{version}.npy"
    try:
        table = np.load(path)
        if table.shape == (0x110000,) and table.dtype == np.int32:
            _CLASS_TABLE = table
            return table
    except (OSError, ValueError):
        pass
    classes = np.zeros(0x110000, np.int32)
    for c in string.punctuation:
        classes[ord(c)] |= _PUNCT_ASCII | _PUNCT
    for cp in range(0x110000):
        ch = chr(cp)
        if unicodedata.category(ch).startswith("P"):
            classes[cp] |= _PUNCT
        if ch.isspace():
            classes[cp] |= _SPACE
    classes[_nfc_maybe()] |= _NFC_MAYBE
    lower = _lower_map()
    if not np.array_equal(classes[lower] & 7, classes & 7):
        raise RuntimeError("lower-casing changes the class of a code point")
    table = (classes | (lower << 8)).astype(np.int32)
    try:
        cache.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp.npy")
        np.save(tmp, table)
        os.replace(tmp, path)
    except OSError:
        pass
    _CLASS_TABLE = table
    return table


@nb.njit(inline="always", cache=True)
def _encode(cp: int, out: np.ndarray, w: int) -> int:
    """Write code point cp as UTF-8 at out[w:]; returns the end."""
    if cp < 0x80:
        out[w] = cp
        return w + 1
    if cp < 0x800:
        out[w] = 0xC0 | (cp >> 6)
        out[w + 1] = 0x80 | (cp & 0x3F)
        return w + 2
    if cp < 0x10000:
        out[w] = 0xE0 | (cp >> 12)
        out[w + 1] = 0x80 | ((cp >> 6) & 0x3F)
        out[w + 2] = 0x80 | (cp & 0x3F)
        return w + 3
    out[w] = 0xF0 | (cp >> 18)
    out[w + 1] = 0x80 | ((cp >> 12) & 0x3F)
    out[w + 2] = 0x80 | ((cp >> 6) & 0x3F)
    out[w + 3] = 0x80 | (cp & 0x3F)
    return w + 4


@nb.njit(inline="always", cache=True)
def _grown(size):
    """Room for a normalised text of `size` raw bytes: lower-casing lengthens a few code points by a third (two
    UTF-8 bytes to three)."""
    return size + (size >> 1) + 4


@nb.njit(cache=True)
def _strip_collapse_doc(data, i, e, table, punct_mask, out, w):
    """One document (in NFC): letters lower-cased, punctuation code points dropped, whitespace runs turned into one
    space, both ends trimmed; written to out[w:], which has room for `_grown` bytes. Returns the end of what was
    written."""
    start = w
    pending = False
    while i < e:
        b0 = data[i]
        if b0 < 0x80:
            c = table[b0]
            if c & punct_mask:
                i += 1
                continue
            if c & 4:
                pending = True
                i += 1
                continue
            if pending and w > start:
                out[w] = 32
                w += 1
            pending = False
            out[w] = b0 + 32 if 65 <= b0 <= 90 else b0
            w += 1
            i += 1
            continue
        cp, ln = _decode(data, i)
        c = table[cp]
        if c & punct_mask:
            i += ln
            continue
        if c & 4:
            pending = True
            i += ln
            continue
        if pending and w > start:
            out[w] = 32
            w += 1
        pending = False
        low = c >> 8
        if low == cp:
            for q in range(ln):
                out[w + q] = data[i + q]
            w += ln
        else:
            w = _encode(low, out, w)
        i += ln
    return w


@nb.njit(parallel=True, nogil=True, cache=True)
def _strip_collapse(
    bounds, offsets, data, alt, alt_offsets, alt_data, table, punct_mask, cap_off, lengths, out
):
    """Documents in byte-balanced chunks across threads; document d reads its raw bytes, or (alt[d] >= 0) its NFC
    alt_data[alt_offsets[alt[d]]:...]. Each chunk writes its documents one after another from the capacity offset
    of its first document (room for `_grown` bytes of each non-ASCII document)."""
    for c in nb.prange(bounds.shape[0] - 1):
        w = cap_off[bounds[c]]
        for d in range(bounds[c], bounds[c + 1]):
            j = alt[d]
            if j < 0:
                e = _strip_collapse_doc(data, offsets[d], offsets[d + 1], table, punct_mask, out, w)
            else:
                e = _strip_collapse_doc(
                    alt_data, alt_offsets[j], alt_offsets[j + 1], table, punct_mask, out, w
                )
            lengths[d] = e - w
            w = e


@nb.njit(parallel=True, nogil=True, cache=True)
def _any_nfc_maybe(offsets, data, docs, table, out):
    """out[k]: whether document docs[k] holds a code point that may make it non-NFC (class bit 8)."""
    for k in nb.prange(docs.shape[0]):
        d = docs[k]
        i = offsets[d]
        e = offsets[d + 1]
        hit = False
        while i < e:
            if data[i] < 0x80:
                i += 1
                continue
            cp, ln = _decode(data, i)
            if table[cp] & 8:
                hit = True
                break
            i += ln
        out[k] = hit


def _prepared(texts: pa.Array | pa.ChunkedArray):
    """(texts as a null-free string array, its offsets and bytes, alt, alt_offsets, alt_data): the kernels fold
    case themselves (`_char_classes`), so only a text that is not in NFC gets a second form, its NFC in alt_data
    (alt[d] >= 0). A text is checked by Python's NFC test only if it holds a code point that may need it (found
    by a numba scan of the non-ASCII texts); the rest are NFC as they stand."""
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks() if texts.num_chunks != 1 else texts.chunk(0)
    if not (pa.types.is_string(texts.type) or pa.types.is_large_string(texts.type)):
        texts = texts.cast(pa.string())
    texts = pc.fill_null(texts, "")
    n = len(texts)
    offsets, data = string_buffers(texts)
    alt = np.full(n, -1, np.int64)
    none = texts, offsets, data, alt, np.zeros(1, np.int64), np.zeros(1, np.uint8)
    wide = (
        np.flatnonzero(~pc.string_is_ascii(texts).to_numpy(zero_copy_only=False)) if n else np.zeros(0, int)
    )
    if not wide.size:
        return none
    flagged = np.empty(wide.size, np.bool_)
    _any_nfc_maybe(offsets, data, wide.astype(np.int64), _char_classes(), flagged)
    maybe = wide[flagged]
    if not maybe.size:
        return none
    sub = texts.take(pa.array(maybe))
    denormal = [i for i, t in enumerate(sub.to_pylist()) if not unicodedata.is_normalized("NFC", t)]
    if not denormal:
        return none
    alt_offsets, alt_data = string_buffers(pc.utf8_normalize(sub.take(pa.array(denormal, pa.int64())), "NFC"))
    alt[maybe[denormal]] = np.arange(len(denormal))
    return texts, offsets, data, alt, alt_offsets, alt_data


def normalise(texts: pa.Array | pa.ChunkedArray, *, unicode_punctuation: bool = True) -> pa.Array:
    """SlimPajama's text normalisation: NFC, lower case, punctuation removed, whitespace runs -> one space, trimmed.

    Nulls become empty strings. `unicode_punctuation=False` strips only `string.punctuation` (the recipe's set);
    whitespace is Python's `str.isspace` set. Lower case is pyarrow's `utf8_lower` mapping, applied from a table
    (`_char_classes`); only texts not already in NFC go through pyarrow's NFC (`_prepared`); the rest is one
    parallel numba pass.
    """
    texts, offsets, data, alt, alt_offsets, alt_data = _prepared(texts)
    n = len(texts)
    cap = np.diff(offsets)
    fixed = np.flatnonzero(alt >= 0)
    cap[fixed] = np.maximum(cap[fixed], np.diff(alt_offsets)[alt[fixed]])
    wide = ~pc.string_is_ascii(texts).to_numpy(zero_copy_only=False) if n else np.zeros(0, np.bool_)
    cap[wide] = _grown(cap[wide])
    cap_off = np.zeros(n + 1, np.int64)
    np.cumsum(cap, out=cap_off[1:])
    scratch = np.empty(max(int(cap_off[-1]), 1), np.uint8)
    lengths = np.empty(n, np.int64)
    bounds = _chunk_bounds(cap_off, 4 * nb.get_num_threads())
    mask = 2 if unicode_punctuation else 1
    _strip_collapse(
        bounds, offsets, data, alt, alt_offsets, alt_data, _char_classes(), mask, cap_off, lengths, scratch
    )
    res_off = np.zeros(n + 1, np.int64)
    np.cumsum(lengths, out=res_off[1:])
    total = int(res_off[-1])
    res = np.empty(max(total, 1), np.uint8)
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        src, dst, size = cap_off[lo], res_off[lo], res_off[hi] - res_off[lo]
        res[dst : dst + size] = scratch[src : src + size]
    if total >= 2**31:
        return pa.LargeStringArray.from_buffers(n, pa.py_buffer(res_off), pa.py_buffer(res[:total]))
    return pa.StringArray.from_buffers(n, pa.py_buffer(res_off.astype(np.int32)), pa.py_buffer(res[:total]))


def string_buffers(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(offsets int64[n+1], data uint8) views of an Arrow string / large_string array."""
    if arr.null_count:
        arr = pc.fill_null(arr, "")
    bufs = arr.buffers()
    off_type = np.int64 if pa.types.is_large_string(arr.type) else np.int32
    offsets = np.frombuffer(bufs[1], dtype=off_type)[arr.offset : arr.offset + len(arr) + 1].astype(np.int64)
    data = np.frombuffer(bufs[2], dtype=np.uint8) if bufs[2] is not None else np.zeros(0, np.uint8)
    return offsets, data


@nb.njit(cache=True)
def _ascii_tokens(seed: np.uint64) -> np.ndarray:
    """The token value of each ASCII code point (a lookup instead of a mix for most characters)."""
    out = np.empty(128, np.uint64)
    for cp in range(128):
        out[cp] = _mix(np.uint64(cp) ^ seed)
    return out


@nb.njit(cache=True)
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
            out[n] = _mix(np.uint64(cp) ^ seed)
            n += 1
            i += ln
        return n
    h = np.uint64(0)
    inword = False
    while i < end:
        b = data[i]
        if b == 32:
            if inword:
                out[n] = _mix(h ^ seed)
                n += 1
                inword = False
                h = np.uint64(0)
        else:
            h = h * _POLY + np.uint64(b) + np.uint64(1)
            inword = True
        i += 1
    if inword:
        out[n] = _mix(h ^ seed)
        n += 1
    return n


@nb.njit(cache=True)
def _window_hashes(tok: np.ndarray, ntok: int, ngram: int, out: np.ndarray) -> int:
    """Rolling polynomial hash of every `ngram`-token window (one window of all tokens if fewer), mixed."""
    if ntok == 0:
        return 0
    if ntok < ngram:
        h = np.uint64(0)
        for j in range(ntok):
            h = h * _POLY + tok[j]
        out[0] = _mix(h ^ np.uint64(ntok))
        return 1
    top = np.uint64(1)
    for _ in range(ngram - 1):
        top = top * _POLY
    h = np.uint64(0)
    for j in range(ngram):
        h = h * _POLY + tok[j]
    out[0] = _mix(h ^ np.uint64(ngram))
    n = 1
    for j in range(ngram, ntok):
        h = (h - tok[j - ngram] * top) * _POLY + tok[j]
        out[n] = _mix(h ^ np.uint64(ngram))
        n += 1
    return n


@nb.njit(cache=True)
def _doc_shingles(data, start, end, ngram, word, seed, tok, out, asc) -> int:
    ntok = _tokens(data, start, end, word, seed, tok, asc)
    return _window_hashes(tok, ntok, ngram, out)


# ---------------------------------------------------------------------------------------------------------------
# Per-document facts: exact hash, normalised length, shingle count, signature


@nb.njit(cache=True)
def _exact_hash(data: np.ndarray, start: int, end: int, seed: np.uint64) -> tuple[np.uint64, np.uint64]:
    """Two independent 64-bit hashes of a byte range (128 bits against accidental exact-duplicate collisions),
    eight bytes (one little-endian word) per step, the tail byte by byte."""
    h1 = np.uint64(0xCBF29CE484222325) ^ seed
    h2 = _mix(seed ^ np.uint64(0x5851F42D4C957F2D))
    i = start
    while i + 8 <= end:
        w = np.uint64(0)
        for q in range(8):
            w |= np.uint64(data[i + q]) << np.uint64(8 * q)
        h1 = (h1 ^ w) * _M2
        h1 = h1 ^ (h1 >> np.uint64(31))
        h2 = (h2 + w + np.uint64(1)) * _M1
        h2 = h2 ^ (h2 >> np.uint64(29))
        i += 8
    while i < end:
        b = np.uint64(data[i])
        h1 = (h1 ^ b) * np.uint64(0x100000001B3)
        h2 = (h2 + b + np.uint64(1)) * _M1
        h2 = h2 ^ (h2 >> np.uint64(29))
        i += 1
    n = np.uint64(end - start)
    return _mix(h1 ^ n), _mix(h2 + n)


@nb.njit(cache=True)
def _signature_minhash(sh: np.ndarray, n: int, perm_seeds: np.ndarray, sig: np.ndarray) -> None:
    k = perm_seeds.shape[0]
    for p in range(k):
        sig[p] = _EMPTY
    for j in range(n):
        x = sh[j]
        for p in range(k):
            v = _mix(x ^ perm_seeds[p])
            if v < sig[p]:
                sig[p] = v


@nb.njit(cache=True)
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


@nb.njit(cache=True)
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
            t = _mix(np.uint64(cp) ^ seed)
            i += ln
        gone = ring[(n - ngram) & 63] if n >= ngram else np.uint64(0)  # the token leaving the window
        h = h * _POLY + (t - gone * top)  # the subtraction stays off the chain through h
        ring[n & 63] = t
        n += 1
        if n >= ngram:
            v = _mix(h ^ mixed_n)
            b = int(v >> shift) if shift else int(((v >> np.uint64(32)) * kk) >> np.uint64(32))
            if v < sig[b]:
                sig[b] = v
            m += 1
    if 0 < n < ngram:  # one window of all tokens
        v = _mix(h ^ np.uint64(n))
        b = int(((v >> np.uint64(32)) * kk) >> np.uint64(32))
        sig[b] = v
        m = 1
    return n, m


@nb.njit(cache=True)
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
                b = int(_mix(seed ^ (np.uint64(p) << np.uint64(32)) ^ attempt) % kk)
                if orig[b] != _EMPTY:
                    sig[p] = orig[b] ^ _mix(np.uint64(attempt))
                    break
                attempt += np.uint64(1)


@nb.njit(cache=True)
def _facts_one(src, s, e, d, ngram, word, seed, perm_seeds, use_oph, k, bands, rows, band_seeds, tok, sh, sig,
               asc, h1, h2, nchars, nsh, keys, sigs):  # fmt: skip
    """Facts of one normalised text src[s:e] into row d (tok and sh hold at least e - s values)."""
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
            key = _mix(key ^ sig[bb * rows + r])
        keys[d, bb] = key
    for p in range(k):
        sigs[d, p] = sig[p]


@nb.njit(cache=True)
def _doc_facts_range(lo, hi, offsets, data, alt, alt_offsets, alt_data, table, punct_mask, normalise_first,
                     ngram, word, seed, perm_seeds, use_oph, k, bands, rows, band_seeds,
                     h1, h2, nchars, nsh, keys, sigs):  # fmt: skip
    """Documents lo..hi. With normalise_first, each raw text (or its pre-folded non-ASCII form in alt_data) is
    normalised into a small per-thread buffer that stays in cache, and hashed from there; no normalised copy
    of the batch is ever built."""
    tok = np.empty(64, np.uint64)
    sh = np.empty(64, np.uint64)
    sig = np.empty(k, np.uint64)
    buf = np.empty(64, np.uint8)
    asc = _ascii_tokens(seed)
    for d in range(lo, hi):
        s = offsets[d]
        e = offsets[d + 1]
        j = alt[d] if normalise_first else -1
        size = e - s if j < 0 else max(e - s, alt_offsets[j + 1] - alt_offsets[j])
        if size > tok.shape[0]:
            tok = np.empty(2 * size, np.uint64)
            sh = np.empty(2 * size, np.uint64)
        if not normalise_first:
            _facts_one(data, s, e, d, ngram, word, seed, perm_seeds, use_oph, k, bands, rows, band_seeds,
                       tok, sh, sig, asc, h1, h2, nchars, nsh, keys, sigs)  # fmt: skip
            continue
        if _grown(size) > buf.shape[0]:
            buf = np.empty(2 * _grown(size), np.uint8)
        if j < 0:
            w = _strip_collapse_doc(data, s, e, table, punct_mask, buf, 0)
        else:
            w = _strip_collapse_doc(alt_data, alt_offsets[j], alt_offsets[j + 1], table, punct_mask, buf, 0)
        _facts_one(buf, 0, w, d, ngram, word, seed, perm_seeds, use_oph, k, bands, rows, band_seeds,
                   tok, sh, sig, asc, h1, h2, nchars, nsh, keys, sigs)  # fmt: skip


@nb.njit(parallel=True, nogil=True, cache=True)
def _doc_facts(bounds, offsets, data, alt, alt_offsets, alt_data, table, punct_mask, normalise_first,
               ngram, word, seed, perm_seeds, use_oph, k, bands, rows, band_seeds,
               h1, h2, nchars, nsh, keys, sigs):  # fmt: skip
    """Documents in chunks across threads; every output row depends only on its own document."""
    for c in nb.prange(bounds.shape[0] - 1):
        _doc_facts_range(
            bounds[c], bounds[c + 1], offsets, data, alt, alt_offsets, alt_data, table, punct_mask,
            normalise_first, ngram, word, seed, perm_seeds, use_oph, k, bands, rows, band_seeds,
            h1, h2, nchars, nsh, keys, sigs,
        )  # fmt: skip


def _chunk_bounds(offsets: np.ndarray, chunks: int) -> np.ndarray:
    """Document index bounds splitting the bytes into about `chunks` equal parts."""
    n = offsets.shape[0] - 1
    targets = np.linspace(offsets[0], offsets[-1], chunks + 1)
    return np.unique(np.r_[0, np.searchsorted(offsets[:-1], targets[1:-1]), n]).astype(np.int64)


def _seeds(seed: int, count: int, salt: int) -> np.ndarray:
    rng = np.random.Generator(np.random.PCG64([seed, salt]))
    return rng.integers(0, 2**63, size=count, dtype=np.int64).astype(np.uint64) * np.uint64(2) + np.uint64(1)


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
    if normalise_first:
        texts, offsets, data, alt, alt_offsets, alt_data = _prepared(texts)
    else:
        offsets, data = string_buffers(texts)
        alt, alt_offsets, alt_data = (
            np.full(len(texts), -1, np.int64),
            np.zeros(1, np.int64),
            np.zeros(1, np.uint8),
        )
    n = len(texts)
    h1 = np.empty(n, np.uint64)
    h2 = np.empty(n, np.uint64)
    nchars = np.empty(n, np.int64)
    nsh = np.empty(n, np.int64)
    keys = np.empty((n, bands), np.uint64)
    sigs = np.empty((n, num_perm), np.uint64)
    _doc_facts(
        _chunk_bounds(offsets, 4 * nb.get_num_threads()),
        offsets,
        data,
        alt,
        alt_offsets,
        alt_data,
        _char_classes(),
        2 if unicode_punctuation else 1,
        normalise_first,
        ngram,
        word,
        np.uint64(seed),
        _seeds(seed, num_perm, 1),
        signature == "oph",
        num_perm,
        bands,
        rows,
        _seeds(seed, bands, 2),
        h1,
        h2,
        nchars,
        nsh,
        keys,
        sigs,
    )
    return {
        "h1": h1.view(np.int64),
        "h2": h2.view(np.int64),
        "nchars": nchars,
        "nshingles": nsh,
        "bands": keys.view(np.int64),
        "signature": sigs.view(np.int64),
    }


@nb.njit(parallel=True, nogil=True, cache=True)
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


# ---------------------------------------------------------------------------------------------------------------
# Shingle sets and exact Jaccard


@nb.njit(cache=True)
def _count_bound(offsets: np.ndarray) -> np.ndarray:
    n = offsets.shape[0] - 1
    out = np.zeros(n + 1, np.int64)
    for d in range(n):
        out[d + 1] = out[d] + max(offsets[d + 1] - offsets[d], 1)
    return out


@nb.njit(cache=True)
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


@nb.njit(cache=True)
def _mark_prefix(bound, lengths, keep):
    for d in range(lengths.shape[0]):
        keep[bound[d] : bound[d] + lengths[d]] = True


@nb.njit(cache=True)
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


@nb.njit(parallel=True, cache=True)
def jaccard_edges(offsets: np.ndarray, values: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Exact Jaccard of the shingle sets of documents a[i] and b[i] (indices into the CSR sets)."""
    out = np.empty(a.shape[0], np.float64)
    for i in nb.prange(a.shape[0]):
        out[i] = _jaccard(
            values[offsets[a[i]] : offsets[a[i] + 1]], values[offsets[b[i]] : offsets[b[i] + 1]]
        )
    return out


@nb.njit(inline="always", cache=True)
def _set_insert(keys: np.ndarray, mask: int, h: np.uint64) -> bool:
    """Insert h (nonzero) into an open-addressing set in keys[0..mask] (0 = empty slot); True if it was new."""
    i = int(h) & mask
    while keys[i] != 0:
        if keys[i] == h:
            return False
        i = (i + 1) & mask
    keys[i] = h
    return True


@nb.njit(inline="always", cache=True)
def _set_contains(keys: np.ndarray, mask: int, h: np.uint64) -> bool:
    i = int(h) & mask
    while keys[i] != 0:
        if keys[i] == h:
            return True
        i = (i + 1) & mask
    return False


@nb.njit(inline="always", cache=True)
def _nonzero(h: np.uint64) -> np.uint64:
    """Shingle hash as a set key: 0 marks empty slots, so the hash 0 (probability 2^-64) takes another value."""
    return h if h != 0 else _GOLDEN


@nb.njit(inline="always", cache=True)
def _table_mask(m: int) -> int:
    """Mask of the smallest power-of-two table with at least 2m slots (load <= 1/2)."""
    size = 16
    while size < 2 * m:
        size *= 2
    return size - 1


@nb.njit(cache=True)
def _text_of(d, offsets, data, alt, alt_offsets, alt_data, table, punct_mask, normalise_first, buf):
    """(src, start, end, buf) of document d's normalised text: its own bytes, or (normalise_first) the raw text
    normalised into buf, which is grown if too small and returned."""
    s = offsets[d]
    t = offsets[d + 1]
    if not normalise_first:
        return data, s, t, buf
    j = alt[d]
    size = t - s if j < 0 else max(t - s, alt_offsets[j + 1] - alt_offsets[j])
    if _grown(size) > buf.shape[0]:
        buf = np.empty(2 * _grown(size), np.uint8)
    if j < 0:
        w = _strip_collapse_doc(data, s, t, table, punct_mask, buf, 0)
    else:
        w = _strip_collapse_doc(alt_data, alt_offsets[j], alt_offsets[j + 1], table, punct_mask, buf, 0)
    return buf, 0, w, buf


@nb.njit(inline="always", cache=True)
def _out_of_reach(inter: int, rest: int, na: int, nb_: int, thr: float) -> bool:
    """Whether a pair can no longer reach Jaccard thr: with `inter` shared and `nb_` unique shingles of b seen
    and at most `rest` shingles of b to come, J <= min(inter + rest, na) / (na + nb_ - inter)."""
    top = inter + rest
    if top > na:
        top = na
    return top < thr * (na + nb_ - inter)


@nb.njit(cache=True)
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
            t = _mix(np.uint64(cp) ^ seed)
            i += ln
        gone = ring[(n - ngram) & 63] if n >= ngram else np.uint64(0)
        h = h * _POLY + (t - gone * top)
        ring[n & 63] = t
        n += 1
        if n >= ngram and _set_insert(keys, mask, _nonzero(_mix(h ^ mixed_n))):
            u += 1
    if 0 < n < ngram and _set_insert(keys, mask, _nonzero(_mix(h ^ np.uint64(n)))):
        u += 1
    return u


@nb.njit(cache=True)
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
            t = _mix(np.uint64(cp) ^ seed)
            i += ln
        gone = ring[(n - ngram) & 63] if n >= ngram else np.uint64(0)
        h = h * _POLY + (t - gone * top)
        ring[n & 63] = t
        n += 1
        if n >= ngram:
            v = _nonzero(_mix(h ^ mixed_n))
            if _set_insert(keys, mask, v):
                u += 1
                if _set_contains(keys_a, mask_a, v):
                    inter += 1
    if 0 < n < ngram:
        v = _nonzero(_mix(h ^ np.uint64(n)))
        if _set_insert(keys, mask, v):
            u += 1
            if _set_contains(keys_a, mask_a, v):
                inter += 1
    return inter, u, 0


@nb.njit(cache=True)
def _jaccard_chunk(offsets, data, alt, alt_offsets, alt_data, table, punct_mask, normalise_first, ea, eb, lo, hi,
                   ngram, word, seed, thr, out):  # fmt: skip
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
            src, s, t, buf = _text_of(cur, offsets, data, alt, alt_offsets, alt_data, table, punct_mask,
                                      normalise_first, buf)  # fmt: skip
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
        src, s, t, buf = _text_of(eb[e], offsets, data, alt, alt_offsets, alt_data, table, punct_mask,
                                  normalise_first, buf)  # fmt: skip
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


@nb.njit(parallel=True, nogil=True, cache=True)
def _jaccard_grouped(offsets, data, alt, alt_offsets, alt_data, table, punct_mask, normalise_first, ea, eb, bounds,
                     ngram, word, seed, thr, out):  # fmt: skip
    for c in nb.prange(bounds.shape[0] - 1):
        _jaccard_chunk(offsets, data, alt, alt_offsets, alt_data, table, punct_mask, normalise_first, ea, eb,
                       bounds[c], bounds[c + 1], ngram, word, seed, thr, out)  # fmt: skip


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
    if normalise_first:
        texts, offsets, data, alt, alt_offsets, alt_data = _prepared(texts)
    else:
        offsets, data = string_buffers(texts)
        alt, alt_offsets, alt_data = (
            np.full(len(texts), -1, np.int64),
            np.zeros(1, np.int64),
            np.zeros(1, np.uint8),
        )
    order = np.argsort(a, kind="stable")
    sa = np.ascontiguousarray(a[order], dtype=np.int64)
    sb = np.ascontiguousarray(b[order], dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, sa[1:] != sa[:-1]])
    chunks = max(1, min(len(starts), 8 * nb.get_num_threads()))
    bounds = np.r_[starts[np.linspace(0, len(starts), chunks, endpoint=False).astype(np.int64)], n].astype(
        np.int64
    )
    res = np.empty(n, np.float64)
    mask = 2 if unicode_punctuation else 1
    _jaccard_grouped(offsets, data, alt, alt_offsets, alt_data, _char_classes(), mask, normalise_first, sa, sb,
                     np.unique(bounds), ngram, word, np.uint64(seed), _stop_at(threshold), res)  # fmt: skip
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


# ---------------------------------------------------------------------------------------------------------------
# Components and survivors


@nb.njit(cache=True)
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


@nb.njit(cache=True)
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


# ---------------------------------------------------------------------------------------------------------------
# Batch kernel shared by both engines


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
