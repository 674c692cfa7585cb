"""A side worker process for an R2D2 run (the paper's steps run on a cluster; on one machine this puts the
second core to work): half of the tables' metadata reads (step 2's inputs), the deletion plan's solver and the
containment graph drawing run there while the main process does the rest.

The worker is spawned, never forked: Polars' and Arrow's thread pools do not survive a fork. It is started before
the main process imports the heavy modules, and imports them itself meanwhile, so its start costs no wall time.
Only the standard library is imported here.

The worker is the runtime's (pipelines/core/side.py): `sift contain` starts one through its engine
(`PolarsEngine(side_workers=True).side_worker(...)`, see `containment.run`), and the steps that share work with it
find it with `current()`; no algorithm function takes it as a parameter.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Executor
from contextlib import contextmanager

from sift.pipelines.core.side import call, current, share, using, warm
from sift.pipelines.core.side import side_worker as _side_worker

__all__ = ["LATER", "SIDE_MIN_TABLES", "WARM", "call", "current", "share", "side_worker", "using", "warm"]

SIDE_MIN_TABLES = 200  # smaller lakes are done before a worker would have finished importing
# what the metadata reads need, imported while the main process imports (matplotlib waits for the drawing)
WARM = ("sift.dedup.containment.graph",)
# what the solver and the drawing need, imported once the metadata reads are queued (the worker idles through
# the content check)
LATER = (
    "sift.dedup.containment.plan",
    "scipy.optimize",
    "scipy.sparse",
    "matplotlib.figure",
    "matplotlib.backends.backend_agg",
    "matplotlib.collections",
)


@contextmanager
def side_worker(enabled: bool = True) -> Iterator[Executor | None]:
    """One spawned worker process (warming up at once), or None on one core or when disabled."""
    with _side_worker(enabled, WARM) as pool:
        yield pool
