"""Near-duplicate dedup of text (SlimPajama-DC) and containment of tables (R2D2, in dedup/containment/).

Text dedup API: `dedup.run(documents, DedupConfig(...), output_dir, engine="polars"|"spark")`.
"""

from __future__ import annotations

from typing import Any

from dedup.config import DedupConfig

__all__ = ["DedupConfig", "run"]


def run(*args: Any, **kwargs: Any) -> dict[str, Any]:
    """See `dedup.api.run` (imported lazily so `dedup.containment` does not pay for numba kernels)."""
    from dedup.api import run as _run

    return _run(*args, **kwargs)
