"""Table readers for R2D2 (paper step 0: the lake's tables as the algorithm sees them).

A `TableRef` (defined by the runtime core's lake discovery, `sift.pipelines.core.lake.tables`) names one table of
the lake (its path relative to the lake root without the extension), the files that hold it, its format and its
size in bytes. Discovery hands these references in; everything here reads with pyarrow only, so both engines see
exactly the same rows in the same order.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Generator, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from sift.dedup.containment.cache import LRU
from sift.pipelines.core.lake.tables import TableRef

# Parquet footers parsed once per file version (path, size, mtime) and reused by every reader: schema discovery,
# footer statistics and the data reads all need them.
_FOOTERS: dict[tuple[str, int, int], pq.FileMetaData] = {}
_FOOTERS_MAX = 200_000
# Files up to this many cells are decoded on the calling thread: Arrow's thread pool costs more than it saves on
# small files (most lake tables), and a machine's cores are better spent on other tables.
_THREADED_CELLS = 4_000_000


def parquet_metadata(path: str) -> pq.FileMetaData:
    """The parsed footer of a Parquet file (cached while the file's size and mtime stay the same)."""
    st = os.stat(path)
    key = (path, st.st_size, st.st_mtime_ns)
    md = _FOOTERS.get(key)
    if md is None:
        md = pq.read_metadata(path)
        if len(_FOOTERS) >= _FOOTERS_MAX:
            _FOOTERS.clear()
        _FOOTERS[key] = md
    return md


def _workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def _read_or_error(ref: TableRef) -> pa.Table | Exception:
    try:
        return read_table(ref)
    except Exception as exc:  # noqa: BLE001 - handed to the caller
        return exc


def read_tables(
    refs: Sequence[TableRef], window: int = 64
) -> Generator[tuple[TableRef, pa.Table | Exception], None, None]:
    """Read whole tables on a few threads, yielded in the given order (a read error is yielded, not raised).
    At most `window` tables are read ahead of the one the caller takes, so the caller's own work on the tables
    it has runs while the next ones are read; a caller that stops early cancels the reads not yet started."""
    refs = list(refs)
    ex = ThreadPoolExecutor(_workers())
    try:
        pending: deque[Future] = deque(ex.submit(_read_or_error, r) for r in refs[:window])
        for i, ref in enumerate(refs):
            got = pending.popleft().result()
            if i + window < len(refs):
                pending.append(ex.submit(_read_or_error, refs[i + window]))
            yield ref, got
    finally:
        ex.shutdown(wait=True, cancel_futures=True)


def parquet_file(path: str) -> pq.ParquetFile:
    """A ParquetFile opened with its cached footer. Small files are read without pre-buffering: coalescing their
    few column chunks into asynchronous reads costs more than it saves on a local file (2,500 lake files: 1.6 s
    read with it, 0.9 s without)."""
    md = parquet_metadata(path)
    return pq.ParquetFile(path, metadata=md, pre_buffer=_threads(md))


def _threads(md: pq.FileMetaData) -> bool:
    return md.num_rows * max(md.num_columns, 1) > _THREADED_CELLS


def read_schema(ref: TableRef) -> pa.Schema:
    """The Arrow schema of a table (footer only for Parquet; CSV is read whole since its types are inferred)."""
    if ref.format == "parquet":
        schemas = [parquet_metadata(p).schema.to_arrow_schema() for p in ref.paths]
        first = schemas[0]
        for p, s in zip(ref.paths[1:], schemas[1:], strict=True):
            if not s.equals(first, check_metadata=False):
                raise ValueError(f"{p}: schema differs from {ref.paths[0]} in the same table")
        return first
    return read_table(ref).schema


# CSV tables parsed during one run, by file version: the statistics step parses a CSV whole (it has no footer) and
# the content check needs the same table again. Bounded by bytes; emptied by `forget_csv` when a run starts and
# ends (a file rewritten in place within the clock's resolution keeps its size and mtime).
_CSV = LRU(256 << 20)
_csv_lock = threading.Lock()  # the readers of `read_tables` run on threads


def forget_csv() -> None:
    with _csv_lock:
        _CSV.clear()


def _read_csv(path: str) -> pa.Table:
    st = os.stat(path)
    key = (path, st.st_size, st.st_mtime_ns)
    with _csv_lock:
        got = _CSV.get(key)
    if got is None:
        got = pacsv.read_csv(path)
        size = got.get_total_buffer_size()
        with _csv_lock:
            if size <= _CSV.budget:
                _CSV.put(key, got, size)
    return got


def read_table(ref: TableRef, columns: Sequence[int] | None = None) -> pa.Table:
    """Read a whole table (optionally only the columns at the given positions), rows in lake order."""
    if ref.format == "parquet":
        parts = []
        for p in ref.paths:
            pf = parquet_file(p)
            parts.append(pf.read(use_pandas_metadata=False, use_threads=_threads(pf.metadata)))
        table = parts[0] if len(parts) == 1 else pa.concat_tables(parts)
    elif ref.format == "csv":
        table = _read_csv(ref.paths[0])
    else:
        raise ValueError(f"{ref.name}: unknown table format {ref.format!r}")
    if columns is not None:
        table = table.select(list(columns))
    return table


def iter_column_batches(
    ref: TableRef, columns: Sequence[int], batch_rows: int = 262_144
) -> Iterator[pa.RecordBatch]:
    """Stream the columns at the given positions in row order, reading only those columns of Parquet files."""
    columns = list(columns)
    if ref.format == "parquet":
        for p in ref.paths:
            pf = parquet_file(p)
            threads = _threads(pf.metadata)
            arrow_schema = pf.schema_arrow
            names = arrow_schema.names
            if len(set(names)) == len(names):
                wanted = [names[i] for i in columns]
                if not wanted:
                    n = pf.metadata.num_rows
                    for start in range(0, n, batch_rows):
                        yield _empty_batch(min(batch_rows, n - start))
                    continue
                schema = pa.schema([arrow_schema.field(i) for i in columns])
                if pf.metadata.num_rows <= batch_rows:
                    t = pf.read(columns=wanted, use_pandas_metadata=False, use_threads=threads)
                    yield pa.RecordBatch.from_arrays(
                        [t.column(w).combine_chunks() for w in wanted], schema=schema
                    )
                    continue
                for batch in pf.iter_batches(
                    batch_size=batch_rows, columns=wanted, use_pandas_metadata=False, use_threads=threads
                ):
                    # iter_batches returns the requested columns in file order; put them in the asked order
                    yield pa.RecordBatch.from_arrays(
                        [batch.column(batch.schema.get_field_index(w)) for w in wanted], schema=schema
                    )
            else:  # duplicate column names: read whole row groups and select by position
                for g in range(pf.num_row_groups):
                    t = pf.read_row_group(g, use_threads=threads).select(columns)
                    yield from t.to_batches(max_chunksize=batch_rows)
    else:
        t = read_table(ref, columns)
        yield from t.to_batches(max_chunksize=batch_rows)


def _empty_batch(n: int) -> pa.RecordBatch:
    return pa.RecordBatch.from_struct_array(pa.array([{}] * n, type=pa.struct([])))


def read_columns(ref: TableRef, columns: Sequence[int]) -> pa.Table:
    """The columns at the given positions as one table (reading only those columns of Parquet files)."""
    batches = list(iter_column_batches(ref, columns))
    if batches:
        return pa.Table.from_batches(batches)
    return read_table(ref, columns)
