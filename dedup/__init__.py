"""Near-duplicate dedup of text (SlimPajama-DC) and containment of tables (R2D2, in dedup/containment/).

Text dedup API: `dedup.run(documents, DedupConfig(...), output_dir, engine="polars"|"spark")`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sift.dedup.config import DedupConfig

__all__ = ["DedupConfig", "run"]


def __getattr__(name: str) -> Any:
    """`DedupConfig` is imported on first use, so `dedup.containment` does not build the dedup config model."""
    if name == "DedupConfig":
        from sift.dedup.config import DedupConfig

        return DedupConfig
    raise AttributeError(f"module 'dedup' has no attribute {name!r}")


def run(*args: Any, **kwargs: Any) -> dict[str, Any]:
    """See `dedup.api.run` (imported lazily so `dedup.containment` does not pay for numba kernels)."""
    from sift.dedup.api import run as _run

    return _run(*args, **kwargs)
