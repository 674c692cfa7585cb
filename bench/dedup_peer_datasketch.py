"""Peer pipeline: the SlimPajama near-duplicate recipe (SlimPajama-DC, MinHash LSH dedup) on ``datasketch``.

Run as ``python bench/dedup_peer_datasketch.py CORPUS.jsonl --output DIR``.

Written as a competent datasketch 2.x user would: ``MinHash.bulk`` per batch of documents (one shared permutation
set), a fast 32-bit token hash (``xxhash.xxh32_intdigest`` instead of the default SHA-1), and ``MinHashLSH`` with
``params=(9, 13)`` filled in an ``insertion_session``. The components are built from the index's own band buckets
(each bucket becomes a star of edges, linear in its size) rather than by querying every document, which would be
quadratic in the 10,000-copy license buckets. Components and survivors come from ``dedup_recipe`` (scipy), shared
with the rensa peer. Writes ``kept.parquet`` (the kept documents with all
their columns, as Sift does), ``removed.parquet``, ``clusters.parquet`` and ``stats.json``.
"""

from __future__ import annotations

import argparse
import time

import datasketch
import dedup_recipe as recipe
import numpy as np
import xxhash
from datasketch import LeanMinHash, MinHash, MinHashLSH

SEED = 1


def run(corpus: str, output: str, batch_rows: int) -> dict:
    """Run the recipe over ``corpus`` and write the outputs to ``output``."""
    t0 = time.perf_counter()
    lsh = MinHashLSH(num_perm=recipe.NUM_PERM, params=(recipe.BANDS, recipe.ROWS))
    ids: list[str] = []
    sources: list[str] = []
    short_parts: list[np.ndarray] = []
    n = recipe.NGRAM
    t_sig = 0.0
    with lsh.insertion_session() as session:
        for batch in recipe.iter_corpus(corpus, batch_rows=batch_rows):
            ids.extend(batch.ids)
            sources.extend(batch.sources)
            norms = [recipe.normalise(t) for t in batch.texts]
            short = np.fromiter((len(t) < recipe.MIN_CHARS for t in norms), dtype=bool, count=len(norms))
            short_parts.append(short)
            eligible = np.flatnonzero(~short).tolist()
            ts = time.perf_counter()
            token_sets = [
                [s.encode("utf-8") for s in {norms[i][j : j + n] for j in range(len(norms[i]) - n + 1)}]
                for i in eligible
            ]
            minhashes = MinHash.bulk(
                token_sets, num_perm=recipe.NUM_PERM, seed=SEED, hashfunc=xxhash.xxh32_intdigest
            )
            t_sig += time.perf_counter() - ts
            for i, m in zip(eligible, minhashes, strict=True):
                session.insert(batch.start + i, LeanMinHash(m), check_duplication=False)
    t_index = time.perf_counter() - t0
    heads: list[int] = []
    members: list[int] = []
    for table in lsh.hashtables:
        for key in table.keys():  # noqa: SIM118 (a datasketch storage, not a dict)
            bucket = sorted(table.get(key))
            if len(bucket) > 1:
                heads.extend([bucket[0]] * (len(bucket) - 1))
                members.extend(bucket[1:])
    u = np.asarray(heads, dtype=np.int64)
    v = np.asarray(members, dtype=np.int64)
    too_short = np.concatenate(short_parts) if short_parts else np.zeros(0, bool)
    labels, survivor = recipe.components_and_survivors(len(ids), u, v)
    stats = {
        "tool": f"datasketch {datasketch.__version__}",
        "seconds_read_normalise_sign_index": round(t_index, 3),
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
    parser.add_argument("--batch-rows", type=int, default=2048)
    args = parser.parse_args()
    print(run(args.corpus, args.output, args.batch_rows))


if __name__ == "__main__":
    main()
