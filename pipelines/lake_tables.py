"""Discovering the tables of a data lake for R2D2 containment (the paper's input: every table of the lake).

A table is a Parquet file, a folder of Parquet part files (a folder named `*.parquet`, or one holding `_SUCCESS` /
`_metadata` markers, or holding only `part-*` Parquet files), or a CSV file (`.csv`, `.csv.gz`). Its name is its
path relative to the lake root without the extension (when two tables would share a name, both keep their
extension). Hidden entries (`.name`, `_name`, e.g. the `.sift_trash` folder) are ignored; every other file is
listed as a problem with the reason it was skipped (not a table format, hive-partitioned folder, ...).
"""

from __future__ import annotations

import os
from pathlib import Path

from dedup.containment.tables import TableRef, table_from_paths
from pipelines.errors import InputError

PARQUET_EXT = (".parquet", ".parq", ".pq")
CSV_EXT = (".csv", ".csv.gz")
MARKERS = ("_SUCCESS", "_metadata", "_common_metadata")


def _hidden(name: str) -> bool:
    return name.startswith(".") or name.startswith("_")


def _strip(name: str) -> tuple[str, str]:
    low = name.lower()
    for ext in CSV_EXT + PARQUET_EXT:
        if low.endswith(ext):
            return name[: -len(ext)], ext
    return name, ""


def _parquet_parts(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file()
        and p.name.lower().endswith(PARQUET_EXT)
        and not any(_hidden(part) for part in p.relative_to(folder).parts)
    )


def _is_dataset_folder(folder: Path) -> bool:
    entries = list(folder.iterdir())
    if folder.name.lower().endswith(PARQUET_EXT) or any(e.name in MARKERS for e in entries):
        return True
    visible = [e for e in entries if not _hidden(e.name)]
    return bool(visible) and all(
        e.is_file() and e.name.startswith("part-") and e.name.lower().endswith(PARQUET_EXT) for e in visible
    )


def discover_tables(root: str | os.PathLike[str]) -> tuple[list[TableRef], list[dict]]:
    """Every table under `root` and the problems (file, error) of everything else that is not hidden."""
    base = Path(root)
    if not base.exists():
        raise InputError(f"{root}: lake folder does not exist")
    if not base.is_dir():
        raise InputError(f"{root}: a lake is a folder of Parquet/CSV tables, got a file")
    found: list[tuple[str, str, list[str], str, str]] = []  # (name, ext, paths, format, location)
    problems: list[dict] = []

    def rel(p: Path) -> str:
        return p.relative_to(base).as_posix()

    def walk(folder: Path) -> None:
        for entry in sorted(folder.iterdir(), key=lambda e: e.name):
            if _hidden(entry.name):
                continue
            if entry.is_dir():
                if _is_dataset_folder(entry):
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
            if ext in PARQUET_EXT:
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
