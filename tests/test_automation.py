"""Automation of the code location (pipelines/automation.py) on real Dagster instances: the incoming-files sensor
requests one ingest run per new or changed input and none on the next tick, the stages downstream of ingest follow
it through their automation conditions, the jobs select their stages, the schedule and the `spark` pool."""

from __future__ import annotations

import json
import os
import time
import warnings
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml

from sift.pipelines.automation import POOL_INSTANCE_CONFIG, SPARK_POOL
from sift.pipelines.definitions import defs
from sift.pipelines.resources import SOURCES_PARTITIONS, EngineResource, LakeResource


def _write_jsonl(path: Path, n: int, start: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        for i in range(start, start + n):
            record = {"id": f"d{i}", "text": f"document number {i} about sensors and cursors"}
            f.write(json.dumps(record) + "\n")


class Ticks:
    """Evaluates the sensor tick after tick on a real instance, carrying its cursor and applying its partition
    requests as the sensor daemon does."""

    def __init__(self, instance: dg.DagsterInstance, lake: LakeResource) -> None:
        self.instance, self.lake, self.cursor = instance, lake, None
        self.sensor = defs.get_sensor_def("incoming_files_sensor")

    def tick(self) -> list[dg.RunRequest]:
        with dg.build_sensor_context(
            instance=self.instance, cursor=self.cursor, resources={"lake": self.lake}
        ) as context:  # closed after the tick, as the daemon closes it
            result = self.sensor(context)
        assert isinstance(result, dg.SensorResult)
        for request in result.dynamic_partitions_requests or []:
            assert isinstance(request, dg.AddDynamicPartitionsRequest)
            self.instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
        self.cursor = result.cursor
        return list(result.run_requests or [])


def _ingest(instance: dg.DagsterInstance, lake: LakeResource, source: str) -> None:
    result = dg.materialize(
        list(defs.assets or []),
        instance=instance,
        partition_key=source,
        selection=["raw_documents"],
        resources={"lake": lake, "engine": EngineResource(name="polars")},
    )
    assert result.success


def test_sensor_requests_one_run_per_new_file_and_none_on_the_next_tick(tmp_path: Path) -> None:
    lake = LakeResource(root=str(tmp_path / "lake"))
    incoming = tmp_path / "lake" / "incoming"
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        ticks = Ticks(instance, lake)
        assert ticks.tick() == []  # no incoming folder yet

        _write_jsonl(incoming / "forum.jsonl", 3)
        first = ticks.tick()
        assert [r.partition_key for r in first] == ["forum"]
        assert first[0].run_key is not None and first[0].run_key.startswith("ingest-forum-")
        assert instance.get_dynamic_partitions(SOURCES_PARTITIONS.name) == ["forum"]
        assert ticks.tick() == []  # the next tick: nothing new

        # a second new file: one more run, for it alone; files being written under a dot name are not inputs
        _write_jsonl(incoming / "wiki.jsonl", 2)
        _write_jsonl(incoming / ".news.jsonl.tmp", 2)
        second = ticks.tick()
        assert [r.partition_key for r in second] == ["wiki"]
        assert ticks.tick() == []

        # a changed file is a new version of its source: ingested once more, under a new run key
        _write_jsonl(incoming / "forum.jsonl", 1, start=3)
        stat = (incoming / "forum.jsonl").stat()
        os.utime(incoming / "forum.jsonl", (stat.st_atime, stat.st_mtime + 5))
        changed = ticks.tick()
        assert [r.partition_key for r in changed] == ["forum"]
        assert changed[0].run_key != first[0].run_key
        assert ticks.tick() == []
        assert sorted(instance.get_dynamic_partitions(SOURCES_PARTITIONS.name)) == ["forum", "wiki"]


def test_sensor_run_ingests_and_a_fresh_cursor_skips_what_is_ingested(tmp_path: Path) -> None:
    lake = LakeResource(root=str(tmp_path / "lake"))
    incoming = tmp_path / "lake" / "incoming"
    _write_jsonl(incoming / "forum.jsonl", 4)
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        ticks = Ticks(instance, lake)
        (request,) = ticks.tick()
        assert request.partition_key is not None
        _ingest(instance, lake, request.partition_key)  # the requested run, for real
        assert (tmp_path / "lake" / "raw_documents" / "forum.parquet").exists()
        assert ticks.tick() == []

        # the sensor reset (a new deployment of the same instance, or `sift demo` ingested first): the source's
        # latest materialisation is newer than its file, so it is recorded without a run
        fresh = Ticks(instance, lake)
        assert fresh.tick() == []
        assert fresh.cursor is not None and "forum" in json.loads(fresh.cursor)

        # once the file changes after that ingest, it is requested again
        stat = (incoming / "forum.jsonl").stat()
        os.utime(incoming / "forum.jsonl", (stat.st_atime, time.time() + 5))
        assert [r.partition_key for r in fresh.tick()] == ["forum"]


def test_sensor_is_on_by_default_and_targets_ingest_job() -> None:
    sensor = defs.get_sensor_def("incoming_files_sensor")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert sensor.job_name == "ingest_job"
    automation = defs.get_sensor_def("curation_automation_sensor")
    assert automation.default_status == dg.DefaultSensorStatus.RUNNING


def test_downstream_stages_follow_a_new_ingest(tmp_path: Path) -> None:
    warnings.simplefilter("ignore", dg.BetaWarning)  # the tester selects source assets, a beta parameter
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        instance.add_dynamic_partitions(SOURCES_PARTITIONS.name, ["forum", "wiki"])
        result = dg.evaluate_automation_conditions(defs=defs, instance=instance)
        assert result.total_requested == 0  # the first evaluation only takes stock

        def after(key: str | None, partition: str | None = None) -> dict[str, set[Any]]:
            nonlocal result
            if key:
                instance.report_runless_asset_event(dg.AssetMaterialization(key, partition=partition))
            result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=result.cursor)
            return {
                r.key.to_user_string(): result.get_requested_partitions(r.key)
                for r in result.results
                if result.get_num_requested(r.key)
            }

        # an ingest of one source: that source's signatures, nothing that still waits for them
        assert after("raw_documents", "forum") == {"dedup_signatures": {"forum"}}
        assert after(None) == {}
        # dedup over all sources waits while a registered source is not ingested yet
        assert after("dedup_signatures", "forum") == {}
        assert after("raw_documents", "wiki") == {"dedup_signatures": {"wiki"}}
        # the last signatures: dedup over all sources and everything downstream of it, in one request
        assert after("dedup_signatures", "wiki") == {
            "duplicate_clusters": {None},
            "deduplicated_documents": {None},
            "sample_allocation": {None},
            "sampled_mixture": {None},
            "curated_export": {None},  # the exports follow the mixture
        }
        assert after(None) == {}


def test_automation_conditions_only_downstream_of_ingest() -> None:
    graph = defs.resolve_asset_graph()
    raw = dg.AssetKey("raw_documents")
    downstream = dg.AssetSelection.assets(raw).downstream(include_self=False).resolve(graph)
    for key in graph.materializable_asset_keys:
        condition = graph.get(key).automation_condition
        if key in downstream:
            assert condition is not None and condition.get_label() == "eager", key
        else:
            assert condition is None, key
    assert {"dedup_signatures", "deduplicated_documents", "sampled_mixture"} <= {
        k.to_user_string() for k in downstream
    }


def _job_keys(name: str) -> set[str]:
    return {k.to_user_string() for k in defs.resolve_job_def(name).asset_layer.executable_asset_keys}


def test_jobs_per_stage_and_the_full_curation_select_the_right_assets() -> None:
    graph = defs.resolve_asset_graph()
    by_group: dict[str, set[str]] = {}
    for key in graph.materializable_asset_keys:
        group = graph.get(key).group_name
        by_group.setdefault(group, set()).add(key.to_user_string())
    assert {"raw", "dedup", "containment", "select", "sampling"} <= set(by_group)
    for group, keys in by_group.items():
        assert _job_keys("ingest_job" if group == "raw" else f"{group}_job") == keys
    assert _job_keys("ingest_job") == {"raw_documents"}
    assert _job_keys("dedup_job") == {"dedup_signatures", "duplicate_clusters", "deduplicated_documents"}

    partitioned = {k.to_user_string() for k in graph.materializable_asset_keys if graph.get(k).is_partitioned}
    assert partitioned == {"raw_documents", "dedup_signatures"}
    all_keys = {k.to_user_string() for k in graph.materializable_asset_keys}
    assert _job_keys("curate_job") == all_keys - partitioned
    assert defs.resolve_job_def("curate_job").partitions_def is None  # a schedule launches it without a key


def test_curation_schedule_runs_the_full_curation_daily_in_utc() -> None:
    schedule = defs.get_schedule_def("curate_schedule")
    assert schedule.job_name == "curate_job"
    assert (schedule.cron_schedule, schedule.execution_timezone) == ("0 3 * * *", "UTC")
    with dg.instance_for_test() as instance:
        with dg.build_schedule_context(instance=instance, scheduled_execution_time=None) as context:
            data = schedule.evaluate_tick(context)
        assert data.run_requests is not None and len(data.run_requests) == 1


def test_spark_heavy_assets_share_the_spark_pool() -> None:
    graph = defs.resolve_asset_graph()
    for assets_def in graph.assets_defs:
        if not assets_def.is_executable:
            continue
        uses_engine = "engine" in assets_def.required_resource_keys
        assert (assets_def.node_def.pools == {SPARK_POOL}) == uses_engine, assets_def.keys
    pooled = {
        k.to_user_string() for a in graph.assets_defs if a.is_executable and a.node_def.pools for k in a.keys
    }
    assert {"raw_documents", "duplicate_clusters", "containment_graph", "instruction_clusters"} <= pooled


def test_pool_limit_in_the_demo_instance(tmp_path: Path) -> None:
    from sift.pipelines.demo import DEFAULT_INSTANCE_YAML

    assert yaml.safe_load(DEFAULT_INSTANCE_YAML)["concurrency"] == POOL_INSTANCE_CONFIG["concurrency"]
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text(DEFAULT_INSTANCE_YAML)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        pools = instance.get_concurrency_config().pool_config
        assert pools.default_pool_limit == 1
        assert pools.pool_granularity is not None and pools.pool_granularity.value == "run"
        # in-process runs (`sift demo`) of a pooled asset run on that instance without waiting for a slot
        lake = LakeResource(root=str(tmp_path / "lake"))
        _write_jsonl(tmp_path / "lake" / "incoming" / "forum.jsonl", 2)
        instance.add_dynamic_partitions(SOURCES_PARTITIONS.name, ["forum"])
        _ingest(instance, lake, "forum")


@pytest.mark.parametrize("name", ["ingest_job", "curate_job"])
def test_jobs_resolve_with_their_pools(name: str) -> None:
    job = defs.resolve_job_def(name)
    assert SPARK_POOL in {pool for node in job.graph.node_defs for pool in node.pools}


@pytest.mark.slow
def test_sensor_through_the_daemon_ingests_a_dropped_file_once(tmp_path: Path) -> None:
    """The real path: `dagster-daemon` on a fresh instance ticks the sensor (on by default), which registers the
    source and requests one ingest run; the run ingests the file; the ticks after it request nothing."""
    import subprocess
    import sys

    home, lake = tmp_path / "home", tmp_path / "lake"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    _write_jsonl(lake / "incoming" / "forum.jsonl", 5)
    env = {**os.environ, "DAGSTER_HOME": str(home), "SIFT_LAKE_ROOT": str(lake), "SIFT_ENV": "local"}
    with dg.DagsterInstance.from_config(
        str(home)
    ) as instance:  # create the SQLite storages before the daemon
        instance.get_runs(limit=1)
        instance.all_instigator_state()
    daemon_exe = Path(sys.executable).with_name("dagster-daemon")
    log = (tmp_path / "daemon.log").open("w")
    daemon = subprocess.Popen(
        [str(daemon_exe), "run", "-m", "sift.pipelines.definitions"],
        cwd=Path(__file__).resolve().parents[1],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        with dg.DagsterInstance.from_config(str(home)) as instance:

            def sensor_runs() -> list[dg.DagsterRun]:
                return list(
                    instance.get_runs(dg.RunsFilter(tags={"dagster/sensor_name": "incoming_files_sensor"}))
                )

            deadline = time.monotonic() + 240
            while time.monotonic() < deadline:
                runs = sensor_runs()
                if runs and runs[0].is_finished:
                    break
                time.sleep(2)
            (run,) = sensor_runs()
            assert run.status == dg.DagsterRunStatus.SUCCESS, (tmp_path / "daemon.log").read_text()[-3000:]
            assert run.job_name == "ingest_job" and run.tags["dagster/partition"] == "forum"
            assert (lake / "raw_documents" / "forum.parquet").exists()
            # the sensor ticks every 30 s: after two more intervals still the one run
            time.sleep(65)
            assert len(sensor_runs()) == 1
            # and the automation followed the ingest: the new source's signatures were requested
            follow = instance.get_runs(dg.RunsFilter(tags={"dagster/from_automation_condition": "true"}))
            assert any(
                r.tags.get("dagster/partition") == "forum"
                and dg.AssetKey("dedup_signatures") in (r.asset_selection or set())
                for r in follow
            ), [(r.tags, r.asset_selection) for r in follow]
    finally:
        os.killpg(daemon.pid, 15)
        daemon.wait(timeout=60)
        log.close()
