"""The one atomic writer: a reader sees the old file (or folder) or the new one, never half of one.

Every file Sift writes goes through `atomic_path`: the bytes go to a temporary sibling `.NAME.PID.tmp`, which is
renamed over the target once complete (a rename within one folder is atomic on POSIX). A run killed before the rename
leaves only the temporary sibling, which `remove_tmp_files` clears on the next run. Targets may be fsspec URLs: a
remote file is written to the temporary name and moved into place (as atomic as the store allows).

Crash-safety tests kill a run just before any file is put in place: when the environment variable
`SIFT_TEST_KILL_AT` names the target (its file name, or its last path parts such as `facts/part-00002.arrow.done`),
`kill_point` SIGKILLs the process. Every state change of a run is such a file, so a test can kill at any phase
boundary and check what the restart does.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa

KILL_ENV = "SIFT_TEST_KILL_AT"
TMP_NAME = re.compile(r"^\..+\.\d+\.tmp(\.[a-z]+)?$")


def kill_point(path: str | os.PathLike[str]) -> None:
    """Test hook: SIGKILL this process when SIFT_TEST_KILL_AT names `path` (see the module docstring)."""
    target = os.environ.get(KILL_ENV)
    if target:
        p = Path(path).as_posix()
        if p == target or p.endswith("/" + target):
            os.kill(os.getpid(), signal.SIGKILL)


def tmp_name(path: str | os.PathLike[str]) -> Path:
    """The temporary sibling an atomic write of `path` goes through."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def _is_url(path: str | os.PathLike[str]) -> bool:
    return "://" in str(path) and not str(path).startswith("file://")


def _fsync(path: str | os.PathLike[str]) -> None:
    """Flush a file's (or a folder's) data and metadata to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_path(
    path: str | os.PathLike[str], *, mkdirs: bool = True, durable: bool = False
) -> Iterator[Path]:
    """Yield a local temporary path to write; on success it is put in place of `path`, on error removed.

    `durable`: fsync the written file before the rename and its folder after it, so that the file is on disk (not
    only in the page cache) once this returns; for files that a later step's effects depend on (a power loss must
    not lose them). Local paths only.
    For an fsspec URL the temporary file is local and then uploaded under a temporary remote name and moved.
    """
    if _is_url(path):
        import tempfile

        import fsspec

        fs, target = fsspec.core.url_to_fs(str(path))
        with tempfile.TemporaryDirectory(prefix="sift-") as scratch:
            local = Path(scratch) / Path(target).name
            yield local
            parent = os.path.dirname(target)
            if mkdirs and parent:
                fs.makedirs(parent, exist_ok=True)
            remote_tmp = (
                f"{parent}/.{os.path.basename(target)}.{os.getpid()}.tmp" if parent else f".{target}.tmp"
            )
            fs.put(str(local), remote_tmp)
            kill_point(target)
            if fs.exists(target):
                fs.rm(target, recursive=True)
            fs.mv(remote_tmp, target)
        return
    target = Path(str(path).removeprefix("file://"))
    if mkdirs:
        target.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_name(target)
    try:
        yield tmp
        if durable:
            _fsync(tmp)
        kill_point(target)
        os.replace(tmp, target)
        if durable:
            _fsync(target.parent)
    finally:
        if tmp.exists() or tmp.is_symlink():
            if tmp.is_dir() and not tmp.is_symlink():
                shutil.rmtree(tmp)
            else:
                tmp.unlink()


def write_bytes(data: bytes, path: str | os.PathLike[str]) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(text: str, path: str | os.PathLike[str]) -> None:
    write_bytes(text.encode("utf-8"), path)


def write_json(
    obj: Any, path: str | os.PathLike[str], *, indent: int | None = 2, default: Any = None
) -> None:
    """JSON with sorted keys and a final newline (the bytes depend on the value alone)."""
    write_text(json.dumps(obj, indent=indent, sort_keys=True, default=default) + "\n", path)


def write_parquet(
    table: pa.Table, path: str | os.PathLike[str], *, durable: bool = False, **options: Any
) -> None:
    """`pyarrow.parquet.write_table(table, tmp, **options)`, then put in place (`durable`: see `atomic_path`)."""
    import pyarrow.parquet as pq

    with atomic_path(path, durable=durable) as tmp:
        pq.write_table(table, tmp, **options)


def write_ipc(table: pa.Table, path: str | os.PathLike[str]) -> None:
    """One uncompressed Arrow IPC file (memory-mappable when read back)."""
    from pyarrow import ipc

    with atomic_path(path) as tmp, ipc.new_file(tmp, table.schema) as writer:
        writer.write_table(table)


@contextmanager
def atomic_dir(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary sibling folder to fill; on success it replaces the folder `path` whole.

    The old folder is renamed aside before the new one is renamed in, then removed: a reader finds the old folder,
    the new one, or (for the instant between the two renames) none, never a mixture.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_name(target)
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        yield tmp
        kill_point(target)
        old = target.with_name(f".{target.name}.old.{os.getpid()}.tmp")
        if target.exists():
            os.replace(target, old)
        os.replace(tmp, target)
        if old.exists():
            shutil.rmtree(old)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def remove_tmp_files(folder: str | os.PathLike[str], *, descend: tuple[str, ...] = ("_work",)) -> list[Path]:
    """Remove the temporary siblings (`.NAME.PID.tmp`) that killed runs left in `folder` and in its subfolders named
    in `descend` (no symbolic link followed); call it only while holding the folder's lock. Returns what went."""
    folder = Path(folder)
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    for root, dirs, files in os.walk(folder):  # (os.walk follows no symbolic link to a folder)
        if Path(root) == folder:
            dirs[:] = [d for d in dirs if d in descend]
        for name in files:
            if TMP_NAME.match(name):
                path = Path(root) / name
                path.unlink()
                removed.append(path)
    return removed
