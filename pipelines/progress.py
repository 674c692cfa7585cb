"""Phase progress of long runs (`sift dedup`, `sift contain`) through the standard `logging` module.

Algorithm code logs one INFO line as each phase of a run starts, to a logger under `sift` (`sift.dedup`,
`sift.contain`), and imports neither rich nor Dagster. Whoever runs it decides where the lines go:
`terminal_progress(console)` shows them on the CLI's console when that is a terminal (nothing otherwise), and
`forward_progress(emit)` hands each to a function (the Dagster assets pass `context.log.info`). With neither, the
lines go nowhere (Python's last-resort handler shows warnings only).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

LOGGER = "sift"


class _Forward(logging.Handler):
    def __init__(self, emit: Callable[[str], None]) -> None:
        super().__init__(logging.INFO)
        self._emit = emit

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._emit(record.getMessage())
        except Exception:  # a display problem must never end the run
            self.handleError(record)


@contextmanager
def forward_progress(emit: Callable[[str], None]) -> Iterator[None]:
    """Hand every progress line logged under `sift` to `emit` while the block runs."""
    logger = logging.getLogger(LOGGER)
    handler = _Forward(emit)
    level = logger.level
    logger.addHandler(handler)
    if not logger.isEnabledFor(logging.INFO):
        logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


@contextmanager
def terminal_progress(console: Any) -> Iterator[None]:
    """Show progress lines on a rich console, each with the seconds since the block began, when the console is a
    terminal; a piped or redirected console gets nothing."""
    if not console.is_terminal:
        yield
        return
    from rich.text import Text

    t0 = time.perf_counter()

    def show(message: str) -> None:
        console.print(Text.assemble((f"{time.perf_counter() - t0:7.1f}s ", "dim"), message), highlight=False)

    with forward_progress(show):
        yield
