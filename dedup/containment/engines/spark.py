"""R2D2 step 3 on Spark: fingerprints through mapInArrow, checks as DataFrame joins.

Each table is split into tasks (one per Parquet row group, one per CSV file) with the row offset of the task, so
executors read exactly the rows the embedded engine reads, in the same order, with the same pyarrow readers and the
same kernels (`kernels.py`): a projection is a DataFrame (`row` long, `fp` long) persisted once and reused by every
pair. The sample test and the exact test are left-anti joins on `fp`; the row mapping is a join with B's first row
per fingerprint. Candidate pairs are tested together: one anti-join on (pair, fp) over all of them, and one join
mapping the rows of every contained A, instead of a Spark job per pair. Only small results (counts, and the row mapping of a contained table) come back to the driver.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from sift.dedup.containment.engines.base import ContentEngine

FP_SCHEMA = "proj int, row long, fp long"
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


def _fingerprint_tasks(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """mapInArrow body: read each task's rows with pyarrow and emit (row, fp) for them."""
    import pyarrow.csv as pacsv

    from sift.dedup.containment.kernels import batch_fingerprints

    for batch in batches:
        for task in batch.to_pylist():
            cols, klasses = list(task["columns"]), list(task["klasses"])
            if task["fmt"] == "parquet":
                table = pq.ParquetFile(task["path"]).read_row_group(task["group"]).select(cols)
            else:
                table = pacsv.read_csv(task["path"]).select(cols)
            n = table.num_rows
            fps = (
                batch_fingerprints(table, klasses)
                if cols
                else np.full(n, 0x243F6A8885A308D3, dtype=np.uint64)
            )
            rows = np.arange(task["offset"], task["offset"] + n, dtype=np.int64)
            yield pa.RecordBatch.from_arrays(
                [
                    pa.array(np.full(n, task["proj"], dtype=np.int32)),
                    pa.array(rows),
                    pa.array(fps.view(np.int64)),
                ],
                names=["proj", "row", "fp"],
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
        self.column_sets: dict[tuple[int, str], np.ndarray] = {}
        self.pair_results: dict[tuple[int, int], tuple[int, int]] = {}  # (pid a, pid b) -> (missing, sample)
        self.pair_maps: dict[tuple[int, int], np.ndarray] = {}
        self.max_batch_mapped_rows = max(1, cache_bytes // 16)

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
        """Fingerprint many projections in one mapInArrow job, persisted; count rows, distinct signatures of
        the full-table projections and the value sets of single columns in one job each."""
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
        singles = [self.ids[sp] for sp in specs if len(sp[1]) == 1]
        if singles:
            got = df.where(F.col("proj").isin(singles)).select("proj", "fp").distinct().toArrow()
            proj, fp = got.column("proj").to_numpy(), got.column("fp").to_numpy()
            for sp in specs:
                if len(sp[1]) == 1:
                    pid = self.ids[sp]
                    self.column_sets[(sp[0], sp[1][0])] = np.sort(fp[proj == pid])
        full = [self.ids[sp] for sp in specs if sp[1] == tuple(sorted(self.schemas[sp[0]].keys))]
        if full:
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
        """Test many pairs in two jobs: one anti-join of every A against its B on (pair, fp) counting missing
        rows (and missing sampled rows), then one join mapping every row of each contained A to B's first row."""
        from pyspark.sql import functions as F

        self.prefetch([(t, keys) for a, b, keys, _ in pairs for t in (a, b)])
        rows: list[tuple[int, int, int, list[int]]] = []
        for a, b, keys, sample in pairs:
            key = (self.ids[(a, keys)], self.ids[(b, keys)])
            if key in self.pair_results:
                continue
            rows.append((len(rows), key[0], key[1], [] if sample is None else [int(r) for r in sample]))
        if not rows:
            return
        pairs_df = self.spark.createDataFrame(rows, "pair int, a int, b int, sample array<long>")
        fps = self._all_fingerprints()
        a_side = fps.join(F.broadcast(pairs_df.select("pair", F.col("a").alias("proj"), "sample")), on="proj")
        b_side = (
            fps.join(F.broadcast(pairs_df.select("pair", F.col("b").alias("proj"))), on="proj")
            .select("pair", "fp")
            .distinct()
        )
        missing = a_side.join(b_side, on=["pair", "fp"], how="left_anti")
        counts = {
            r["pair"]: (int(r["missing"]), int(r["sampled"]))
            for r in missing.groupBy("pair")
            .agg(
                F.count("*").alias("missing"),
                F.sum(F.when(F.array_contains("sample", F.col("row")), 1).otherwise(0)).alias("sampled"),
            )
            .collect()
        }
        for pair, a, b, _ in rows:
            self.pair_results[(a, b)] = counts.get(pair, (0, 0))
        contained = []
        budget = self.max_batch_mapped_rows  # bound the driver memory of one batch; the rest map pair by pair
        for pair, a, b, _ in rows:
            if self.pair_results[(a, b)][0] == 0 and self.counts[a] <= budget:
                contained.append((pair, a, b))
                budget -= self.counts[a]
        if not contained:
            return
        pos = self.spark.createDataFrame(contained, "pair int, a int, b int")
        first = (
            fps.join(F.broadcast(pos.select("pair", F.col("b").alias("proj"))), on="proj")
            .groupBy("pair", "fp")
            .agg(F.min("row").alias("b_row"))
        )
        mapped = (
            fps.join(F.broadcast(pos.select("pair", F.col("a").alias("proj"))), on="proj")
            .join(first, on=["pair", "fp"], how="left")
            .select("pair", "row", F.coalesce("b_row", F.lit(-1)).alias("b"))
            .toArrow()
        )
        pair_col = mapped.column("pair").to_numpy()
        row_col = mapped.column("row").to_numpy()
        b_col = mapped.column("b").to_numpy()
        for pair, a, b in contained:
            sel = pair_col == pair
            out = np.full(self.counts[a], -1, dtype=np.int64)
            out[row_col[sel]] = b_col[sel]
            self.pair_maps[(a, b)] = out

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

    def _column_set(self, t: int, key: str) -> np.ndarray:
        if (t, key) not in self.column_sets:
            self.prefetch([(t, (key,))])
        return self.column_sets[(t, key)]

    def column_values_missing(self, a: int, b: int, key: str) -> bool:
        # single-column fingerprints are a bijection of the column hashes, so set inclusion is the same test
        return not bool(np.isin(self._column_set(a, key), self._column_set(b, key), assume_unique=True).all())

    def sample_missing(self, pa_: SparkProjection, pb: SparkProjection, rows: np.ndarray) -> int:
        from pyspark.sql import functions as F

        if (pa_.pid, pb.pid) in self.pair_results:
            return self.pair_results[(pa_.pid, pb.pid)][1]
        sample = pa_.df.where(F.col("row").isin([int(r) for r in rows]))
        return sample.join(F.broadcast(pb.df.select("fp")), on="fp", how="left_anti").count()

    def missing(self, pa_: SparkProjection, pb: SparkProjection) -> int:
        from pyspark.sql import functions as F

        if (pa_.pid, pb.pid) in self.pair_results:
            return self.pair_results[(pa_.pid, pb.pid)][0]
        # any row of A whose fingerprint B lacks (the orchestrator only needs to know whether one exists)
        return (
            pa_.df.select("fp")
            .join(F.broadcast(pb.df.select("fp")), on="fp", how="left_anti")
            .limit(1)
            .count()
        )

    def mapping(self, pa_: SparkProjection, pb: SparkProjection) -> np.ndarray:
        from pyspark.sql import functions as F

        if (pa_.pid, pb.pid) in self.pair_maps:
            return self.pair_maps.pop((pa_.pid, pb.pid))  # used once: free it
        first = pb.df.groupBy("fp").agg(F.min("row").alias("b_row"))
        joined = pa_.df.join(F.broadcast(first), on="fp", how="left").select(
            "row", F.coalesce("b_row", F.lit(-1)).alias("b")
        )
        t = joined.toArrow()
        out = np.full(pa_.rows, -1, dtype=np.int64)
        out[t.column("row").to_numpy()] = t.column("b").to_numpy()
        return out

    def fingerprints_of(self, p: SparkProjection, rows: np.ndarray) -> np.ndarray:
        from pyspark.sql import functions as F

        t = p.df.where(F.col("row").isin([int(r) for r in rows])).toArrow()
        by_row = dict(
            zip(t.column("row").to_pylist(), t.column("fp").to_numpy().view(np.uint64), strict=True)
        )
        return np.array([by_row[int(r)] for r in rows], dtype=np.uint64)

    def rows_with_fingerprint(self, p: SparkProjection, fp: int) -> np.ndarray:
        from pyspark.sql import functions as F

        signed = int(np.uint64(fp).view(np.int64))
        t = p.df.where(F.col("fp") == F.lit(signed)).select("row").toArrow()
        return np.sort(t.column("row").to_numpy()).astype(np.int64)

    def close(self) -> None:
        for df in {id(f): f for f in self.frames}.values():
            df.unpersist()
        self.frames.clear()
        self.ids.clear()
