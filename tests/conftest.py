"""Shared fixtures: real local Spark, a real standalone Spark cluster on 127.0.0.1, and real documents."""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import time
import types
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, proc: subprocess.Popen, log: Path, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"Spark process exited early:\n{log.read_text()[-3000:]}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    raise RuntimeError(f"Spark process did not open port {port} in {timeout}s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="session")
def spark():
    """A real local-mode SparkSession shared by the whole test session."""
    from sift.pipelines.core.engines import get_spark, stop_spark

    session = get_spark("local[2]")
    yield session
    stop_spark()


@pytest.fixture(scope="session")
def spark_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real standalone Spark cluster: one master and one worker from the pyspark install, on 127.0.0.1.

    Yields the master URL. One process holds one SparkContext, so tests drive the cluster through the `sift` CLI in
    a subprocess (`--engine spark --spark-master URL`).
    """
    import pyspark

    spark_home = Path(pyspark.__file__).parent
    spark_class = spark_home / "bin" / "spark-class"
    logs = tmp_path_factory.mktemp("spark-cluster")
    env = {
        **os.environ,
        "SPARK_HOME": str(spark_home),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "PYSPARK_PYTHON": sys.executable,
        "SPARK_WORKER_DIR": str(logs / "work"),
    }
    port = _free_port()
    master_log = logs / "master.log"
    master = subprocess.Popen(
        [
            str(spark_class),
            "org.apache.spark.deploy.master.Master",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ]
        + ["--webui-port", str(_free_port())],
        stdout=master_log.open("wb"),
        stderr=subprocess.STDOUT,
        env=env,
    )
    worker = None
    try:
        _wait_port(port, master, master_log)
        url = f"spark://127.0.0.1:{port}"
        worker_log = logs / "worker.log"
        worker = subprocess.Popen(
            [str(spark_class), "org.apache.spark.deploy.worker.Worker", url, "--host", "127.0.0.1"]
            + ["--cores", "2", "--memory", "2g", "--webui-port", str(_free_port())],
            stdout=worker_log.open("wb"),
            stderr=subprocess.STDOUT,
            env=env,
        )
        deadline = time.monotonic() + 90
        while b"Successfully registered with master" not in worker_log.read_bytes():
            if worker.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"Spark worker did not register:\n{worker_log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield url
    finally:
        for proc in (worker, master):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()


def bench_module(name: str) -> types.ModuleType:
    """Import `bench/NAME.py` (a script, not a package) under its own name; a bench script's sibling imports
    (`import dedup_recipe`) find the siblings loaded before it."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "bench" / f"{name}.py")
    assert spec is not None and spec.loader is not None, name
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def sift_command() -> list[str]:
    """How to run the `sift` CLI in a subprocess from the tests (the console script, or the module)."""
    exe = shutil.which("sift", path=str(Path(sys.executable).parent))
    return [exe] if exe else [sys.executable, "-m", "sift.pipelines.cli"]


def run_sift(*args: str, cwd: Path | None = None, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run `sift ARGS...` in a subprocess and return the completed process (text output)."""
    return subprocess.run(
        [*sift_command(), *args], capture_output=True, text=True, cwd=cwd, timeout=timeout, check=False
    )


@pytest.fixture(scope="session")
def real_docs() -> pa.Table:
    """At least 2,000 real documents (`id`, `source`, `text`) from three offline sources."""
    from sift.pipelines.demo_corpus import real_documents

    table = real_documents()
    assert table.num_rows >= 2000
    return table


@pytest.fixture(scope="session")
def sift_cli():
    """`run_sift` as a fixture: `sift_cli("ingest", path, "--output", out)` -> CompletedProcess."""
    return run_sift


@pytest.fixture(scope="session")
def spark_connect(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Spark Connect server (local[2] behind it) on 127.0.0.1; yields its `sc://` URL."""
    import pyspark

    spark_home = Path(pyspark.__file__).parent
    logs = tmp_path_factory.mktemp("spark-connect")
    port = _free_port()
    log = logs / "connect.log"
    env = {
        **os.environ,
        "SPARK_HOME": str(spark_home),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "PYSPARK_PYTHON": sys.executable,
    }
    server = subprocess.Popen(
        [
            str(spark_home / "bin" / "spark-submit"),
            "--class",
            "org.apache.spark.sql.connect.service.SparkConnectServer",
        ]
        + ["--master", "local[2]", "--conf", f"spark.connect.grpc.binding.port={port}"]
        + ["--conf", "spark.ui.enabled=false", "--name", "sift-connect-test", "spark-internal"],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        env=env,
    )
    try:
        _wait_port(port, server, log, timeout=120)
        yield f"sc://127.0.0.1:{port}"
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
