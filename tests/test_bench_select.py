"""The PASER recovery benchmark (issue 12, "Benchmark"), bench/select_recovery.py: its data split and a smoke run
with tiny settings (a tiny model trained a few steps, one seed, one budget), end to end through `sift.selection.run`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from conftest import bench_module

pytest.importorskip("torch")
pytest.importorskip("transformers")
select_recovery = bench_module("select_recovery")


def test_more_instruction_groups_are_new_kinds_of_task_and_leave_the_four_alone() -> None:
    from sift.pipelines.demo_instructions import GROUPS, instructions, more_instructions

    rows = more_instructions(30)
    assert [r["group"] for r in rows[:2]] == ["mime", "calendar"] and len(rows) == 60
    assert len({r["id"] for r in rows}) == 60 and all(r["instruction"] and r["output"] for r in rows)
    assert {r["group"] for r in instructions(5)} == set(GROUPS)
    with pytest.raises(ValueError, match="unknown instruction groups"):
        more_instructions(3, ("weather",))


def test_mix_splits_every_group_into_a_pool_and_a_held_out_set() -> None:
    pool, held = select_recovery.load_mix(12, 3)
    assert len(held) == 6 * 3 and len(pool) == 6 * 9
    assert not {r["id"] for r in pool} & {r["id"] for r in held}
    assert {r["group"] for r in held} == {r["group"] for r in pool}
    again, _ = select_recovery.load_mix(12, 3)
    assert [r["id"] for r in again] == [r["id"] for r in pool]


@pytest.mark.slow
def test_smoke_run_recovers_pruned_copies_on_equal_budgets(tmp_path: Path) -> None:
    results = select_recovery.main(
        ["--per-group", "8", "--eval-per-group", "2", "--budgets", "0.25", "--seeds", "0", "--layers", "2",
         "--embd", "32", "--vocab", "300", "--max-tokens", "64", "--train-steps", "25", "--epochs", "1",
         "--batch", "8", "--work", str(tmp_path)]
    )  # fmt: skip
    rows = {r["name"]: r for r in results["rows"]}
    groups = results["groups"] + ["overall"]
    assert set(rows) >= {"untrained", "original (before pruning)", "full pool recovery", "paser 0.25",
                         "random 0.25", "length 0.25"}  # fmt: skip
    for row in rows.values():
        assert row["runs"] and all(
            math.isfinite(run[g]) and run[g] > 1 for run in row["runs"] for g in groups
        )
    # training lowered the held-out perplexity from the untrained level
    assert rows["original (before pruning)"]["runs"][0]["overall"] < rows["untrained"]["runs"][0]["overall"]
    # equal budgets: 25% of the 36-instruction pool for each strategy, and the recovered models stay pruned
    assert {rows[f"{s} 0.25"]["samples"] for s in ("paser", "random", "length")} == {9}
    assert results["recovered_sparsity_min"] == results["pruned_sparsity"] >= 0.49
    assert json.loads((tmp_path / "results.json").read_text())["pool"] == 36
    assert (tmp_path / "models" / "pruned" / "config.json").exists()
    assert "| paser 0.25 | 9 |" in select_recovery.table(results) and "group mean" in select_recovery.table(
        results
    )
