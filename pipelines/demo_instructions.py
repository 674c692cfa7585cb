"""Instruction data with known capability groups, from real text that every machine has offline: the PASER
selection tests, the embedder benchmark and the recovery benchmark use it. Each group is a different kind of task
built on a different real source.

- `code`: explain a standard-library function, answered by its docstring (Python's own source files);
- `licence`: explain a clause of an installed package's licence file, answered by the clause;
- `timezone`: which time zone a region uses (the tz database's zone1970.tab and iso3166.tab, from tzdata);
- `unicode`: which character a Unicode name denotes (Python's unicodedata).
"""

from __future__ import annotations

import ast
import importlib.metadata as md
import sysconfig
import unicodedata
from pathlib import Path

GROUPS = ("code", "licence", "timezone", "unicode")


def _code(n: int) -> list[dict[str, str]]:
    root = Path(sysconfig.get_paths()["stdlib"])
    out: list[dict[str, str]] = []
    for name in ("json", "os", "shutil", "textwrap", "string", "random", "statistics", "fractions", "heapq",
                 "bisect", "calendar", "base64", "difflib", "glob", "fnmatch", "tempfile", "csv", "gzip"):  # fmt: skip
        path = root / f"{name}.py"
        if not path.exists():
            path = root / name / "__init__.py"
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
                doc = ast.get_docstring(node)
                if doc and len(doc) > 60:
                    out.append({
                        "instruction": f"Explain what the Python function {name}.{node.name} does and how to call it.",
                        "output": doc.split("\n\n")[0],
                    })  # fmt: skip
        if len(out) >= n:
            break
    return out[:n]


def _licence(n: int) -> list[dict[str, str]]:
    seen: set[str] = set()
    out: list[dict[str, str]] = []
    for dist in sorted(md.distributions(), key=lambda d: (d.metadata["Name"] or "").lower()):
        for file in sorted(dist.files or [], key=str):
            if not file.name.upper().startswith(("LICENSE", "LICENCE", "COPYING")):
                continue
            try:
                text = file.locate().read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                continue
            for para in text.split("\n\n"):
                clause = " ".join(para.split())
                if len(clause) > 150 and clause not in seen:
                    seen.add(clause)
                    out.append({
                        "instruction": "Explain in plain words what this software licence clause permits or forbids.",
                        "input": clause,
                        "output": clause[:300],
                    })  # fmt: skip
                    if len(out) >= n:
                        return out
    return out


def _tz_root() -> Path:
    import tzdata

    return Path(tzdata.__file__).parent / "zoneinfo"


def _timezone(n: int) -> list[dict[str, str]]:
    root = _tz_root()
    countries = {}
    for line in (root / "iso3166.tab").read_text().splitlines():
        if line and not line.startswith("#"):
            code, name = line.split("\t", 1)
            countries[code] = name
    out = []
    for line in (root / "zone1970.tab").read_text().splitlines():
        if line.startswith("#"):
            continue
        parts = line.split("\t")
        if len(parts) >= 3:
            names = [countries.get(c, c) for c in parts[0].split(",")]
            region = parts[3] if len(parts) > 3 else "all of the country"
            out.append({
                "instruction": f"Which IANA time zone should a computer in {names[0]} ({region}) be set to?",
                "output": f"Use the time zone {parts[2]}.",
            })  # fmt: skip
    return out[:n]


def _unicode(n: int) -> list[dict[str, str]]:
    out = []
    for cp in range(0x00C0, 0x3000):
        name = unicodedata.name(chr(cp), "")
        if name and unicodedata.category(chr(cp)).startswith("L"):
            out.append({
                "instruction": f"Which character has the Unicode name {name}?",
                "output": f"It is {chr(cp)} (U+{cp:04X}).",
            })  # fmt: skip
        if len(out) >= n * 7:
            break
    return out[::7][:n]


def instructions(per_group: int = 60) -> list[dict[str, str]]:
    """`per_group` instructions of each group, interleaved, with `id`, `group`, `instruction`, `input`, `output`."""
    groups = {"code": _code, "licence": _licence, "timezone": _timezone, "unicode": _unicode}
    lists = {g: groups[g](per_group) for g in GROUPS}
    for g, items in lists.items():
        if len(items) < per_group:
            raise ValueError(f"only {len(items)} {g} instructions on this machine, asked for {per_group}")
    rows = []
    for i in range(per_group):
        for g in GROUPS:
            item = lists[g][i]
            rows.append({"id": f"{g}-{i:03d}", "group": g, "instruction": item["instruction"],
                         "input": item.get("input", ""), "output": item["output"]})  # fmt: skip
    return rows


MORE_GROUPS = ("mime", "calendar")


def _mime(n: int) -> list[dict[str, str]]:
    import mimetypes

    mimetypes.init()  # the system's mime.types where there is one, and Python's own table
    table = sorted(mimetypes.types_map.items())
    step = max(1, len(table) // max(n, 1))
    return [
        {
            "instruction": f"Which media (MIME) type should a web server send for a file ending in {ext}?",
            "output": f"Files ending in {ext} are served as {kind}.",
        }
        for ext, kind in table[::step][:n]
    ]


def _calendar(n: int) -> list[dict[str, str]]:
    import datetime as dt

    out = []
    for i in range(n):
        day = dt.date(1901, 3, 7) + dt.timedelta(days=397 * i + 13 * (i % 7))
        text = f"{day.day} {day:%B} {day.year}"
        out.append({
            "instruction": f"On which day of the week did {text} fall?",
            "output": f"{text} was a {day:%A} (day {day.timetuple().tm_yday} of the year).",
        })  # fmt: skip
    return out


def more_instructions(per_group: int = 60, groups: tuple[str, ...] = MORE_GROUPS) -> list[dict[str, str]]:
    """`per_group` instructions of each further group, interleaved, with the columns of `instructions()`:

    - `mime`: which media type a file extension is served as (Python's mimetypes table, with the system's
      mime.types where installed);
    - `calendar`: on which weekday a date fell, and its day of the year (a calculation, answered by the calendar).
    """
    makers = {"mime": _mime, "calendar": _calendar}
    unknown = [g for g in groups if g not in makers]
    if unknown:
        raise ValueError(f"unknown instruction groups {unknown}; known: {', '.join(makers)}")
    lists = {g: makers[g](per_group) for g in groups}
    for g, items in lists.items():
        if len(items) < per_group:
            raise ValueError(f"only {len(items)} {g} instructions on this machine, asked for {per_group}")
    return [
        {
            "id": f"{g}-{i:03d}",
            "group": g,
            "instruction": lists[g][i]["instruction"],
            "input": "",
            "output": lists[g][i]["output"],
        }
        for i in range(per_group)
        for g in groups
    ]
