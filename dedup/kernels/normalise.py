"""SlimPajama's text normalisation (SlimPajama-DC, section 2: NFC, lower case, punctuation removed, whitespace
collapsed), as one parallel numba pass over the UTF-8 bytes of an Arrow string array.

- `normalise`: the normalised texts as a new Arrow array.
- `string_buffers`: (offsets, bytes) views of an Arrow string array, the input of every kernel.
- `_prepared`: a batch's buffers plus the NFC form of the few texts that are not in NFC.
- `_strip_collapse_doc`: one document normalised into a buffer; the signature and Jaccard kernels call it to
  normalise on the fly (`_text_of`) instead of building a normalised copy of the batch.
"""

from __future__ import annotations

import unicodedata

import numba as nb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sift.dedup.kernels.chartable import _char_classes
from sift.dedup.kernels.hashing import _decode
from sift.pipelines.core.kernel_cache import kernel


@kernel(inline="always")
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


@kernel(inline="always")
def _grown(size):
    """Room for a normalised text of `size` raw bytes: lower-casing lengthens a few code points by a third (two
    UTF-8 bytes to three)."""
    return size + (size >> 1) + 4


@kernel()
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


@kernel(parallel=True, nogil=True)
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


@kernel(parallel=True, nogil=True)
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


def _chunk_bounds(offsets: np.ndarray, chunks: int) -> np.ndarray:
    """Document index bounds splitting the bytes into about `chunks` equal parts."""
    n = offsets.shape[0] - 1
    targets = np.linspace(offsets[0], offsets[-1], chunks + 1)
    return np.unique(np.r_[0, np.searchsorted(offsets[:-1], targets[1:-1]), n]).astype(np.int64)


def _sources(texts: pa.Array, *, normalise_first: bool, unicode_punctuation: bool):
    """(texts, sources) for the kernels that read document d's text through `_text_of`: sources = (offsets,
    data, alt, alt_offsets, alt_data, table, punct_mask, normalise_first), the buffers that always travel
    together. Texts are normalised ones, or (normalise_first) raw ones with `_prepared`'s NFC forms."""
    if normalise_first:
        texts, offsets, data, alt, alt_offsets, alt_data = _prepared(texts)
    else:
        offsets, data = string_buffers(texts)
        alt, alt_offsets, alt_data = (
            np.full(len(texts), -1, np.int64),
            np.zeros(1, np.int64),
            np.zeros(1, np.uint8),
        )
    mask = 2 if unicode_punctuation else 1
    return texts, (offsets, data, alt, alt_offsets, alt_data, _char_classes(), mask, normalise_first)


@kernel()
def _text_of(d, sources, buf):
    """(src, start, end, buf) of document d's normalised text (`_sources`): its own bytes, or (normalise_first)
    the raw text normalised into buf, which is grown if too small and returned."""
    offsets, data, alt, alt_offsets, alt_data, table, punct_mask, normalise_first = sources
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
