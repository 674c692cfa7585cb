"""Containment assets (issue 4): statistics, graph and plan materialise on a demo lake derived from real
documents, and the plan's checks (kept containers, verified recipes) pass."""

from __future__ import annotations

import json

import dagster as dg
import pyarrow.compute as pc
import pyarrow.parquet as pq

from sift.assets.containment import ASSETS, deletion_plan
from sift.pipelines.demo_corpus import write_demo_tables
from sift.pipelines.resources import EngineResource, LakeResource


def test_assets_materialise_with_checks(tmp_path, real_docs):
    raw = tmp_path / "raw_documents"
    raw.mkdir()
    docs = real_docs.slice(0, 600)
    for source in sorted(set(docs.column("source").to_pylist())):
        pq.write_table(docs.filter(pc.equal(docs.column("source"), source)), raw / f"{source}.parquet")
    write_demo_tables(
        docs.select(["id", "source", "text"]), tmp_path / "tables" / "demo"
    )  # as `sift demo` does
    result = dg.materialize(
        [*ASSETS],
        resources={"lake": LakeResource(root=str(tmp_path)), "engine": EngineResource(name="polars")},
    )
    assert result.success
    checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    assert checks == {"deleted_tables_have_kept_container": True, "every_recipe_verified": True}
    out = tmp_path / "containment"
    edges = pq.read_table(out / "containment.parquet")
    pairs = set(
        zip(edges.column("contained").to_pylist(), edges.column("container").to_pylist(), strict=True)
    )
    assert ("demo/long_documents", "demo/documents") in pairs
    assert ("demo/word_counts_float", "demo/documents") in pairs
    assert ("demo/near_miss", "demo/documents") not in pairs
    assert ("demo/sample", "demo/documents") in pairs
    skipped = pq.read_table(out / "skipped.parquet").column("table").to_pylist()
    assert "demo/README.txt" in skipped
    mats = {m.asset_key.to_user_string(): m for m in result.get_asset_materialization_events()}
    assert set(mats) == {"table_statistics", "containment_graph", "deletion_plan"}
    plan_meta = result.asset_materializations_for_node(deletion_plan.op.name)[0].metadata
    plan = pq.read_table(out / "deletion_plan.parquet").to_pylist()
    deleted = [r for r in plan if r["action"] == "delete"]
    assert deleted and plan_meta["deleted"].value == len(deleted)
    assert plan_meta["bytes_total"].value == sum(r["bytes"] for r in plan)
    # the hand-off between the graph and plan assets is JSON; nothing in the output folder is a pickle
    assert json.loads((out / "containment_result.json").read_text())["schema_version"] == 1
    assert not [p for p in out.rglob("*") if p.is_file() and p.read_bytes()[:1] == b"\x80"]
