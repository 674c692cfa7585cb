"""Tests of the equitable-sampling kernels (issue 13, Cai et al. FAccT 2022): the learning-curve fit, the objectives,
the optimal allocation against a brute-force search, the baselines, the adaptive rounds, and the simulation study.

The brute force and the loss it minimises are written here from the definitions (`ref_loss`), apart from the code
under test.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from conftest import bench_module

from sift.sampling.kernels.adaptive import Round, adaptive
from sift.sampling.kernels.allocate import (
    Objective,
    equal_allocation,
    loss,
    optimal_allocation,
    parse_objective,
    proportional_allocation,
)
from sift.sampling.kernels.curves import Curve, fit_curve

sample_sim = bench_module("sample_sim")

# ---- curves ----------------------------------------------------------------------------------------------------


def test_fit_recovers_known_parameters_from_noisy_points() -> None:
    true = Curve(a=2.0, b=0.6, c=0.05)
    rng = np.random.default_rng(7)
    n = np.geomspace(10, 5000, 9).round()
    err = np.asarray(true.error(n)) * (1 + 0.02 * rng.standard_normal(n.size))
    fit = fit_curve(n, err, seed=1, bootstrap=50)
    assert fit.curve.a == pytest.approx(2.0, rel=0.15)
    assert fit.curve.b == pytest.approx(0.6, abs=0.05)
    assert fit.curve.c == pytest.approx(0.05, abs=0.01)
    assert fit.boot.shape == (50, 3)
    lo, hi = fit.band(np.array([50.0, 500.0, 50_000.0]))
    assert np.all(lo <= hi)
    truth = np.asarray(true.error(np.array([50.0, 500.0])))
    assert np.all(np.abs(truth - np.asarray(fit.curve.error(np.array([50.0, 500.0])))) < 0.01)
    assert [p[0] for p in fit.points] == sorted(int(v) for v in n)


def test_fit_with_two_sizes_passes_through_them_with_no_floor() -> None:
    fit = fit_curve([10, 40], [0.5, 0.25], bootstrap=0)
    assert fit.curve.c == 0.0
    assert fit.curve.error(10) == pytest.approx(0.5, rel=1e-6)
    assert fit.curve.error(40) == pytest.approx(0.25, rel=1e-6)
    assert fit.boot.shape == (0, 3)
    lo, hi = fit.band(np.array([20.0]))
    assert lo == pytest.approx(hi)


def test_fit_of_a_flat_or_rising_curve_is_flat() -> None:
    flat = fit_curve([10, 20, 40, 80], [0.3, 0.3, 0.3, 0.3], bootstrap=0).curve
    rising = fit_curve([10, 20, 40, 80], [0.2, 0.25, 0.3, 0.35], bootstrap=0).curve
    for curve in (flat, rising):
        assert abs(curve.error(10) - curve.error(10_000)) < 1e-6


def test_fit_bootstrap_is_deterministic_for_a_seed() -> None:
    n, err = [10, 20, 40, 80, 160], [0.5, 0.38, 0.3, 0.26, 0.22]
    one, two = fit_curve(n, err, seed=3, bootstrap=20), fit_curve(n, err, seed=3, bootstrap=20)
    assert np.array_equal(one.boot, two.boot)
    assert not np.array_equal(one.boot, fit_curve(n, err, seed=4, bootstrap=20).boot)


@pytest.mark.parametrize(
    ("n", "err", "match"),
    [
        ([10, 10, 10], [0.3, 0.2, 0.25], "2 or more distinct sizes"),
        ([10, 20], [0.3], "as many errors as sizes"),
        ([0, 20], [0.3, 0.2], "sizes > 0"),
        ([10, 20], [0.3, float("nan")], "finite"),
    ],
)
def test_fit_bad_points_are_a_clear_value_error(n: list[float], err: list[float], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        fit_curve(n, err)


# ---- objectives ------------------------------------------------------------------------------------------------


def test_parse_objective() -> None:
    groups = ["a", "b"]
    assert parse_objective("weighted", groups) == Objective("weighted")
    assert parse_objective("maximin", groups) == Objective("maximin")
    assert parse_objective("target:b", groups) == Objective("target", target="b")
    assert parse_objective("gap:0.1", groups) == Objective("gap", gap=0.1)
    for text, match in [
        ("target:c", "group 'c' is not one of"),
        ("gap:0", "gap must be a number > 0"),
        ("gap:x", "not a number"),
        ("best", "is not one of weighted, maximin"),
    ]:
        with pytest.raises(ValueError, match=match):
            parse_objective(text, groups)


def ref_loss(kind: str, errs: np.ndarray, w: np.ndarray, target: int = 0, gap: float = 0.0) -> np.ndarray:
    """The loss of every row of `errs`, from the definitions (weights already normalised)."""
    if kind == "weighted":
        return errs @ w
    if kind == "maximin":
        return errs.max(axis=1)
    if kind == "target":
        return errs[:, target]
    spread = errs.max(axis=1) - errs.min(axis=1)
    return errs @ w + 10.0 * np.maximum(spread - gap, 0.0)


def test_loss_follows_the_definitions() -> None:
    errors, weights = {"a": 0.4, "b": 0.1}, {"a": 1.0, "b": 3.0}  # normalised to 0.25, 0.75
    assert loss(Objective("weighted"), errors, weights) == pytest.approx(0.175)
    assert loss(Objective("maximin"), errors, weights) == pytest.approx(0.4)
    assert loss(Objective("target", target="b"), errors, weights) == pytest.approx(0.1)
    assert loss(Objective("gap", gap=0.5), errors, weights) == pytest.approx(0.175)
    assert loss(Objective("gap", gap=0.1), errors, weights) == pytest.approx(0.175 + 10 * 0.2)
    with pytest.raises(ValueError, match="weights lack the groups"):
        loss(Objective("weighted"), errors, {"a": 1.0})


# ---- optimal allocation against brute force ---------------------------------------------------------------------


def _instance(rng: np.random.Generator) -> tuple[dict, dict, float, dict, dict, dict]:
    groups = [f"g{i}" for i in range(int(rng.integers(2, 4)))]
    curves = {
        g: Curve(float(rng.uniform(0.2, 1.0)), float(rng.uniform(0.1, 1.5)), float(rng.uniform(0.0, 0.3)))
        for g in groups
    }
    costs = {g: float(rng.integers(1, 5)) for g in groups}
    weights = {g: float(rng.uniform(0.1, 1.0)) for g in groups}
    floor = {g: int(rng.integers(0, 2)) for g in groups}
    cap = {g: int(rng.integers(3, 20)) for g in groups}
    budget = float(rng.integers(int(sum(costs[g] * floor[g] for g in groups)) + 1, 40))
    return curves, costs, budget, weights, floor, cap


def _brute(
    curves: dict, costs: dict, budget: float, objective: Objective, weights: dict, floor: dict, cap: dict
):
    groups = list(curves)
    grid = np.array(list(itertools.product(*[range(floor[g], cap[g] + 1) for g in groups])), dtype=float)
    cost = np.array([costs[g] for g in groups])
    grid = grid[[math.fsum(cost * row) <= budget for row in grid]]
    errs = np.column_stack([np.asarray(curves[g].error(grid[:, i])) for i, g in enumerate(groups)])
    w = np.array([weights[g] for g in groups])
    target = groups.index(objective.target) if objective.target else 0
    with np.errstate(invalid="ignore"):
        vals = ref_loss(objective.kind, errs, w / w.sum(), target, objective.gap or 0.0)
    vals = np.where(np.isnan(vals), np.inf, vals)
    return float(vals.min())


TEXT = {"weighted": "weighted", "maximin": "maximin", "target": "target:g0", "gap": "gap:0.15"}


@pytest.mark.parametrize("kind", list(TEXT))
def test_optimal_allocation_equals_brute_force_on_small_instances(kind: str) -> None:
    rng = np.random.default_rng({"weighted": 1, "maximin": 2, "target": 3, "gap": 4}[kind])
    for _ in range(30):
        curves, costs, budget, weights, floor, cap = _instance(rng)
        objective = parse_objective(TEXT[kind], list(curves))
        got = optimal_allocation(curves, costs, budget, objective, weights, floor=floor, cap=cap)
        assert math.fsum(costs[g] * got[g] for g in got) <= budget
        assert all(floor[g] <= got[g] <= cap[g] for g in got)
        mine = loss(objective, {g: float(curves[g].error(got[g])) for g in got}, weights)
        best = _brute(curves, costs, budget, objective, weights, floor, cap)
        assert mine == pytest.approx(best, rel=1e-9, abs=1e-12), (curves, costs, budget, floor, cap, got)


def test_budget_floors_and_caps_hold_on_random_instances() -> None:
    rng = np.random.default_rng(11)
    for _ in range(25):
        groups = [f"g{i}" for i in range(int(rng.integers(1, 6)))]
        curves = {
            g: Curve(float(rng.uniform(0, 3)), float(rng.uniform(0.05, 2.5)), float(rng.uniform(0, 0.5)))
            for g in groups
        }
        costs = {g: float(rng.uniform(0.05, 7.0)) for g in groups}
        floor = {g: int(rng.integers(0, 30)) for g in groups}
        cap = {g: floor[g] + int(rng.integers(0, 5000)) for g in groups}
        budget = math.fsum(costs[g] * floor[g] for g in groups) + float(rng.uniform(0, 5_000))
        weights = {g: float(rng.uniform(0, 1)) + 1e-3 for g in groups}
        shares = {g: float(rng.uniform(0, 1)) + 1e-3 for g in groups}
        allocations = [
            optimal_allocation(
                curves, costs, budget, parse_objective(text, groups), weights, floor=floor, cap=cap
            )
            for text in ("weighted", "maximin", f"target:{groups[-1]}", "gap:0.05")
        ]
        allocations.append(equal_allocation(costs, budget, floor=floor, cap=cap))
        allocations.append(proportional_allocation(shares, costs, budget, floor=floor, cap=cap))
        for got in allocations:
            assert math.fsum(costs[g] * got[g] for g in groups) <= budget
            assert all(floor[g] <= got[g] <= cap[g] and isinstance(got[g], int) for g in groups)


def test_floors_and_caps_bind() -> None:
    curves = {"fast": Curve(1.0, 1.0, 0.0), "slow": Curve(1.0, 0.2, 0.0)}
    costs = {"fast": 1.0, "slow": 1.0}
    got = optimal_allocation(
        curves, costs, 100, Objective("maximin"), {"fast": 1, "slow": 1}, cap={"slow": 30}
    )
    assert got["slow"] == 30 and got["fast"] == 70  # the capped group's budget goes to the other
    got = optimal_allocation(
        curves, costs, 100, Objective("target", target="slow"), {"fast": 1, "slow": 1}, floor={"fast": 25}
    )
    assert got == {"fast": 25, "slow": 75}


def test_weighted_allocation_equalises_marginal_gain_per_cost() -> None:
    curves = {"a": Curve(1.0, 0.5, 0.0), "b": Curve(2.0, 0.5, 0.0)}
    costs = {"a": 1.0, "b": 4.0}
    got = optimal_allocation(curves, costs, 10_000, Objective("weighted"), {"a": 1, "b": 1})
    gain = {g: 0.5 * curves[g].a * got[g] ** -1.5 / costs[g] for g in got}
    assert gain["a"] == pytest.approx(gain["b"], rel=0.01)
    assert math.fsum(costs[g] * got[g] for g in got) > 10_000 - 4


def test_equal_and_proportional_baselines() -> None:
    costs = {"a": 1.0, "b": 2.0, "c": 1.0}
    assert equal_allocation(costs, 400) == {"a": 100, "b": 100, "c": 100}
    capped = equal_allocation(costs, 400, cap={"a": 20})
    spent = capped["a"] + 2 * capped["b"] + capped["c"]
    assert capped["a"] == 20 and abs(capped["b"] - capped["c"]) <= 1 and 400 - 1 < spent <= 400
    shares = {"a": 0.5, "b": 0.25, "c": 0.25}
    assert proportional_allocation(shares, costs, 500) == {"a": 200, "b": 100, "c": 100}
    capped = proportional_allocation(shares, costs, 500, cap={"a": 50})
    assert capped["a"] == 50 and capped["b"] == capped["c"] and 3 * capped["b"] <= 450


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: equal_allocation({"a": 0.0}, 10), "costs must be finite and > 0"),
        (lambda: equal_allocation({"a": 1.0}, -1), "budget must be"),
        (lambda: equal_allocation({"a": 1.0}, 10, floor={"a": 11}), "floors cost 11"),
        (lambda: equal_allocation({"a": 1.0}, 10, floor={"a": 5}, cap={"a": 4}), "floor exceeds cap"),
        (lambda: equal_allocation({"a": 1.0}, 10, cap={"b": 4}), "not allocated"),
        (lambda: proportional_allocation({"a": 0.0}, {"a": 1.0}, 10), "shares must be"),
        (
            lambda: optimal_allocation({"a": Curve(1, 1, 0)}, {}, 10, Objective("weighted"), {"a": 1}),
            "costs lack the groups",
        ),
    ],
)
def test_bad_allocation_input_is_a_clear_value_error(call, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()


# ---- adaptive ----------------------------------------------------------------------------------------------------


def _sim_rounds(objective: str, budget: float, seed: int, **kw) -> list[Round]:
    return adaptive(
        sample_sim.costs(),
        budget,
        parse_objective(objective, list(sample_sim.GROUPS)),
        sample_sim.shares(),
        evaluate=sample_sim.evaluator(seed),
        pilot=sample_sim.pilot_for(budget),
        rounds=sample_sim.ROUNDS,
        cap=sample_sim.caps(),
        seed=seed,
        **kw,
    )


def test_adaptive_reaches_the_oracle_and_beats_the_baselines_on_the_default_case() -> None:
    objective, budget = sample_sim.DEFAULT_OBJECTIVE, sample_sim.DEFAULT_BUDGET
    best = sample_sim.true_loss(objective, sample_sim.oracle(objective, budget))
    equal = best / sample_sim.true_loss(
        objective, equal_allocation(sample_sim.costs(), budget, cap=sample_sim.caps())
    )
    prop = best / sample_sim.true_loss(
        objective,
        proportional_allocation(sample_sim.shares(), sample_sim.costs(), budget, cap=sample_sim.caps()),
    )
    for seed in range(4):
        ratio = best / sample_sim.true_loss(
            objective, _sim_rounds(objective, budget, seed, bootstrap=0)[-1].allocation
        )
        assert ratio >= 0.95, (seed, ratio)
        assert ratio > equal and ratio > prop, (seed, ratio, equal, prop)


def test_adaptive_records_nested_rounds_within_budget() -> None:
    seen: list[Round] = []
    rounds = _sim_rounds("weighted", 600.0, 0, bootstrap=5, on_round=seen.append)
    assert seen == rounds
    assert [r.index for r in rounds] == list(range(sample_sim.ROUNDS + 1))
    costs = sample_sim.costs()
    for before, after in itertools.pairwise(rounds):
        assert all(after.allocation[g] >= before.allocation[g] for g in costs)
    for r in rounds:
        assert r.spent == pytest.approx(math.fsum(costs[g] * r.allocation[g] for g in costs))
        assert r.spent <= 600.0
        assert set(r.errors) == set(costs)
        assert set(r.fits) == set(costs)
        assert all(f.boot.shape == (5, 3) for f in r.fits.values())
    assert rounds[0].allocation == {g: sample_sim.pilot_for(600.0) for g in costs}
    assert 600.0 - rounds[-1].spent < max(costs.values())  # the last round spends what is left


def test_adaptive_is_deterministic_for_a_seed() -> None:
    one = _sim_rounds("gap:0.15", 600.0, 3, bootstrap=3)
    two = _sim_rounds("gap:0.15", 600.0, 3, bootstrap=3)
    assert [(r.allocation, r.errors, {g: f.curve for g, f in r.fits.items()}) for r in one] == [
        (r.allocation, r.errors, {g: f.curve for g, f in r.fits.items()}) for r in two
    ]
    assert all(
        np.array_equal(a.fits[g].boot, b.fits[g].boot) for a, b in zip(one, two, strict=True) for g in a.fits
    )


def test_adaptive_survives_flat_curves_missing_fits_and_nan_errors() -> None:
    costs = {"a": 1.0, "b": 3.0}
    cap = {"a": 1000, "b": 1000}
    flat = adaptive(
        costs, 200, Objective("weighted"), {"a": 1, "b": 1},
        evaluate=lambda alloc: {"a": 0.3, "b": 0.3}, pilot=5, rounds=3, cap=cap, bootstrap=0,
    )  # fmt: skip
    assert 200 - flat[-1].spent < 3 and flat[-1].allocation["a"] > 5 and flat[-1].allocation["b"] > 5
    single = adaptive(
        costs, 200, Objective("maximin"), {"a": 1, "b": 1},
        evaluate=lambda alloc: {g: 1 / math.sqrt(n) for g, n in alloc.items()},
        pilot=1, rounds=3, cap=cap, pilot_points=1, bootstrap=0,
    )  # fmt: skip
    assert single[0].fits == {} and single[1].fits != {}  # the first round split equally, then curves
    assert abs(single[1].allocation["a"] - single[1].allocation["b"]) <= 1
    nan = adaptive(
        costs, 200, Objective("weighted"), {"a": 1, "b": 1},
        evaluate=lambda alloc: {"a": float("nan"), "b": 1 / math.sqrt(alloc["b"])},
        pilot=4, rounds=2, cap=cap, bootstrap=0,
    )  # fmt: skip
    assert "a" not in nan[-1].fits and nan[-1].spent <= 200


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"pilot": 50}, "the pilot \\(50 per group\\) costs 200, more than the budget 100"),
        ({"cap": {"a": 3, "b": 100}}, "fewer rows \\(cap\\) than the pilot batch of 5"),
        ({"cap": {"a": 100}}, "cap lacks the groups \\['b'\\]"),
        ({"pilot": 0}, "pilot must be an integer >= 1"),
        ({"rounds": -1}, "rounds must be an integer >= 0"),
    ],
)
def test_adaptive_bad_input_is_a_clear_value_error(kw: dict, match: str) -> None:
    args = {
        "evaluate": lambda alloc: dict.fromkeys(alloc, 0.1),
        "pilot": 5,
        "rounds": 2,
        "cap": {"a": 100, "b": 100},
    }
    args.update(kw)
    with pytest.raises(ValueError, match=match):
        adaptive({"a": 1.0, "b": 3.0}, 100, Objective("weighted"), {"a": 1, "b": 1}, **args)


def test_simulation_smoke(capsys: pytest.CaptureFixture[str]) -> None:
    sample_sim.main(
        ["--seeds", "2", "--budgets", "600", "--objectives", "maximin", "target:small_slow", "--rounds", "2"]
    )
    out = capsys.readouterr().out
    assert "| maximin | 600 |" in out and "| target:small_slow | 600 |" in out
    cases = sample_sim.study(["maximin"], [600.0], seeds=2, rounds=2)
    assert {c.strategy for c in cases} == {"adaptive", "equal", "proportional"}
    # nothing beats the oracle on the true curves
    assert all(0 < r <= 1.0 + 1e-9 for c in cases for r in c.ratios)
