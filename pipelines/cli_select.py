"""`sift select`: PASER recovery-data selection for a pruned model (clusters, degradation-aware budget, ranking,
concept conflict filter), or the random and length baselines."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from sift.pipelines.cli_options import ConfigOpt, EngineOpt, MasterOpt, OutputOpt, SparkConfOpt

console = Console(stderr=True)
out = Console()


def _budget(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except ValueError as exc:
        raise typer.BadParameter(f"{value!r} is not a fraction (0.2) or a number of samples (500)") from exc


def select(
    input: Annotated[
        str,
        typer.Argument(
            help="Instructions (`id`, `instruction`, optional `input`, `output`): Parquet or JSONL."
        ),
    ],
    output: OutputOpt,
    budget: Annotated[
        str | None, typer.Option("--budget", help="Fraction of the instructions (0.2) or a number (500).")
    ] = None,
    scores: Annotated[
        str | None,
        typer.Option(
            "--scores", help="Degradation scores: a table of `id`, `jsd` (optional `tokens`, `reason`)."
        ),
    ] = None,
    original: Annotated[
        str | None, typer.Option("--original", help="Folder of the original Hugging Face causal LM.")
    ] = None,
    pruned: Annotated[
        str | None, typer.Option("--pruned", help="Folder of the pruned causal LM (same tokenizer).")
    ] = None,
    clusters: Annotated[
        str | None, typer.Option("--clusters", help="auto (eigengap, default) or a number of clusters.")
    ] = None,
    embedder: Annotated[
        str | None,
        typer.Option("--embedder", help="sentence-transformers model folder (default all-MiniLM-L6-v2)."),
    ] = None,
    strategy: Annotated[
        str | None, typer.Option("--strategy", help="paser (default), or a baseline: random, length.")
    ] = None,
    seed: Annotated[
        int | None, typer.Option("--seed", help="Seed of clustering and the random baseline.")
    ] = None,
    embed_backend: Annotated[
        str | None,
        typer.Option(
            "--embed-backend",
            help="How the embedder runs: openvino (default), torch, onnx, onnx-int8, openvino-int8, model2vec.",
        ),
    ] = None,
    engine: EngineOpt = None,
    spark_master: MasterOpt = None,
    spark_conf: SparkConfOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Select the instructions that best recover a pruned model within a budget (PASER).

    Writes OUTPUT/selected.parquet, clusters.parquet (every usable instruction: cluster, rank, score, status),
    rejected.parquet (id, reason), stats.json, report.md, cluster_map.png and cluster_budget.png. Embeddings are
    cached in OUTPUT/_work and reused by the next run into the same folder.
    """
    from sift import selection
    from sift.pipelines.cli_options import engine_name, stage_config, stage_engine
    from sift.pipelines.core.errors import check_output_folder
    from sift.pipelines.progress import terminal_progress
    from sift.pipelines.stages import SelectionConfig

    check_output_folder(output)
    if strategy is not None and strategy not in ("paser", "random", "length"):
        raise typer.BadParameter(f"{strategy!r} is not one of paser, random, length", param_hint="--strategy")
    if (original is None) != (pruned is None):
        raise typer.BadParameter("give both --original and --pruned", param_hint="--original/--pruned")
    name, master = engine_name(engine, spark_master)  # --engine spark: executors embed, score and write
    cfg = stage_config(
        SelectionConfig,
        {
            "budget": _budget(budget),
            "clusters": clusters,
            "embedder": embedder,
            "strategy": strategy,
            "seed": seed,
            "embed_backend": embed_backend,
        },
        file=config,
    )
    with terminal_progress(console):  # a line per phase, and embedding/scoring rates, on a terminal
        stats = selection.run(
            input,
            cfg,
            output,
            stage_engine(name, master, spark_conf, config),
            scores=scores,
            original=original,
            pruned=pruned,
        )
    info = stats.get("clusters") or {}
    if info:
        table = Table(
            title=f"sift select ({cfg.strategy}): {info['k']} clusters ({info['method']}) -> {output}"
        )
        for col in ("cluster", "size", "mean JSD", "budget", "selected", "rejected"):
            table.add_column(col, justify="right")
        for c in info["per_cluster"]:
            table.add_row(
                str(c["cluster"]), str(c["size"]), f"{c['cds']:.4g}", str(c["budget"]), str(c["selected"]),
                str(c["rejected"]),
            )  # fmt: skip
        out.print(table)
    out.print(
        f"{stats['rows_in']} records: selected {stats['selected']} (budget {stats['budget']}), "
        f"not selected {stats['not_selected']}, rejected {stats['rejected']}"
    )


def register(app: typer.Typer) -> None:
    """Add `select` to the sift app."""
    app.command("select")(select)
