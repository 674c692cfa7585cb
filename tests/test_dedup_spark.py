"""Issue 3 (SlimPajama-DC dedup) on Spark: the Spark engine writes byte-identical output to the Polars engine, on
local Spark and on a real standalone cluster; connected components in DataFrames match scipy's."""

from __future__ import annotations

import filecmp
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components as scipy_components
from test_dedup_core import check_accounting, injected_corpus

from sift import dedup
from sift.dedup import DedupConfig

OUTPUTS = ("kept.parquet", "removed.parquet", "clusters.parquet", "quarantine.parquet", "stats.json", "report.md",
           "cluster_sizes.png")  # fmt: skip


def _same(a: Path, b: Path) -> list[str]:
    return [name for name in OUTPUTS if not filecmp.cmp(a / name, b / name, shallow=False)]


@pytest.fixture(scope="module")
def small_corpus(real_docs: pa.Table) -> pa.Table:
    return injected_corpus(real_docs.slice(0, 700), seed=11)


@pytest.mark.spark
@pytest.mark.parametrize(
    "cfg",
    [
        DedupConfig(batch_rows=300, source_priority=["package_docs"]),
        DedupConfig(mode="slimpajama", scope="local", batch_rows=300),
    ],
    ids=["verified-global", "slimpajama-local"],
)
def test_spark_engine_output_is_byte_identical_to_polars(
    spark, small_corpus: pa.Table, cfg: DedupConfig, tmp_path: Path
) -> None:
    st_spark = dedup.run(small_corpus, cfg, tmp_path / "spark", engine="spark", spark=spark)
    st_polars = dedup.run(small_corpus, cfg, tmp_path / "polars", engine="polars")
    assert _same(tmp_path / "spark", tmp_path / "polars") == []
    assert st_spark == st_polars and st_spark["removed_by_reason"]["near_duplicate"] > 0
    check_accounting(small_corpus, tmp_path / "spark")


@pytest.mark.spark
def test_large_star_small_star_components_match_scipy(spark) -> None:
    from sift.dedup.engines.spark import connected_components

    rng = np.random.default_rng(0)
    chain = [(i, i + 1) for i in range(200, 260)]  # a long path: many rounds
    star = [(1000, 1000 + k) for k in range(1, 30)]
    random_edges = [tuple(map(int, rng.integers(0, 150, 2))) for _ in range(120)]
    edges = chain + star + random_edges + [(5000, 5000)]
    df = spark.createDataFrame(edges, "a long, b long")
    got = {r["node"]: r["comp"] for r in connected_components(df).collect()}
    nodes = sorted({x for e in edges for x in e if e[0] != e[1]})
    index = {x: i for i, x in enumerate(nodes)}
    a = [index[x] for x, y in edges if x != y]
    b = [index[y] for x, y in edges if x != y]
    _, labels = scipy_components(
        coo_matrix((np.ones(len(a)), (a, b)), shape=(len(nodes),) * 2), directed=False
    )
    expected = {}
    for x in nodes:
        expected[x] = min(y for y in nodes if labels[index[y]] == labels[index[x]])
    assert got == expected


@pytest.mark.spark_cluster
@pytest.mark.slow
def test_standalone_cluster_cli_matches_polars(
    spark_cluster: str, small_corpus: pa.Table, tmp_path: Path, sift_cli
):
    import pyarrow.parquet as pq

    src = tmp_path / "docs.parquet"
    pq.write_table(small_corpus, src)
    common = ("--scope", "global", "--source-priority", "python_docs", "--seed", "7")
    proc = sift_cli("dedup", str(src), "--output", str(tmp_path / "cluster"), "--engine", "spark",
                    "--spark-master", spark_cluster, *common)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    proc = sift_cli("dedup", str(src), "--output", str(tmp_path / "polars"), "--engine", "polars", *common)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert _same(tmp_path / "cluster", tmp_path / "polars") == []
