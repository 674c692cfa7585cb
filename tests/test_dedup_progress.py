"""Issue 9: `sift dedup` and `sift contain` show a line per phase on a terminal and nothing when piped; the Dagster
assets put the phases in the run log. The algorithm packages log through `logging` and never import rich or
Dagster."""

from __future__ import annotations

import ast
import os
import pty
import select
import subprocess
import time
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from conftest import sift_command

ROOT = Path(__file__).resolve().parents[1]
DEDUP_PHASES = ("dedup: input and facts", "dedup: candidates", "dedup: verification", "dedup: components",
                "dedup: outputs")  # fmt: skip
CONTAIN_PHASES = ("contain: containment", "contain: plan, recipes and outputs")


def _env() -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}
    for name in ("FORCE_COLOR", "FORCE_TERMINAL", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "SIFT_TEST_KILL_AT"):
        env.pop(name, None)
    return env


def _on_terminal(*args: str) -> tuple[int, str]:
    """Run `sift ARGS...` with stdout and stderr on a pseudo-terminal; (exit code, everything it showed)."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [*sift_command(), *args],
        stdin=subprocess.DEVNULL,
        stdout=follower,
        stderr=follower,
        env=_env(),
        cwd=ROOT,
    )
    os.close(follower)
    shown = bytearray()
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the terminal closed: every writer has ended
                break
            if not chunk:
                break
            shown += chunk
        elif proc.poll() is not None:
            break
    os.close(leader)
    return proc.wait(timeout=60), shown.decode(errors="replace")


def _piped(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*sift_command(), *args],
        capture_output=True,
        text=True,
        env=_env(),
        cwd=ROOT,
        timeout=600,
        check=False,
    )


@pytest.fixture(scope="module")
def corpus(real_docs: pa.Table, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("progress") / "docs.parquet"
    pq.write_table(real_docs.slice(0, 800), path)
    return path


def test_dedup_shows_phases_on_a_terminal(corpus: Path, tmp_path: Path) -> None:
    rc, shown = _on_terminal("dedup", str(corpus), "--output", str(tmp_path / "out"))
    assert rc == 0, shown[-3000:]
    at = [shown.find(p) for p in DEDUP_PHASES]
    assert -1 not in at and at == sorted(at), shown[-3000:]


def test_dedup_shows_no_progress_when_piped(corpus: Path, tmp_path: Path) -> None:
    done = _piped("dedup", str(corpus), "--output", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "kept " in done.stdout  # the summary still comes
    assert [p for p in DEDUP_PHASES if p in done.stdout + done.stderr] == []


@pytest.fixture(scope="module")
def lake(real_docs: pa.Table, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two tables, one a subset of the other."""
    root = tmp_path_factory.mktemp("lake")
    docs = real_docs.slice(0, 300).select(["id", "source", "text"])
    pq.write_table(docs, root / "all.parquet")
    pq.write_table(docs.slice(0, 120), root / "part.parquet")
    return root


def test_contain_shows_phases_on_a_terminal_and_none_when_piped(lake: Path, tmp_path: Path) -> None:
    rc, shown = _on_terminal("contain", str(lake), "--output", str(tmp_path / "a"))
    assert rc == 0, shown[-3000:]
    at = [shown.find(p) for p in CONTAIN_PHASES]
    assert -1 not in at and at == sorted(at), shown[-3000:]
    done = _piped("contain", str(lake), "--output", str(tmp_path / "b"))
    assert done.returncode == 0, done.stderr[-3000:]
    assert [p for p in CONTAIN_PHASES if p in done.stdout + done.stderr] == []


def _messages(instance: dg.DagsterInstance, run_id: str) -> str:
    return "\n".join(entry.user_message for entry in instance.all_logs(run_id))


def test_dagster_run_logs_hold_the_phases(real_docs: pa.Table, tmp_path: Path) -> None:
    from sift.assets.containment import ASSETS as CONTAIN_ASSETS
    from sift.assets.dedup import duplicate_clusters
    from sift.pipelines.demo_corpus import write_demo_tables
    from sift.pipelines.resources import EngineResource, LakeResource

    raw = tmp_path / "raw_documents"
    raw.mkdir()
    docs = real_docs.slice(0, 600)
    for source in sorted(set(docs.column("source").to_pylist())):
        pq.write_table(docs.filter(pc.equal(docs.column("source"), source)), raw / f"{source}.parquet")
    write_demo_tables(
        docs.select(["id", "source", "text"]), tmp_path / "tables" / "demo"
    )  # as `sift demo` does
    resources = {"lake": LakeResource(root=str(tmp_path)), "engine": EngineResource(name="polars")}
    (tmp_path / "dagster").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster")) as instance:
        result = dg.materialize([duplicate_clusters], instance=instance, resources=resources)
        assert result.success
        logs = _messages(instance, result.run_id)
        assert [p for p in DEDUP_PHASES if p not in logs] == [], logs
        result = dg.materialize(CONTAIN_ASSETS, instance=instance, resources=resources)
        assert result.success
        logs = _messages(instance, result.run_id)
        assert [p for p in CONTAIN_PHASES if p not in logs] == [], logs


def test_algorithm_packages_import_neither_rich_nor_dagster() -> None:
    offenders = []
    for path in sorted((ROOT / "dedup").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            offenders += [
                f"{path.relative_to(ROOT)}: {n}" for n in names if n.split(".")[0] in ("rich", "dagster")
            ]
    assert offenders == []
