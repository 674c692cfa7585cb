"""R2D2 containment (issue 4): the Polars engine against a brute-force pairwise checker on a lake of real tables
with row subsets, column projections, shuffled copies, near misses, type variants, NULLs and empty tables; the
deletion plan's invariants; exact rebuilds; and `--apply` keeping every table it cannot rebuild."""

from __future__ import annotations

import datetime as dt
import json
import math
import os
from decimal import Decimal
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pyarrow.types as pt
import pytest

from sift.dedup.containment.api import rebuild_table, run_contain
from sift.dedup.containment.config import ContainConfig
from sift.pipelines.core.lake.tables import discover_tables

# ---------------------------------------------------------------------------------------------------------------
# the lake


def base_table(docs: pa.Table, n: int = 300) -> pa.Table:
    """Per-document facts of real documents: strings, ints, floats, booleans, dates, timestamps."""
    docs = docs.slice(0, n)
    text = docs.column("text").to_pylist()
    n_chars = [len(t) for t in text]
    n_words = [len(t.split()) for t in text]
    return pa.table(
        {
            "id": docs.column("id"),
            "source": docs.column("source"),
            "n_chars": pa.array(n_chars, pa.int64()),
            "n_words": pa.array(n_words, pa.int32()),
            "ratio": pa.array([w / max(c, 1) for w, c in zip(n_words, n_chars, strict=True)], pa.float64()),
            "has_digit": pa.array([any(ch.isdigit() for ch in t) for t in text]),
            "day": pa.array([dt.date(2020, 1, 1) + dt.timedelta(days=c % 400) for c in n_chars], pa.date32()),
            "ts": pa.array(
                [dt.datetime(2021, 1, 1) + dt.timedelta(seconds=c * 37) for c in n_chars], pa.timestamp("ms")
            ),
        }
    )


def build_lake(root: Path, docs: pa.Table, only: set[str] | None = None) -> dict[str, pa.Table]:
    """Write the test lake (or only the named tables); returns the tables as written (name -> table)."""
    rng = np.random.default_rng(7)
    base = base_table(docs)
    n = base.num_rows
    t: dict[str, pa.Table] = {}
    t["base"] = base
    t["subsets/rows_half"] = base.take(np.sort(rng.choice(n, n // 2, replace=False)))
    t["subsets/rows_quarter_shuffled"] = t["subsets/rows_half"].take(rng.permutation(n // 2)[: n // 4])
    t["proj/src_digit"] = base.select(["source", "has_digit"])  # many duplicate rows
    t["proj/id_words"] = base.select(["n_words", "id"])  # other column order
    t["copies/shuffled"] = base.take(rng.permutation(n))
    t["copies/doubled"] = pa.concat_tables([base, base.slice(0, 50)])  # same distinct rows, more rows
    # near misses: values all present column-wise, but one row's combination is new
    near = t["subsets/rows_half"].to_pydict()
    near["n_chars"][3], near["n_chars"][4] = near["n_chars"][4], near["n_chars"][3]
    t["near/swapped_cell"] = pa.table(near, schema=base.schema)
    near2 = t["subsets/rows_half"].to_pydict()
    near2["id"][10] = near2["id"][10] + "x"
    t["near/changed_cell"] = pa.table(near2, schema=base.schema)
    # type variants: int vs float (integral values) and float that is not integral
    sub = t["subsets/rows_half"].select(["id", "n_chars", "n_words"])
    t["types/float_counts"] = sub.cast(
        pa.schema([("id", pa.string()), ("n_chars", pa.float64()), ("n_words", pa.float32())])
    )
    shifted = sub.to_pydict()
    shifted["n_chars"] = [c + 0.5 for c in shifted["n_chars"]]
    t["types/float_shifted"] = pa.table(shifted).cast(
        pa.schema([("id", pa.string()), ("n_chars", pa.float64()), ("n_words", pa.int64())])
    )
    t["types/ts_us_utc"] = base.select(["id", "ts"]).cast(
        pa.schema([("id", pa.string()), ("ts", pa.timestamp("us", tz="UTC"))])
    )
    t["types/day_as_ts"] = pa.table(
        {"id": base.column("id"), "day": base.column("day").cast(pa.timestamp("s"))}
    )
    t["types/categorical"] = pa.table(
        {"source": base.column("source").dictionary_encode(), "has_digit": base.column("has_digit")}
    )
    t["types/bool_as_int"] = pa.table(
        {"source": base.column("source"), "has_digit": base.column("has_digit").cast(pa.int64())}
    )
    # NULLs (and NaN, which equals NULL)
    with_nulls = t["subsets/rows_half"].select(["id", "ratio", "source"]).to_pydict()
    for i in (0, 5, 9):
        with_nulls["ratio"][i] = None
    with_nulls["source"][2] = None
    t["nulls/container"] = pa.table(with_nulls)
    nan_rows = {k: v[:40] for k, v in with_nulls.items()}
    nan_rows["ratio"] = [float("nan") if v is None else v for v in nan_rows["ratio"]]
    t["nulls/nan_subset"] = pa.table(nan_rows)
    t["nulls/null_rows_only"] = pa.table(
        {"id": [with_nulls["id"][0], with_nulls["id"][5]], "ratio": pa.array([None, None], pa.float64())}
    )
    t["nulls/null_not_in_base"] = pa.table(
        {"id": [with_nulls["id"][0]], "ratio": pa.array([None], pa.float64())}
    )
    t["nulls/all_null_column"] = pa.table({"id": [with_nulls["id"][0]], "ratio": pa.nulls(1)})
    # empty tables
    t["empty/no_rows"] = base.select(["id", "n_chars"]).slice(0, 0)
    t["empty/no_rows_unknown_column"] = pa.table({"zzz": pa.array([], pa.string())})
    # exotic types, duplicate names, wide
    t["exotic/nested"] = pa.table(
        {
            "id": base.column("id").slice(0, 20),
            "tags": pa.array([[i, i + 1] for i in range(20)], pa.list_(pa.int64())),
            "amount": pa.array([Decimal(i) / 4 for i in range(20)], pa.decimal128(10, 2)),
            "blob": pa.array([bytes([i, 0, 255]) for i in range(20)], pa.binary()),
        }
    )
    t["exotic/nested_subset"] = t["exotic/nested"].slice(5, 7)
    t["exotic/decimal_rescaled"] = pa.table(
        {
            "id": base.column("id").slice(0, 20),
            "amount": pa.array([Decimal(i) / 4 for i in range(20)], pa.decimal128(12, 4)),
        }
    )
    t["exotic/dup_names"] = pa.Table.from_arrays(
        [base.column("id"), base.column("n_chars"), base.column("n_words").cast(pa.int64())],
        names=["id", "n", "n"],
    )
    wide = {f"c{j:03d}": pa.array((np.arange(30) * (j + 1)) % 17, pa.int64()) for j in range(250)}
    t["wide/w250"] = pa.table(wide)
    t["wide/w250_cols"] = pa.table({k: v for k, v in list(wide.items())[:120]}).slice(3, 10)
    # case variant (contained only with --case-insensitive)
    t["case/upper"] = t["proj/src_digit"].rename_columns(["SOURCE", "HAS_DIGIT"])
    if only is not None:
        t = {k: v for k, v in t.items() if k in only}
    for name, table in t.items():
        path = root / f"{name}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, path, row_group_size=64)
    if only is not None:
        return t
    # a Parquet folder table and a CSV table
    folder = root / "folder/parts.parquet"
    folder.mkdir(parents=True)
    third = n // 3
    for i in range(3):
        pq.write_table(
            base.slice(i * third, third).select(["id", "source"]), folder / f"part-{i:05d}.parquet"
        )
    t["folder/parts"] = base.slice(0, 3 * third).select(["id", "source"])
    csv = base.slice(20, 30).select(["id", "n_chars", "ratio"])
    pacsv.write_csv(csv, root / "csv_subset.csv")
    t["csv_subset"] = csv
    # not tables
    (root / "notes.txt").write_text("not a table\n")
    (root / "broken.parquet").write_bytes(b"PAR1 this is not parquet")
    return t


# ---------------------------------------------------------------------------------------------------------------
# brute force: the definition, pair by pair, on Python values


def _klass(t: pa.DataType) -> str:
    if pt.is_dictionary(t):
        t = t.value_type
    if pt.is_integer(t) or pt.is_floating(t):
        return "num"
    if pt.is_timestamp(t) or pt.is_date(t):
        return "time"
    if pt.is_null(t):
        return "null"
    if pt.is_string(t) or pt.is_large_string(t):
        return "str"
    return str(t) if not pt.is_decimal(t) else "dec"


def _norm(v, klass: str):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    if klass == "num":
        return v  # Python compares int and float by value, exactly
    if klass == "time":
        if isinstance(v, dt.datetime):
            if v.tzinfo is None:
                v = v.replace(tzinfo=dt.UTC)
            return ("t", v.timestamp(), v.microsecond)
        return ("t", dt.datetime(v.year, v.month, v.day, tzinfo=dt.UTC).timestamp(), 0)
    if klass == "dec":
        return ("d", v.normalize())
    if isinstance(v, list):
        return ("l", tuple(v))
    return (klass, v)


def _columns(table: pa.Table, ci: bool) -> dict[str, tuple[int, str]]:
    out, seen = {}, {}
    for i, f in enumerate(table.schema):
        name = f.name.lower() if ci else f.name
        seen[name] = seen.get(name, 0) + 1
        key = name if seen[name] == 1 else f"{name}#{seen[name]}"
        out[key] = (i, _klass(f.type))
    return out


def brute_force(tables: dict[str, pa.Table], ci: bool = False) -> set[tuple[str, str]]:
    rows_cache: dict = {}

    def rows(name: str, keys: tuple[str, ...]) -> set:
        if (name, keys) not in rows_cache:
            table, cols = tables[name], _columns(tables[name], ci)
            values = [[_norm(v, cols[k][1]) for v in table.column(cols[k][0]).to_pylist()] for k in keys]
            rows_cache[(name, keys)] = set(zip(*values, strict=True)) if keys else set()
        return rows_cache[(name, keys)]

    out = set()
    for a, ta in tables.items():
        ca = _columns(ta, ci)
        if not ca:
            continue
        for b, tb in tables.items():
            if a == b:
                continue
            cb = _columns(tb, ci)
            if not all(k in cb and (ka == cb[k][1] or "null" in (ka, cb[k][1])) for k, (_, ka) in ca.items()):
                continue
            keys = tuple(sorted(ca))
            if ta.num_rows == 0 or rows(a, keys) <= rows(b, keys):
                out.add((a, b))
    return out


# Inputs of build_lake that are not tables (the code under test lists them as skipped).
NOT_TABLES = {"notes.txt", "broken.parquet"}


def _parquet(path: Path) -> pa.Table:
    return pq.ParquetFile(path).read()  # a plain file read (duplicate column names included)


def lake_tables(root: Path) -> dict[str, pa.Table]:
    """The lake as the brute force sees it, read by plain pyarrow, independently of the code under test: every
    Parquet file, every `*.parquet` folder of part files (in name order) and every CSV file; any other file, or a
    table that fails to read, fails the test."""
    out = {}
    for dirpath, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith((".", "_")))
        here = Path(dirpath)
        rel_dir = here.relative_to(root).as_posix()
        if here.name.endswith(".parquet"):
            parts = sorted(f for f in files if f.endswith(".parquet"))
            out[rel_dir.removesuffix(".parquet")] = pa.concat_tables([_parquet(here / f) for f in parts])
            dirs[:] = []
            continue
        for f in sorted(files):
            rel = f if rel_dir == "." else f"{rel_dir}/{f}"
            if rel in NOT_TABLES:
                continue
            if f.endswith(".parquet"):
                out[rel.removesuffix(".parquet")] = _parquet(here / f)
            elif f.endswith(".csv"):
                out[rel.removesuffix(".csv")] = pacsv.read_csv(here / f)
            else:
                raise AssertionError(f"{rel}: not a table the test lake should hold")
    return out


# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lake(tmp_path_factory, real_docs) -> Path:
    root = tmp_path_factory.mktemp("contain_lake")
    build_lake(root, real_docs)
    return root


@pytest.fixture(scope="module")
def polars_run(lake, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("contain_out")
    refs, problems = discover_tables(lake)
    stats = run_contain(refs, str(out), ContainConfig(), lake_root=str(lake), problems=problems)
    return out, stats


def found_pairs(out: Path) -> set[tuple[str, str]]:
    t = pq.read_table(out / "containment.parquet")
    return set(zip(t.column("contained").to_pylist(), t.column("container").to_pylist(), strict=True))


def test_matches_brute_force(lake, polars_run):
    out, _ = polars_run
    truth = brute_force(lake_tables(lake))
    got = found_pairs(out)
    assert got - truth == set(), "false positives"
    assert truth - got == set(), "misses"
    # the lake exercises every kind of case the issue lists
    expected = {
        ("subsets/rows_quarter_shuffled", "subsets/rows_half"),
        ("subsets/rows_quarter_shuffled", "base"),  # transitively
        ("proj/src_digit", "base"),
        ("proj/id_words", "base"),
        ("copies/shuffled", "base"),
        ("base", "copies/shuffled"),
        ("copies/doubled", "base"),
        ("types/float_counts", "base"),
        ("types/ts_us_utc", "base"),
        ("types/day_as_ts", "base"),
        ("types/categorical", "base"),
        ("nulls/nan_subset", "nulls/container"),
        ("nulls/null_rows_only", "nulls/container"),
        ("nulls/all_null_column", "nulls/container"),
        ("empty/no_rows", "base"),
        ("exotic/nested_subset", "exotic/nested"),
        ("wide/w250_cols", "wide/w250"),
        ("folder/parts", "base"),
        ("csv_subset", "base"),
    }
    assert expected <= got
    not_expected = {
        ("near/swapped_cell", "base"),
        ("near/changed_cell", "base"),
        ("types/float_shifted", "base"),
        ("types/bool_as_int", "base"),
        ("nulls/null_not_in_base", "base"),
        ("case/upper", "base"),
    }
    assert not not_expected & got
    assert ("exotic/decimal_rescaled", "exotic/nested") in got  # decimals compare by value across scales


def test_case_insensitive_option(lake, tmp_path):
    refs, problems = discover_tables(lake)
    stats = run_contain(refs, str(tmp_path), ContainConfig(case_insensitive=True), problems=problems)
    got = found_pairs(tmp_path)
    assert ("case/upper", "base") in got and ("proj/src_digit", "case/upper") in got
    assert got == brute_force(lake_tables(lake), ci=True)
    assert stats["containment_pairs"] == len(got)


def test_stats_count_every_step(polars_run):
    out, stats = polars_run
    saved = json.loads((out / "stats.json").read_text())
    s1, s2, s3 = saved["schema_graph"], saved["minmax_prune"], saved["content_check"]
    assert s1["all_pairs"] == saved["tables"] * (saved["tables"] - 1)
    assert s1["kept"] + s1["pruned"] == s1["all_pairs"] and s1["pruned"] > 0
    assert (
        s2["considered"] == s1["kept"] and s2["kept"] + s2["pruned"] == s2["considered"] and s2["pruned"] > 0
    )
    assert s3["considered"] == s2["kept"]
    assert s3["identical_groups"] >= 1 and s3["tables_collapsed"] >= 2  # base, shuffled and doubled copies
    for step in (s1, s2, s3):
        assert 0 < step["seconds"] < saved["seconds"]
    assert (
        saved["read_metadata"]["seconds"] + s1["seconds"] + s2["seconds"] + s3["seconds"] <= saved["seconds"]
    )
    assert saved["timings"]["total_s"] >= saved["timings"]["containment_s"] == saved["seconds"]


def test_bad_inputs_are_listed_and_skipped(lake, polars_run):
    out, stats = polars_run
    skipped = pq.read_table(out / "skipped.parquet").to_pylist()
    by_table = {s["table"]: s["error"] for s in skipped}
    assert "not a table" in by_table["notes.txt"]
    assert "broken" in by_table and by_table["broken"]
    with pytest.raises(pa.ArrowInvalid):  # the independent reader agrees that it is not a table
        pq.read_table(lake / "broken.parquet")
    report = (out / "report.md").read_text()
    assert "notes.txt" in report and "broken" in report
    assert (out / "containment_graph.png").stat().st_size > 1000


def test_plan_keeps_a_container_for_every_deleted_table(polars_run):
    out, _ = polars_run
    plan = pq.read_table(out / "deletion_plan.parquet").to_pylist()
    action = {r["table"]: r["action"] for r in plan}
    pairs = found_pairs(out)
    for r in plan:
        if r["action"] == "delete":
            assert r["verified"] is True
            assert action[r["reconstruct_from"]] == "keep"
            assert (r["table"], r["reconstruct_from"]) in pairs


@pytest.fixture(scope="module")
def eager_run(lake, tmp_path_factory) -> tuple[Path, dict]:
    """A cost model under which every contained table is worth deleting."""
    out = tmp_path_factory.mktemp("contain_eager")
    refs, problems = discover_tables(lake)
    cfg = ContainConfig(storage_cost_per_byte=1.0, scan_cost_per_byte=1e-9)
    return out, run_contain(refs, str(out), cfg, lake_root=str(lake), problems=problems)


def test_rebuild_round_trips_exactly(lake, eager_run):
    out, stats = eager_run
    plan = pq.read_table(out / "deletion_plan.parquet").to_pylist()
    deleted = [r for r in plan if r["action"] == "delete"]
    assert len(deleted) >= 10
    tables = lake_tables(lake)
    for r in deleted:
        original = tables[r["table"]]
        rebuilt = rebuild_table(str(out), r["table"])
        assert rebuilt.schema.equals(original.schema, check_metadata=True)
        assert rebuilt.equals(original), r["table"]


def test_greedy_plan_is_valid_and_bounded(lake, tmp_path):
    refs, problems = discover_tables(lake)
    cfg = ContainConfig(storage_cost_per_byte=1.0, scan_cost_per_byte=1e-9, milp_max_edges=0)
    stats = run_contain(refs, str(tmp_path), cfg, problems=problems)
    assert stats["plan"]["solver"] == "greedy"
    assert 0 < stats["plan"]["fraction_of_bound"] <= 1.0 + 1e-9
    plan = pq.read_table(tmp_path / "deletion_plan.parquet").to_pylist()
    action = {r["table"]: r["action"] for r in plan}
    assert all(action[r["reconstruct_from"]] == "keep" for r in plan if r["action"] == "delete")


def test_latency_limit_and_access_log(lake, tmp_path):
    refs, problems = discover_tables(lake)
    cfg = ContainConfig(storage_cost_per_byte=1.0, scan_cost_per_byte=1e-9, max_rebuild_seconds=1e-9)
    stats = run_contain(refs, str(tmp_path / "slow"), cfg, problems=problems)
    assert stats["deleted"] == 0 and stats["plan"]["over_latency"] > 0
    # a hot table is kept when its rebuild cost per period exceeds its storage cost
    log = tmp_path / "access.csv"
    pacsv.write_csv(pa.table({"table": ["copies/doubled"], "count": [1e12]}), log)
    stats = run_contain(
        refs,
        str(tmp_path / "hot"),
        ContainConfig(storage_cost_per_byte=1.0, scan_cost_per_byte=1e-9),
        access_log=str(log),
        problems=problems,
    )
    plan = {r["table"]: r for r in pq.read_table(tmp_path / "hot" / "deletion_plan.parquet").to_pylist()}
    assert plan["copies/doubled"]["action"] == "keep" and plan["copies/doubled"]["access_frequency"] == 1e12


def test_apply_moves_only_verified_tables(tmp_path):
    """-0.0 equals 0.0 and NaN equals NULL, so these tables are contained but cannot be rebuilt bit for bit."""
    lake = tmp_path / "lake"
    lake.mkdir()
    big = pa.table({"k": ["a", "b", "c", "d"] * 50, "x": pa.array([0.0, 1.5, None, 2.0] * 50)})
    pq.write_table(big, lake / "big.parquet")
    pq.write_table(pa.table({"k": ["a"], "x": [-0.0]}), lake / "negzero.parquet")
    pq.write_table(pa.table({"k": ["c"], "x": [float("nan")]}), lake / "nan.parquet")
    pq.write_table(big.slice(1, 2), lake / "good.parquet")
    refs, problems = discover_tables(lake)
    cfg = ContainConfig(storage_cost_per_byte=1.0, scan_cost_per_byte=1e-12)
    out = tmp_path / "out"
    stats = run_contain(refs, str(out), cfg, lake_root=str(lake), apply=True, run_id="t1", problems=problems)
    plan = {r["table"]: r for r in pq.read_table(out / "deletion_plan.parquet").to_pylist()}
    assert {("negzero", "big"), ("nan", "big"), ("good", "big")} <= found_pairs(out)
    for name in ("negzero", "nan"):
        assert plan[name]["action"] == "keep" and plan[name]["verified"] is False
        assert (lake / f"{name}.parquet").exists()
    assert plan["good"]["action"] == "delete" and plan["good"]["applied"]
    assert not (lake / "good.parquet").exists()
    trashed = lake / ".sift_trash" / "t1" / "good.parquet"
    assert trashed.exists() and stats["applied"] == 1
    assert rebuild_table(str(out), "good").equals(pq.read_table(trashed))
    assert (lake / "big.parquet").exists()


def test_hash_collisions_never_change_the_result(lake):
    """With fingerprints cut to 2 bits almost every row collides; the value check must still decide exactly."""
    from sift.dedup.containment.engines.polars import PolarsEngine, Projection
    from sift.dedup.containment.graph import find_containment

    class TwoBitEngine(PolarsEngine):
        def projection(self, t, keys):
            p = super().projection(t, keys)
            fps = p.fps & np.uint64(3)
            uniq, first = np.unique(fps, return_index=True)
            return Projection(t, keys, p.rows, fps, uniq, first.astype(np.int64))

    refs, problems = discover_tables(lake)
    result = find_containment(refs, ContainConfig(sample_rows=0), engine_factory=TwoBitEngine)
    got = {(result.refs[e.contained].name, result.refs[e.container].name) for e in result.edges}
    assert got == brute_force(lake_tables(lake))
    assert result.steps["content_check"]["hash_collisions"] > 0


def test_discovery_names_and_problems(lake):
    refs, problems = discover_tables(lake)
    names = {r.name for r in refs}
    assert {"base", "folder/parts", "csv_subset", "subsets/rows_half"} <= names
    folder = next(r for r in refs if r.name == "folder/parts")
    assert folder.format == "parquet" and len(folder.paths) == 3
    assert any(p["table"] == "notes.txt" for p in problems)
    assert not any(".sift_trash" in r.location for r in refs)
    assert all(os.path.exists(r.location) for r in refs)
