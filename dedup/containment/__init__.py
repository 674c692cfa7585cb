"""R2D2 containment ("R2D2: Reducing Redundancy and Duplication in Data Lakes"): find every table of a lake that
is contained in another (same columns by name, comparable types, its distinct rows a subset of the other's
projection) through a schema containment graph (step 1, `schema.py`), min-max pruning from Parquet footers
(step 2, `stats.py`) and an exact content check on row fingerprints (step 3, `content.py`, `kernels.py`,
`engines/`); then choose the tables to delete and rebuild on demand (`plan.py`) with exact, verified recipes
(`recipes.py`). The stage's entry is `run` below (pipelines/core/stage.py); `api.run_contain` runs it all on tables
already discovered and writes the outputs.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sift.dedup.containment.config import ContainConfig
from sift.dedup.containment.tables import TableRef

if TYPE_CHECKING:
    from sift.pipelines.core.stage import Engine

__all__ = ["ContainConfig", "TableRef", "run"]


def run(
    inputs: str | Sequence[str],
    config: ContainConfig | None,
    output: str | os.PathLike[str],
    engine: Engine,
    *,
    access_log: str | None = None,
    apply: bool = False,
) -> dict[str, Any]:
    """Containment and the deletion plan over the tables of one lake root (`inputs`), written to `output`; with
    `apply`, the verified deletable tables move to LAKE/.sift_trash/<run>/. Returns stats.json.

    On a `PolarsEngine` that allows side workers, a lake of SIDE_MIN_TABLES tables or more gets one (started
    here, before the heavy imports, so that it imports meanwhile); a `SparkEngine` runs the content check on its
    session."""
    from sift.dedup.containment.side import SIDE_MIN_TABLES, WARM
    from sift.pipelines.core.lake.tables import discover_tables
    from sift.pipelines.core.stage import PolarsEngine, SparkEngine, one_input

    lake = one_input(inputs, "contain")
    config = (config or ContainConfig()).model_copy(update={"engine": engine.name})
    refs, problems = discover_tables(lake)
    spark = engine.session if isinstance(engine, SparkEngine) else None
    side: AbstractContextManager[object] = nullcontext()
    if isinstance(engine, PolarsEngine):
        side = engine.side_worker(len(refs) >= SIDE_MIN_TABLES, WARM)
    with side:
        from sift.dedup.containment.api import run_contain

        return run_contain(
            refs,
            str(output),
            config,
            spark=spark,
            lake_root=str(Path(lake).resolve()) if apply else str(Path(lake)),
            access_log=access_log,
            apply=apply,
            problems=problems,
        )
