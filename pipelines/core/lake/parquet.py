"""Columnar inputs, Parquet and Arrow IPC files, validated row by row against the rules JSONL records meet.

A file without the id or text column raises `InputError`. A string that is not valid UTF-8 quarantines its row
alone. A Parquet row group that cannot be decoded (a corrupt page, fewer or more rows than the footer counts) is
quarantined from the first row not read, one row per record its footer counts, with the error and the values of the
columns that still read; `open_parquet` gives the footer's row counts, which `count_input_records` sums.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from sift.pipelines.core.errors import InputError
from sift.pipelines.core.lake.files import Opener
from sift.pipelines.core.lake.validate import Batch, Fields, accept_record, check_columns


def columnar_batch(tbl: pa.Table, first_row: int, display: str, fields: Fields, default_source: str) -> Batch:
    """Validate a columnar batch (Parquet/Arrow) row by row against the same rules as JSONL."""
    batch = Batch(file=display)
    check_columns(tbl.column_names, display, fields)
    try:
        records = tbl.to_pylist()
    except UnicodeDecodeError:  # a string column holding invalid UTF-8: find its rows one by one
        records = [_row_or_utf8_error(tbl, i) for i in range(tbl.num_rows)]
    for offset, rec in enumerate(records):
        if isinstance(rec, tuple):
            batch.quarantine(first_row + offset, *rec)
            continue
        payload = json.dumps(rec, ensure_ascii=False, default=str)
        accept_record(batch, first_row + offset, rec, payload, fields, default_source)
    return batch


def _row_or_utf8_error(tbl: pa.Table, i: int) -> dict[str, Any] | tuple[str, str]:
    """Row i as a dict, or (error, payload) when one of its strings is not valid UTF-8."""
    try:
        return tbl.slice(i, 1).to_pylist()[0]
    except UnicodeDecodeError:
        pass
    payload: dict[str, Any] = {}
    bad: list[str] = []
    for name in tbl.column_names:
        cell = tbl.column(name).slice(i, 1)
        try:
            payload[name] = cell.to_pylist()[0]
        except UnicodeDecodeError:
            bad.append(name)
            raw = cell.cast(pa.large_binary()).to_pylist()[0] if pa.types.is_string(cell.type) else None
            payload[name] = raw.decode("utf-8", "backslashreplace") if raw is not None else repr(cell)
    error = f"invalid UTF-8: column(s) {bad}"
    return error, json.dumps(payload, ensure_ascii=False, default=str)


# An unreadable Parquet row group is quarantined one row per record its footer counts; a footer that counts more
# rows than this in one unreadable row group is not believed, and the file is refused.
_PARQUET_QUARANTINE_MAX = 1 << 24


def open_parquet(opener: Opener, display: str) -> tuple[pq.ParquetFile, list[int]]:
    """A Parquet file and the rows of each row group by its footer (the record count of the file)."""
    try:
        pf = pq.ParquetFile(opener())
        counts = [pf.metadata.row_group(i).num_rows for i in range(pf.metadata.num_row_groups)]
    except (pa.ArrowException, OSError) as exc:
        raise InputError(f"{display}: not a readable Parquet file ({' '.join(str(exc).split())})") from exc
    if any(n < 0 for n in counts):
        raise InputError(f"{display}: not a readable Parquet file (its footer counts negative rows)")
    return pf, counts


def iter_parquet(
    opener: Opener, path: str, display: str, fields: Fields, default_source: str, batch_rows: int
) -> Iterator[Batch]:
    """Parquet row groups in order. A row group that cannot be decoded (a corrupt page) is quarantined from the
    first row not read, one row per record its footer counts, with the error and the columns that still read."""
    pf, counts = open_parquet(opener, display)
    try:
        names = pf.schema_arrow.names
    except (pa.ArrowException, OSError) as exc:
        raise InputError(f"{display}: not a readable Parquet file ({' '.join(str(exc).split())})") from exc
    check_columns(names, display, fields)
    row = 1
    for group, expected in enumerate(counts):
        got = 0
        batches = pf.iter_batches(batch_size=batch_rows, row_groups=[group])
        while got < expected:
            try:
                rb = next(batches)
                if got + rb.num_rows > expected:
                    raise OSError(f"it holds more rows than its footer counts ({expected})")
            except StopIteration:
                error = f"it holds {got} rows, its footer counts {expected}"
            except (pa.ArrowException, OSError) as exc:
                error = " ".join(str(exc).split())
            else:
                yield columnar_batch(pa.Table.from_batches([rb]), row + got, display, fields, default_source)
                got += rb.num_rows
                continue
            yield from _unreadable_row_group(pf, group, got, expected, row, error, display, batch_rows)
            break
        row += expected


def _unreadable_row_group(
    pf: pq.ParquetFile,
    group: int,
    start: int,
    stop: int,
    first_row: int,
    error: str,
    display: str,
    batch_rows: int,
) -> Iterator[Batch]:
    """Quarantine rows start..stop-1 of a row group (record numbers from first_row + start), each with the error
    and, as its payload, the values of the columns that still read."""
    if stop - start > _PARQUET_QUARANTINE_MAX:
        raise InputError(
            f"{display}: Parquet row group {group} is unreadable ({error}) and its footer counts {stop} rows; "
            "the file looks corrupt"
        )
    readable: dict[str, list[Any]] = {}
    for name in pf.schema_arrow.names:
        try:
            values = pf.read_row_group(group, columns=[name]).column(0)
        except (pa.ArrowException, OSError):
            continue
        if len(values) == stop:
            try:
                readable[name] = values.slice(start).to_pylist()
            except UnicodeDecodeError:
                continue
    message = f"unreadable Parquet row group {group} (rows {first_row}-{first_row + stop - 1}): {error}"
    for chunk in range(start, stop, batch_rows):
        batch = Batch(file=display)
        for i in range(chunk, min(chunk + batch_rows, stop)):
            payload = {name: values[i - start] for name, values in readable.items()}
            batch.quarantine(first_row + i, message, json.dumps(payload, ensure_ascii=False, default=str))
        yield batch


def iter_arrow(
    opener: Opener, path: str, display: str, fields: Fields, default_source: str, batch_rows: int
) -> Iterator[Batch]:
    """An Arrow IPC file (stream or file format, as `save_to_disk` writes it) in batches of `batch_rows` rows."""
    with opener() as f:
        data = f.read()
    try:
        reader = pa.ipc.open_stream(data)
    except pa.ArrowInvalid:
        try:
            reader = pa.ipc.open_file(data)
            tbl = reader.read_all()
        except pa.ArrowInvalid as exc:
            raise InputError(f"{display}: not a readable Arrow file ({exc})") from exc
    else:
        tbl = reader.read_all()
    row = 1
    for rb in tbl.to_batches(max_chunksize=batch_rows):
        yield columnar_batch(pa.Table.from_batches([rb]), row, display, fields, default_source)
        row += rb.num_rows
