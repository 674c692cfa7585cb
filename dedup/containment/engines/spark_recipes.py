"""R2D2 lossless deletion on Spark: the rebuild recipes of the planned deletions, built and written by the executors.

One task per planned deletion (table A rebuilt from container B) runs on an executor, in mapInArrow: it reads A and
B with the same pyarrow readers as the embedded engine, maps every row of A to the first row of B with the same
fingerprint on A's columns (the same kernels, so the same mapping as the embedded engine), builds and verifies the
recipe (`recipes.recipe_from`: encoded row mapping, checksum, rebuild check) and, when it verifies, what the recipe
keeps of A (`recipes.source_record`), and writes the recipe as a one-row Parquet file with `RECIPE_SCHEMA` under
OUTPUT/_work/recipes. The driver gets back one row per task (table, container, verified, error) and finally gathers
the files of the chosen recipes into OUTPUT/recipes.parquet, a folder of part files in table order that pyarrow
reads as one table with the embedded engine's schema and rows; no row mapping or table value reaches the driver.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from sift.dedup.containment.recipes import RECIPE_SCHEMA
from sift.dedup.containment.schema import TableSchema
from sift.dedup.containment.tables import TableRef
from sift.pipelines.core.atomic import atomic_dir, write_parquet

TASK_SCHEMA = (
    "t int, c int, table string, container string, container_columns array<int>, a_keys array<int>, "
    "b_keys array<int>, klasses array<string>, out string, files boolean"
)
DONE_SCHEMA = "t int, c int, verified boolean, error string, written boolean"


def first_row_mapping(fa: np.ndarray, fb: np.ndarray) -> np.ndarray:
    """For every fingerprint of A in order, the first row of B with it (-1 when none): the embedded engine's
    mapping."""
    if len(fb) == 0:
        return np.full(len(fa), -1, dtype=np.int64)
    uniq, first = np.unique(fb, return_index=True)
    pos = np.minimum(np.searchsorted(uniq, fa), len(uniq) - 1)
    return np.where(uniq[pos] == fa, first[pos], -1).astype(np.int64)


def build_one(task: dict) -> dict:
    """One recipe, built, verified and written to task["out"] (when it has a schema); returns its outcome."""
    from sift.dedup.containment.kernels import batch_fingerprints
    from sift.dedup.containment.recipes import recipe_from, source_record
    from sift.dedup.containment.tables import read_table

    ref = TableRef.from_dict(json.loads(task["table"]))
    cref = TableRef.from_dict(json.loads(task["container"]))
    try:
        original, container = read_table(ref), read_table(cref)
        klasses = list(task["klasses"])
        fa = batch_fingerprints(original.select(list(task["a_keys"])), klasses)
        fb = batch_fingerprints(container.select(list(task["b_keys"])), klasses)
        recipe = recipe_from(
            ref, cref, list(task["container_columns"]), first_row_mapping(fa, fb), original, container
        )
        if recipe.get("verified"):
            recipe.update(source_record(ref, original, files=bool(task["files"])))
    except Exception as exc:  # a recipe that cannot be built is a failed one, never a crash
        return {"verified": False, "error": f"{type(exc).__name__}: {exc}", "written": False}
    write_parquet(pa.Table.from_pylist([recipe], schema=RECIPE_SCHEMA), task["out"])
    return {"verified": bool(recipe["verified"]), "error": recipe["error"], "written": True}


def _recipe_tasks(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """mapInArrow body: build_one for each task, one outcome row each."""
    for batch in batches:
        out = []
        for task in batch.to_pylist():
            out.append({"t": task["t"], "c": task["c"], **build_one(task)})
        if out:
            yield pa.RecordBatch.from_pylist(
                out,
                schema=pa.schema(
                    [
                        ("t", pa.int32()),
                        ("c", pa.int32()),
                        ("verified", pa.bool_()),
                        ("error", pa.string()),
                        ("written", pa.bool_()),
                    ]
                ),
            )


class SparkRecipes:
    """Recipes of planned deletions built on the executors (see the module docstring)."""

    def __init__(
        self,
        spark: Any,
        refs: list[TableRef],
        schemas: list[TableSchema],
        output_dir: str,
        files: bool,
    ) -> None:
        self.spark, self.refs, self.schemas, self.files = spark, refs, schemas, files
        self.output_dir = output_dir
        self.work = os.path.join(output_dir, "_work", "recipes")
        if os.path.isdir(self.work):  # a killed run's recipes: built again
            shutil.rmtree(self.work)
        os.makedirs(self.work)

    def _path(self, t: int, c: int) -> str:
        return os.path.join(self.work, f"{t}-{c}.parquet")

    def build(self, pairs: list[tuple[int, int]]) -> dict[tuple[int, int], dict]:
        """Build the recipes of (table, container) pairs in one Spark job; returns each one's outcome (table,
        verified, error), the recipe itself staying in its file."""
        if not pairs:
            return {}
        tasks = []
        for t, c in pairs:
            ts, cs = self.schemas[t], self.schemas[c]
            keys = sorted(ts.keys)
            tasks.append(
                {
                    "t": t,
                    "c": c,
                    "table": json.dumps(self.refs[t].to_dict()),
                    "container": json.dumps(self.refs[c].to_dict()),
                    "container_columns": [cs.by_key[col.key].position for col in ts.columns],
                    "a_keys": [ts.by_key[k].position for k in keys],
                    "b_keys": [cs.by_key[k].position for k in keys],
                    "klasses": [ts.by_key[k].klass for k in keys],
                    "out": self._path(t, c),
                    "files": self.files,
                }
            )
        df = self.spark.createDataFrame(tasks, TASK_SCHEMA).repartition(len(tasks))
        got = df.mapInArrow(_recipe_tasks, DONE_SCHEMA).collect()  # one row per table
        out: dict[tuple[int, int], dict] = {}
        for r in got:
            t, c = int(r["t"]), int(r["c"])
            out[(t, c)] = {
                "table": self.refs[t].name,
                "verified": bool(r["verified"]),
                "error": r["error"],
                "file": self._path(t, c) if r["written"] else None,
            }
        return out

    def write(self, chosen: dict[int, dict]) -> None:
        """OUTPUT/recipes.parquet from the chosen recipe of each table (those with a file), in table order."""
        files = [(t, rec["file"]) for t, rec in sorted(chosen.items()) if rec.get("file")]
        target = os.path.join(self.output_dir, "recipes.parquet")
        if os.path.isfile(target):  # an embedded engine's single file from an earlier run
            os.remove(target)
        with atomic_dir(target) as tmp:
            for t, path in files:
                os.replace(path, os.path.join(tmp, f"part-{t:06d}.parquet"))
            if not files:
                pq.write_table(
                    pa.Table.from_pylist([], schema=RECIPE_SCHEMA), os.path.join(tmp, "part-empty.parquet")
                )
        shutil.rmtree(self.work, ignore_errors=True)
        work = os.path.dirname(self.work)
        if os.path.isdir(work) and not os.listdir(work):
            os.rmdir(work)

    def read(self, t: int) -> dict:
        """One written recipe, read back (for --apply, which moves the lake's files from the driver)."""
        target = os.path.join(self.output_dir, "recipes.parquet", f"part-{t:06d}.parquet")
        return pq.read_table(target).to_pylist()[0]
