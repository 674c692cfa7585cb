"""The `spark-submit` job of Sift: any `sift` command (ingest, dedup, contain) run on the session spark-submit starts.

    spark-submit --master spark://host:7077 [--conf ...] "$(sift spark-job)" dedup INPUT --output OUT [flags]

spark-submit starts the driver JVM with the cluster's settings (`spark-defaults.conf`, `--conf`, `--master`,
`--deploy-mode`); this script takes that session (`SparkSession.builder.getOrCreate()`), makes it the process's
session (`sift.pipelines.core.engines.adopt_spark`, which sets only Arrow and UTC on it) and runs the command with
`--engine spark --spark-master <that master>`, so the command runs the same Spark plan as `sift ... --engine spark`.
The arguments after the script are the `sift` command line; its output and exit code are the command's.

Launched by Dagster Pipes (`sift.pipelines.pipes`: spark-submit in client mode under `dg.PipesSubprocessClient`,
which puts `DAGSTER_PIPES_CONTEXT` in the driver's environment), the job also opens the Pipes context
(`dagster_pipes.open_dagster_pipes`): the command's progress lines (the `sift.<stage>` loggers) go to the Dagster
run's event log, and when the run is for an asset, the output folder's counts (`stats.json`: rows in, kept,
removed, quarantined; `dagster/row_count` = kept) and its report (`report.md`, path and markdown) are reported as
the asset's materialisation metadata. Without Pipes the job runs as before.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any


def path() -> str:
    """This script's path, for spark-submit (`sift spark-job` prints it)."""
    return str(Path(__file__).resolve())


def _run_cli(args: list[str]) -> int:
    """Run `sift ARGS` in this process; its exit code (typer ends with SystemExit)."""
    sys.argv = ["sift", *args]
    from sift.pipelines.cli import main as cli

    try:
        cli()
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            return exc.code or 0
        print(exc.code, file=sys.stderr)
        return 1
    return 0


def _output(args: list[str]) -> str | None:
    """The command's `--output` folder, if it names one."""
    for i, arg in enumerate(args):
        if arg == "--output" and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith("--output="):
            return arg.split("=", 1)[1]
    return None


def output_metadata(output: str | None) -> dict[str, Any]:
    """What a command's output folder reports: the whole-number counts of its `stats.json` (`dagster/row_count` =
    `kept`), `removed_by_reason`, and its `report.md` (path and markdown); empty when it has neither."""
    if output is None or "://" in output:
        return {}
    meta: dict[str, Any] = {}
    stats_file = os.path.join(output, "stats.json")
    if os.path.exists(stats_file):
        with open(stats_file) as f:
            stats = json.load(f)
        for key, value in stats.items():
            if isinstance(value, int) and not isinstance(value, bool):
                meta[key] = value
        if "kept" in meta:
            meta["dagster/row_count"] = meta["kept"]
        if isinstance(stats.get("removed_by_reason"), dict):
            meta["removed_by_reason"] = {"raw_value": stats["removed_by_reason"], "type": "json"}
    report = os.path.join(output, "report.md")
    if os.path.exists(report):
        with open(report) as f:
            markdown = f.read()
        meta["report_path"] = {"raw_value": os.path.abspath(report), "type": "path"}
        # the chart is a file next to the report, not reachable from the UI's markdown
        meta["report"] = {
            "raw_value": markdown.replace("![cluster sizes](cluster_sizes.png)", ""),
            "type": "md",
        }
    meta["output"] = {"raw_value": os.path.abspath(output), "type": "path"}
    return meta


def _run_under_pipes(args: list[str], master: str) -> int:
    """Run the command inside the Dagster Pipes context: progress to the run's log, counts and report as the
    asset's materialisation metadata."""
    from dagster_pipes import open_dagster_pipes

    from sift.pipelines.progress import forward_progress

    with open_dagster_pipes() as pipes:
        pipes.log.info(f"sift {' '.join(args)}")
        with forward_progress(pipes.log.info):
            code = _run_cli(args)
        if code != 0:
            pipes.log.error(f"sift {args[0]} exited with code {code}")
            return code
        meta = output_metadata(_output(args))
        counts = ", ".join(
            f"{k} {meta[k]}" for k in ("rows_in", "kept", "removed", "quarantined") if k in meta
        )
        pipes.log.info(f"sift {args[0]} finished on {master}: {counts}")
        if pipes.is_asset_step:
            pipes.report_asset_materialization(metadata=meta)
    return 0


def main(argv: list[str] | None = None) -> None:
    from dagster_pipes import PipesEnvVarParamsLoader
    from pyspark.sql import SparkSession

    from sift.pipelines.core.engines import adopt_spark

    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        sys.exit(
            "usage: spark-submit [spark options] sift_spark_job.py COMMAND [sift flags] (e.g. dedup IN --output OUT)"
        )
    master = adopt_spark(SparkSession.builder.appName(f"sift {args[0]}").getOrCreate())
    if "--engine" not in args:
        args += ["--engine", "spark"]
    if "--spark-master" not in args:
        args += ["--spark-master", master]
    if PipesEnvVarParamsLoader().is_dagster_pipes_process():
        sys.exit(_run_under_pipes(args, master))
    sys.argv = ["sift", *args]
    from sift.pipelines.cli import main as cli

    cli()


if __name__ == "__main__":
    main()
