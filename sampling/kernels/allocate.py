"""Cai et al. (FAccT 2022), the objectives over group errors and the optimal allocation of a budget for known
learning curves, with the equal and proportional baselines.

The problem: integer sample counts n_g, floor_g <= n_g <= cap_g, with Σ cost_g·n_g <= B, minimising `loss` of the
curves' errors error_g(n_g). Per objective:
- weighted (Σ w_g·error_g): the Lagrangian. At a multiplier λ each group takes the n where its marginal gain per
  unit cost, w_g·a_g·b_g·n^(-b_g-1)/cost_g, equals λ; the spend falls as λ grows, so λ is found by bisection.
- maximin (max_g error_g): water filling. For a common error level t each group needs the fewest samples that bring
  it to t; the spend falls as t grows, so the lowest affordable t is found by bisection, on integer counts directly.
- target (error of one group): the target group takes all it can, the others keep their floors.
- gap (Σ w_g·error_g plus a penalty when the spread of group errors exceeds X): a general solver, SLSQP on the
  continuous problem with the spread as a constraint in epigraph form, started from the weighted and the maximin
  solutions; the two best of these four starts go through the local search below.
Continuous solutions (weighted, gap) become integers by flooring, then the leftover budget goes one sample at a time
to the group with the largest marginal gain per unit cost; a local search (`_polish`) then scores every combination
of taking a few samples out of one or two groups and putting some into one or two groups (one group only beyond
PAIR_GROUPS groups, where the pairs grow as the fourth power), and keeps the best while it lowers the loss. The integer water filling (maximin) and the target rule are exact without it. The budget is
never exceeded. Budget that does not change the objective (a target group at its cap, groups other than the worst
one) goes where it lowers the weighted sum. Every group whose error enters the loss gets at least one sample when
the budget affords it (its error at 0 samples is infinite).

The gap objective is not convex (its spread is a max minus a min), so the local search is a heuristic there; the
tests compare every objective with a brute-force search on small instances.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy.optimize import minimize

from sift.sampling.kernels.curves import Curve

Kind = Literal["weighted", "maximin", "target", "gap"]
KINDS: tuple[str, ...] = ("weighted", "maximin", "target", "gap")
GAP_PENALTY = 10.0  # loss added per unit of group-error spread beyond the allowed gap
PAIR_GROUPS = 6  # the local search also moves samples between pairs of groups up to this many groups


@dataclass(frozen=True)
class Objective:
    """What an allocation optimises: `weighted`, `maximin`, `target` (of group `target`) or `gap` (the weighted
    sum with the spread max_g error_g - min_g error_g held to at most `gap`)."""

    kind: Kind
    target: str | None = None
    gap: float | None = None


def parse_objective(text: str, groups: Sequence[str]) -> Objective:
    """`weighted`, `maximin`, `target:G` (G one of `groups`) or `gap:X` (X > 0)."""
    raw = text.strip()
    head, sep, arg = raw.partition(":")
    if not sep and head in ("weighted", "maximin"):
        return Objective("weighted") if head == "weighted" else Objective("maximin")
    if sep and head == "target":
        if arg not in groups:
            raise ValueError(f"objective {raw!r}: group {arg!r} is not one of {sorted(groups)}")
        return Objective("target", target=arg)
    if sep and head == "gap":
        try:
            x = float(arg)
        except ValueError:
            raise ValueError(f"objective {raw!r}: the gap {arg!r} is not a number") from None
        if not (math.isfinite(x) and x > 0):
            raise ValueError(f"objective {raw!r}: the gap must be a number > 0")
        return Objective("gap", gap=x)
    raise ValueError(f"objective {raw!r} is not one of weighted, maximin, target:GROUP, gap:X")


def _check_objective(objective: Objective, groups: Sequence[str]) -> None:
    if objective.kind not in KINDS:
        raise ValueError(f"objective kind {objective.kind!r} is not one of {', '.join(KINDS)}")
    if objective.kind == "target" and objective.target not in groups:
        raise ValueError(f"target objective: group {objective.target!r} is not one of {sorted(groups)}")
    if objective.kind == "gap" and not (objective.gap is not None and objective.gap > 0):
        raise ValueError(f"gap objective: the gap must be > 0, got {objective.gap!r}")


def _target_index(objective: Objective, groups: Sequence[str]) -> int:
    """Position of the target group (0 for the other objectives, where it is unused)."""
    if objective.kind != "target" or objective.target is None:
        return 0
    return list(groups).index(objective.target)


def _weight_vector(weights: Mapping[str, float], groups: Sequence[str]) -> np.ndarray:
    missing = [g for g in groups if g not in weights]
    if missing:
        raise ValueError(f"weights lack the groups {missing}")
    w = np.array([float(weights[g]) for g in groups], dtype=np.float64)
    if not np.all(np.isfinite(w)) or np.any(w < 0) or not w.sum() > 0:
        raise ValueError("weights must be finite, >= 0 and not all 0")
    return w / w.sum()


def _loss_rows(objective: Objective, errs: np.ndarray, w: np.ndarray, target: int) -> np.ndarray:
    """`loss` of each row of `errs` (shape (M, G)); infinite errors give an infinite loss."""
    with np.errstate(invalid="ignore"):
        if objective.kind == "maximin":
            return errs.max(axis=1)
        if objective.kind == "target":
            return errs[:, target].copy()
        total = np.where(w > 0, errs, 0.0) @ w
        if objective.kind == "gap":
            spread = errs.max(axis=1) - errs.min(axis=1)
            total = total + GAP_PENALTY * np.maximum(spread - float(objective.gap or 0.0), 0.0)
        return np.where(np.isnan(total), np.inf, total)


def loss(objective: Objective, errors: Mapping[str, float], weights: Mapping[str, float]) -> float:
    """The objective's loss of the group errors (lower is better): weighted Σ w_g·err_g (weights normalised to sum
    to 1); maximin max_g err_g; target err_G; gap the weighted sum plus GAP_PENALTY·(spread - X) when the spread
    max_g err_g - min_g err_g exceeds X. Strategies compare as loss_oracle / loss_strategy."""
    groups = list(errors)
    if not groups:
        raise ValueError("loss needs the errors of at least one group")
    _check_objective(objective, groups)
    w = _weight_vector(weights, groups)
    errs = np.array([[float(errors[g]) for g in groups]], dtype=np.float64)
    target = _target_index(objective, groups)
    return float(_loss_rows(objective, errs, w, target)[0])


@dataclass
class _Problem:
    """One allocation problem as arrays in the groups' order."""

    groups: list[str]
    a: np.ndarray
    b: np.ndarray
    c: np.ndarray
    cost: np.ndarray
    lo: np.ndarray  # floors (float arrays of integers)
    hi: np.ndarray  # caps, inf when none
    budget: float

    def errors(self, n: np.ndarray) -> np.ndarray:
        """error_g of counts `n` (shape (..., G))."""
        with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
            power = self.a * np.power(np.where(n > 0, n, 1.0), -self.b)
        return np.where(n > 0, power + self.c, np.where(self.a > 0, np.inf, self.c))

    def spend(self, n: np.ndarray) -> float:
        return math.fsum((self.cost * n).tolist())

    def fits(self, n: np.ndarray) -> bool:
        return self.spend(n) <= self.budget and bool(np.all(n >= self.lo) and np.all(n <= self.hi))


def _counts(values: Mapping[str, int] | None, groups: Sequence[str], name: str, default: float) -> np.ndarray:
    if values is None:
        return np.full(len(groups), default)
    unknown = sorted(set(values) - set(groups))
    if unknown:
        raise ValueError(f"{name} names groups that are not allocated: {unknown}")
    out = np.array([float(values.get(g, default)) for g in groups], dtype=np.float64)
    if np.any(out < 0) or np.any(np.isnan(out)):
        raise ValueError(f"{name} must be >= 0 for every group")
    return out


def _problem(
    groups: Sequence[str],
    costs: Mapping[str, float],
    budget: float,
    floor: Mapping[str, int] | None,
    cap: Mapping[str, int] | None,
    curves: Mapping[str, Curve] | None = None,
) -> _Problem:
    groups = list(groups)
    if not groups:
        raise ValueError("an allocation needs at least one group")
    missing = [g for g in groups if g not in costs]
    if missing:
        raise ValueError(f"costs lack the groups {missing}")
    cost = np.array([float(costs[g]) for g in groups], dtype=np.float64)
    bad = [g for g, v in zip(groups, cost, strict=True) if not (math.isfinite(v) and v > 0)]
    if bad:
        raise ValueError(f"costs must be finite and > 0, not for the groups {bad}")
    if not (math.isfinite(budget) and budget >= 0):
        raise ValueError(f"the budget must be a finite number >= 0, got {budget!r}")
    lo = np.floor(_counts(floor, groups, "floor", 0.0))
    hi = np.floor(_counts(cap, groups, "cap", math.inf))
    over = [g for g, f, c in zip(groups, lo, hi, strict=True) if f > c]
    if over:
        raise ValueError(f"floor exceeds cap for the groups {over}")
    zero = np.zeros(len(groups))
    p = _Problem(groups, zero, zero.copy(), zero.copy(), cost, lo, hi, float(budget))
    if p.spend(lo) > budget:
        raise ValueError(f"the floors cost {p.spend(lo):g}, more than the budget {budget:g}")
    if curves is not None:
        p.a = np.array([curves[g].a for g in groups], dtype=np.float64)
        p.b = np.array([curves[g].b for g in groups], dtype=np.float64)
        p.c = np.array([curves[g].c for g in groups], dtype=np.float64)
    return p


# ---- continuous solutions ------------------------------------------------------------------------------------


def _lagrange(p: _Problem, w: np.ndarray) -> np.ndarray:
    """Continuous minimiser of Σ w_g·error_g(n_g) with Σ cost_g·n_g <= B, lo <= n <= hi."""
    k = w * p.a * p.b
    active = k > 0

    def n_of(lam: float) -> np.ndarray:
        with np.errstate(divide="ignore", over="ignore"):
            x = np.power(np.where(active, k, 1.0) / (lam * p.cost), 1.0 / (p.b + 1.0))
        return np.clip(np.where(active, x, p.lo), p.lo, p.hi)

    top = np.where(active, p.hi, p.lo)
    if np.all(np.isfinite(top)) and p.spend(top) <= p.budget:
        return top
    lam_hi = 1.0
    while p.spend(n_of(lam_hi)) > p.budget and lam_hi < 1e300:
        lam_hi *= 16.0
    lam_lo = lam_hi
    while p.spend(n_of(lam_lo)) <= p.budget and lam_lo > 1e-300:
        lam_lo /= 16.0
    for _ in range(200):
        mid = math.sqrt(lam_lo * lam_hi)
        if not lam_lo < mid < lam_hi:
            break
        if p.spend(n_of(mid)) > p.budget:
            lam_lo = mid
        else:
            lam_hi = mid
    return n_of(lam_hi)


def _need(p: _Problem, level: float) -> np.ndarray:
    """Fewest integer samples per group (at least the floor) whose error is at most `level`; inf where the cap
    cannot reach it."""
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        x = np.where(level > p.c, np.power(p.a / np.maximum(level - p.c, 1e-300), 1.0 / p.b), np.inf)
    x = np.where(p.a > 0, x, 0.0)
    n = np.maximum(np.ceil(np.minimum(x, 1e18) - 1e-9), p.lo)
    n = np.where(p.errors(n) > level, n + 1, n)  # the rounding of the power, corrected
    return np.where((n > p.hi) | ~np.isfinite(x) & (p.a > 0), np.inf, n)


def _water_fill(p: _Problem) -> np.ndarray:
    """Integer allocation with the lowest affordable common error level (max-min)."""
    finite_hi = np.where(np.isfinite(p.hi), p.hi, 1e18)
    best = float(np.max(p.errors(finite_hi)))
    worst = float(np.max(p.errors(p.lo)))
    if not math.isfinite(worst):
        worst = float(np.max(p.errors(np.maximum(p.lo, 1.0)))) * 2.0 + 1.0
    if p.spend(_need(p, best)) <= p.budget:
        return _need(p, best)
    lo_t, hi_t = best, worst
    if not p.spend(_need(p, hi_t)) <= p.budget:
        return p.lo.copy()
    for _ in range(200):
        mid = 0.5 * (lo_t + hi_t)
        if not lo_t < mid < hi_t:
            break
        if p.spend(_need(p, mid)) <= p.budget:
            hi_t = mid
        else:
            lo_t = mid
    return _need(p, hi_t)


def _gap_continuous(p: _Problem, w: np.ndarray, gap: float, start: np.ndarray) -> np.ndarray | None:
    """SLSQP on: min Σ w·error + GAP_PENALTY·s, s >= error_i - error_j - gap, s >= 0, budget, bounds."""
    g = len(p.groups)
    scale = np.maximum(start, 1.0)
    lo = np.maximum(p.lo, 1e-3) / scale
    hi = p.hi / scale

    def errs(y: np.ndarray) -> np.ndarray:
        return p.c + p.a * np.power(np.maximum(y[:g] * scale, 1e-9), -p.b)

    def fun(y: np.ndarray) -> float:
        return float(w @ errs(y) + GAP_PENALTY * y[g])

    pairs = [(i, j) for i in range(g) for j in range(g) if i != j]
    cons = [
        {"type": "ineq", "fun": lambda y: p.budget - float(p.cost @ (y[:g] * scale))},
        {
            "type": "ineq",
            "fun": lambda y: np.array([y[g] - (errs(y)[i] - errs(y)[j] - gap) for i, j in pairs]),
        },
    ]
    bounds = [(float(a), None if not math.isfinite(b) else float(b)) for a, b in zip(lo, hi, strict=True)]
    bounds.append((0.0, None))
    y0 = np.append(np.clip(start / scale, lo, hi), 0.0)
    e0 = errs(y0)
    y0[g] = max(0.0, float(e0.max() - e0.min() - gap))
    try:
        sol = minimize(fun, y0, method="SLSQP", bounds=bounds, constraints=cons, options={"maxiter": 200})
    except (ValueError, FloatingPointError):
        return None
    x = np.clip(sol.x[:g] * scale, p.lo, p.hi)
    if not np.all(np.isfinite(x)):
        return None
    while p.spend(np.floor(x)) > p.budget:  # SLSQP may end slightly outside the budget
        x = np.maximum(p.lo, x * (1 - 1e-6) - 1)
    return x


# ---- integer rounding and local search -----------------------------------------------------------------------

LossFn = Callable[[np.ndarray], np.ndarray]


def _gains(p: _Problem, n: np.ndarray, loss_fn: LossFn) -> np.ndarray:
    """Loss decrease per unit cost of one more sample in each group (-inf where not allowed)."""
    g = len(p.groups)
    left = p.budget - p.spend(n)
    step = n[None, :] + np.eye(g)
    with np.errstate(invalid="ignore"):
        gain = (loss_fn(n[None, :])[0] - loss_fn(step)) / p.cost
    gain = np.where(np.isnan(gain), 0.0, gain)
    ok = (n + 1 <= p.hi) & (p.cost <= left + 1e-12 * max(1.0, p.budget))
    return np.where(ok, gain, -np.inf)


def _fill(p: _Problem, n: np.ndarray, loss_fn: LossFn, *, positive: bool = True) -> np.ndarray:
    """Leftover budget one sample at a time to the largest gain per unit cost (only gains > 0 if `positive`).
    A run of samples to the same group is scored in one call: the group keeps taking samples while each next one
    gains more than the second-best group's next one did."""
    n = n.copy()
    while True:
        gain = _gains(p, n, loss_fn)
        i = int(np.argmax(gain))
        if gain[i] == -np.inf or (positive and not gain[i] > 0):
            return n
        rest = np.delete(gain, i)
        bar = max(float(rest.max()) if rest.size else -np.inf, 0.0 if positive else -np.inf)
        top = min(p.hi[i] - n[i], math.floor((p.budget - p.spend(n)) / p.cost[i]), 256)
        run = np.repeat(n[None, :], int(top) + 1, axis=0)
        run[:, i] += np.arange(int(top) + 1)
        vals = loss_fn(run)
        with np.errstate(invalid="ignore"):
            inc = (vals[:-1] - vals[1:]) / p.cost[i]
        inc[0] = gain[i]
        take = int(np.argmin(np.append(inc > bar, False)))  # leading samples that beat the bar
        n[i] += max(take, 1)
        while p.spend(n) > p.budget:
            n[i] -= 1


_LADDER = np.linspace(0.0, 1.0, 16)


def _steps(top: float) -> np.ndarray:
    """Step sizes in 1..top: 1, 2, 3, 4 and a geometric ladder up to top."""
    if top < 1:
        return np.zeros(0)
    return np.unique(np.concatenate([np.arange(1, min(top, 4) + 1), np.round(np.power(top, _LADDER))]))


def _removals(p: _Problem, n: np.ndarray) -> np.ndarray:
    """Counts with samples taken out: none, k (a step of `_steps`) from one group, or 1-3 from each of two
    (up to PAIR_GROUPS groups)."""
    g = len(p.groups)
    out = [n]
    for i in range(g):
        for k in _steps(n[i] - p.lo[i]):
            out.append(n - k * np.eye(g)[i])
    for i in range(g if g <= PAIR_GROUPS else 0):
        for j in range(i + 1, g):
            for ki in range(1, int(min(3, n[i] - p.lo[i])) + 1):
                for kj in range(1, int(min(3, n[j] - p.lo[j])) + 1):
                    out.append(n - ki * np.eye(g)[i] - kj * np.eye(g)[j])
    return np.array(out)


def _additions(p: _Problem, n: np.ndarray) -> np.ndarray:
    """Samples put in: none, m (a step of `_steps`) into one group, or 1-3 into each of two (up to PAIR_GROUPS
    groups)."""
    g = len(p.groups)
    left = p.budget - p.spend(p.lo)
    out = [np.zeros(g)]
    for j in range(g):
        for m in _steps(min(p.hi[j] - p.lo[j], math.floor(left / p.cost[j]))):
            out.append(m * np.eye(g)[j])
    for i in range(g if g <= PAIR_GROUPS else 0):
        for j in range(i + 1, g):
            for mi in range(1, 4):
                for mj in range(1, 4):
                    out.append(mi * np.eye(g)[i] + mj * np.eye(g)[j])
    return np.array(out)


def _polish(p: _Problem, n: np.ndarray, loss_fn: LossFn, *, rounds: int = 100) -> np.ndarray:
    """Local search while it lowers the loss: every combination of a removal (`_removals`) and an addition
    (`_additions`) within the budget and the bounds is scored, the best one taken and the leftover refilled."""
    n = _fill(p, n, loss_fn)
    current = float(loss_fn(n[None, :])[0])
    for _ in range(rounds):
        rows = (_removals(p, n)[:, None, :] + _additions(p, n)[None, :, :]).reshape(-1, len(p.groups))
        ok = np.all(rows >= p.lo, axis=1) & np.all(rows <= p.hi, axis=1)
        ok &= rows @ p.cost <= p.budget * (1 + 1e-12)
        rows = rows[ok]
        vals = loss_fn(rows)
        best_n = None
        for t in np.argsort(vals, kind="stable")[:4]:  # the best row that fits the budget exactly
            if vals[t] < current - 1e-12 * max(1.0, abs(current)) and p.fits(rows[t]):
                best_n = rows[t].copy()
                break
        if best_n is None:
            return n
        n = _fill(p, best_n, loss_fn)
        current = float(loss_fn(n[None, :])[0])
    return n


def _effective_floors(p: _Problem, objective: Objective, w: np.ndarray, target: int) -> None:
    """One sample at least for every group whose error enters the loss (its error at 0 samples is infinite),
    when the budget affords it."""
    g = len(p.groups)
    if objective.kind == "target":
        matters = np.arange(g) == target
    elif objective.kind == "weighted":
        matters = w > 0
    else:
        matters = np.ones(g, dtype=bool)
    raised = np.where(matters & (p.a > 0) & (p.hi >= 1), np.maximum(p.lo, 1.0), p.lo)
    if p.spend(raised) <= p.budget:
        p.lo = raised


def optimal_allocation(
    curves: Mapping[str, Curve],
    costs: Mapping[str, float],
    budget: float,
    objective: Objective,
    weights: Mapping[str, float],
    *,
    floor: Mapping[str, int] | None = None,
    cap: Mapping[str, int] | None = None,
) -> dict[str, int]:
    """Integer n_g with floor_g <= n_g <= cap_g and Σ cost_g·n_g <= budget that minimises `loss` of the curves'
    errors (ValueError, one line, on a bad cost, budget, floor or cap, or floors costing more than the budget)."""
    groups = list(curves)
    p = _problem(groups, costs, budget, floor, cap, curves)
    _check_objective(objective, groups)
    w = _weight_vector(weights, groups)
    target = _target_index(objective, groups)
    user_lo = p.lo.copy()
    _effective_floors(p, objective, w, target)

    def loss_fn(rows: np.ndarray) -> np.ndarray:
        return _loss_rows(objective, p.errors(rows), w, target)

    weighted = Objective("weighted")

    def weighted_fn(rows: np.ndarray) -> np.ndarray:
        return _loss_rows(weighted, p.errors(rows), w, target)

    def secondary(n: np.ndarray) -> np.ndarray:
        """Budget the objective leaves unused goes where it lowers the weighted sum."""
        q = _Problem(p.groups, p.a, p.b, p.c, p.cost, n, p.hi, p.budget)
        return _fill(q, np.maximum(np.floor(_lagrange(q, w)), n), weighted_fn)

    if objective.kind == "weighted":
        n = _polish(p, np.floor(_lagrange(p, w)), loss_fn)
    elif objective.kind == "maximin":
        n = secondary(_water_fill(p))
    elif objective.kind == "target":
        n = p.lo.copy()
        room = math.floor((p.budget - p.spend(n)) / p.cost[target] + 1e-9)
        n[target] = min(p.hi[target], n[target] + max(room, 0))
        while p.spend(n) > p.budget:
            n[target] -= 1
        n = secondary(n)
    else:
        gap = float(objective.gap or 0.0)
        starts = [np.floor(_lagrange(p, w)), _water_fill(p)]
        cont = [_gap_continuous(p, w, gap, np.maximum(s, 1.0)) for s in starts]
        starts += [np.floor(x) for x in cont if x is not None]
        filled = [_fill(p, s, loss_fn) for s in starts]
        first = np.argsort([float(loss_fn(f[None, :])[0]) for f in filled], kind="stable")[:2]
        cands = [_polish(p, filled[i], loss_fn) for i in first]  # the two best starts
        vals = [float(loss_fn(c[None, :])[0]) for c in cands]
        n = cands[int(np.argmin(vals))]
    assert p.fits(n) and np.all(n >= user_lo), "allocation outside its budget or bounds"
    return {gname: int(v) for gname, v in zip(groups, n, strict=True)}


# ---- baselines -----------------------------------------------------------------------------------------------


def _scaled(p: _Problem, shares: np.ndarray) -> np.ndarray:
    """Integer n_g = clip(t·share_g, floor_g, cap_g) for the largest affordable t, then leftover budget one sample
    at a time to the group furthest below t·share_g (ties: the first group), never over the budget or a cap."""

    def at(t: float) -> np.ndarray:
        return np.clip(np.floor(t * shares + 1e-9), p.lo, p.hi)

    lo_t, hi_t = 0.0, 1.0
    while p.spend(at(hi_t)) <= p.budget and np.any(at(hi_t) < p.hi) and hi_t < 1e18:
        lo_t, hi_t = hi_t, hi_t * 2.0
    for _ in range(200):
        mid = 0.5 * (lo_t + hi_t)
        if not lo_t < mid < hi_t:
            break
        if p.spend(at(mid)) <= p.budget:
            lo_t = mid
        else:
            hi_t = mid
    n = at(lo_t)
    want = hi_t * shares
    while True:
        left = p.budget - p.spend(n)
        ok = (n + 1 <= p.hi) & (p.cost <= left) & (shares > 0)
        if not ok.any():
            return n
        i = int(np.argmax(np.where(ok, want - n, -np.inf)))
        n[i] += 1
        if p.spend(n) > p.budget:
            n[i] -= 1
            return n


def equal_allocation(
    costs: Mapping[str, float],
    budget: float,
    *,
    floor: Mapping[str, int] | None = None,
    cap: Mapping[str, int] | None = None,
) -> dict[str, int]:
    """The same n for every group (within floors and caps); budget a capped group cannot use goes to the others."""
    groups = list(costs)
    p = _problem(groups, costs, budget, floor, cap)
    n = _scaled(p, np.ones(len(groups)))
    return {g: int(v) for g, v in zip(groups, n, strict=True)}


def proportional_allocation(
    shares: Mapping[str, float],
    costs: Mapping[str, float],
    budget: float,
    *,
    floor: Mapping[str, int] | None = None,
    cap: Mapping[str, int] | None = None,
) -> dict[str, int]:
    """n_g proportional to share_g (the groups' shares of the population), within floors and caps; budget a capped
    group cannot use goes to the others."""
    groups = list(costs)
    p = _problem(groups, costs, budget, floor, cap)
    missing = [g for g in groups if g not in shares]
    if missing:
        raise ValueError(f"shares lack the groups {missing}")
    s = np.array([float(shares[g]) for g in groups], dtype=np.float64)
    if not np.all(np.isfinite(s)) or np.any(s < 0) or not s.sum() > 0:
        raise ValueError("shares must be finite, >= 0 and not all 0")
    n = _scaled(p, s / s.sum())
    return {g: int(v) for g, v in zip(groups, n, strict=True)}
