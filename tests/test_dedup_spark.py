"""Issue 3 (SlimPajama-DC dedup) on Spark, issue 11 (executors read and write, no per-document data on the driver):
the Spark engine gives the Polars engine's content (kept rows, removed rows with reason, duplicate_of and similarity,
clusters, quarantine, stats) in both modes and both scopes, writes its tables as folders of part files with the same
bytes run to run, succeeds with a driver result limit far below the corpus size, and runs on a standalone cluster
with `file://` URIs and through Spark Connect; connected components in DataFrames match scipy's."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components as scipy_components
from test_dedup_core import check_accounting, injected_corpus

from sift import dedup
from sift.dedup import DedupConfig

TABLES = ("kept.parquet", "removed.parquet", "clusters.parquet", "quarantine.parquet")


def content(out: Path) -> dict[str, Any]:
    """What a run decided, independent of how its files are laid out: every table's column names and rows (a
    Polars file or a Spark folder of part files), stats.json and report.md."""
    got: dict[str, Any] = {}
    for name in TABLES:
        table = pq.read_table(out / name)
        got[name] = (table.column_names, table.to_pylist())
    got["stats.json"] = json.loads((out / "stats.json").read_text())
    got["report.md"] = (out / "report.md").read_text()
    return got


def assert_same_content(a: Path, b: Path) -> None:
    ca, cb = content(a), content(b)
    for name in ca:
        assert ca[name] == cb[name], f"{name} differs between {a} and {b}"


def file_bytes(out: Path) -> dict[str, bytes]:
    """Every file of an output folder (recursively) but timings.json, by relative path."""
    return {
        str(p.relative_to(out)): p.read_bytes()
        for p in sorted(out.rglob("*"))
        if p.is_file() and p.name != "timings.json"
    }


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
def test_spark_engine_content_matches_polars(
    spark, small_corpus: pa.Table, cfg: DedupConfig, tmp_path: Path
) -> None:
    st_spark = dedup.run(small_corpus, cfg, tmp_path / "spark", engine="spark", spark=spark)
    st_polars = dedup.run(small_corpus, cfg, tmp_path / "polars", engine="polars")
    assert st_spark == st_polars and st_spark["removed_by_reason"]["near_duplicate"] > 0
    assert_same_content(tmp_path / "spark", tmp_path / "polars")
    # Spark's tables are folders of part files, named in order; Polars writes single files.
    assert (tmp_path / "spark" / "kept.parquet" / "part-00000.parquet").is_file()
    assert (tmp_path / "polars" / "kept.parquet").is_file()
    check_accounting(small_corpus, tmp_path / "spark")


@pytest.mark.spark
@pytest.mark.slow
@pytest.mark.parametrize(
    "cfg",
    [DedupConfig(mode="slimpajama", batch_rows=300), DedupConfig(scope="local", batch_rows=300)],
    ids=["slimpajama-global", "verified-local"],
)
def test_spark_engine_content_matches_polars_other_mode_scope_pairs(
    spark, small_corpus: pa.Table, cfg: DedupConfig, tmp_path: Path
) -> None:
    dedup.run(small_corpus, cfg, tmp_path / "spark", engine="spark", spark=spark)
    dedup.run(small_corpus, cfg, tmp_path / "polars", engine="polars")
    assert_same_content(tmp_path / "spark", tmp_path / "polars")


@pytest.mark.spark
@pytest.mark.slow
def test_spark_engine_is_byte_identical_run_to_run(spark, small_corpus: pa.Table, tmp_path: Path) -> None:
    cfg = DedupConfig(batch_rows=300)
    dedup.run(small_corpus, cfg, tmp_path / "a", engine="spark", spark=spark)
    dedup.run(small_corpus, cfg, tmp_path / "b", engine="spark", spark=spark)
    a, b = file_bytes(tmp_path / "a"), file_bytes(tmp_path / "b")
    assert sorted(a) == sorted(b) and "kept.parquet/part-00000.parquet" in a
    assert [name for name in a if a[name] != b[name]] == []


@pytest.mark.spark
@pytest.mark.slow
def test_spark_run_resumes_from_its_last_finished_phase(
    spark, small_corpus: pa.Table, tmp_path: Path
) -> None:
    """A run that lost its later phases (their markers gone, as after a kill) redoes only those: the finished
    work tables are reused as they are, and the output bytes are those of the first run."""
    cfg = DedupConfig(batch_rows=300, keep_work=True)
    out = tmp_path / "out"
    dedup.run(small_corpus, cfg, out, engine="spark", spark=spark, input_fingerprint="v1")
    first = file_bytes(out)
    work = out / "_work" / "spark"
    facts = {p: p.stat().st_mtime_ns for p in (work / "facts").glob("*.parquet")}
    for name in ("survivors.done", "decisions.done", "out/kept.done"):
        (work / name).unlink()
    dedup.run(small_corpus, cfg, out, engine="spark", spark=spark, input_fingerprint="v1")
    assert {p: p.stat().st_mtime_ns for p in (work / "facts").glob("*.parquet")} == facts and facts
    again = file_bytes(out)
    assert {k: v for k, v in again.items() if not k.startswith("_work")} == {
        k: v for k, v in first.items() if not k.startswith("_work")
    }


@pytest.mark.spark
@pytest.mark.slow
def test_spark_cli_succeeds_with_a_driver_result_limit_below_the_corpus(
    real_docs: pa.Table, tmp_path: Path, sift_cli
) -> None:
    """The executors read the input and write the outputs: with spark.driver.maxResultSize=1m, a corpus whose text
    is several times that size deduplicates (collecting the documents or the decisions would fail the job)."""
    src = tmp_path / "docs.parquet"
    pq.write_table(real_docs, src)
    text_bytes = sum(len(t.encode()) for t in real_docs.column("text").to_pylist())
    assert text_bytes > 3 * 2**20
    proc = sift_cli("dedup", str(src), "--output", str(tmp_path / "spark"), "--engine", "spark",
                    "--spark-master", "local[2]", "--spark-conf", "spark.driver.maxResultSize=1m")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    proc = sift_cli("dedup", str(src), "--output", str(tmp_path / "polars"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert_same_content(tmp_path / "spark", tmp_path / "polars")


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
@pytest.mark.parametrize(
    "mode_scope",
    [("verified", "global"), ("slimpajama", "local")],
    ids=["verified-global", "slimpajama-local"],
)
def test_standalone_cluster_cli_with_file_uris_matches_polars(
    spark_cluster: str, small_corpus: pa.Table, tmp_path: Path, sift_cli, mode_scope: tuple[str, str]
) -> None:
    src = tmp_path / "docs.parquet"
    pq.write_table(small_corpus, src)
    mode, scope = mode_scope
    common = ("--mode", mode, "--scope", scope, "--source-priority", "python_docs", "--seed", "7")
    proc = sift_cli("dedup", src.as_uri(), "--output", (tmp_path / "cluster").as_uri(), "--engine", "spark",
                    "--spark-master", spark_cluster, *common)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    proc = sift_cli("dedup", str(src), "--output", str(tmp_path / "polars"), "--engine", "polars", *common)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert_same_content(tmp_path / "cluster", tmp_path / "polars")


@pytest.mark.spark_cluster
@pytest.mark.slow
def test_spark_connect_cli_matches_polars(
    spark_connect: str, small_corpus: pa.Table, tmp_path: Path, sift_cli
) -> None:
    src = tmp_path / "docs.parquet"
    pq.write_table(small_corpus, src)
    proc = sift_cli("dedup", str(src), "--output", str(tmp_path / "connect"), "--spark-master", spark_connect,
                    "--seed", "5")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    proc = sift_cli(
        "dedup", str(src), "--output", str(tmp_path / "polars"), "--engine", "polars", "--seed", "5"
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert_same_content(tmp_path / "connect", tmp_path / "polars")
