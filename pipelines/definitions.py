"""The Dagster code location: every asset and check, the jobs, schedule and sensors of pipelines/automation.py
(with the automation conditions of the stages downstream of ingest), resources per environment, and in the cluster
environment the Dagster Pipes asset of pipelines/pipes.py."""

from __future__ import annotations

import os

import dagster as dg

from sift.pipelines import pipes
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
CURATE_JOB = curate_job(ASSETS)
# In the cluster environment the code location also offers `dedup_on_cluster`: `sift dedup` spark-submitted through
# Dagster Pipes to a cluster Dagster does not manage. It is launched on purpose (its own `cluster_job`), never by the
# automation or the full curation, and the embedded default (SIFT_ENV=local) leaves it out.
if os.environ.get("SIFT_ENV", "local") == "cluster":
    ASSETS = [*ASSETS, *pipes.ASSETS]

STAGE_JOBS = stage_jobs(ASSETS)
ingest_job = next(job for job in STAGE_JOBS if job.name == "ingest_job")

defs = dg.Definitions(
    assets=ASSETS,
    asset_checks=CHECKS,
    jobs=[*STAGE_JOBS, CURATE_JOB],
    schedules=[curate_schedule(CURATE_JOB)],
    sensors=[incoming_files_sensor(ingest_job), automation_sensor(ASSETS)],
    resources=resources_for(),
)
