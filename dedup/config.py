"""Typed configuration of SlimPajama near-duplicate dedup (SlimPajama-DC, section 2: global/local MinHash LSH).

Defaults follow the paper's recipe where the recipe has a number: character 13-grams of the NFC-normalised,
lower-cased, punctuation-free, whitespace-collapsed text; documents under 200 normalised characters dropped;
128 hash functions; Jaccard threshold 0.8.

Two modes:
- `slimpajama`: the faithful recipe for comparison: 128-permutation MinHash, LSH with 9 bands of 13 rows, every band
  bucket links its documents, connected components, one survivor per component, nothing verified.
- `verified` (default): exact duplicates first, then one-permutation hashing with densification and banding tuned
  for recall at the threshold (see `DedupConfig.banding`), every candidate edge verified by exact Jaccard of the
  shingle sets, and survivors chosen greedily in priority order so that every removed document points at a kept
  document at least `threshold` similar to it.
"""

from __future__ import annotations

import hashlib
import json
from typing import Literal

from pydantic import Field, model_validator

from sift.pipelines.core.config import StageConfig

Mode = Literal["verified", "slimpajama"]
Scope = Literal["global", "local"]


def candidate_probability(similarity: float, bands: int, rows: int) -> float:
    """Probability that two documents of Jaccard `similarity` share at least one band bucket (the LSH S-curve)."""
    return 1.0 - (1.0 - similarity**rows) ** bands


def recall_banding(num_perm: int, threshold: float, target_recall: float) -> tuple[int, int]:
    """The banding with the most rows per band (fewest false candidates) whose S-curve at `threshold` is at
    least `target_recall`, using as many of the `num_perm` hashes as fit."""
    best = (num_perm, 1)
    for rows in range(1, num_perm + 1):
        bands = num_perm // rows
        if bands < 1:
            break
        if candidate_probability(threshold, bands, rows) >= target_recall:
            best = (bands, rows)
    return best


class DedupConfig(StageConfig, stage="dedup"):
    """Parameters of one dedup run; the same object drives the Polars and the Spark engine."""

    mode: Mode = "verified"
    scope: Scope = "global"
    threshold: float = Field(
        0.8, gt=0.0, le=1.0, description="Jaccard similarity at or above which docs are duplicates"
    )
    ngram: int = Field(
        13, ge=1, description="shingle size: characters (shingle='char') or words (shingle='word')"
    )
    shingle: Literal["char", "word"] = "char"
    num_perm: int = Field(128, ge=1, le=1024, description="hash functions (MinHash permutations or OPH bins)")
    bands: int | None = Field(
        None, ge=1, description="LSH bands; default: 9 (slimpajama) or tuned for recall"
    )
    rows: int | None = Field(None, ge=1, description="LSH rows per band; default: 13 (slimpajama) or tuned")
    target_recall: float = Field(
        0.999,
        gt=0.0,
        lt=1.0,
        description="verified mode: S-curve candidate probability wanted at the threshold",
    )
    signature: Literal["oph", "minhash"] | None = Field(
        None,
        description="one-permutation hashing with densification or k-permutation MinHash; default by mode",
    )
    prefilter_margin: float = Field(
        0.15,
        ge=0.0,
        le=1.0,
        description="verified mode: candidate edges whose signature estimate of Jaccard is below threshold minus "
        "this margin are rejected without exact verification (about 4 standard errors at 128 hashes)",
    )
    min_length: int = Field(200, ge=0, description="documents with fewer normalised characters are dropped")
    unicode_punctuation: bool | None = Field(
        None,
        description="strip Unicode punctuation too (default in verified mode) or only ASCII (slimpajama)",
    )
    seed: int = Field(42, ge=0, le=2**64 - 1, description="seed of every hash function (64 bits)")
    source_priority: list[str] = Field(
        default_factory=list, description="sources in the order their documents are preferred as survivors"
    )
    batch_rows: int = Field(65536, ge=1, description="documents per streamed batch / work shard")
    keep_work: bool = Field(False, description="keep the _work folder of intermediate tables after success")

    @model_validator(mode="after")
    def _check_banding(self) -> DedupConfig:
        bands, rows = self.banding
        if bands * rows > self.num_perm:
            raise ValueError(f"bands x rows = {bands * rows} exceeds num_perm = {self.num_perm}")
        return self

    @property
    def banding(self) -> tuple[int, int]:
        """(bands, rows) actually used."""
        if self.bands is not None and self.rows is not None:
            return self.bands, self.rows
        if self.mode == "slimpajama":
            bands, rows = 9, 13
        else:
            bands, rows = recall_banding(self.num_perm, self.threshold, self.target_recall)
        if self.rows is not None:
            rows = self.rows
            bands = self.bands or max(1, self.num_perm // rows)
        elif self.bands is not None:
            bands = self.bands
            rows = max(1, self.num_perm // bands)
        return bands, rows

    @property
    def signature_kind(self) -> str:
        """'oph' or 'minhash'."""
        if self.signature is not None:
            return self.signature
        return "minhash" if self.mode == "slimpajama" else "oph"

    @property
    def strip_unicode_punctuation(self) -> bool:
        if self.unicode_punctuation is not None:
            return self.unicode_punctuation
        return self.mode == "verified"

    @property
    def theoretical_recall(self) -> float:
        """Probability that a pair exactly at the threshold becomes a candidate."""
        bands, rows = self.banding
        return candidate_probability(self.threshold, bands, rows)

    def fingerprint(self) -> str:
        """A digest of every field that changes results (for resuming a run only with the same settings)."""
        data = self.model_dump(exclude={"keep_work"})
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]
