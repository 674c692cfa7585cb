"""Near-duplicate dedup of text (SlimPajama-DC) and containment of tables (R2D2, in dedup/containment/).

The dedup stage's entry (pipelines/core/stage.py): `run(inputs, DedupConfig(...), output, engine)`, `inputs` the
documents' URIs (or documents already read: a Table, batches), `engine` a `PolarsEngine()` / `SparkEngine(session)`
or its name ("polars"; "spark" with `spark=session`). Engine plans: dedup/engines/polars.py and spark.py.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from sift.dedup.api import Documents
    from sift.dedup.config import DedupConfig
    from sift.pipelines.core.lake import Fields
    from sift.pipelines.core.stage import Engine

__all__ = ["DedupConfig", "run"]


def __getattr__(name: str) -> Any:
    """`DedupConfig` is imported on first use, so `dedup.containment` does not build the dedup config model."""
    if name == "DedupConfig":
        from sift.dedup.config import DedupConfig

        return DedupConfig
    raise AttributeError(f"module 'dedup' has no attribute {name!r}")


def run(
    inputs: str | Sequence[str] | Documents,
    config: DedupConfig | None = None,
    output: str | os.PathLike[str] = "dedup_out",
    engine: Engine | Literal["polars", "spark"] = "polars",
    *,
    spark: Any = None,
    input_fingerprint: str | None = None,
    fields: Fields | None = None,
) -> dict[str, Any]:
    """See `dedup.api.run` (imported lazily so `dedup.containment` does not pay for numba kernels)."""
    from sift.dedup.api import run as _run

    return _run(
        inputs, config, output, engine, spark=spark, input_fingerprint=input_fingerprint, fields=fields
    )
