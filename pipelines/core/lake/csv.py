"""CSV and TSV inputs (plain, .gz, .zst): every record kept or quarantined, none lost.

Each cell is read as text as it stands in the file (no type is inferred). A record with the wrong number of
fields, a row holding invalid UTF-8, the cut record of a compressed file cut short (`_CutAtNewline` hands Arrow's
reader only whole records) and the rest of a file from a point Arrow cannot parse become quarantine rows; the
other records are validated like JSONL ones. A header that is unreadable or repeats a column name raises
`InputError`.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from sift.pipelines.core.errors import InputError
from sift.pipelines.core.lake.compression import CUT_ERRORS, decompress, strip_compression
from sift.pipelines.core.lake.files import Opener
from sift.pipelines.core.lake.validate import Batch, Fields, accept_record, check_columns


class _CutAtNewline(io.RawIOBase):
    """A decompressed stream for Arrow's CSV reader that ends cleanly where a compressed input is cut short.

    It hands out data only up to the last record end seen so far (a newline outside quotes, by the parity of the
    double quotes before it); when the stream turns out to be cut, it ends there and keeps the bytes after it (the
    cut record) and the error in `cut`, for the quarantine. Arrow never sees the cut, so it neither reads half a
    record as a whole one nor fails inside its own read. A quote that breaks the parity (a stray quote inside an
    unquoted field) makes it hold back at most _HOLD_MAX bytes before it hands out up to the last newline."""

    _HOLD_MAX = 1 << 26

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self._read = getattr(stream, "read1", None) or stream.read  # one underlying read: see `iter_jsonl`
        self._held = b""
        self._out = memoryview(b"")
        self._odd = 0  # parity of the double quotes handed out so far
        self._eof = False
        self.cut: tuple[str, bytes] | None = None

    def readable(self) -> bool:
        return True

    def _record_end(self, data: bytes) -> int:
        """The index just after the last newline of `data` that lies outside quotes (0 if none)."""
        if not self._odd and b'"' not in data:
            return data.rfind(b"\n") + 1
        arr = np.frombuffer(data, np.uint8)
        inside = (np.cumsum(arr == ord('"'), dtype=np.uint8) + self._odd) & 1
        ends = np.flatnonzero((arr == ord("\n")) & (inside == 0))
        if len(ends):
            return int(ends[-1]) + 1
        return data.rfind(b"\n") + 1 if len(data) > self._HOLD_MAX else 0

    def readinto(self, b: Any) -> int:
        while not self._out and not self._eof:
            try:
                data = self._read(1 << 22)
            except CUT_ERRORS as exc:
                self.cut = (f"{type(exc).__name__}: {exc}", self._held)
                self._held, self._eof = b"", True
                break
            if not data:
                self._out, self._held, self._eof = memoryview(self._held), b"", True
                break
            data = self._held + data
            end = self._record_end(data)
            self._odd = (self._odd + data.count(b'"', 0, end)) & 1
            self._out, self._held = memoryview(data)[:end], data[end:]
        n = min(len(b), len(self._out))
        b[:n] = self._out[:n]
        self._out = self._out[n:]
        return n

    def close(self) -> None:
        self._stream.close()
        super().close()


@dataclass
class CsvBlock:
    """One batch of CSV records: the rows Arrow split into fields (every column binary) with their 1-based record
    numbers, and the records it could not split, each as (row, error, payload)."""

    table: pa.RecordBatch | None
    rows: list[int]
    bad: list[tuple[int, str, str]]


def _csv_options(path: str, on_invalid: Callable[[Any], str]) -> tuple[Any, Any]:
    delimiter = "\t" if strip_compression(path.lower())[0].endswith(".tsv") else ","
    # No threads: Arrow reads the Python stream on the calling thread, in order.
    read = pacsv.ReadOptions(block_size=1 << 22, use_threads=False)
    parse = pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=True, invalid_row_handler=on_invalid)
    return read, parse


def csv_blocks(opener: Opener, path: str, display: str) -> Iterator[CsvBlock]:
    """Every record of a CSV file, in order: each cell is read as bytes (no type is inferred, so no later cell
    can fail a conversion, and invalid UTF-8 stays in its row); a record with the wrong number of fields, a cut
    at the end of a compressed file, or text Arrow cannot parse from some point on is a bad record, never lost."""
    read, parse = _csv_options(path, lambda row: "skip")
    with _CutAtNewline(decompress(opener(), path)) as stream:
        try:
            names = pacsv.open_csv(stream, read_options=read, parse_options=parse).schema.names
        except pa.ArrowInvalid as exc:
            if stream.cut is not None:
                raise InputError(f"{display}: cut short before its header ends ({stream.cut[0]})") from exc
            raise InputError(f"{display}: not a readable CSV file ({exc})") from exc
        except UnicodeDecodeError as exc:
            raise InputError(f"{display}: CSV header is not valid UTF-8 ({exc})") from exc
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise InputError(
            f"{display}: CSV header repeats column name(s) {repeated}; give each column its own name"
        )
    invalid: list[tuple[int | None, str, str]] = []

    def on_invalid(bad: Any) -> str:
        record = (
            bad.number - 1 if bad.number is not None and bad.number > 0 else None
        )  # the header is number 1
        error = f"wrong number of fields: expected {bad.expected_columns}, got {bad.actual_columns}"
        invalid.append((record, error, bad.text))
        return "skip"

    read, parse = _csv_options(path, on_invalid)
    convert = pacsv.ConvertOptions(column_types={name: pa.binary() for name in names})
    with _CutAtNewline(decompress(opener(), path)) as stream:
        try:
            reader = pacsv.open_csv(stream, read_options=read, parse_options=parse, convert_options=convert)
        except pa.ArrowInvalid as exc:
            raise InputError(f"{display}: not a readable CSV file ({exc})") from exc
        row = 1  # the next record number
        while True:
            try:
                rb: pa.RecordBatch | None = reader.read_next_batch()
            except StopIteration:
                rb = None
            except pa.ArrowInvalid as exc:
                rb = None
                message = " ".join(str(exc).split())
                invalid.append((None, f"unreadable CSV from here on: {message}", ""))
            # The skipped records Arrow reported sit between the rows of this batch, by their record numbers.
            invalid.sort(key=lambda b: (b[0] is None, b[0] or 0))
            rows: list[int] = []
            bad: list[tuple[int, str, str]] = []
            want = rb.num_rows if rb is not None else 0
            while len(rows) < want or (rb is None and invalid):
                if invalid and (invalid[0][0] is None or invalid[0][0] <= row or len(rows) == want):
                    _, error, text = invalid.pop(0)
                    bad.append((row, error, text))
                else:
                    rows.append(row)
                row += 1
            if rb is None:
                if stream.cut is not None:
                    error, tail = stream.cut
                    bad.append((row, f"truncated input: {error}", tail.decode("utf-8", "backslashreplace")))
                if bad:
                    yield CsvBlock(None, [], bad)
                return
            yield CsvBlock(rb, rows, bad)


def iter_csv(
    opener: Opener, path: str, display: str, fields: Fields, default_source: str, batch_rows: int
) -> Iterator[Batch]:
    """CSV records validated like JSONL ones: every cell is text, as it stands in the file; a row with invalid
    UTF-8 or the wrong number of fields is quarantined alone."""
    checked = False
    for block in csv_blocks(opener, path, display):
        batch = Batch(file=display)
        for row, error, payload in block.bad:
            batch.quarantine(row, error, payload)
        if block.table is not None:
            tbl = block.table
            if not checked:
                check_columns(tbl.schema.names, display, fields)
                checked = True
            text = pa.schema([(name, pa.string()) for name in tbl.schema.names])
            try:
                records = tbl.cast(text).to_pylist()
                checked_utf8 = True
            except (
                pa.ArrowInvalid
            ):  # invalid UTF-8 somewhere: such cells stay bytes, their rows are quarantined
                columns = {name: _utf8_cells(tbl.column(i)) for i, name in enumerate(tbl.schema.names)}
                records = [{name: cells[i] for name, cells in columns.items()} for i in range(tbl.num_rows)]
                checked_utf8 = False
            for row, rec in zip(block.rows, records, strict=True):
                broken = [] if checked_utf8 else [(k, v) for k, v in rec.items() if isinstance(v, bytes)]
                if broken:
                    name, value = broken[0]
                    try:
                        value.decode("utf-8")
                    except UnicodeDecodeError as exc:
                        error = f"invalid UTF-8: column '{name}', bad byte at offset {exc.start}"
                    decoded = {
                        k: v.decode("utf-8", "backslashreplace") if isinstance(v, bytes) else v
                        for k, v in rec.items()
                    }
                    batch.quarantine(row, error, json.dumps(decoded, ensure_ascii=False))
                    continue
                accept_record(batch, row, rec, json.dumps(rec, ensure_ascii=False), fields, default_source)
        yield batch


def _utf8_cells(column: pa.Array) -> list[Any]:
    """A binary CSV column as Python strings; a cell that is not valid UTF-8 stays bytes (its row is quarantined)."""
    try:
        return column.cast(pa.string()).to_pylist()
    except pa.ArrowInvalid:
        cells: list[Any] = []
        for value in column.to_pylist():
            try:
                cells.append(value.decode("utf-8"))
            except UnicodeDecodeError:
                cells.append(value)
        return cells
