"""The work folder of a SlimPajama dedup run (SlimPajama-DC section 2 pipeline, made restartable): the input
streamed into shards, and the dedup work tables.

The folder, its manifest and the resume contract (a table with its completion marker is reused, the rest redone,
output byte-identical) are the core's (pipelines/core/workdir.py). Layout of a dedup run's `_work/`:
- `manifest.json`                      config fingerprint, input fingerprint and spill format
- `input/part-NNNNN.arrow` + `.done`   the streamed input batch (`_row` + input columns) and its quarantine rows,
                                       Arrow IPC (memory-mapped when read back: the verification and the
                                       kept-documents writer touch only the rows they take)
- `input/_SUCCESS`                     every input batch is spilled (the input is not read again)
- `facts/part-NNNNN.arrow` + `.done`   per-document facts: hashes, lengths, LSH band keys, signatures (Arrow
                                       IPC, memory-mapped when read back)
- `candidates.parquet`, `edges.parquet` (similarity exact at or above the threshold; below it, possibly an
                                       upper bound: verification stops once an edge is out of reach) + `.done`
- `spark/NAME/` + `spark/NAME.done`    the Spark engine's tables instead (folders written by Spark): input,
                                       quarantine, facts, representatives, candidates, edges, components,
                                       survivors, decisions, and `spark/out/NAME/` the output tables before the
                                       driver puts them in place
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from sift.pipelines.core import workdir
from sift.pipelines.core.atomic import write_json
from sift.pipelines.core.lake import QUARANTINE_SCHEMA
from sift.pipelines.core.workdir import (
    read_work_schema,
    read_work_table,
    write_work_parquet,
    write_work_table,
)

SPILL_SUFFIX = {"arrow": ".arrow", "parquet": ".parquet"}


PROGRESS = logging.getLogger("sift.dedup")


def phase(name: str, detail: str = "") -> None:
    """Log the start of a phase of a run (one INFO line under the `sift` logger; pipelines/progress.py shows it
    on a terminal or in a Dagster run's log, and nothing is shown otherwise)."""
    PROGRESS.info("dedup: %s%s", name, f" ({detail})" if detail else "")


class WorkDir(workdir.WorkDir):
    """The `_work` folder of one dedup output folder: the core work folder plus the input and facts shards."""

    def __init__(
        self, output_dir: str | os.PathLike[str], fingerprint: dict[str, Any], *, spill: str = "parquet"
    ) -> None:
        if spill not in SPILL_SUFFIX:
            raise ValueError(f"unknown spill format {spill!r} ({', '.join(SPILL_SUFFIX)})")
        self.spill = spill
        super().__init__(output_dir, {**fingerprint, "spill": spill}, subdirs=("input", "facts"))

    def input_shard(self, i: int) -> Path:
        return self.root / "input" / f"part-{i:05d}{SPILL_SUFFIX[self.spill]}"

    def read_input(self, path: Path, columns: list[str] | None = None) -> pa.Table:
        """An input shard (Arrow IPC files are memory-mapped, so only the pages taken from are read)."""
        return read_work_table(path, columns)

    def input_schema(self, path: Path) -> pa.Schema:
        return read_work_schema(path)

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


def split_documents(items: Iterable[Any], batch_rows: int) -> Iterator[tuple[pa.Table, pa.Table]]:
    """(documents, quarantine) batches of at most `batch_rows` documents, conformed (`id`, `source`, `text` first)."""
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


def spill(
    work: WorkDir,
    items: Iterable[Any],
    batch_rows: int,
    on_shard: Callable[[int, pa.Table], None] | None = None,
) -> list[Path]:
    """Write every input batch as a work shard (skipping shards a previous run finished); `on_shard(i, table)` is
    called for each newly written shard (the Polars engine computes its facts there, while the batch is hot)."""
    success = work.root / "input" / "_SUCCESS"
    if success.exists():
        return work.input_shards()
    first = 0
    i = -1
    for i, (docs, q) in enumerate(split_documents(items, batch_rows)):
        path = work.input_shard(i)
        if work.done(path):
            first += work.marker(path)["rows"]
            continue
        rows = pa.array(range(first, first + docs.num_rows), pa.int64())
        table = docs.add_column(0, "_row", rows)
        write_work_parquet(q, work.quarantine_shard(i))
        write_work_table(table, path)  # (the shard's suffix follows work.spill)
        work.mark(path, {"first_row": first, "rows": docs.num_rows})
        if on_shard is not None:
            on_shard(i, table)
        first += docs.num_rows
    write_json({"shards": i + 1, "rows": first}, success)
    return work.input_shards()
