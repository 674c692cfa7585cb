"""Tests of the containment benchmark (issue 4, "Benchmark"): the lake builder, the brute-force checker, the harness.

The brute force is the reference Sift is scored against, so it is checked here on hand-made tables whose
containment follows from the issue's definition, and against the truth the lake builder constructs.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import bench_module

ROOT = Path(__file__).resolve().parents[1]
contain_brute = bench_module("contain_brute")
contain_lake = bench_module("contain_lake")
contain = bench_module("contain")


def _pairs(table: pa.Table) -> set[tuple[str, str]]:
    return set(zip(table.column("contained").to_pylist(), table.column("container").to_pylist(), strict=True))


def _write(lake: Path, name: str, table: pa.Table) -> None:
    path = lake / f"{name}.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)


def test_brute_force_follows_the_definition(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    base = pa.table(
        {
            "k": pa.array([1, 2, 3, None], pa.int64()),
            "x": pa.array([0.5, 1.0, None, 2.0]),
            "s": pa.array(["a", "b", "c", "d"]),
            "t": pa.array([dt.datetime(2020, 1, d) for d in (1, 2, 3, 4)], pa.timestamp("ns")),
        }
    )
    _write(lake, "base", base)
    # int stored as float, NaN for NULL, timestamps in another unit and zone, rows shuffled and repeated
    variant = pa.table(
        {
            "t": pa.array([dt.datetime(2020, 1, d) for d in (4, 1, 1)], pa.timestamp("ns"))
            .cast(pa.timestamp("us", tz="UTC"))
            .cast(pa.timestamp("ms", tz="Asia/Tokyo")),
            "k": pa.array([float("nan"), 1.0, 1.0]),
            "x": pa.array([2.0, 0.5, 0.5]),
            "s": pa.array(["d", "a", "a"]).dictionary_encode(),
        }
    )
    _write(lake, "variant", variant)
    _write(lake, "proj", base.select(["s", "k"]).take([2, 0]))
    _write(lake, "empty", base.select(["x"]).slice(0, 0))
    miss = base.take([0, 1]).set_column(2, "s", pa.array(["a", "c"]))  # both values occur, the row does not
    _write(lake, "near_miss", miss)
    _write(lake, "k_as_text", base.select(["k"]).set_column(0, "k", pa.array(["1", "2", "3", None])))
    _write(lake, "upper", base.select(["k"]).rename_columns(["K"]))
    dates = pa.table({"t": pa.array([dt.date(2020, 1, 2)], pa.date32())})
    _write(lake, "sub/dates", dates)
    csv_dir = lake / "csv"
    csv_dir.mkdir()
    (csv_dir / "ks.csv").write_text("k,x\n1,0.5\n,2\n")
    folder = lake / "parts.parquet"
    folder.mkdir()
    pq.write_table(base.slice(0, 2), folder / "part-00000.parquet")
    pq.write_table(base.slice(2), folder / "part-00001.parquet")

    names = {r.name for r in contain_brute.discover(lake)}
    assert names == {
        "base",
        "variant",
        "proj",
        "empty",
        "near_miss",
        "k_as_text",
        "upper",
        "sub/dates",
        "csv/ks",
        "parts",
    }

    result, stats = contain_brute.brute_force(lake)
    found = _pairs(result)
    expected = {
        ("base", "parts"),
        ("parts", "base"),
        # 1 == 1.0, NaN == NULL, timestamps by instant, dictionary strings as text, duplicates collapse
        ("variant", "base"),
        ("variant", "parts"),
        ("proj", "base"),
        ("proj", "parts"),
        # an empty table is contained in every table that has its columns
        *(("empty", b) for b in ("base", "variant", "parts", "csv/ks", "near_miss")),
        # a date is midnight UTC, a naive timestamp is UTC
        *(("sub/dates", b) for b in ("base", "parts", "near_miss")),
        # CSV types inferred; the empty field is NULL and matches variant's NaN
        *(("csv/ks", b) for b in ("base", "parts", "variant")),
    }
    assert found == expected
    assert stats["schema_candidates"] > len(found)

    cached, _ = contain_brute.brute_force(lake, cached=True)
    assert _pairs(cached) == found

    insensitive, _ = contain_brute.brute_force(lake, case_insensitive=True)
    got = _pairs(insensitive)
    assert got - found == {("upper", "base"), ("upper", "parts")}  # K matches k
    assert ("upper", "k_as_text") not in got  # text is not comparable with numbers
    assert not any("upper" in p for p in found)


def test_case_insensitive_matching_with_colliding_names(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    both = pa.table({"Area": [1, 2, 3], "area": [10, 20, 30]})
    _write(lake, "both", both)
    _write(lake, "reordered", both.select(["area", "Area"]).take([2, 0, 1]))  # exact names match first
    _write(lake, "upper", pa.table({"AREA": [1, 2]}))  # two partners ignoring case in `both`: no match
    _write(lake, "lower_only", pa.table({"area": [10]}))
    _write(lake, "single", pa.table({"AREA": [10, 20], "x": [1, 1]}))
    found = _pairs(contain_brute.brute_force(lake, case_insensitive=True)[0])
    assert found == {
        ("reordered", "both"),
        ("both", "reordered"),
        ("lower_only", "both"),
        ("lower_only", "reordered"),
        ("lower_only", "single"),  # area -> AREA, the only partner ignoring case
    }
    exact = _pairs(contain_brute.brute_force(lake)[0])
    assert exact == found - {("lower_only", "single")}


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(p.relative_to(folder).as_posix().encode())
            h.update(p.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def tiny_lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    lake = tmp_path_factory.mktemp("bench") / "lake"
    contain_lake.build_lake(lake, 110, seed=3, max_cells=20_000, verbose=False)
    return lake


def test_lake_builder_is_deterministic_and_covers_the_kinds(tiny_lake: Path, tmp_path: Path) -> None:
    again = tmp_path / "lake"
    contain_lake.build_lake(again, 110, seed=3, max_cells=20_000, verbose=False)
    assert _digest(again) == _digest(tiny_lake)
    assert Path(f"{again}.truth.parquet").read_bytes() == Path(f"{tiny_lake}.truth.parquet").read_bytes()
    manifest = json.loads(Path(f"{tiny_lake}.manifest.json").read_text())
    assert manifest["tables"] == 110
    assert set(manifest["by_format"]) == {"parquet", "parquet_dir", "csv"}
    kinds = set(manifest["by_origin"])
    for kind in (
        "row_subset",
        "projection",
        "shuffled_copy",
        "near_miss",
        "int_as_float",
        "null_copy",
        "empty",
    ):
        assert kind in kinds, kind
    assert {k for k in kinds if k.startswith("real:")} >= {"real:statsmodels", "real:vega", "real:sklearn"}
    assert len(contain_brute.discover(tiny_lake)) == 110


def test_brute_force_agrees_with_the_constructed_truth(tiny_lake: Path) -> None:
    truth = pq.read_table(f"{tiny_lake}.truth.parquet").to_pylist()
    assert len(truth) > 50
    for insensitive, key in ((False, "expected"), (True, "expected_case_insensitive")):
        result, stats = contain_brute.brute_force(tiny_lake, case_insensitive=insensitive)
        found = _pairs(result)
        wrong = [r for r in truth if ((r["contained"], r["container"]) in found) != r[key]]
        assert wrong == []
        assert stats["unreadable"] == {}
    assert any(not r["expected"] for r in truth) and any(r["expected"] for r in truth)


def test_harness_scores_pairs() -> None:
    truth = {("a", "b"), ("b", "c"), ("a", "c"), ("d", "c")}
    found = {("a", "b"), ("b", "c"), ("x", "y")}
    s = contain.score(found, truth)
    assert (s["true_positives"], s["false_positives"], s["false_negatives"]) == (2, 1, 2)
    assert s["precision"] == pytest.approx(2 / 3) and s["recall"] == pytest.approx(0.5)
    assert contain.closure({("a", "b"), ("b", "c")}) == {("a", "b"), ("b", "c"), ("a", "c")}
    assert contain.closure({("a", "b"), ("b", "a")}) == {("a", "b"), ("b", "a")}
    assert contain.score(set(), set())["precision"] == 1.0
    flat = contain.flatten_numbers({"steps": {"schema": {"pairs_left": 3, "seconds": 0.5}}, "ok": True})
    assert flat == {"steps.schema.pairs_left": 3, "steps.schema.seconds": 0.5}


def _sift_has_contain() -> bool:
    proc = subprocess.run(
        [*contain.sift_command(), "contain", "--help"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    return proc.returncode == 0


def test_benchmark_end_to_end(tiny_lake: Path, tmp_path: Path) -> None:
    if not _sift_has_contain():
        pytest.skip("`sift contain` is not registered in the CLI yet")
    out = tmp_path / "bench"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "contain.py"), str(tiny_lake), "--output", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads((out / "contain_bench.json").read_text())
    assert result["sift"]["vs_brute_force"]["precision"] == 1.0
    assert result["sift"]["vs_brute_force"]["recall"] == 1.0
    assert result["brute_force_cached"]["same_pairs_as_pairwise"] is True
    assert "precision 1.0000" in proc.stdout and "speed:" in proc.stdout
