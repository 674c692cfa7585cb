"""One writer per output folder: an OS-level lock that a run holds on the folder it writes.

`output_lock(folder)` takes an exclusive `flock` on `FOLDER/.sift.lock` without waiting; while another process (or
another open of the lock in this one) holds it, it raises `OutputBusyError` (an `InputError`: the CLI ends with one
line and exit code 2). The kernel drops the lock when its holder dies, even by SIGKILL, so a killed run never blocks
the next one. The lock file holds the holder's pid, for the message, and is removed on release.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from sift.pipelines.core.errors import InputError

LOCK_NAME = ".sift.lock"


class OutputBusyError(InputError):
    """Another run is writing the output folder."""


def _holder(path: Path) -> str:
    try:
        pid = path.read_text().strip()
    except OSError:
        pid = ""
    return f" (pid {pid})" if pid.isdigit() else ""


@contextmanager
def output_lock(folder: str | os.PathLike[str]) -> Iterator[Path]:
    """Hold the lock of an output folder (created if missing) for the duration of the block; yields the folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise OutputBusyError(
                f"{folder}: another sift run{_holder(path)} is writing this output folder; "
                "wait for it to end or write to another folder"
            ) from None
        # A holder that ended between our open and our flock removed the file we locked: lock the one there now.
        try:
            here = os.stat(path)
        except FileNotFoundError:
            here = None
        mine = os.fstat(fd)
        if here is not None and (here.st_dev, here.st_ino) == (mine.st_dev, mine.st_ino):
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield folder
    finally:
        with suppress(FileNotFoundError):
            os.unlink(path)
        os.close(fd)
