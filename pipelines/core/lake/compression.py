"""Decompression of lake inputs, and noticing an input that is cut short.

A file named `*.gz` is read as gzip members, `*.zst`/`*.zstd` as zstd frames (concatenated members or frames
included); any other file is read as it is. A compressed stream that ends inside a member or frame, or is corrupt,
raises one of `CUT_ERRORS` only after everything decoded before the cut was handed out, so the readers keep every
whole record before it and quarantine the cut record (`truncated input: ...`).
"""

from __future__ import annotations

import io
import zlib
from typing import TYPE_CHECKING, Any

import zstandard

if TYPE_CHECKING:
    import fsspec

COMPRESSIONS = {".gz": "gzip", ".zst": "zstd", ".zstd": "zstd"}


def strip_compression(name: str) -> tuple[str, str | None]:
    """`name` without its compression suffix, and the codec that suffix names (None when uncompressed)."""
    for suffix, codec in COMPRESSIONS.items():
        if name.endswith(suffix):
            return name[: -len(suffix)], codec
    return name, None


def open_bytes(fs: fsspec.AbstractFileSystem, path: str) -> io.BufferedIOBase:
    """The decompressed bytes of one file of `fs`."""
    return decompress(fs.open(path, "rb"), path)


def decompress(raw: Any, path: str) -> io.BufferedIOBase:
    """The stream `raw` decompressed by the codec `path`'s name says (`raw` itself when uncompressed)."""
    _, codec = strip_compression(path.lower())
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
