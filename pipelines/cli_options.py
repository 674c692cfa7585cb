"""The options every `sift` stage command shares (engine, Spark master, config file, output folder), and the two
steps every stage command takes with them: its stage's effective config, and its engine.

A stage command declares `output: OutputOpt, engine: EngineOpt = None, spark_master: MasterOpt = None,
config: ConfigOpt = None` and calls `stage_config(...)` and `stage_engine(...)`; see CONTRIBUTING.md.
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


def stage_engine(name: str, spark_master: str | None) -> Engine:
    """The engine a command runs its stage on: Spark on the master (started here), or Polars with the `sift`
    command's side worker allowed."""
    from sift.pipelines.core.stage import engine_for

    return engine_for(name, spark_master, side_workers=True)
