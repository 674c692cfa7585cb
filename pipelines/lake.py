"""The lake: one module through which every stage reads inputs and writes tables.

Reads documents from Parquet (file or folder), JSONL (plain, .gz, .zst), CSV and Arrow `save_to_disk` folders, on
local paths or any fsspec URL; writes Parquet and JSON atomically (temporary sibling, then rename).

Record contract (ARCHITECTURE.md, "documents"): `id` (string, unique), `source` (string), `text` (string), then any
other input columns. Unreadable rows never vanish: malformed JSON, invalid UTF-8, missing or wrong-typed required
fields, empty ids, nesting deeper than MAX_NESTING, CSV rows with the wrong number of fields, the cut record of a
truncated file, the rows of an undecodable Parquet row group and repeated ids (the first occurrence by row number
stays) become quarantine rows with the 1-based row number, the error and the raw payload; `count_input_records`
counts records by the same rules. An input that cannot be read at all (a folder mixing formats included) raises
`InputError`; files of a folder that are not read are listed by `input_files`.
"""

from __future__ import annotations

import io
import json
import os
import re
import struct
import uuid
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fsspec
import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import zstandard

from sift.pipelines.core.errors import InputError as InputError  # raised here; defined apart for the CLI

DOC_SCHEMA = pa.schema([("id", pa.string()), ("source", pa.string()), ("text", pa.string())])
QUARANTINE_SCHEMA = pa.schema(
    [("file", pa.string()), ("row", pa.int64()), ("error", pa.string()), ("payload", pa.string())]
)
JSONL_SUFFIXES = (".jsonl", ".json", ".ndjson")
PARQUET_SUFFIXES = (".parquet", ".pq")
CSV_SUFFIXES = (".csv", ".tsv")
COMPRESSIONS = {".gz": "gzip", ".zst": "zstd", ".zstd": "zstd"}
BATCH_BYTES = (
    32 << 20
)  # a JSONL batch also ends at this many bytes of records, so long documents stay bounded
Opener = Callable[[], Any]
_SOURCE_RE = re.compile(r"[^a-z0-9_.-]+")


@dataclass(frozen=True)
class Fields:
    """Which input fields hold the record id, text and source."""

    id: str = "id"
    text: str = "text"
    source: str = "source"


@dataclass
class IngestResult:
    """Documents that passed validation, the quarantined rows, and counts."""

    documents: pa.Table
    quarantine: pa.Table
    stats: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------------------------
# Paths and formats


def _fs_and_path(uri: str | os.PathLike[str]) -> tuple[fsspec.AbstractFileSystem, str]:
    fs, path = fsspec.core.url_to_fs(str(uri))
    return fs, path


def _strip_compression(name: str) -> tuple[str, str | None]:
    for suffix, codec in COMPRESSIONS.items():
        if name.endswith(suffix):
            return name[: -len(suffix)], codec
    return name, None


def detect_format(name: str) -> str:
    """Format of one file by its name: 'jsonl', 'parquet', 'csv' or 'arrow'."""
    base, _ = _strip_compression(name.lower())
    if base.endswith(JSONL_SUFFIXES):
        return "jsonl"
    if base.endswith(PARQUET_SUFFIXES):
        return "parquet"
    if base.endswith(CSV_SUFFIXES):
        return "csv"
    if base.endswith(".arrow"):
        return "arrow"
    raise InputError(f"{name}: unknown file format (expected .parquet, .jsonl[.gz|.zst], .csv or .arrow)")


# Files an Arrow `save_to_disk` folder (or a DatasetDict) holds beside its data-*.arrow files.
ARROW_METADATA = ("dataset_info.json", "state.json", "dataset_dict.json")


@dataclass(frozen=True)
class InputFiles:
    """What an input URI stands for: the files to read (sorted), their one format, and every file of the folder
    that is not read, by path relative to the input, with the reason."""

    fs: fsspec.AbstractFileSystem
    paths: list[str]
    format: str
    skipped: dict[str, str] = field(default_factory=dict)


def input_files(uri: str | os.PathLike[str]) -> InputFiles:
    """The files an input URI stands for. A folder must hold one format (an Arrow dataset folder's metadata files
    aside): a folder that mixes formats is refused rather than read in part."""
    fs, path = _fs_and_path(uri)
    if not fs.exists(path):
        raise InputError(f"{uri}: no such file or directory")
    if not fs.isdir(path):
        return InputFiles(fs, [path], detect_format(path))
    names = sorted(fs.find(path))
    has_arrow = any(p.endswith(".arrow") for p in names)
    by_format: dict[str, list[str]] = {}
    skipped: dict[str, str] = {}
    for p in names:
        name = Path(p).name
        rel = os.path.relpath(p, path)
        if name.startswith((".", "_")):
            skipped[rel] = "hidden name"
        elif has_arrow and name in ARROW_METADATA:
            skipped[rel] = "Arrow dataset metadata"
        else:
            try:
                by_format.setdefault(detect_format(p), []).append(p)
            except InputError:
                skipped[rel] = "unknown format"
    if not by_format:
        raise InputError(f"{uri}: directory holds no Parquet, JSONL, CSV or Arrow files")
    if len(by_format) > 1:
        examples = ", ".join(f"{os.path.relpath(ps[0], path)}" for _, ps in sorted(by_format.items()))
        raise InputError(
            f"{uri}: directory mixes formats {sorted(by_format)} (for example {examples}); "
            "point at one format at a time"
        )
    fmt, paths = by_format.popitem()
    return InputFiles(fs, paths, fmt, skipped)


def list_input_files(uri: str | os.PathLike[str]) -> tuple[fsspec.AbstractFileSystem, list[str], str]:
    """The files an input URI stands for, sorted, and their common format (see `input_files`)."""
    found = input_files(uri)
    return found.fs, found.paths, found.format


def skipped_files_line(skipped: dict[str, str], limit: int = 10) -> str | None:
    """One line naming the files of an input folder that were not read (for a command's summary), or None."""
    if not skipped:
        return None
    shown = ", ".join(f"{name} ({why})" for name, why in list(skipped.items())[:limit])
    more = f" and {len(skipped) - limit} more" if len(skipped) > limit else ""
    return f"skipped {len(skipped)} file(s) not read: {shown}{more}"


def _open_bytes(fs: fsspec.AbstractFileSystem, path: str) -> io.BufferedIOBase:
    return _decompress(fs.open(path, "rb"), path)


def _decompress(raw: Any, path: str) -> io.BufferedIOBase:
    _, codec = _strip_compression(path.lower())
    if codec == "gzip":
        return io.BufferedReader(_Frames(raw, "gzip"))
    if codec == "zstd":
        return io.BufferedReader(_Frames(raw, "zstd"))
    return raw


# What reading a compressed stream raises where it is cut short or corrupt: the readers keep every whole record
# before it and quarantine the rest as one record, and `count_input_records` counts it the same way.
CUT_ERRORS = (EOFError, OSError, zstandard.ZstdError, zlib.error)


class _Frames(io.RawIOBase):
    """Decompression (gzip members or zstd frames, concatenated) that notices a stream cut inside a frame.

    Everything decoded before the cut is handed out first; only then does a read raise EOFError, so a reader
    keeps every whole record before the cut.
    """

    def __init__(self, raw: Any, codec: str, chunk: int = 1 << 20) -> None:
        self._raw, self._chunk, self._codec = raw, chunk, codec
        self._dobj = self._decoder()
        self._buf = b""
        self._pos = 0
        self._started = False

    def _decoder(self) -> Any:
        if self._codec == "gzip":
            return zlib.decompressobj(wbits=31)
        return zstandard.ZstdDecompressor().decompressobj()

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        while not self._buf:
            data = self._raw.read(self._chunk)
            if not data:
                if self._started and not self._dobj.eof:
                    raise EOFError(f"{self._codec} stream ended inside a frame")
                return 0
            self._started = True
            while data:
                self._buf += self._dobj.decompress(data)
                data = b""
                if self._dobj.eof:
                    data = self._dobj.unused_data
                    self._dobj = self._decoder()
                    self._started = bool(data)
        n = min(len(b), len(self._buf) - self._pos)
        b[:n] = self._buf[self._pos : self._pos + n]
        self._pos += n
        if self._pos == len(self._buf):
            self._buf, self._pos = b"", 0
        return n

    def close(self) -> None:
        self._raw.close()
        super().close()


# ---------------------------------------------------------------------------------------------------------------
# Kernels: raw rows -> validated documents + quarantine rows


def normalise_source(value: str) -> str:
    """A source name that is safe as a partition key and a file name: lower case, [a-z0-9_.-]."""
    s = _SOURCE_RE.sub("_", value.strip().lower()).strip("_")
    return s or "unknown"


@dataclass
class _Batch:
    """Rows of one input batch before duplicate-id checks."""

    file: str
    rows: list[int] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    extras: list[dict[str, Any]] = field(default_factory=list)
    q_rows: list[int] = field(default_factory=list)
    q_errors: list[str] = field(default_factory=list)
    q_payloads: list[str] = field(default_factory=list)
    # Accepted rows parsed straight into Arrow (id, source, text, other columns); `ids` and `rows` still listed.
    arrow: pa.Table | None = None

    def quarantine(self, row: int, error: str, payload: str) -> None:
        self.q_rows.append(row)
        self.q_errors.append(error)
        self.q_payloads.append(payload)


def _type_name(value: Any) -> str:
    return {dict: "an object", list: "an array", bool: "a boolean", int: "an integer", float: "a number"}.get(
        type(value), "a " + type(value).__name__
    )


def _accept_record(
    batch: _Batch, row: int, rec: Any, payload: str, fields: Fields, default_source: str
) -> None:
    """Validate one parsed record; append it to the batch or to its quarantine."""
    if not isinstance(rec, dict):
        batch.quarantine(row, f"not an object: the record is {_type_name(rec)}", payload)
        return
    for name in (fields.id, fields.text):
        if name not in rec or rec[name] is None:
            batch.quarantine(row, f"missing required field: '{name}'", payload)
            return
    rid, text = rec[fields.id], rec[fields.text]
    if isinstance(rid, bool) or not isinstance(rid, str | int):
        batch.quarantine(
            row, f"wrong type: '{fields.id}' is {_type_name(rid)}, expected a string or integer", payload
        )
        return
    if not isinstance(text, str):
        batch.quarantine(
            row, f"wrong type: '{fields.text}' is {_type_name(text)}, expected a string", payload
        )
        return
    rid = str(rid).strip()
    if not rid:
        batch.quarantine(row, f"empty id: '{fields.id}' is blank", payload)
        return
    src = rec.get(fields.source)
    if src is not None and not isinstance(src, str):
        batch.quarantine(
            row, f"wrong type: '{fields.source}' is {_type_name(src)}, expected a string", payload
        )
        return
    batch.rows.append(row)
    batch.ids.append(rid)
    batch.sources.append(normalise_source(src) if src else default_source)
    batch.texts.append(text)
    batch.extras.append({k: v for k, v in rec.items() if k not in (fields.id, fields.text, fields.source)})


_FAST_EXTRA_TYPES = (
    pa.types.is_string,
    pa.types.is_int64,
    pa.types.is_float64,
    pa.types.is_boolean,
    pa.types.is_null,
)


def _valid_utf8(data: bytes) -> bool:
    """UTF-8 validity of a whole buffer, checked by Arrow's vectorised validator (no Python str is built)."""
    offsets = pa.py_buffer(struct.pack("<2q", 0, len(data)))
    try:
        pa.Array.from_buffers(pa.large_string(), 1, [None, offsets, pa.py_buffer(data)]).validate(full=True)
    except pa.ArrowInvalid:
        return False
    return True


# The one blank-line rule of JSONL, shared by the parsers and `count_input_records`: a line is blank when it holds
# only ASCII whitespace (what `bytes.strip()` removes). Anything else, a non-breaking space or `\x1c` included, is
# a record, kept or quarantined.
BLANK_BYTES = b" \t\n\r\x0b\x0c"
_SPACE = b"[" + re.escape(BLANK_BYTES.replace(b"\n", b"")) + b"]*"
_BLANK_FIRST = re.compile(_SPACE + b"\n")
_BLANK_LINE = re.compile(b"\n" + _SPACE + b"\n")


def is_blank_line(raw: bytes) -> bool:
    """Whether a raw JSONL line is blank (skipped, not a record): ASCII whitespace only."""
    return not raw.strip(BLANK_BYTES)


def _clean_block(buf: bytes | bytearray, start: int, stop: int) -> bool:
    """Whether the newline-terminated lines buf[start:stop] hold no blank or whitespace-only line (which Arrow's
    reader would skip), scanned in place. Then Arrow yields one row per line exactly when every line holds one
    JSON value, which `_parse_jsonl_block` checks by the row count."""
    if stop <= start:
        return False
    return _BLANK_FIRST.match(buf, start, stop) is None and _BLANK_LINE.search(buf, start, stop) is None


# Nesting deeper than this is refused: the record is quarantined (per-line path, `_too_deep`). Deeper structures
# crash or fail the tools downstream: Arrow's JSON reader recurses once per level and overflows the C stack (a
# segfault) some thousands of levels deep, and Python's json module stops at its recursion limit near 1,000.
MAX_NESTING = 500


_NEST_CHUNK = 256  # < MAX_NESTING: a line with more openings than MAX_NESTING spans two chunks or more


def _may_nest_deeply(block: bytes | bytearray | memoryview) -> bool:
    """Whether some line of `block` holds more than MAX_NESTING '[' or '{' (an upper bound on its nesting depth,
    brackets inside strings counted too). Such a block takes the per-line path, never Arrow's JSON reader.

    Vectorised: openings are summed per _NEST_CHUNK bytes; only a line whose chunks hold more than MAX_NESTING
    openings is counted exactly."""
    data = np.frombuffer(block, np.uint8)
    n = len(data)
    opens = data | 32  # '[' | 0x20 == '{'
    np.equal(opens, ord("{"), out=opens.view(np.bool_))
    full = n - n % _NEST_CHUNK
    per_chunk = opens[:full].reshape(-1, _NEST_CHUNK).sum(axis=1, dtype=np.int64)
    per_chunk = np.append(per_chunk, int(opens[full:].sum()))
    if int(per_chunk.sum()) <= MAX_NESTING:
        return False
    prefix = np.concatenate(([0], np.cumsum(per_chunk)))
    newlines = np.flatnonzero(data == ord("\n"))
    starts = np.concatenate(([0], newlines + 1))
    ends = np.append(newlines, n)
    bound = prefix[(ends + _NEST_CHUNK - 1) // _NEST_CHUNK] - prefix[starts // _NEST_CHUNK]
    for i in np.flatnonzero(bound > MAX_NESTING):
        line = bytes(data[starts[i] : ends[i]])
        if line.count(b"[") + line.count(b"{") > MAX_NESTING:
            return True
    return False


def _too_deep(raw: bytes, rec: Any) -> bool:
    """Whether a parsed record nests arrays and objects more than MAX_NESTING levels deep (walked only when its
    line holds that many brackets)."""
    if raw.count(b"[") + raw.count(b"{") <= MAX_NESTING:
        return False
    stack = [(rec, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_NESTING:
            return True
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values() if isinstance(v, dict | list))
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value if isinstance(v, dict | list))
    return False


def _count_newlines(buf: bytes | bytearray, start: int, stop: int, step: int = 1 << 20) -> int:
    """Newlines in buf[start:stop], counted by numpy a cache-sized slice at a time (no large temporary)."""
    data = np.frombuffer(buf, np.uint8)
    return sum(int(np.count_nonzero(data[i : min(i + step, stop)] == 10)) for i in range(start, stop, step))


def _parse_jsonl_arrow(
    lines: list[tuple[int, bytes]], file: str, fields: Fields, default_source: str
) -> _Batch | None:
    """Fast path for numbered lines: see `_parse_jsonl_block`."""
    if not lines or any(is_blank_line(raw) for _, raw in lines):
        return None
    block = b"\n".join(raw for _, raw in lines)
    return _parse_jsonl_block(block, [row for row, _ in lines], file, fields, default_source)


def _parse_jsonl_block(
    block: bytes | memoryview, rows: list[int], file: str, fields: Fields, default_source: str
) -> _Batch | None:
    """Fast path: parse a block of clean JSONL lines (`rows` numbers them) straight into Arrow, or None to take
    the per-line path.

    Taken only when every line is a JSON object with a usable id and text and flat extra fields, so it accepts
    exactly what the per-line path accepts and yields the same rows; anything else falls back.
    """
    import pyarrow.json as pajson

    if not _valid_utf8(block):  # Arrow's JSON reader does not reject invalid UTF-8 inside strings
        return None
    if _may_nest_deeply(block):
        return None
    try:
        tbl = pajson.read_json(
            pa.BufferReader(pa.py_buffer(block)),
            read_options=pajson.ReadOptions(block_size=1 << 26),
            parse_options=pajson.ParseOptions(newlines_in_values=False),
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    if tbl.num_rows != len(rows) or fields.id not in tbl.column_names or fields.text not in tbl.column_names:
        return None
    rid, text = tbl.column(fields.id), tbl.column(fields.text)
    if rid.null_count or text.null_count or not pa.types.is_string(text.type):
        return None
    if pa.types.is_int64(rid.type):
        rid = rid.cast(pa.string())
    elif pa.types.is_string(rid.type):
        rid = pc.utf8_trim_whitespace(rid)
    else:
        return None
    if pc.min(pc.binary_length(rid)).as_py() == 0:  # (a Python scalar argument would import pandas: 0.3 s)
        return None
    if fields.source in tbl.column_names:
        src = tbl.column(fields.source)
        if pa.types.is_null(src.type):
            sources = pa.array([default_source] * tbl.num_rows, pa.string())
        elif pa.types.is_string(src.type):
            raw_src = src.to_pylist()
            mapping = {v: normalise_source(v) if v else default_source for v in set(raw_src)}
            sources = pa.array([mapping[v] for v in raw_src], pa.string())
        else:
            return None
    else:
        sources = pa.array([default_source] * tbl.num_rows, pa.string())
    cols: dict[str, Any] = {"id": rid, "source": sources, "text": text}
    for name in tbl.column_names:
        if name in (fields.id, fields.text, fields.source):
            continue
        col = tbl.column(name)
        if not any(check(col.type) for check in _FAST_EXTRA_TYPES):
            return None
        cols[name if name not in cols else f"{name}_input"] = col
    batch = _Batch(file=file, rows=rows, arrow=pa.table(cols).combine_chunks())
    batch.ids = batch.arrow.column("id").to_pylist()
    return batch


def parse_jsonl_lines(
    lines: Iterable[tuple[int, bytes]], file: str, fields: Fields, default_source: str
) -> _Batch:
    """Parse numbered raw JSONL lines into a batch; bad lines go to the batch's quarantine."""
    lines = list(lines)
    fast = _parse_jsonl_arrow(lines, file, fields, default_source)
    if fast is not None:
        return fast
    batch = _Batch(file=file)
    for row, raw in lines:
        if is_blank_line(raw):
            continue
        try:
            decoded = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            batch.quarantine(
                row,
                f"invalid UTF-8: bad byte at offset {exc.start}",
                raw.decode("utf-8", errors="backslashreplace"),
            )
            continue
        try:
            rec = orjson.loads(decoded)
        except orjson.JSONDecodeError as exc:
            batch.quarantine(row, f"malformed JSON: {exc}", decoded)
            continue
        if _too_deep(raw, rec):
            batch.quarantine(
                row, f"too deeply nested: more than {MAX_NESTING} levels of arrays/objects", decoded
            )
            continue
        _accept_record(batch, row, rec, decoded, fields, default_source)
    return batch


def _extras_table(extras: list[dict[str, Any]]) -> dict[str, pa.Array]:
    names: dict[str, None] = {}
    for e in extras:
        names.update(dict.fromkeys(e))
    cols: dict[str, pa.Array] = {}
    for name in names:
        values = [e.get(name) for e in extras]
        try:
            cols[name] = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            cols[name] = pa.array([None if v is None else json.dumps(v, ensure_ascii=False) for v in values])
    return cols


class _IdRegistry:
    """First occurrence of an id wins; later ones are quarantined, naming where the first one was."""

    def __init__(self) -> None:
        self.first: dict[str, tuple[str, int]] = {}

    def split(self, batch: _Batch) -> tuple[list[int], _Batch]:
        keep: list[int] = []
        for i, (rid, row) in enumerate(zip(batch.ids, batch.rows, strict=True)):
            seen = self.first.get(rid)
            if seen is None:
                self.first[rid] = (batch.file, row)
                keep.append(i)
            else:
                where = f"row {seen[1]}" if seen[0] == batch.file else f"{seen[0]} row {seen[1]}"
                if batch.arrow is not None:
                    payload = batch.arrow.slice(i, 1).to_pylist()[0]
                else:
                    payload = {
                        "id": rid,
                        "source": batch.sources[i],
                        "text": batch.texts[i],
                        **batch.extras[i],
                    }
                batch.quarantine(
                    row,
                    f"duplicate id: '{rid}' first seen at {where}",
                    json.dumps(payload, ensure_ascii=False, default=str),
                )
        return keep, batch


def _finish(batch: _Batch, registry: _IdRegistry) -> IngestResult:
    keep, batch = registry.split(batch)
    if batch.arrow is not None:
        docs = batch.arrow
    else:
        cols = {
            "id": pa.array(batch.ids, pa.string()),
            "source": pa.array(batch.sources, pa.string()),
            "text": pa.array(batch.texts, pa.string()),
        }
        for name, arr in _extras_table(batch.extras).items():
            # An input column that clashes with a contract column (say `id` while --id-field is `doc_id`) is
            # kept under a suffixed name rather than dropped.
            cols[name if name not in cols else f"{name}_input"] = arr
        docs = pa.table(cols)
    if len(keep) < docs.num_rows:
        docs = docs.take(pa.array(keep, pa.int64()))
    order = sorted(range(len(batch.q_rows)), key=lambda i: batch.q_rows[i])
    quarantine = pa.table(
        {
            "file": pa.array([batch.file] * len(order), pa.string()),
            "row": pa.array([batch.q_rows[i] for i in order], pa.int64()),
            "error": pa.array([batch.q_errors[i] for i in order], pa.string()),
            "payload": pa.array([batch.q_payloads[i] for i in order], pa.string()),
        },
        schema=QUARANTINE_SCHEMA,
    )
    return IngestResult(docs, quarantine, {"rows_in": docs.num_rows + quarantine.num_rows})


# ---------------------------------------------------------------------------------------------------------------
# Readers per format, each yielding `_Batch`es


def parse_jsonl_block(
    buf: bytes | bytearray,
    start: int,
    stop: int,
    first_row: int,
    file: str,
    fields: Fields,
    default_source: str,
    count: int | None = None,
) -> _Batch:
    """Parse the whole JSONL lines buf[start:stop] (each ending in a newline, `count` of them if known; the first
    is line `first_row`)."""
    if count is None:
        count = _count_newlines(buf, start, stop)
    if _clean_block(buf, start, stop):
        with memoryview(buf) as view:
            rows = list(range(first_row, first_row + count))
            fast = _parse_jsonl_block(view[start:stop], rows, file, fields, default_source)
        if fast is not None:
            return fast
    raws = bytes(buf[start:stop]).split(b"\n")[:count]
    return parse_jsonl_lines(
        [(first_row + i, raw.rstrip(b"\r")) for i, raw in enumerate(raws)], file, fields, default_source
    )


_READ = 1 << 24


def _iter_jsonl(
    opener: Opener, path: str, display: str, fields: Fields, default_source: str, batch_rows: int
) -> Iterator[_Batch]:
    """Blocks of whole lines (up to `batch_rows` lines; a block also ends with the first line that reaches
    BATCH_BYTES), each parsed by Arrow in one call when clean, line by line otherwise.

    The input is read into one reused buffer and blocks are parsed in place: on a VM, every fresh megabyte costs
    page faults, so no copy of the data is made on the way to Arrow."""
    buf = bytearray(BATCH_BYTES + 2 * _READ)
    start = end = 0  # unparsed data is buf[start:end]
    lines = 0  # newlines in it
    newlines: np.ndarray | None = None  # their positions, found once when the row limit binds
    row = 0  # lines handed out so far
    stream = _decompress(opener(), path)
    # readinto1: one underlying read at a time, so a cut stream hands out what it decoded before raising.
    readinto = getattr(stream, "readinto1", None) or stream.readinto
    try:
        while True:
            if end + _READ > len(buf):
                rest = end - start
                if rest + _READ > len(buf):  # one line longer than the buffer: grow it
                    grown = bytearray(2 * (rest + _READ))
                    grown[:rest] = memoryview(buf)[start:end]
                    buf = grown
                elif rest:
                    with memoryview(buf) as view:
                        view[:rest] = view[start:end]
                start, end = 0, rest
            try:
                with memoryview(buf) as view:
                    got = readinto(view[end : end + _READ])
            except CUT_ERRORS as exc:
                # A compressed stream cut short: keep every whole record before the cut, quarantine the cut.
                whole = max(buf.rfind(b"\n", start, end) + 1, start)
                batch = parse_jsonl_block(buf, start, whole, row + 1, display, fields, default_source)
                row += lines
                cut = bytes(buf[whole:end]).decode("utf-8", "replace")
                batch.quarantine(row + 1, f"truncated input: {type(exc).__name__}: {exc}", cut)
                yield batch
                return
            if not got:
                break
            lines += _count_newlines(buf, end, end + got)
            end += got
            newlines = None
            while lines >= batch_rows or end - start >= BATCH_BYTES:
                stop = end + 1
                if lines >= batch_rows:
                    if newlines is None:
                        found = np.frombuffer(buf, np.uint8, count=end - start, offset=start) == 10
                        newlines = np.flatnonzero(found) + start
                    stop = int(newlines[np.searchsorted(newlines, start) + batch_rows - 1]) + 1
                if end - start >= BATCH_BYTES:
                    at = buf.find(b"\n", start + BATCH_BYTES - 1, end)
                    if at >= 0:
                        stop = min(stop, at + 1)
                if stop > end:
                    break  # the line that reaches BATCH_BYTES is not whole yet
                count = lines - (_count_newlines(buf, stop, end) if stop < end else 0)
                yield parse_jsonl_block(buf, start, stop, row + 1, display, fields, default_source, count)
                start, lines, row = stop, lines - count, row + count
    finally:
        stream.close()
    if end > start and buf[end - 1] != 10:
        if end == len(buf):
            buf = buf[start:end] + b"\n"
            start, end = 0, end - start + 1
        else:
            buf[end] = 10
            end += 1
    yield parse_jsonl_block(buf, start, end, row + 1, display, fields, default_source)


def _check_columns(names: list[str], display: str, fields: Fields) -> None:
    missing = [name for name in (fields.id, fields.text) if name not in names]
    if missing:
        raise InputError(
            f"{display}: missing required column(s) {missing}; columns are {names} "
            f"(choose others with --id-field/--text-field)"
        )


def _columnar_batch(
    tbl: pa.Table, first_row: int, display: str, fields: Fields, default_source: str
) -> _Batch:
    """Validate a columnar batch (Parquet/Arrow) row by row against the same rules as JSONL."""
    batch = _Batch(file=display)
    _check_columns(tbl.column_names, display, fields)
    try:
        records = tbl.to_pylist()
    except UnicodeDecodeError:  # a string column holding invalid UTF-8: find its rows one by one
        records = [_row_or_utf8_error(tbl, i) for i in range(tbl.num_rows)]
    for offset, rec in enumerate(records):
        if isinstance(rec, tuple):
            batch.quarantine(first_row + offset, *rec)
            continue
        payload = json.dumps(rec, ensure_ascii=False, default=str)
        _accept_record(batch, first_row + offset, rec, payload, fields, default_source)
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


def _open_parquet(opener: Opener, display: str) -> tuple[pq.ParquetFile, list[int]]:
    """A Parquet file and the rows of each row group by its footer (the record count of the file)."""
    try:
        pf = pq.ParquetFile(opener())
        counts = [pf.metadata.row_group(i).num_rows for i in range(pf.metadata.num_row_groups)]
    except (pa.ArrowException, OSError) as exc:
        raise InputError(f"{display}: not a readable Parquet file ({' '.join(str(exc).split())})") from exc
    if any(n < 0 for n in counts):
        raise InputError(f"{display}: not a readable Parquet file (its footer counts negative rows)")
    return pf, counts


def _iter_parquet(
    opener: Opener, path: str, display: str, fields: Fields, default_source: str, batch_rows: int
) -> Iterator[_Batch]:
    """Parquet row groups in order. A row group that cannot be decoded (a corrupt page) is quarantined from the
    first row not read, one row per record its footer counts, with the error and the columns that still read."""
    pf, counts = _open_parquet(opener, display)
    try:
        names = pf.schema_arrow.names
    except (pa.ArrowException, OSError) as exc:
        raise InputError(f"{display}: not a readable Parquet file ({' '.join(str(exc).split())})") from exc
    _check_columns(names, display, fields)
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
                yield _columnar_batch(pa.Table.from_batches([rb]), row + got, display, fields, default_source)
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
) -> Iterator[_Batch]:
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
        batch = _Batch(file=display)
        for i in range(chunk, min(chunk + batch_rows, stop)):
            payload = {name: values[i - start] for name, values in readable.items()}
            batch.quarantine(first_row + i, message, json.dumps(payload, ensure_ascii=False, default=str))
        yield batch


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
        self._read = getattr(stream, "read1", None) or stream.read  # one underlying read: see `_iter_jsonl`
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
class _CsvBlock:
    """One batch of CSV records: the rows Arrow split into fields (every column binary) with their 1-based record
    numbers, and the records it could not split, each as (row, error, payload)."""

    table: pa.RecordBatch | None
    rows: list[int]
    bad: list[tuple[int, str, str]]


def _csv_options(path: str, on_invalid: Callable[[Any], str]) -> tuple[Any, Any]:
    delimiter = "\t" if _strip_compression(path.lower())[0].endswith(".tsv") else ","
    # No threads: Arrow reads the Python stream on the calling thread, in order.
    read = pacsv.ReadOptions(block_size=1 << 22, use_threads=False)
    parse = pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=True, invalid_row_handler=on_invalid)
    return read, parse


def _csv_blocks(opener: Opener, path: str, display: str) -> Iterator[_CsvBlock]:
    """Every record of a CSV file, in order: each cell is read as bytes (no type is inferred, so no later cell
    can fail a conversion, and invalid UTF-8 stays in its row); a record with the wrong number of fields, a cut
    at the end of a compressed file, or text Arrow cannot parse from some point on is a bad record, never lost."""
    read, parse = _csv_options(path, lambda row: "skip")
    with _CutAtNewline(_decompress(opener(), path)) as stream:
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
    with _CutAtNewline(_decompress(opener(), path)) as stream:
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
                    yield _CsvBlock(None, [], bad)
                return
            yield _CsvBlock(rb, rows, bad)


def _iter_csv(
    opener: Opener, path: str, display: str, fields: Fields, default_source: str, batch_rows: int
) -> Iterator[_Batch]:
    """CSV records validated like JSONL ones: every cell is text, as it stands in the file; a row with invalid
    UTF-8 or the wrong number of fields is quarantined alone."""
    checked = False
    for block in _csv_blocks(opener, path, display):
        batch = _Batch(file=display)
        for row, error, payload in block.bad:
            batch.quarantine(row, error, payload)
        if block.table is not None:
            tbl = block.table
            if not checked:
                _check_columns(tbl.schema.names, display, fields)
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
                    payload = {
                        k: v.decode("utf-8", "backslashreplace") if isinstance(v, bytes) else v
                        for k, v in rec.items()
                    }
                    batch.quarantine(row, error, json.dumps(payload, ensure_ascii=False))
                    continue
                _accept_record(batch, row, rec, json.dumps(rec, ensure_ascii=False), fields, default_source)
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


def _iter_arrow(
    opener: Opener, path: str, display: str, fields: Fields, default_source: str, batch_rows: int
) -> Iterator[_Batch]:
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
        yield _columnar_batch(pa.Table.from_batches([rb]), row, display, fields, default_source)
        row += rb.num_rows


def _opener(fs: fsspec.AbstractFileSystem, path: str) -> Opener:
    return lambda: fs.open(path, "rb")


def parse_file(
    content: bytes,
    path: str,
    display: str,
    fmt: str,
    fields: Fields,
    default_source: str,
    batch_rows: int = 65536,
) -> Iterator[_Batch]:
    """Parse one whole input file held in memory (the Spark engine's per-file kernel)."""
    yield from _READERS[fmt](lambda: io.BytesIO(content), path, display, fields, default_source, batch_rows)


_READERS = {"jsonl": _iter_jsonl, "parquet": _iter_parquet, "csv": _iter_csv, "arrow": _iter_arrow}


def default_source_for(path: str) -> str:
    """The source a file's records get when they carry none: the file name without its extensions."""
    name = Path(path).name
    base, _ = _strip_compression(name)
    return normalise_source(base.split(".")[0])


def iter_documents(
    uri: str | os.PathLike[str],
    *,
    id_field: str = "id",
    text_field: str = "text",
    source_field: str = "source",
    default_source: str | None = None,
    batch_rows: int = 65536,
) -> Iterator[IngestResult]:
    """Stream validated documents and quarantine rows from an input, one batch at a time.

    Duplicate ids are checked across the whole input: the first occurrence by (file, row) stays.
    """
    fs, paths, fmt = list_input_files(uri)
    fields = Fields(id=id_field, text=text_field, source=source_field)
    registry = _IdRegistry()
    root = _fs_and_path(uri)[1]
    for path in paths:
        display = str(uri) if path == root else os.path.relpath(path, root)
        src = normalise_source(default_source) if default_source else default_source_for(path)
        for batch in _READERS[fmt](_opener(fs, path), path, display, fields, src, batch_rows):
            yield _finish(batch, registry)


def read_documents(
    uri: str | os.PathLike[str],
    *,
    id_field: str = "id",
    text_field: str = "text",
    source_field: str = "source",
    default_source: str | None = None,
) -> IngestResult:
    """Read a whole input into one documents table and one quarantine table."""
    parts = list(
        iter_documents(
            uri,
            id_field=id_field,
            text_field=text_field,
            source_field=source_field,
            default_source=default_source,
        )
    )
    docs = pa.concat_tables([p.documents for p in parts], promote_options="permissive") if parts else None
    if docs is None:
        docs = DOC_SCHEMA.empty_table()
    quarantine = pa.concat_tables([p.quarantine for p in parts]) if parts else QUARANTINE_SCHEMA.empty_table()
    return IngestResult(docs, quarantine, ingest_stats(docs, quarantine))


def ingest_stats(docs: pa.Table, quarantine: pa.Table) -> dict[str, Any]:
    """Counts in and out, per source and per kind of error."""
    per_source: dict[str, int] = {}
    if docs.num_rows:
        counts = pc.value_counts(docs.column("source")).to_pylist()
        per_source = {c["values"]: c["counts"] for c in sorted(counts, key=lambda c: c["values"])}
    errors: dict[str, int] = {}
    for err in quarantine.column("error").to_pylist():
        kind = err.split(":")[0]
        errors[kind] = errors.get(kind, 0) + 1
    return {
        "rows_in": docs.num_rows + quarantine.num_rows,
        "documents": docs.num_rows,
        "quarantined": quarantine.num_rows,
        "documents_per_source": per_source,
        "quarantine_by_error": dict(sorted(errors.items())),
        "text_bytes": int(pc.sum(pc.binary_length(docs.column("text"))).as_py() or 0) if docs.num_rows else 0,
    }


# ---------------------------------------------------------------------------------------------------------------
# Atomic writes


def _atomic_target(path: str | os.PathLike[str]) -> tuple[fsspec.AbstractFileSystem, str, str]:
    fs, target = _fs_and_path(path)
    parent = os.path.dirname(target)
    if parent:
        fs.makedirs(parent, exist_ok=True)
    tmp = os.path.join(parent, f".{os.path.basename(target)}.tmp-{uuid.uuid4().hex}")
    return fs, target, tmp


def _replace(fs: fsspec.AbstractFileSystem, tmp: str, target: str) -> None:
    if isinstance(fs, fsspec.implementations.local.LocalFileSystem):
        os.replace(tmp, target)  # atomic on POSIX, replaces a file
    else:
        if fs.exists(target):
            fs.rm(target, recursive=True)
        fs.mv(tmp, target, recursive=True)


def write_parquet_atomic(table: pa.Table, path: str | os.PathLike[str]) -> None:
    """Write a Parquet file so that readers see the old table or the new one, never half of one.

    Deterministic bytes: the same rows in, the same file out, however the table was chunked (no timestamps; fixed
    row-group size and compression).
    """
    fs, target, tmp = _atomic_target(path)
    try:
        with fs.open(tmp, "wb") as f:
            # One chunk per column: page boundaries then depend on the rows alone, not on how they were batched.
            pq.write_table(
                table.combine_chunks(),
                f,
                compression="zstd",
                row_group_size=128 * 1024,
                write_statistics=True,
            )
        _replace(fs, tmp, target)
    finally:
        if fs.exists(tmp):
            fs.rm(tmp)


def write_json_atomic(obj: Any, path: str | os.PathLike[str]) -> None:
    """Write JSON (sorted keys, indented) atomically."""
    fs, target, tmp = _atomic_target(path)
    try:
        with fs.open(tmp, "w") as f:
            f.write(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")
        _replace(fs, tmp, target)
    finally:
        if fs.exists(tmp):
            fs.rm(tmp)


def read_table(uri: str | os.PathLike[str]) -> pa.Table:
    """A whole table from Parquet (file or folder), CSV or Arrow, with no validation."""
    fs, paths, fmt = list_input_files(uri)
    if fmt == "parquet":
        return pa.concat_tables(
            [pq.read_table(fs.open(p, "rb")) for p in paths], promote_options="permissive"
        )
    if fmt == "csv":
        return pa.concat_tables(
            [pacsv.read_csv(_open_bytes(fs, p)) for p in paths], promote_options="permissive"
        )
    if fmt == "jsonl":
        rows = []
        for p in paths:
            with _open_bytes(fs, p) as s:
                rows.extend(orjson.loads(line) for line in s if not is_blank_line(line))
        return pa.Table.from_pylist(rows)
    return pa.concat_tables([pa.ipc.open_stream(fs.open(p, "rb").read()).read_all() for p in paths])


def count_input_records(uri: str | os.PathLike[str]) -> int:
    """Count the records of an input independently of the parsers (for accounting checks).

    JSONL: non-blank lines, plus one for a compressed stream cut short; columnar formats: their row counts.
    """
    fs, paths, fmt = list_input_files(uri)
    total = 0
    for path in paths:
        if fmt == "jsonl":
            stream = _open_bytes(fs, path)
            try:
                while True:
                    try:
                        line = stream.readline()
                    except CUT_ERRORS:
                        total += 1
                        break
                    if not line:
                        break
                    total += not is_blank_line(line)
            finally:
                stream.close()
        elif fmt == "parquet":
            total += sum(_open_parquet(_opener(fs, path), path)[1])
        elif fmt == "csv":
            total += sum(len(b.rows) + len(b.bad) for b in _csv_blocks(_opener(fs, path), path, path))
        else:
            with fs.open(path, "rb") as f:
                total += pa.ipc.open_stream(f.read()).read_all().num_rows
    return total
