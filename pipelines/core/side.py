"""A side worker process for a run on one machine (the papers' pipelines run on clusters; here it puts the second
core to work where the main process would leave it idle or hold the GIL): imports and drawings that would
otherwise serialise with the main process's work run there.

The worker is spawned, never forked: Polars' and Arrow's thread pools do not survive a fork. It is started before
the main process imports the heavy modules and warms up (imports) meanwhile, so its start costs no wall time.
Only the standard library is imported here.

The worker is the runtime's, never a parameter of an algorithm function: whoever runs a stage (the `sift` command,
through `PolarsEngine(side_workers=True)` in core/stage.py) makes it the current side worker with `using(pool)`,
and the stage's functions that can share work ask for `current()` (None: do everything in this process).
"""

from __future__ import annotations

import atexit
import importlib
import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from typing import Any, TypeVar

T = TypeVar("T")

_current: ContextVar[Executor | None] = ContextVar("sift_side_worker", default=None)


def current() -> Executor | None:
    """The side worker the runtime set for this run (`using`), or None."""
    return _current.get()


@contextmanager
def using(pool: Executor | None) -> Iterator[None]:
    """Make `pool` the current side worker inside the block (None: none), restoring the previous one after."""
    token = _current.set(pool)
    try:
        yield
    finally:
        _current.reset(token)


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


def share(
    pool: Executor | None,
    fn: Callable[[list[Any]], list[T]],
    items: Sequence[Any],
    chunks: int = 16,
    local: Callable[[list[Any]], list[T]] | None = None,
) -> list[T]:
    """fn over every item (fn maps a list of items to a list of results), shared with the side worker: this
    process takes chunks from the front (with `local` in place of fn when given, e.g. one that uses this
    process's caches), the worker from the back; chunks the worker has not started when this process runs out
    are taken back, so neither waits long for the other. Results come in item order."""
    items = list(items)
    if pool is None or len(items) < 2:
        return (local or fn)(items)
    size = max(1, -(-len(items) // chunks))
    parts = [items[i : i + size] for i in range(0, len(items), size)]
    half = len(parts) // 2
    theirs: dict[int, Any] = {}
    try:
        for i in reversed(range(half, len(parts))):
            theirs[i] = pool.submit(fn, parts[i])
    except (BrokenProcessPool, RuntimeError):
        pass
    out: dict[int, list[T]] = {}
    for i in range(len(parts)):
        if i in theirs and not theirs[i].cancel():
            continue  # started (or done) there
        out[i] = (local or fn)(parts[i])
    for i, future in theirs.items():
        if i not in out:
            try:
                out[i] = future.result()
            except BrokenProcessPool:
                out[i] = (local or fn)(parts[i])
    return [r for i in range(len(parts)) for r in out[i]]


def _skip_teardown_at_exit() -> None:
    """In the worker: once it has finished (multiprocessing's own cleanup runs before its atexit handlers), end
    without the interpreter's teardown (~0.3 s with matplotlib and Arrow loaded) that the caller would wait for."""
    atexit.register(os._exit, 0)


def _import_all(modules: Sequence[str]) -> None:
    for name in modules:
        importlib.import_module(name)


def warm(pool: Executor | None, modules: Sequence[str]) -> None:
    """Have the worker import these modules next (after the tasks already queued), where it would idle."""
    if pool is not None:
        with suppress(BrokenProcessPool, RuntimeError):
            pool.submit(_import_all, tuple(modules))


@contextmanager
def side_worker(enabled: bool = True, warm: Sequence[str] = ()) -> Iterator[Executor | None]:
    """One spawned worker process that imports the `warm` modules at once (named, so that the caller need not
    import them first); None on one core or when disabled."""
    if not enabled or (os.cpu_count() or 1) < 2:
        yield None
        return
    pool = ProcessPoolExecutor(
        max_workers=1, mp_context=multiprocessing.get_context("spawn"), initializer=_skip_teardown_at_exit
    )
    try:
        if warm:
            pool.submit(_import_all, tuple(warm))
        yield pool
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
