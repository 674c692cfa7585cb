"""R2D2 step 3 fingerprints: the numpy hash kernels equal the numba ones bit for bit (both are used, by value
length), so a value hashes the same whichever kernel a column goes to."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from sift.dedup.containment import kernels as K
from sift.dedup.containment import kernels_numba as N

SEED = np.uint64(0x5EED)


def test_word_hash_and_fold_match_numba():
    rng = np.random.default_rng(7)
    for trial in range(90):
        n, k = int(rng.integers(0, 200)), int(rng.integers(1, 3))
        if trial % 2:
            words = rng.integers(-(2**63), 2**63 - 1, (n, k), dtype=np.int64, endpoint=True)
        else:
            words = rng.integers(-3, 3, (n, k)).astype(np.int64)
        if trial % 3 == 0:  # constant words (a number column's type tag): the running hash stays one value
            words[:, : int(rng.integers(1, k + 1))] = int(rng.integers(-5, 5))
        valid = rng.random(n) > 0.2
        got = K._hash_words(words, valid, SEED, K.NULL_HASH)
        assert np.array_equal(got, N._hash_words(words, valid, SEED, K.NULL_HASH))
        acc = rng.integers(0, 2**64 - 1, n, dtype=np.uint64, endpoint=True)
        col = rng.integers(0, 2**64 - 1, n, dtype=np.uint64, endpoint=True)
        assert np.array_equal(K._fold(acc, col), N._fold(acc, col))


def test_byte_hash_matches_numba_on_every_length_and_slice():
    rng = np.random.default_rng(11)
    for trial in range(80):
        n = int(rng.integers(0, 150))
        longest = int(rng.choice([0, 1, 7, 8, 9, 15, 16, 17, 64, 700, 5000]))
        values = [
            None
            if rng.random() < 0.1
            else rng.integers(0, 256, int(rng.integers(0, longest + 1))).astype(np.uint8).tobytes()
            for _ in range(n)
        ]
        arr = pa.array(values, type=pa.large_binary())
        if n > 4 and trial % 2:
            arr = arr.slice(2, n - 3)  # offsets that do not start at 0
        canon = K.canonical(arr, "bin")
        offsets, data = K._blob_buffers(canon.blobs)
        want = N._hash_bytes(offsets, data, canon.valid, SEED, K.NULL_HASH)
        assert np.array_equal(K._hash_bytes(offsets, data, canon.valid, SEED, K.NULL_HASH), want)
        assert np.array_equal(K.column_hash(canon), want)


def test_strings_hash_as_their_bytes():
    text = pa.array(["", "a", "containment", None, "é" * 40])
    binary = pa.array([b"", b"a", b"containment", None, ("é" * 40).encode()])
    assert np.array_equal(K.column_hash(K.canonical(text, "str")), K.column_hash(K.canonical(binary, "bin")))
