"""Python entry point of SlimPajama near-duplicate dedup (SlimPajama-DC section 2), shared by the CLI and assets.

`run(inputs, config, output, engine)` (the stage contract of pipelines/core/stage.py) runs the engine's plan and
writes the outputs. `inputs` are documents datasets named by URI (read with the lake's readers, with the `fields`
given, by default `id`, `text`, `source`) or, the second door, documents already read: a Table, a RecordBatch, or an
iterable of those or of ingest results. On the Polars engine the documents stream into a resumable work folder,
dedup/engines/polars.py decides and dedup/outputs.py writes single files. On the Spark engine the executors read
URI inputs themselves (documents already read become a DataFrame), and dedup/engines/spark.py decides and writes
the tables as folders of part files, all under the output folder (a local path or a `file://` URI). Running it
again on the same output folder with the same config and input after a crash reuses the finished work and gives
the same output.

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
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Literal, TypeAlias

import pyarrow as pa

from sift.dedup.config import DedupConfig
from sift.dedup.outputs import finalize, remove_outputs
from sift.dedup.work import WorkDir, phase, spill
from sift.pipelines.core.atomic import remove_tmp_files, write_json
from sift.pipelines.core.lake import Fields
from sift.pipelines.core.locks import output_lock
from sift.pipelines.core.stage import Engine, PolarsEngine, SparkEngine
from sift.pipelines.core.stage import input_fingerprint as uri_fingerprint

Documents: TypeAlias = Iterable[Any] | pa.Table | pa.RecordBatch


def work_fingerprint(config: DedupConfig, input_fingerprint: str | None) -> dict[str, Any]:
    """What a run's work folder is keyed by: a leftover work folder with another fingerprint is wiped, one with
    the same fingerprint is resumed (its finished shards reused)."""
    return {"config": config.fingerprint(), "input": input_fingerprint, "format": 3}


def run(
    inputs: str | Sequence[str] | Documents,
    config: DedupConfig | None = None,
    output: str | os.PathLike[str] = "dedup_out",
    engine: Engine | Literal["polars", "spark"] = "polars",
    *,
    spark: Any = None,
    input_fingerprint: str | None = None,
    fields: Fields | None = None,
) -> dict[str, Any]:
    """Deduplicate documents (`id`, `text`, optional `source`, any other columns) and write the outputs.

    `inputs`: documents datasets named by URI, or documents already read (a Table, a RecordBatch, or an iterable
    of those or of ingest results: objects with `.documents` and `.quarantine`, as
    `sift.pipelines.core.lake.iter_documents` yields). `engine`: `PolarsEngine()` or `SparkEngine(session)`; or its
    name, "polars" or "spark" (then `spark` is the SparkSession). `input_fingerprint`: identifies the input for
    resuming (e.g. path, size, mtime; taken from the files for URI inputs); without it, a leftover work folder is only
    reused if the config matches. `fields`: the input fields holding the id, text and source of URI inputs (default
    `id`, `text`, `source`). On Spark, URI inputs are read by the executors and `output` (a local path or a
    `file://` URI) gets the tables as folders of Parquet part files. Returns the stats dict (also written to stats.json). Raises
    `sift.pipelines.core.locks.OutputBusyError` while another run writes to `output`.
    """
    config = config or DedupConfig()
    if isinstance(engine, str):
        engine = _named_engine(engine, spark)
    uris: list[str] | None = None
    if isinstance(inputs, str) or _is_uri_list(inputs):
        uris = [inputs] if isinstance(inputs, str) else list(inputs)
        if input_fingerprint is None:
            input_fingerprint = ",".join(uri_fingerprint(u) for u in uris)
    out = local_output(output)
    with output_lock(out):
        remove_tmp_files(out)
        remove_outputs(out)
        if isinstance(engine, SparkEngine):
            return _run_spark(inputs, uris, fields or Fields(), config, out, engine, input_fingerprint)
        documents: Documents = _read(uris, config.batch_rows, fields or Fields()) if uris else inputs
        return _run(documents, config, out, engine, input_fingerprint)


def local_output(output: str | os.PathLike[str]) -> Path:
    """The output folder as a local path (a `file://` URI names one too)."""
    text = os.fspath(output)
    if text.startswith("file:"):
        from urllib.parse import unquote, urlparse

        return Path(unquote(urlparse(text).path))
    if "://" in text:
        raise ValueError(f"dedup writes to a local path or a file:// URI, not {text!r}")
    return Path(text)


def _named_engine(name: str, spark: Any) -> Engine:
    if name == "polars":
        return PolarsEngine()
    if name == "spark":
        if spark is None:
            raise ValueError("engine='spark' needs a SparkSession (spark=...)")
        return SparkEngine(spark)
    raise ValueError(f"unknown engine {name!r} (polars or spark)")


def _is_uri_list(inputs: object) -> bool:
    return isinstance(inputs, list | tuple) and bool(inputs) and all(isinstance(u, str) for u in inputs)


def _read(uris: list[str], batch_rows: int, fields: Fields) -> Iterator[Any]:
    """The documents of every input, in order, as the lake's readers yield them (quarantine included)."""
    from sift.pipelines.core.lake import iter_documents

    for uri in uris:
        yield from iter_documents(
            uri, id_field=fields.id, text_field=fields.text, source_field=fields.source, batch_rows=batch_rows
        )


def _run_spark(
    inputs: Any,
    uris: list[str] | None,
    fields: Fields,
    config: DedupConfig,
    out: Path,
    engine: SparkEngine,
    input_fingerprint: str | None,
) -> dict[str, Any]:
    """The Spark engine: the executors read URI inputs, compute, and write the tables; the driver writes the
    summary files."""
    from sift.dedup.engines import spark as splan

    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    session = engine.session
    work = WorkDir(out, work_fingerprint(config, input_fingerprint), spill="parquet")
    phase("input", f"spark engine, work folder {work.root}")
    if uris:
        found = uris

        def read() -> Any:
            return splan.read_uris(session, found, fields, config.batch_rows)

    else:

        def read() -> Any:
            return splan.read_tables(session, inputs, config.batch_rows)

    stats = splan.run(session, read, work, out, config, timings)
    timings["total"] = time.perf_counter() - t0
    _finish(engine, timings, work, out, config)
    return stats


def _run(
    documents: Documents,
    config: DedupConfig,
    out: Path,
    engine: Engine,
    input_fingerprint: str | None,
) -> dict[str, Any]:
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    polars = isinstance(engine, PolarsEngine)
    work = WorkDir(out, work_fingerprint(config, input_fingerprint), spill="arrow" if polars else "parquet")
    phase("input" + (" and facts" if polars else ""), f"{engine.name} engine, work folder {work.root}")

    if isinstance(engine, PolarsEngine):
        # Facts of shard i are computed on a worker thread (the kernels release the GIL) while the reader parses
        # and spills shard i + 1; at most two shards are in flight, so memory stays bounded. The worker first
        # imports the engine plan and its kernels (numba, which imports SciPy) and warms them up while the reader
        # parses the first shard.
        with engine.thread("facts") as facts_thread:
            loaded = engine.warm(facts_thread, "sift.dedup.engines.polars", config)
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
    else:
        raise ValueError(f"unknown engine {engine!r} (polars or spark)")

    t = time.perf_counter()
    phase("outputs", f"writing {out}")
    stats = finalize(work, decisions, out, config, phases)
    timings["write"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - t0
    _finish(engine, timings, work, out, config)
    return stats


def _finish(engine: Engine, timings: dict[str, float], work: WorkDir, out: Path, config: DedupConfig) -> None:
    """Both engines' last step: the wall times per phase (`timings.json`, the one output that differs between
    runs), then the work folder removed unless `keep_work`."""
    write_json(
        {"engine": engine.name, "seconds": {k: round(v, 4) for k, v in timings.items()}}, out / "timings.json"
    )
    if not config.keep_work:
        work.remove()


def load_stats(output_dir: str | os.PathLike[str]) -> dict[str, Any]:
    return json.loads((Path(output_dir) / "stats.json").read_text())
