"""A side worker process for an R2D2 run (the paper's steps run on a cluster; on one machine this puts the
second core to work): half of the tables' metadata reads (step 2's inputs) and the containment graph drawing run
there while the main process does the rest.

The worker is spawned, never forked: Polars' and Arrow's thread pools do not survive a fork. It is started before
the main process imports the heavy modules, and imports them itself meanwhile, so its start costs no wall time.
Only the standard library is imported here.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from typing import Any, TypeVar

T = TypeVar("T")

SIDE_MIN_TABLES = 200  # smaller lakes are done before a worker would have finished importing


def _warm() -> None:
    """Import what the metadata reads need while the main process imports (matplotlib waits for the drawing)."""
    import dedup.containment.graph  # noqa: F401


def call(pool: Executor | None, fn: Callable[..., T], *args: Any) -> Callable[[], T]:
    """Start fn(*args) on the side worker; the returned callable gives its result. Without a worker, or if the
    worker cannot run it (e.g. a spawned process that could not import the caller's __main__), fn runs here."""
    if pool is None:
        return lambda: fn(*args)
    try:
        future = pool.submit(fn, *args)
    except (BrokenProcessPool, RuntimeError):
        return lambda: fn(*args)

    def result() -> T:
        try:
            return future.result()
        except BrokenProcessPool:
            return fn(*args)

    return result


@contextmanager
def side_worker(enabled: bool = True) -> Iterator[Executor | None]:
    """One spawned worker process (warming up at once), or None on one core or when disabled."""
    if not enabled or (os.cpu_count() or 1) < 2:
        yield None
        return
    pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
    try:
        pool.submit(_warm)
        yield pool
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
