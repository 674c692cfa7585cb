"""PASER selection at scale (issue 12's requirement): with embeddings and scores at hand, S2RIC clustering, budget
allocation, ranking and the concept filter of N instructions, timed step by step, with peak memory.

The embeddings are synthetic (N vectors of 384 dimensions, the size of all-MiniLM-L6-v2's, around `--groups` random
centres), so the adjusted Rand index against the centres is printed too; the concept filter runs over real text (the
demo corpus: Python's docs, standard-library docstrings, package READMEs and licences), cycled to N samples.

    .venv/bin/python bench/select_scale.py [--n 50000] [--groups 20] [--sample 20000] [--seed 0]
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50_000)
    parser.add_argument("--groups", type=int, default=20)
    parser.add_argument("--sample", type=int, default=20_000, help="cluster_sample of the config")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from sklearn.metrics import adjusted_rand_score

    from sift.pipelines.demo_corpus import real_documents
    from sift.selection.kernels.budget import allocate, efficiency, rank_within
    from sift.selection.kernels.cluster import s2ric
    from sift.selection.kernels.concepts import ConceptGraph

    rng = np.random.default_rng(args.seed)
    centres = rng.normal(0, 1, (args.groups, 384)).astype(np.float32)
    truth = rng.integers(0, args.groups, args.n)
    x = centres[truth] + rng.normal(0, 1.5, (args.n, 384)).astype(np.float32)
    jsd = rng.random(args.n) * 0.1
    tokens = rng.integers(20, 600, args.n)
    texts = real_documents().column("text").to_pylist()

    t = time.perf_counter()
    clustering = s2ric(x, "auto", k_neighbors=15, seed=args.seed, sample=args.sample)
    t_cluster = time.perf_counter() - t
    t = time.perf_counter()
    eff = efficiency(jsd, tokens)
    order, _ = rank_within(clustering.labels, eff)
    sizes = np.bincount(clustering.labels)
    cds = np.bincount(clustering.labels, weights=jsd) / sizes
    allocate(args.n // 10, cds, sizes)
    t_alloc = time.perf_counter() - t
    t = time.perf_counter()
    graph = ConceptGraph()
    rejected = sum(
        graph.check(texts[i % len(texts)][:200], texts[i % len(texts)][200:800]) is not None for i in order
    )
    t_filter = time.perf_counter() - t
    print(f"instructions {args.n:,}, cluster sample {args.sample:,}")
    print(f"clustering    {t_cluster:7.1f} s  K={clustering.k} ({clustering.method}), "
          f"ARI {adjusted_rand_score(truth, clustering.labels):.3f}")  # fmt: skip
    print(f"budget, rank  {t_alloc:7.2f} s")
    print(f"concept filter{t_filter:7.1f} s  ({rejected} rejected)")
    print(f"total         {t_cluster + t_alloc + t_filter:7.1f} s; peak RSS "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024} MB")  # fmt: skip


if __name__ == "__main__":
    main()
