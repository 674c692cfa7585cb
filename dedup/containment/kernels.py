"""R2D2 step 3 kernels: normalised values and 64-bit row fingerprints (shared by the Polars and Spark engines).

Values are normalised before hashing so that containment compares values, not encodings: integers and floats by
numeric value (1 == 1.0; an integral float becomes the integer), booleans as themselves, strings and string
categoricals as exact text, dates and timestamps as the instant (seconds and nanoseconds since the epoch, UTC),
binary as bytes, decimals by value, and NULL or NaN as one NULL. A column becomes a `Canon` (validity plus either
integer words or byte strings); a column's hash is a 64-bit function of its Canon, and a row fingerprint folds the
column hashes in a fixed column order. Fingerprints are only a filter: a match is confirmed by comparing the Canons
themselves (`canon_equal`), so hash collisions can never produce a false containment.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from decimal import Decimal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.types as pt

from sift.dedup.containment.schema import BIN, BOOL, DEC, NULL, NUM, STR, TIME
from sift.pipelines.core.hashing import GOLDEN, mix64_array

NULL_HASH = GOLDEN  # the hash of a NULL value (any fixed value would do)
_TWO63 = 2.0**63


@dataclass
class Canon:
    """A normalised column: `valid` (False = NULL), and either `words` (int64, rows x k) or `blobs` (bytes)."""

    valid: np.ndarray
    words: np.ndarray | None = None
    blobs: pa.Array | None = None

    def slice(self, start: int, length: int) -> Canon:
        stop = start + length
        words = None if self.words is None else self.words[start:stop]
        blobs = None if self.blobs is None else self.blobs.slice(start, length)
        return Canon(self.valid[start:stop], words, blobs)

    def take(self, idx: np.ndarray) -> Canon:
        # np.take by rows: 8-10x faster than fancy indexing of a 2-D array
        words = None if self.words is None else np.take(self.words, idx, axis=0)
        blobs = None if self.blobs is None else self.blobs.take(pa.array(idx, type=pa.int64()))
        return Canon(self.valid[idx], words, blobs)


def canon_nbytes(c: Canon) -> int:
    """Memory held by a normalised column."""
    n = c.valid.nbytes
    if c.words is not None:
        n += c.words.nbytes
    if c.blobs is not None:
        n += c.blobs.nbytes
    return n


def _valid_mask(arr: pa.Array) -> np.ndarray:
    if arr.null_count == 0:
        return np.ones(len(arr), dtype=bool)
    return np.asarray(arr.is_valid().to_numpy(zero_copy_only=False), dtype=bool)


def _as_blobs(arr: pa.Array) -> pa.Array:
    t = arr.type
    if pt.is_string_view(t):
        arr = arr.cast(pa.large_string())
    elif pt.is_binary_view(t) or pt.is_fixed_size_binary(t):
        arr = arr.cast(pa.large_binary())
    return arr.cast(pa.large_binary())


def _python_blobs(arr: pa.Array, fn) -> pa.Array:
    return pa.array([None if v is None else fn(v) for v in arr.to_pylist()], type=pa.large_binary())


def _decimal_text(v: Decimal) -> bytes:
    n = v.normalize()
    return (format(n, "f") if n == n.to_integral_value() else str(n)).encode()


def canonical(arr: pa.Array | pa.ChunkedArray, klass: str) -> Canon:
    """Normalise one column of a batch for class `klass` (see the module docstring)."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
    if pt.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    n = len(arr)
    t = arr.type
    if klass == NULL or pt.is_null(t):
        return Canon(np.zeros(n, dtype=bool), words=np.zeros((n, 1), dtype=np.int64))
    valid = _valid_mask(arr)
    has_nulls = arr.null_count > 0
    if klass == NUM:
        words = np.zeros((n, 2), dtype=np.int64)
        if pt.is_floating(t):
            x = (arr if pa.types.is_float64(t) else arr.cast(pa.float64())).to_numpy(zero_copy_only=False)
            x = np.where(valid, x, 0.0)
            nan = np.isnan(x)
            valid = valid & ~nan
            x = np.where(nan, 0.0, x)
            integral = (np.floor(x) == x) & (x >= -_TWO63) & (x < _TWO63)
            words[:, 0] = np.where(integral, 0, 1)
            as_int = np.where(integral, x, 0.0).astype(np.int64)
            as_bits = np.where(integral, 0.0, x).view(np.int64)
            words[:, 1] = np.where(integral, as_int, as_bits)
        elif pt.is_unsigned_integer(t) and t.bit_width == 64:
            x = (arr.fill_null(0) if has_nulls else arr).to_numpy(zero_copy_only=False).astype(np.uint64)
            big = x >= np.uint64(1 << 63)
            words[:, 0] = np.where(big, 2, 0)
            words[:, 1] = x.view(np.int64)
        elif has_nulls:
            words[:, 1] = arr.fill_null(0).cast(pa.int64()).to_numpy(zero_copy_only=False)
        else:  # no NULLs: the integers widen to int64 in numpy, no Arrow kernel calls
            words[:, 1] = arr.to_numpy(zero_copy_only=False)
        if not valid.all():
            words[~valid] = 0
        return Canon(valid, words=words)
    if klass == BOOL:
        w = (arr.fill_null(False) if has_nulls else arr).to_numpy(zero_copy_only=False).astype(np.int64)
        return Canon(valid, words=w.reshape(n, 1))
    if klass == TIME:
        words = np.zeros((n, 2), dtype=np.int64)
        if pt.is_date32(t):
            v = arr.fill_null(0).cast(pa.int32()).to_numpy(zero_copy_only=False).astype(np.int64)
            sec, sub = v * 86400, np.zeros(n, dtype=np.int64)
        else:
            if pt.is_date64(t):
                per = 1000
                v = arr.fill_null(0).cast(pa.int64()).to_numpy(zero_copy_only=False)
            else:
                per = {"s": 1, "ms": 1000, "us": 1_000_000, "ns": 1_000_000_000}[t.unit]
                v = arr.cast(pa.int64())
                v = (v.fill_null(0) if has_nulls else v).to_numpy(zero_copy_only=False)
            sec = np.floor_divide(v, per)
            sub = (v - sec * per) * (1_000_000_000 // per)
        words[:, 0] = sec
        words[:, 1] = sub
        if has_nulls:
            words[~valid] = 0
        return Canon(valid, words=words)
    if klass in (STR, BIN):
        return Canon(valid, blobs=_as_blobs(arr))
    if klass == DEC:
        return Canon(valid, blobs=_python_blobs(arr, _decimal_text))
    return Canon(valid, blobs=_python_blobs(arr, lambda v: repr(v).encode()))


_WORD_STEP = 0x632BE59BD9B4E019
_BYTES_M = np.uint64(0x9FB21C651E98DF25)
_BYTES_END = np.uint64(0xD6E8FEB86659FD93)
_FOLD_M = np.uint64(0xC2B2AE3D27D4EB4F)
_MASK64 = (1 << 64) - 1
_TAIL_MASK = np.array([(1 << (8 * r)) - 1 for r in range(8)], dtype=np.uint64)
# Byte strings are hashed in numpy one 8-byte word position at a time across rows; a column whose longest value has
# more words than this goes to the numba kernel instead (one pass per row; loading numba costs about a second), as
# does any column with values over 64 words once numba is loaded anyway.
_NUMPY_MAX_WORDS = 4096
_NUMPY_WORDS_WITH_NUMBA = 64
_BLOCK_CELLS = 32_768  # values normalised and hashed per call by canon_hashes


def _hash_words(words: np.ndarray, valid: np.ndarray, seed: np.uint64, null_hash: np.uint64) -> np.ndarray:
    n, k = words.shape
    u = words.view(np.uint64)
    # while every word so far is the same in all rows (a number column's type tag, mostly), the running hash is
    # one value, mixed once instead of per row
    h = np.full(1, seed, dtype=np.uint64)
    for j in range(k):
        col = u[:, j]
        step = np.uint64((_WORD_STEP * (j + 1)) & _MASK64)
        if len(h) == 1 and n > 1 and (col == col[0]).all():
            h = mix64_array(h ^ (col[:1] + step))
        else:
            h = mix64_array(h ^ (col + step))
    if len(h) != n:
        h = np.full(n, h[0], dtype=np.uint64)
    h[~valid] = null_hash
    return h


def _hash_bytes(
    offsets: np.ndarray, data: np.ndarray, valid: np.ndarray, seed: np.uint64, null_hash: np.uint64
) -> np.ndarray:
    start = offsets[:-1]
    length = offsets[1:] - start
    h = seed ^ (length.astype(np.uint64) * _BYTES_M)
    # the little-endian 8-byte word starting at every byte position (zero past the end): one gather per word
    padded = np.zeros(len(data) + 8, dtype=np.uint8)
    padded[: len(data)] = data
    word_at = np.ndarray((len(data) + 1,), dtype="<u8", buffer=padded, strides=(1,))
    words = length // 8
    order = np.argsort(-words, kind="stable")  # rows by falling word count: the rows of pass i are a prefix
    active = np.searchsorted(-words[order], -np.arange(int(words.max()) if len(words) else 0), side="left")
    for i, count in enumerate(active.tolist()):  # the i-th full 8-byte word of every row that has one
        rows = order[:count]
        h[rows] = mix64_array(h[rows] ^ word_at[start[rows] + 8 * i]) * _BYTES_M
    tail = word_at[start + 8 * words] & _TAIL_MASK[length - 8 * words]  # the last 0-7 bytes
    out = mix64_array(h ^ tail ^ _BYTES_END)
    out[~valid] = null_hash
    return out


def _fold(acc: np.ndarray, col: np.ndarray) -> np.ndarray:
    return mix64_array(acc * _FOLD_M + col)


def _blob_buffers(blobs: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    bufs = blobs.buffers()
    n, off = len(blobs), blobs.offset
    offsets = np.frombuffer(bufs[1], dtype=np.int64, count=off + n + 1)[off:]
    data = np.frombuffer(bufs[2], dtype=np.uint8) if bufs[2] is not None else np.zeros(0, dtype=np.uint8)
    return offsets, data


def column_hash(canon: Canon, seed: int = 0x5EED) -> np.ndarray:
    """64-bit hash of every value of a normalised column (NULL -> NULL_HASH whatever the class)."""
    s = np.uint64(seed)
    if canon.words is not None:
        return _hash_words(np.ascontiguousarray(canon.words), canon.valid, s, NULL_HASH)
    offsets, data = _blob_buffers(canon.blobs)
    longest = int((offsets[1:] - offsets[:-1]).max()) // 8 if len(offsets) > 1 else 0
    numba_loaded = "sift.dedup.containment.kernels_numba" in sys.modules
    if longest > (_NUMPY_WORDS_WITH_NUMBA if numba_loaded else _NUMPY_MAX_WORDS):
        from sift.dedup.containment.kernels_numba import _hash_bytes as _hash_bytes_numba

        return _hash_bytes_numba(offsets, data, canon.valid, s, NULL_HASH)
    return _hash_bytes(offsets, data, canon.valid, s, NULL_HASH)


def canon_hashes(columns: list[pa.Array | pa.ChunkedArray], klass: str) -> list[tuple[Canon, np.ndarray]]:
    """`canonical` and `column_hash` of several columns of one Arrow type and class, a block of them at a time.

    Most lake tables are small, and on a column of a thousand values the fixed cost of the numpy and Arrow calls
    dominates; concatenated into blocks of about `_BLOCK_CELLS` values the calls are paid once per block, and each
    block's temporaries stay in the CPU cache (one block per type for 2,000 tables: 3x slower than blocks).
    Normalising and hashing are per value, so every column's slice is exactly what the single-column calls give."""
    out: list[tuple[Canon, np.ndarray]] = []
    block: list[pa.Array | pa.ChunkedArray] = []
    cells = 0
    for col in columns:
        block.append(col)
        cells += len(col)
        if cells >= _BLOCK_CELLS:
            out += _canon_hashes_block(block, klass)
            block, cells = [], 0
    if block:
        out += _canon_hashes_block(block, klass)
    return out


def _canon_hashes_block(
    columns: list[pa.Array | pa.ChunkedArray], klass: str
) -> list[tuple[Canon, np.ndarray]]:
    chunks = [c for col in columns for c in (col.chunks if isinstance(col, pa.ChunkedArray) else [col])]
    if len(columns) == 1 or not chunks:
        return [(canon := canonical(col, klass), column_hash(canon)) for col in columns]
    whole = canonical(pa.concat_arrays(chunks), klass)
    hashes = column_hash(whole)
    out, start = [], 0
    for col in columns:
        n = len(col)
        out.append((whole.slice(start, n), hashes[start : start + n]))
        start += n
    return out


def fold_fingerprints(column_hashes: list[np.ndarray], n_rows: int) -> np.ndarray:
    """Row fingerprints: the column hashes folded in the given (sorted column key) order."""
    acc = np.full(n_rows, np.uint64(0x243F6A8885A308D3), dtype=np.uint64)
    for h in column_hashes:
        acc = _fold(acc, h)
    return acc


def batch_fingerprints(batch: pa.RecordBatch | pa.Table, klasses: list[str]) -> np.ndarray:
    """Fingerprints of every row of a batch whose columns are already in fingerprint order."""
    hashes = [column_hash(canonical(batch.column(i), k)) for i, k in enumerate(klasses)]
    return fold_fingerprints(hashes, batch.num_rows)


def canon_equal(a: Canon, b: Canon) -> np.ndarray:
    """Row-wise equality of two normalised columns of the same length (NULL equals NULL)."""
    both_null = ~a.valid & ~b.valid
    both = a.valid & b.valid
    if a.words is not None and b.words is not None and a.words.shape[1] == b.words.shape[1]:
        same = a.words[:, 0] == b.words[:, 0]  # word by word: np.all(axis=1) is 10x slower
        for j in range(1, a.words.shape[1]):
            same &= a.words[:, j] == b.words[:, j]
    elif a.blobs is not None and b.blobs is not None:
        same = pc.fill_null(pc.equal(a.blobs, b.blobs), False).to_numpy(zero_copy_only=False)
    else:  # one side is the all-NULL class: only NULLs match
        same = np.zeros(len(a.valid), dtype=bool)
    return both_null | (both & same)


def canon_bytes(canon: Canon) -> pa.Array:
    """Each value of a normalised column as bytes (large_binary), such that two values give the same bytes exactly
    when `canon_equal` calls them equal: a NULL is b"\\x00"; a value is a tag byte (the number of integer words, or
    16 for bytes) then its integer words (8 bytes each), or the length (8 bytes) and the bytes."""
    n = len(canon.valid)
    valid = pa.array(canon.valid, type=pa.bool_())
    null = pa.scalar(b"\x00", pa.large_binary())
    if canon.words is not None:
        k = canon.words.shape[1]
        mat = np.zeros((n, 1 + 8 * k), dtype=np.uint8)
        mat[:, 0] = k
        mat[:, 1:] = np.ascontiguousarray(canon.words, dtype="<i8").view(np.uint8).reshape(n, 8 * k)
        fixed = pa.FixedSizeBinaryArray.from_buffers(
            pa.binary(1 + 8 * k), n, [None, pa.py_buffer(mat.tobytes())]
        )
        return pc.if_else(valid, fixed.cast(pa.large_binary()), null)
    assert canon.blobs is not None
    offsets, _data = _blob_buffers(canon.blobs)
    head = np.zeros((n, 9), dtype=np.uint8)
    head[:, 0] = 16
    head[:, 1:] = (offsets[1:] - offsets[:-1]).astype("<i8").view(np.uint8).reshape(n, 8)
    prefix = pa.FixedSizeBinaryArray.from_buffers(pa.binary(9), n, [None, pa.py_buffer(head.tobytes())])
    body = pc.binary_join_element_wise(
        prefix.cast(pa.large_binary()), canon.blobs.fill_null(b""), pa.scalar(b"", pa.large_binary())
    )
    return pc.if_else(valid, body, null)


def row_bytes(batch: pa.RecordBatch | pa.Table, klasses: list[str]) -> pa.Array:
    """Every row of a batch (columns in fingerprint order) as the concatenation of its columns' `canon_bytes`: two
    rows give the same bytes exactly when every column compares equal under `canon_equal`."""
    parts = [canon_bytes(canonical(batch.column(i), k)) for i, k in enumerate(klasses)]
    if not parts:
        return pa.array([b""] * batch.num_rows, type=pa.large_binary())
    if len(parts) == 1:
        return parts[0]
    return pc.binary_join_element_wise(*parts, pa.scalar(b"", pa.large_binary()))
