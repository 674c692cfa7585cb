"""Every stage of this installation, registered by importing its config model (one line per stage).

Defining a `StageConfig` subclass registers its stage (pipelines/core/config.py); the core imports no stage, so the
entry points import this module: the `sift` command (pipelines/cli_options.py) and the Dagster Definitions
(pipelines/definitions.py). Then a TOML table or `SIFT_<STAGE>__<FIELD>` variable of any installed stage is known,
and `sift config show` lists every stage, in this order (after `[lake]`).
"""

# In pipeline order: the order of `sift config show` and of the stage list in config errors.
# isort: off
from sift.pipelines.ingest.config import IngestConfig
from sift.dedup.config import DedupConfig
from sift.dedup.containment.config import ContainConfig
# isort: on

__all__ = ["ContainConfig", "DedupConfig", "IngestConfig"]
