"""Writing lake tables: the documents and quarantine tables (and any other table a stage keeps in the lake) as Parquet.

Written through the core's one atomic writer (`sift.pipelines.core.atomic`), so a reader sees the old file or the new
one, never half of one. The bytes depend on the rows alone: one chunk per column (page boundaries do not depend on how
the table was batched), zstd compression, row groups of 128 Ki rows, statistics, no timestamps.
"""

from __future__ import annotations

import os

import pyarrow as pa

from sift.pipelines.core import atomic

ROW_GROUP_ROWS = 128 * 1024


def write_table(table: pa.Table, path: str | os.PathLike[str]) -> None:
    """Write `table` to the Parquet file `path` atomically, with deterministic bytes (see the module docstring)."""
    atomic.write_parquet(
        table.combine_chunks(), path, compression="zstd", row_group_size=ROW_GROUP_ROWS, write_statistics=True
    )
