"""Phase progress of long runs (`sift dedup`, `sift contain`, `sift select`) through the standard `logging` module.

Algorithm code logs one INFO line as each phase of a run starts, to a logger under `sift` (`sift.dedup`,
`sift.contain`, `sift.select`), and imports neither rich nor Dagster. Whoever runs it decides where the lines go:
`terminal_progress(console)` shows them on the CLI's console when that is a terminal (nothing otherwise), and
`forward_progress(emit)` hands each to a function (the Dagster assets pass `context.log.info`). With neither, the
lines go nowhere (Python's last-resort handler shows warnings only).

A long loop (embedding, scoring) also logs a progress record after each chunk: a line whose `extra` carries
`sift_progress = {"task", "done", "total", "unit"}`. `terminal_progress` draws these as a rich progress bar per task
(items done, items per second, time left) instead of printing them; `forward_progress` passes them on like other
lines, but at most one per task every `every` seconds (the first, and the last, always).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

LOGGER = "sift"
PROGRESS_KEY = "sift_progress"  # the `extra` key of a progress record


def progress_of(record: logging.LogRecord) -> dict[str, Any] | None:
    """The progress a record reports (`task`, `done`, `total`, `unit`), or None for a plain line."""
    info = getattr(record, PROGRESS_KEY, None)
    return info if isinstance(info, dict) and "task" in info else None


class _Forward(logging.Handler):
    def __init__(self, emit: Callable[[str], None], every: float, clock: Callable[[], float]) -> None:
        super().__init__(logging.INFO)
        self._emit = emit
        self._every = every
        self._clock = clock
        self._last: dict[tuple[str, str], float] = {}

    def _due(self, record: logging.LogRecord, info: dict[str, Any]) -> bool:
        key = (record.name, str(info["task"]))
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last < self._every and info.get("done", 0) < info.get("total", 0):
            return False
        self._last[key] = now
        return True

    def emit(self, record: logging.LogRecord) -> None:
        try:
            info = progress_of(record)
            if info is None or self._due(record, info):
                self._emit(record.getMessage())
        except Exception:  # a display problem must never end the run
            self.handleError(record)


@contextmanager
def _attached(handler: logging.Handler) -> Iterator[None]:
    logger = logging.getLogger(LOGGER)
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
def forward_progress(
    emit: Callable[[str], None], *, every: float = 5.0, clock: Callable[[], float] = time.monotonic
) -> Iterator[None]:
    """Hand every progress line logged under `sift` to `emit` while the block runs; of a task's progress records,
    the first, then one per `every` seconds, and the last."""
    with _attached(_Forward(emit, every, clock)):
        yield


class _Bars(logging.Handler):
    """Plain lines printed on the console (with the seconds since `t0`); progress records drawn as bars."""

    def __init__(self, console: Any, t0: float) -> None:
        super().__init__(logging.INFO)
        self._console = console
        self._t0 = t0
        self._bars: Any = None
        self._tasks: dict[str, Any] = {}

    def _progress(self) -> Any:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn
        from rich.text import Text

        class Rate(ProgressColumn):
            """Items per second since the task began, and the time left at that rate."""

            def render(self, task: Any) -> Text:
                elapsed = task.elapsed or 0.0
                if not task.completed or elapsed <= 0:
                    return Text(f"-- {task.fields['unit']}/s", style="progress.data.speed")
                rate = task.completed / elapsed
                left = (task.total - task.completed) / rate if task.total else 0.0
                eta = f"{int(left) // 3600}:{int(left) % 3600 // 60:02d}:{int(left) % 60:02d}"
                return Text(f"{rate:.1f} {task.fields['unit']}/s, ETA {eta}", style="progress.data.speed")

        return Progress(
            TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(), Rate(),
            console=self._console,
        )  # fmt: skip

    def _show(self, info: dict[str, Any]) -> None:
        name, done, total = str(info["task"]), int(info.get("done", 0)), int(info.get("total", 0))
        if self._bars is None:
            self._bars = self._progress()
            self._bars.start()
        task = self._tasks.get(name)
        if task is None:
            task = self._bars.add_task(name, total=total, unit=info.get("unit", "items"))
            self._tasks[name] = task
        self._bars.update(task, completed=done, total=total)
        if all(t.finished for t in self._bars.tasks):  # leave the finished bars where they are
            self.close_bars()

    def close_bars(self) -> None:
        if self._bars is not None:
            self._bars.stop()
        self._bars, self._tasks = None, {}

    def emit(self, record: logging.LogRecord) -> None:
        from rich.text import Text

        try:
            info = progress_of(record)
            if info is not None:
                self._show(info)
            else:
                stamp = (f"{time.perf_counter() - self._t0:7.1f}s ", "dim")
                self._console.print(Text.assemble(stamp, record.getMessage()), highlight=False)
        except Exception:  # a display problem must never end the run
            self.handleError(record)


@contextmanager
def terminal_progress(console: Any) -> Iterator[None]:
    """Show progress lines on a rich console, each with the seconds since the block began, and progress records
    as bars, when the console is a terminal; a piped or redirected console gets nothing."""
    if not console.is_terminal:
        yield
        return
    bars = _Bars(console, time.perf_counter())
    try:
        with _attached(bars):
            yield
    finally:
        bars.close_bars()
