"""Python entry point of adaptive equitable sampling ("Adaptive Sampling Strategies to Construct Equitable Training
Datasets", Cai et al., FAccT 2022), shared by the CLI, the Dagster assets and the tests.

`run(inputs, config, output, engine)` reads the pool (the lake readers; ids required, groups from
`config.group_field`), drops the rows it cannot use (no id, no group, no label or text, a missing or NaN feature:
counted by reason), puts each group's rows in the draw order (draw.py: SHA-256 of f"{seed}:{id}"), keeps the first
rows of each group as its validation holdout, and spends the budget with the chosen strategy:

- adaptive: kernels.adaptive.adaptive, whose `evaluate` draws the first n_g rows of each group after its holdout,
  trains the learner (learners.py) on them and measures each group's validation error;
- optimal: the pilot, learning curves fitted on it (kernels.curves.fit_curve), then
  kernels.allocate.optimal_allocation for the whole budget;
- equal, proportional (to the groups' pool sizes): kernels.allocate's baselines.

It writes `allocation.parquet` (per group and round: pool size, holdout, cost, weight, n, error), `sample.parquet`
(the drawn rows with every column of the pool; on Spark a folder of part files written by the executors),
`stats.json` (every round: allocation, spent, errors, fitted curve parameters; no timings) and report.md with
curves.png and allocation.png (report.py). Progress per round goes to `logging.getLogger("sift.sample")`.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa

from sift.pipelines.core.atomic import remove_tmp_files, write_json, write_parquet
from sift.pipelines.core.errors import InputError
from sift.pipelines.core.lake.read import plain_type
from sift.pipelines.core.locks import output_lock
from sift.pipelines.core.stage import Engine, PolarsEngine, SparkEngine, one_input
from sift.sampling.config import SampleConfig
from sift.sampling.draw import RANK, Pool, holdout_sizes, pool_columns, read_pool, take
from sift.sampling.kernels.adaptive import Round, adaptive
from sift.sampling.kernels.allocate import (
    Objective,
    equal_allocation,
    loss,
    optimal_allocation,
    parse_objective,
    proportional_allocation,
)
from sift.sampling.kernels.curves import CurveFit, fit_curve
from sift.sampling.learners import Learner, LearnerSpec, learner_class

PROGRESS = logging.getLogger("sift.sample")
OUTPUTS = ("allocation.parquet", "sample.parquet", "stats.json", "report.md", "curves.png", "allocation.png")
VALIDATION = (
    "a fixed holdout per group: the first holdout_g rows of the group in the draw order (SHA-256 of seed:id), "
    "holdout_g = max(1, min(holdout, holdout_share x group rows)); kept out of the pool that is sampled from"
)


def _costs(config: SampleConfig, groups: list[str]) -> dict[str, float]:
    unknown = sorted(set(config.costs) - set(groups))
    if unknown:
        raise InputError(
            f"--costs names group(s) {', '.join(map(repr, unknown))} that the pool lacks "
            f"(groups: {', '.join(groups)})"
        )
    return {g: float(config.costs.get(g, 1.0)) for g in groups}


def _weights(config: SampleConfig, sizes: dict[str, int]) -> dict[str, float]:
    unknown = sorted(set(config.weights) - set(sizes))
    if unknown:
        raise InputError(f"weights name group(s) {', '.join(map(repr, unknown))} that the pool lacks")
    if config.weights:
        raw = {g: float(config.weights.get(g, 0.0)) for g in sizes}
    else:  # each group's share of the pool
        raw = {g: float(n) for g, n in sizes.items()}
    total = sum(raw.values())
    if not total > 0:
        raise InputError("the objective's weights sum to 0")
    return {g: w / total for g, w in raw.items()}


def _plain(table: pa.Table) -> pa.Table:
    """Plain `string` columns (Polars hands back large strings), as the lake and Spark write them."""
    return table.cast(pa.schema([pa.field(f.name, plain_type(f.type)) for f in table.schema]))


def _curve_json(fit: CurveFit) -> dict[str, Any]:
    c = fit.curve
    return {"a": c.a, "b": c.b, "c": c.c, "points": [list(p) for p in fit.points], "bootstrap": len(fit.boot)}


class _Evaluator:
    """`evaluate(allocation)` of the kernels: train on the first n_g rows of each group after its holdout and
    measure each group's validation error (cached per allocation); records what SMOTE added."""

    def __init__(self, pool: Pool, holdout: dict[str, int], learner: Learner, groups: list[str]) -> None:
        self.pool, self.holdout, self.learner, self.groups = pool, holdout, learner, groups
        self.valid = pool.candidates.filter(
            pl.col(RANK)
            <= pl.col("_group").replace_strict(
                groups, [holdout[g] for g in groups], default=0, return_dtype=pl.Int64
            )  # fmt: skip
        )
        self.cache: dict[tuple[int, ...], dict[str, float]] = {}
        self.synthetic: dict[tuple[int, ...], dict[str, int]] = {}

    def __call__(self, allocation: dict[str, int]) -> dict[str, float]:
        key = tuple(int(allocation[g]) for g in self.groups)
        if key not in self.cache:
            train = take(self.pool.candidates, self.holdout, {g: int(allocation[g]) for g in self.groups})
            m = self.learner.measure(train, self.valid, self.groups)
            self.cache[key] = m.errors
            self.synthetic[key] = m.synthetic
        return dict(self.cache[key])


def _nested_points(evaluate: _Evaluator, alloc: dict[str, int], seed: int) -> dict[str, CurveFit]:
    """Curves fitted on the errors at alloc/4, alloc/2 and alloc (nested samples)."""
    for frac in (4, 2, 1):
        part = {g: n // frac for g, n in alloc.items()}
        if min(part.values()) >= 2:
            evaluate(part)
    return _fits(evaluate, seed)


def _fits(evaluate: _Evaluator, seed: int) -> dict[str, CurveFit]:
    points: dict[str, list[tuple[int, float]]] = {g: [] for g in evaluate.groups}
    for key, errs in sorted(evaluate.cache.items()):
        for g, n in zip(evaluate.groups, key, strict=True):
            if not math.isnan(errs[g]):
                points[g].append((n, errs[g]))
    out = {}
    for g, pts in points.items():
        if len({p[0] for p in pts}) >= 2:
            out[g] = fit_curve([p[0] for p in pts], [p[1] for p in pts], seed=seed, bootstrap=100)
    return out


def _strategy(config: SampleConfig, evaluate: _Evaluator, costs: dict[str, float], objective: Objective,
              weights: dict[str, float], cap: dict[str, int], sizes: dict[str, int]) -> list[Round]:  # fmt: skip
    groups = evaluate.groups

    def spent(a: dict[str, int]) -> float:
        return sum(costs[g] * a[g] for g in groups)

    def report(r: Round) -> None:
        PROGRESS.info(
            "sample: round %d: spent %.6g of %.6g; %s", r.index, r.spent, config.budget,
            ", ".join(f"{g} n={r.allocation[g]} err={r.errors[g]:.4g}" for g in groups),
        )  # fmt: skip
        if config.strategy == "adaptive":  # a progress bar on a terminal: the pilot and each round
            done, total = r.index + 1, config.rounds + 1
            PROGRESS.info(
                "sample: %d/%d rounds", done, total,
                extra={"sift_progress": {"task": "adaptive rounds", "done": done, "total": total, "unit": "rounds"}},
            )  # fmt: skip

    if config.strategy == "adaptive":
        try:
            return adaptive(costs, config.budget, objective, weights, evaluate=evaluate, pilot=config.pilot,
                            rounds=config.rounds, cap=cap, seed=config.seed, on_round=report)  # fmt: skip
        except ValueError as exc:
            raise InputError(str(exc)) from exc
    if config.strategy == "optimal":
        pilot = {g: config.pilot for g in groups}
        fits = _nested_points(evaluate, pilot, config.seed)
        first = Round(0, pilot, spent(pilot), evaluate(pilot), fits)
        report(first)
        if len(fits) < len(groups):
            raise InputError("the pilot gives too few distinct sample sizes to fit a curve (raise --pilot)")
        alloc = optimal_allocation({g: fits[g].curve for g in groups}, costs, config.budget, objective, weights,
                                   floor=pilot, cap=cap)  # fmt: skip
        errs = evaluate(alloc)
        last = Round(1, alloc, spent(alloc), errs, _fits(evaluate, config.seed))
        report(last)
        return [first, last]
    if config.strategy == "equal":
        alloc = equal_allocation(costs, config.budget, cap=cap)
    else:
        alloc = proportional_allocation({g: float(sizes[g]) for g in groups}, costs, config.budget, cap=cap)
    if min(alloc.values()) < 1:
        raise InputError(
            f"the budget {config.budget:g} leaves a group with no row under {config.strategy} sampling"
        )
    errs = evaluate(alloc)
    only = Round(0, alloc, spent(alloc), errs, _nested_points(evaluate, alloc, config.seed))
    report(only)
    return [only]


def run(
    inputs: str | Sequence[str],
    config: SampleConfig | None = None,
    output: str | os.PathLike[str] = "sample_out",
    engine: Engine | None = None,
) -> dict[str, Any]:
    """Sample a training set from the pool within the budget (see the module docstring); returns stats.json's
    content."""
    config = config or SampleConfig()
    engine = engine or PolarsEngine()
    uri = one_input(inputs, "sample")
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    factory = learner_class(config.learner)
    probe = factory(LearnerSpec(config.group_field, config.label_field, config.text_field, [], config.seed))
    with output_lock(out):
        remove_tmp_files(out)
        PROGRESS.info("sample: reading the pool %s (%s engine)", uri, engine.name)
        spark_plan = None
        if isinstance(engine, SparkEngine):
            from sift.sampling.engines.spark import SparkPlan

            spark_plan = SparkPlan(engine.session, uri, config, needs_label=probe.needs_label,
                                   needs_text=probe.needs_text, tabular=probe.tabular)  # fmt: skip
            sizes0 = spark_plan.sizes
        else:
            pool = read_pool(uri, config, needs_label=probe.needs_label, needs_text=probe.needs_text,
                             tabular=probe.tabular)  # fmt: skip
            sizes0 = pool.sizes
        groups = sorted(sizes0)
        if not groups:
            raise InputError(f"{uri}: no usable row to sample from")
        costs = _costs(config, groups)
        holdout = holdout_sizes(sizes0, config)
        available = {g: sizes0[g] - holdout[g] for g in groups}
        cap = {g: min(available[g], int(config.budget // costs[g])) for g in groups}
        if config.strategy in ("adaptive", "optimal"):
            small = [g for g in groups if available[g] < config.pilot]
            if small:
                g = small[0]
                raise InputError(
                    f"group {g!r} has {sizes0[g]} usable rows ({holdout[g]} held out for validation), fewer "
                    f"than the pilot batch ({config.pilot}): lower --pilot or drop the group"
                )
            pilot_cost = sum(costs[g] * config.pilot for g in groups)
            if pilot_cost > config.budget:
                raise InputError(
                    f"the budget {config.budget:g} is smaller than the pilot: {config.pilot} rows per group cost "
                    f"{pilot_cost:g}"
                )
        try:
            objective = parse_objective(config.objective, groups)
        except ValueError as exc:
            raise InputError(str(exc)) from exc
        weights = _weights(config, sizes0)
        if spark_plan is not None:
            pool = spark_plan.candidates({g: holdout[g] + cap[g] for g in groups})
        learner = factory(LearnerSpec("_group", config.label_field, config.text_field, pool.features, config.seed,
                                      config.smote_floor))  # fmt: skip
        PROGRESS.info("sample: %d groups, %s strategy, %s objective, learner %s", len(groups), config.strategy,
                      config.objective, config.learner)  # fmt: skip
        evaluate = _Evaluator(pool, holdout, learner, groups)
        rounds = _strategy(config, evaluate, costs, objective, weights, cap, sizes0)
        final = rounds[-1]
        total = sum(costs[g] * final.allocation[g] for g in groups)
        if total > config.budget:  # the kernels' contract; never write a sample over budget
            raise RuntimeError(
                f"the {config.strategy} allocation spends {total:g}, over the budget {config.budget:g}"
            )

        # outputs
        if spark_plan is not None:
            sample_rows = spark_plan.write_sample(holdout, final.allocation, out / "sample.parquet")
        else:
            sample = pool_columns(take(pool.candidates, holdout, final.allocation), pool.columns)
            if (out / "sample.parquet").is_dir():  # a Spark run's folder of part files
                shutil.rmtree(out / "sample.parquet")
            write_parquet(_plain(sample.to_arrow()), out / "sample.parquet")
            sample_rows = sample.height
        alloc_rows = []
        for r in rounds:
            for g in groups:
                alloc_rows.append({
                    "group": g, "pool_size": sizes0[g], "holdout": holdout[g], "cost": costs[g],
                    "weight": weights[g], "strategy": config.strategy, "round": r.index,
                    "n": int(r.allocation[g]), "error": float(r.errors[g]),
                })  # fmt: skip
        write_parquet(_plain(pl.DataFrame(alloc_rows).to_arrow()), out / "allocation.parquet")

        def round_json(r: Round) -> dict[str, Any]:
            key = tuple(int(r.allocation[g]) for g in groups)
            return {
                "index": r.index,
                "allocation": {g: int(r.allocation[g]) for g in groups},
                "spent": r.spent,
                "errors": r.errors,
                "loss": loss(objective, r.errors, weights),
                "curves": {g: _curve_json(f) for g, f in sorted(r.fits.items())},
                "smote_synthetic": evaluate.synthetic.get(key, {}),
            }

        usable = sum(sizes0.values())
        held = sum(holdout.values())
        stats: dict[str, Any] = {
            "stage": "sample",
            "input": uri,
            "engine": engine.name,
            "config": config.model_dump(mode="json"),
            "rows_in": pool.rows_in,
            "dropped": dict(sorted(pool.dropped.items())),
            "usable": usable,
            "holdout": held,
            "sampled": sample_rows,
            "not_sampled": usable - held - sample_rows,
            "validation": VALIDATION,
            "features": pool.features,
            "groups": {
                g: {
                    "pool": sizes0[g],
                    "holdout": holdout[g],
                    "available": available[g],
                    "cost": costs[g],
                    "weight": weights[g],
                    "cap": cap[g],
                }
                for g in groups
            },  # fmt: skip
            "objective": config.objective,
            "strategy": config.strategy,
            "budget": config.budget,
            "spent": total,
            "rounds": [round_json(r) for r in rounds],
            "final": {
                "allocation": {g: int(final.allocation[g]) for g in groups},
                "errors": final.errors,
                "loss": loss(objective, final.errors, weights),
            },
            "evaluations": len(evaluate.cache),
        }
        if config.smote_floor and not learner.tabular:
            stats["smote"] = f"smote_floor ignored: learner {config.learner!r} is not tabular"
        from sift.sampling.report import write_report

        write_report(out, stats, rounds, groups)
        write_json(stats, out / "stats.json")
        PROGRESS.info(
            "sample: %d rows drawn, spent %.6g of %.6g -> %s", sample_rows, total, config.budget, out
        )
    return stats
