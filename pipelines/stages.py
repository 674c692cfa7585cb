"""Every stage of this installation: one line each in `STAGES` registers its config, its `sift` command and its
Dagster assets.

Defining a `StageConfig` subclass registers its stage's configuration (pipelines/core/config.py); the core imports
no stage, so the entry points import this module: the `sift` command (pipelines/cli.py, pipelines/cli_options.py)
adds each stage's command with `register_commands`, and the Dagster Definitions (pipelines/definitions.py) collect
each stage's assets and checks with `assets_and_checks`. Then a TOML table or `SIFT_<STAGE>__<FIELD>` variable of
any installed stage is known, and `sift config show` lists every stage in this order (after `[lake]`).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import typer


@dataclass(frozen=True)
class Stage:
    """Where a stage plugs into the entry points: modules named, imported only by the entry point that needs them
    (the `sift` command never imports Dagster, the Definitions never import typer's commands)."""

    config: str  # the module defining its StageConfig subclass (importing it registers the stage)
    command: str | None  # a module with `register(app)` adding its `sift` command (None: built into cli.py)
    assets: str  # a module with `ASSETS` and `CHECKS`


# In pipeline order: the order of `sift config show` and of the stage list in config errors.
STAGES = (
    Stage("sift.pipelines.ingest.config", None, "sift.assets.raw"),
    Stage("sift.dedup.config", "sift.pipelines.cli_dedup", "sift.assets.dedup"),
    Stage("sift.dedup.containment.config", "sift.pipelines.cli_contain", "sift.assets.containment"),
    Stage("sift.selection.config", "sift.pipelines.cli_select", "sift.assets.selection"),
    Stage("sift.sampling.config", "sift.pipelines.cli_sample", "sift.assets.sampling"),
)

# Assets downstream of every stage, with no stage config and no `sift` command of their own: the exports, then the
# curation report.
DOWNSTREAM_ASSETS = ("sift.assets.exports", "sift.assets.report")

for _stage in STAGES:
    importlib.import_module(_stage.config)

# The config models by name, for the entry points (importing them above registered them).
from sift.dedup.config import DedupConfig  # noqa: E402
from sift.dedup.containment.config import ContainConfig  # noqa: E402
from sift.pipelines.ingest.config import IngestConfig  # noqa: E402
from sift.sampling.config import SampleConfig  # noqa: E402
from sift.selection.config import SelectionConfig  # noqa: E402


def register_commands(app: typer.Typer) -> None:
    """Add every stage's `sift` command to the app."""
    for stage in STAGES:
        if stage.command is not None:
            importlib.import_module(stage.command).register(app)


def assets_and_checks() -> tuple[list[Any], list[Any]]:
    """Every stage's Dagster assets and asset checks, in pipeline order, then the downstream ones."""
    assets: list[Any] = []
    checks: list[Any] = []
    for name in [stage.assets for stage in STAGES] + list(DOWNSTREAM_ASSETS):
        module = importlib.import_module(name)
        assets.extend(module.ASSETS)
        checks.extend(module.CHECKS)
    return assets, checks


__all__ = [
    "STAGES",
    "DOWNSTREAM_ASSETS",
    "ContainConfig",
    "DedupConfig",
    "IngestConfig",
    "SampleConfig",
    "SelectionConfig",
    "Stage",
    "assets_and_checks",
    "register_commands",
]
