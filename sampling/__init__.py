"""Adaptive equitable sampling ("Adaptive Sampling Strategies to Construct Equitable Training Datasets", Cai et al.,
FAccT 2022): learning curves per group, optimal and adaptive allocation of a budget across groups, and the sampled
training set or mixture.

The stage's entry (pipelines/core/stage.py): `run(inputs, SampleConfig(...), output, engine)`; see sampling/api.py.
Kernels in sampling/kernels/, the Spark draw in sampling/engines/spark.py.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sift.sampling.config import SampleConfig

if TYPE_CHECKING:
    from sift.pipelines.core.stage import Engine

__all__ = ["SampleConfig", "run"]


def run(
    inputs: str | Sequence[str],
    config: SampleConfig | None = None,
    output: str | os.PathLike[str] = "sample_out",
    engine: Engine | None = None,
) -> dict[str, Any]:
    """See `sampling.api.run` (imported on first call: it loads Polars, scipy and the lake readers)."""
    from sift.sampling.api import run as _run

    return _run(inputs, config, output, engine)
