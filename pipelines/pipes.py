"""Cluster runs through Dagster Pipes: `sift` commands spark-submitted to a Spark cluster that Dagster does not
manage, with their logs, counts and report coming back to the Dagster run.

- `SparkSubmit` (the `submit` part of the asset's run config, so the launchpad sets it per run and the code
  location needs no resource beyond `lake` and `engine`): the cluster's master, `--conf` settings and environment;
  `command()` builds the spark-submit command line of the job script shipped in the package
  (`sift/pipelines/spark_job.py`, which `sift spark-job` prints) and `run()` runs it under
  `dg.PipesSubprocessClient`. The driver runs on this machine (`--deploy-mode client`): Pipes hands it its context
  and reads its messages through temporary files here. The job opens the Pipes context itself and reports its
  progress lines as log events and its counts and report as materialisation metadata (see `spark_job`).
- `dedup_on_cluster` (group `cluster`, kind `spark`): SlimPajama dedup (SlimPajama-DC section 2) of every source's
  raw documents (`<lake>/raw_documents/*.parquet`) by `sift dedup` on the cluster, into `<lake>/dedup_cluster/`
  (kept, removed, clusters, quarantine, stats, report): the same plan as `duplicate_clusters` on the Spark engine,
  for a cluster that the code location's own process cannot reach with a Spark session.
"""

import os
import sys
from pathlib import Path

import dagster as dg

from sift.pipelines.resources import LakeResource

GROUP = "cluster"
OUTPUT = "dedup_cluster"  # the folder under the lake root that `dedup_on_cluster` writes


def job_script() -> str:
    """The job script shipped in the package (`sift spark-job` prints the same path)."""
    return str(Path(__file__).resolve().with_name("spark_job.py"))


def default_spark_submit() -> str:
    """`$SPARK_HOME/bin/spark-submit`, else the one in the installed pyspark."""
    home = os.environ.get("SPARK_HOME")
    if not home:
        import pyspark

        home = os.path.dirname(pyspark.__file__)
    return os.path.join(home, "bin", "spark-submit")


class SparkSubmit(dg.Config):
    """spark-submit of Sift's job script to a Spark master (`spark://host:7077`, `yarn`, `k8s://...`, `local[*]`;
    None: `$SIFT_SPARK_MASTER`, else `local[*]`), in client deploy mode, with `conf` as `--conf` settings and `env`
    over this process's environment. The driver and the executors run `python` (default: this interpreter), which
    must have Sift installed."""

    master: str | None = None
    conf: dict[str, str] = {}
    env: dict[str, str] = {}
    spark_submit: str | None = None  # None: $SPARK_HOME/bin/spark-submit, else pyspark's
    python: str | None = None  # None: this interpreter

    def master_url(self) -> str:
        """The master submitted to."""
        return self.master or os.environ.get("SIFT_SPARK_MASTER", "local[*]")

    def command(self, sift_args: list[str]) -> list[str]:
        """The spark-submit command line that runs `sift SIFT_ARGS` on the master."""
        cmd = [
            self.spark_submit or default_spark_submit(),
            "--master",
            self.master_url(),
            "--deploy-mode",
            "client",
        ]
        for key, value in sorted(self.conf.items()):
            cmd += ["--conf", f"{key}={value}"]
        return [*cmd, job_script(), *sift_args]

    def environment(self) -> dict[str, str]:
        """The variables set for spark-submit (over this process's environment): the driver's and executors'
        Python, then `env`."""
        python = self.python or sys.executable
        return {"PYSPARK_PYTHON": python, "PYSPARK_DRIVER_PYTHON": python, **self.env}

    def run(
        self, context: dg.AssetExecutionContext, sift_args: list[str]
    ) -> dg.PipesClientCompletedInvocation:
        """Run `sift SIFT_ARGS` on the master under Dagster Pipes; a failed submission fails the step."""
        command = self.command(sift_args)
        context.log.info(f"spark-submit to {self.master_url()}: {' '.join(command)}")
        client = dg.PipesSubprocessClient(env=self.environment())
        return client.run(command=command, context=context)


class DedupOnClusterConfig(dg.Config):
    """Run config of `dedup_on_cluster`: the `sift dedup` flags (None = the [dedup] stage config from sift.toml /
    environment, as the job reads it on the driver) and the submission (`submit`)."""

    mode: str | None = None
    scope: str | None = None
    threshold: float | None = None
    seed: int | None = None
    submit: SparkSubmit = SparkSubmit()


def dedup_args(lake: LakeResource, config: DedupOnClusterConfig) -> list[str]:
    """The `sift dedup` command line of `dedup_on_cluster`."""
    args = [
        "dedup",
        lake.local("raw_documents", stage="dedup"),
        "--output",
        lake.local(OUTPUT, stage="dedup"),
    ]
    for flag, value in (
        ("--mode", config.mode),
        ("--scope", config.scope),
        ("--threshold", config.threshold),
        ("--seed", config.seed),
    ):
        if value is not None:
            args += [flag, str(value)]
    return args


@dg.asset(
    group_name=GROUP,
    kinds={"spark"},
    owners=["team:data-platform"],
    pool="spark",  # like every asset that runs Spark: one such run at a time on the cluster
    deps=["raw_documents"],
    description=(
        "SlimPajama dedup of every source's raw documents by `sift dedup`, spark-submitted to the run config's "
        "`submit.master` through Dagster Pipes, into <lake>/dedup_cluster/; the job reports its progress, counts and "
        "report back."
    ),
)
def dedup_on_cluster(
    context: dg.AssetExecutionContext,
    config: DedupOnClusterConfig,
    lake: LakeResource,
) -> dg.MaterializeResult:
    return config.submit.run(context, dedup_args(lake, config)).get_materialize_result()


ASSETS = [dedup_on_cluster]
