"""Issue 3 (SlimPajama-DC dedup) in Dagster: signatures per source, duplicate clusters and the deduplicated
documents materialise on a real instance over ingested demo sources, with their checks passing."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq


def test_dedup_assets_materialise_with_checks(tmp_path: Path) -> None:
    from sift.pipelines.definitions import defs
    from sift.pipelines.demo_corpus import write_demo_inputs
    from sift.pipelines.resources import SOURCES_PARTITIONS, EngineResource, LakeResource

    lake = tmp_path / "lake"
    sources = sorted(write_demo_inputs(lake / "incoming", max_per_source=120))
    resources = {"lake": LakeResource(root=str(lake)), "engine": EngineResource(name="polars")}
    assets = [*defs.assets, *(defs.asset_checks or [])]
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        instance.add_dynamic_partitions(SOURCES_PARTITIONS.name, sources)
        for source in sources:
            result = dg.materialize(
                assets,
                instance=instance,
                partition_key=source,
                selection=["raw_documents", "dedup_signatures"],
                resources=resources,
            )
            assert result.success
            mat = result.asset_materializations_for_node("dedup_signatures")[0]
            raw = pq.read_table(lake / "raw_documents" / f"{source}.parquet")
            assert mat.metadata["dagster/row_count"].value == raw.num_rows
        result = dg.materialize(
            assets,
            instance=instance,
            selection=["duplicate_clusters", "deduplicated_documents"],
            resources=resources,
        )
        assert result.success
        checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
        assert checks == {
            "every_row_accounted_once": True,
            "kept_ids_unique": True,
            "duplicate_of_is_kept": True,
        }
        clusters = result.asset_materializations_for_node("duplicate_clusters")[0].metadata
        assert clusters["clusters"].value > 0 and "| **total** |" in clusters["report"].value
        assert clusters["signatures_reused"].value == sources  # the signatures edge carries the facts
        kept = pq.read_table(lake / "dedup" / "deduplicated_documents.parquet")
        raw_total = sum(pq.read_table(lake / "raw_documents" / f"{s}.parquet").num_rows for s in sources)
        removed = pq.read_table(lake / "dedup" / "run" / "removed.parquet")
        assert kept.num_rows + removed.num_rows == raw_total and removed.num_rows > 0
        doc_mat = result.asset_materializations_for_node("deduplicated_documents")[0]
        assert doc_mat.metadata["dagster/row_count"].value == kept.num_rows
