"""Discovering the tables of a data lake for R2D2 containment (the paper's input: every table of the lake).

A table is a Parquet file, a folder of Parquet part files (a folder named `*.parquet`, or one holding `_SUCCESS` /
`_metadata` markers, or holding only `part-*` Parquet files), or a CSV file (`.csv`, `.csv.gz`). Its name is its
path relative to the lake root without the extension (when two tables would share a name, both keep their
extension). Hidden entries (`.name`, `_name`, e.g. the `.sift_trash` folder) are ignored; every other file is
listed as a problem with the reason it was skipped (not a table format, hive-partitioned folder, ...).

The walk starts from the lake root's real path and never follows a symbolic link: a link (to a folder or a file,
inside the lake or out of it) is listed as skipped, and so is a Parquet folder that holds one. Every table's files
are therefore real files under the real root, which `sift contain --apply` relies on to move only what it read.

A `TableRef` names one table found: its name, the files that hold it, its format and its size in bytes. The
containment stage reads tables through these references and never walks the lake itself.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sift.pipelines.core.errors import InputError

PARQUET_EXT = (".parquet", ".parq", ".pq")
CSV_EXT = (".csv", ".csv.gz")
MARKERS = ("_SUCCESS", "_metadata", "_common_metadata")


@dataclass(frozen=True)
class TableRef:
    """One table of the lake: `name` (relative path without extension), its files, format and total bytes."""

    name: str
    paths: tuple[str, ...]
    format: str  # "parquet" or "csv"
    bytes: int
    location: str = field(default="", compare=False)  # the file or folder as found in the lake

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "paths": list(self.paths),
            "format": self.format,
            "bytes": self.bytes,
            "location": self.location,
        }

    @staticmethod
    def from_dict(d: dict) -> TableRef:
        return TableRef(d["name"], tuple(d["paths"]), d["format"], int(d["bytes"]), d.get("location", ""))


def table_from_paths(name: str, paths: Sequence[str], fmt: str, location: str = "") -> TableRef:
    """Build a TableRef, measuring the size of its files."""
    paths = tuple(sorted(str(p) for p in paths))
    return TableRef(
        name, paths, fmt, sum(os.path.getsize(p) for p in paths), location or (paths[0] if paths else "")
    )


def _hidden(name: str) -> bool:
    return name.startswith(".") or name.startswith("_")


def _strip(name: str) -> tuple[str, str]:
    low = name.lower()
    for ext in CSV_EXT + PARQUET_EXT:
        if low.endswith(ext):
            return name[: -len(ext)], ext
    return name, ""


def _parquet_parts(folder: Path) -> list[Path]:
    """The Parquet files under `folder` (not under hidden entries), never through a symbolic link."""
    out = []
    for dirpath, _dirnames, filenames in os.walk(folder):  # os.walk does not descend into linked folders
        rel = Path(dirpath).relative_to(folder).parts
        if any(_hidden(part) for part in rel):
            continue
        out += [
            Path(dirpath, f)
            for f in filenames
            if not _hidden(f)
            and f.lower().endswith(PARQUET_EXT)
            and not os.path.islink(os.path.join(dirpath, f))
        ]
    return sorted(out)


def _links_under(folder: Path) -> list[str]:
    """Symbolic links anywhere under `folder` (relative paths)."""
    found = []
    for dirpath, dirnames, filenames in os.walk(folder):
        for n in dirnames + filenames:
            if os.path.islink(os.path.join(dirpath, n)):
                found.append(Path(dirpath, n).relative_to(folder).as_posix())
    return sorted(found)


def _is_dataset_folder(folder: Path) -> bool:
    entries = list(folder.iterdir())
    if folder.name.lower().endswith(PARQUET_EXT) or any(e.name in MARKERS for e in entries):
        return True
    visible = [e for e in entries if not _hidden(e.name)]
    return bool(visible) and all(
        not e.is_symlink()
        and e.is_file()
        and e.name.startswith("part-")
        and e.name.lower().endswith(PARQUET_EXT)
        for e in visible
    )


def _link_reason(entry: Path, base: Path) -> str:
    target = os.path.realpath(entry)
    inside = target == str(base) or target.startswith(str(base) + os.sep)
    kind = "folder" if os.path.isdir(entry) else "file" if os.path.exists(entry) else "missing target"
    where = "inside" if inside else "outside"
    return f"symlink to a {kind} {where} the lake ({target}): symlinks are never followed, skipped"


def discover_tables(root: str | os.PathLike[str]) -> tuple[list[TableRef], list[dict]]:
    """Every table under `root` and the problems (file, error) of everything else that is not hidden."""
    if not os.path.exists(root):
        raise InputError(f"{root}: lake folder does not exist")
    if not os.path.isdir(root):
        raise InputError(f"{root}: a lake is a folder of Parquet/CSV tables, got a file")
    base = Path(os.path.realpath(root))  # resolved once: every path below is a real path under it
    found: list[tuple[str, str, list[str], str, str]] = []  # (name, ext, paths, format, location)
    problems: list[dict] = []

    def rel(p: Path) -> str:
        return p.relative_to(base).as_posix()

    def walk(folder: Path) -> None:
        for entry in sorted(folder.iterdir(), key=lambda e: e.name):
            if _hidden(entry.name):
                continue
            if entry.is_symlink():
                problems.append({"table": rel(entry), "path": str(entry), "error": _link_reason(entry, base)})
                continue
            if entry.is_dir():
                if _is_dataset_folder(entry):
                    links = _links_under(entry)
                    if links:
                        problems.append(
                            {
                                "table": rel(entry),
                                "path": str(entry),
                                "error": f"Parquet folder holding symlinks ({', '.join(links[:5])}): "
                                "symlinks are never followed, skipped",
                            }
                        )
                        continue
                    if any("=" in d.name for d in entry.iterdir() if d.is_dir()):
                        problems.append(
                            {
                                "table": rel(entry),
                                "path": str(entry),
                                "error": "hive-partitioned Parquet folder: not supported, skipped",
                            }
                        )
                        continue
                    parts = _parquet_parts(entry)
                    if not parts:
                        problems.append(
                            {
                                "table": rel(entry),
                                "path": str(entry),
                                "error": "Parquet folder without Parquet files, skipped",
                            }
                        )
                        continue
                    stem, ext = _strip(rel(entry))
                    found.append((stem, ext, [str(p) for p in parts], "parquet", str(entry)))
                else:
                    walk(entry)
                continue
            stem, ext = _strip(rel(entry))
            if not entry.is_file():
                problems.append(
                    {
                        "table": rel(entry),
                        "path": str(entry),
                        "error": "not a regular file or folder, skipped",
                    }
                )
            elif ext in PARQUET_EXT:
                found.append((stem, ext, [str(entry)], "parquet", str(entry)))
            elif ext in CSV_EXT:
                found.append((stem, ext, [str(entry)], "csv", str(entry)))
            else:
                suffix = entry.suffix or "no extension"
                problems.append(
                    {
                        "table": rel(entry),
                        "path": str(entry),
                        "error": f"not a table ({suffix}; tables are Parquet or CSV), skipped",
                    }
                )

    walk(base)
    counts: dict[str, int] = {}
    for stem, *_ in found:
        counts[stem] = counts.get(stem, 0) + 1
    refs = []
    for stem, ext, paths, fmt, location in found:
        name = stem if counts[stem] == 1 else stem + ext
        try:
            refs.append(table_from_paths(name, paths, fmt, location))
        except OSError as exc:
            problems.append({"table": name, "path": location, "error": f"{type(exc).__name__}: {exc}"})
    return sorted(refs, key=lambda r: r.name), problems
