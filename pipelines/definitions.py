"""The Dagster code location: every asset and check, the jobs, schedule and sensors of pipelines/automation.py
(with the automation conditions of the stages downstream of ingest), resources per environment."""

from __future__ import annotations

import dagster as dg

from sift.pipelines.automation import (
    automation_sensor,
    curate_job,
    curate_schedule,
    incoming_files_sensor,
    stage_jobs,
    with_automation,
)
from sift.pipelines.resources import resources_for
from sift.pipelines.stages import assets_and_checks

ASSETS, CHECKS = assets_and_checks()
ASSETS = with_automation(ASSETS)

STAGE_JOBS = stage_jobs(ASSETS)
ingest_job = next(job for job in STAGE_JOBS if job.name == "ingest_job")
CURATE_JOB = curate_job(ASSETS)

defs = dg.Definitions(
    assets=ASSETS,
    asset_checks=CHECKS,
    jobs=[*STAGE_JOBS, CURATE_JOB],
    schedules=[curate_schedule(CURATE_JOB)],
    sensors=[incoming_files_sensor(ingest_job), automation_sensor(ASSETS)],
    resources=resources_for(),
)
