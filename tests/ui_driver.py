"""Helpers of the UI test (tests/test_ui.py): a real `dagster-webserver` and `dagster-daemon` on 127.0.0.1 over a
temporary SQLite instance and demo lake, headless Chromium driven by Selenium, and the webserver's GraphQL API.

Debian's `chromium` and `chromium-driver` (`/usr/bin/chromium`, `/usr/bin/chromedriver`; `.ci/run` installs them)
are used as they are: Selenium is pointed at both, so its driver manager downloads nothing.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
CODE_LOCATION = "sift.pipelines.definitions"

# The temporary instance: SQLite storage in DAGSTER_HOME, the default queued run coordinator (the daemon dequeues).
# Declarative automation is off here so that the only runs are the ones the test launches from the UI.
INSTANCE_YAML = """\
telemetry:
  enabled: false
auto_materialize:
  enabled: false
"""


def artifacts_dir() -> Path:
    """Where the UI test keeps its screenshots and server logs: `$SIFT_TEST_ARTIFACTS/ui` or `tests/artifacts/ui`
    (git-ignored)."""
    base = os.environ.get("SIFT_TEST_ARTIFACTS")
    folder = (Path(base) if base else ROOT / "tests" / "artifacts") / "ui"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    """A running webserver (and daemon) over one instance and lake."""

    url: str
    home: Path
    lake: Path
    logs: list[Path]

    def graphql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        """Run one GraphQL query against the webserver; return its `data` (errors raise)."""
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        request = urllib.request.Request(
            f"{self.url}/graphql", data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            payload = json.loads(response.read())
        if payload.get("errors"):
            raise RuntimeError(f"GraphQL errors: {payload['errors']}")
        return dict(payload["data"])

    def log_tails(self, chars: int = 4000) -> str:
        return "\n".join(f"--- {p.name} ---\n{p.read_text(errors='replace')[-chars:]}" for p in self.logs)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop a server and everything it started (its code server, run workers): its whole process group."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    except ProcessLookupError:
        pass


@contextmanager
def dagster_servers(
    home: Path, lake: Path, logs: Path, extra_env: dict[str, str] | None = None
) -> Iterator[Server]:
    """`dagster-webserver` on 127.0.0.1 and `dagster-daemon` (it runs the backfills the UI launches) over the
    instance in `home`, with `SIFT_LAKE_ROOT=lake` and `extra_env` (the runs inherit both); both stopped, with
    their process groups, on exit."""
    bin_dir = Path(sys.executable).parent
    port = free_port()
    env = dict(
        os.environ, DAGSTER_HOME=str(home), SIFT_LAKE_ROOT=str(lake), SIFT_ENV="local", **(extra_env or {})
    )
    procs: list[subprocess.Popen[bytes]] = []
    log_files = [logs / "webserver.log", logs / "daemon.log"]
    commands = [
        [str(bin_dir / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(port), "-m", CODE_LOCATION],
        [str(bin_dir / "dagster-daemon"), "run", "-m", CODE_LOCATION],
    ]
    server = Server(url=f"http://127.0.0.1:{port}", home=home, lake=lake, logs=log_files)
    try:
        for command, log in zip(commands, log_files, strict=True):
            with log.open("wb") as out:
                procs.append(
                    subprocess.Popen(
                        command,
                        env=env,
                        cwd=home,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )
        deadline = time.monotonic() + 180
        while True:
            if procs[0].poll() is not None:
                raise RuntimeError(f"dagster-webserver exited early:\n{server.log_tails()}")
            try:
                with urllib.request.urlopen(f"{server.url}/server_info", timeout=5) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"dagster-webserver did not answer /server_info:\n{server.log_tails()}")
            time.sleep(1)
        yield server
    finally:
        for proc in reversed(procs):
            _stop(proc)


@contextmanager
def chrome(window: tuple[int, int] = (1800, 1100)) -> Iterator[Any]:
    """Headless Debian Chromium under Selenium; quit on exit."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(arg)
    options.add_argument(f"--window-size={window[0]},{window[1]}")
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def shown_as(name: str, label: str) -> bool:
    """Whether an asset-graph label shows `name`: in full, or shortened in the middle with an ellipsis."""
    if "…" not in label:
        return label == name
    head, _, tail = label.partition("…")
    return len(head) + len(tail) < len(name) and name.startswith(head) and name.endswith(tail)
