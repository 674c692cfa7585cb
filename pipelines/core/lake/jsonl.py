"""JSONL inputs (plain, .gz, .zst): numbered lines to validated records, fast where a block is clean.

`iter_jsonl` reads a file into one reused buffer and cuts it into blocks of whole lines (up to `batch_rows` lines,
or BATCH_BYTES of records). A clean block (no blank line, valid UTF-8, no line that may nest deeper than
MAX_NESTING) is parsed by Arrow's JSON reader in one call and kept when it passes the same rules as the per-line
path (`_parse_jsonl_block`); any other block is parsed line by line with orjson (`parse_jsonl_lines`), where
invalid UTF-8, malformed JSON and nesting deeper than MAX_NESTING are quarantined and every parsed record is
validated by `validate.accept_record`. Both paths accept the same records with the same rows. Blank lines
(`is_blank_line`: ASCII whitespace only) are skipped and still numbered; a compressed file cut short keeps every
whole line before the cut and quarantines the cut line.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from sift.pipelines.core.lake.compression import CUT_ERRORS, decompress
from sift.pipelines.core.lake.files import Opener
from sift.pipelines.core.lake.validate import Batch, Fields, accept_record, normalise_source

BATCH_BYTES = (
    32 << 20
)  # a JSONL batch also ends at this many bytes of records, so long documents stay bounded


_FAST_EXTRA_TYPES = (
    pa.types.is_string,
    pa.types.is_int64,
    pa.types.is_float64,
    pa.types.is_boolean,
    pa.types.is_null,
)


def _valid_utf8(data: bytes | bytearray | memoryview) -> bool:
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
) -> Batch | None:
    """Fast path for numbered lines: see `_parse_jsonl_block`."""
    if not lines or any(is_blank_line(raw) for _, raw in lines):
        return None
    block = b"\n".join(raw for _, raw in lines)
    return _parse_jsonl_block(block, [row for row, _ in lines], file, fields, default_source)


def _parse_jsonl_block(
    block: bytes | memoryview, rows: list[int], file: str, fields: Fields, default_source: str
) -> Batch | None:
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
    arrow = pa.table(cols).combine_chunks()
    batch = Batch(file=file, rows=rows, arrow=arrow)
    batch.ids = arrow.column("id").to_pylist()
    return batch


def parse_jsonl_lines(
    lines: Iterable[tuple[int, bytes]], file: str, fields: Fields, default_source: str
) -> Batch:
    """Parse numbered raw JSONL lines into a batch; bad lines go to the batch's quarantine."""
    lines = list(lines)
    fast = _parse_jsonl_arrow(lines, file, fields, default_source)
    if fast is not None:
        return fast
    batch = Batch(file=file)
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
        accept_record(batch, row, rec, decoded, fields, default_source)
    return batch


def parse_jsonl_block(
    buf: bytes | bytearray,
    start: int,
    stop: int,
    first_row: int,
    file: str,
    fields: Fields,
    default_source: str,
    count: int | None = None,
) -> Batch:
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


def iter_jsonl(
    opener: Opener, path: str, display: str, fields: Fields, default_source: str, batch_rows: int
) -> Iterator[Batch]:
    """Blocks of whole lines (up to `batch_rows` lines; a block also ends with the first line that reaches
    BATCH_BYTES), each parsed by Arrow in one call when clean, line by line otherwise.

    The input is read into one reused buffer and blocks are parsed in place: on a VM, every fresh megabyte costs
    page faults, so no copy of the data is made on the way to Arrow."""
    buf = bytearray(BATCH_BYTES + 2 * _READ)
    start = end = 0  # unparsed data is buf[start:end]
    lines = 0  # newlines in it
    newlines: np.ndarray | None = None  # their positions, found once when the row limit binds
    row = 0  # lines handed out so far
    stream = decompress(opener(), path)
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
