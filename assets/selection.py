"""Assets of PASER selection (`sift select`): none yet. The stage runs from the `sift select` command and from
`sift.selection.run`; its Dagster assets (embeddings, clusters, degradation scores, the selected recovery set and
their checks) are still to be written, so the Definitions collect nothing from this module."""

from typing import Any

ASSETS: list[Any] = []
CHECKS: list[Any] = []
