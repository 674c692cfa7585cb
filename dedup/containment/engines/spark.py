"""R2D2 step 3 on Spark: fingerprints and row values through mapInArrow, every test as a DataFrame join.

Each table is split into tasks (one per Parquet row group, one per CSV file) with the row offset of the task, so
executors read exactly the rows the embedded engine reads, in the same order, with the same pyarrow readers and the
same kernels (`kernels.py`): a projection is a DataFrame (`row` long, `fp` long) persisted once and reused by every
pair. Candidate pairs are tested together: one left-anti join on (pair, fp) over all of them and over their single
columns gives the column-value test, the sample test and the exact test; then the pairs that passed are confirmed by
value in one job, on each row's normalised values as bytes (`kernels.row_bytes`), compared with the B row its
fingerprint matched first and with every B row of that fingerprint. The driver gets counts per projection and per
pair only, never rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from sift.dedup.containment.engines.base import Confirmation, ContentEngine

FP_SCHEMA = "proj int, row long, fp long"
VALUE_SCHEMA = "proj int, row long, fp long, v binary"
TASK_SCHEMA = "proj int, path string, group int, offset long, rows long, fmt string, columns array<int>, klasses array<string>"


def _tasks(ref, columns: list[int], klasses: list[str]) -> list[dict]:
    """One task per Parquet row group (CSV: per file), with its first row number in the table."""
    out, offset = [], 0
    if ref.format == "parquet":
        for path in ref.paths:
            md = pq.ParquetFile(path).metadata
            for g in range(md.num_row_groups):
                n = md.row_group(g).num_rows
                out.append({"path": path, "group": g, "offset": offset, "rows": n, "fmt": "parquet"})
                offset += n
    else:
        out.append({"path": ref.paths[0], "group": -1, "offset": 0, "rows": -1, "fmt": ref.format})
    for t in out:
        t["columns"] = columns
        t["klasses"] = klasses
    return out


def _read_task(task: dict) -> pa.Table:
    """The rows of one task, projected on its columns (in fingerprint order)."""
    import pyarrow.csv as pacsv

    cols = list(task["columns"])
    if task["fmt"] == "parquet":
        return pq.ParquetFile(task["path"]).read_row_group(task["group"]).select(cols)
    return pacsv.read_csv(task["path"]).select(cols)


def _task_rows(task: dict) -> tuple[pa.Table, np.ndarray, np.ndarray]:
    """(rows read, their fingerprints, their row numbers in the table)."""
    from sift.dedup.containment.kernels import batch_fingerprints

    table = _read_task(task)
    n = table.num_rows
    klasses = list(task["klasses"])
    fps = batch_fingerprints(table, klasses) if klasses else np.full(n, 0x243F6A8885A308D3, dtype=np.uint64)
    return table, fps, np.arange(task["offset"], task["offset"] + n, dtype=np.int64)


def _fingerprint_tasks(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """mapInArrow body: read each task's rows with pyarrow and emit (row, fp) for them."""
    for batch in batches:
        for task in batch.to_pylist():
            table, fps, rows = _task_rows(task)
            yield pa.RecordBatch.from_arrays(
                [
                    pa.array(np.full(len(rows), task["proj"], dtype=np.int32)),
                    pa.array(rows),
                    pa.array(fps.view(np.int64)),
                ],
                names=["proj", "row", "fp"],
            )


def _value_tasks(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """mapInArrow body: (row, fp, v) for each task's rows, v the row's normalised values as bytes."""
    from sift.dedup.containment.kernels import row_bytes

    for batch in batches:
        for task in batch.to_pylist():
            table, fps, rows = _task_rows(task)
            values = row_bytes(table, list(task["klasses"])).cast(pa.binary())
            yield pa.RecordBatch.from_arrays(
                [
                    pa.array(np.full(len(rows), task["proj"], dtype=np.int32)),
                    pa.array(rows),
                    pa.array(fps.view(np.int64)),
                    values,
                ],
                names=["proj", "row", "fp", "v"],
            )


@dataclass
class SparkProjection:
    table: int
    keys: tuple[str, ...]
    rows: int
    df: Any  # DataFrame[row, fp] (a filter of a persisted DataFrame)
    pid: int = -1


class SparkEngine(ContentEngine):
    name = "spark"

    def __init__(self, refs, schemas, cache_bytes: int, spark) -> None:
        super().__init__(refs, schemas, cache_bytes)
        self.spark = spark
        self.ids: dict[tuple[int, tuple[str, ...]], int] = {}
        self.frames: list[Any] = []  # projection id -> the persisted DataFrame holding it
        self.counts: dict[int, int] = {}
        self.signatures: dict[int, tuple[int, int]] = {}
        self.pair_results: dict[tuple[int, int], tuple[int, int]] = {}  # (pid a, pid b) -> (missing, sample)
        self.confirmed: dict[tuple[int, int], Confirmation] = {}

    def _tasks_for(self, specs: list[tuple[int, tuple[str, ...]]], first_id: int) -> list[dict]:
        tasks = []
        for i, (t, keys) in enumerate(specs):
            s = self.schemas[t]
            for task in _tasks(
                self.refs[t], [s.by_key[k].position for k in keys], [s.by_key[k].klass for k in keys]
            ):
                tasks.append({"proj": first_id + i, **task})
        return tasks

    def prefetch(self, specs: list[tuple[int, tuple[str, ...]]]) -> None:
        """Fingerprint many projections in one mapInArrow job, persisted; count rows and the distinct signatures
        of the full-table projections in one job each (one row per projection reaches the driver)."""
        from pyspark import StorageLevel
        from pyspark.sql import functions as F

        specs = [sp for sp in dict.fromkeys(specs) if sp not in self.ids]
        if not specs:
            return
        first = len(self.frames)
        tasks = self._tasks_for(specs, first)
        df = self.spark.createDataFrame(tasks, TASK_SCHEMA).mapInArrow(_fingerprint_tasks, FP_SCHEMA)
        df = df.persist(StorageLevel.MEMORY_AND_DISK)
        counts = {r["proj"]: r["n"] for r in df.groupBy("proj").agg(F.count("*").alias("n")).collect()}
        for i, sp in enumerate(specs):
            self.ids[sp] = first + i
            self.frames.append(df)
            self.counts[first + i] = int(counts.get(first + i, 0))
        full = [self.ids[sp] for sp in specs if sp[1] == tuple(sorted(self.schemas[sp[0]].keys))]
        if full:
            # To the driver: one (count, digest) row per projection.
            sig = (
                df.where(F.col("proj").isin(full))
                .select("proj", "fp")
                .distinct()
                .groupBy("proj")
                .agg(F.count("*").alias("n"), F.bit_xor(F.xxhash64("fp")).alias("d"))
                .collect()
            )
            for r in sig:
                self.signatures[r["proj"]] = (int(r["n"]), int(r["d"] or 0))

    def _all_fingerprints(self):
        frames = list({id(f): f for f in self.frames}.values())
        out = frames[0]
        for f in frames[1:]:
            out = out.unionByName(f)
        return out

    def prefetch_pairs(self, pairs: list[tuple[int, int, tuple[str, ...], np.ndarray | None]]) -> None:
        """Test many pairs in two jobs: one anti-join of every A against its B on (pair, fp), for the pair's
        projection and for each of its single columns, counting missing rows (and missing sampled rows); then
        the value confirmation of every pair with none missing."""
        from pyspark.sql import functions as F

        specs = []
        for a, b, keys, _ in pairs:
            specs += [(t, keys) for t in (a, b)] + [(t, (k,)) for k in keys for t in (a, b)]
        self.prefetch(specs)
        rows: dict[tuple[int, int], tuple[int, int, int, list[int]]] = {}
        full: list[tuple[int, int]] = []
        for a, b, keys, sample in pairs:
            key = (self.ids[(a, keys)], self.ids[(b, keys)])
            full.append(key)
            todo = [(key, sample)] + [
                ((self.ids[(a, (k,))], self.ids[(b, (k,))]), None) for k in keys if (k,) != keys
            ]
            for pk, smp in todo:
                if pk not in self.pair_results and pk not in rows:
                    rows[pk] = (len(rows), pk[0], pk[1], [] if smp is None else [int(r) for r in smp])
        if rows:
            pairs_df = self.spark.createDataFrame(
                list(rows.values()), "pair int, a int, b int, sample array<long>"
            )
            fps = self._all_fingerprints()
            a_side = fps.join(
                F.broadcast(pairs_df.select("pair", F.col("a").alias("proj"), "sample")), on="proj"
            )
            b_side = (
                fps.join(F.broadcast(pairs_df.select("pair", F.col("b").alias("proj"))), on="proj")
                .select("pair", "fp")
                .distinct()
            )
            missing = a_side.join(b_side, on=["pair", "fp"], how="left_anti")
            # To the driver: one row per candidate pair.
            counts = {
                r["pair"]: (int(r["missing"]), int(r["sampled"]))
                for r in missing.groupBy("pair")
                .agg(
                    F.count("*").alias("missing"),
                    F.sum(F.when(F.array_contains("sample", F.col("row")), 1).otherwise(0)).alias("sampled"),
                )
                .collect()
            }
            for pk, (pair, _a, _b, _s) in rows.items():
                self.pair_results[pk] = counts.get(pair, (0, 0))
        self._confirm_pairs(
            [pk for pk in dict.fromkeys(full) if self.pair_results[pk][0] == 0 and pk not in self.confirmed]
        )

    def _confirm_pairs(self, keys: list[tuple[int, int]]) -> None:
        """Confirm pairs (pid a, pid b) by value in one job: each row of A against the first row of B with its
        fingerprint (a differing value is a collision), and against B's distinct (fingerprint, value) set (a row
        absent from it is unresolved). One row per pair reaches the driver."""
        from pyspark.sql import functions as F

        if not keys:
            return
        by_pid = {i: sp for sp, i in self.ids.items()}
        vids: dict[int, int] = {}
        for pk in keys:
            for pid in pk:
                vids.setdefault(pid, len(vids))
        tasks = self._tasks_for([by_pid[pid] for pid in vids], 0)
        vals = self.spark.createDataFrame(tasks, TASK_SCHEMA).mapInArrow(_value_tasks, VALUE_SCHEMA)
        pairs_df = self.spark.createDataFrame(
            [(i, vids[a], vids[b]) for i, (a, b) in enumerate(keys)], "pair int, a int, b int"
        )
        a_side = vals.join(F.broadcast(pairs_df.select("pair", F.col("a").alias("proj"))), on="proj")
        b_side = vals.join(F.broadcast(pairs_df.select("pair", F.col("b").alias("proj"))), on="proj")
        first = b_side.groupBy("pair", "fp").agg(F.min_by("v", "row").alias("bv"))
        present = b_side.select("pair", "fp", "v").distinct().withColumn("hit", F.lit(True))
        got = (  # to the driver: one row per pair (counts and the first unmatched row number)
            a_side.select("pair", "row", "fp", "v")
            .join(first, on=["pair", "fp"], how="left")
            .join(present, on=["pair", "fp", "v"], how="left")
            .groupBy("pair")
            .agg(
                F.count("*").alias("rows"),
                F.sum(F.when(F.col("bv").isNull() | (F.col("bv") != F.col("v")), 1).otherwise(0)).alias(
                    "coll"
                ),
                F.min(F.when(F.col("hit").isNull(), F.col("row"))).alias("bad"),
            )
            .collect()
        )
        found = {r["pair"]: r for r in got}
        for i, pk in enumerate(keys):
            r = found.get(i)
            if r is None:  # an empty A: nothing to confirm
                self.confirmed[pk] = Confirmation(0, 0, None)
            else:
                bad = r["bad"]
                self.confirmed[pk] = Confirmation(
                    int(r["rows"]), int(r["coll"] or 0), None if bad is None else int(bad)
                )

    def projection(self, t: int, keys: tuple[str, ...]) -> SparkProjection:
        from pyspark.sql import functions as F

        if (t, keys) not in self.ids:
            self.prefetch([(t, keys)])
        pid = self.ids[(t, keys)]
        df = self.frames[pid].where(F.col("proj") == pid).select("row", "fp")
        return SparkProjection(t, keys, self.counts[pid], df, pid)

    def distinct_signature(self, p: SparkProjection) -> tuple[int, int]:
        from pyspark.sql import functions as F

        if p.pid not in self.signatures:
            got = (
                p.df.select("fp")
                .distinct()
                .agg(F.count("*").alias("n"), F.bit_xor(F.xxhash64("fp")).alias("d"))
            )
            r = got.collect()[0]
            self.signatures[p.pid] = (int(r["n"]), int(r["d"] or 0))
        return self.signatures[p.pid]

    def column_values_missing(self, a: int, b: int, key: str) -> bool:
        # single-column fingerprints are a bijection of the column hashes, so the anti-join is the value test
        return self.missing(self.projection(a, (key,)), self.projection(b, (key,))) > 0

    def sample_missing(self, pa_: SparkProjection, pb: SparkProjection, rows: np.ndarray) -> int:
        from pyspark.sql import functions as F

        if (pa_.pid, pb.pid) in self.pair_results:
            return self.pair_results[(pa_.pid, pb.pid)][1]
        sample = pa_.df.where(F.col("row").isin([int(r) for r in rows]))
        return sample.join(F.broadcast(pb.df.select("fp")), on="fp", how="left_anti").count()

    def missing(self, pa_: SparkProjection, pb: SparkProjection) -> int:
        if (pa_.pid, pb.pid) in self.pair_results:
            return self.pair_results[(pa_.pid, pb.pid)][0]
        # any row of A whose fingerprint B lacks (the orchestrator only needs to know whether one exists)
        return pa_.df.select("fp").join(pb.df.select("fp"), on="fp", how="left_anti").limit(1).count()

    def confirm(self, pa_: SparkProjection, pb: SparkProjection) -> Confirmation:
        key = (pa_.pid, pb.pid)
        if key not in self.confirmed:
            self._confirm_pairs([key])
        return self.confirmed[key]

    def close(self) -> None:
        for df in {id(f): f for f in self.frames}.values():
            df.unpersist()
        self.frames.clear()
        self.ids.clear()
