"""Issue 13 on Spark: the executors draw and write the same rows as the Polars draw (sample.parquet as part files,
byte-identical run to run), and the learner sees the same rows, so the rounds are the same."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_sample import cps_pool

from sift.pipelines.core.stage import SparkEngine
from sift.sampling import SampleConfig, run

pytestmark = pytest.mark.spark


def test_spark_draws_the_same_rows_as_polars(spark, tmp_path: Path) -> None:
    pool = tmp_path / "pool"
    pool.mkdir()
    table = cps_pool(rows=1600, seed=1)
    pq.write_table(table.slice(0, 800), pool / "a.parquet")  # a folder of two files
    pq.write_table(table.slice(800), pool / "b.parquet")
    cfg = SampleConfig(group_field="region", label_field="high", budget=200, pilot=15, rounds=2, holdout=60,
                       costs={"west": 2.0}, seed=5)  # fmt: skip
    polars_stats = run(str(pool), cfg, tmp_path / "polars")
    spark_stats = run(str(pool), cfg, tmp_path / "spark", SparkEngine(spark))
    parts = sorted(p.name for p in (tmp_path / "spark" / "sample.parquet").iterdir())
    assert parts and parts == [f"part-{i:05d}.parquet" for i in range(len(parts))]
    a = pq.read_table(tmp_path / "polars" / "sample.parquet")
    b = pq.read_table(tmp_path / "spark" / "sample.parquet").replace_schema_metadata(None)
    assert b.column_names == a.column_names
    assert b.cast(a.schema).equals(a)  # same rows, same order, same values
    assert spark_stats["engine"] == "spark"
    for s in (polars_stats, spark_stats):
        s.pop("engine")
    assert spark_stats == polars_stats
    # rerun: the part files and stats.json are byte-identical
    run(str(pool), cfg, tmp_path / "spark2", SparkEngine(spark))
    for p in parts:
        first = (tmp_path / "spark" / "sample.parquet" / p).read_bytes()
        assert first == (tmp_path / "spark2" / "sample.parquet" / p).read_bytes()
    assert (tmp_path / "spark" / "stats.json").read_bytes() == (
        tmp_path / "spark2" / "stats.json"
    ).read_bytes()
    assert not (tmp_path / "spark" / "_work").exists()
    assert json.loads((tmp_path / "spark" / "stats.json").read_text())["sampled"] == a.num_rows


def test_spark_counts_dropped_rows_like_polars(spark, tmp_path: Path) -> None:
    table = cps_pool(rows=600, seed=2)
    ids = table.column("id").to_pylist()
    ids[0] = None
    edu = table.column("education").cast(pa.float64()).to_pylist()
    edu[3] = float("nan")
    table = table.set_column(0, "id", pa.array(ids, pa.string())).set_column(
        2, "education", pa.array(edu, pa.float64())
    )
    path = tmp_path / "pool.parquet"
    pq.write_table(table, path)
    cfg = SampleConfig(group_field="region", label_field="high", budget=100, strategy="equal", holdout=30)
    stats = run(str(path), cfg, tmp_path / "s", SparkEngine(spark))
    assert stats["dropped"] == {"missing or NaN feature": 1, "no id": 1}
    assert stats["dropped"] == run(str(path), cfg, tmp_path / "p")["dropped"]
