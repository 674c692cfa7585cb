"""Materialising single assets locally, the three ways the README's "Materialising assets locally" shows: in pytest
with `dg.materialize()` (the upstream assets' files already in the lake, nothing else recomputed), with
`dagster asset materialize -m sift.pipelines.definitions --select ...` and with `dg launch --assets ...` (both as
subprocesses against a temporary DAGSTER_HOME). The lake is a small demo lake built once by the real stages:
ingest (every source in one run, the single-run backfill of `raw_documents`), dedup, sampling."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow  # the module's demo lake runs ingest, dedup and sampling once (about a minute)


@dataclass
class DemoLake:
    lake: Path
    home: Path
    instance: dg.DagsterInstance
    sources: list[str]

    def resources(self) -> dict:
        from sift.pipelines.resources import EngineResource, LakeResource

        return {"lake": LakeResource(root=str(self.lake)), "engine": EngineResource(name="polars")}

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "DAGSTER_HOME": str(self.home),
            "SIFT_LAKE_ROOT": str(self.lake),
            "SIFT_ENV": "local",
        }


def _assets() -> list:
    from sift.pipelines.definitions import defs

    return [*defs.assets, *(defs.asset_checks or [])]


@pytest.fixture(scope="module")
def demo_lake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoLake]:
    from sift.pipelines.demo_corpus import write_demo_inputs
    from sift.pipelines.resources import SOURCES_PARTITIONS

    base = tmp_path_factory.mktemp("local")
    home = base / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    lake = base / "lake"
    sources = sorted(write_demo_inputs(lake / "incoming", max_per_source=60))
    instance = dg.DagsterInstance.from_config(str(home))
    try:
        demo = DemoLake(lake, home, instance, sources)
        instance.add_dynamic_partitions(SOURCES_PARTITIONS.name, sources)
        # every source in one run: what a single-run backfill of raw_documents launches
        ingest = dg.materialize(
            _assets(),
            instance=instance,
            selection=["raw_documents"],
            resources=demo.resources(),
            tags={
                "dagster/asset_partition_range_start": sources[0],
                "dagster/asset_partition_range_end": sources[-1],
            },
        )
        assert ingest.success
        mats = ingest.asset_materializations_for_node("raw_documents")
        assert sorted(m.partition for m in mats) == sources
        assert all(c.passed for c in ingest.get_asset_check_evaluations())
        sample_config = {"budget": 60.0, "pilot": 10, "rounds": 2}
        result = dg.materialize(
            _assets(),
            instance=instance,
            selection=[
                "duplicate_clusters",
                "deduplicated_documents",
                "sample_allocation",
                "sampled_mixture",
            ],
            resources=demo.resources(),
            run_config={"ops": {"sample_allocation": {"config": sample_config}}},
        )
        assert result.success
        yield demo
    finally:
        instance.dispose()


def _manifest(lake: Path) -> dict:
    return json.loads((lake / "exports" / "curated" / "current" / "manifest.json").read_text())


def test_dg_materialize_one_asset_with_its_upstream_from_the_lake(demo_lake: DemoLake) -> None:
    from sift.pipelines.core.export import verify

    lake = demo_lake.lake
    result = dg.materialize(
        _assets(),
        instance=demo_lake.instance,
        selection=["curated_export"],
        resources=demo_lake.resources(),
        run_config={"ops": {"curated_export": {"config": {"max_rows": 25}}}},
    )
    assert result.success
    assert [e.asset_key.to_user_string() for e in result.get_asset_materialization_events()] == [
        "curated_export"
    ]
    assert {c.check_name: c.passed for c in result.get_asset_check_evaluations()} == {
        "manifest_matches_shards": True
    }
    manifest = _manifest(lake)
    mixture = pq.read_table(lake / "sampling" / "sampled_documents.parquet")
    assert manifest["run_id"] == result.run_id and manifest["rows"] == mixture.num_rows > 0
    assert all(e["rows"] <= 25 for e in manifest["shards"]["parquet"])
    assert [f["name"] for f in manifest["schema"]] == mixture.column_names
    dedup = json.loads((lake / "dedup" / "run" / "stats.json").read_text())
    sample = json.loads((lake / "sampling" / "run" / "stats.json").read_text())
    quarantined = sum(
        pq.read_metadata(p).num_rows for p in (lake / "raw_documents" / "_quarantine").iterdir()
    )
    assert manifest["removed"]["ingest_quarantined"] == quarantined > 0
    assert manifest["removed"]["dedup_removed"] == dedup["removed"]
    assert manifest["removed"]["sample_not_drawn"] == sample["not_sampled"]
    assert manifest["stages"]["dedup"]["config"] == dedup["config"]
    assert manifest["stages"]["sample"]["config"]["budget"] == 60.0
    # each upstream asset's latest run, with that run's config of the asset
    assert manifest["upstream"]["sample_allocation"]["run_config"] == {
        "budget": 60.0,
        "pilot": 10,
        "rounds": 2,
    }
    runs = {manifest["upstream"][k]["run_id"] for k in ("duplicate_clusters", "sampled_mixture")}
    assert all(demo_lake.instance.get_run_by_id(r).is_success for r in runs)
    assert verify(lake / "exports" / "curated") == []


def _run(cmd: list[str], demo_lake: DemoLake) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        cmd, cwd=ROOT, env=demo_lake.env(), capture_output=True, text=True, timeout=600, check=False
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    return proc


def test_dagster_asset_materialize_cli(demo_lake: DemoLake) -> None:
    dagster = str(Path(sys.executable).with_name("dagster"))
    cmd = [dagster, "asset", "materialize", "-m", "sift.pipelines.definitions", "--select", "curated_export"]
    _run([*cmd, "--config-json", '{"ops": {"curated_export": {"config": {"max_rows": 20}}}}'], demo_lake)
    manifest = _manifest(demo_lake.lake)
    assert manifest["limits"]["max_rows"] == 20
    run = demo_lake.instance.get_run_by_id(
        manifest["run_id"]
    )  # the run recorded in the DAGSTER_HOME instance
    assert run is not None and run.is_success
    assert run.asset_selection == {dg.AssetKey("curated_export")}

    # a partitioned asset: one source
    before = (demo_lake.lake / "raw_documents" / f"{demo_lake.sources[0]}.parquet").stat().st_mtime_ns
    cmd = [dagster, "asset", "materialize", "-m", "sift.pipelines.definitions"]
    _run([*cmd, "--select", "raw_documents", "--partition", demo_lake.sources[0]], demo_lake)
    assert (demo_lake.lake / "raw_documents" / f"{demo_lake.sources[0]}.parquet").stat().st_mtime_ns > before


def test_dg_launch_assets(demo_lake: DemoLake) -> None:
    dg_cli = str(Path(sys.executable).with_name("dg"))
    # from the project root: `dg` finds the code location in pyproject.toml's [tool.dg.project]
    _run([dg_cli, "launch", "--assets", "curated_export"], demo_lake)
    run = demo_lake.instance.get_run_by_id(_manifest(demo_lake.lake)["run_id"])
    assert run is not None and run.is_success
    assert run.asset_selection == {dg.AssetKey("curated_export")}

    # every source in one run: a partition range needs the single-run backfill policy raw_documents has
    sources = demo_lake.sources
    proc = _run(
        [dg_cli, "launch", "--assets", "raw_documents", "--partition-range", f"{sources[0]}...{sources[-1]}"],
        demo_lake,
    )
    runs = demo_lake.instance.get_runs(limit=1)
    assert runs[0].is_success and runs[0].asset_selection == {dg.AssetKey("raw_documents")}, proc.stderr[
        -2000:
    ]
    events = demo_lake.instance.all_logs(runs[0].run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
    assert sorted(e.dagster_event.partition for e in events if e.dagster_event) == sources
