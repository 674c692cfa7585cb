"""Adaptive rounds (Cai et al., FAccT 2022, section 5): a pilot batch per group, then rounds that refit each group's
learning curve on the errors measured so far and spend the next part of the budget where the curves promise the
largest gain of the objective per unit cost."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from sift.sampling.kernels.allocate import Objective, equal_allocation, optimal_allocation
from sift.sampling.kernels.curves import CurveFit, fit_curve


@dataclass(frozen=True)
class Round:
    index: int
    allocation: dict[str, int]
    spent: float
    errors: dict[str, float]
    fits: dict[str, CurveFit]


def adaptive(costs: Mapping[str, float], budget: float, objective: Objective, weights: Mapping[str, float], *,
             evaluate: Callable[[dict[str, int]], dict[str, float]], pilot: int, rounds: int,
             cap: Mapping[str, int], seed: int = 0,
             on_round: Callable[[Round], None] | None = None) -> list[Round]:  # fmt: skip
    """Run the pilot and `rounds` rounds; the last Round's allocation is the answer."""
    groups = sorted(costs)
    if sum(costs[g] * pilot for g in groups) > budget:
        raise ValueError(
            f"the budget {budget:g} is smaller than the pilot ({pilot} per group costs "
            f"{sum(costs[g] * pilot for g in groups):g})"
        )
    for g in groups:
        if cap[g] < pilot:
            raise ValueError(f"group {g!r} has {cap[g]} rows, fewer than the pilot batch ({pilot})")
    points: dict[str, list[tuple[int, float]]] = {g: [] for g in groups}

    def measure(alloc: dict[str, int]) -> dict[str, float]:
        errs = evaluate(dict(alloc))
        for g in groups:
            points[g].append((alloc[g], float(errs[g])))
        return errs

    def fits() -> dict[str, CurveFit]:
        out = {}
        for g in groups:
            ns = [p[0] for p in points[g]]
            if len(set(ns)) >= 2:
                out[g] = fit_curve(ns, [p[1] for p in points[g]], seed=seed, bootstrap=50)
        return out

    for frac in (4, 2):  # nested pilot points, so that the curves can be fitted after the pilot
        if pilot // frac >= 2:
            measure({g: pilot // frac for g in groups})
    alloc = {g: pilot for g in groups}
    errs = measure(alloc)
    history = [Round(0, dict(alloc), sum(costs[g] * alloc[g] for g in groups), errs, fits())]
    if on_round:
        on_round(history[-1])
    for r in range(1, rounds + 1):
        spent = history[-1].spent
        target = budget if r == rounds else spent + (budget - spent) / (rounds - r + 1)
        current = history[-1].fits
        if len(current) == len(groups):
            alloc = optimal_allocation({g: current[g].curve for g in groups}, costs, target, objective, weights,
                                       floor=alloc, cap=cap)  # fmt: skip
        else:
            alloc = equal_allocation(costs, target, floor=alloc, cap=cap)
        if alloc == history[-1].allocation and r < rounds:
            continue
        errs = measure(alloc)
        history.append(Round(r, dict(alloc), sum(costs[g] * alloc[g] for g in groups), errs, fits()))
        if on_round:
            on_round(history[-1])
    return history
