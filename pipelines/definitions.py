"""The Dagster code location: every asset and check, jobs, a sensor that discovers sources, resources per env."""

from __future__ import annotations

import dagster as dg

from sift.pipelines import pipes
from sift.pipelines.resources import SOURCES_PARTITIONS, LakeResource, resources_for
from sift.pipelines.stages import assets_and_checks

ASSETS, CHECKS = assets_and_checks()
ASSETS += pipes.ASSETS  # cluster runs through Dagster Pipes (spark-submit)

ingest_job = dg.define_asset_job("ingest_job", selection=dg.AssetSelection.groups("raw"))
curate_job = dg.define_asset_job(
    "curate_job", selection=dg.AssetSelection.all() - dg.AssetSelection.groups("raw")
)


@dg.sensor(job=ingest_job, minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.STOPPED)
def incoming_sources_sensor(context: dg.SensorEvaluationContext, lake: LakeResource) -> dg.SensorResult:
    """Register every source found in the lake's `incoming/` folder and ingest the new ones."""
    known = set(context.instance.get_dynamic_partitions(SOURCES_PARTITIONS.name))
    new = [s for s in lake.sources() if s not in known]
    return dg.SensorResult(
        run_requests=[dg.RunRequest(partition_key=s, run_key=f"ingest-{s}") for s in new],
        dynamic_partitions_requests=[SOURCES_PARTITIONS.build_add_request(new)] if new else [],
    )


defs = dg.Definitions(
    assets=ASSETS,
    asset_checks=CHECKS,
    jobs=[ingest_job, curate_job],
    sensors=[incoming_sources_sensor],
    resources=resources_for(),
)
