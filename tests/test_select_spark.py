"""`sift select --engine spark` (selection/engines/spark.py) on a real local Spark session: the same selection as the
Polars engine on instructions with known capability groups (sift.pipelines.demo_instructions) and bad records, the
same rejected rows, byte-identical outputs run to run, the work tables reused by a rerun, the baselines, and the
model-pair scoring on the executors (slow)."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

pytest.importorskip("sentence_transformers")
pytestmark = pytest.mark.spark

from sift import selection  # noqa: E402
from sift.pipelines.core.stage import SparkEngine  # noqa: E402
from sift.pipelines.demo_instructions import instructions  # noqa: E402
from sift.selection.config import SelectionConfig  # noqa: E402

PER_GROUP = 20
CONFLICTS = [
    {"id": "fact-0", "group": "timezone", "instruction": "What is the capital city of Australia?", "input": "",
     "output": "The capital city of Australia is Canberra."},
    {"id": "fact-1", "group": "timezone", "instruction": "What is the capital city of Australia?", "input": "",
     "output": "The capital city of Australia is Sydney."},
]  # fmt: skip
BAD = [
    {"id": "empty", "instruction": "   ", "output": "x"},
    {"id": "no-instruction", "output": "x"},
    {"id": "code-000", "instruction": "a repeated id", "output": "x"},
    {"id": "unscored", "instruction": "Explain the function os.path.join.", "output": "Joins paths."},
    {"id": "nan", "instruction": "Explain the function os.path.split.", "output": "Splits."},
    {"id": "negative", "instruction": "Explain the function os.path.exists.", "output": "Tests."},
]  # fmt: skip
CONFIG = SelectionConfig(budget=0.25, clusters=4)


def _write_jsonl(rows: list[dict], path: Path) -> Path:
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    return path


def _scores(rows: list[dict]) -> dict[str, float]:
    """Degradation per sample: the `code` group degraded most, a deterministic spread within each group."""
    import zlib

    level = {"code": 0.30, "licence": 0.05, "timezone": 0.10, "unicode": 0.02}
    out = {r["id"]: level[r["group"]] * (1 + (zlib.crc32(r["id"].encode()) % 100) / 100) for r in rows}
    out["fact-0"], out["fact-1"] = 0.9, 1.0
    out["nan"], out["negative"], out["empty"] = math.nan, -0.5, 0.1
    return out


def _read(path: Path) -> pa.Table:
    """An output table: a Parquet file (Polars engine) or a folder of part files (Spark engine)."""
    if path.is_dir():
        return pa.concat_tables(pq.read_table(p) for p in sorted(path.glob("part-*.parquet")))
    return pq.read_table(path)


def _rows(table: pa.Table) -> list[dict]:
    """The rows of a table, NaN written as "nan" (NaN != NaN would fail any comparison)."""
    return [
        {k: "nan" if isinstance(v, float) and math.isnan(v) else v for k, v in row.items()}
        for row in table.to_pylist()
    ]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory, spark) -> dict:
    """The instructions (with bad records), their SCORES, and one run of each engine."""
    root = tmp_path_factory.mktemp("select-spark")
    rows = instructions(PER_GROUP) + CONFLICTS
    assert any(r["id"] == "code-000" for r in rows)
    inst = _write_jsonl(rows + BAD, root / "instructions.jsonl")
    scores = _scores(rows + [{"id": "nan", "group": "code"}, {"id": "negative", "group": "code"}])
    # one sample its scorer could not score, with the scorer's own reason (as the Dagster scores asset writes it)
    scores["licence-001"] = math.nan
    why = ["empty response: nothing to score" if i == "licence-001" else None for i in scores]
    pq.write_table(
        pa.table({"id": list(scores), "jsd": list(scores.values()), "reason": why}), root / "scores.parquet"
    )
    polars = selection.run(str(inst), CONFIG, root / "polars", scores=str(root / "scores.parquet"))
    on_spark = selection.run(
        str(inst), CONFIG, root / "spark", SparkEngine(spark), scores=str(root / "scores.parquet")
    )
    return {"root": root, "rows": rows, "inst": inst, "scores": root / "scores.parquet", "polars": polars,
            "spark": on_spark}  # fmt: skip


def test_the_python_workers_import_this_checkout(spark) -> None:
    """The executors' Python workers import the same `sift` as the driver (PYTHONPATH reaches them)."""

    def where(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        import sift.selection.engines.spark as mod

        for _ in batches:
            yield pa.RecordBatch.from_pydict({"f": [mod.__file__ or ""]})

    got = spark.range(1).mapInArrow(where, "f string").collect()[0]["f"]
    import sift.selection.engines.spark as mine

    assert os.path.realpath(got) == os.path.realpath(mine.__file__ or "")


def test_same_selection_as_the_polars_engine(data: dict) -> None:
    root = data["root"]
    polars, on_spark = root / "polars", root / "spark"
    assert (on_spark / "selected.parquet").is_dir()  # folders of part files written by the executors
    sel_p, sel_s = _read(polars / "selected.parquet"), _read(on_spark / "selected.parquet")
    assert sel_s.column_names == sel_p.column_names
    assert sel_s.column("id").to_pylist() == sel_p.column("id").to_pylist()  # same rows in selection order
    assert sel_s.drop_columns(["efficiency"]).to_pylist() == sel_p.drop_columns(["efficiency"]).to_pylist()
    clu_p, clu_s = _read(polars / "clusters.parquet"), _read(on_spark / "clusters.parquet")
    assert clu_s.column_names == clu_p.column_names
    exact = ["id", "cluster", "rank", "jsd", "tokens", "status"]
    assert clu_s.select(exact).to_pylist() == clu_p.select(exact).to_pylist()
    for col in ("efficiency", "x", "y"):  # floats: the embeddings may differ in the last bits (other batches)
        assert clu_s.column(col).to_pylist() == pytest.approx(clu_p.column(col).to_pylist(), abs=1e-4)
    rej_p, rej_s = _read(polars / "rejected.parquet"), _read(on_spark / "rejected.parquet")
    assert rej_s.to_pylist() == rej_p.to_pylist()
    reasons = {r["id"] or f"row {r['row']}": r["reason"] for r in rej_s.to_pylist()}
    assert reasons["empty"] == "empty instruction"
    assert reasons["unscored"] == "no degradation score: id missing from SCORES"
    assert reasons["nan"] == "degradation score is NaN"
    assert reasons["negative"] == "degradation score is negative (-0.5)"
    assert reasons["licence-001"] == "empty response: nothing to score"  # the SCORES row's own reason
    assert reasons["fact-0"].startswith("concept conflict")  # the better-ranked fact-1 came first
    unreadable = [r for r in reasons.values() if r.startswith("unreadable record")]
    assert len(unreadable) == 2  # no instruction field, a repeated id
    sp, pp = (json.loads((d / "stats.json").read_text()) for d in (on_spark, polars))
    for stats in (sp, pp):
        stats["clusters"].pop("eigenvalues")
        stats["clusters"].pop("sigma")
    assert sp == pp
    s = data["spark"]
    assert s["rows_in"] == len(data["rows"]) + len(BAD) == s["selected"] + s["not_selected"] + s["rejected"]
    assert (on_spark / "report.md").exists() and (on_spark / "cluster_map.png").exists()


def test_clusters_recover_the_capability_groups(data: dict) -> None:
    from sklearn.metrics import adjusted_rand_score

    group = {r["id"]: r["group"] for r in data["rows"]}
    table = _read(data["root"] / "spark" / "clusters.parquet")
    pairs = [(group[i], c) for i, c in zip(table.column("id").to_pylist(), table.column("cluster").to_pylist(),
                                           strict=True) if i in group]  # fmt: skip
    ari = adjusted_rand_score([g for g, _ in pairs], [c for _, c in pairs])
    print(f"adjusted Rand index on Spark: {ari:.3f}")
    assert ari > 0.8


@pytest.mark.slow
def test_rerun_gives_the_same_bytes_and_reuses_the_work_tables(data: dict, spark, tmp_path: Path) -> None:
    root = data["root"]
    again = tmp_path / "again"
    selection.run(str(data["inst"]), CONFIG, again, SparkEngine(spark), scores=str(data["scores"]))
    for name in ("selected.parquet", "clusters.parquet", "rejected.parquet"):
        first = sorted((root / "spark" / name).iterdir())
        second = sorted((again / name).iterdir())
        assert [p.name for p in first] == [p.name for p in second]
        assert all(a.read_bytes() == b.read_bytes() for a, b in zip(first, second, strict=True)), name
    assert (again / "stats.json").read_bytes() == (root / "spark" / "stats.json").read_bytes()
    markers = sorted((again / "_work" / "spark").rglob("features*.done*"))
    assert markers
    before = [m.stat().st_mtime_ns for m in markers]
    selection.run(str(data["inst"]), CONFIG, again, SparkEngine(spark), scores=str(data["scores"]))
    assert [m.stat().st_mtime_ns for m in markers] == before  # features reused, not recomputed
    assert (again / "stats.json").read_bytes() == (root / "spark" / "stats.json").read_bytes()


def test_baselines_match_the_polars_engine(data: dict, spark, tmp_path: Path) -> None:
    for strategy in ("random", "length"):
        cfg = SelectionConfig(budget=12, strategy=strategy, seed=3)
        selection.run(str(data["inst"]), cfg, tmp_path / f"p-{strategy}")
        selection.run(str(data["inst"]), cfg, tmp_path / f"s-{strategy}", SparkEngine(spark))
        for name in ("selected.parquet", "clusters.parquet", "rejected.parquet"):
            p, s = _read(tmp_path / f"p-{strategy}" / name), _read(tmp_path / f"s-{strategy}" / name)
            assert _rows(s) == _rows(p), (strategy, name)


def test_bad_input_is_one_clear_line_on_spark(data: dict, spark, tmp_path: Path) -> None:
    from sift.pipelines.core.errors import InputError

    engine = SparkEngine(spark)
    prompts = _write_jsonl([{"id": "a", "prompt": "x"}, {"id": "b", "prompt": "y"}], tmp_path / "p.jsonl")
    with pytest.raises(InputError, match="instruction column is missing"):
        selection.run(str(prompts), CONFIG, tmp_path / "a", engine, scores=str(data["scores"]))
    with pytest.raises(InputError, match="larger than the pool"):
        selection.run(str(data["inst"]), SelectionConfig(budget=10_000), tmp_path / "b", engine,
                      scores=str(data["scores"]))  # fmt: skip
    (tmp_path / "not-a-model").mkdir()
    with pytest.raises(InputError, match="--embedder .*not-a-model"):
        selection.run(str(data["inst"]), SelectionConfig(embedder=str(tmp_path / "not-a-model")), tmp_path / "c",
                      engine, scores=str(data["scores"]))  # fmt: skip


@pytest.mark.slow
def test_model_pair_scored_on_the_executors(data: dict, spark, tmp_path: Path) -> None:
    from sift.pipelines.demo_models import tiny_lm_pair

    rows = data["rows"][:30] + [{"id": "silent", "instruction": "Say nothing.", "output": "  "}]
    inst = _write_jsonl(rows, tmp_path / "pair.jsonl")
    original, pruned = tiny_lm_pair([r["output"] for r in data["rows"]][:64], tmp_path / "lm")
    cfg = SelectionConfig(budget=8, clusters=2)
    polars = selection.run(str(inst), cfg, tmp_path / "p", original=str(original), pruned=str(pruned))
    on_spark = selection.run(
        str(inst), cfg, tmp_path / "s", SparkEngine(spark), original=str(original), pruned=str(pruned)
    )
    assert on_spark["selected"] == polars["selected"] == 8
    assert on_spark["rejected_by_reason"] == polars["rejected_by_reason"] == {"empty response": 1}
    p, s = _read(tmp_path / "p" / "clusters.parquet"), _read(tmp_path / "s" / "clusters.parquet")
    assert s.column("id").to_pylist() == p.column("id").to_pylist()
    assert s.column("tokens").to_pylist() == p.column("tokens").to_pylist()
    jsd = s.column("jsd").to_pylist()
    assert all(j > 0 for j in jsd)
    assert jsd == pytest.approx(p.column("jsd").to_pylist(), rel=1e-4)


@pytest.mark.spark_cluster
@pytest.mark.slow
def test_cli_through_spark_connect_matches_polars(
    data: dict, spark_connect: str, sift_cli, tmp_path: Path
) -> None:
    out = tmp_path / "connect"
    proc = sift_cli("select", str(data["inst"]), "--output", str(out), "--budget", "0.25", "--clusters", "4",
                    "--scores", str(data["scores"]), "--spark-master", spark_connect)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    polars = data["root"] / "polars"
    for name in ("selected.parquet", "rejected.parquet"):
        assert _read(out / name).to_pylist() == _read(polars / name).to_pylist(), name
    exact = ["id", "cluster", "rank", "status"]
    assert _read(out / "clusters.parquet").select(exact) == _read(polars / "clusters.parquet").select(exact)
