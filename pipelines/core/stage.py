"""The stage contract: one entry point per stage, the same shape on both engines.

Every stage package exposes

    run(inputs: str | Sequence[str], config: <its StageConfig>, output: str, engine: Engine, ...) -> dict

(`sift.pipelines.ingest.run`, `sift.dedup.run`, `sift.dedup.containment.run`): `inputs` are datasets named by URI
(a file, a folder, a lake root; any fsspec URL the lake readers take), `output` is the folder the stage writes, and
the returned dict is the stage's stats (also written to `output`/stats.json). The engine plans live in
`<stage>/engines/polars.py` and `<stage>/engines/spark.py`; `run` picks one by the engine object it is given.

An `Engine` carries the runtime's part of a run, so that an algorithm's functions never take pools, threads or
sessions as parameters: `PolarsEngine` holds the one-machine helpers (a worker thread, the warm-up of an engine
plan, and, when the caller allows it, the side worker process of core/side.py); `SparkEngine` holds the
SparkSession whose executors read the inputs and write the outputs. The `sift` command builds its engine with
`engine_for`; the library and Dagster pass `PolarsEngine()` (no side worker) or `SparkEngine(session)`.
"""

from __future__ import annotations

import hashlib
import importlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from contextlib import contextmanager
from types import ModuleType
from typing import TYPE_CHECKING, Any, ClassVar

from sift.pipelines.core import side

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


class Engine:
    """What runs a stage's plan; `name` is the engine's name in config and stats ("polars" or "spark")."""

    name: ClassVar[str]


class PolarsEngine(Engine):
    """The embedded engine on one machine. `side_workers`: a stage may start a side worker process (core/side.py)
    for runs large enough to gain from one (the `sift` command allows it; the library and Dagster do not)."""

    name = "polars"

    def __init__(self, *, side_workers: bool = False) -> None:
        self.side_workers = side_workers

    @contextmanager
    def side_worker(self, wanted: bool, warm: Sequence[str] = ()) -> Iterator[Executor | None]:
        """A side worker for the block when this engine allows one and the stage wants one (importing the `warm`
        modules at once), made the current one (`side.current()`) for the stage's functions; else None."""
        with side.side_worker(self.side_workers and wanted, warm) as pool, side.using(pool):
            yield pool

    @contextmanager
    def thread(self, name: str) -> Iterator[ThreadPoolExecutor]:
        """One worker thread for the block (work that releases the GIL overlapping the caller's)."""
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"sift-{name}") as pool:
            yield pool

    @staticmethod
    def warm(pool: Executor, plan: str, *args: Any) -> Future[ModuleType]:
        """Import the engine plan module `plan` on `pool` and run its `warm_up(*args)` there (a compiled kernel's
        first call loads its machine code and starts its threads), so that this overlaps the caller's work
        instead of delaying the plan's first real call; the future gives the module."""

        def load() -> ModuleType:
            module = importlib.import_module(plan)
            warm_up: Callable[..., object] | None = getattr(module, "warm_up", None)
            if warm_up is not None:
                warm_up(*args)
            return module

        return pool.submit(load)


class SparkEngine(Engine):
    """The cluster engine: a SparkSession (local mode, a standalone cluster or Spark Connect)."""

    name = "spark"

    def __init__(self, session: SparkSession) -> None:
        self.session = session


def engine_for(
    name: str,
    spark_master: str | None = None,
    *,
    side_workers: bool = False,
    spark_conf: Mapping[str, str] | None = None,
) -> Engine:
    """The engine called `name`: Polars, or Spark on `spark_master` (the process's session, started on first use
    with `spark_conf` over the cluster's `spark-defaults.conf`)."""
    if name == "spark":
        from sift.pipelines.core.engines import get_spark

        return SparkEngine(get_spark(spark_master, conf=spark_conf))
    if name == "polars":
        return PolarsEngine(side_workers=side_workers)
    raise ValueError(f"unknown engine {name!r} (polars or spark)")


def one_input(inputs: str | Sequence[str], stage: str) -> str:
    """The single input URI of a stage that reads one dataset (a file, a folder or a lake root)."""
    if isinstance(inputs, str):
        return inputs
    uris = list(inputs)
    if len(uris) != 1:
        raise ValueError(f"{stage} reads one input (a file, a folder or a lake root); got {len(uris)}")
    return uris[0]


def input_fingerprint(uri: str) -> str:
    """Identity of an input for resuming: its format and every file's path, size and modification time."""
    from sift.pipelines.core.lake import list_input_files

    fs, paths, fmt = list_input_files(uri)
    h = hashlib.sha256(fmt.encode())
    for p in paths:
        info = fs.info(p)
        h.update(f"{p}\0{info.get('size')}\0{info.get('mtime', info.get('LastModified', ''))}\n".encode())
    return h.hexdigest()[:16]
