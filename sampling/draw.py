"""The draw of adaptive equitable sampling on one machine (Polars): the pool read with the lake's readers and
cleaned, each group's rows put in the draw order, the validation holdout and the nested samples of the rounds.

The draw rule (shared with the Spark engine, engines/spark.py): within a group, rows are ordered by the hex SHA-256
of f"{seed}:{id}" (ascending). The first `holdout_g` rows of a group are its validation holdout, kept out of the pool
sampled from; a sample of n_g rows is the next n_g rows in that order, so the samples of successive rounds are
nested and both engines draw the same rows. `_rank` (1-based) is a row's place in its group's order.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import polars as pl
import pyarrow as pa

from sift.pipelines.core.errors import InputError
from sift.sampling.config import SampleConfig

KEY, RANK = "_key", "_rank"
NUMERIC = (pl.Int8, pl.Int16, pl.Int32, pl.Int64, pl.UInt8, pl.UInt16, pl.UInt32, pl.UInt64, pl.Float32,
           pl.Float64, pl.Boolean)  # fmt: skip


@dataclass
class Pool:
    """A cleaned pool: usable rows per group, the rows dropped by reason, and the candidate rows in draw order
    (group, then `_rank`): every usable row on Polars, the first rows of each group the run can use on Spark."""

    rows_in: int
    sizes: dict[str, int]
    dropped: dict[str, int]
    candidates: pl.DataFrame
    columns: list[str]  # the pool's own columns, in input order
    features: list[str] = field(default_factory=list)


def holdout_sizes(sizes: Mapping[str, int], config: SampleConfig) -> dict[str, int]:
    """Rows of each group kept out for validation: at most `holdout`, at most `holdout_share` of the group, at
    least 1."""
    return {g: max(1, min(config.holdout, int(n * config.holdout_share))) for g, n in sizes.items()}


def check_columns(
    columns: list[str], config: SampleConfig, needs_label: bool, needs_text: bool, uri: str
) -> None:
    """Refuse a pool without the id, group, label or text column the run needs."""
    need = [("id", config.id_field, "--id-field"), ("group", config.group_field, "--group-field")]
    if needs_label:
        if config.label_field is None:
            raise InputError(f"learner {config.learner!r} needs a label: give --label-field")
        need.append(("label", config.label_field, "--label-field"))
    if needs_text:
        need.append(("text", config.text_field, "the text_field setting"))
    for what, name, option in need:
        if name not in columns:
            raise InputError(f"{uri}: no {what} column {name!r} ({option}); columns are {columns}")


def default_features(columns: list[str], numeric: Callable[[str], bool], config: SampleConfig) -> list[str]:
    """The feature columns: the configured ones (each must be numeric), or every numeric column but id, group
    and label."""
    skip = {config.id_field, config.group_field, config.label_field}
    if config.features is not None:
        missing = [f for f in config.features if f not in columns]
        if missing:
            raise InputError(f"feature column(s) {missing} not in the pool; columns are {columns}")
        for f in config.features:
            if not numeric(f):
                raise InputError(f"feature column {f!r} is not numeric")
        return list(config.features)
    return [c for c in columns if c not in skip and numeric(c)]


def _is_numeric(t: Any) -> bool:
    return any(t == n for n in NUMERIC)


def draw_keys(ids: list[str], seed: int) -> list[str]:
    """The draw key of each id: hex SHA-256 of f"{seed}:{id}"."""
    return [hashlib.sha256(f"{seed}:{i}".encode()).hexdigest() for i in ids]


def read_pool(uri: str, config: SampleConfig, *, needs_label: bool, needs_text: bool, tabular: bool) -> Pool:
    """Read and clean the pool (lake readers: Parquet, JSONL, CSV) and order every group's rows for the draw."""
    from sift.pipelines.core.lake import read_table

    try:
        table: pa.Table = read_table(uri)
    except InputError:
        raise
    except Exception as exc:
        raise InputError(f"{uri}: cannot be read as a table ({exc})") from exc
    df = cast(pl.DataFrame, pl.from_arrow(table))
    columns = list(df.columns)
    check_columns(columns, config, needs_label, needs_text, uri)
    id_type = df.schema[config.id_field]
    if not (id_type == pl.Utf8 or id_type.is_integer()):
        raise InputError(f"{uri}: the id column {config.id_field!r} is {id_type}, not strings or integers")
    features = default_features(columns, lambda c: _is_numeric(df.schema[c]), config) if tabular else []
    if tabular and not features:
        raise InputError(
            f"{uri}: no numeric feature column for learner {config.learner!r}; columns are {columns}"
        )
    rows_in = df.height
    df = df.with_columns(pl.col(config.id_field).cast(pl.Utf8).alias("_id"),
                         pl.col(config.group_field).cast(pl.Utf8).alias("_group"))  # fmt: skip
    dropped: dict[str, int] = {}

    def drop(reason: str, bad: pl.Expr) -> None:
        nonlocal df
        n = df.select(bad.sum()).item()
        if n:
            dropped[reason] = int(n)
            df = df.filter(~bad)

    drop("no id", pl.col("_id").is_null() | (pl.col("_id").str.strip_chars() == ""))
    drop("no group", pl.col("_group").is_null())
    if needs_label and config.label_field is not None:
        drop("no label", pl.col(config.label_field).is_null())
    if needs_text:
        drop("no text", pl.col(config.text_field).is_null())
    if features:
        bad = pl.any_horizontal(
            [pl.col(f).is_null() | (pl.col(f).cast(pl.Float64).is_nan()) for f in features]
        )
        n_bad = df.select(bad.sum()).item()
        if n_bad and config.nan_features == "refuse":
            raise InputError(f"{uri}: {n_bad} rows have a missing or NaN feature (nan_features = refuse)")
        drop("missing or NaN feature", bad)
    repeated = df.group_by("_id").len().filter(pl.col("len") > 1).sort("_id").head(1)
    if repeated.height:
        raise InputError(
            f"{uri}: id {repeated['_id'][0]!r} appears {repeated['len'][0]} times; ids must be unique"
        )
    df = df.with_columns(pl.Series(KEY, draw_keys(df["_id"].to_list(), config.seed), pl.Utf8))
    df = df.sort(["_group", KEY]).with_columns(pl.int_range(1, pl.len() + 1).over("_group").alias(RANK))
    sizes = {str(g): int(n) for g, n in df.group_by("_group").len().sort("_group").iter_rows()}
    return Pool(rows_in, sizes, dropped, df, columns, features)


def take(candidates: pl.DataFrame, start: Mapping[str, int], n: Mapping[str, int]) -> pl.DataFrame:
    """The rows of each group g ranked start_g < _rank <= start_g + n_g, in draw order."""
    groups = list(n)
    lo = pl.col("_group").replace_strict(groups, [start[g] for g in groups], default=0, return_dtype=pl.Int64)
    hi = pl.col("_group").replace_strict(groups, [start[g] + n[g] for g in groups], default=0,
                                         return_dtype=pl.Int64)  # fmt: skip
    return candidates.filter((pl.col(RANK) > lo) & (pl.col(RANK) <= hi))


def pool_columns(df: pl.DataFrame, columns: list[str]) -> pl.DataFrame:
    """The pool's own columns of `df` (the draw's helper columns dropped)."""
    return df.select(columns)
