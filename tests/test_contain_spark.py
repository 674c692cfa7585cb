"""R2D2 containment (issues 4 and 11) on Spark: the Spark engine (fingerprints and row values via mapInArrow, checks
as DataFrame joins, recipes built and written by the executors) gives the same containment graph, plan and recipes as
the Polars engine and the brute force: locally, on a standalone cluster with the lake and output given as file://
URIs, through Spark Connect, and with a driver result limit far below the size of the row mappings."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_contain_core import brute_force, build_lake, lake_tables

from sift.dedup.containment.api import run_contain
from sift.dedup.containment.config import ContainConfig
from sift.pipelines.core.lake.tables import discover_tables

SMALL = {
    "base",
    "subsets/rows_half",
    "subsets/rows_quarter_shuffled",
    "proj/src_digit",
    "types/categorical",
    "types/ts_us_utc",
    "copies/shuffled",
    "near/swapped_cell",
    "types/float_counts",
    "nulls/container",
    "nulls/nan_subset",
    "empty/no_rows",
}


@pytest.fixture(scope="module")
def small_lake(tmp_path_factory, real_docs):
    root = tmp_path_factory.mktemp("contain_spark_lake")
    build_lake(root, real_docs, only=SMALL)
    return root


def _outputs(out) -> tuple:
    plan = pq.read_table(out / "deletion_plan.parquet").drop_columns(["trash_path"])
    return pq.read_table(out / "containment.parquet"), plan


def _recipes(out) -> list[dict]:
    """recipes.parquet's rows (a file from Polars, a folder of part files from Spark), in table order."""
    return pq.read_table(out / "recipes.parquet").to_pylist()


def _same_content(got, want) -> None:
    gc, gp = _outputs(got)
    wc, wp = _outputs(want)
    assert gc.equals(wc)
    assert gp.equals(wp)
    assert _recipes(got) == _recipes(want)


@pytest.mark.spark
def test_spark_engine_matches_polars_and_brute_force(small_lake, tmp_path, spark):
    refs, problems = discover_tables(small_lake)
    run_contain(refs, str(tmp_path / "polars"), ContainConfig(engine="polars"), problems=problems)
    run_contain(refs, str(tmp_path / "spark"), ContainConfig(engine="spark"), spark=spark, problems=problems)
    pc, pp = _outputs(tmp_path / "polars")
    sc, sp = _outputs(tmp_path / "spark")
    assert sc.equals(pc)
    assert sp.equals(pp)
    assert _recipes(tmp_path / "spark") == _recipes(tmp_path / "polars")
    assert [r["verified"] for r in _recipes(tmp_path / "spark")].count(True) >= 3
    assert not (tmp_path / "spark" / "_work").exists()
    got = set(zip(sc.column("contained").to_pylist(), sc.column("container").to_pylist(), strict=True))
    assert got == brute_force(lake_tables(small_lake))
    assert ("near/swapped_cell", "base") not in got and ("nulls/nan_subset", "nulls/container") in got


@pytest.mark.spark_cluster
@pytest.mark.slow
def test_cli_on_standalone_cluster_with_file_uris(small_lake, tmp_path, spark_cluster, sift_cli):
    polars = sift_cli("contain", str(small_lake), "--output", str(tmp_path / "polars"))
    assert polars.returncode == 0, polars.stderr
    cluster = sift_cli(
        "contain",
        small_lake.as_uri(),
        "--output",
        (tmp_path / "cluster").as_uri(),
        "--engine",
        "spark",
        "--spark-master",
        spark_cluster,
    )
    assert cluster.returncode == 0, cluster.stderr[-3000:]
    _same_content(tmp_path / "cluster", tmp_path / "polars")
    cc, cp = _outputs(tmp_path / "cluster")
    assert cc.num_rows > 5
    deleted = [r["table"] for r in cp.to_pylist() if r["action"] == "delete"]
    assert deleted  # the small lake holds copies, subsets and projections worth deleting
    assert (tmp_path / "cluster" / "recipes.parquet").is_dir()  # part files written by the executors
    tables = lake_tables(small_lake)
    for name in deleted:
        rb = sift_cli(
            "rebuild", name, "--plan", str(tmp_path / "cluster"), "--output", str(tmp_path / "r.parquet")
        )
        assert rb.returncode == 0, rb.stderr
        assert pq.read_table(tmp_path / "r.parquet").equals(tables[name]), name


def _big_lake(root, rows: int = 150_000) -> None:
    """A base table and, inside it, a shuffled subset, a copy and a projection, each of 100,000 rows or more
    (their row mappings and column value sets are megabytes), in several row groups."""
    rng = np.random.default_rng(11)
    ids = np.arange(rows, dtype=np.int64)
    base = pa.table(
        {
            "id": ids,
            "name": pa.array([f"name-{i % 7919}-{i}" for i in ids]),
            "score": rng.integers(0, 1000, rows).astype(np.float64) / 8,
        }
    )
    pq.write_table(base, root / "base.parquet", row_group_size=40_000)
    pick = np.sort(rng.choice(rows, size=rows * 3 // 4, replace=False))
    subset = base.take(pa.array(rng.permutation(pick)))
    pq.write_table(subset, root / "subset.parquet", row_group_size=30_000)
    pq.write_table(base, root / "copy.parquet", row_group_size=50_000)
    pq.write_table(base.select(["id", "name"]), root / "projection.parquet")


@pytest.mark.spark
@pytest.mark.slow
def test_small_driver_result_limit(tmp_path, sift_cli):
    """With spark.driver.maxResultSize=1m the Spark engine still succeeds on tables whose row mappings alone are
    several megabytes: no row mapping, value set or recipe is collected to the driver."""
    lake = tmp_path / "lake"
    lake.mkdir()
    _big_lake(lake)
    polars = sift_cli("contain", str(lake), "--output", str(tmp_path / "polars"))
    assert polars.returncode == 0, polars.stderr
    spark = sift_cli(
        "contain",
        str(lake),
        "--output",
        str(tmp_path / "spark"),
        "--engine",
        "spark",
        "--spark-master",
        "local[2]",
        "--spark-conf",
        "spark.driver.maxResultSize=1m",
    )
    assert spark.returncode == 0, spark.stderr[-3000:]
    _same_content(tmp_path / "spark", tmp_path / "polars")
    pairs = {(r["contained"], r["container"]) for r in _outputs(tmp_path / "spark")[0].to_pylist()}
    assert {("subset", "base"), ("projection", "base"), ("copy", "base")} <= pairs
    assert sum(r["num_rows"] for r in _recipes(tmp_path / "spark")) >= 200_000


@pytest.mark.spark_cluster
@pytest.mark.slow
def test_cli_through_spark_connect(small_lake, tmp_path, spark_connect, sift_cli):
    polars = sift_cli("contain", str(small_lake), "--output", str(tmp_path / "polars"))
    assert polars.returncode == 0, polars.stderr
    connect = sift_cli(
        "contain",
        str(small_lake),
        "--output",
        str(tmp_path / "connect"),
        "--engine",
        "spark",
        "--spark-master",
        spark_connect,
    )
    assert connect.returncode == 0, connect.stderr[-3000:]
    _same_content(tmp_path / "connect", tmp_path / "polars")


@pytest.mark.spark
@pytest.mark.slow
def test_apply_on_spark_loses_nothing(tmp_path, spark, real_docs):
    """`--apply` after a Spark run: the recipes the executors wrote (with the files they checked) move the planned
    tables to the trash, and each one rebuilds exactly (a CSV to the same bytes)."""
    from test_contain_apply import assert_nothing_lost, snapshot, write_lake

    lake, out = tmp_path / "lake", tmp_path / "out"
    write_lake(lake, real_docs)
    before = snapshot(lake)
    refs, problems = discover_tables(lake)
    stats = run_contain(
        refs,
        str(out),
        ContainConfig(engine="spark"),
        spark=spark,
        problems=problems,
        apply=True,
        lake_root=str(lake),
    )
    plan = pq.read_table(out / "deletion_plan.parquet").to_pylist()
    deleted = {r["table"] for r in plan if r["action"] == "delete"}
    assert deleted and stats["applied"] == len(deleted)
    assert all(r["source_files"] for r in _recipes(out))
    assert assert_nothing_lost(lake, out, before) == deleted


def test_row_bytes_equal_exactly_when_values_compare_equal():
    """The Spark engine confirms rows by comparing `row_bytes`: two rows give the same bytes exactly when every
    column is equal under `canon_equal` (the embedded engine's comparison), across classes and NULLs."""
    from sift.dedup.containment.kernels import canon_equal, canonical, row_bytes

    nums = pa.array([1, 1.0, None, float("nan"), -0.0, 0.0, 2.5, 2**53], type=pa.float64())
    ints = pa.array([1, 1, None, None, 0, 0, 3, 2**53], type=pa.int64())
    texts = pa.array(["ab", "a", None, "", "b", "ab", "a", None])
    more = pa.array(["", "b", None, "", "", "", "b", ""])
    nulls = pa.nulls(8)
    flags = pa.array([True, False, None, True, False, True, None, False])
    cases = [
        (pa.table({"x": nums, "s": texts, "t": more}), ["num", "str", "str"]),
        (pa.table({"x": ints, "s": texts, "t": more}), ["num", "str", "str"]),
        (pa.table({"n": nulls, "b": flags}), ["null", "bool"]),
        (pa.table({"n": ints, "b": flags}), ["num", "bool"]),
    ]
    for left, lk in cases:
        for right, rk in cases:
            if len(lk) != len(rk):
                continue
            lb, rb = row_bytes(left, lk).to_pylist(), row_bytes(right, rk).to_pylist()
            lc = [canonical(left.column(i), k) for i, k in enumerate(lk)]
            rc = [canonical(right.column(i), k) for i, k in enumerate(rk)]
            for i in range(8):
                for j in range(8):
                    idx_i, idx_j = np.array([i]), np.array([j])
                    same = all(
                        bool(canon_equal(a.take(idx_i), b.take(idx_j))[0])
                        for a, b in zip(lc, rc, strict=True)
                    )
                    assert (lb[i] == rb[j]) == same, (lk, rk, i, j)
