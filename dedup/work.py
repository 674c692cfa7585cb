"""Resumable work folder of a dedup run (SlimPajama-DC section 2 pipeline, made restartable).

Every phase writes a Parquet table into `<output>/_work/` and then a completion marker; a run that is killed (even
with SIGKILL) and started again with the same config and input reuses every table that has its marker and redoes
only the rest, so its output is byte-identical to an uninterrupted run.

Layout:
- `manifest.json`                      config fingerprint and input fingerprint; a mismatch wipes the folder
- `input/part-NNNNN.arrow` + `.done`   the streamed input batch (`_row` + input columns) and its quarantine rows;
                                       Arrow IPC for the Polars engine (memory-mapped when read back: the
                                       verification and the kept-documents writer touch only the rows they
                                       take), `.parquet` for the Spark engine (read by the cluster)
- `input/_SUCCESS`                     every input batch is spilled (the input is not read again)
- `facts/part-NNNNN.arrow` + `.done`   per-document facts: hashes, lengths, LSH band keys, signatures (Polars
                                       engine; Arrow IPC, memory-mapped when read back)
- `candidates.parquet`, `edges.parquet` (similarity exact at or above the threshold; below it, possibly an
                                       upper bound: verification stops once an edge is out of reach),
                                       `decisions.parquet` + `.done` markers
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import signal
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from sift.pipelines.core.lake import QUARANTINE_SCHEMA

WORK_COMPRESSION = "none"  # work tables are temporary and read back at memory speed (lz4: 4x slower to write)
SPILL_SUFFIX = {"arrow": ".arrow", "parquet": ".parquet"}


PROGRESS = logging.getLogger("sift.dedup")


def phase(name: str, detail: str = "") -> None:
    """Log the start of a phase of a run (one INFO line under the `sift` logger; pipelines/progress.py shows it
    on a terminal or in a Dagster run's log, and nothing is shown otherwise)."""
    PROGRESS.info("dedup: %s%s", name, f" ({detail})" if detail else "")


KILL_ENV = "SIFT_TEST_KILL_AT"
# `.NAME.PID.tmp`, the temporary sibling of every atomic write (`.NAME.PID.tmp.png` for the histogram)
TMP_NAME = re.compile(r"^\..+\.\d+\.tmp(\.[a-z]+)?$")


def kill_point(path: str | os.PathLike[str]) -> None:
    """Crash-safety test hook: SIGKILL this process just before the file at `path` is put in place, when the
    environment variable SIFT_TEST_KILL_AT names it (its name or its last path parts: `stats.json`,
    `facts/part-00002.arrow.done`). Every state change of a run is such a file, so a test can kill at any
    phase boundary and check that the restarted run ends byte-identical."""
    target = os.environ.get(KILL_ENV)
    if target:
        p = Path(path).as_posix()
        if p == target or p.endswith("/" + target):
            os.kill(os.getpid(), signal.SIGKILL)


def tmp_name(path: Path) -> Path:
    """The temporary sibling an atomic write of `path` goes through (renamed into place once complete)."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def remove_tmp_files(folder: Path) -> list[Path]:
    """Remove the temporary siblings (`.NAME.PID.tmp`) that killed runs left in an output folder and its `_work`
    (no symbolic link inside them followed); call it only while holding the folder's lock. Returns what was removed."""
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    for root, dirs, files in os.walk(folder):  # (os.walk follows no symbolic link to a folder)
        if Path(root) == folder:
            dirs[:] = [d for d in dirs if d == "_work"]
        for name in files:
            if TMP_NAME.match(name):
                path = Path(root) / name
                path.unlink()
                removed.append(path)
    return removed


def write_parquet_atomic(table: pa.Table, path: Path, *, compression: str = WORK_COMPRESSION) -> None:
    """Write a table to a temporary sibling, then rename it into place."""
    tmp = tmp_name(path)
    pq.write_table(table, tmp, compression=compression, use_dictionary=False, write_statistics=False)
    kill_point(path)
    os.replace(tmp, path)


def write_ipc_atomic(table: pa.Table, path: Path) -> None:
    """Write a table as one uncompressed Arrow IPC file (a temporary sibling renamed into place)."""
    tmp = tmp_name(path)
    with ipc.new_file(tmp, table.schema) as writer:
        writer.write_table(table)
    kill_point(path)
    os.replace(tmp, path)


def write_json_atomic(obj: Any, path: Path) -> None:
    tmp = tmp_name(path)
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")
    kill_point(path)
    os.replace(tmp, path)


def read_work_table(path: str | os.PathLike[str], columns: list[str] | None = None) -> pa.Table:
    """A work table: Arrow IPC memory-mapped (zero-copy; only the pages used are read), or Parquet."""
    path = Path(path)
    if path.suffix == ".arrow":
        table = ipc.open_file(pa.memory_map(str(path))).read_all()
        return table.select(columns) if columns is not None else table
    return pq.read_table(path, columns=columns)


def write_work_table(table: pa.Table, path: Path) -> None:
    """Write a work table in the format its suffix names (see `read_work_table`)."""
    if path.suffix == ".arrow":
        write_ipc_atomic(table, path)
    else:
        write_parquet_atomic(table, path)


class WorkDir:
    """The `_work` folder of one output directory."""

    def __init__(
        self, output_dir: str | os.PathLike[str], fingerprint: dict[str, Any], *, spill: str = "parquet"
    ) -> None:
        if spill not in SPILL_SUFFIX:
            raise ValueError(f"unknown spill format {spill!r} ({', '.join(SPILL_SUFFIX)})")
        self.root = Path(output_dir) / "_work"
        self.spill = spill
        fingerprint = {**fingerprint, "spill": spill}
        self.fingerprint = fingerprint
        manifest = self.root / "manifest.json"
        if self.root.exists():
            try:
                same = json.loads(manifest.read_text()) == fingerprint
            except (OSError, ValueError):
                same = False
            if not same:
                shutil.rmtree(self.root)
        for sub in ("input", "facts"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        if not manifest.exists():
            write_json_atomic(fingerprint, manifest)

    # markers -------------------------------------------------------------------------------------------------
    def done(self, path: Path) -> bool:
        return path.with_name(path.name + ".done").exists()

    def mark(self, path: Path, info: dict[str, Any] | None = None) -> None:
        write_json_atomic(info or {}, path.with_name(path.name + ".done"))

    def marker(self, path: Path) -> dict[str, Any]:
        return json.loads(path.with_name(path.name + ".done").read_text())

    def table(self, name: str) -> Path:
        return self.root / f"{name}.parquet"

    def input_shard(self, i: int) -> Path:
        return self.root / "input" / f"part-{i:05d}{SPILL_SUFFIX[self.spill]}"

    def read_input(self, path: Path, columns: list[str] | None = None) -> pa.Table:
        """An input shard (Arrow IPC files are memory-mapped, so only the pages taken from are read)."""
        return read_work_table(path, columns)

    def input_schema(self, path: Path) -> pa.Schema:
        if path.suffix == ".arrow":
            return ipc.open_file(pa.memory_map(str(path))).schema
        return pq.read_schema(path)

    def quarantine_shard(self, i: int) -> Path:
        return self.root / "input" / f"quarantine-{i:05d}.parquet"

    def facts_shard(self, i: int) -> Path:
        return self.root / "facts" / f"part-{i:05d}{SPILL_SUFFIX[self.spill]}"

    def input_shards(self) -> list[Path]:
        info = json.loads((self.root / "input" / "_SUCCESS").read_text())
        return [self.input_shard(i) for i in range(info["shards"])]

    def shard_rows(self) -> list[tuple[int, int]]:
        """(first _row, rows) of every input shard, in order."""
        return [(m["first_row"], m["rows"]) for m in (self.marker(p) for p in self.input_shards())]

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def _as_documents(item: Any) -> tuple[pa.Table, pa.Table | None]:
    """An input item: an IngestResult-like object (`.documents`, `.quarantine`), a Table or a RecordBatch."""
    if hasattr(item, "documents"):
        return item.documents, getattr(item, "quarantine", None)
    if isinstance(item, pa.RecordBatch):
        return pa.Table.from_batches([item]), None
    if isinstance(item, pa.Table):
        return item, None
    raise TypeError(
        f"dedup input items must be pyarrow Tables/RecordBatches or ingest results, got {type(item)!r}"
    )


def _conform(docs: pa.Table) -> pa.Table:
    """id, source, text as strings first, then the other columns; a missing source becomes 'default'."""
    for col in ("id", "text"):
        if col not in docs.column_names:
            raise ValueError(f"dedup input lacks the required column {col!r} (columns: {docs.column_names})")
    n = docs.num_rows
    source = (
        docs.column("source") if "source" in docs.column_names else pa.array(["default"] * n, pa.string())
    )
    cols = {
        "id": docs.column("id").cast(pa.string()),
        "source": pc.fill_null(source.cast(pa.string()), "default"),
        "text": docs.column("text").cast(pa.string()),
    }
    for name in docs.column_names:
        if name not in cols:
            cols[name] = docs.column(name)
    return pa.table(cols)


def _quarantine(q: pa.Table | None) -> pa.Table:
    if q is None or q.num_rows == 0:
        return QUARANTINE_SCHEMA.empty_table()
    cols = {}
    for f in QUARANTINE_SCHEMA:
        cols[f.name] = (
            q.column(f.name).cast(f.type) if f.name in q.column_names else pa.nulls(q.num_rows, f.type)
        )
    return pa.table(cols, schema=QUARANTINE_SCHEMA)


def _split(items: Iterable[Any], batch_rows: int) -> Iterator[tuple[pa.Table, pa.Table]]:
    if isinstance(items, (pa.Table, pa.RecordBatch)) or hasattr(items, "documents"):
        items = [items]
    for item in items:
        docs, q = _as_documents(item)
        docs = _conform(docs)
        if docs.num_rows <= batch_rows:
            yield docs, _quarantine(q)
            continue
        for k, start in enumerate(range(0, docs.num_rows, batch_rows)):
            yield docs.slice(start, batch_rows), _quarantine(q if k == 0 else None)


def spill(work: WorkDir, items: Iterable[Any], batch_rows: int, on_shard=None) -> list[Path]:
    """Write every input batch as a work shard (skipping shards a previous run finished); `on_shard(i, table)` is
    called for each newly written shard (the Polars engine computes its facts there, while the batch is hot)."""
    success = work.root / "input" / "_SUCCESS"
    if success.exists():
        return work.input_shards()
    first = 0
    i = -1
    for i, (docs, q) in enumerate(_split(items, batch_rows)):
        path = work.input_shard(i)
        if work.done(path):
            first += work.marker(path)["rows"]
            continue
        rows = pa.array(range(first, first + docs.num_rows), pa.int64())
        table = docs.add_column(0, "_row", rows)
        write_parquet_atomic(q, work.quarantine_shard(i))
        write_work_table(table, path)  # (the shard's suffix follows work.spill)
        work.mark(path, {"first_row": first, "rows": docs.num_rows})
        if on_shard is not None:
            on_shard(i, table)
        first += docs.num_rows
    write_json_atomic({"shards": i + 1, "rows": first}, success)
    return work.input_shards()
