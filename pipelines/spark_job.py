"""The `spark-submit` job of Sift: any `sift` command (ingest, dedup, contain) run on the session spark-submit starts.

    spark-submit --master spark://host:7077 [--conf ...] "$(sift spark-job)" dedup INPUT --output OUT [flags]

spark-submit starts the driver JVM with the cluster's settings (`spark-defaults.conf`, `--conf`, `--master`,
`--deploy-mode`); this script takes that session (`SparkSession.builder.getOrCreate()`), makes it the process's
session (`sift.pipelines.core.engines.adopt_spark`, which sets only Arrow and UTC on it) and runs the command with
`--engine spark --spark-master <that master>`, so the command runs the same Spark plan as `sift ... --engine spark`.
The arguments after the script are the `sift` command line; its output and exit code are the command's.
"""

from __future__ import annotations

import sys
from pathlib import Path


def path() -> str:
    """This script's path, for spark-submit (`sift spark-job` prints it)."""
    return str(Path(__file__).resolve())


def main(argv: list[str] | None = None) -> None:
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
    sys.argv = ["sift", *args]
    from sift.pipelines.cli import main as cli

    cli()


if __name__ == "__main__":
    main()
