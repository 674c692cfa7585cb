"""Engine sessions: Polars (embedded default) and one Spark session per process.

Spark runs in local mode (`local[*]`), on a standalone cluster (`spark://host:port`) or through Spark Connect
(`sc://host:port`). Sift sets only what its plans need for correct, reproducible output (`REQUIRED`: Arrow
transfers on, UTC session time zone); everything else comes from the cluster: `spark-defaults.conf` (in
`$SPARK_CONF_DIR`, else `$SPARK_HOME/conf`), then the user's settings (`[spark] conf` in the config,
`--spark-conf key=value` flags), which override the file. Shuffle partitions and parallelism are the cluster's
(adaptive query execution sizes the shuffles); results never depend on them: every plan sorts before it writes.
"""

from __future__ import annotations

import atexit
import logging
import os
import re
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

EngineName = Literal["polars", "spark"]
ENGINES: tuple[str, ...] = ("polars", "spark")

# What Sift's plans rely on, forced over any other setting: Arrow batches between the JVM and the Python kernels,
# and timestamps read and written in UTC whatever the machines' time zones.
REQUIRED: dict[str, str] = {
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.sql.session.timeZone": "UTC",
}

LOG = logging.getLogger("sift.spark")

_lock = threading.Lock()
_session: SparkSession | None = None
_session_master: str | None = None
_session_conf: dict[str, str] = {}


class EngineError(RuntimeError):
    """The engine asked for cannot be started (pyspark missing, no Java, unreachable master)."""


def default_master() -> str:
    """The Spark master from SIFT_SPARK_MASTER, else local mode on every core."""
    return os.environ.get("SIFT_SPARK_MASTER") or "local[*]"


def spark_defaults_file() -> Path | None:
    """The `spark-defaults.conf` that spark-submit reads: in `$SPARK_CONF_DIR`, else `$SPARK_HOME/conf` (the
    pyspark install when SPARK_HOME is unset); None when there is none."""
    conf_dir = os.environ.get("SPARK_CONF_DIR")
    if not conf_dir:
        home = os.environ.get("SPARK_HOME")
        if not home:
            try:
                from pyspark.find_spark_home import _find_spark_home
            except ImportError:
                return None
            home = _find_spark_home()
        conf_dir = os.path.join(home, "conf")
    path = Path(conf_dir) / "spark-defaults.conf"
    return path if path.is_file() else None


def spark_defaults() -> dict[str, str]:
    """The settings of `spark-defaults.conf` (Java properties: `key value` or `key=value`, `#` comments)."""
    path = spark_defaults_file()
    if path is None:
        return {}
    values: dict[str, str] = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        match = re.fullmatch(r"([^\s=:#!][^\s=:]*)\s*[=:]?\s*(.*)", line)
        if match:
            values[match[1]] = match[2]
    return values


def _is_loopback(master: str) -> bool:
    """A local-mode master, or a standalone master on this machine's loopback address."""
    if master.startswith("local"):
        return True
    host = master.split("://", 1)[-1].split(":", 1)[0]
    return host in ("127.0.0.1", "localhost")


def session_conf(master: str, conf: Mapping[str, str] | None = None) -> dict[str, str]:
    """The settings Sift passes when it starts a session on `master`: a few conveniences of its own only where
    `spark-defaults.conf` says nothing (no web UI and no console progress bars, which would garble the CLI's
    output; the driver on 127.0.0.1 when the master is local or on loopback, or `$SIFT_SPARK_DRIVER_HOST`), then
    the user's `conf`, then `REQUIRED` (a user value that differs from it is logged and replaced). Whatever is not
    listed here is the cluster's: spark-submit reads `spark-defaults.conf` itself."""
    user = {str(k): str(v) for k, v in (conf or {}).items()}
    settings: dict[str, str] = {}
    if not master.startswith("sc://"):
        soft = {"spark.ui.enabled": "false", "spark.ui.showConsoleProgress": "false"}
        host = os.environ.get("SIFT_SPARK_DRIVER_HOST") or ("127.0.0.1" if _is_loopback(master) else None)
        if host:
            soft |= {"spark.driver.host": host, "spark.driver.bindAddress": host}
        cluster = spark_defaults()
        settings |= {k: v for k, v in soft.items() if k not in cluster}
    settings |= user
    for key, value in REQUIRED.items():
        if key in user and user[key].strip().lower() != value.lower():
            LOG.warning(f"Spark setting {key}={user[key]} ignored: Sift needs {key}={value}")
        settings[key] = value
    return settings


def get_spark(
    master: str | None = None, app_name: str = "sift", conf: Mapping[str, str] | None = None
) -> SparkSession:
    """The process's Spark session, started on first use with `conf` over the cluster's `spark-defaults.conf`
    (see `session_conf`). Asking for a different master, or for settings other than the running session's, is
    an error; `conf=None` takes the running session as it is."""
    global _session, _session_master, _session_conf
    master = master or default_master()
    with _lock:
        if _session is not None:
            if master != _session_master:
                raise EngineError(
                    f"a Spark session on {_session_master} is already running in this process; "
                    f"stop it before starting one on {master}"
                )
            if conf:
                wanted = session_conf(master, conf)
                differ = sorted(k for k in conf if _session_conf.get(k) != wanted[k])
                if differ:
                    raise EngineError(
                        f"a Spark session with other settings ({', '.join(differ)}) is already running in this "
                        "process; stop it before starting one with these"
                    )
            return _session
        try:
            from pyspark.sql import SparkSession
        except ImportError as exc:
            raise EngineError("the Spark engine needs pyspark: pip install 'sift[spark]'") from exc
        # Executors must run the same interpreter (and so the same installed Sift) as the driver.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
        settings = session_conf(master, conf)
        if master.startswith("sc://"):
            builder = SparkSession.builder.remote(master).appName(app_name)
        else:
            builder = SparkSession.builder.master(master).appName(app_name)
        for key, value in settings.items():
            builder = builder.config(key, value)
        try:
            session = builder.getOrCreate()
        except Exception as exc:  # py4j / JVM start-up failures carry long Java traces
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise EngineError(f"could not start Spark on {master}: {first}") from exc
        session.sparkContext.setLogLevel("ERROR") if not master.startswith("sc://") else None
        _session, _session_master, _session_conf = session, master, settings
        return session


def adopt_spark(session: SparkSession) -> str:
    """Make a session that something else started (spark-submit's, in `sift.pipelines.spark_job`) the process's
    session, with `REQUIRED` set on it; returns its master, which `get_spark` then answers with this session."""
    global _session, _session_master, _session_conf
    with _lock:
        for key, value in REQUIRED.items():
            session.conf.set(key, value)
        master = str(session.conf.get("spark.master"))
        settings = {key: str(value) for key, value in session.sparkContext.getConf().getAll()}
        _session, _session_master, _session_conf = session, master, settings | REQUIRED
        return master


def stop_spark() -> None:
    """Stop the process's Spark session, if one was started."""
    global _session, _session_master, _session_conf
    with _lock:
        if _session is not None:
            _session.stop()
            _session, _session_master, _session_conf = None, None, {}


atexit.register(stop_spark)
