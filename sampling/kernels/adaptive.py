"""Cai et al. (FAccT 2022), the sequential (adaptive) strategy: a pilot batch per group, then rounds that measure
each group's validation error on the data so far, refit the learning curves and spend the next batch where the
fitted curves' marginal gain of the objective per unit cost is highest, until the budget is spent.

Each round plans with the curves fitted so far: `optimal_allocation` of the whole budget, with the counts already
drawn as floors (samples are nested: a round only adds), equalises the marginal gain per unit cost across groups.
The round moves toward that plan by its share of the remaining budget, (budget - spent) / (rounds left), split in
proportion to what each group still lacks; the last round spends what is left. While a group has no fitted curve
(points at fewer than 2 distinct sizes) or the plan leaves the round's share unspent (flat curves, groups at
their caps), the rest of the share is split equally among the groups with room; except under the gap objective,
whose plan may leave budget unspent on purpose (more samples for a group that learns well widen the spread).
Every round is recorded.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from sift.sampling.kernels.allocate import (
    Objective,
    _check_objective,
    _problem,
    _weight_vector,
    equal_allocation,
    optimal_allocation,
)
from sift.sampling.kernels.curves import CurveFit, fit_curve


@dataclass(frozen=True)
class Round:
    """One round: cumulative counts after it, their cost, the errors `evaluate` measured there, and the curves
    fitted on every point so far (a group is absent while its points have fewer than 2 distinct sizes)."""

    index: int
    allocation: dict[str, int]
    spent: float
    errors: dict[str, float]
    fits: dict[str, CurveFit]


def _pilot_sizes(pilot: int, points: int) -> list[int]:
    """Nested sizes for the pilot's curve points: pilot/2^k for k = points-1..0, distinct, at least 1."""
    return sorted({max(1, round(pilot / 2**k)) for k in range(max(points, 1))})


def _measure(
    evaluate: Callable[[dict[str, int]], dict[str, float]], allocation: dict[str, int]
) -> dict[str, float]:
    errors = evaluate(dict(allocation))
    missing = [g for g in allocation if g not in errors]
    if missing:
        raise ValueError(f"evaluate returned no error for the groups {missing}")
    return {g: float(errors[g]) for g in allocation}


def _noise(fit: CurveFit) -> float:
    """Root mean square of the fitted curve's residuals at its points."""
    n = np.array([p[0] for p in fit.points], dtype=np.float64)
    err = np.array([p[1] for p in fit.points], dtype=np.float64)
    return float(np.sqrt(np.mean((np.asarray(fit.curve.error(n)) - err) ** 2)))


def _planned(objective: Objective, fits: Mapping[str, CurveFit], margin: float) -> Objective:
    """The objective a round plans for: a gap objective's limit X is tightened by `margin` times the largest
    residual noise of the fitted curves (to at most half of X), so that a spread predicted just under X by noisy
    curves does not land just over it; other objectives unchanged."""
    if objective.kind != "gap" or objective.gap is None or margin <= 0:
        return objective
    noise = max((_noise(f) for f in fits.values()), default=0.0)
    return Objective("gap", gap=max(objective.gap - margin * noise, objective.gap / 2))


def _cost(costs: Mapping[str, float], counts: Mapping[str, int]) -> float:
    return math.fsum(costs[g] * counts[g] for g in counts)


def _split(need: dict[str, int], costs: Mapping[str, float], share: float) -> dict[str, int]:
    """Integer part of `need` that costs at most `share`: each group the same fraction of its need (floored),
    then one more sample at a time by the largest remainder (ties: the first group) while the share allows."""
    total = math.fsum(costs[g] * need[g] for g in need)
    if total <= share:
        return dict(need)
    frac = share / total
    take = {g: math.floor(frac * need[g]) for g in need}
    rest = sorted(need, key=lambda g: -(frac * need[g] - take[g]))
    spent = math.fsum(costs[g] * take[g] for g in take)
    for g in rest:
        if take[g] < need[g] and spent + costs[g] <= share:
            take[g] += 1
            spent = math.fsum(costs[h] * take[h] for h in take)
    return take


def adaptive(
    costs: Mapping[str, float],
    budget: float,
    objective: Objective,
    weights: Mapping[str, float],
    *,
    evaluate: Callable[[dict[str, int]], dict[str, float]],
    pilot: int,
    rounds: int,
    cap: Mapping[str, int],
    seed: int = 0,
    on_round: Callable[[Round], None] | None = None,
    bootstrap: int = 50,
    pilot_points: int = 3,
    explore: float = 0.3,
    gap_margin: float = 2.0,
) -> list[Round]:
    """The rounds of the adaptive strategy; the last Round's allocation is the answer.

    The pilot draws `pilot` samples per group and also evaluates the nested sizes pilot/2, pilot/4, ...
    (`pilot_points` sizes in all) so that every group has curve points from the start. `bootstrap` is the number of
    bootstrap refits per curve (for the report's bands; the plan uses the point estimates). Deterministic for a
    `seed` (it seeds the bootstraps) and a deterministic `evaluate`. `explore` is the part of the first round's
    share split equally among the groups before the plan spends the rest, falling linearly to 0 in the last
    round: every group keeps getting curve points at new sizes, so a curve misfitted on a few noisy points (a
    false plateau) is corrected instead of starving its group. The gap objective does not explore (more samples
    for a group that already learns well widen the spread, and samples cannot be taken back), and plans with its
    limit tightened by `gap_margin` times the fits' residual noise (`_planned`).
    """
    if not 0.0 <= explore <= 1.0:
        raise ValueError(f"explore must be in [0, 1], got {explore!r}")
    groups = list(costs)
    missing = [g for g in groups if g not in cap]
    if missing:
        raise ValueError(f"cap lacks the groups {missing}")
    p = _problem(groups, costs, budget, None, {g: cap[g] for g in groups})
    _check_objective(objective, groups)
    _weight_vector(weights, groups)
    if not (isinstance(pilot, int) and pilot >= 1):
        raise ValueError(f"the pilot must be an integer >= 1, got {pilot!r}")
    if not (isinstance(rounds, int) and rounds >= 0):
        raise ValueError(f"rounds must be an integer >= 0, got {rounds!r}")
    short = [g for g in groups if cap[g] < pilot]
    if short:
        raise ValueError(f"the groups {short} have fewer rows (cap) than the pilot batch of {pilot}")
    pilot_cost = math.fsum(p.cost * pilot)
    if pilot_cost > budget:
        raise ValueError(
            f"the pilot ({pilot} per group) costs {pilot_cost:g}, more than the budget {budget:g}"
        )

    points: dict[str, list[tuple[float, float]]] = {g: [] for g in groups}
    history: list[Round] = []

    def record(
        index: int, allocation: dict[str, int], errors: dict[str, float], *, fresh: bool = True
    ) -> None:
        for g in groups if fresh else ():
            if math.isfinite(errors[g]) and errors[g] >= 0:
                points[g].append((float(allocation[g]), errors[g]))
        fits: dict[str, CurveFit] = {}
        for gi, g in enumerate(groups):
            ns = [n for n, _ in points[g]]
            if len(set(ns)) < 2:
                continue
            boot_seed = int(np.random.SeedSequence([seed, index, gi]).generate_state(1)[0])
            try:
                fits[g] = fit_curve(ns, [e for _, e in points[g]], seed=boot_seed, bootstrap=bootstrap)
            except ValueError:
                continue
        spent = math.fsum(costs[g] * allocation[g] for g in groups)
        r = Round(index=index, allocation=dict(allocation), spent=spent, errors=dict(errors), fits=fits)
        history.append(r)
        if on_round is not None:
            on_round(r)

    for size in _pilot_sizes(pilot, pilot_points)[:-1]:
        sub = {g: size for g in groups}
        for g, e in _measure(evaluate, sub).items():
            if math.isfinite(e) and e >= 0:
                points[g].append((float(size), e))
    current = {g: pilot for g in groups}
    record(0, current, _measure(evaluate, current))

    for index in range(1, rounds + 1):
        last = history[-1]
        spent = last.spent
        share = budget - spent if index == rounds else (budget - spent) / (rounds - index + 1)
        room = {g: int(cap[g] - current[g]) for g in groups}
        probe = share * explore * (rounds - index) / rounds if objective.kind != "gap" else 0.0
        step = {g: 0 for g in groups}
        if probe >= min(costs[g] for g in groups) and any(room[g] > 0 for g in groups):
            step = equal_allocation(costs, probe, cap=room)
        if len(last.fits) == len(groups):
            base = {g: current[g] + step[g] for g in groups}
            plan = optimal_allocation(
                {g: last.fits[g].curve for g in groups},
                costs,
                budget,
                _planned(objective, last.fits, gap_margin),
                weights,
                floor=base,
                cap=cap,
            )
            more = _split({g: plan[g] - base[g] for g in groups}, costs, share - _cost(costs, step))
            step = {g: step[g] + more[g] for g in groups}
        left = share - _cost(costs, step)
        room = {g: int(cap[g] - current[g] - step[g]) for g in groups}
        planned = len(last.fits) == len(groups)
        if planned and objective.kind == "gap":
            left = 0.0  # budget the gap plan leaves unspent is left so: more samples could widen the spread
        if left >= min(costs[g] for g in groups) and any(room[g] > 0 for g in groups):
            extra = equal_allocation(costs, max(left, 0.0), cap=room)
            step = {g: step[g] + extra[g] for g in groups}
        if not any(step.values()):
            # nothing spent: the same counts, not measured again
            record(index, current, last.errors, fresh=False)
            continue
        current = {g: current[g] + step[g] for g in groups}
        while math.fsum(costs[g] * current[g] for g in groups) > budget:  # over by a rounding ulp
            g = max((h for h in groups if step[h] > 0), key=lambda h: costs[h])
            step[g] -= 1
            current[g] -= 1
        record(index, current, _measure(evaluate, current))
    return history
