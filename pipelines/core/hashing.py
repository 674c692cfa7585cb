"""Shared hashing primitives: the splitmix64 constants and its finaliser on numpy arrays.

splitmix64 (Steele, Lea and Flood, "Fast splittable pseudorandom number generators", 2014) adds the golden-ratio
increment `GOLDEN` to its state and mixes it with the finaliser `x ^= x >> 30; x *= M1; x ^= x >> 27; x *= M2;
x ^= x >> 31`, a bijection of uint64 with good avalanche. Both stages build their hashes from it: SlimPajama dedup
(shingles, MinHash permutations, band keys) and R2D2 containment (row fingerprints).

This module needs numpy alone (the containment engine hashes with numpy and loads numba only for long values); the
same functions compiled with numba, for use inside numba loops, are in `hashing_numba.py`.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

GOLDEN = np.uint64(0x9E3779B97F4A7C15)  # 2^64 / golden ratio, splitmix64's increment
M1 = np.uint64(0xBF58476D1CE4E5B9)
M2 = np.uint64(0x94D049BB133111EB)
_S1, _S2, _S3 = np.uint64(30), np.uint64(27), np.uint64(31)


def mix64_array(x: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """splitmix64's finaliser on a uint64 array (wrapping arithmetic), in place: pass a fresh temporary."""
    x ^= x >> _S1
    x *= M1
    x ^= x >> _S2
    x *= M2
    x ^= x >> _S3
    return x
