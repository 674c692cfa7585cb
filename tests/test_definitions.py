"""The Dagster code location loads, every job resolves, and raw_documents materialises on a real instance."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
import pytest


def test_definitions_load_and_every_job_resolves() -> None:
    from sift.pipelines.definitions import defs

    defs.validate_loadable(defs)
    repo = defs.get_repository_def()
    named = {job.name for job in repo.get_all_jobs() if not job.name.startswith("__")}
    stage_jobs = {"ingest_job", "dedup_job", "containment_job", "select_job", "sampling_job"}
    assert stage_jobs | {"curate_job"} <= named
    keys = {k.to_user_string() for k in defs.resolve_asset_graph().materializable_asset_keys}
    assert {
        "raw_documents",
        "deduplicated_documents",
        "deletion_plan",
        "recovery_set",
        "curated_export",
        "recovery_export",
    } <= keys

    def job_assets(name: str) -> set[str]:
        return {k.to_user_string() for k in defs.resolve_job_def(name).asset_layer.executable_asset_keys}

    # ingest_job is the raw group alone; curate_job every asset not partitioned by source (tests/test_automation.py)
    assert job_assets("ingest_job") == {"raw_documents"}
    graph = defs.resolve_asset_graph()
    partitioned = {k.to_user_string() for k in graph.materializable_asset_keys if graph.get(k).is_partitioned}
    assert {"raw_documents", "dedup_signatures"} <= partitioned
    assert job_assets("curate_job") == keys - partitioned


def test_the_graph_says_what_every_asset_is() -> None:
    from sift.pipelines.definitions import defs

    graph = defs.resolve_asset_graph()
    groups: dict[str, set[str]] = {}
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        name = key.to_user_string()
        groups.setdefault(node.group_name, set()).add(name)
        assert node.owners == ["team:data-platform"], name
        assert node.kinds, name
        assert (node.description or "").strip(), name
    assert set(groups) == {"raw", "dedup", "containment", "select", "sampling", "exports", "report"}
    assert groups["exports"] == {"curated_export", "recovery_export"}
    # per source where the stage is per source; a Spark-backed partitioned asset backfills in one run
    partitioned = {k.to_user_string() for k in graph.materializable_asset_keys if graph.get(k).partitions_def}
    assert partitioned == {"raw_documents", "dedup_signatures"}
    raw = defs.get_assets_def("raw_documents")
    assert raw.backfill_policy == dg.BackfillPolicy.single_run()

    def parents(name: str) -> set[str]:
        return {k.to_user_string() for k in graph.get(dg.AssetKey(name)).parent_keys}

    # the exports read the mixture / recovery set and the stats of the runs that produced them
    assert parents("curated_export") == {
        "sampled_mixture",
        "sample_allocation",
        "duplicate_clusters",
        "raw_documents",
    }
    assert parents("recovery_export") == {"recovery_set", "instruction_clusters"}
    assert parents("deletion_plan") == {"containment_graph", "lake_tables"}


@pytest.mark.parametrize("env", ["local", "cluster"])
def test_resources_per_environment(env: str, monkeypatch, tmp_path: Path) -> None:
    from sift.pipelines.resources import resources_for

    monkeypatch.setenv("SIFT_SPARK_MASTER", "spark://127.0.0.1:7077")
    monkeypatch.setenv("SIFT_LAKE_ROOT", str(tmp_path / "lake"))
    monkeypatch.setenv("SIFT_ENV", env)
    for resources in (resources_for(env), resources_for()):  # explicit, and chosen by SIFT_ENV
        assert resources["lake"].root == str(tmp_path / "lake")
        assert resources["lake"].path("raw_documents") == f"{tmp_path / 'lake'}/raw_documents"
        engine = resources["engine"]
        if env == "cluster":
            assert (engine.name, engine.spark_master) == ("spark", "spark://127.0.0.1:7077")
        else:  # the local environment ignores the Spark master: the embedded engine, no cluster
            assert (engine.name, engine.spark_master) == ("polars", None)


def test_resources_defaults_and_unknown_environment(monkeypatch) -> None:
    from sift.pipelines.resources import resources_for

    for var in ("SIFT_ENV", "SIFT_LAKE_ROOT", "SIFT_SPARK_MASTER"):
        monkeypatch.delenv(var, raising=False)
    resources = resources_for()
    assert (resources["lake"].root, resources["engine"].name) == (".sift/lake", "polars")
    assert resources_for("cluster")["engine"].spark_master == "local[*]"
    monkeypatch.setenv("SIFT_ENV", "staging")
    with pytest.raises(ValueError, match="SIFT_ENV='staging'"):
        resources_for()


def test_raw_documents_materialises_with_checks_on_a_real_instance(tmp_path: Path) -> None:
    from sift.pipelines.definitions import defs
    from sift.pipelines.demo_corpus import write_demo_inputs
    from sift.pipelines.resources import SOURCES_PARTITIONS, EngineResource, LakeResource

    lake = tmp_path / "lake"
    write_demo_inputs(lake / "incoming", max_per_source=50)
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        instance.add_dynamic_partitions(SOURCES_PARTITIONS.name, ["python_docs"])
        result = dg.materialize(
            [*defs.assets, *(defs.asset_checks or [])],
            instance=instance,
            partition_key="python_docs",
            selection=["raw_documents"],
            resources={"lake": LakeResource(root=str(lake)), "engine": EngineResource(name="polars")},
        )
        assert result.success
        checks = result.get_asset_check_evaluations()
        assert {c.check_name for c in checks} == {"every_record_accounted", "ids_unique"}
        assert all(c.passed for c in checks)
        mat = result.asset_materializations_for_node("raw_documents")[0]
        docs = pq.read_table(lake / "raw_documents" / "python_docs.parquet")
        assert mat.metadata["dagster/row_count"].value == docs.num_rows > 0
        assert mat.metadata["quarantined"].value == 2  # the demo's cut record and record without text
        assert set(docs.column("source").to_pylist()) == {"python_docs"}


def test_dagster_cli_finds_the_code_location_from_the_project_root() -> None:
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    dagster = Path(sys.executable).with_name("dagster")
    proc = subprocess.run(
        [str(dagster), "definitions", "validate"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Validation successful for code location sift" in proc.stderr + proc.stdout
