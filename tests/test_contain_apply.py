"""`sift contain --apply` never loses a table (issue 9): symlinks are never followed in or out of the lake, the recipes
that undo an apply are on disk before anything moves, a kill at any step leaves every table in place or in the trash
with a recipe that rebuilds it exactly, a second apply keeps the first one's recipes, a table that changed after
planning is not moved, and a deleted CSV is rebuilt to the same bytes.

Every check reads the lake with plain pyarrow (never the code under test) and compares the rebuilt tables with what
was written before the run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

import sift.dedup.containment.api as run
from sift.dedup.containment.api import rebuild_table, run_contain
from sift.dedup.containment.config import ContainConfig
from sift.pipelines.core.lake.tables import discover_tables

ROOT = Path(__file__).resolve().parents[1]
EAGER = ContainConfig(storage_cost_per_byte=1.0, scan_cost_per_byte=1e-12)
EAGER_TOML = "[contain]\nstorage_cost_per_byte = 1.0\nscan_cost_per_byte = 1e-12\n"


def facts(docs: pa.Table, n: int = 200) -> pa.Table:
    text = docs.column("text").slice(0, n).to_pylist()
    return pa.table(
        {
            "id": docs.column("id").slice(0, n),
            "source": docs.column("source").slice(0, n),
            "n_chars": pa.array([len(t) for t in text], pa.int64()),
            "n_words": pa.array([len(t.split()) for t in text], pa.int64()),
        }
    )


def write_lake(lake: Path, docs: pa.Table) -> None:
    """base, three Parquet subsets (a file, a projection, a folder of part files) and a CSV subset of base."""
    lake.mkdir(parents=True, exist_ok=True)
    base = facts(docs)
    rng = np.random.default_rng(3)
    pq.write_table(base, lake / "base.parquet")
    pq.write_table(base.take(np.sort(rng.choice(base.num_rows, 80, replace=False))), lake / "rows.parquet")
    pq.write_table(base.select(["source", "n_words"]), lake / "proj.parquet")
    folder = lake / "parts.parquet"
    folder.mkdir()
    for i in range(2):
        pq.write_table(base.slice(i * 30, 30).select(["id", "n_chars"]), folder / f"part-{i}.parquet")
    pacsv.write_csv(base.slice(50, 20).select(["id", "n_words"]), lake / "small.csv")


def snapshot(lake: Path) -> dict[str, dict]:
    """Every table of the lake read by plain pyarrow, with the bytes of its files (name -> record)."""
    out = {}
    for path in sorted(lake.iterdir()):
        if path.name.startswith((".", "_")) or path.is_symlink():
            continue
        name, ext = path.name.split(".", 1)
        if ext == "csv":
            table = pacsv.read_csv(path)
            files = {"": path.read_bytes()}
        elif path.is_dir():
            parts = sorted(path.glob("part-*.parquet"))
            table = pa.concat_tables([pq.read_table(p) for p in parts])
            files = {p.name: p.read_bytes() for p in parts}
        else:
            table = pq.read_table(path)
            files = {"": path.read_bytes()}
        out[name] = {"rel": path.name, "table": table, "files": files}
    return out


def _bytes_at(path: Path) -> dict[str, bytes]:
    if path.is_dir():
        return {p.name: p.read_bytes() for p in sorted(path.glob("part-*.parquet"))}
    return {"": path.read_bytes()}


def assert_nothing_lost(lake: Path, out: Path, before: dict[str, dict]) -> set[str]:
    """Every table is in place with its bytes, or in exactly one trash folder with a recipe in OUT that rebuilds it
    exactly (a CSV to the same bytes); returns the names of the trashed tables."""
    trashed = set()
    for name, rec in before.items():
        here = lake / rec["rel"]
        in_trash = (
            sorted((lake / ".sift_trash").glob(f"*/{rec['rel']}")) if (lake / ".sift_trash").exists() else []
        )
        if here.exists():
            assert not in_trash, f"{name}: both in the lake and in the trash"
            assert _bytes_at(here) == rec["files"], f"{name}: changed in place"
            continue
        assert len(in_trash) == 1, f"{name}: neither in the lake nor in the trash ({in_trash})"
        assert _bytes_at(in_trash[0]) == rec["files"], f"{name}: the trashed copy differs"
        rebuilt = rebuild_table(str(out), name)
        assert rebuilt.schema.equals(rec["table"].schema, check_metadata=True), name
        assert rebuilt.equals(rec["table"]), name
        if rec["rel"].endswith(".csv"):
            target = out / f"rebuilt-{name}.csv"
            run.write_table(rebuilt, str(target), run.original_file(str(out), name))
            assert target.read_bytes() == rec["files"][""], f"{name}: CSV not rebuilt to the same bytes"
        trashed.add(name)
    return trashed


# ---------------------------------------------------------------------------------------------------------------
# symlinks


def test_symlink_loop_in_the_lake_is_listed_not_followed(tmp_path, real_docs):
    lake = tmp_path / "lake"
    write_lake(lake, real_docs)
    before = snapshot(lake)
    os.symlink(".", lake / "loop")
    refs, problems = discover_tables(lake)
    assert sorted(r.name for r in refs) == sorted(before)
    assert any(p["table"] == "loop" and "symlink" in p["error"] for p in problems)
    out = tmp_path / "out"
    stats = run_contain(refs, str(out), EAGER, lake_root=str(lake), apply=True, problems=problems)
    trashed = assert_nothing_lost(lake, out, before)
    assert trashed and "base" not in trashed and stats["applied"] == len(trashed)
    assert (lake / "base.parquet").exists()


def test_apply_never_moves_anything_outside_the_lake(tmp_path, real_docs):
    lake = tmp_path / "lake"
    write_lake(lake, real_docs)
    before = snapshot(lake)
    outside = tmp_path / "outside"
    outside.mkdir()
    sub = facts(real_docs).slice(0, 40)
    pq.write_table(sub, outside / "t.parquet")
    pq.write_table(sub.slice(0, 10), outside / "f.parquet")
    outside_bytes = {p.name: p.read_bytes() for p in outside.iterdir()}
    os.symlink("../outside", lake / "ext_link")
    os.symlink("../outside/f.parquet", lake / "ext_file.parquet")
    refs, problems = discover_tables(lake)
    assert sorted(r.name for r in refs) == sorted(before)
    reasons = {p["table"]: p["error"] for p in problems}
    assert "symlink" in reasons["ext_link"] and "symlink" in reasons["ext_file.parquet"]
    out = tmp_path / "out"
    run_contain(refs, str(out), EAGER, lake_root=str(lake), apply=True, problems=problems)
    assert {p.name: p.read_bytes() for p in outside.iterdir()} == outside_bytes
    assert os.path.islink(lake / "ext_link") and os.path.islink(lake / "ext_file.parquet")
    assert_nothing_lost(lake, out, before)


def test_lake_given_through_a_symlink_gives_clean_trash_paths(tmp_path, real_docs, sift_cli):
    lake = tmp_path / "lake"
    write_lake(lake, real_docs)
    before = snapshot(lake)
    os.symlink(lake, tmp_path / "via")
    (tmp_path / "sift.toml").write_text(EAGER_TOML)
    out = tmp_path / "out"
    res = sift_cli(
        "contain",
        str(tmp_path / "via"),
        "--output",
        str(out),
        "--apply",
        "--config",
        str(tmp_path / "sift.toml"),
    )
    assert res.returncode == 0, res.stderr
    plan = pq.read_table(out / "deletion_plan.parquet").to_pylist()
    moved = [r for r in plan if r["applied"]]
    assert moved
    real = os.path.realpath(lake)
    for r in moved:
        assert ".." not in Path(r["trash_path"]).parts
        assert r["trash_path"].startswith(os.path.join(real, ".sift_trash") + os.sep)
        assert os.path.exists(r["trash_path"])
    assert_nothing_lost(lake, out, before)


# ---------------------------------------------------------------------------------------------------------------
# crash safety


def test_interrupted_apply_leaves_recipes_for_what_it_moved(tmp_path, real_docs, monkeypatch):
    """The apply is stopped after its first move (the process dies there): the moved table has a recipe already."""
    lake = tmp_path / "lake"
    write_lake(lake, real_docs)
    before = snapshot(lake)
    real_rename = os.rename
    moves = []

    def dying(src, dst, *args, **kwargs):
        if ".sift_trash" in str(dst) and ".tmp" not in str(src):
            moves.append(src)
            if len(moves) == 2:
                raise KeyboardInterrupt("killed")
        return real_rename(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "rename", dying)
    refs, problems = discover_tables(lake)
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        run_contain(refs, str(out), EAGER, lake_root=str(lake), apply=True, problems=problems)
    monkeypatch.undo()
    assert len(assert_nothing_lost(lake, out, before)) == 1


KILL_RUN = """
import sys
from sift.dedup.containment.config import ContainConfig
from sift.dedup.containment.api import run_contain
from sift.pipelines.core.lake.tables import discover_tables

refs, problems = discover_tables(sys.argv[1])
cfg = ContainConfig(storage_cost_per_byte=1.0, scan_cost_per_byte=1e-12)
run_contain(refs, sys.argv[2], cfg, lake_root=sys.argv[1], apply=True, problems=problems)
"""


def _run_apply(script: Path, lake: Path, out: Path, kill_at: str | None) -> int:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("SIFT_TEST_KILL_AT", None)
    if kill_at is not None:
        env["SIFT_TEST_KILL_AT"] = kill_at
    return subprocess.run(
        [sys.executable, str(script), str(lake), str(out)], env=env, cwd=ROOT, timeout=300
    ).returncode


@pytest.mark.parametrize(
    "step", ["records", "move:0", "moved:0", "move:2", "moved:2", "move:3", "moved:3", "outputs", "done"]
)
def test_sigkill_at_every_apply_step_loses_nothing(tmp_path, real_docs, step):
    lake = tmp_path / "lake"
    write_lake(lake, real_docs)
    before = snapshot(lake)
    script = tmp_path / "apply.py"
    script.write_text(KILL_RUN)
    out = tmp_path / "out"
    assert _run_apply(script, lake, out, step) == -signal.SIGKILL
    moved = assert_nothing_lost(lake, out, before)
    journal = [json.loads(line) for p in (out / "applies").glob("*/journal.jsonl") for line in p.open()]
    assert len([j for j in journal if j["step"] == "moved"]) <= len(moved)
    # a rerun into the same output completes the apply and keeps the killed run's recipes
    assert _run_apply(script, lake, out, None) == 0
    again = assert_nothing_lost(lake, out, before)
    assert moved <= again and again == set(before) - {"base"}


# ---------------------------------------------------------------------------------------------------------------
# recipes of earlier applies, tables that change, CSV bytes


def test_second_apply_into_the_same_output_keeps_the_first_recipes(tmp_path, real_docs):
    lake = tmp_path / "lake"
    write_lake(lake, real_docs)
    before = snapshot(lake)
    out = tmp_path / "out"
    refs, problems = discover_tables(lake)
    first = run_contain(refs, str(out), EAGER, lake_root=str(lake), apply=True, problems=problems)
    assert first["applied"] == len(before) - 1
    later = facts(real_docs).slice(100, 25)
    pq.write_table(later, lake / "later.parquet")
    before["later"] = {
        "rel": "later.parquet",
        "table": later,
        "files": {"": (lake / "later.parquet").read_bytes()},
    }
    refs, problems = discover_tables(lake)
    second = run_contain(refs, str(out), EAGER, lake_root=str(lake), apply=True, problems=problems)
    assert second["applied"] == 1
    assert assert_nothing_lost(lake, out, before) == set(before) - {"base"}


def test_table_changed_after_planning_is_not_moved(tmp_path, real_docs, monkeypatch):
    lake = tmp_path / "lake"
    write_lake(lake, real_docs)
    original = run.build_recipes
    changed = facts(real_docs, 300).slice(150, 80)  # rows that base does not hold

    def then_change(*args, **kwargs):
        got = original(*args, **kwargs)
        pq.write_table(changed, lake / "rows.parquet")
        return got

    monkeypatch.setattr(run, "build_recipes", then_change)
    refs, problems = discover_tables(lake)
    out = tmp_path / "out"
    stats = run_contain(refs, str(out), EAGER, lake_root=str(lake), apply=True, problems=problems)
    plan = {r["table"]: r for r in pq.read_table(out / "deletion_plan.parquet").to_pylist()}
    assert plan["rows"]["applied"] is False and "changed" in plan["rows"]["reason"]
    assert pq.read_table(lake / "rows.parquet").equals(changed)
    assert stats["applied"] == 3 and plan["proj"]["applied"]


def test_csv_rebuilds_to_the_same_bytes(tmp_path, sift_cli):
    lake = tmp_path / "lake"
    lake.mkdir()
    (lake / "base.csv").write_text("code,score\n123,1.5\n456,2\n789,NULL\n7,3\n")
    (lake / "odd.csv").write_text("code,score\n00123,1.50\n789,N/A\n")
    (tmp_path / "sift.toml").write_text(EAGER_TOML)
    out = tmp_path / "out"
    res = sift_cli(
        "contain", str(lake), "--output", str(out), "--apply", "--config", str(tmp_path / "sift.toml")
    )
    assert res.returncode == 0, res.stderr
    plan = {r["table"]: r for r in pq.read_table(out / "deletion_plan.parquet").to_pylist()}
    assert plan["odd"]["applied"]
    res = sift_cli("rebuild", "odd", "--plan", str(out), "--output", str(tmp_path / "odd.csv"))
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "odd.csv").read_text() == "code,score\n00123,1.50\n789,N/A\n"
    # the Arrow table (what the lake's readers see) is rebuilt too
    res = sift_cli("rebuild", "odd", "--plan", str(out), "--output", str(tmp_path / "odd.parquet"))
    assert res.returncode == 0, res.stderr
    assert pq.read_table(tmp_path / "odd.parquet").to_pylist() == [
        {"code": 123, "score": 1.5},
        {"code": 789, "score": None},
    ]


def test_no_pickle_in_the_output_folder(tmp_path, real_docs):
    lake = tmp_path / "lake"
    write_lake(lake, real_docs)
    refs, problems = discover_tables(lake)
    out = tmp_path / "out"
    run_contain(refs, str(out), EAGER, problems=problems)
    cached = list((out / "cache" / "csv_stats").iterdir())
    assert cached and all(p.suffix == ".json" for p in cached)
    for p in cached:
        assert json.loads(p.read_text())["schema_version"] == 1
    assert not [p for p in out.rglob("*") if p.is_file() and p.read_bytes()[:1] == b"\x80"]
