"""`sift sample`: adaptive equitable sampling (Cai et al., FAccT 2022): spend a budget across the groups of a pool
where the learner's per-group learning curves say it helps the objective most, or with the optimal, equal or
proportional baselines; writes the allocation, the sampled rows, stats and a report with the fitted curves."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from sift.pipelines.cli_options import ConfigOpt, EngineOpt, MasterOpt, OutputOpt, SparkConfOpt

console = Console(stderr=True)
out = Console()
STRATEGIES = ("adaptive", "optimal", "equal", "proportional")


def sample(
    pool: Annotated[
        str, typer.Argument(help="The pool: Parquet, JSONL or CSV with an id and a group column.")
    ],
    output: OutputOpt,
    group_field: Annotated[str | None, typer.Option("--group-field", help="Column of the groups.")] = None,
    budget: Annotated[
        float | None, typer.Option("--budget", help="Total cost to spend (sum of cost x rows drawn).")
    ] = None,
    costs: Annotated[
        str | None, typer.Option("--costs", help="Cost of one row per group: g1=c1,g2=c2 (default 1).")
    ] = None,
    objective: Annotated[
        str | None, typer.Option("--objective", help="weighted (default), maximin, target:GROUP or gap:X.")
    ] = None,
    strategy: Annotated[
        str | None, typer.Option("--strategy", help="adaptive (default), optimal, equal or proportional.")
    ] = None,
    rounds: Annotated[int | None, typer.Option("--rounds", help="Adaptive rounds after the pilot.")] = None,
    pilot: Annotated[int | None, typer.Option("--pilot", help="Rows per group in the pilot batch.")] = None,
    label_field: Annotated[
        str | None, typer.Option("--label-field", help="Label column (tabular learners).")
    ] = None,
    learner: Annotated[
        str | None, typer.Option("--learner", help="logistic (default), hgb, ngram-lm (text mixtures).")
    ] = None,
    seed: Annotated[
        int | None, typer.Option("--seed", help="Seed of the draw order and the learners.")
    ] = None,
    engine: EngineOpt = None,
    spark_master: MasterOpt = None,
    spark_conf: SparkConfOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Sample a training set (or a mixture across sources) from POOL within a budget, equitably across groups.

    Writes OUTPUT/allocation.parquet (per group and round: pool size, cost, n, error), sample.parquet (the drawn
    rows, every column of the pool; a folder of part files on Spark), stats.json (every round, no timings),
    report.md, curves.png and allocation.png.
    """
    from sift import sampling
    from sift.pipelines.cli_options import engine_name, stage_config, stage_engine
    from sift.pipelines.core.errors import InputError, check_output_folder
    from sift.pipelines.progress import terminal_progress
    from sift.sampling.config import SampleConfig, parse_costs

    check_output_folder(output)
    if strategy is not None and strategy not in STRATEGIES:
        raise typer.BadParameter(
            f"{strategy!r} is not one of {', '.join(STRATEGIES)}", param_hint="--strategy"
        )
    try:
        cost_map = parse_costs(costs) if costs is not None else None
    except ValueError as exc:
        raise InputError(str(exc)) from exc
    cfg = stage_config(
        SampleConfig,
        {
            "group_field": group_field,
            "budget": budget,
            "costs": cost_map,
            "objective": objective,
            "strategy": strategy,
            "rounds": rounds,
            "pilot": pilot,
            "label_field": label_field,
            "learner": learner,
            "seed": seed,
        },  # fmt: skip
        file=config,
    )
    name, master = engine_name(engine, spark_master)
    with terminal_progress(console):  # a line per round on a terminal
        stats = sampling.run(pool, cfg, output, stage_engine(name, master, spark_conf, config))
    table = Table(title=f"sift sample ({cfg.strategy}, {cfg.objective}): spent {stats['spent']:g} of "
                  f"{stats['budget']:g} -> {output}")  # fmt: skip
    for col in ("group", "pool", "cost", "n", "error"):
        table.add_column(col, justify="right")
    for g, info in stats["groups"].items():
        table.add_row(g, str(info["pool"]), f"{info['cost']:g}", str(stats["final"]["allocation"][g]),
                      f"{stats['final']['errors'][g]:.4f}")  # fmt: skip
    out.print(table)
    dropped = ", ".join(f"{k} {v}" for k, v in stats["dropped"].items()) or "none"
    out.print(
        f"{stats['rows_in']} rows: usable {stats['usable']} (dropped: {dropped}), held out {stats['holdout']}, "
        f"sampled {stats['sampled']}, not sampled {stats['not_sampled']}; objective {stats['final']['loss']:.4f}"
    )


def register(app: typer.Typer) -> None:
    """Add `sample` to the sift app."""
    app.command("sample")(sample)
