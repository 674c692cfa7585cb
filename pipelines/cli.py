"""The `sift` command line: ingest, demo, config, and one command per curation stage.

Exit codes: 0 ok; 2 bad input or usage (a one-line error naming the input and what to do); 1 a bug (with a trace).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from sift.pipelines.cli_options import ConfigOpt, EngineOpt, MasterOpt, SparkConfOpt

app = typer.Typer(
    name="sift",
    help="Sift: curate training datasets from a data lake (ingest, dedup, containment, selection, sampling).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
config_app = typer.Typer(help="Inspect the effective configuration.", no_args_is_help=True)
app.add_typer(config_app, name="config")
console = Console(stderr=True)
out = Console()


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version  # (40 ms of imports: only for --version)

    try:
        return version("sift")
    except PackageNotFoundError:
        return "0+unknown"


def _version_callback(value: bool) -> None:
    if value:
        out.print(f"sift {_version()}")
        raise typer.Exit()


@app.callback()
def _root(
    _version_flag: Annotated[
        bool,
        typer.Option(
            "--version", help="Print the version and exit.", callback=_version_callback, is_eager=True
        ),
    ] = False,
) -> None:
    """Sift: curate training datasets from a data lake."""


def progress_bar(description: str, total: int | None = None) -> Progress:
    """A rich progress bar on stderr (silent when stderr is not a terminal)."""
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    )


@app.command()
def ingest(
    input: Annotated[
        str, typer.Argument(help="Input: Parquet file/folder, JSONL (.gz/.zst), CSV or Arrow folder.")
    ],
    output: Annotated[
        str,
        typer.Option("--output", "-o", help="Output folder of the run: a local path or a URL (file://...)."),
    ],
    engine: EngineOpt = None,
    spark_master: MasterOpt = None,
    spark_conf: SparkConfOpt = None,
    id_field: Annotated[str | None, typer.Option(help="Input field holding the record id.")] = None,
    text_field: Annotated[str | None, typer.Option(help="Input field holding the text.")] = None,
    source_field: Annotated[str | None, typer.Option(help="Input field holding the source name.")] = None,
    default_source: Annotated[
        str | None, typer.Option(help="Source for records without one (default: the file name).")
    ] = None,
    config: ConfigOpt = None,
) -> None:
    """Read raw records into the documents contract; unreadable rows go to a quarantine table.

    Writes OUTPUT/documents.parquet (id, source, text, other columns), OUTPUT/quarantine.parquet (file, row,
    error, payload) and OUTPUT/stats.json, and prints a summary. On Spark the two tables are Parquet datasets
    (folders of part files) written by the executors.
    """
    from sift.pipelines import ingest as ingest_stage
    from sift.pipelines.cli_options import engine_name, stage_config, stage_engine
    from sift.pipelines.core.errors import check_output_folder
    from sift.pipelines.stages import IngestConfig

    if "://" not in output or output.startswith("file://"):
        check_output_folder(output.removeprefix("file://"))
    cfg = stage_config(
        IngestConfig,
        {
            "id_field": id_field,
            "text_field": text_field,
            "source_field": source_field,
            "default_source": default_source,
        },
        file=config,
    )
    name, master = engine_name(engine, spark_master)
    runtime = stage_engine(name, master, spark_conf, config)
    with progress_bar("ingest") as bar:
        task = bar.add_task(f"ingest {input} ({name})", total=None)
        stats = ingest_stage.run(input, cfg, output, runtime, progress=lambda n: bar.advance(task, n))
    print_ingest_summary(stats, output)


def print_ingest_summary(stats: dict, output: str | Path) -> None:
    """Counts per source and per kind of quarantine error, and the input files that were not read."""
    from sift.pipelines.core.lake import skipped_files_line

    table = Table(title=f"ingest: {stats['rows_in']} rows in -> {output}")
    table.add_column("what")
    table.add_column("rows", justify="right")
    for source, n in stats["documents_per_source"].items():
        table.add_row(f"documents · {source}", str(n))
    for kind, n in stats["quarantine_by_error"].items():
        table.add_row(f"[yellow]quarantined · {kind}", str(n))
    table.add_row("[bold]documents", str(stats["documents"]))
    table.add_row("[bold]quarantined", str(stats["quarantined"]))
    out.print(table)
    skipped = skipped_files_line(stats.get("skipped_files", {}))
    if skipped:
        out.print(skipped, markup=False, highlight=False, soft_wrap=True)


@app.command()
def demo(
    lake: Annotated[
        Path | None, typer.Option("--lake", help="Lake root for the demo (default: .sift/lake).")
    ] = None,
    dagster_home: Annotated[
        Path | None, typer.Option(help="Dagster instance folder (default: $DAGSTER_HOME or ./.dagster_home).")
    ] = None,
) -> None:
    """Write the offline demo corpus and materialise every asset on the embedded default (Polars).

    The runs are recorded in a real Dagster instance (SQLite), so `sift ui` shows them afterwards.
    """
    from sift.pipelines.demo import report_file, run_demo

    home = Path(dagster_home or os.environ.get("DAGSTER_HOME") or ".dagster_home").resolve()
    root = Path(lake or os.environ.get("SIFT_LAKE_ROOT") or ".sift/lake").resolve()
    summary = run_demo(root, home, console=console)
    table = Table(title=f"sift demo: lake {root}, Dagster instance {home}")
    table.add_column("run")
    table.add_column("assets")
    table.add_column("checks")
    table.add_column("status")
    for row in summary:
        status = "[green]success" if row["success"] else "[red]failed"
        table.add_row(row["run"], row["assets"], row["checks"], status)
    out.print(table)
    out.print("Open the Dagster UI on these runs with: [bold]sift ui[/bold]")
    report = report_file(root)
    out.print(f"Curation report: {report}" if report else "Curation report: not written", soft_wrap=True)
    if not all(r["success"] for r in summary):
        raise typer.Exit(1)


@app.command()
def ui(
    port: Annotated[int, typer.Option(help="Port for the Dagster UI.")] = 3000,
    dagster_home: Annotated[Path | None, typer.Option(help="Dagster instance folder.")] = None,
) -> None:
    """Start the Dagster UI (`dagster dev`) on the project's instance, where `sift demo` recorded its runs."""
    home = Path(dagster_home or os.environ.get("DAGSTER_HOME") or ".dagster_home").resolve()
    home.mkdir(parents=True, exist_ok=True)
    os.environ["DAGSTER_HOME"] = str(home)
    exe = Path(sys.executable).with_name("dagster")
    os.execv(str(exe), [str(exe), "dev", "-m", "sift.pipelines.definitions", "-p", str(port)])


@app.command("spark-job")
def spark_job() -> None:
    """Print the path of Sift's spark-submit job script: `spark-submit --master URL "$(sift spark-job)" dedup IN
    --output OUT` runs `sift dedup` on the session spark-submit starts (client deploy mode; cluster deploy mode
    where the cluster manager runs Python drivers: YARN, Kubernetes)."""
    from sift.pipelines.spark_job import path

    print(path())


@app.command("compile")
def compile_() -> None:
    """Compile the numba kernels into the installation's kernel cache (once per install or cluster image)."""
    from sift.pipelines.compile import main as compile_main
    from sift.pipelines.core.kernel_cache import NumbaInternalsChanged

    try:
        compile_main()
    except (NumbaInternalsChanged, PermissionError) as exc:
        print_error(exc)
        raise typer.Exit(1) from exc


@config_app.command("show")
def config_show(config: ConfigOpt = None) -> None:
    """Print the effective configuration of every stage (defaults < TOML < environment) as TOML."""
    import sift.pipelines.stages  # noqa: F401  (registers every stage)
    from sift.pipelines.core.config import effective_config

    lines = []
    for stage, values in effective_config(config).items():
        lines.append(f"[{stage}]")
        for key, value in values.items():
            lines.append(f"# {key} = (unset)" if value is None else f"{key} = {_toml_value(value)}")
        lines.append("")
    typer.echo("\n".join(lines))


def _toml_value(value: object) -> str:
    import json

    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):  # a TOML inline table (`[spark] conf`)
        return "{" + ", ".join(f"{json.dumps(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"
    return json.dumps(value)


from sift.pipelines.stages import register_commands  # noqa: E402

register_commands(app)


def print_error(exc: BaseException) -> None:
    """The one place a command's error is printed: one line on stderr, its text shown verbatim (a `[dedup]` in
    a message is text, not rich markup), line breaks inside the message (e.g. from pyarrow) folded into spaces."""
    from rich.markup import escape

    text = " ".join(part.strip() for part in str(exc).splitlines() if part.strip())
    console.print(f"[red]error:[/red] {escape(text)}", highlight=False, markup=True, soft_wrap=True)


def main() -> None:
    """Entry point: run the app; known input and usage errors end with one line and exit code 2."""
    from sift.pipelines.core.config import ConfigError
    from sift.pipelines.core.engines import EngineError
    from sift.pipelines.core.errors import InputError
    from sift.pipelines.fastexit import exit_if_requested

    try:
        app(standalone_mode=False)
        exit_if_requested()
    except (InputError, ConfigError, EngineError, FileNotFoundError) as exc:
        print_error(exc)
        sys.exit(2)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        console.print("aborted")
        sys.exit(130)
    except Exception as exc:
        # Usage errors from typer's click carry their own message and exit code (2).
        if hasattr(exc, "show") and isinstance(getattr(exc, "exit_code", None), int):
            exc.show()
            sys.exit(exc.exit_code)
        raise


if __name__ == "__main__":
    main()
