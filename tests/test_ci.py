"""`.ci/run` passes pytest's exit code through: no tests collected (5) or failures (1) fail CI, a clean run passes.

The script runs in a copy of the repository layout whose quickstart, ruff, lint-imports, type check and pytest are
stubs, so only the script's own handling of the exit codes is under test."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _ci_with_pytest_exiting(tmp_path: Path, code: int) -> subprocess.CompletedProcess[str]:
    (tmp_path / ".ci").mkdir()
    shutil.copy(ROOT / ".ci" / "run", tmp_path / ".ci" / "run")
    (tmp_path / "deploy").mkdir()
    (tmp_path / "deploy" / "quickstart.sh").write_text("exit 0\n")
    (tmp_path / ".ci" / "typecheck").write_text("exit 0\n")
    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    for tool, body in (
        ("ruff", "exit 0"),
        ("lint-imports", "exit 0"),
        ("pytest", f"echo pytest-stub; exit {code}"),
    ):
        stub = bin_dir / tool
        stub.write_text(f"#!/usr/bin/env bash\n{body}\n")
        stub.chmod(0o755)
    return subprocess.run(
        ["bash", str(tmp_path / ".ci" / "run")], capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.parametrize("code", [0, 1, 2, 5])
def test_ci_run_passes_the_pytest_exit_code_through(tmp_path: Path, code: int) -> None:
    proc = _ci_with_pytest_exiting(tmp_path, code)
    assert "pytest-stub" in proc.stdout
    assert proc.returncode == code, proc.stdout + proc.stderr
