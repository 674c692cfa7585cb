"""deploy/: the files parse and agree with the code, and the Postgres instance of deploy/dagster.yaml really works.

The fast tests read dagster.yaml, workspace.yaml, compose.yaml, helm/values.yaml, cluster.env and the Dockerfile and
check them against the code: the code location's module imports, the environment variables they set are the ones
pipelines/resources.py and dagster.yaml read, the image's entry points are installed by the extras it installs, the
webserver binds 127.0.0.1 wherever a host binding is set.

The slow test runs deploy/dagster.yaml itself (linked into a temporary DAGSTER_HOME) against a real Postgres from
Debian's packages (`postgres_server`, started here), submits two runs to the QueuedRunCoordinator, runs
`dagster-daemon run`, and checks that both succeed while the pool limit keeps the second run queued until the first ends.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
BIN = Path(sys.executable).parent
PG_ENV = ("DAGSTER_PG_HOST", "DAGSTER_PG_PORT", "DAGSTER_PG_USERNAME", "DAGSTER_PG_PASSWORD", "DAGSTER_PG_DB")
SIFT_ENV = ("SIFT_ENV", "SIFT_LAKE_ROOT", "SIFT_SPARK_MASTER")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env_refs(node: object) -> set[str]:
    """Every `{env: NAME}` reference in a parsed dagster.yaml."""
    if isinstance(node, dict):
        found = {node["env"]} if set(node) == {"env"} else set()
        return found.union(*(_env_refs(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(_env_refs(v) for v in node))
    return set()


def _env_file(path: Path) -> dict[str, str]:
    pairs = [
        line.split("=", 1) for line in path.read_text().splitlines() if line and not line.startswith("#")
    ]
    return {k.strip(): v.strip() for k, v in pairs}


def _compose() -> dict:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def _helm() -> dict:
    return yaml.safe_load((DEPLOY / "helm" / "values.yaml").read_text())


def _dockerfile() -> str:
    return (DEPLOY / "Dockerfile").read_text()


# --- the files parse and agree with the code -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["dagster.yaml", "workspace.yaml", "compose.yaml", "helm/values.yaml"], ids=lambda n: n
)
def test_yaml_files_parse(name: str) -> None:
    assert isinstance(yaml.safe_load((DEPLOY / name).read_text()), dict)


def test_dagster_yaml_is_a_valid_postgres_instance_config(monkeypatch: pytest.MonkeyPatch) -> None:
    """Dagster's own schema accepts the file (its DAGSTER_PG_* variables set): Postgres storage, the queued
    coordinator, runs and pool limits."""
    from dagster._config import process_config
    from dagster._core.instance.config import dagster_instance_config_schema, validate_concurrency_config

    for name in PG_ENV:
        monkeypatch.setenv(name, "5432" if name == "DAGSTER_PG_PORT" else "x")
    config = yaml.safe_load((DEPLOY / "dagster.yaml").read_text())
    result = process_config(dagster_instance_config_schema(), config)
    assert result.success, result.errors
    validate_concurrency_config(config)
    assert set(config["storage"]) == {"postgres"}
    assert config["run_coordinator"]["class"] == "QueuedRunCoordinator"
    assert config["concurrency"]["runs"]["max_concurrent_runs"] >= 2
    assert config["concurrency"]["pools"]["default_limit"] >= 1
    assert _env_refs(config) == set(PG_ENV)


def test_workspace_names_the_code_location_that_imports() -> None:
    import importlib

    import dagster as dg

    entries = yaml.safe_load((DEPLOY / "workspace.yaml").read_text())["load_from"]
    modules = [e["python_module"]["module_name"] for e in entries]
    assert modules == ["sift.pipelines.definitions"]
    assert isinstance(importlib.import_module(modules[0]).defs, dg.Definitions)


def test_the_code_locations_pools_are_the_ones_deployments_limit() -> None:
    """Every concurrency pool an asset of the code location names has its own limit set by the deployments
    (`dagster instance concurrency set <pool>` in compose's daemon and the Helm notes); others would fall back to
    dagster.yaml's default_limit silently."""
    from sift.pipelines.definitions import defs

    pools = {p for node in defs.resolve_asset_graph().asset_nodes for p in (node.pools or ())}
    daemon = " ".join(_compose()["services"]["daemon"]["command"])
    helm = (DEPLOY / "helm" / "values.yaml").read_text()
    readme = (DEPLOY / "README.md").read_text()
    for pool in pools:
        assert f"dagster instance concurrency set {pool} " in daemon, pool
        assert f"dagster instance concurrency set {pool} " in helm, pool
        assert f"dagster instance concurrency set {pool} " in readme, pool
    # the pool the Spark-heavy assets use is the one set everywhere, whether or not an asset names it yet
    assert "dagster instance concurrency set spark " in daemon


def test_cluster_env_sets_what_the_resources_read() -> None:
    """cluster.env's variables are the ones resources_for reads, and they build the cluster resources."""
    from sift.pipelines import resources

    source = Path(resources.__file__).read_text()
    env = _env_file(DEPLOY / "cluster.env")
    assert set(env) == set(SIFT_ENV)
    for name in env:
        assert f'"{name}"' in source, name
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        built = resources.resources_for()
    finally:
        for k, v in old.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    assert set(built) == {"lake", "engine"}
    assert built["engine"].name == "spark" and built["engine"].spark_master == env["SIFT_SPARK_MASTER"]
    assert built["lake"].root == env["SIFT_LAKE_ROOT"]


def test_compose_services_and_settings_agree_with_the_code() -> None:
    compose = _compose()
    services = compose["services"]
    assert {"postgres", "webserver", "daemon", "spark-master", "spark-worker"} <= set(services)
    cluster = _env_file(DEPLOY / "cluster.env")
    # webserver and daemon: the same image, instance and code location, every variable dagster.yaml reads
    for name in ("webserver", "daemon"):
        svc = services[name]
        assert svc["build"]["dockerfile"] == "deploy/Dockerfile", name
        env = svc["environment"]
        assert set(PG_ENV) <= set(env), name
        assert set(SIFT_ENV) <= set(env), name
        assert env["SIFT_ENV"] == "cluster"
        assert env["SIFT_SPARK_MASTER"] == cluster["SIFT_SPARK_MASTER"]
        assert env["SIFT_LAKE_ROOT"] == cluster["SIFT_LAKE_ROOT"]
        assert env["DAGSTER_PG_HOST"] == "postgres"
        # the lake on the shared volume, mounted where SIFT_LAKE_ROOT points
        assert f"lake:{cluster['SIFT_LAKE_ROOT']}" in svc["volumes"], name
    # the Spark master's host and port are the ones SIFT_SPARK_MASTER names; the worker mounts the same lake
    master = re.fullmatch(r"spark://([^:]+):(\d+)", cluster["SIFT_SPARK_MASTER"])
    assert master and master.group(1) == "spark-master"
    assert master.group(2) in " ".join(services["spark-master"]["command"])
    assert cluster["SIFT_SPARK_MASTER"] in services["spark-worker"]["command"]
    for name in ("spark-master", "spark-worker"):
        assert f"lake:{cluster['SIFT_LAKE_ROOT']}" in services[name]["volumes"], name
    assert "lake" in compose["volumes"]
    # Postgres: the database the instance connects to is the one the container creates
    pg = services["postgres"]["environment"]
    dagster_env = services["daemon"]["environment"]
    assert pg["POSTGRES_USER"] == dagster_env["DAGSTER_PG_USERNAME"]
    assert pg["POSTGRES_DB"] == dagster_env["DAGSTER_PG_DB"]
    # dagster.yaml and workspace.yaml from deploy/ are what the containers read
    for name in ("webserver", "daemon"):
        mounts = " ".join(services[name]["volumes"])
        assert "./dagster.yaml:/opt/dagster/dagster_home/dagster.yaml" in mounts, name


def test_compose_binds_only_loopback() -> None:
    """The webserver has no login: every published port is bound to 127.0.0.1 by default (an authenticating proxy in
    front of it is how it is exposed); Postgres and the Spark ports are not published beyond loopback either."""
    for name, svc in _compose()["services"].items():
        for port in svc.get("ports", []):
            assert re.match(r"\$\{[A-Z_]+:-127\.0\.0\.1\}:|127\.0\.0\.1:", str(port)), (name, port)
    webserver = _compose()["services"]["webserver"]
    assert any("3000" in str(p) for p in webserver["ports"])


def test_compose_commands_run_the_installed_entry_points() -> None:
    services = _compose()["services"]
    webserver = services["webserver"]["command"]
    assert webserver[0] == "dagster-webserver"
    assert "-w" in webserver and "/opt/dagster/app/deploy/workspace.yaml" in webserver
    daemon = " ".join(services["daemon"]["command"])
    assert "dagster-daemon run" in daemon
    # the `spark` pool's own limit is set in the instance before the daemon starts
    assert "dagster instance concurrency set spark" in daemon


def test_dockerfile_entry_points_are_installed_by_its_extras() -> None:
    """The image installs Sift with the extras it names; the commands it and compose run come with them."""
    from importlib.metadata import distribution

    dockerfile = _dockerfile()
    install = re.search(r'pip install[^\n]*"?\.\[([a-z,]+)\]"?', dockerfile)
    assert install, "the Dockerfile installs Sift with extras"
    extras = set(install.group(1).split(","))
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert extras <= set(project["optional-dependencies"])
    assert "sift" in project["scripts"]
    requirements = project["dependencies"] + [r for e in extras for r in project["optional-dependencies"][e]]
    names = {re.split(r"[<>=\[ ;]", r, maxsplit=1)[0].lower() for r in requirements}
    assert {"dagster", "dagster-webserver", "dagster-postgres", "pyspark"} <= names
    # each entry point the image and compose call is declared by an installed distribution we require
    for script, dist in (("dagster-webserver", "dagster-webserver"), ("dagster-daemon", "dagster")):
        assert script in {ep.name for ep in distribution(dist).entry_points}, script
    # Java for the Spark engine, the default command binds loopback, and the image runs as a non-root user
    assert re.search(r"openjdk-17|temurin-17|default-jre", dockerfile)
    cmd = json.loads(re.search(r"^CMD (\[.*\])$", dockerfile, re.M).group(1))
    assert cmd[0] == "dagster-webserver" and "127.0.0.1" in cmd
    assert re.search(r"^USER (?!root)\w+", dockerfile, re.M)
    assert "DAGSTER_HOME=/opt/dagster/dagster_home" in dockerfile
    assert "COPY deploy/dagster.yaml /opt/dagster/dagster_home/dagster.yaml" in dockerfile
    # every package folder of pyproject's package-dir is copied before the install
    package_dirs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    for folder in set(package_dirs.values()):
        assert f"COPY {folder}/ {folder}/" in dockerfile, folder
    # the workspace the image's command names is where the image puts it (WORKDIR /opt/dagster/app, deploy/)
    assert (
        "WORKDIR /opt/dagster/app" in dockerfile
        and "COPY deploy/dagster.yaml deploy/workspace.yaml deploy/" in dockerfile
    )
    assert cmd[cmd.index("-w") + 1] == "/opt/dagster/app/deploy/workspace.yaml"
    # SPARK_HOME is pyspark's folder in the base image's Python, where compose's spark-class lives
    python = re.search(r"^FROM python:(\d+\.\d+)", dockerfile, re.M)
    assert python
    spark_home = f"/usr/local/lib/python{python.group(1)}/site-packages/pyspark"
    assert f"SPARK_HOME={spark_home}" in dockerfile
    for name in ("spark-master", "spark-worker"):
        assert _compose()["services"][name]["command"][0] == f"{spark_home}/bin/spark-class", name


def test_helm_values_agree_with_the_code() -> None:
    """Values for the official dagster/dagster chart: one user deployment running the image's code location with
    the env from a secret, Postgres for the instance, and the webserver's service kept inside the cluster."""
    values = _helm()
    [deployment] = values["dagster-user-deployments"]["deployments"]
    assert deployment["dagsterApiGrpcArgs"] == ["--module-name", "sift.pipelines.definitions"]
    assert deployment["image"]["repository"] and deployment["image"]["tag"]
    assert deployment["envSecrets"] == [{"name": "sift-env"}]
    env = {e["name"]: e["value"] for e in deployment["env"]}
    cluster = _env_file(DEPLOY / "cluster.env")
    assert set(env) <= set(SIFT_ENV) and env["SIFT_ENV"] == "cluster"
    assert env["SIFT_LAKE_ROOT"] == cluster["SIFT_LAKE_ROOT"]
    assert values["postgresql"]["postgresqlDatabase"]
    assert values["dagsterWebserver"]["service"]["type"] == "ClusterIP"
    run_coordinator = values["dagsterDaemon"]["runCoordinator"]
    assert run_coordinator["enabled"] and run_coordinator["type"] == "QueuedRunCoordinator"
    limits = yaml.safe_load((DEPLOY / "dagster.yaml").read_text())["concurrency"]
    assert (
        run_coordinator["config"]["queuedRunCoordinator"]["maxConcurrentRuns"]
        == limits["runs"]["max_concurrent_runs"]
    )


def test_quickstart_and_ci_install_the_postgres_storage() -> None:
    """CI installs with deploy/quickstart.sh's extras: one of them brings dagster-postgres (the slow test needs it)."""

    extras = re.search(r"SIFT_EXTRAS:-([a-z,]+)", (DEPLOY / "quickstart.sh").read_text())
    assert extras
    optional = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    installed = [r for e in extras.group(1).split(",") for r in optional[e]]
    assert "dagster-postgres==0.29.27" in installed


# --- a real Postgres from Debian's packages ------------------------------------------------------------------------


def _pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    return Path(found[-1]).parent if found else None


@pytest.fixture(scope="module")
def postgres_server() -> Iterator[dict[str, str]]:
    """A real PostgreSQL server from Debian's packages (`apt-get install postgresql`): a fresh cluster in a temporary
    folder, listening on a free port on 127.0.0.1 (its unix socket in the folder too), with password authentication
    over TCP and one database. Yields the DAGSTER_PG_* settings deploy/dagster.yaml reads; stopped afterwards.

    initdb refuses root, so as root (CI) the server runs as the `postgres` user the package creates. Without the
    binaries it skips, except where `CI` or `SIFT_REQUIRE_POSTGRES` (set by .ci/run) is set: there it fails.
    """
    bindir = _pg_bin()
    if bindir is None:
        if os.environ.get("CI") or os.environ.get("SIFT_REQUIRE_POSTGRES"):
            pytest.fail("PostgreSQL binaries missing: .ci/run installs Debian's postgresql package")
        pytest.skip(
            "PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin (apt-get install postgresql)"
        )
    as_user: list[str] = []
    base = Path(tempfile.mkdtemp(prefix="sift-pg-"))
    if os.geteuid() == 0:
        as_user = ["runuser", "-u", "postgres", "--"]
        shutil.chown(base, "postgres", "postgres")
    base.chmod(0o700)
    password = "sift-test-pw"
    user, db, port = "dagster", "sift_dagster", _free_port()
    pwfile = base / "pw"
    pwfile.write_text(password + "\n")
    if as_user:
        shutil.chown(pwfile, "postgres", "postgres")

    def run(*cmd: str) -> None:
        proc = subprocess.run([*as_user, *cmd], capture_output=True, text=True, cwd=base)
        if proc.returncode != 0:
            raise RuntimeError(f"{cmd[0]} failed:\n{proc.stdout}\n{proc.stderr}")

    data, log = base / "data", base / "server.log"
    run(
        str(bindir / "initdb"),
        "-D",
        str(data),
        "-U",
        user,
        f"--pwfile={pwfile}",
        "--auth-host=scram-sha-256",
        "--auth-local=trust",
        "-E",
        "UTF8",
        "--locale=C",
    )
    options = f"-h 127.0.0.1 -p {port} -k {base} -c fsync=off"
    run(str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options, "-w", "-t", "60", "start")
    try:
        run(str(bindir / "createdb"), "-h", str(base), "-p", str(port), "-U", user, db)
        yield {
            "DAGSTER_PG_HOST": "127.0.0.1",
            "DAGSTER_PG_PORT": str(port),
            "DAGSTER_PG_USERNAME": user,
            "DAGSTER_PG_PASSWORD": password,
            "DAGSTER_PG_DB": db,
        }
    finally:
        subprocess.run(
            [*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"], cwd=base
        )
        shutil.rmtree(base, ignore_errors=True)


# The code location of the queued-runs test: two steps in pool `spark` record when they ran.
POOL_JOB = """
import json, time
from pathlib import Path

import dagster as dg

MARKS = Path({marks!r})


def _heavy(name: str):
    @dg.op(name=name, pool="spark", ins={{"after": dg.In(dg.Nothing)}})
    def heavy(context: dg.OpExecutionContext) -> None:
        start = time.time()
        time.sleep(1.5)
        (MARKS / f"step-{{context.run_id}}-{{name}}.json").write_text(
            json.dumps({{"run": context.run_id, "step": name, "start": start, "end": time.time()}})
        )

    return heavy


heavy_a, heavy_b = _heavy("heavy_a"), _heavy("heavy_b")


@dg.op
def start() -> None:
    pass


@dg.job(executor_def=dg.in_process_executor)
def pooled():
    heavy_b(heavy_a(start()))


defs = dg.Definitions(jobs=[pooled])
"""


@pytest.mark.slow
def test_postgres_instance_queues_two_runs_and_holds_the_pool_limit(
    postgres_server: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """deploy/dagster.yaml on a real Postgres: two runs submitted to the QueuedRunCoordinator are launched by the
    daemon, both succeed, and the `spark` pool's limit of one (set in the instance, as compose.yaml's daemon does;
    run granularity) keeps the second run queued until the first has ended, so their pool steps never overlap."""
    from dagster import DagsterInstance, DagsterRunStatus
    from dagster._core.events import DagsterEventType

    home, marks = tmp_path / "home", tmp_path / "marks"
    home.mkdir()
    marks.mkdir()
    # the deployment's file itself, not a copy that could drift
    (home / "dagster.yaml").symlink_to(DEPLOY / "dagster.yaml")
    (tmp_path / "pool_job.py").write_text(POOL_JOB.format(marks=str(marks)))
    workspace = tmp_path / "workspace.yaml"
    workspace.write_text(
        yaml.safe_dump(
            {"load_from": [{"python_file": {"relative_path": "pool_job.py", "location_name": "pool_test"}}]}
        )
    )
    for key, value in {**postgres_server, "DAGSTER_HOME": str(home)}.items():
        monkeypatch.setenv(key, value)
    env = {**os.environ}

    def dagster(*commands: list[str]) -> None:
        """Run `dagster` commands side by side; each must succeed."""
        procs = [
            subprocess.Popen(
                [str(BIN / "dagster"), *args],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                env=env,
            )
            for args in commands
        ]
        for args, proc in zip(commands, procs, strict=True):
            out, _ = proc.communicate(timeout=120)
            assert proc.returncode == 0, f"dagster {shlex.join(args)}:\n{out}"

    # the deployment's start-up step (compose.yaml's daemon runs it): the `spark` pool's own limit, in Postgres; this
    # first command also creates the instance's tables
    dagster(["instance", "concurrency", "set", "spark", "1"])
    # the two runs wait in the queue before the daemon is up
    launch = ["job", "launch", "-w", str(workspace), "-j", "pooled"]
    dagster(launch, launch)
    with DagsterInstance.get() as instance:
        assert instance.run_coordinator.__class__.__name__ == "QueuedRunCoordinator"
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert (
            instance.get_settings("concurrency")
            == yaml.safe_load((DEPLOY / "dagster.yaml").read_text())["concurrency"]
        )
        runs = instance.get_runs()
        assert len(runs) == 2 and {r.status for r in runs} == {DagsterRunStatus.QUEUED}

        daemon_log = tmp_path / "daemon.log"
        with daemon_log.open("w") as log:
            daemon = subprocess.Popen(
                [str(BIN / "dagster-daemon"), "run", "-w", str(workspace)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=tmp_path,
                start_new_session=True,
            )
        try:
            deadline = time.monotonic() + 150
            while time.monotonic() < deadline:
                statuses = {r.status for r in instance.get_runs()}
                if statuses <= {DagsterRunStatus.SUCCESS} or DagsterRunStatus.FAILURE in statuses:
                    break
                assert daemon.poll() is None, daemon_log.read_text()[-4000:]
                time.sleep(0.5)
        finally:
            os.killpg(daemon.pid, signal.SIGTERM)
            daemon.wait(timeout=30)
            # what the daemon started in its process group (its code server, run workers) goes with it
            with contextlib.suppress(ProcessLookupError):
                os.killpg(daemon.pid, signal.SIGKILL)
        runs = instance.get_runs()
        assert [r.status for r in runs] == [DagsterRunStatus.SUCCESS] * 2, daemon_log.read_text()[-4000:]
        spans = []
        for run in runs:
            logs = instance.all_logs(run.run_id)
            events = {e.dagster_event_type: e.timestamp for e in logs if e.is_dagster_event}
            assert {DagsterEventType.RUN_ENQUEUED, DagsterEventType.RUN_STARTING} <= set(events)
            spans.append((events[DagsterEventType.RUN_START], events[DagsterEventType.RUN_SUCCESS]))
        # the pool held the second run at the queue: it started after the first had ended
        first, second = sorted(spans)
        assert first[1] <= second[0], spans

    # and so their pool steps never overlapped
    steps = sorted((json.loads(p.read_text()) for p in marks.glob("step-*.json")), key=lambda s: s["start"])
    assert len(steps) == 4 and {s["run"] for s in steps} == {r.run_id for r in runs}
    for before, after in zip(steps, steps[1:], strict=False):
        assert before["end"] <= after["start"], (before, after)
