"""What an input URI stands for: the files to read, their one format, and the files of a folder that are not read.

An input is a local path or any fsspec URL: one file, or a folder of files of one format (Parquet, JSONL, CSV/TSV,
or an Arrow `save_to_disk` folder), compressed or not (`compression`). A file's format comes from its name
(`detect_format`); a folder that mixes formats, a missing path or an unknown format raises `InputError`. Hidden
files (`.name`, `_name`), an Arrow dataset's metadata files and files of unknown format are not read: `input_files`
lists them with the reason, and `skipped_files_line` words that list for a command's summary.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fsspec

from sift.pipelines.core.errors import InputError
from sift.pipelines.core.lake.compression import strip_compression

JSONL_SUFFIXES = (".jsonl", ".json", ".ndjson")
PARQUET_SUFFIXES = (".parquet", ".pq")
CSV_SUFFIXES = (".csv", ".tsv")
# Opens one input file for reading (raw bytes, before decompression); each reader calls it once per pass.
Opener = Callable[[], Any]


def fs_and_path(uri: str | os.PathLike[str]) -> tuple[fsspec.AbstractFileSystem, str]:
    """The fsspec file system of a URI (local for a plain path) and the path within it."""
    fs, path = fsspec.core.url_to_fs(str(uri))
    return fs, path


def detect_format(name: str) -> str:
    """Format of one file by its name: 'jsonl', 'parquet', 'csv' or 'arrow'."""
    base, _ = strip_compression(name.lower())
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
    fs, path = fs_and_path(uri)
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
        # a hidden file, or any file in a hidden folder (`_quarantine/`, Spark's `_temporary/`)
        if any(part.startswith((".", "_")) for part in Path(rel).parts):
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


def opener(fs: fsspec.AbstractFileSystem, path: str) -> Opener:
    """An `Opener` of one file of `fs`."""
    return lambda: fs.open(path, "rb")
