"""`sift contain` and `sift rebuild`: R2D2 containment, the lossless deletion plan, and rebuilding deleted tables."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from sift.pipelines.cli_options import ConfigOpt, EngineOpt, MasterOpt, OutputOpt, SparkConfOpt

console = Console(stderr=True)
out = Console()


def _local(value: str | Path, option: str) -> str:
    """A lake or output given as a `file://` URI (or a plain path) as a local path; the lake walk and the outputs
    work on paths, which the executors of a cluster see at the same place (a shared file system)."""
    from urllib.parse import unquote, urlparse

    from sift.pipelines.core.errors import InputError

    text = str(value)
    if not text.startswith("file:"):
        if "://" in text:
            raise InputError(
                f"{option} {text}: `sift contain` reads and writes a local or shared file system; give a path or "
                "a file:// URI"
            )
        return text
    url = urlparse(text)
    if url.netloc not in ("", "localhost"):
        raise InputError(f"{option} {text}: a file:// URI names no host (file:///path)")
    return unquote(url.path)


def contain(
    lake: Annotated[
        str,
        typer.Argument(
            help="Lake root: a folder of Parquet files/folders and CSV files (a path or file:// URI)."
        ),
    ],
    output: OutputOpt,
    engine: EngineOpt = None,
    spark_master: MasterOpt = None,
    spark_conf: SparkConfOpt = None,
    case_insensitive: Annotated[
        bool, typer.Option("--case-insensitive", help="Match column names ignoring case.")
    ] = False,
    access_log: Annotated[
        str | None,
        typer.Option(
            "--access-log", help="Parquet/CSV with a `table` column (and optional `count`): accesses."
        ),
    ] = None,
    max_rebuild_seconds: Annotated[
        float | None,
        typer.Option("--max-rebuild-seconds", help="Largest allowed rebuild latency of a deleted table."),
    ] = None,
    apply: Annotated[
        bool, typer.Option("--apply", help="Move the verified deletable tables to LAKE/.sift_trash/<run>/.")
    ] = False,
    config: ConfigOpt = None,
) -> None:
    """Find every table contained in another (schema graph, min-max pruning, content check) and plan deletions.

    Writes OUTPUT/containment.parquet, deletion_plan.parquet, recipes.parquet, table_statistics.parquet,
    skipped.parquet, stats.json, report.md and containment_graph.png.
    """
    from sift.pipelines.fastexit import lean_start

    lean_start()
    from sift.dedup import containment
    from sift.pipelines.cli_options import engine_name, stage_config, stage_engine
    from sift.pipelines.core.errors import InputError, check_output_folder
    from sift.pipelines.progress import terminal_progress
    from sift.pipelines.stages import ContainConfig

    lake = _local(lake, "LAKE")
    output = Path(_local(output, "--output"))
    check_output_folder(output)
    name, master = engine_name(engine, spark_master)
    cfg = stage_config(
        ContainConfig,
        {
            "engine": name,
            "case_insensitive": True if case_insensitive else None,
            "max_rebuild_seconds": max_rebuild_seconds,
        },
        file=config,
    )
    if access_log is not None and not os.path.exists(access_log):
        raise InputError(f"{access_log}: access log not found")
    # the content check's engine; on Polars a large lake gets a side worker (containment.run starts it)
    runtime = stage_engine(cfg.engine, master, spark_conf, config)
    try:
        with terminal_progress(console):  # progress: a line per phase on a terminal
            stats = containment.run(lake, cfg, output, runtime, access_log=access_log, apply=apply)
    except ValueError as exc:
        if "access log" in str(exc):
            raise InputError(str(exc)) from exc
        raise
    table = Table(
        title=f"sift contain: {stats['tables']} tables ({len(stats['skipped'])} skipped) -> {output}"
    )
    table.add_column("step")
    table.add_column("considered", justify="right")
    table.add_column("pruned", justify="right")
    table.add_column("seconds", justify="right")
    for key in ("schema_graph", "minmax_prune", "content_check"):
        s = stats[key]
        considered = s.get("all_pairs", s.get("considered"))
        table.add_row(key, str(considered), str(s["pruned"]), f"{s['seconds']:.2f}")
    out.print(table)
    out.print(
        f"{stats['containment_pairs']} containment pairs; plan deletes {stats['deleted']} tables "
        f"({stats['bytes_deletable']} of {stats['bytes_total']} bytes)"
        + (f"; {stats['applied']} moved to the trash" if apply else "")
    )
    if cfg.engine == "polars":
        from sift.pipelines.fastexit import request

        request()


def rebuild(
    table: Annotated[str, typer.Argument(help="Name of a deleted table (as in deletion_plan.parquet).")],
    plan: Annotated[Path, typer.Option("--plan", help="Output folder of `sift contain`.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="File to write (.parquet, or .csv).")],
) -> None:
    """Rebuild a deleted table exactly (same schema, values and row order) from its kept container."""
    from sift.dedup.containment.api import original_file, rebuild_table, write_table
    from sift.pipelines.core.errors import InputError, check_output_file

    check_output_file(output, (".parquet", ".csv"))
    try:
        rebuilt = rebuild_table(str(plan), table)
        original = original_file(str(plan), table)  # a deleted CSV's own text, when its recipe keeps it
    except FileNotFoundError as exc:
        if exc.filename is None:  # the plan's own files (recipes.parquet): the message says which
            raise InputError(str(exc)) from exc
        raise InputError(
            f"{table}: its container {exc.filename} is missing, so the table cannot be rebuilt: restore the "
            f"container to that path (from a backup, or from the trash if another `--apply` moved it) and run "
            f"`sift rebuild` again"
        ) from exc
    except KeyError as exc:
        raise InputError(str(exc.args[0] if exc.args else exc)) from exc
    except ValueError as exc:  # the container, or a kept CSV text, no longer matches its checksum
        raise InputError(str(exc)) from exc
    write_table(rebuilt, str(output), original)
    out.print(f"rebuilt {table}: {rebuilt.num_rows} rows, {rebuilt.num_columns} columns -> {output}")


def register(app: typer.Typer) -> None:
    """Add `contain` and `rebuild` to the sift app."""
    app.command("contain")(contain)
    app.command("rebuild")(rebuild)
