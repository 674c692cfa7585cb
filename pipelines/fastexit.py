"""Ending a CLI process without the interpreter's teardown, once a command's outputs are written.

After numba's kernels are loaded, Python's finalisation (LLVM and module teardown) adds ~0.5 s to every `sift
dedup` or `sift contain` run and does nothing a user can see. A command that has written and closed everything
calls `request()`; the CLI entry point then flushes the standard streams and logging and calls `os._exit(0)`.
Never when a Spark session may be up (its JVM is stopped by an atexit handler).
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
    import logging

    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
