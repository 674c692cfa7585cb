"""Brute-force containment checker for the R2D2 benchmark (issue 4, "Definition" section).

The reference the benchmark measures Sift's containment step (R2D2 steps 1-3) against. It shares no code with
dedup/containment: for every ordered pair of tables (A, B) whose column names are a subset (A's of B's) with
comparable type classes, it loads both tables, normalises every value and checks directly that the set of distinct
rows of A is a subset of the distinct rows of B projected on A's columns (an anti-join that must come back empty).

Normalisation (the issue's definition): integers and floats compare by numeric value (1 == 1.0), NaN == NULL ==
NULL, booleans are their own class, strings and categoricals compare as exact text, dates and timestamps compare by
instant (a naive timestamp is read as UTC, a date as midnight UTC). Every value becomes a canonical string, so a
pair is compared with one polars anti-join on string columns with ``nulls_equal=True``.

Column matching is by exact name. With ``--case-insensitive``, a column of A without a same-named column in B
matches the one column of B whose name is equal ignoring case (no match when B has several such columns), and the
mapping must be one-to-one: so a table whose names collide ignoring case ("Area", "area") still matches a copy of
itself, whatever the column order.

Tables are discovered with the lake's convention: every ``*.parquet`` file, every ``*.parquet`` folder of part
files, and every ``*.csv`` file, named by the path relative to the lake root without the extension.

Usage: ``python bench/contain_brute.py LAKE --output pairs.parquet [--case-insensitive] [--json stats.json]``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

# ---------------------------------------------------------------------------------------------------------------
# discovery


@dataclass(frozen=True)
class TableRef:
    """One table of the lake: its name (relative path without extension), format and file paths."""

    name: str
    fmt: str  # "parquet" | "parquet_dir" | "csv"
    paths: tuple[str, ...]


def discover(lake: str | os.PathLike[str]) -> list[TableRef]:
    """Every Parquet file, Parquet folder (``NAME.parquet/part-*.parquet``) and CSV under ``lake``, sorted by name."""
    root = Path(lake)
    refs: list[TableRef] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith((".", "_")))
        here = Path(dirpath)
        for d in list(dirnames):
            if d.endswith(".parquet"):
                parts = sorted(str(p) for p in (here / d).glob("*.parquet") if p.is_file())
                name = (here / d).relative_to(root).as_posix()[: -len(".parquet")]
                refs.append(TableRef(name, "parquet_dir", tuple(parts)))
                dirnames.remove(d)
        for f in sorted(filenames):
            if f.startswith((".", "_")):
                continue
            rel = (here / f).relative_to(root).as_posix()
            if f.endswith(".parquet"):
                refs.append(TableRef(rel[: -len(".parquet")], "parquet", (str(here / f),)))
            elif f.endswith(".csv"):
                refs.append(TableRef(rel[: -len(".csv")], "csv", (str(here / f),)))
    return sorted(refs, key=lambda r: r.name)


def read_arrow(ref: TableRef, columns: list[str] | None = None) -> pa.Table:
    """The table as Arrow (only ``columns`` where given), read the plain way: no statistics, no pruning."""
    if ref.fmt == "csv":
        frame = read_csv(ref.paths[0])
        return (frame.select(columns) if columns is not None else frame).to_arrow()
    if ref.fmt == "parquet_dir":
        schema = pq.read_schema(ref.paths[0])
        if columns is not None:
            schema = pa.schema([schema.field(c) for c in columns])
        tables = [pq.read_table(p, columns=columns).cast(schema) for p in ref.paths]
        return pa.concat_tables(tables) if tables else schema.empty_table()
    return pq.read_table(ref.paths[0], columns=columns)


def read_schema(ref: TableRef) -> pa.Schema:
    """A table's Arrow schema: the footer for Parquet; CSV is read whole since its types are inferred."""
    if ref.fmt == "csv":
        return read_csv(ref.paths[0]).to_arrow().schema
    return pq.read_schema(ref.paths[0])


def read_csv(path: str) -> pl.DataFrame:
    """A CSV read with types inferred from the whole file; empty fields are NULL."""
    return pl.read_csv(path, infer_schema_length=None)


# ---------------------------------------------------------------------------------------------------------------
# type classes and value normalisation


def type_class(dtype: pa.DataType) -> str:
    """The comparability class of an Arrow type: only columns of the same class can be contained in each other."""
    if pa.types.is_dictionary(dtype):
        return type_class(dtype.value_type)
    if pa.types.is_integer(dtype) or pa.types.is_floating(dtype) or pa.types.is_decimal(dtype):
        return "numeric"
    if pa.types.is_boolean(dtype):
        return "bool"
    if pa.types.is_string(dtype) or pa.types.is_large_string(dtype) or pa.types.is_string_view(dtype):
        return "string"
    if pa.types.is_date(dtype) or pa.types.is_timestamp(dtype):
        return "instant"
    if pa.types.is_null(dtype):
        return "null"
    return f"other:{dtype}"


_INT_LIMIT = float(2**63)


def _normalise_expr(name: str, dtype: pl.DataType) -> pl.Expr:
    """A polars expression turning one column into canonical strings (NULL stays NULL)."""
    col = pl.col(name)
    if dtype.is_integer():
        return col.cast(pl.String)
    if dtype.is_float() or dtype.is_decimal():
        x = col.cast(pl.Float64)
        integral = (x == x.floor()) & (x.abs() < _INT_LIMIT)
        return (
            pl.when(x.is_nan())
            .then(pl.lit(None, pl.String))
            .when(integral)
            .then(x.cast(pl.Int64).cast(pl.String))
            .otherwise(x.cast(pl.String))
        )
    if dtype == pl.Boolean:
        return col.cast(pl.String)
    if dtype in (pl.String, pl.Categorical) or isinstance(dtype, pl.Enum | pl.Categorical):
        return col.cast(pl.String)
    if dtype == pl.Date:
        return col.cast(pl.Datetime("us")).dt.timestamp("us").cast(pl.String) + pl.lit(".0")
    if isinstance(dtype, pl.Datetime):
        if dtype.time_zone is not None:
            col = col.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
        sub = (col.dt.timestamp("ns") % 1000) if dtype.time_unit == "ns" else pl.lit(0)
        return col.dt.timestamp("us").cast(pl.String) + pl.lit(".") + sub.cast(pl.String)
    if dtype == pl.Null:
        return pl.lit(None, pl.String)
    # other types (time, duration, binary, nested): their own class, compared through a text rendering
    return col.map_elements(lambda v: repr(v), return_dtype=pl.String)


def normalise(frame: pl.DataFrame) -> pl.DataFrame:
    """Every column as canonical strings, then the distinct rows."""
    if frame.width == 0:
        return frame
    out = frame.select([_normalise_expr(n, d).alias(n) for n, d in frame.schema.items()])
    return out.unique(maintain_order=False)


@dataclass
class Loaded:
    """A table's column classes (by column name) and its distinct normalised rows."""

    ref: TableRef
    classes: dict[str, str]
    rows: pl.DataFrame
    error: str | None = None


def load_schema(ref: TableRef) -> Loaded:
    """Only a table's column classes (no rows). A table that cannot be read gets ``error``."""
    try:
        schema = read_schema(ref)
    except Exception as exc:  # noqa: BLE001 - unreadable tables are reported, not fatal
        return Loaded(ref, {}, pl.DataFrame(), error=f"{type(exc).__name__}: {exc}")
    if len(set(schema.names)) != len(schema.names):
        return Loaded(ref, {}, pl.DataFrame(), error="duplicate column names")
    return Loaded(ref, {f.name: type_class(f.type) for f in schema}, pl.DataFrame())


def load(ref: TableRef, columns: list[str] | None = None) -> Loaded:
    """Read and normalise one table (only ``columns`` where given)."""
    try:
        table = read_arrow(ref, columns)
    except Exception as exc:  # noqa: BLE001 - unreadable tables are reported, not fatal
        return Loaded(ref, {}, pl.DataFrame(), error=f"{type(exc).__name__}: {exc}")
    if len(set(table.column_names)) != len(table.column_names):
        return Loaded(ref, {}, pl.DataFrame(), error="duplicate column names")
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    return Loaded(ref, {f.name: type_class(f.type) for f in table.schema}, normalise(frame))


def _comparable(x: str, y: str) -> bool:
    return x == y or "null" in (x, y)


def column_mapping(
    a: dict[str, str],
    b: dict[str, str],
    case_insensitive: bool = False,
    b_lower: dict[str, list[str]] | None = None,
) -> dict[str, str] | None:
    """Which column of B each column of A is, or None when some column of A has no comparable partner in B.

    A column matches the column of B with the same name. With ``case_insensitive``, a column without such a
    partner matches the one column of B whose name is equal ignoring case (none when B has several); the mapping
    must be one-to-one. An all-NULL column is comparable with any class (its values are all NULL).
    """
    mapping: dict[str, str] = {}
    for name, cls in a.items():
        partner = name if name in b else None
        if partner is None and case_insensitive:
            lowered = (
                b_lower.get(name.lower(), [])
                if b_lower is not None
                else [n for n in b if n.lower() == name.lower()]
            )
            partner = lowered[0] if len(lowered) == 1 else None
        if partner is None or not _comparable(cls, b[partner]):
            return None
        mapping[name] = partner
    if len(set(mapping.values())) != len(mapping):
        return None
    return mapping


def rows_contained(a: pl.DataFrame, b: pl.DataFrame, mapping: dict[str, str]) -> bool:
    """Distinct rows of A (already distinct) all occur in B's columns ``mapping[c]`` for A's columns ``c``."""
    if a.height == 0:
        return True
    if b.height == 0:
        return False
    columns = list(mapping)
    proj = b.select([pl.col(mapping[c]).alias(c) for c in columns]).unique()
    missing = a.select(columns).join(proj, on=columns, how="anti", nulls_equal=True)
    return missing.height == 0


# ---------------------------------------------------------------------------------------------------------------
# the pairwise check


class _Cache:
    """Loaded tables, least recently used dropped beyond a byte budget."""

    def __init__(self, refs: dict[str, TableRef], budget_bytes: int) -> None:
        self.refs = refs
        self.budget = budget_bytes
        self.items: OrderedDict[str, Loaded] = OrderedDict()
        self.size = 0
        self.loads = 0

    def get(self, name: str) -> Loaded:
        hit = self.items.get(name)
        if hit is not None:
            self.items.move_to_end(name)
            return hit
        loaded = load(self.refs[name])
        self.loads += 1
        nbytes = int(loaded.rows.estimated_size()) if loaded.rows.width else 0
        self.items[name] = loaded
        self.size += nbytes
        while self.size > self.budget and len(self.items) > 1:
            _, old = self.items.popitem(last=False)
            self.size -= int(old.rows.estimated_size()) if old.rows.width else 0
        return loaded


def brute_force(
    lake: str | os.PathLike[str],
    *,
    case_insensitive: bool = False,
    cached: bool = False,
    cache_bytes: int = 3 << 30,
    progress: bool = False,
) -> tuple[pa.Table, dict]:
    """All ordered pairs (contained, container) of distinct tables of ``lake``, and counters and timings.

    Default (literal pairwise) mode: for each schema-compatible pair, read A whole and B's columns that A has from
    disk, normalise both and anti-join; nothing is kept between pairs. ``cached=True``: every table is read and
    normalised once and kept in memory (least recently used dropped beyond ``cache_bytes``), so each pair costs
    only the projection of B and the anti-join.
    """
    t0 = time.perf_counter()
    refs = {r.name: r for r in discover(lake)}
    names = sorted(refs)
    cache = _Cache(refs, cache_bytes)
    schemas: dict[str, Loaded] = {}
    errors: dict[str, str] = {}
    for n in names:
        loaded = cache.get(n) if cached else load_schema(refs[n])
        if loaded.error:
            errors[n] = loaded.error
        else:
            schemas[n] = loaded
    t_load = time.perf_counter() - t0
    ok = [n for n in names if n in schemas]
    lower: dict[str, dict[str, list[str]]] = {}
    for n in ok:
        groups: dict[str, list[str]] = {}
        for c in schemas[n].classes:
            groups.setdefault(c.lower(), []).append(c)
        lower[n] = groups
    candidates: list[tuple[str, str, dict[str, str]]] = []
    for a in ok:
        for b in ok:
            if a != b:
                m = column_mapping(schemas[a].classes, schemas[b].classes, case_insensitive, lower[b])
                if m is not None:
                    candidates.append((a, b, m))
    t_schema = time.perf_counter() - t0 - t_load
    rows: list[tuple[str, str, str]] = []
    loads = 0
    for i, (a, b, mapping) in enumerate(candidates):
        if cached:
            ra, rb = cache.get(a).rows, cache.get(b).rows
        else:
            la = load(refs[a])
            lb = load(refs[b], list(dict.fromkeys(mapping.values())))
            loads += 2
            if la.error or lb.error:
                errors[a if la.error else b] = str(la.error or lb.error)
                continue
            ra, rb = la.rows, lb.rows
        if rows_contained(ra, rb, mapping):
            rows.append((a, b, json.dumps(list(mapping))))
        if progress and i % 2000 == 0:
            print(f"  brute force: {i}/{len(candidates)} pairs", file=sys.stderr, flush=True)
    t_total = time.perf_counter() - t0
    result = pa.table(
        {
            "contained": pa.array([r[0] for r in rows], pa.string()),
            "container": pa.array([r[1] for r in rows], pa.string()),
            "columns": pa.array([r[2] for r in rows], pa.string()),
        }
    )
    stats = {
        "mode": "cached" if cached else "pairwise",
        "tables": len(names),
        "unreadable": errors,
        "ordered_pairs": len(ok) * (len(ok) - 1),
        "schema_candidates": len(candidates),
        "contained_pairs": len(rows),
        "table_loads": cache.loads if cached else loads,
        "seconds": {
            "schemas": t_load,
            "pairs": t_schema,
            "content": t_total - t_load - t_schema,
            "total": t_total,
        },
        "case_insensitive": case_insensitive,
    }
    return result, stats


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("lake")
    parser.add_argument("--output", required=True, help="Parquet file for the (contained, container) pairs")
    parser.add_argument("--json", help="write counters and timings here")
    parser.add_argument("--case-insensitive", action="store_true")
    parser.add_argument("--cached", action="store_true", help="read each table once and keep it in memory")
    parser.add_argument("--cache-gb", type=float, default=3.0)
    parser.add_argument("--progress", action="store_true")
    args = parser.parse_args(argv)
    if not Path(args.lake).is_dir():
        print(f"error: lake {args.lake!r} is not a directory", file=sys.stderr)
        return 2
    result, stats = brute_force(
        args.lake,
        case_insensitive=args.case_insensitive,
        cached=args.cached,
        cache_bytes=int(args.cache_gb * (1 << 30)),
        progress=args.progress,
    )
    pq.write_table(result, args.output)
    text = json.dumps(stats, indent=2, sort_keys=True)
    if args.json:
        Path(args.json).write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
