"""Kernels of SlimPajama near-duplicate dedup (SlimPajama-DC, section 2), one module per step of the recipe.

Pure functions over Arrow arrays and numpy arrays; no engine, no Dagster. Both engines (Polars and Spark
`mapInArrow`) call exactly these, so the same input and seed give the same numbers everywhere.

- `normalise.py`: NFC, lower case, punctuation stripped, whitespace collapsed (`normalise`), from the
  per-code-point table of `chartable.py`.
- `shingles.py`: character (or word) n-gram shingles as 64-bit rolling hashes of mixed tokens (`hashing.py`: UTF-8
  decoding, seeds; the splitmix64 mix is the runtime core's, pipelines/core/hashing_numba.py).
- `signatures.py`: per-document facts (`document_facts`, `facts_batch`): exact hashes, MinHash or one-permutation
  signatures, LSH band keys; `signature_agreement` for the prefilter of verified mode.
- `jaccard.py`: exact Jaccard of candidate pairs (`jaccard_texts`, `jaccard_pairs`, `shingle_sets`, `jaccard_edges`).
- `survivors.py`: components of the LSH graph (`connected_components`) and greedy survivors (`greedy_survivors`).
"""

from sift.dedup.kernels.jaccard import jaccard_edges, jaccard_pairs, jaccard_texts, shingle_sets
from sift.dedup.kernels.normalise import normalise, string_buffers
from sift.dedup.kernels.signatures import (
    band_columns,
    document_facts,
    facts_batch,
    prefilter_count,
    signature_agreement,
)
from sift.dedup.kernels.survivors import connected_components, greedy_survivors

__all__ = [
    "band_columns",
    "connected_components",
    "document_facts",
    "facts_batch",
    "greedy_survivors",
    "jaccard_edges",
    "jaccard_pairs",
    "jaccard_texts",
    "normalise",
    "prefilter_count",
    "shingle_sets",
    "signature_agreement",
    "string_buffers",
]
