"""The draw of adaptive equitable sampling on Spark (Cai et al., FAccT 2022, the sampled training set of a large
pool): the executors read the pool, clean it, order each group's rows by the draw rule (SHA-256 of f"{seed}:{id}",
draw.py) and write sample.parquet; the driver gets only counts and the rows the learner can use.

- `SparkPlan(session, uri, config, ...)`: the pool as a DataFrame with `_id`, `_group`, `_key` (the draw key) and
  `_rank` (row_number within the group by `_key`); the driver collects the rows dropped per reason, the group sizes
  (an aggregation: one row per group) and the first repeated id if any.
- `candidates(limit)`: the first `limit[g]` rows of each group (its holdout plus what the budget can buy at the
  group's cost, so bounded by the budget) collected to the driver as a Polars frame, where the learner trains.
- `write_sample(holdout, allocation, target)`: the executors write the drawn rows (every column of the pool, in
  group then draw order) as Parquet part files, renamed part-00000.parquet, ... in order by the driver.

Same rows as the Polars draw (draw.py) for the same pool and seed. A group is one window partition when ranking.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, cast

import polars as pl

from sift.pipelines.core.atomic import atomic_dir
from sift.pipelines.core.errors import InputError
from sift.sampling.config import SampleConfig
from sift.sampling.draw import KEY, RANK, Pool, check_columns, default_features

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

_NUMERIC = ("tinyint", "smallint", "int", "bigint", "float", "double", "boolean")


def _uri(path: str) -> str:
    return Path(path).resolve().as_uri() if "://" not in path else path


class SparkPlan:
    """The pool on Spark, cleaned and ranked for the draw (see the module docstring)."""

    def __init__(self, spark: SparkSession, uri: str, config: SampleConfig, *, needs_label: bool,
                 needs_text: bool, tabular: bool) -> None:  # fmt: skip
        from pyspark.sql import Window
        from pyspark.sql import functions as F

        from sift.pipelines.core.lake import list_input_files

        self.spark, self.config = spark, config
        fs, paths, fmt = list_input_files(uri)
        urls = [fs.unstrip_protocol(p) for p in paths]
        if fmt == "parquet":
            df = spark.read.parquet(*urls)
        elif fmt == "jsonl":
            df = spark.read.json(urls)
        elif fmt == "csv":
            df = spark.read.option("header", True).option("inferSchema", True).csv(urls)
        else:
            raise InputError(f"{uri}: the Spark engine reads Parquet, JSONL or CSV pools, not {fmt}")
        self.columns = list(df.columns)
        check_columns(self.columns, config, needs_label, needs_text, uri)
        types = dict(df.dtypes)
        if types[config.id_field] not in ("string", "tinyint", "smallint", "int", "bigint"):
            raise InputError(
                f"{uri}: the id column {config.id_field!r} is {types[config.id_field]}, not strings or integers"
            )
        self.features = (
            default_features(self.columns, lambda c: types[c] in _NUMERIC, config) if tabular else []
        )
        if tabular and not self.features:
            raise InputError(f"{uri}: no numeric feature column for learner {config.learner!r}")
        df = df.withColumn("_id", F.col(config.id_field).cast("string")).withColumn(
            "_group", F.col(config.group_field).cast("string")
        )
        reason = F.when(F.col("_id").isNull() | (F.trim(F.col("_id")) == ""), F.lit("no id")).when(
            F.col("_group").isNull(), F.lit("no group")
        )
        if needs_label and config.label_field is not None:
            reason = reason.when(F.col(config.label_field).isNull(), F.lit("no label"))
        if needs_text:
            reason = reason.when(F.col(config.text_field).isNull(), F.lit("no text"))
        if self.features:
            bad = F.lit(False)
            for f in self.features:
                bad = bad | F.col(f).isNull() | F.isnan(F.col(f).cast("double"))
            reason = reason.when(bad, F.lit("missing or NaN feature"))
        df = df.withColumn("_reason", reason)
        counts = {
            r["_reason"]: int(r["count"]) for r in df.groupBy("_reason").count().collect()
        }  # per reason
        self.rows_in = sum(counts.values())
        self.dropped = dict(sorted((k, v) for k, v in counts.items() if k is not None))
        if self.dropped.get("missing or NaN feature") and config.nan_features == "refuse":
            raise InputError(
                f"{uri}: {self.dropped['missing or NaN feature']} rows have a missing or NaN feature "
                "(nan_features = refuse)"
            )
        usable = df.filter(F.col("_reason").isNull()).drop("_reason")
        repeated = (
            usable.groupBy("_id").count().filter(F.col("count") > 1).orderBy("_id").limit(1).collect()
        )  # at most one row
        if repeated:
            raise InputError(
                f"{uri}: id {repeated[0]['_id']!r} appears {repeated[0]['count']} times; ids must be unique"
            )
        key = F.sha2(F.concat(F.lit(f"{config.seed}:"), F.col("_id")), 256)
        order = Window.partitionBy("_group").orderBy(KEY)
        self.ranked: DataFrame = usable.withColumn(KEY, key).withColumn(
            RANK, F.row_number().over(order).cast("long")
        )
        self.sizes = {
            str(r["_group"]): int(r["count"]) for r in usable.groupBy("_group").count().collect()
        }  # one row per group
        self.sizes = dict(sorted(self.sizes.items()))

    def _within(self, start: Mapping[str, int], n: Mapping[str, int]) -> DataFrame:
        from pyspark.sql import functions as F

        cond = None
        for g in sorted(n):
            c = (F.col("_group") == g) & (F.col(RANK) > start[g]) & (F.col(RANK) <= start[g] + n[g])
            cond = c if cond is None else cond | c
        return self.ranked.filter(cond if cond is not None else F.lit(False))

    def candidates(self, limit: Mapping[str, int]) -> Pool:
        """The first limit[g] rows of each group, on the driver, in draw order."""
        rows = self._within(
            {g: 0 for g in limit}, limit
        ).toArrow()  # bounded: holdout + budget / cost per group
        frame = cast(pl.DataFrame, pl.from_arrow(rows)).sort(["_group", KEY])
        return Pool(
            self.rows_in, dict(self.sizes), dict(self.dropped), frame, self.columns, list(self.features)
        )

    def write_sample(self, holdout: Mapping[str, int], allocation: Mapping[str, int], target: Path) -> int:
        """Have the executors write the drawn rows as target/part-NNNNN.parquet; returns the rows written."""
        work = target.parent / "_work" / "spark_sample"
        if work.exists():
            shutil.rmtree(work)
        work.parent.mkdir(parents=True, exist_ok=True)
        drawn = self._within(holdout, allocation).orderBy("_group", KEY).select(*self.columns)
        drawn.write.mode("overwrite").parquet(_uri(str(work)))
        parts = sorted(
            p for p in work.iterdir() if p.name.startswith("part-") and p.name.endswith(".parquet")
        )
        if target.is_file():
            target.unlink()
        with atomic_dir(target) as tmp:
            for i, part in enumerate(parts):
                dst = tmp / f"part-{i:05d}.parquet"
                try:
                    os.link(part, dst)
                except OSError:
                    shutil.copyfile(part, dst)
        shutil.rmtree(work)
        if not any(work.parent.iterdir()):
            work.parent.rmdir()
        return int(sum(allocation[g] for g in allocation))
