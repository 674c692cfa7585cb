"""One import namespace: Sift installs under `sift.*`, so a user's own `assets`, `pipelines` or `dedup` package (the
usual Dagster project layout) can never shadow it; and the stages import neither Dagster nor the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TOP = ("pipelines", "assets", "dedup", "selection", "sampling")


def test_every_package_folder_is_installed_under_sift() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert config["package-dir"] == {f"sift.{top}": top for top in TOP}
    found = sorted(
        "sift." + str(init.parent.relative_to(ROOT)).replace(os.sep, ".")
        for top in TOP
        for init in (ROOT / top).rglob("__init__.py")
    )
    assert sorted(config["packages"]) == found


def _user_project(folder: Path) -> Path:
    """A Dagster user's project folder with packages named like Sift's folders, each failing loudly on import."""
    for name in ("assets", "pipelines", "dedup"):
        pkg = folder / name
        pkg.mkdir(parents=True)
        (pkg / "__init__.py").write_text(
            f"raise ImportError('the user project\\'s own {name} package was imported')\n"
        )
    (folder / "docs.jsonl").write_text(
        "".join(
            f'{{"id": "d{i}", "text": "{" ".join(["word", str(i % 3)] * 60)} the same words again"}}\n'
            for i in range(6)
        )
    )
    return folder


@pytest.mark.slow
def test_installed_wheel_runs_beside_a_user_project_with_its_own_assets_pipelines_and_dedup(
    tmp_path: Path,
) -> None:
    """Sift built as a wheel and installed (not editable); the code location loads and `sift dedup` runs from a
    folder that holds a user's own `assets/`, `pipelines/` and `dedup/` packages."""
    wheels, site = tmp_path / "wheels", tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "-w", str(wheels), str(ROOT)], check=True)
    subprocess.run(
        [*pip, "install", "--no-deps", "--target", str(site), *wheels.glob("sift-*.whl")], check=True
    )
    project = _user_project(tmp_path / "project")
    env = {**os.environ, "PYTHONPATH": str(site)}
    load = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sift.dedup, sift.pipelines.definitions as d; print(sift.dedup.__file__);"
            "print(sorted(j.name for j in d.defs.resolve_all_job_defs()))",
        ],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
    )
    assert load.returncode == 0, load.stderr
    where, jobs = load.stdout.splitlines()[:2]
    assert where.startswith(str(site)), where  # the wheel's files, not the checkout's
    assert "curate_job" in jobs
    run = subprocess.run(
        [sys.executable, "-m", "sift.pipelines.cli", "dedup", "docs.jsonl", "--output", "out"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    assert (project / "out" / "kept.parquet").is_file()


def test_importing_the_dedup_stage_imports_neither_dagster_nor_typer() -> None:
    code = (
        "import sys, sift.dedup, sift.dedup.api, sift.dedup.containment.api, sift.dedup.engines.polars;"
        "print(sorted(m for m in ('dagster', 'typer', 'rich') if m in sys.modules))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "[]"
