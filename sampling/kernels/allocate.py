"""Objectives over group errors and allocations of a budget across groups (Cai et al., FAccT 2022, section 4):
the allocation that minimises an objective under known curves (greedy marginal gain per unit cost), and the equal
and proportional baselines."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from sift.sampling.kernels.curves import Curve


@dataclass(frozen=True)
class Objective:
    kind: Literal["weighted", "maximin", "target", "gap"]
    target: str | None = None
    gap: float | None = None


def parse_objective(text: str, groups: Sequence[str]) -> Objective:
    """weighted | maximin | target:G | gap:X."""
    if text == "weighted":
        return Objective("weighted")
    if text == "maximin":
        return Objective("maximin")
    kind, _, arg = text.partition(":")
    if kind == "target":
        if arg not in groups:
            raise ValueError(f"objective target:{arg}: no group {arg!r} (groups: {', '.join(groups)})")
        return Objective("target", target=arg)
    if kind == "gap":
        try:
            x = float(arg)
        except ValueError:
            raise ValueError(f"objective gap:{arg}: the gap must be a number above 0") from None
        if not x > 0:
            raise ValueError(f"objective gap:{arg}: the gap must be a number above 0")
        return Objective("gap", gap=x)
    raise ValueError(f"unknown objective {text!r} (weighted, maximin, target:GROUP or gap:X)")


def loss(objective: Objective, errors: Mapping[str, float], weights: Mapping[str, float]) -> float:
    """The objective's value of the group errors; lower is better."""
    if objective.kind == "maximin":
        return max(errors.values())
    if objective.kind == "target":
        return float(errors[str(objective.target)])
    total = sum(weights.values()) or 1.0
    value = sum(weights[g] * errors[g] for g in errors) / total
    if objective.kind == "gap":
        spread = max(errors.values()) - min(errors.values())
        if spread > float(objective.gap or 0.0):
            value += (spread - float(objective.gap or 0.0)) * 10
    return value


def _bounds(groups: Sequence[str], floor: Mapping[str, int] | None, cap: Mapping[str, int] | None
            ) -> tuple[dict[str, int], dict[str, float]]:  # fmt: skip
    lo = {g: int((floor or {}).get(g, 0)) for g in groups}
    hi = {g: float((cap or {}).get(g, float("inf"))) for g in groups}
    return lo, hi


def optimal_allocation(curves: Mapping[str, Curve], costs: Mapping[str, float], budget: float,
                       objective: Objective, weights: Mapping[str, float], *,
                       floor: Mapping[str, int] | None = None,
                       cap: Mapping[str, int] | None = None) -> dict[str, int]:  # fmt: skip
    """Greedy: from the floor, add samples to the group whose step lowers the loss most per unit cost."""
    groups = sorted(curves)
    n, hi = _bounds(groups, floor, cap)
    spent = sum(costs[g] * n[g] for g in groups)
    steps = max(1, int((budget - spent) / max(min(costs.values()), 1e-12) / 400))

    def value(alloc: Mapping[str, int]) -> float:
        errs = {g: float(curves[g].error(max(alloc[g], 1))) for g in groups}
        tie = sum(weights[g] * errs[g] for g in groups) * 1e-6
        return loss(objective, errs, weights) + tie

    current = value(n)
    while True:
        best, best_gain, best_step = None, 0.0, 0
        for g in groups:
            step = int(min(steps, hi[g] - n[g], (budget - spent) // costs[g])) if costs[g] > 0 else 0
            if step <= 0:
                continue
            trial = dict(n)
            trial[g] += step
            gain = (current - value(trial)) / (costs[g] * step)
            if best is None or gain > best_gain:
                best, best_gain, best_step = g, gain, step
        if best is None:
            if steps > 1:
                steps = 1
                continue
            return n
        n[best] += best_step
        spent += costs[best] * best_step
        current = value(n)


def equal_allocation(costs: Mapping[str, float], budget: float, *, floor: Mapping[str, int] | None = None,
                     cap: Mapping[str, int] | None = None) -> dict[str, int]:  # fmt: skip
    """The same n for every group (a capped group stays at its cap; the others go on)."""
    groups = sorted(costs)
    n, hi = _bounds(groups, floor, cap)
    spent = sum(costs[g] * n[g] for g in groups)
    level = min(n.values()) if n else 0
    while True:
        level += 1
        grow = [g for g in groups if n[g] < level and n[g] < hi[g]]
        need = sum(costs[g] for g in grow)
        if not grow or spent + need > budget:
            return n
        for g in grow:
            n[g] += 1
        spent += need


def proportional_allocation(shares: Mapping[str, float], costs: Mapping[str, float], budget: float, *,
                            floor: Mapping[str, int] | None = None,
                            cap: Mapping[str, int] | None = None) -> dict[str, int]:  # fmt: skip
    """n_g in proportion to share_g (bisection on the scale), rounded down, then topped up within budget."""
    groups = sorted(costs)
    lo, hi = _bounds(groups, floor, cap)

    def alloc(k: float) -> dict[str, int]:
        return {g: int(min(hi[g], max(lo[g], k * shares[g]))) for g in groups}

    def cost(a: Mapping[str, int]) -> float:
        return sum(costs[g] * a[g] for g in groups)

    a, b = 0.0, 1.0
    while cost(alloc(b)) <= budget and alloc(b) != alloc(b * 2):
        b *= 2
    for _ in range(100):
        m = (a + b) / 2
        a, b = (m, b) if cost(alloc(m)) <= budget else (a, m)
    n = alloc(a)
    spent = cost(n)
    for g in sorted(groups, key=lambda g: -(a * shares[g] - int(a * shares[g]))):
        if n[g] < hi[g] and spent + costs[g] <= budget:
            n[g] += 1
            spent += costs[g]
    return n
