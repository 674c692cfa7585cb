"""The options every `sift` stage command shares (engine, Spark master and settings, config file, output folder),
and the two steps every stage command takes with them: its stage's effective config, and its engine.

A stage command declares `output: OutputOpt, engine: EngineOpt = None, spark_master: MasterOpt = None,
spark_conf: SparkConfOpt = None, config: ConfigOpt = None` and calls `stage_config(...)` and
`stage_engine(...)`; see CONTRIBUTING.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

if TYPE_CHECKING:
    from sift.pipelines.core.config import StageConfig
    from sift.pipelines.core.stage import Engine

C = TypeVar("C", bound="StageConfig")

OutputOpt = Annotated[Path, typer.Option("--output", "-o", help="Output folder of the run.")]
EngineOpt = Annotated[
    str | None,
    typer.Option("--engine", help="Engine: polars (embedded default) or spark.", show_default=False),
]
MasterOpt = Annotated[
    str | None,
    typer.Option("--spark-master", help="Spark master: local[*], spark://host:7077 or sc://host:15002."),
]


def _check_spark_conf(values: list[str] | None) -> list[str] | None:
    """Refuse a malformed `--spark-conf` while the command line is parsed (one line, exit code 2)."""
    from sift.pipelines.core.config import spark_pair
    from sift.pipelines.core.errors import InputError

    for value in values or []:
        try:
            spark_pair(value)
        except ValueError as exc:
            raise InputError(f"--spark-conf: {exc}") from exc
    return values


SparkConfOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--spark-conf",
        metavar="KEY=VALUE",
        help="Spark property of the session (repeatable), over spark-defaults.conf and the config's spark conf.",
        callback=_check_spark_conf,
        show_default=False,
    ),
]
ConfigOpt = Annotated[
    Path | None, typer.Option("--config", help="TOML config file (default: ./sift.toml or $SIFT_CONFIG).")
]


def stage_config(model: type[C], overrides: dict[str, Any] | None = None, file: Path | None = None) -> C:
    """The stage's effective config (defaults < TOML < environment < flags), every installed stage registered
    first so that the TOML file's and the environment's other stages are known."""
    import sift.pipelines.stages  # noqa: F401  (registers every stage)
    from sift.pipelines.core.config import load_config

    return load_config(model, overrides, file=file)


def engine_name(engine: str | None, spark_master: str | None) -> tuple[str, str | None]:
    """The engine's name and Spark master from the flags over the `[lake]` config."""
    import sift.pipelines.stages  # noqa: F401  (registers every stage)
    from sift.pipelines.core.config import engine_choice

    return engine_choice(engine, spark_master)


def spark_settings(flags: list[str] | None = None, file: Path | None = None) -> dict[str, str]:
    """The user's Spark settings: `[spark] conf` (TOML, or `SIFT_SPARK__CONF`) under the `--spark-conf` flags."""
    from sift.pipelines.core.config import SparkConfig, spark_pair

    conf = dict(stage_config(SparkConfig, file=file).conf)
    conf.update(spark_pair(flag) for flag in flags or [])
    return conf


def stage_engine(
    name: str, spark_master: str | None, spark_conf: list[str] | None = None, file: Path | None = None
) -> Engine:
    """The engine a command runs its stage on: Spark on the master (started here, with the user's settings of
    `spark_settings`), or Polars with the `sift` command's side worker allowed."""
    from sift.pipelines.core.stage import engine_for

    conf = spark_settings(spark_conf, file) if name == "spark" else None
    return engine_for(name, spark_master, side_workers=True, spark_conf=conf)
