"""Engine sessions: Polars (embedded default) and one Spark session per process.

Spark runs in local mode (`local[*]`), on a standalone cluster (`spark://host:port`) or through Spark Connect
(`sc://host:port`). Sessions are configured for reproducible output: UTC session time zone, Arrow transfers on, and a
small fixed number of shuffle partitions (results never depend on it: every plan sorts before it writes).
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

EngineName = Literal["polars", "spark"]
ENGINES: tuple[str, ...] = ("polars", "spark")

_lock = threading.Lock()
_session: SparkSession | None = None
_session_master: str | None = None


class EngineError(RuntimeError):
    """The engine asked for cannot be started (pyspark missing, no Java, unreachable master)."""


def default_master() -> str:
    """The Spark master from SIFT_SPARK_MASTER, else local mode on every core."""
    return os.environ.get("SIFT_SPARK_MASTER") or "local[*]"


def get_spark(master: str | None = None, app_name: str = "sift") -> SparkSession:
    """The process's Spark session, started on first use; asking for a different master is an error."""
    global _session, _session_master
    master = master or default_master()
    with _lock:
        if _session is not None:
            if master != _session_master:
                raise EngineError(
                    f"a Spark session on {_session_master} is already running in this process; "
                    f"stop it before starting one on {master}"
                )
            return _session
        try:
            from pyspark.sql import SparkSession
        except ImportError as exc:
            raise EngineError("the Spark engine needs pyspark: pip install 'sift[spark]'") from exc
        # Executors must run the same interpreter (and so the same installed Sift) as the driver.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
        if master.startswith("sc://"):
            builder = SparkSession.builder.remote(master).appName(app_name)
        else:
            builder = (
                SparkSession.builder.master(master)
                .appName(app_name)
                .config("spark.ui.enabled", "false")
                .config("spark.ui.showConsoleProgress", "false")
                .config("spark.driver.memory", os.environ.get("SIFT_SPARK_DRIVER_MEMORY", "2g"))
                .config("spark.driver.host", os.environ.get("SIFT_SPARK_DRIVER_HOST", "127.0.0.1"))
                .config("spark.driver.bindAddress", os.environ.get("SIFT_SPARK_DRIVER_HOST", "127.0.0.1"))
                .config("spark.sql.shuffle.partitions", os.environ.get("SIFT_SPARK_SHUFFLE_PARTITIONS", "8"))
                .config("spark.default.parallelism", "4")
                .config("spark.sql.execution.arrow.pyspark.enabled", "true")
                .config("spark.sql.session.timeZone", "UTC")
                .config("spark.sql.adaptive.enabled", "true")
                .config("spark.executorEnv.PYTHONHASHSEED", "0")
            )
        try:
            session = builder.getOrCreate()
        except Exception as exc:  # py4j / JVM start-up failures carry long Java traces
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise EngineError(f"could not start Spark on {master}: {first}") from exc
        session.sparkContext.setLogLevel("ERROR") if not master.startswith("sc://") else None
        _session, _session_master = session, master
        return session


def stop_spark() -> None:
    """Stop the process's Spark session, if one was started."""
    global _session, _session_master
    with _lock:
        if _session is not None:
            _session.stop()
            _session, _session_master = None, None


atexit.register(stop_spark)
