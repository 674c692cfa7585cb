"""R2D2 containment (issue 4) on Spark: the Spark engine (fingerprints via mapInArrow, checks as DataFrame joins)
gives the same containment graph and plan as the Polars engine and the brute force, locally and on a standalone
cluster through the CLI."""

from __future__ import annotations

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


@pytest.mark.spark
def test_spark_engine_matches_polars_and_brute_force(small_lake, tmp_path, spark):
    refs, problems = discover_tables(small_lake)
    run_contain(refs, str(tmp_path / "polars"), ContainConfig(engine="polars"), problems=problems)
    run_contain(refs, str(tmp_path / "spark"), ContainConfig(engine="spark"), spark=spark, problems=problems)
    pc, pp = _outputs(tmp_path / "polars")
    sc, sp = _outputs(tmp_path / "spark")
    assert sc.equals(pc)
    assert sp.equals(pp)
    got = set(zip(sc.column("contained").to_pylist(), sc.column("container").to_pylist(), strict=True))
    assert got == brute_force(lake_tables(small_lake))
    assert ("near/swapped_cell", "base") not in got and ("nulls/nan_subset", "nulls/container") in got


@pytest.mark.spark_cluster
@pytest.mark.slow
def test_cli_on_standalone_cluster(small_lake, tmp_path, spark_cluster, sift_cli):
    polars = sift_cli("contain", str(small_lake), "--output", str(tmp_path / "polars"))
    assert polars.returncode == 0, polars.stderr
    cluster = sift_cli(
        "contain",
        str(small_lake),
        "--output",
        str(tmp_path / "cluster"),
        "--engine",
        "spark",
        "--spark-master",
        spark_cluster,
    )
    assert cluster.returncode == 0, cluster.stderr[-3000:]
    pc, pp = _outputs(tmp_path / "polars")
    cc, cp = _outputs(tmp_path / "cluster")
    assert cc.equals(pc) and cp.equals(pp)
    assert cc.num_rows > 5
    deleted = [r["table"] for r in cp.to_pylist() if r["action"] == "delete"]
    assert deleted  # the small lake holds copies, subsets and projections worth deleting
    tables = lake_tables(small_lake)
    for name in deleted:
        rb = sift_cli(
            "rebuild", name, "--plan", str(tmp_path / "cluster"), "--output", str(tmp_path / "r.parquet")
        )
        assert rb.returncode == 0, rb.stderr
        assert pq.read_table(tmp_path / "r.parquet").equals(tables[name]), name
