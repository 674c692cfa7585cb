"""The per-code-point table behind SlimPajama's text normalisation (SlimPajama-DC, section 2): which code points are
punctuation or whitespace, which may make a text non-NFC, and each one's lower case, so the numba loops of
`normalise.py` fold case and strip punctuation from a lookup.

- `_char_classes`: the table (int32 per code point), built once and cached on disk.
- `_lower_map`, `_nfc_maybe`: its lower-case and may-be-non-NFC parts.
"""

from __future__ import annotations

import os
import string
import sys
import unicodedata
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sift.pipelines.core.atomic import atomic_path

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
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.save(f, table)
    except OSError:
        pass
    _CLASS_TABLE = table
    return table
