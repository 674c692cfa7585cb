"""Python entry point of SlimPajama near-duplicate dedup (SlimPajama-DC section 2), shared by the CLI and assets.

`run(documents, config, output_dir, engine="polars")` streams the documents into a resumable work folder, runs the
chosen engine's plan, and writes the outputs (dedup/outputs.py). Running it again on the same output folder with
the same config and input after a crash reuses the finished work and gives byte-identical output.

A run holds the output folder's lock (pipelines/core/locks.py) from start to end: a second run into the same folder
meanwhile raises `OutputBusyError`. Before it writes anything, a run removes the temporary files killed runs left
there and the previous run's output files, so a folder never shows another run's outputs beside this run's work.
"""

from __future__ import annotations

import importlib
import json
import os
import time
from collections import deque
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa

from sift.dedup.config import DedupConfig
from sift.dedup.outputs import finalize, remove_outputs
from sift.dedup.work import WorkDir, phase, spill
from sift.pipelines.core.atomic import remove_tmp_files, write_json
from sift.pipelines.core.locks import output_lock


def _warm_engine(config: DedupConfig) -> Any:
    """Import the Polars engine and run the facts kernels once on two tiny documents: numba loads its cached
    machine code and starts its threads on the first call (~0.5 s), which then overlaps the first shard's parse
    instead of delaying its facts."""
    engine = importlib.import_module("sift.dedup.engines.polars")
    from sift.dedup import kernels

    tiny = pa.record_batch(
        {
            "_row": pa.array([0, 1], pa.int64()),
            "id": pa.array(["a", "b"]),
            "source": pa.array(["s", "s"]),
            "text": pa.array(["warm up the facts kernels once", "Warm up, the facts kernels once!"]),
        }
    )
    kernels.facts_batch(tiny, config)
    return engine


def run(
    documents: Iterable[Any] | pa.Table | pa.RecordBatch,
    config: DedupConfig | None = None,
    output_dir: str | os.PathLike[str] = "dedup_out",
    *,
    engine: Literal["polars", "spark"] = "polars",
    spark: Any = None,
    input_fingerprint: str | None = None,
) -> dict[str, Any]:
    """Deduplicate documents (`id`, `text`, optional `source`, any other columns) and write the outputs.

    `documents`: a Table, a RecordBatch, or an iterable of those or of ingest results (objects with `.documents`
    and `.quarantine`, as `pipelines.lake.iter_documents` yields). `spark`: a SparkSession for engine="spark".
    `input_fingerprint`: identifies the input for resuming (e.g. path, size, mtime); without it, a leftover work
    folder is only reused if the config matches. Returns the stats dict (also written to stats.json).
    Raises `pipelines.locks.OutputBusyError` while another run writes to `output_dir`.
    """
    config = config or DedupConfig()
    out = Path(output_dir)
    with output_lock(out):
        remove_tmp_files(out)
        remove_outputs(out)
        return _run(documents, config, out, engine, spark, input_fingerprint)


def _run(
    documents: Iterable[Any] | pa.Table | pa.RecordBatch,
    config: DedupConfig,
    out: Path,
    engine: str,
    spark: Any,
    input_fingerprint: str | None,
) -> dict[str, Any]:
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    fingerprint = {"config": config.fingerprint(), "input": input_fingerprint, "format": 3}
    work = WorkDir(out, fingerprint, spill="arrow" if engine == "polars" else "parquet")
    phase("input" + (" and facts" if engine == "polars" else ""), f"{engine} engine, work folder {work.root}")

    if engine == "polars":
        # Facts of shard i are computed on a worker thread (the kernels release the GIL) while the reader parses
        # and spills shard i + 1; at most two shards are in flight, so memory stays bounded. The worker first
        # imports the kernels (numba, which imports SciPy) and loads them while the reader parses the first shard.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="sift-facts") as facts_thread:
            loaded = facts_thread.submit(_warm_engine, config)
            pending: deque[Future[None]] = deque()

            def facts(i: int, table: pa.Table) -> None:
                loaded.result().facts_for_shard(work, i, table, config)

            def on_shard(i: int, table: pa.Table) -> None:
                while len(pending) >= 2:
                    pending.popleft().result()
                pending.append(facts_thread.submit(facts, i, table))

            spill(work, documents, config.batch_rows, on_shard)
            timings["ingest"] = time.perf_counter() - t0
            t = time.perf_counter()
            importlib.import_module("polars")  # for the plan, while the facts thread finishes the last shards
            while pending:
                pending.popleft().result()
            plan = loaded.result()
            timings["facts"] = time.perf_counter() - t
        decisions, phases = plan.run(work, config, timings)
    elif engine == "spark":
        from sift.dedup.engines import spark as splan

        spill(work, documents, config.batch_rows)
        timings["ingest"] = time.perf_counter() - t0
        if spark is None:
            raise ValueError("engine='spark' needs a SparkSession (spark=...)")
        decisions, phases = splan.run(spark, work, config, timings)
    else:
        raise ValueError(f"unknown engine {engine!r} (polars or spark)")

    t = time.perf_counter()
    phase("outputs", f"writing {out}")
    stats = finalize(work, decisions, out, config, phases)
    timings["write"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - t0
    write_json(
        {"engine": engine, "seconds": {k: round(v, 4) for k, v in timings.items()}}, out / "timings.json"
    )
    if not config.keep_work:
        work.remove()
    return stats


def load_stats(output_dir: str | os.PathLike[str]) -> dict[str, Any]:
    return json.loads((Path(output_dir) / "stats.json").read_text())
