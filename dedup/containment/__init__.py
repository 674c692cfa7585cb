"""R2D2 containment ("R2D2: Reducing Redundancy and Duplication in Data Lakes"): find every table of a lake that
is contained in another (same columns by name, comparable types, its distinct rows a subset of the other's
projection) through a schema containment graph (step 1, `schema.py`), min-max pruning from Parquet footers
(step 2, `stats.py`) and an exact content check on row fingerprints (step 3, `content.py`, `kernels.py`,
`engines/`); then choose the tables to delete and rebuild on demand (`plan.py`) with exact, verified recipes
(`recipes.py`). `run.run_contain` runs it all and writes the outputs.
"""

from sift.dedup.containment.config import ContainConfig
from sift.dedup.containment.tables import TableRef

__all__ = ["ContainConfig", "TableRef"]
