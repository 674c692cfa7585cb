"""PASER selection end to end (`sift.selection.run` and `sift select`) on instructions with known capability groups
built from real offline text (sift.pipelines.demo_instructions), embedded once with the default all-MiniLM-L6-v2 and the
embedding cache copied into each run's work folder: clusters recovered (adjusted Rand index), every record
accounted for, budget per cluster, conflicts rejected, determinism, the cache reused, the baselines, bad input."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

pytest.importorskip("sentence_transformers")

from sift import selection  # noqa: E402
from sift.pipelines.core.errors import InputError  # noqa: E402
from sift.pipelines.demo_instructions import GROUPS, instructions  # noqa: E402
from sift.selection.config import SelectionConfig  # noqa: E402

PER_GROUP = 40
# crafted contradictions: the same question answered two ways, the wrong answer scored as more degraded
CONFLICTS = [
    {"id": "fact-0", "group": "timezone", "instruction": "What is the capital city of Australia?", "input": "",
     "output": "The capital city of Australia is Canberra."},
    {"id": "fact-1", "group": "timezone", "instruction": "What is the capital city of Australia?", "input": "",
     "output": "The capital city of Australia is Sydney."},
]  # fmt: skip


def _write_jsonl(rows: list[dict], path: Path) -> Path:
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    return path


def _scores(rows: list[dict]) -> dict[str, float]:
    """Degradation per sample: the `code` group degraded most, a deterministic spread within each group."""
    level = {"code": 0.30, "licence": 0.05, "timezone": 0.10, "unicode": 0.02}
    out = {r["id"]: level[r["group"]] * (1 + (hash_(r["id"]) % 100) / 100) for r in rows}
    out["fact-0"], out["fact-1"] = 0.9, 1.0
    return out


def hash_(text: str) -> int:
    import zlib

    return zlib.crc32(text.encode())


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The instructions, their SCORES table, and an output folder of a first run whose `_work` (the embedding
    cache) the tests copy, so the embedder runs once per module."""
    root = tmp_path_factory.mktemp("select")
    rows = instructions(PER_GROUP) + CONFLICTS
    inst = _write_jsonl(rows, root / "instructions.jsonl")
    scores = _scores(rows)
    pq.write_table(pa.table({"id": list(scores), "jsd": list(scores.values())}), root / "scores.parquet")
    base = root / "base"
    stats = selection.run(
        str(inst), SelectionConfig(budget=0.2, clusters=4), base, scores=str(root / "scores.parquet")
    )
    return {"root": root, "rows": rows, "inst": inst, "scores": root / "scores.parquet", "base": base,
            "stats": stats}  # fmt: skip


def _out(data: dict, tmp_path: Path, name: str = "out") -> Path:
    out = tmp_path / name
    out.mkdir()
    shutil.copytree(data["base"] / "_work", out / "_work")
    return out


def _ari(data: dict, out: Path) -> float:
    from sklearn.metrics import adjusted_rand_score

    clusters = pq.read_table(out / "clusters.parquet").to_pylist()
    group = {r["id"]: r["group"] for r in data["rows"]}
    rows = [c for c in clusters if not c["id"].startswith("fact-")]
    return adjusted_rand_score([group[c["id"]] for c in rows], [c["cluster"] for c in rows])


def test_clusters_recover_the_capability_groups(data: dict, tmp_path: Path) -> None:
    fixed = _ari(data, data["base"])
    assert data["stats"]["clusters"]["k"] == 4 and data["stats"]["clusters"]["method"] == "fixed"
    out = _out(data, tmp_path)
    stats = selection.run(str(data["inst"]), SelectionConfig(budget=0.2), out, scores=str(data["scores"]))
    auto = _ari(data, out)
    print(f"ARI fixed K=4: {fixed:.3f}; auto K={stats['clusters']['k']} (eigengap): {auto:.3f}")
    assert fixed >= 0.95
    assert stats["clusters"]["method"] == "eigengap" and 4 <= stats["clusters"]["k"] <= 8
    assert auto >= 0.7


def test_budget_follows_degradation_and_every_record_is_accounted_for(data: dict) -> None:
    out, stats = data["base"], data["stats"]
    n = len(data["rows"])
    assert stats["rows_in"] == n and stats["budget"] == round(0.2 * n)
    selected = pq.read_table(out / "selected.parquet")
    clusters = pq.read_table(out / "clusters.parquet")
    rejected = pq.read_table(out / "rejected.parquet")
    assert selected.num_rows == stats["budget"]
    assert selected.num_rows + stats["not_selected"] + rejected.num_rows == n
    assert set(selected.column("id").to_pylist()).isdisjoint(rejected.column("id").to_pylist())
    status = dict(zip(clusters.column("id").to_pylist(), clusters.column("status").to_pylist(), strict=True))
    assert sum(1 for s in status.values() if s == "selected") == selected.num_rows
    # the crafted contradiction: the more degraded (wrong) answer comes first and is kept, the other is rejected
    # with the concepts it contradicts
    assert status["fact-1"] == "selected" and status["fact-0"] == "rejected"
    reason = rejected.to_pylist()[0]
    assert (
        reason["id"] == "fact-0" and "concept conflict" in reason["reason"] and "sydney" in reason["reason"]
    )
    # the budget per cluster follows the clusters' mean degradation: the code cluster (most degraded) gets most
    per = stats["clusters"]["per_cluster"]
    assert sum(c["budget"] for c in per) == stats["budget"]
    assert sum(c["selected"] for c in per) == stats["budget"]
    top = max(per, key=lambda c: c["cds"])
    assert top["budget"] == max(c["budget"] for c in per)
    code_cluster = {c["cluster"] for c in clusters.to_pylist() if c["id"].startswith("code-")}
    assert code_cluster == {top["cluster"]}
    # inside a cluster, samples are taken in rank order (by efficiency)
    for c in per:
        ranks = sorted(
            r["rank"]
            for r in clusters.to_pylist()
            if r["cluster"] == c["cluster"] and r["status"] != "not_selected"
        )
        assert ranks == list(range(len(ranks)))
    for name in ("report.md", "cluster_map.png", "cluster_budget.png", "stats.json"):
        assert (out / name).stat().st_size > 0
    assert "![cluster map](cluster_map.png)" in (out / "report.md").read_text()


def test_same_seed_same_bytes_and_the_embeddings_are_reused(data: dict, tmp_path: Path) -> None:
    out = _out(data, tmp_path)
    stats = selection.run(
        str(data["inst"]), SelectionConfig(budget=0.2, clusters=4), out, scores=str(data["scores"])
    )
    assert stats["embeddings"]["embedded"] == 0 and stats["embeddings"]["reused"] == len(data["rows"])
    for name in ("selected.parquet", "clusters.parquet", "rejected.parquet", "stats.json"):
        assert (out / name).read_bytes() == (data["base"] / name).read_bytes(), name


def test_bad_rows_are_rejected_with_their_reason(data: dict, tmp_path: Path) -> None:
    rows = data["rows"][:40] + [
        {"id": "empty", "instruction": "   ", "output": "x"},
        {"id": "no-instruction", "output": "x"},
        {"id": data["rows"][0]["id"], "instruction": "a repeated id", "output": "x"},
        {"id": "unscored", "instruction": "Explain the function os.path.join.", "output": "Joins paths."},
        {"id": "nan", "instruction": "Explain the function os.path.split.", "output": "Splits."},
        {"id": "negative", "instruction": "Explain the function os.path.exists.", "output": "Tests."},
    ]
    inst = _write_jsonl(rows, tmp_path / "bad.jsonl")
    scores = {r["id"]: 0.1 for r in rows if r["id"] not in ("unscored",)}
    scores["nan"], scores["negative"] = math.nan, -0.5
    pq.write_table(pa.table({"id": list(scores), "jsd": list(scores.values())}), tmp_path / "s.parquet")
    out = _out(data, tmp_path)
    stats = selection.run(
        str(inst), SelectionConfig(budget=10, clusters=2), out, scores=str(tmp_path / "s.parquet")
    )
    rejected = {
        (r["id"] or f"row {r['row']}"): r["reason"]
        for r in pq.read_table(out / "rejected.parquet").to_pylist()
    }
    assert rejected["empty"] == "empty instruction"
    assert "missing required field: 'instruction'" in rejected["row 42"]
    assert "duplicate id" in rejected["row 43"]
    assert rejected["unscored"] == "no degradation score: id missing from SCORES"
    assert rejected["nan"] == "degradation score is NaN"
    assert rejected["negative"] == "degradation score is negative (-0.5)"
    assert stats["rows_in"] == len(rows) == stats["selected"] + stats["not_selected"] + stats["rejected"]
    assert stats["selected"] == 10


def test_a_scores_row_with_a_reason_is_rejected_with_that_reason(data: dict, tmp_path: Path) -> None:
    """A SCORES table may carry the scorer's own reason for a sample it could not score (as the Dagster scores
    asset writes it): that sample is rejected with the reason, and a null `tokens` on such a row is allowed."""
    rows = data["rows"][:40]
    inst = _write_jsonl(rows, tmp_path / "inst.jsonl")
    ids = [r["id"] for r in rows]
    pq.write_table(
        pa.table({
            "id": ids, "jsd": [None] + [0.1] * 39, "tokens": [None] + [20] * 39,
            "reason": ["empty response: nothing to score"] + [None] * 39,
        }),
        tmp_path / "s.parquet",
    )  # fmt: skip
    stats = selection.run(
        str(inst),
        SelectionConfig(budget=5, clusters=2),
        _out(data, tmp_path),
        scores=str(tmp_path / "s.parquet"),
    )
    rejected = pq.read_table(tmp_path / "out" / "rejected.parquet").to_pylist()
    assert [(r["id"], r["reason"]) for r in rejected] == [(ids[0], "empty response: nothing to score")]
    assert stats["rejected_by_reason"] == {"empty response": 1} and stats["selected"] == 5


def test_baselines_take_the_budget_without_scores(data: dict, tmp_path: Path) -> None:
    rnd = selection.run(
        str(data["inst"]), SelectionConfig(budget=12, strategy="random", seed=3), tmp_path / "r"
    )
    again = selection.run(
        str(data["inst"]), SelectionConfig(budget=12, strategy="random", seed=3), tmp_path / "r2"
    )
    other = selection.run(
        str(data["inst"]), SelectionConfig(budget=12, strategy="random", seed=4), tmp_path / "r3"
    )
    ids = [
        pq.read_table(tmp_path / d / "selected.parquet").column("id").to_pylist() for d in ("r", "r2", "r3")
    ]
    assert rnd["selected"] == again["selected"] == other["selected"] == 12
    assert ids[0] == ids[1] and ids[0] != ids[2]
    selection.run(str(data["inst"]), SelectionConfig(budget=12, strategy="length"), tmp_path / "l")
    table = pq.read_table(tmp_path / "l" / "clusters.parquet")
    chosen = [
        t
        for t, s in zip(table.column("tokens").to_pylist(), table.column("status").to_pylist(), strict=True)
        if s == "selected"
    ]
    rest = [
        t
        for t, s in zip(table.column("tokens").to_pylist(), table.column("status").to_pylist(), strict=True)
        if s != "selected"
    ]
    assert len(chosen) == 12 and min(chosen) >= max(rest)


def test_library_errors_are_input_errors(data: dict, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="larger than the pool"):
        selection.run(
            str(data["inst"]), SelectionConfig(budget=10_000), tmp_path / "a", scores=str(data["scores"])
        )
    with pytest.raises(InputError, match="needs degradation scores"):
        selection.run(str(data["inst"]), SelectionConfig(), tmp_path / "b")
    pq.write_table(pa.table({"id": ["x"], "score": [0.1]}), tmp_path / "wrong.parquet")
    with pytest.raises(InputError, match="no `jsd` column"):
        selection.run(
            str(data["inst"]), SelectionConfig(), tmp_path / "c", scores=str(tmp_path / "wrong.parquet")
        )


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("no-instruction-column", "instruction column is missing"),
        ("budget", "larger than the pool"),
        ("no-scores", "needs degradation scores"),
        ("strategy", "is not one of paser, random, length"),
    ],
)
def test_cli_bad_input_is_one_line_and_exit_2(
    sift_cli, data: dict, tmp_path: Path, case: str, message: str
) -> None:
    inst = str(data["inst"])
    args = ["--budget", "0.2", "--scores", str(data["scores"])]
    if case == "no-instruction-column":
        inst = str(
            _write_jsonl([{"id": "a", "prompt": "x"}, {"id": "b", "prompt": "y"}], tmp_path / "p.jsonl")
        )
    elif case == "budget":
        args = ["--budget", "100000", "--scores", str(data["scores"])]
    elif case == "no-scores":
        args = ["--budget", "0.2"]
    else:
        args += ["--strategy", "best"]
    proc = sift_cli("select", inst, "--output", str(tmp_path / "out"), *args)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr
    assert (
        "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) <= 4
    )  # usage errors: typer's 4 lines


def test_cli_writes_the_outputs(sift_cli, data: dict, tmp_path: Path) -> None:
    out = _out(data, tmp_path)
    proc = sift_cli("select", str(data["inst"]), "--output", str(out), "--budget", "0.2", "--scores",
                    str(data["scores"]), "--clusters", "4")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert f"selected {data['stats']['budget']}" in proc.stdout
    stats = json.loads((out / "stats.json").read_text())
    assert stats["selected"] == data["stats"]["selected"]
    assert (out / "selected.parquet").read_bytes() == (data["base"] / "selected.parquet").read_bytes()
    assert set(GROUPS)  # the groups the data was built from
