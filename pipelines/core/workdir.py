"""The resumable work folder of a stage run: a manifest, work tables and their completion markers.

The resume contract: every phase of a run writes its table into `<output>/_work/` (atomically, through
`pipelines/core/atomic.py`) and then a completion marker `<table>.done` (a small JSON file, written atomically too).
A run that is killed (even with SIGKILL) and started again with the same fingerprint (config and input) reuses every
table that has its marker and redoes only the rest, so its output is byte-identical to an uninterrupted run. A table
without a marker is never read: it may be a leftover of a killed run, and the phase writes it again.

- `manifest.json` holds the fingerprint the folder was made for; a folder made for another fingerprint (or with an
  unreadable manifest) is wiped when the next run opens it.
- Work tables are Arrow IPC (`.arrow`, uncompressed, memory-mapped when read back: a reader touches only the pages
  it takes) or Parquet (`.parquet`, uncompressed, for engines that read them on a cluster).
- The temporary siblings a killed run left (`.NAME.PID.tmp`) are removed by `atomic.remove_tmp_files`, which a
  run calls on its output folder while it holds the folder's lock, before it opens the work folder.

A stage subclasses `WorkDir` to name its tables and shards (dedup/work.py does for SlimPajama dedup).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from sift.pipelines.core.atomic import write_ipc, write_json, write_parquet

WORK_FOLDER = "_work"
WORK_COMPRESSION = "none"  # work tables are temporary and read back at memory speed (lz4: 4x slower to write)
MARKER_SUFFIX = ".done"


def write_work_parquet(table: pa.Table, path: str | os.PathLike[str]) -> None:
    """A Parquet work table: uncompressed, no dictionary, no statistics (written once, read back whole)."""
    write_parquet(table, path, compression=WORK_COMPRESSION, use_dictionary=False, write_statistics=False)


def read_work_table(path: str | os.PathLike[str], columns: list[str] | None = None) -> pa.Table:
    """A work table: Arrow IPC memory-mapped (zero-copy; only the pages used are read), or Parquet."""
    path = Path(path)
    if path.suffix == ".arrow":
        table = ipc.open_file(pa.memory_map(str(path))).read_all()
        return table.select(columns) if columns is not None else table
    return pq.read_table(path, columns=columns)


def read_work_schema(path: str | os.PathLike[str]) -> pa.Schema:
    """The schema of a work table (read from its footer, no data read)."""
    path = Path(path)
    if path.suffix == ".arrow":
        return ipc.open_file(pa.memory_map(str(path))).schema
    return pq.read_schema(path)


def write_work_table(table: pa.Table, path: Path) -> None:
    """Write a work table in the format its suffix names (see `read_work_table`)."""
    if path.suffix == ".arrow":
        write_ipc(table, path)
    else:
        write_work_parquet(table, path)


class WorkDir:
    """The `_work` folder of one output folder, made for one fingerprint (see the module docstring).

    Opening it wipes a folder made for another fingerprint, creates `subdirs`, and writes the manifest.
    """

    def __init__(
        self, output_dir: str | os.PathLike[str], fingerprint: dict[str, Any], *, subdirs: Iterable[str] = ()
    ) -> None:
        self.root = Path(output_dir) / WORK_FOLDER
        self.fingerprint = fingerprint
        manifest = self.root / "manifest.json"
        if self.root.exists():
            try:
                same = json.loads(manifest.read_text()) == fingerprint
            except (OSError, ValueError):
                same = False
            if not same:
                shutil.rmtree(self.root)
        self.root.mkdir(parents=True, exist_ok=True)
        for sub in subdirs:
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        if not manifest.exists():
            write_json(fingerprint, manifest)

    # completion markers ---------------------------------------------------------------------------------------
    @staticmethod
    def _marker_path(path: Path) -> Path:
        return path.with_name(path.name + MARKER_SUFFIX)

    def done(self, path: Path) -> bool:
        """Whether the table (or folder) at `path` is complete: its marker exists."""
        return self._marker_path(path).exists()

    def mark(self, path: Path, info: dict[str, Any] | None = None) -> None:
        """Record that `path` is complete (after it was put in place), with `info` for later runs to read."""
        write_json(info or {}, self._marker_path(path))

    def marker(self, path: Path) -> dict[str, Any]:
        """The `info` recorded with the marker of `path`."""
        info: dict[str, Any] = json.loads(self._marker_path(path).read_text())
        return info

    # work tables ----------------------------------------------------------------------------------------------
    def table(self, name: str) -> Path:
        """The path of the Parquet work table `name`."""
        return self.root / f"{name}.parquet"

    def remove(self) -> None:
        """Remove the whole work folder (after the run's outputs are in place)."""
        shutil.rmtree(self.root, ignore_errors=True)
