"""R2D2 step 2: min-max pruning from metadata alone.

Per table and column we keep the row count, NULL count, [min, max] and (where it is known exactly) the number of
distinct values. For Parquet these come from the footers only, no data page is read; CSV files carry no metadata,
so their statistics are computed once from the data and cached on disk as JSON with a schema version (keyed by
path, size and mtime; JSON because a cache folder may be shared, and reading it must never run a writer's code).

A candidate pair A -> B is pruned when, for some shared column, A's values cannot all appear in B:
A's [min, max] is not inside B's, A has NULLs and B has none, A has values and B has none, A has more distinct
values than B has rows (or distinct values). Parquet footers written by other writers than Arrow's may carry
truncated string bounds: those count only as bounds (a truncated min is a lower bound, a truncated max an upper
bound), never as exact values. Float footers ignore NaN, which normalises to NULL, so a float column of B is never
known to be free of NULLs from its footer.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pyarrow.types as pt

from sift.dedup.containment.kernels import canonical
from sift.dedup.containment.schema import BIN, BOOL, DEC, NUM, STR, TIME, TableSchema
from sift.dedup.containment.tables import TableRef, parquet_metadata, read_table
from sift.pipelines.core.atomic import write_text

_BOUNDED = (NUM, BOOL, STR, TIME, BIN, DEC)


@dataclass
class ColumnStats:
    nulls: int | None = None  # NULL count (None = unknown)
    nulls_exact: bool = False  # True when `nulls` also counts NaN (so nulls == 0 means no normalised NULL)
    min_lo: Any = None  # lower bound of the smallest non-NULL value
    min_hi: Any = None  # upper bound of the smallest non-NULL value
    max_lo: Any = None
    max_hi: Any = None
    distinct: int | None = None  # exact number of distinct normalised values incl. NULL, where known
    empty: bool | None = None  # True when the column has no non-NULL value


@dataclass
class TableStats:
    rows: int
    columns: list[ColumnStats] = field(default_factory=list)
    source: str = "footer"

    def to_json(self) -> dict:
        """A JSON-ready dict (bytes, decimals and tuples tagged so that `from_json` gives back the same values)."""
        return {
            "rows": self.rows,
            "source": self.source,
            "columns": [{k: _encode(v) for k, v in vars(c).items()} for c in self.columns],
        }

    @staticmethod
    def from_json(d: dict) -> TableStats:
        cols = [ColumnStats(**{k: _decode(v) for k, v in c.items()}) for c in d["columns"]]
        return TableStats(rows=int(d["rows"]), columns=cols, source=d["source"])


STATS_SCHEMA_VERSION = 1  # of the JSON written by TableStats.to_json (the CSV statistics cache, hand-offs)


def _encode(v: Any) -> Any:
    if v is None or isinstance(v, bool | int | float | str):
        return v
    if isinstance(v, bytes):
        return {"bytes": v.hex()}
    if isinstance(v, Decimal):
        return {"decimal": str(v)}
    if isinstance(v, tuple):
        return {"tuple": [_encode(x) for x in v]}
    raise TypeError(f"cannot store a statistic of type {type(v).__name__}")


def _decode(v: Any) -> Any:
    if isinstance(v, dict):
        if "bytes" in v:
            return bytes.fromhex(v["bytes"])
        if "decimal" in v:
            return Decimal(v["decimal"])
        return tuple(_decode(x) for x in v["tuple"])
    return v


def _stat_value(v: Any, klass: str, arrow_type: pa.DataType) -> Any:
    """A footer min/max as a value comparable within its class (None when it cannot be used)."""
    if v is None:
        return None
    if klass == NUM:
        if isinstance(v, float) and v != v:
            return None
        return v if isinstance(v, int | float) and not isinstance(v, bool) else None
    if klass == BOOL:
        return int(bool(v))
    if klass == STR:
        return v.encode() if isinstance(v, str) else bytes(v)
    if klass == BIN:
        return bytes(v) if isinstance(v, bytes | bytearray) else v.encode()
    if klass == DEC:
        return v if isinstance(v, Decimal) else None
    if klass == TIME:
        try:
            t = arrow_type.value_type if pt.is_dictionary(arrow_type) else arrow_type
            words = canonical(pa.array([v], type=t), TIME).words
            assert words is not None  # a TIME column normalises to words
            return (int(words[0, 0]), int(words[0, 1]))
        except (pa.ArrowException, TypeError, ValueError, OverflowError):
            return None
    return None


def _exact_strings(created_by: str | None) -> bool:
    # Arrow's writer drops over-long string statistics instead of truncating them.
    return created_by is not None and created_by.startswith("parquet-cpp")


def parquet_stats(ref: TableRef, ts: TableSchema) -> TableStats:
    """Table statistics from the Parquet footers of every file of the table (no data pages)."""
    ncol = len(ts.columns)
    rows = 0
    acc: list[dict] = [
        {"nulls": 0, "nulls_known": True, "min": [], "max": [], "known": True, "nonempty_groups": 0}
        for _ in range(ncol)
    ]
    exact_strings = True
    for p in ref.paths:
        md = parquet_metadata(p)
        rows += md.num_rows
        exact_strings = exact_strings and _exact_strings(md.created_by)
        leaf_of = _leaf_index(md, ts)
        for g in range(md.num_row_groups):
            rg = md.row_group(g)
            if rg.num_rows == 0:
                continue
            for ci, c in enumerate(ts.columns):
                a = acc[ci]
                li = leaf_of[ci]
                st = rg.column(li).statistics if li is not None else None
                if st is None:
                    a["nulls_known"] = False
                    a["known"] = False
                    continue
                if st.has_null_count:
                    a["nulls"] += st.null_count
                else:
                    a["nulls_known"] = False
                if st.has_null_count and st.null_count == rg.num_rows:
                    continue  # all NULL in this group: no min/max expected
                if not st.has_min_max or c.klass not in _BOUNDED:
                    a["known"] = False
                    continue
                lo, hi = _stat_value(st.min, c.klass, c.type), _stat_value(st.max, c.klass, c.type)
                if lo is None or hi is None:
                    a["known"] = False
                    continue
                a["min"].append(lo)
                a["max"].append(hi)
    out = TableStats(rows=rows, source="footer")
    for ci, c in enumerate(ts.columns):
        a = acc[ci]
        cs = ColumnStats()
        if a["nulls_known"]:
            cs.nulls = a["nulls"]
            is_float = pt.is_floating(c.type.value_type if pt.is_dictionary(c.type) else c.type)
            cs.nulls_exact = not is_float
            if cs.nulls == rows:
                cs.empty = True
        if a["known"] and a["min"]:
            lo, hi = min(a["min"]), max(a["max"])
            if c.klass in (STR, BIN) and not exact_strings:
                cs.min_lo, cs.max_hi = lo, hi  # truncated bounds: only the safe directions
            else:
                cs.min_lo = cs.min_hi = lo
                cs.max_lo = cs.max_hi = hi
            cs.empty = False
        out.columns.append(cs)
    return out


def _leaf_index(md: pq.FileMetaData, ts: TableSchema) -> list[int | None]:
    """Footer column chunk of each top-level column (None for nested columns, which have several leaves)."""
    paths = [md.schema.column(i).path for i in range(md.num_columns)]
    top = [p.split(".")[0] for p in paths]
    out: list[int | None] = []
    used: dict[str, int] = {}
    by_top: dict[str, list[int]] = {}
    for i, t in enumerate(top):
        by_top.setdefault(t, []).append(i)
    for c in ts.columns:
        hits = by_top.get(c.name, [])
        k = used.get(c.name, 0)
        used[c.name] = k + 1
        if len(hits) == 1 and paths[hits[0]] == c.name:
            out.append(hits[0])
        elif len(hits) > 1 and all(paths[i] == c.name for i in hits) and k < len(hits):
            out.append(hits[k])  # duplicated flat column names: the k-th occurrence
        else:
            out.append(None)
    return out


def _distinct_rows(w: np.ndarray) -> int:
    """Exact number of distinct rows of an int64 matrix. Constant columns (a number column's type tag, mostly)
    are skipped; the rest are sorted together and the changes between neighbours counted, in numpy (faster than
    a Polars DataFrame up to a million rows, and one column at any size), else by Polars' n_unique."""
    n, k = w.shape
    if n == 0:
        return 0
    cols = [w[:, j] for j in range(k) if not (w[:, j] == w[0, j]).all()]
    if not cols:
        return 1
    if len(cols) == 1:
        s = np.sort(cols[0])
        return 1 + int(np.count_nonzero(s[1:] != s[:-1]))
    if n > 1_000_000:
        import polars as pl  # imported here: 0.2 s that a lake of smaller tables never pays

        return pl.DataFrame(np.column_stack(cols), orient="row").n_unique()
    order = np.lexsort(cols[::-1])
    changed = np.zeros(n - 1, dtype=bool)
    for c in cols:
        s = c[order]
        changed |= s[1:] != s[:-1]
    return 1 + int(np.count_nonzero(changed))


def computed_stats(table: pa.Table, ts: TableSchema) -> TableStats:
    """Exact statistics computed from the data (for formats without footers, e.g. CSV)."""
    out = TableStats(rows=table.num_rows, source="computed")
    for c in ts.columns:
        canon = canonical(table.column(c.position), c.klass)
        cs = ColumnStats(nulls=int((~canon.valid).sum()), nulls_exact=True)
        nonnull = int(canon.valid.sum())
        cs.empty = nonnull == 0
        if canon.words is not None:
            w = canon.words[canon.valid]
            distinct = _distinct_rows(w)
            if len(w) and c.klass in (BOOL, TIME):
                vals = [tuple(int(x) for x in r) for r in w] if c.klass == TIME else [int(x) for x in w[:, 0]]
                cs.min_lo = cs.min_hi = min(vals)
                cs.max_lo = cs.max_hi = max(vals)
            elif len(w) and c.klass == NUM:
                col = table.column(c.position)
                if pt.is_dictionary(col.type):
                    col = col.cast(col.type.value_type)
                mm = pc.min_max(col.cast(pa.float64()) if pt.is_floating(col.type) else col)
                lo, hi = mm["min"].as_py(), mm["max"].as_py()
                if lo is not None and hi is not None and lo == lo and hi == hi:
                    cs.min_lo = cs.min_hi = lo
                    cs.max_lo = cs.max_hi = hi
        else:
            assert canon.blobs is not None  # a column without words normalises to blobs
            blobs = canon.blobs.filter(pa.array(canon.valid))
            distinct = pc.count_distinct(blobs).as_py() if len(blobs) else 0
            if len(blobs) and c.klass in (STR, BIN):
                vals = blobs.to_pylist()
                cs.min_lo = cs.min_hi = min(vals)
                cs.max_lo = cs.max_hi = max(vals)
        cs.distinct = distinct + (1 if cs.nulls else 0)
        out.columns.append(cs)
    return out


def table_stats(
    ref: TableRef, ts: TableSchema, cache_dir: str | None = None, table: pa.Table | None = None
) -> TableStats:
    """Statistics of one table: Parquet footers, or computed once for CSV and cached in `cache_dir` (from
    `table` when the caller already read it)."""
    if ref.format == "parquet":
        return parquet_stats(ref, ts)
    key = None
    if cache_dir:
        sig = [(p, os.path.getsize(p), os.stat(p).st_mtime_ns) for p in ref.paths] + [
            [c.key for c in ts.columns]
        ]
        key = os.path.join(cache_dir, hashlib.sha256(repr(sig).encode()).hexdigest()[:32] + ".json")
        cached = _load_cached(key)
        if cached is not None:
            return cached
    st = computed_stats(read_table(ref) if table is None else table, ts)
    if key:
        try:
            text = json.dumps({"schema_version": STATS_SCHEMA_VERSION, "stats": st.to_json()})
        except TypeError:  # a value the cache cannot hold: computed again next time
            return st
        write_text(text, key)
    return st


def _load_cached(path: str) -> TableStats | None:
    """A cached statistics file, or None when it is missing, unreadable or of another schema version."""
    try:
        with open(path) as f:
            d = json.load(f)
        if d.get("schema_version") != STATS_SCHEMA_VERSION:
            return None
        return TableStats.from_json(d["stats"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _lt(a: Any, b: Any) -> bool:
    return a is not None and b is not None and a < b


def prune_reason(a: TableSchema, sa: TableStats, b: TableSchema, sb: TableStats) -> str | None:
    """Why A cannot be contained in B judging by statistics alone, or None when it may be."""
    if sa.rows > 0 and sb.rows == 0:
        return "rows: A has rows, B is empty"
    for c in a.columns:
        d = b.by_key[c.key]
        ca, cb = sa.columns[c.position], sb.columns[d.position]
        if ca.nulls and cb.nulls == 0 and cb.nulls_exact:
            return f"nulls: {c.name}"
        if ca.empty is False and cb.empty is True:
            return f"values: {c.name} has values in A, none in B"
        if ca.distinct is not None and ca.distinct > sb.rows:
            return f"distinct: {c.name} has more distinct values in A than B has rows"
        if ca.distinct is not None and cb.distinct is not None and ca.distinct > cb.distinct:
            return f"distinct: {c.name}"
        if c.klass != d.klass:
            continue
        amin_hi = ca.min_hi if ca.min_hi is not None else ca.max_hi
        amax_lo = ca.max_lo if ca.max_lo is not None else ca.min_lo
        try:
            if _lt(amin_hi, cb.min_lo) or _lt(cb.max_hi, amax_lo):
                return f"minmax: {c.name}"
        except TypeError:
            continue
    return None


def stats_rows(name: str, ts: TableSchema, st: TableStats) -> list[dict]:
    """Flat rows for the table_statistics output (values rendered as text)."""
    out = []
    for c in ts.columns:
        cs = st.columns[c.position]

        def txt(v: Any) -> str | None:
            if v is None:
                return None
            return v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)

        out.append(
            {
                "table": name,
                "column": c.name,
                "key": c.key,
                "type": str(c.type),
                "class": c.klass,
                "rows": st.rows,
                "nulls": cs.nulls,
                "min": txt(cs.min_lo if cs.min_hi is not None else None),
                "max": txt(cs.max_hi if cs.max_lo is not None else None),
                "distinct": cs.distinct,
                "source": st.source,
            }
        )
    return out
