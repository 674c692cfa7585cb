"""Issue 13 in Dagster: the allocation across sources and the sampled mixture materialise on a real instance
downstream of the deduplicated demo documents (ngram-lm proxy, group = source), with their checks passing and the
fitted curves as metadata."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq


def test_sampling_assets_materialise_with_checks(tmp_path: Path) -> None:
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
                selection=["raw_documents"],
                resources=resources,
            )
            assert result.success
        result = dg.materialize(
            assets,
            instance=instance,
            selection=["duplicate_clusters", "deduplicated_documents"],
            resources=resources,
        )
        assert result.success
        run_config = {
            "ops": {
                "sample_allocation": {
                    "config": {"budget": 120.0, "pilot": 10, "rounds": 2, "costs": {sources[0]: 2.0}}
                }
            }
        }
        result = dg.materialize(
            assets,
            instance=instance,
            selection=["sample_allocation", "sampled_mixture"],
            resources=resources,
            run_config=run_config,
        )
        assert result.success
        checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
        assert checks == {"budget_respected": True, "sampled_ids_in_pool": True}
        meta = result.asset_materializations_for_node("sample_allocation")[0].metadata
        allocation = meta["allocation"].value
        assert set(allocation) == set(sources)
        assert meta["spent"].value <= 120.0
        curves = meta["curves"].value
        assert curves.startswith("![learning curves per source](") and curves.endswith("curves.png)")
        assert os.path.isfile(curves[curves.index("(") + 1 : -1])
        assert "| round |" in meta["report"].value
        mixture = pq.read_table(lake / "sampling" / "sampled_documents.parquet")
        assert mixture.num_rows == sum(allocation.values())
        pool = pq.read_table(lake / "dedup" / "deduplicated_documents.parquet")
        assert set(mixture.column_names) == set(pool.column_names)
        assert set(mixture.column("id").to_pylist()) <= set(pool.column("id").to_pylist())
