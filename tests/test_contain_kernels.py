"""R2D2 building blocks (issue 4): value normalisation and fingerprints, footer statistics and the safety of
min-max pruning, schema classes, recipe encoding and checksums, and the `sift contain` / `sift rebuild` CLI."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sift.dedup.containment import kernels
from sift.dedup.containment.kernels import canon_equal, canon_hashes, canonical, column_hash
from sift.dedup.containment.recipes import decode_rows, encode_rows, table_checksum
from sift.dedup.containment.schema import TableSchema, column_infos, comparable, schema_graph, type_class
from sift.dedup.containment.stats import ColumnStats, TableStats, parquet_stats, prune_reason
from sift.pipelines.core.lake.tables import table_from_paths


def hashes(arr: pa.Array, klass: str) -> list[int]:
    return column_hash(canonical(arr, klass)).tolist()


def test_numbers_compare_by_value():
    ints = pa.array([1, -2, None, 2**53 + 1, 0], pa.int64())
    floats = pa.array([1.0, -2.0, float("nan"), float(2**53 + 1), -0.0], pa.float64())
    h_int, h_float = hashes(ints, "num"), hashes(floats, "num")
    assert h_int[:3] == h_float[:3]  # 1 == 1.0, -2 == -2.0, NULL == NaN
    assert h_int[3] != h_float[3]  # 2**53 + 1 is not representable as a float: different values
    assert h_int[4] == h_float[4]  # 0 == -0.0
    assert hashes(pa.array([1.5]), "num") != hashes(pa.array([1]), "num")
    assert hashes(pa.array([2**64 - 1], pa.uint64()), "num") != hashes(pa.array([-1], pa.int64()), "num")
    assert canon_equal(canonical(ints, "num"), canonical(floats, "num")).tolist() == [
        True,
        True,
        True,
        False,
        True,
    ]


def test_instants_strings_and_decimals():
    day = pa.array([dt.date(2020, 1, 2), None])
    ts = pa.array([dt.datetime(2020, 1, 2), None], pa.timestamp("s"))
    ts_utc = pa.array([dt.datetime(2020, 1, 2, tzinfo=dt.UTC), None], pa.timestamp("us", tz="UTC"))
    assert hashes(day, "time") == hashes(ts, "time") == hashes(ts_utc, "time")
    assert hashes(pa.array([dt.datetime(1960, 1, 1, 0, 0, 0, 1)], pa.timestamp("us")), "time") != hashes(
        pa.array([dt.datetime(1960, 1, 1)], pa.timestamp("us")), "time"
    )
    s = pa.array(["a", "bb", None, "ccccccccccccccccc"])
    assert (
        hashes(s, "str") == hashes(s.dictionary_encode(), "str") == hashes(s.cast(pa.large_string()), "str")
    )
    assert hashes(s.slice(1), "str") == hashes(s, "str")[1:]
    d1 = pa.array([Decimal("1.50"), Decimal("2")], pa.decimal128(10, 2))
    d2 = pa.array([Decimal("1.5000"), Decimal("2.0000")], pa.decimal128(12, 4))
    assert hashes(d1, "dec") == hashes(d2, "dec")


@pytest.mark.parametrize(
    ("klass", "columns"),
    [
        (
            "num",
            [pa.array([1, None, -3], pa.int64()), pa.array([], pa.int64()), pa.array([None, 7], pa.int64())],
        ),
        ("num", [pa.array([1.0, float("nan"), 2.5]), pa.array([None, -0.0]), pa.array([2.0**70])]),
        ("num", [pa.array([2**64 - 1, None], pa.uint64()), pa.array([5], pa.uint64())]),
        (
            "str",
            [pa.array(["a", None, "x" * 200]), pa.array([""]), pa.chunked_array([["bc", None], ["d" * 9]])],
        ),
        ("bool", [pa.array([True, None]), pa.array([False, False, True])]),
        (
            "time",
            [pa.array([0, None, 1_700_000_000_123], pa.timestamp("ms")), pa.array([-1], pa.timestamp("ms"))],
        ),
        ("null", [pa.nulls(3), pa.nulls(0)]),
    ],
)
@pytest.mark.parametrize("block", [1, 3, 32_768])
def test_batched_normalise_and_hash_equal_the_single_column_calls(klass, columns, block, monkeypatch):
    """canon_hashes concatenates columns of one type into blocks to pay numpy's call costs once: each column's
    slice must be exactly what canonical + column_hash give it alone (values, NULLs, hashes), wherever the block
    boundaries fall."""
    monkeypatch.setattr(kernels, "_BLOCK_CELLS", block)
    got = canon_hashes(columns, klass)
    assert len(got) == len(columns)
    for col, (canon, h) in zip(columns, got, strict=True):
        alone = canonical(col, klass)
        assert h.tolist() == column_hash(alone).tolist()
        assert canon.valid.tolist() == alone.valid.tolist()
        if alone.words is not None:
            assert np.array_equal(canon.words, alone.words)
        else:
            assert canon.blobs.equals(alone.blobs)
        assert canon_equal(canon, alone).all()


def test_type_classes_and_schema_graph():
    assert type_class(pa.int8()) == type_class(pa.float32()) == "num"
    assert type_class(pa.dictionary(pa.int32(), pa.string())) == "str"
    assert type_class(pa.date32()) == type_class(pa.timestamp("ns", tz="UTC")) == "time"
    assert type_class(pa.bool_()) != type_class(pa.int64())
    assert comparable("null", "str") and not comparable("bool", "num")
    schemas = [
        pa.schema([("a", pa.int64()), ("b", pa.string())]),
        pa.schema([("b", pa.string())]),
        pa.schema([("B", pa.string())]),
        pa.schema([("a", pa.float64()), ("b", pa.string()), ("c", pa.bool_())]),
        pa.schema([("a", pa.bool_()), ("b", pa.string())]),
    ]
    ts = [TableSchema(i, str(i), s, column_infos(s)) for i, s in enumerate(schemas)]
    pairs, info = schema_graph(ts)
    assert set(pairs) == {(0, 3), (1, 0), (1, 3), (1, 4)}
    assert info["all_pairs"] == 20
    ci = [TableSchema(i, str(i), s, column_infos(s, case_insensitive=True)) for i, s in enumerate(schemas)]
    assert (2, 0) in schema_graph(ci)[0]
    dup = column_infos(pa.schema([("x", pa.int64()), ("x", pa.int64())]))
    assert [c.key for c in dup] == ["x", "x#2"]
    # Names colliding ignoring case keep exact keys, so a column-reordered copy still matches name for name.
    clash = pa.schema([("Lp4", pa.int64()), ("LP4", pa.string()), ("id", pa.int64())])
    reordered = pa.schema([("LP4", pa.string()), ("ID", pa.int64()), ("Lp4", pa.int64())])
    keys = {c.name: c.key for c in column_infos(clash, case_insensitive=True)}
    assert keys == {"Lp4": "Lp4", "LP4": "LP4", "id": "id"}
    pair = [
        TableSchema(i, str(i), s, column_infos(s, case_insensitive=True))
        for i, s in enumerate([clash, reordered])
    ]
    assert set(schema_graph(pair)[0]) == {(0, 1), (1, 0)}


def _ts(schema: pa.Schema) -> TableSchema:
    return TableSchema(0, "t", schema, column_infos(schema))


def test_footer_statistics_read_no_data_and_prune_safely(tmp_path):
    t = pa.table({"x": pa.array([3, 5, None]), "s": ["b", "c", "d"], "f": [1.0, float("nan"), 2.0]})
    pq.write_table(t, tmp_path / "t.parquet", row_group_size=2)
    ref = table_from_paths("t", [str(tmp_path / "t.parquet")], "parquet")
    st = parquet_stats(ref, _ts(t.schema))
    x, s, f = st.columns
    assert st.rows == 3 and x.nulls == 1 and (x.min_lo, x.max_hi) == (3, 5)
    assert (s.min_lo, s.max_hi) == (b"b", b"d")
    assert f.nulls == 0 and not f.nulls_exact  # NaN is a NULL the footer does not count
    a = _ts(pa.schema([("s", pa.string())]))
    b = _ts(pa.schema([("s", pa.string())]))

    def stats(lo, hi, exact=True):
        c = ColumnStats(nulls=0, nulls_exact=True, min_lo=lo, max_hi=hi, empty=False)
        if exact:
            c.min_hi, c.max_lo = lo, hi
        return TableStats(rows=5, columns=[c])

    assert prune_reason(a, stats(b"a", b"c"), b, stats(b"b", b"d")) == "minmax: s"
    assert prune_reason(a, stats(b"b", b"c"), b, stats(b"b", b"d")) is None
    # truncated bounds: A's true min may lie anywhere in [b"a", A's max]; only disjoint ranges are pruned
    assert prune_reason(a, stats(b"a", b"c", exact=False), b, stats(b"b", b"d", exact=False)) is None
    assert prune_reason(a, stats(b"a", b"ab", exact=False), b, stats(b"b", b"d", exact=False)) == "minmax: s"


def test_recipe_rows_and_checksum():
    rows = np.array([5, 3, 3, 0, 2**40, 7])
    assert decode_rows(encode_rows(rows), len(rows)).tolist() == rows.tolist()
    t = pa.table({"a": [1, 2, 3], "s": pa.array(["x", "y", "x"]).dictionary_encode()})
    chunked = pa.concat_tables([t.slice(0, 1), t.slice(1)])
    assert table_checksum(chunked) == table_checksum(t)
    assert table_checksum(t) != table_checksum(t.slice(0, 2))
    assert table_checksum(pa.table({"f": [0.0]})) != table_checksum(pa.table({"f": [-0.0]}))
    assert table_checksum(pa.table({"f": [None]}, pa.schema([("f", pa.float64())]))) != table_checksum(
        pa.table({"f": [float("nan")]})
    )


@pytest.mark.slow
def test_cli_contain_apply_and_rebuild(tmp_path, sift_cli):
    lake = tmp_path / "lake"
    (lake / "sub").mkdir(parents=True)
    big = pa.table({"k": [f"k{i}" for i in range(200)], "v": list(range(200))})
    pq.write_table(big, lake / "big.parquet")
    pq.write_table(big.slice(10, 30).select(["v"]), lake / "sub" / "part.parquet")
    out = tmp_path / "out"
    log = tmp_path / "access.csv"
    log.write_text("table,count\nbig,100\nsub/part,0\n")  # a table nobody reads is worth deleting
    run = sift_cli("contain", str(lake), "--output", str(out), "--access-log", str(log), "--apply")
    assert run.returncode == 0, run.stderr
    plan = {r["table"]: r for r in pq.read_table(out / "deletion_plan.parquet").to_pylist()}
    assert plan["sub/part"]["action"] == "delete" and plan["sub/part"]["applied"]
    assert not (lake / "sub" / "part.parquet").exists()
    rebuilt = tmp_path / "part.parquet"
    rb = sift_cli("rebuild", "sub/part", "--plan", str(out), "--output", str(rebuilt))
    assert rb.returncode == 0, rb.stderr
    assert pq.read_table(rebuilt).equals(big.slice(10, 30).select(["v"]))
    assert sift_cli("rebuild", "nope", "--plan", str(out), "--output", str(rebuilt)).returncode == 2
    assert sift_cli("contain", str(tmp_path / "missing"), "--output", str(out)).returncode == 2


def test_plan_is_optimal_against_enumeration():
    """The MILP's plan saves as much as the best of all valid plans (enumerated), on tiny byte-cost scales."""
    import itertools

    from sift.dedup.containment.plan import choose_deletions, plan_edges

    rng = np.random.default_rng(3)
    n = 7
    names = [f"t{i}" for i in range(n)]
    nbytes = [int(x) for x in rng.integers(1_000, 100_000, n)]
    edges = sorted({(int(a), int(b)) for a, b in rng.integers(0, n, (14, 2)) if a != b})
    kw = {"storage_cost": 2e-11, "scan_cost": 5e-12, "scan_bps": 2e8, "max_seconds": None, "time_limit": 30}
    freq = [float(f) for f in rng.integers(0, 3, n)]
    cands, _ = plan_edges(edges, nbytes, freq, kw["storage_cost"], kw["scan_cost"], kw["scan_bps"], None)
    best = 0.0
    for k in range(len(cands) + 1):
        for combo in itertools.combinations(cands, k):
            deleted = [e.table for e in combo]
            if len(set(deleted)) < len(deleted) or any(e.container in deleted for e in combo):
                continue
            best = max(best, sum(e.saving for e in combo))
    plan, info = choose_deletions(edges, names, nbytes, freq, milp_max_edges=1000, **kw)
    assert info["solver"] == "milp (HiGHS)" and info["optimal"]
    assert sum(e.saving for e in plan.values()) == pytest.approx(best, rel=1e-9)
    greedy, ginfo = choose_deletions(edges, names, nbytes, freq, milp_max_edges=0, **kw)
    assert sum(e.saving for e in greedy.values()) <= best * (1 + 1e-9) <= ginfo["lp_upper_bound"] * (1 + 1e-6)
    assert all(e.container not in plan for e in plan.values())


def test_distinct_rows_counts_exactly():
    """CSV statistics count distinct normalised rows exactly (a distinct-count bound prunes pairs)."""
    from sift.dedup.containment.stats import _distinct_rows

    rng = np.random.default_rng(1)
    for _ in range(500):
        n, k = int(rng.integers(0, 60)), int(rng.integers(1, 4))
        w = rng.integers(-3, 3, (n, k)).astype(np.int64)
        if k > 1 and rng.random() < 0.5:
            w[:, 0] = 5  # a constant type-tag word
        assert _distinct_rows(w) == len({tuple(r) for r in w.tolist()})
    big = rng.integers(0, 1500, (1_000_001, 2)).astype(np.int64)  # the Polars path
    assert _distinct_rows(big) == len(np.unique(big, axis=0))
