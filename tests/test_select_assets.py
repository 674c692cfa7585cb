"""PASER selection assets (issue 12) on a real Dagster instance: the demo's instructions (four known capability
groups) written into the lake, embedded, scored by the demo's tiny original/pruned model pair, clustered and
selected; the recovery set exported as JSONL and Parquet that pyarrow and polars read, and its checks pass. The
selection over the asset tables equals `sift.selection.run` embedding and scoring by itself."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import dagster as dg
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

pytest.importorskip("sentence_transformers")

from sift.assets.selection import ASSETS  # noqa: E402
from sift.pipelines.resources import EngineResource, LakeResource  # noqa: E402

PER_GROUP = 12
RUN_CONFIG = {
    "ops": {
        "selection_instructions": {"config": {"demo_per_group": PER_GROUP}},
        "instruction_clusters": {"config": {"budget": 0.25, "clusters": "4"}},
    },
    "loggers": {"console": {"config": {"log_level": "WARNING"}}},
}


@pytest.fixture(scope="module")
def materialised(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, dg.ExecuteInProcessResult, list[str]]:
    root = tmp_path_factory.mktemp("select-assets")
    (root / "dagster").mkdir()
    with dg.instance_for_test(temp_dir=str(root / "dagster")) as instance:
        result = dg.materialize(
            ASSETS,
            instance=instance,
            resources={
                "lake": LakeResource(root=str(root / "lake")),
                "engine": EngineResource(name="polars"),
            },
            run_config=RUN_CONFIG,
        )
        mats = instance.get_latest_materialization_event(dg.AssetKey("recovery_set"))
        assert mats is not None  # recorded in the instance, not only in the result
        messages = [e.user_message for e in instance.all_logs(result.run_id)]
    return root / "lake", result, messages


@pytest.mark.slow
def test_assets_materialise_and_checks_pass(materialised) -> None:
    lake, result, messages = materialised
    assert result.success
    done = {m.asset_key.to_user_string() for m in result.get_asset_materialization_events()}
    assert done == {"selection_instructions", "instruction_embeddings", "degradation_scores",
                    "instruction_clusters", "recovery_set"}  # fmt: skip
    checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    assert checks == {"within_budget": True, "no_rejected_id": True, "ids_in_instructions": True}

    n = 4 * PER_GROUP
    emb = pq.read_table(lake / "select" / "embeddings.parquet")
    assert emb.num_rows == n and emb.schema.field("vector").type.list_size == 384
    scores = pq.read_table(lake / "select" / "degradation_scores.parquet")
    assert scores.column_names == ["id", "jsd", "tokens", "reason"] and scores.num_rows == n
    assert scores.column("reason").null_count == n  # every demo sample has a response to score
    jsd = scores.column("jsd").to_pylist()
    assert all(0 < j <= 0.7 for j in jsd)  # the pruned copy differs from the original, JSD <= ln 2
    assert (lake / "select" / "demo_models" / "pruned" / "config.json").exists()
    # embedding and scoring progress reach the Dagster run log (the last record of each task at least)
    assert any(m.startswith(f"select: embedded {n}/{n} instructions (") for m in messages)
    assert any(m.startswith(f"select: scored {n}/{n} samples (") for m in messages)


@pytest.mark.slow
def test_recovery_set_is_readable_by_pyarrow_and_polars(materialised) -> None:
    import polars as pl

    lake, result, _ = materialised
    folder = lake / "select" / "recovery_set"
    assert sorted(p.name for p in folder.iterdir()) == ["recovery_set.jsonl", "recovery_set.parquet"]
    table = pq.read_table(folder / "recovery_set.parquet")
    frame = pl.read_ndjson(folder / "recovery_set.jsonl")
    stats = json.loads((lake / "select" / "run" / "stats.json").read_text())
    assert (
        table.num_rows == frame.height == stats["selected"] == stats["budget"] == round(0.25 * 4 * PER_GROUP)
    )
    assert table.column("id").to_pylist() == frame["id"].to_list()
    assert {"id", "instruction", "input", "output", "cluster", "jsd"} <= set(frame.columns)
    assert pl.read_parquet(folder / "recovery_set.parquet")["output"].to_list() == frame["output"].to_list()
    meta = result.asset_materializations_for_node("recovery_set")[0].metadata
    assert meta["dagster/row_count"].value == table.num_rows and meta["budget"].value == stats["budget"]
    # the cluster map and the budget chart as markdown images (PNG data URIs) in the metadata
    for name in ("cluster_map", "cluster_budget"):
        md = meta[name].value
        assert md.startswith("![") and "data:image/png;base64," in md
        png = base64.b64decode(md.split("base64,", 1)[1].rstrip(")"))
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| cluster |" in meta["per_cluster"].value


@pytest.mark.slow
def test_selection_over_the_asset_tables_equals_a_full_run(materialised, tmp_path: Path) -> None:
    """run() given the embeddings and scores tables selects what it selects when it embeds by itself."""
    from sift import selection
    from sift.selection.config import SelectionConfig

    lake, _, _ = materialised
    inst = json.loads((lake / "select" / "instructions.json").read_text())["path"]
    cfg = SelectionConfig(budget=0.25, clusters=4)
    selection.run(inst, cfg, tmp_path / "full", scores=str(lake / "select" / "degradation_scores.parquet"))
    for name in ("selected.parquet", "clusters.parquet", "rejected.parquet", "stats.json"):
        assert (tmp_path / "full" / name).read_bytes() == (lake / "select" / "run" / name).read_bytes(), name


def test_configured_instructions_and_scores_table(tmp_path: Path) -> None:
    """Instructions from a configured file and degradation from a SCORES table (no model); a record without an
    instruction is rejected on read, an id missing from SCORES is rejected by the selection, and neither is
    exported; tampered run files fail the recovery set's checks."""
    import orjson
    import pyarrow as pa

    from sift.pipelines.demo_instructions import instructions

    rows = instructions(8)
    bad = {"id": "no-instruction", "output": "an answer to nothing"}
    path = tmp_path / "mine.jsonl"
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in [*rows, bad]))
    level = {"code": 0.3, "licence": 0.05, "timezone": 0.1, "unicode": 0.02}
    scored = rows[:-1]  # the last instruction has no score
    pq.write_table(
        pa.table({"id": [r["id"] for r in scored], "jsd": [level[r["group"]] for r in scored]}),
        tmp_path / "scores.parquet",
    )
    lake = tmp_path / "lake"
    config = {"budget": 8.0, "clusters": "4"}
    (tmp_path / "dagster").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster")) as instance:
        result = dg.materialize(
            ASSETS,
            instance=instance,
            resources={"lake": LakeResource(root=str(lake)), "engine": EngineResource(name="polars")},
            run_config={
                "ops": {
                    "selection_instructions": {"config": {"path": str(path)}},
                    "degradation_scores": {"config": {"scores": str(tmp_path / "scores.parquet")}},
                    "instruction_clusters": {"config": config},
                },
                "loggers": {"console": {"config": {"log_level": "WARNING"}}},
            },
        )
        assert result.success
        assert all(c.passed for c in result.get_asset_check_evaluations())
        # the checks look at the run's files: a selected id listed as rejected, and a budget below the selection,
        # fail them (blocking)
        run = lake / "select" / "run"
        first = pq.read_table(run / "selected.parquet").column("id")[0].as_py()
        rejected = pq.read_table(run / "rejected.parquet")
        row = pa.table(
            {c: [{"id": first, "reason": "listed for the test"}.get(c)] for c in rejected.column_names},
            schema=rejected.schema,
        )
        pq.write_table(pa.concat_tables([rejected, row]), run / "rejected.parquet")
        stats = json.loads((run / "stats.json").read_text())
        (run / "stats.json").write_text(json.dumps({**stats, "budget": stats["budget"] - 1}))
        again = dg.materialize(
            ASSETS,
            instance=instance,
            selection=["recovery_set"],
            resources={"lake": LakeResource(root=str(lake)), "engine": EngineResource(name="polars")},
            raise_on_error=False,
        )
        failed = {c.check_name: c.passed for c in again.get_asset_check_evaluations()}
        assert failed == {"within_budget": False, "no_rejected_id": False, "ids_in_instructions": True}
        assert not again.success  # blocking checks fail the run
    assert not (lake / "select" / "demo_instructions.jsonl").exists()
    assert not (lake / "select" / "demo_models").exists()  # no model trained when SCORES is given
    meta = result.asset_materializations_for_node("selection_instructions")[0].metadata
    assert (meta["usable"].value, meta["rejected_on_read"].value, meta["origin"].value) == (32, 1, "config")
    scores = pq.read_table(lake / "select" / "degradation_scores.parquet")
    scored = scores.filter(pc.is_null(scores.column("reason")))
    assert scores.num_rows == 32 and scored.num_rows == 31  # the unscored one is kept with its reason
    assert scored.column("tokens").null_count == 0  # tokens counted by the embedder
    selected = pq.read_table(lake / "select" / "recovery_set" / "recovery_set.parquet")
    rejected = pq.read_table(lake / "select" / "run" / "rejected.parquet").to_pylist()
    assert selected.num_rows == 8
    assert {r["reason"].split(":")[0] for r in rejected} >= {"no degradation score"}
    assert rows[-1]["id"] not in selected.column("id").to_pylist()
    # the most degraded group (code) gets the largest share of the budget
    groups = [i.split("-")[0] for i in selected.column("id").to_pylist()]
    assert max(set(groups), key=groups.count) == "code"
