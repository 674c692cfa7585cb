"""PASER embedders side by side (issue 12): speed and cluster quality of each backend of
`sift.selection.kernels.embed` on instructions with known capability groups.

The data is `sift.pipelines.demo_instructions.instructions(per_group)` (4 groups: code, licence, timezone, unicode),
embedded as `sift select` embeds it (instruction and input). Per backend: the one-off export or distillation time
(0 when it is already cached on this machine; `--fresh` rebuilds into a temporary cache), instructions/s with
length bucketing on and off, each as a ratio to torch measured in the same round (rounds interleave the backends,
the machine being shared; medians over `--rounds`), the mean and lowest cosine of each vector with torch's, and the
adjusted Rand index of S2RIC clustering (k=4 and k=auto) against the known groups.

    .venv/bin/python bench/embed_fastpath.py [--per-group 100] [--rounds 3] [--timing-texts 256]
        [--backends torch,onnx,...] [--max-tokens 256] [--batch 64] [--fresh] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from typing import Any

import numpy as np


def main() -> None:
    from sift.selection.kernels.embed import BACKENDS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--per-group", type=int, default=100, help="instructions per group (107 code ones here)"
    )
    parser.add_argument("--rounds", type=int, default=3, help="timing rounds (backends interleaved), medians")
    parser.add_argument(
        "--timing-texts", type=int, default=256, help="texts per timing round (a seeded sample)"
    )
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fresh", action="store_true", help="export/distil again, into a temporary cache")
    parser.add_argument("--json", help="write the table as JSON here")
    args = parser.parse_args()
    if args.fresh:
        os.environ["SIFT_MODEL_CACHE"] = tempfile.mkdtemp(prefix="sift-embedders-")

    from sklearn.metrics import adjusted_rand_score

    from sift.pipelines.demo_instructions import instructions
    from sift.selection.kernels.cluster import s2ric
    from sift.selection.kernels.embed import default_embedder, embed_texts, load_embedder

    backends = [b for b in args.backends.split(",") if b]
    if "torch" not in backends:
        backends.insert(0, "torch")
    rows = instructions(per_group=args.per_group)
    texts = ["\n\n".join(p for p in (r["instruction"], r["input"]) if p) for r in rows]
    groups = sorted({r["group"] for r in rows})
    truth = np.array([groups.index(r["group"]) for r in rows])
    rng = np.random.default_rng(args.seed)
    timing = [texts[i] for i in rng.choice(len(texts), min(args.timing_texts, len(texts)), replace=False)]
    path = default_embedder()
    print(f"{len(texts)} instructions, {len(groups)} groups; timing on {len(timing)} per round, {args.rounds} rounds;"
          f" max_tokens={args.max_tokens}, batch={args.batch}, cpus={os.cpu_count()},"
          f" load={os.getloadavg()[0]:.1f}", flush=True)  # fmt: skip

    models: dict[str, Any] = {}
    result: dict[str, dict[str, Any]] = {}
    for b in backends:
        t0 = time.perf_counter()
        models[b] = load_embedder(path, args.max_tokens, b)
        result[b] = {"load_s": time.perf_counter() - t0, "speed": [], "speed_unbucketed": []}
        print(f"{b}: loaded (with any export) in {result[b]['load_s']:.1f} s", flush=True)

    full: dict[str, np.ndarray] = {}
    for b in backends:
        t0 = time.perf_counter()
        full[b] = embed_texts(models[b], texts, args.batch)
        result[b]["full_speed"] = len(texts) / (time.perf_counter() - t0)
        print(f"{b}: all {len(texts)} embedded at {result[b]['full_speed']:.1f}/s", flush=True)

    for r in range(args.rounds):
        order = backends if r % 2 == 0 else backends[::-1]
        for b in order:
            for bucket, key in ((True, "speed"), (False, "speed_unbucketed")):
                t0 = time.perf_counter()
                embed_texts(models[b], timing, args.batch, bucket=bucket)
                result[b][key].append(len(timing) / (time.perf_counter() - t0))
        print(
            f"round {r + 1}: " + ", ".join(f"{b} {result[b]['speed'][-1]:.1f}/s" for b in backends),
            flush=True,
        )

    ref = full["torch"]
    for b in backends:
        v = full[b]
        res = result[b]
        ratios = [s / t for s, t in zip(res["speed"], result["torch"]["speed"], strict=True)]
        res["ratio"] = statistics.median(ratios)
        res["bucket_gain"] = statistics.median(
            [s / u for s, u in zip(res["speed"], res["speed_unbucketed"], strict=True)]
        )
        res["median_speed"] = statistics.median(res["speed"])
        if v.shape == ref.shape:
            cos = np.sum(v * ref, axis=1)
            res["cos_mean"], res["cos_min"] = float(cos.mean()), float(cos.min())
        else:
            res["cos_mean"] = res["cos_min"] = None  # another vector space (model2vec's PCA dimensions)
        for k in (4, "auto"):
            c = s2ric(v, k, seed=args.seed)
            res[f"ari_{k}"] = float(adjusted_rand_score(truth, c.labels))
            if k == "auto":
                res["k_auto"] = c.k

    def cos(x: float | None) -> str:
        return "n/a (own space)" if x is None else f"{x:.4f}"

    print()
    print("| backend | load s (with export/distil if not cached) | instructions/s (median) | vs torch | bucketing gain | cos mean / min"
          " vs torch | ARI k=4 | ARI auto (K) |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for b in backends:
        res = result[b]
        print(f"| {b} | {res['load_s']:.1f} | {res['median_speed']:.1f} | {res['ratio']:.2f}x |"
              f" {res['bucket_gain']:.2f}x | {cos(res['cos_mean'])} / {cos(res['cos_min'])} | {res['ari_4']:.3f} |"
              f" {res['ari_auto']:.3f} ({res['k_auto']}) |")  # fmt: skip
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=1)


if __name__ == "__main__":
    main()
