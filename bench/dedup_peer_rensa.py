"""Peer pipeline: the SlimPajama near-duplicate recipe (SlimPajama-DC, MinHash LSH dedup) on ``rensa``.

Run as ``python bench/dedup_peer_rensa.py CORPUS.jsonl --output DIR [--input tokens|prehashed]``.

Written as a user after throughput would use rensa 0.5: the batch API that returns a compact digest matrix
(``RMinHash.digest_matrix_from_token_sets``, Rust, Rayon threads) instead of one Python sketch object per document.
``--input tokens`` (default) feeds each document's character 13-gram strings; ``--input prehashed`` hashes the
13-grams with numpy and feeds the flat hash buffer (``digest_matrix_from_flat_token_hashes``). rensa's native LSH
needs the bands to divide the permutations (9 does not divide 128) and answers with flags rather than buckets, so
the 9x13 banding, connected components and survivors come from ``dedup_recipe`` (numpy + scipy), the same code as
the datasketch peer. Writes ``kept.parquet`` (the kept documents with all
their columns, as Sift does), ``removed.parquet``, ``clusters.parquet`` and ``stats.json``.
"""

from __future__ import annotations

import argparse
import time

import dedup_recipe as recipe
import numpy as np
import rensa

SEED = 42
_BASE = 0x100000001B3
_BASE_INV = pow(_BASE, -1, 1 << 64)


_POWERS: list[np.ndarray] = []


def _powers(size: int) -> tuple[np.ndarray, np.ndarray]:
    """B^k and B^-k modulo 2^64 for k < size (cached and grown by doubling, as a batch pipeline would)."""
    if not _POWERS or len(_POWERS[0]) < size:
        grown = max(size, 2 * len(_POWERS[0]) if _POWERS else 1 << 20)
        with np.errstate(over="ignore"):
            powers = np.full(grown, _BASE, dtype=np.uint64)
            powers[0] = 1
            inverse = np.full(grown, _BASE_INV, dtype=np.uint64)
            inverse[0] = 1
            _POWERS[:] = [np.cumprod(powers, dtype=np.uint64), np.cumprod(inverse, dtype=np.uint64)]
    return _POWERS[0], _POWERS[1]


def _window_hashes(norms: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Hash every character 13-gram of each text with numpy; return the flat hashes and per-document offsets.

    A polynomial rolling hash modulo 2^64 from prefix sums (window = (P[i+n] - P[i]) * B^-i), then a 64-bit mix:
    a handful of vectorised passes over the batch instead of one Python string per shingle.
    """
    codes = np.frombuffer("".join(norms).encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    lengths = np.fromiter((len(t) for t in norms), dtype=np.int64, count=len(norms))
    n = recipe.NGRAM
    counts = np.maximum(lengths - n + 1, 0)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.uint64)
    if len(codes) < n:
        return np.zeros(0, np.uint64), offsets
    with np.errstate(over="ignore"):
        powers, inverse = _powers(len(codes) + 1)
        prefix = np.zeros(len(codes) + 1, dtype=np.uint64)
        np.cumsum(codes * powers[: len(codes)], dtype=np.uint64, out=prefix[1:])
        windows = len(codes) - n + 1
        h = (prefix[n : n + windows] - prefix[:windows]) * inverse[:windows]
        h ^= h >> np.uint64(31)
        h *= np.uint64(0x94D049BB133111EB)
        h ^= h >> np.uint64(29)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    valid = np.zeros(windows, dtype=bool)
    for s, c in zip(starts.tolist(), counts.tolist(), strict=True):
        valid[s : s + c] = True
    return h[valid], offsets


def signatures(norms: list[str], mode: str) -> np.ndarray:
    """128-permutation R-MinHash digests of the documents, as a (n, 128) uint32 array."""
    if mode == "prehashed":
        hashes, offsets = _window_hashes(norms)
        matrix = rensa.RMinHash.digest_matrix_from_flat_token_hashes(hashes, offsets, recipe.NUM_PERM, SEED)
    else:
        n = recipe.NGRAM
        token_sets = [[t[i : i + n] for i in range(len(t) - n + 1)] for t in norms]
        matrix = rensa.RMinHash.digest_matrix_from_token_sets(token_sets, recipe.NUM_PERM, SEED)
    return np.asarray(matrix.to_rows(), dtype=np.uint32).reshape(len(norms), recipe.NUM_PERM)


def run(corpus: str, output: str, mode: str, batch_rows: int) -> dict:
    """Run the recipe over ``corpus`` and write the outputs to ``output``."""
    t0 = time.perf_counter()
    ids: list[str] = []
    sources: list[str] = []
    short_parts: list[np.ndarray] = []
    key_parts: list[np.ndarray] = []
    row_parts: list[np.ndarray] = []
    t_sig = 0.0
    for batch in recipe.iter_corpus(corpus, batch_rows=batch_rows):
        ids.extend(batch.ids)
        sources.extend(batch.sources)
        norms = [recipe.normalise(t) for t in batch.texts]
        short = np.fromiter((len(t) < recipe.MIN_CHARS for t in norms), dtype=bool, count=len(norms))
        short_parts.append(short)
        eligible = np.flatnonzero(~short)
        if len(eligible):
            ts = time.perf_counter()
            sig = signatures([norms[i] for i in eligible], mode)
            t_sig += time.perf_counter() - ts
            key_parts.append(recipe.band_keys(sig))
            row_parts.append(eligible + batch.start)
    t_read = time.perf_counter() - t0
    too_short = np.concatenate(short_parts) if short_parts else np.zeros(0, bool)
    keys = np.concatenate(key_parts) if key_parts else np.zeros((0, recipe.BANDS), np.uint64)
    rows = np.concatenate(row_parts) if row_parts else np.zeros(0, np.int64)
    u, v = recipe.bucket_edges(keys, rows)
    labels, survivor = recipe.components_and_survivors(len(ids), u, v)
    stats = {
        "tool": f"rensa {getattr(rensa, '__version__', '0.5')} ({mode})",
        "seconds_read_normalise_sign": round(t_read, 3),
        "seconds_signatures": round(t_sig, 3),
        "candidate_edges": len(u),
    }
    stats = recipe.write_outputs(output, ids, sources, too_short, survivor, labels, stats, corpus)
    stats["seconds_total"] = round(time.perf_counter() - t0, 3)
    return stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus")
    parser.add_argument("--output", required=True)
    parser.add_argument("--input", choices=["tokens", "prehashed"], default="tokens")
    parser.add_argument("--batch-rows", type=int, default=2048)
    args = parser.parse_args()
    stats = run(args.corpus, args.output, args.input, args.batch_rows)
    print(stats)


if __name__ == "__main__":
    main()
