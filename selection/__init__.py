"""PASER recovery-data selection for pruned models ("PASER: Post-Training Data Selection for Efficient Pruned Large
Language Model Recovery"): clustering (S2RIC), degradation-aware budget, ranking and the concept conflict filter.

The stage's entry (pipelines/core/stage.py): `run(inputs, SelectionConfig(...), output, engine, scores=...,
original=..., pruned=..., embeddings=...)`; see selection/api.py (and its step functions read_instructions,
embed_instructions, score_instructions, which the Dagster assets call). Kernels in selection/kernels/.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sift.pipelines.core.stage import Engine
    from sift.selection.config import SelectionConfig

__all__ = ["run"]


def run(
    inputs: str | Sequence[str],
    config: SelectionConfig | None = None,
    output: str | os.PathLike[str] = "select_out",
    engine: Engine | None = None,
    *,
    scores: str | None = None,
    original: str | None = None,
    pruned: str | None = None,
    embeddings: str | None = None,
) -> dict[str, Any]:
    """See `selection.api.run` (imported on first call: it loads numpy, scikit-learn and the lake readers)."""
    from sift.selection.api import run as _run

    return _run(
        inputs, config, output, engine, scores=scores, original=original, pruned=pruned, embeddings=embeddings
    )
