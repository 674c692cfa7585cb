"""Issue 14, cluster runs: the dedup assets on a real standalone Spark cluster through the engine resource give the
Polars run's content, and `dedup_on_cluster` spark-submits `sift dedup` to that cluster through Dagster Pipes, its
counts, report and log lines coming back to the Dagster run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow.dataset as ds
import pytest

DEDUP_ASSETS = ["dedup_signatures", "duplicate_clusters", "deduplicated_documents"]
REMOVED = ["id", "reason", "duplicate_of", "similarity"]


def _rows(path: Path, columns: list[str]) -> list[tuple[Any, ...]]:
    """The rows of a Parquet file or a Spark folder of part files, sorted."""
    t = ds.dataset(path, format="parquet").to_table(columns=columns)
    return sorted(zip(*(t.column(c).to_pylist() for c in columns), strict=True), key=repr)


def _home(path: Path) -> str:
    path.mkdir(parents=True, exist_ok=True)
    return str(path)


def _demo_lake(lake: Path) -> list[str]:
    from sift.pipelines.demo_corpus import write_demo_inputs

    return sorted(write_demo_inputs(lake / "incoming", max_per_source=40))


def _materialise_dedup(instance: dg.DagsterInstance, sources: list[str], resources: dict[str, Any]) -> None:
    """raw_documents and dedup_signatures per source, then duplicate_clusters and deduplicated_documents."""
    from sift.pipelines.definitions import defs
    from sift.pipelines.resources import SOURCES_PARTITIONS

    assets = [*defs.assets, *(defs.asset_checks or [])]
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
    result = dg.materialize(
        assets,
        instance=instance,
        selection=["duplicate_clusters", "deduplicated_documents"],
        resources=resources,
    )
    assert result.success


# Run in a subprocess: one process holds one SparkContext, and the test session may hold a local one.
CLUSTER_RUN = textwrap.dedent(
    """
    import importlib.util
    import sys
    import dagster as dg
    from sift.pipelines.resources import EngineResource, LakeResource

    spec = importlib.util.spec_from_file_location("test_cluster_runs", sys.argv[4])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    _materialise_dedup = module._materialise_dedup

    lake, master, sources = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
    resources = {"lake": LakeResource(root=lake), "engine": EngineResource(name="spark", spark_master=master)}
    with dg.DagsterInstance.get() as instance:
        _materialise_dedup(instance, sources, resources)
    """
)


@pytest.mark.spark_cluster
@pytest.mark.slow
def test_dedup_assets_on_standalone_cluster_match_polars(spark_cluster: str, tmp_path: Path) -> None:
    from sift.pipelines.resources import EngineResource, LakeResource

    polars_lake, cluster_lake = tmp_path / "polars", tmp_path / "cluster"
    sources = _demo_lake(polars_lake)
    assert _demo_lake(cluster_lake) == sources
    with dg.instance_for_test(temp_dir=_home(tmp_path / "polars-home")) as instance:
        resources = {"lake": LakeResource(root=str(polars_lake)), "engine": EngineResource(name="polars")}
        _materialise_dedup(instance, sources, resources)

    home = tmp_path / "dagster-home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "PYSPARK_PYTHON": sys.executable,
    }
    proc = subprocess.run(
        [sys.executable, "-c", CLUSTER_RUN, str(cluster_lake), spark_cluster, ",".join(sources), __file__],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]

    # the runs are in the real instance, every step succeeded, and the clusters were computed on the cluster
    with dg.DagsterInstance.from_config(str(home)) as instance:
        runs = instance.get_runs()
        assert len(runs) == len(sources) + 1
        assert all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs)
        mat = instance.get_latest_materialization_event(dg.AssetKey("duplicate_clusters"))
        assert mat is not None and mat.asset_materialization is not None
    assert json.loads((cluster_lake / "dedup" / "run" / "timings.json").read_text())["engine"] == "spark"

    p, c = polars_lake / "dedup", cluster_lake / "dedup"
    assert _rows(c / "run" / "kept.parquet", ["id"]) == _rows(p / "run" / "kept.parquet", ["id"])
    assert _rows(c / "run" / "removed.parquet", REMOVED) == _rows(p / "run" / "removed.parquet", REMOVED)
    assert json.loads((c / "run" / "stats.json").read_text()) == json.loads(
        (p / "run" / "stats.json").read_text()
    )
    kept = ["id", "source", "text"]
    assert _rows(c / "deduplicated_documents.parquet", kept) == _rows(
        p / "deduplicated_documents.parquet", kept
    )
    assert len(_rows(p / "run" / "removed.parquet", ["id"])) > 0


@pytest.mark.spark_cluster
@pytest.mark.slow
def test_pipes_spark_submit_to_standalone_cluster(spark_cluster: str, tmp_path: Path) -> None:
    from sift.pipelines import pipes
    from sift.pipelines.definitions import defs
    from sift.pipelines.resources import SOURCES_PARTITIONS, EngineResource, LakeResource

    lake = tmp_path / "lake"
    sources = _demo_lake(lake)
    submit = {
        "master": spark_cluster,
        "conf": {"spark.ui.enabled": "false", "spark.driver.host": "127.0.0.1"},
        "env": {"SPARK_LOCAL_IP": "127.0.0.1"},
    }
    run_config = {"ops": {"dedup_on_cluster": {"config": {"submit": submit}}}}
    resources = {"lake": LakeResource(root=str(lake)), "engine": EngineResource(name="polars")}
    assets = [*defs.assets, *pipes.ASSETS, *(defs.asset_checks or [])]  # pipes: in the cluster env's location
    with dg.instance_for_test(temp_dir=_home(tmp_path / "home")) as instance:
        instance.add_dynamic_partitions(SOURCES_PARTITIONS.name, sources)
        for source in sources:
            ingest = dg.materialize(
                assets,
                instance=instance,
                partition_key=source,
                selection=["raw_documents"],
                resources=resources,
            )
            assert ingest.success
        polars = dg.materialize(
            assets, instance=instance, selection=["duplicate_clusters"], resources=resources
        )
        assert polars.success
        result = dg.materialize(
            assets,
            instance=instance,
            selection=["dedup_on_cluster"],
            resources=resources,
            run_config=run_config,
        )
        assert result.success

        # counts and the report, reported by the job on the driver, are the materialisation's metadata
        meta = result.asset_materializations_for_node("dedup_on_cluster")[0].metadata
        out = lake / "dedup_cluster"
        kept = _rows(out / "kept.parquet", ["id"])
        raw_rows = ds.dataset(lake / "raw_documents", format="parquet").count_rows()
        assert meta["dagster/row_count"].value == meta["kept"].value == len(kept)
        assert meta["rows_in"].value == raw_rows
        assert meta["kept"].value + meta["removed"].value + meta["quarantined"].value == raw_rows
        assert "| **total** |" in meta["report"].value
        assert meta["report_path"].value == str(out / "report.md")
        assert json.loads((out / "timings.json").read_text())["engine"] == "spark"

        # the job's log lines are events of the Dagster run
        logs = [e.user_message for e in instance.all_logs(result.run_id)]
        assert any(f"sift dedup finished on {spark_cluster}" in m for m in logs), logs
        assert any(m.startswith("sift dedup ") and "--spark-master" in m for m in logs)
        # the stage's progress lines (the sift.dedup logger on the driver), forwarded through Pipes
        assert any(m.startswith("dedup: facts (documents hashed by the executors)") for m in logs), logs

    # the same content as the Polars run of duplicate_clusters on the same lake
    run = lake / "dedup" / "run"
    assert kept == _rows(run / "kept.parquet", ["id"])
    assert _rows(out / "removed.parquet", REMOVED) == _rows(run / "removed.parquet", REMOVED)


def test_spark_submit_command_ships_the_job_script(monkeypatch) -> None:
    import pyspark

    from sift.pipelines.pipes import SparkSubmit
    from sift.pipelines.spark_job import path as job_path

    monkeypatch.delenv("SPARK_HOME", raising=False)
    monkeypatch.setenv("SIFT_SPARK_MASTER", "spark://10.0.0.1:7077")
    submit = SparkSubmit(conf={"spark.ui.enabled": "false"}, env={"SPARK_LOCAL_IP": "127.0.0.1"})
    assert submit.command(["dedup", "in", "--output", "out"]) == [
        str(Path(pyspark.__file__).parent / "bin" / "spark-submit"),
        "--master",
        "spark://10.0.0.1:7077",
        "--deploy-mode",
        "client",
        "--conf",
        "spark.ui.enabled=false",
        job_path(),
        "dedup",
        "in",
        "--output",
        "out",
    ]
    assert submit.environment() == {
        "PYSPARK_PYTHON": sys.executable,
        "PYSPARK_DRIVER_PYTHON": sys.executable,
        "SPARK_LOCAL_IP": "127.0.0.1",
    }


def test_job_reports_the_output_counts_and_report(tmp_path: Path, sift_cli) -> None:
    from sift.pipelines.spark_job import output_metadata

    docs = _demo_lake(tmp_path)
    assert docs
    out = tmp_path / "out"
    proc = sift_cli("dedup", str(tmp_path / "incoming"), "--output", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    stats = json.loads((out / "stats.json").read_text())
    meta = output_metadata(str(out))
    assert (meta["rows_in"], meta["kept"], meta["removed"]) == (
        stats["rows_in"],
        stats["kept"],
        stats["removed"],
    )
    assert meta["dagster/row_count"] == stats["kept"]
    assert meta["removed_by_reason"] == {"raw_value": stats["removed_by_reason"], "type": "json"}
    assert (
        "| **total** |" in meta["report"]["raw_value"]
        and "cluster_sizes.png" not in meta["report"]["raw_value"]
    )
    assert meta["report_path"]["raw_value"] == str(out / "report.md")
    assert output_metadata(str(tmp_path / "missing")) == {
        "output": {"raw_value": str(tmp_path / "missing"), "type": "path"}
    }
