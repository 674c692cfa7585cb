"""Simulation study of adaptive equitable sampling (issue 13), in the spirit of Cai et al. (FAccT 2022), section 5.

Three groups with known learning curves error_g(n) = a_g·n^(-b_g) + c_g, population shares and per-sample costs:
a small group that learns slowly and costs the most, a large group that learns fast and costs the least, and one in
between. `evaluate` is a noisy finite-sample draw: the error a model trained on n samples would have, jittered by
the training draw (relative noise shrinking as 1/√n), then measured on a validation set of VALIDATION rows per
group (a binomial count). Every strategy's allocation is scored by the TRUE curves, and reported as
loss_oracle / loss_strategy (1.0 = the oracle, higher is better), where the oracle is `optimal_allocation` on the
true curves. Adaptive is the only strategy that sees noise, so only its ratio varies over seeds.

    python bench/sample_sim.py                       # 20 seeds, budgets 600 2400 9600, every objective
    python bench/sample_sim.py --seeds 3 --budgets 600
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from sift.sampling.kernels.adaptive import adaptive
from sift.sampling.kernels.allocate import (
    equal_allocation,
    loss,
    optimal_allocation,
    parse_objective,
    proportional_allocation,
)
from sift.sampling.kernels.curves import Curve

GROUPS: dict[str, tuple[float, Curve, float]] = {  # name: (population share, true curve, cost per sample)
    "small_slow": (0.1, Curve(a=0.8, b=0.25, c=0.10), 2.0),
    "mid": (0.3, Curve(a=1.0, b=0.45, c=0.06), 1.5),
    "large_fast": (0.6, Curve(a=1.2, b=0.6, c=0.03), 1.0),
}
POOL = 20_000  # rows in the pool; a group's cap is its share of it
VALIDATION = 1_000  # validation rows per group
BUDGETS = (600.0, 2400.0, 9600.0)
OBJECTIVES = ("weighted", "maximin", "target:small_slow", "gap:0.15")
DEFAULT_BUDGET = 2400.0
DEFAULT_OBJECTIVE = "maximin"
ROUNDS = 5


@dataclass(frozen=True)
class Case:
    objective: str
    budget: float
    strategy: str
    ratios: tuple[float, ...]  # loss_oracle / loss_strategy per seed

    @property
    def mean(self) -> float:
        return statistics.fmean(self.ratios)

    @property
    def spread(self) -> float:
        return statistics.pstdev(self.ratios) if len(self.ratios) > 1 else 0.0


def costs() -> dict[str, float]:
    return {g: v[2] for g, v in GROUPS.items()}


def shares() -> dict[str, float]:
    return {g: v[0] for g, v in GROUPS.items()}


def caps() -> dict[str, int]:
    return {g: int(v[0] * POOL) for g, v in GROUPS.items()}


def true_loss(objective: str, allocation: dict[str, int]) -> float:
    obj = parse_objective(objective, list(GROUPS))
    return loss(obj, {g: float(GROUPS[g][1].error(allocation[g])) for g in GROUPS}, shares())


def evaluator(seed: int) -> Callable[[dict[str, int]], dict[str, float]]:
    """A seeded noisy learner: per call, the true error jittered by the training draw, measured on VALIDATION
    rows."""
    rng = np.random.default_rng(seed)

    def evaluate(allocation: dict[str, int]) -> dict[str, float]:
        out = {}
        for g, (_, curve, _) in GROUPS.items():
            n = max(allocation[g], 1)
            true = float(curve.error(n))
            drawn = min(max(true * (1.0 + 0.5 * rng.standard_normal() / math.sqrt(n)), 0.0), 1.0)
            out[g] = float(rng.binomial(VALIDATION, drawn)) / VALIDATION
        return out

    return evaluate


def pilot_for(budget: float) -> int:
    """The pilot batch: a tenth of the budget, spread equally."""
    return max(4, int(0.1 * budget / sum(costs().values())))


def run_adaptive(objective: str, budget: float, seed: int, rounds: int = ROUNDS) -> dict[str, int]:
    obj = parse_objective(objective, list(GROUPS))
    history = adaptive(
        costs(),
        budget,
        obj,
        shares(),
        evaluate=evaluator(seed),
        pilot=pilot_for(budget),
        rounds=rounds,
        cap=caps(),
        seed=seed,
        bootstrap=0,
    )
    return history[-1].allocation


def oracle(objective: str, budget: float) -> dict[str, int]:
    obj = parse_objective(objective, list(GROUPS))
    return optimal_allocation(
        {g: v[1] for g, v in GROUPS.items()}, costs(), budget, obj, shares(), cap=caps()
    )


def study(
    objectives: Sequence[str] = OBJECTIVES,
    budgets: Sequence[float] = BUDGETS,
    seeds: int = 20,
    rounds: int = ROUNDS,
) -> list[Case]:
    out: list[Case] = []
    for objective in objectives:
        for budget in budgets:
            best = true_loss(objective, oracle(objective, budget))
            fixed = {
                "equal": equal_allocation(costs(), budget, cap=caps()),
                "proportional": proportional_allocation(shares(), costs(), budget, cap=caps()),
            }
            adapt = tuple(
                best / true_loss(objective, run_adaptive(objective, budget, s, rounds)) for s in range(seeds)
            )
            out.append(Case(objective, budget, "adaptive", adapt))
            for name, alloc in fixed.items():
                out.append(Case(objective, budget, name, (best / true_loss(objective, alloc),)))
    return out


def table(cases: Sequence[Case], seeds: int) -> str:
    lines = [
        f"| objective | budget | adaptive, mean ± sd over {seeds} seeds (min) | equal | proportional |",
        "|---|---:|---:|---:|---:|",
    ]
    by_key: dict[tuple[str, float], dict[str, Case]] = {}
    for c in cases:
        by_key.setdefault((c.objective, c.budget), {})[c.strategy] = c
    for (objective, budget), row in by_key.items():
        a = row["adaptive"]
        lines.append(
            f"| {objective} | {budget:g} | {a.mean:.3f} ± {a.spread:.3f} ({min(a.ratios):.3f}) "
            f"| {row['equal'].mean:.3f} | {row['proportional'].mean:.3f} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--budgets", type=float, nargs="+", default=list(BUDGETS))
    parser.add_argument("--objectives", nargs="+", default=list(OBJECTIVES))
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    cases = study(args.objectives, args.budgets, args.seeds, args.rounds)
    print(table(cases, args.seeds))
    print(f"\n{len(cases)} cases in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
