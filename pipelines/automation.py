"""Dagster automation of the pipeline: jobs per stage and for the full curation, the curation schedule, the
incoming-files sensor, declarative automation of the stages downstream of ingest, and the `spark` pool.

- Jobs: one per stage group (`ingest_job` raw, `dedup_job`, `containment_job`, `select_job`, `sampling_job`, and a
  job per group that later stages add), and `curate_job`, the full curation: every asset that is not partitioned by
  source (dedup over all sources, containment, selection, sampling and what follows), so a run needs no partition
  key and a schedule can launch it. The per-source assets (`raw_documents`, `dedup_signatures`) run per partition
  through the sensor and the automation below.
- `curate_schedule`: `curate_job` daily at 03:00 UTC (stopped by default: a deployment turns it on in the UI).
- `incoming_files_sensor`: watches `<lake>/incoming/`; its cursor (JSON: source -> identity, a digest of the
  source's files with their sizes and modification times) makes each new or changed input ingested once: one run of
  `ingest_job` for that source's partition, with the identity in the run key. A source whose latest `raw_documents`
  materialisation is newer than its files (ingested by `sift demo` or by hand) is recorded without a run.
- Downstream stages follow new ingests through declarative automation (`AutomationCondition.eager()`) on every asset
  downstream of `raw_documents`, evaluated by `curation_automation_sensor`. Why not an asset sensor: the condition
  is per asset and per partition (a new source's `dedup_signatures` partition follows its own ingest), it waits for
  missing or in-progress parents (no dedup while a source's ingest still runs), and the UI explains every
  evaluation; an asset sensor would re-implement that by hand in a run request per event.
- Pools: the assets that run the engine (Spark on a cluster) declare `pool="spark"` in their decorators (Dagster
  1.13 sets an op's pool only there; `map_asset_specs` changes asset attributes, not the op's); the instance's
  `concurrency: pools:` settings (`POOL_INSTANCE_CONFIG`) limit the pool to one run at a time, at run granularity:
  the queued run coordinator keeps a second run that uses the pool queued until the first ends. Run rather than op
  granularity because a run's Spark application keeps its executors until the run's process ends, not only while
  one step runs, and because in-process runs (`sift demo`, `materialize()`) never wait on a slot that a killed
  process left claimed.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import dagster as dg
import fsspec

from sift.pipelines.resources import SOURCES_PARTITIONS, LakeResource

SPARK_POOL = "spark"
RAW = dg.AssetKey("raw_documents")
SCHEDULE_CRON = "0 3 * * *"  # daily at 03:00, after a night's incoming files
SCHEDULE_TIMEZONE = "UTC"
# The instance settings that limit the pool (dagster.yaml): one run using a pool at a time (the only pool is `spark`).
POOL_INSTANCE_CONFIG: dict[str, Any] = {"concurrency": {"pools": {"default_limit": 1, "granularity": "run"}}}


def stage_groups(assets: Sequence[Any]) -> list[str]:
    """The groups of the materialisable assets, in pipeline order (the order of `assets`)."""
    groups = [
        group
        for a in assets
        if isinstance(a, dg.AssetsDefinition) and a.is_materializable
        for group in a.group_names_by_key.values()
    ]
    return list(dict.fromkeys(groups))


def stage_jobs(assets: Sequence[Any]) -> list[dg.UnresolvedAssetJobDefinition]:
    """One job per stage group: `<group>_job` (the raw group's is `ingest_job`)."""
    return [
        dg.define_asset_job(
            "ingest_job" if group == "raw" else f"{group}_job",
            selection=dg.AssetSelection.groups(group),
            description=f"The assets of group `{group}`.",
        )
        for group in stage_groups(assets)
    ]


def curate_job(assets: Sequence[Any]) -> dg.UnresolvedAssetJobDefinition:
    """The full curation: every asset without source partitions (one run, no partition key)."""
    partitioned = [
        key for a in assets if isinstance(a, dg.AssetsDefinition) and a.partitions_def for key in a.keys
    ]
    return dg.define_asset_job(
        "curate_job",
        selection=dg.AssetSelection.all() - dg.AssetSelection.assets(*partitioned),
        description="The full curation over every ingested source: dedup, containment, selection, sampling and "
        "what follows. Per-source assets run through incoming_files_sensor and the automation.",
    )


def curate_schedule(job: dg.UnresolvedAssetJobDefinition) -> dg.ScheduleDefinition:
    """`job` daily at 03:00 UTC; stopped until someone turns it on."""
    return dg.ScheduleDefinition(
        name="curate_schedule",
        job=job,
        cron_schedule=SCHEDULE_CRON,
        execution_timezone=SCHEDULE_TIMEZONE,
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description="The full curation, daily at 03:00 UTC.",
    )


def _specs(assets: Sequence[Any]) -> list[dg.AssetSpec]:
    return [spec for a in assets for spec in (a.specs if isinstance(a, dg.AssetsDefinition) else [a])]


def follower_keys(assets: Sequence[Any]) -> set[dg.AssetKey]:
    """The assets that follow new ingests: every asset downstream of `raw_documents`."""
    children: dict[dg.AssetKey, set[dg.AssetKey]] = {}
    for spec in _specs(assets):
        for dep in spec.deps:
            children.setdefault(dep.asset_key, set()).add(spec.key)
    found: set[dg.AssetKey] = set()
    todo = [RAW]
    while todo:
        for child in children.get(todo.pop(), set()) - found:
            found.add(child)
            todo.append(child)
    return found


def with_automation(assets: Sequence[Any]) -> list[Any]:
    """The assets, those downstream of ingest with `AutomationCondition.eager()` (the asset modules unchanged)."""
    keys = follower_keys(assets)
    eager = dg.AutomationCondition.eager()
    return [
        a.with_attributes(automation_condition={k: eager for k in a.keys if k in keys})
        if isinstance(a, dg.AssetsDefinition) and keys & set(a.keys)
        else a
        for a in assets
    ]


def automation_sensor(assets: Sequence[Any]) -> dg.AutomationConditionSensorDefinition:
    """Evaluates the automation conditions of the assets downstream of ingest; on by default."""
    return dg.AutomationConditionSensorDefinition(
        "curation_automation_sensor",
        target=dg.AssetSelection.assets(*sorted(follower_keys(assets))),
        default_status=dg.DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=30,
        description="Requests the stages downstream of ingest when their inputs change.",
    )


def _timestamp(info: dict[str, Any]) -> float | None:
    """A file's modification time from fsspec's info (local `mtime`, object stores `LastModified`, ...)."""
    for field in ("mtime", "LastModified", "last_modified", "updated", "created"):
        value = info.get(field)
        if isinstance(value, datetime):
            return value.timestamp()
        if isinstance(value, int | float):
            return float(value)
    return None


def incoming_identities(lake: LakeResource) -> dict[str, tuple[str, float | None]]:
    """Per source in `<lake>/incoming/`: (identity, newest modification time). The identity is a digest of the
    source's files (relative path, size, modification time, ETag where the store has one); hidden and `_` names
    are skipped, like `LakeResource.sources`, so writers can write `.name.tmp` and rename it into place."""
    fs, base = fsspec.core.url_to_fs(lake.path("incoming"))
    if not fs.exists(base):
        return {}
    files: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for path, info in sorted(fs.find(base, detail=True, withdirs=False).items()):
        rel = os.path.relpath(path, base).replace(os.sep, "/")
        if any(part.startswith((".", "_")) for part in rel.split("/")):
            continue
        source = rel.split("/")[0].split(".")[0]
        if source:
            files.setdefault(source, []).append((rel, info))
    result: dict[str, tuple[str, float | None]] = {}
    for source, entries in files.items():
        digest = hashlib.sha256()
        times = []
        for rel, info in entries:
            mtime = _timestamp(info)
            times.append(mtime)
            etag = info.get("ETag") or info.get("etag") or info.get("md5Hash") or ""
            digest.update(f"{rel}\0{info.get('size')}\0{mtime}\0{etag}\n".encode())
        newest = None if None in times else max(t for t in times if t is not None)
        result[source] = (digest.hexdigest()[:16], newest)
    return result


def _ingested_at(instance: dg.DagsterInstance, source: str) -> float | None:
    """When the source's `raw_documents` partition was last materialised (None: never)."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=RAW, asset_partitions=[source]), limit=1
    ).records
    return records[0].timestamp if records else None


def incoming_files_sensor(job: dg.UnresolvedAssetJobDefinition) -> dg.SensorDefinition:
    """The sensor that ingests each new or changed input of `<lake>/incoming/` once, with `job` (ingest_job).

    On by default (`DefaultSensorStatus.RUNNING`) in the code rather than switched on by `sift demo`: a sensor's
    status lives in the instance that the daemon reads, so a code default reaches the demo's SQLite instance and a
    fresh deployment alike without writing instigator state from outside the daemon; the cursor and the check of
    the latest materialisation make it safe to start on a lake that is already ingested.
    """

    @dg.sensor(
        name="incoming_files_sensor",
        job=job,
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Ingests each new or changed input in <lake>/incoming/ once (cursor: source -> identity).",
    )
    def _sensor(context: dg.SensorEvaluationContext, lake: LakeResource) -> dg.SensorResult:
        seen: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
        current = incoming_identities(lake)
        known = set(context.instance.get_dynamic_partitions(SOURCES_PARTITIONS.name))
        requests = []
        for source, (identity, newest) in sorted(current.items()):
            if seen.get(source) == identity:
                continue
            ingested = _ingested_at(context.instance, source) if source in known else None
            if ingested is not None and newest is not None and ingested >= newest:
                context.log.info(f"{source}: already ingested after its last change; recorded, no run")
                continue
            requests.append(
                dg.RunRequest(
                    partition_key=source,
                    run_key=f"ingest-{source}-{identity}",
                    tags={"sift/source": source, "sift/input_identity": identity},
                )
            )
        new_sources = sorted(s for s in current if s not in known)
        register = [SOURCES_PARTITIONS.build_add_request(new_sources)] if new_sources else []
        cursor = {source: identity for source, (identity, _) in current.items()}
        return dg.SensorResult(
            run_requests=requests,
            cursor=json.dumps(cursor, sort_keys=True),
            dynamic_partitions_requests=register,
        )

    return _sensor
