"""Bad input and usage through the real `sift` command: one clear line on stderr, exit code 2, never a trace.

Each test reproduces a report of issue 9 (items 17 and 18): an `--output` that is an existing file, a seed beyond
64 bits, `sift rebuild` into an unknown file type or from a missing container, config errors whose `[stage]` text
vanished into rich markup, a two-line error for a corrupt Parquet footer, a NaN threshold, and unknown config keys.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import sift_command

DOCS = [{"id": str(i), "source": "s", "text": f"document number {i} " * 20} for i in range(5)]


def _jsonl(tmp_path: Path) -> Path:
    path = tmp_path / "docs.jsonl"
    path.write_text("".join(json.dumps(d) + "\n" for d in DOCS))
    return path


def _lake(tmp_path: Path) -> Path:
    lake = tmp_path / "lake"
    lake.mkdir()
    big = pa.table({"k": [f"k{i}" for i in range(100)], "v": list(range(100))})
    pq.write_table(big, lake / "big.parquet")
    pq.write_table(big.slice(10, 30), lake / "part.parquet")
    return lake


def _one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    """The run ended with exit 2 and exactly one line on stderr, starting `error:`, with no trace; returns it."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: "), proc.stderr
    return lines[0]


def _sift_env(tmp_path: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [*sift_command(), *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, **env},
        timeout=600,
        check=False,
    )


@pytest.mark.parametrize("command", ["ingest", "dedup", "contain"])
def test_output_naming_an_existing_file_is_one_line_exit_2(tmp_path: Path, sift_cli, command: str) -> None:
    source = _lake(tmp_path) if command == "contain" else _jsonl(tmp_path)
    target = tmp_path / "taken"
    target.write_text("not a folder\n")
    line = _one_line_error(sift_cli(command, str(source), "--output", str(target)))
    assert str(target) in line and "--output" in line and "file" in line
    assert target.read_text() == "not a folder\n"


def test_output_below_an_existing_file_is_one_line_exit_2(tmp_path: Path, sift_cli) -> None:
    target = tmp_path / "taken"
    target.write_text("x")
    line = _one_line_error(sift_cli("dedup", str(_jsonl(tmp_path)), "--output", str(target / "run")))
    assert str(target) in line and "--output" in line


@pytest.mark.parametrize("seed", [str(2**64), str(10**30), "-1"])
def test_seed_beyond_64_bits_names_the_option_and_the_range(tmp_path: Path, sift_cli, seed: str) -> None:
    out = tmp_path / "out"
    line = _one_line_error(sift_cli("dedup", str(_jsonl(tmp_path)), "--output", str(out), "--seed", seed))
    assert "--seed" in line and "[dedup] seed" in line
    assert "between 0 and 18446744073709551615" in line
    assert not (out / "kept.parquet").exists()


def test_seed_of_64_bits_is_accepted(tmp_path: Path, sift_cli) -> None:
    out = tmp_path / "out"
    proc = sift_cli("dedup", str(_jsonl(tmp_path)), "--output", str(out), "--seed", str(2**64 - 1))
    assert proc.returncode == 0, proc.stderr
    assert pq.read_table(out / "kept.parquet").num_rows + pq.read_table(out / "removed.parquet").num_rows == 5


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_threshold_that_is_not_a_number_says_a_number_between_0_and_1(
    tmp_path: Path, sift_cli, value: str
) -> None:
    proc = sift_cli("dedup", str(_jsonl(tmp_path)), "--output", str(tmp_path / "o"), "--threshold", value)
    line = _one_line_error(proc)
    assert "[dedup] threshold" in line and "--threshold" in line
    assert "must be a number between 0 and 1" in line
    assert "should be less than or equal to 1" not in line


@pytest.mark.parametrize("stage", ["contain", "dedup"])
def test_nan_in_any_float_setting_is_refused(tmp_path: Path, sift_cli, stage: str) -> None:
    field = "scan_bytes_per_second" if stage == "contain" else "prefilter_margin"
    (tmp_path / "sift.toml").write_text(f"[{stage}]\n{field} = nan\n")
    line = _one_line_error(sift_cli("config", "show", "--config", str(tmp_path / "sift.toml")))
    assert f"[{stage}] {field} = nan" in line and "finite" in line


def test_config_error_keeps_its_square_brackets(tmp_path: Path) -> None:
    (tmp_path / "sift.toml").write_text('[dedup]\nthreshold = "high"\n')
    proc = _sift_env(
        tmp_path, {}, "dedup", str(_jsonl(tmp_path)), "--output", str(tmp_path / "o"), "--config", "sift.toml"
    )
    line = _one_line_error(proc)
    assert "[dedup] threshold = 'high' (sift.toml)" in line


@pytest.mark.parametrize("stage", ["lake", "ingest", "dedup", "contain"])
def test_unknown_key_in_the_config_file_is_refused_in_every_stage(
    tmp_path: Path, sift_cli, stage: str
) -> None:
    (tmp_path / "sift.toml").write_text(f"[{stage}]\nthreshhold = 0.5\n")
    line = _one_line_error(sift_cli("config", "show", "--config", str(tmp_path / "sift.toml")))
    assert f"[{stage}] threshhold" in line and "sift.toml" in line and "unknown" in line


@pytest.mark.parametrize("command", ["dedup", "contain"])
def test_unknown_key_stops_the_stage_command_itself(tmp_path: Path, command: str) -> None:
    (tmp_path / "sift.toml").write_text(f"[{command}]\nbogus_key = 1\n")
    source = _lake(tmp_path) if command == "contain" else _jsonl(tmp_path)
    out = tmp_path / "out"
    line = _one_line_error(_sift_env(tmp_path, {}, command, str(source), "--output", str(out)))
    assert f"[{command}] bogus_key" in line and "sift.toml" in line
    assert not out.exists()


@pytest.mark.parametrize("stage", ["dedup", "contain"])
def test_unknown_key_in_the_environment_is_refused(tmp_path: Path, stage: str) -> None:
    proc = _sift_env(tmp_path, {f"SIFT_{stage.upper()}__BOGUS_KEY": "1"}, "config", "show")
    line = _one_line_error(proc)
    assert f"SIFT_{stage.upper()}__BOGUS_KEY" in line and f"[{stage}]" in line and "bogus_key" in line


def test_unknown_stage_in_the_config_file_or_environment_is_refused(tmp_path: Path) -> None:
    (tmp_path / "sift.toml").write_text("[dedupe]\nthreshold = 0.5\n")
    line = _one_line_error(_sift_env(tmp_path, {}, "config", "show"))
    assert "[dedupe]" in line and "sift.toml" in line and "[dedup]" in line
    (tmp_path / "sift.toml").unlink()
    line = _one_line_error(_sift_env(tmp_path, {"SIFT_DEDUPE__THRESHOLD": "0.5"}, "config", "show"))
    assert "SIFT_DEDUPE__THRESHOLD" in line and "dedupe" in line


def test_corrupt_parquet_footer_is_one_line(tmp_path: Path, sift_cli) -> None:
    good = tmp_path / "good.parquet"
    pq.write_table(pa.Table.from_pylist(DOCS), good)
    data = good.read_bytes()
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(data[:-12] + b"\0" * 8 + data[-4:])  # footer length and footer bytes destroyed
    line = _one_line_error(sift_cli("dedup", str(bad), "--output", str(tmp_path / "o")))
    assert str(bad) in line and "Parquet" in line


def _planned(tmp_path: Path, sift_cli) -> tuple[Path, Path]:
    lake = _lake(tmp_path)
    plan = tmp_path / "plan"
    proc = sift_cli("contain", str(lake), "--output", str(plan))
    assert proc.returncode == 0, proc.stderr
    deleted = [
        r["table"]
        for r in pq.read_table(plan / "deletion_plan.parquet").to_pylist()
        if r["action"] == "delete"
    ]
    assert deleted == ["part"]
    return lake, plan


def test_rebuild_refuses_an_unknown_output_extension(tmp_path: Path, sift_cli) -> None:
    _, plan = _planned(tmp_path, sift_cli)
    target = tmp_path / "part.xlsx"
    line = _one_line_error(sift_cli("rebuild", "part", "--plan", str(plan), "--output", str(target)))
    assert str(target) in line and ".parquet" in line and ".csv" in line
    assert not target.exists()
    for ext in ("parquet", "csv"):
        proc = sift_cli("rebuild", "part", "--plan", str(plan), "--output", str(tmp_path / f"part.{ext}"))
        assert proc.returncode == 0, proc.stderr
    assert pq.read_table(tmp_path / "part.parquet").num_rows == 30


def test_rebuild_with_a_missing_container_names_its_path(tmp_path: Path, sift_cli) -> None:
    lake, plan = _planned(tmp_path, sift_cli)
    (lake / "big.parquet").rename(tmp_path / "big.parquet.moved")
    target = tmp_path / "part.parquet"
    line = _one_line_error(sift_cli("rebuild", "part", "--plan", str(plan), "--output", str(target)))
    assert line != "error: 2"
    assert str(lake / "big.parquet") in line and "container" in line and "restore" in line
    assert not target.exists()


def test_rebuild_from_a_changed_container_is_one_line_exit_2(tmp_path: Path, sift_cli) -> None:
    lake, plan = _planned(tmp_path, sift_cli)
    changed = pa.table({"k": [f"k{i}" for i in range(100)], "v": [i * 2 for i in range(100)]})
    pq.write_table(changed, lake / "big.parquet")
    line = _one_line_error(
        sift_cli("rebuild", "part", "--plan", str(plan), "--output", str(tmp_path / "p.parquet"))
    )
    assert "part" in line and "checksum" in line
