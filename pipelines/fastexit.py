"""Ending a CLI process without the interpreter's teardown, once a command's outputs are written.

After numba's kernels are loaded, Python's finalisation (module teardown, LLVM's destructors) adds ~0.5 s to
every `sift dedup` or `sift contain` run and does nothing a user can see. A command that has written and closed
everything calls `request()`; the CLI entry point then runs the registered atexit handlers (logging,
multiprocessing's semaphores, thread and process pools: the cleanup that matters) and ends with `os._exit(0)`,
skipping only the teardown. Not used when a Spark session may be up.
"""

from __future__ import annotations

import os
import sys

_requested = False


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
