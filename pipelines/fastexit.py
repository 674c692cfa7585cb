"""Process settings of the heavy CLI commands (`sift dedup`, `sift contain`): a lean start, and an end without the
interpreter's teardown once a command's outputs are written.

`lean_start()`, called before the heavy imports: Python's cyclic GC collects far less often (with the default
thresholds `sift dedup` collected ~500 times, 0.3 s holding the GIL, mostly while numba, Polars and pyarrow were
imported; the runs' data lives in Arrow buffers, not Python objects); OpenBLAS starts one thread instead of one
per core (neither command does linear algebra on the main path: numpy's and SciPy's OpenBLAS, loaded for numba's
BLAS check, otherwise spin a thread each at start-up); numba's OpenMP threads sleep between parallel regions
instead of spinning.

After numba's kernels are loaded, Python's finalisation (module teardown, LLVM's destructors) adds ~0.5 s to
every `sift dedup` or `sift contain` run and does nothing a user can see. A command that has written and closed
everything calls `request()`; the CLI entry point then runs the registered atexit handlers (logging,
multiprocessing's semaphores, thread and process pools: the cleanup that matters) and ends with `os._exit(0)`,
skipping only the teardown. Not used when a Spark session may be up.
"""

from __future__ import annotations

import gc
import os
import sys

_requested = False


def lean_start() -> None:
    """See the module docstring; call before the heavy imports of a command."""
    gc.set_threshold(20_000, 20, 20)
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    # Numba's OpenMP threads otherwise spin between parallel regions, taking a core from the thread that parses and
    # spills the next shard meanwhile (sift dedup on 2 cores: 4 CPU seconds of spinning). Set before OpenMP loads.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def request() -> None:
    global _requested
    _requested = True


def exit_if_requested() -> None:
    if not _requested or "pyspark" in sys.modules:
        return
    import atexit

    sys.stdout.flush()
    sys.stderr.flush()
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
