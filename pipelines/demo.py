"""`sift demo`: the main job on the embedded default, recorded in a real Dagster instance.

Writes the offline demo corpus into `<lake>/incoming/`, registers its sources as partitions, materialises every
partitioned asset once per source, writes the demo's tables for containment (derived from the ingested documents)
into the lake's tables folder, `<lake>/tables/demo/`, then materialises every other asset, with the checks, on the
Polars engine. The last of them, `curation_report`, writes the HTML report whose path `sift demo` prints last
(`report_file`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
from rich.console import Console

from sift.pipelines import pipes
from sift.pipelines.demo_corpus import write_demo_inputs, write_demo_tables
from sift.pipelines.resources import SOURCES_PARTITIONS, EngineResource, LakeResource

DEFAULT_INSTANCE_YAML = """\
# Sift's local Dagster instance: SQLite storage in this folder (see deploy/dagster.yaml for Postgres).
telemetry:
  enabled: false
# One run at a time in the `spark` pool (pipelines/automation.py POOL_INSTANCE_CONFIG); the queued run coordinator
# of `sift ui` enforces it.
concurrency:
  pools:
    default_limit: 1
    granularity: run
"""


def run_demo(lake_root: Path, dagster_home: Path, console: Console | None = None) -> list[dict[str, Any]]:
    """Materialise every asset of the code location on the demo corpus; return one summary row per run."""
    from sift.pipelines.definitions import defs

    console = console or Console(stderr=True)
    dagster_home.mkdir(parents=True, exist_ok=True)
    instance_yaml = dagster_home / "dagster.yaml"
    if not instance_yaml.exists():
        instance_yaml.write_text(DEFAULT_INSTANCE_YAML)
    os.environ["DAGSTER_HOME"] = str(dagster_home)
    lake_root.mkdir(parents=True, exist_ok=True)
    console.print(f"writing the demo corpus to {lake_root / 'incoming'}")
    sources = sorted(write_demo_inputs(lake_root / "incoming", max_per_source=None))

    instance = dg.DagsterInstance.get()
    known = set(instance.get_dynamic_partitions(SOURCES_PARTITIONS.name))
    instance.add_dynamic_partitions(SOURCES_PARTITIONS.name, [s for s in sources if s not in known])

    quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
    resources: dict[str, Any] = {
        "lake": LakeResource(root=str(lake_root)),
        "engine": EngineResource(name="polars"),
    }
    graph = defs.resolve_asset_graph()
    assets = list(defs.assets or []) + list(defs.asset_checks or [])
    # the cluster group's assets spark-submit to a cluster (sift.pipelines.pipes): not the embedded default's
    ordered = [
        k
        for k in graph.toposorted_asset_keys
        if k in graph.materializable_asset_keys and graph.get(k).group_name != pipes.GROUP
    ]
    partitioned = [k for k in ordered if graph.get(k).partitions_def is not None]
    unpartitioned = [k for k in ordered if graph.get(k).partitions_def is None]
    summary: list[dict[str, Any]] = []
    for source in sources:
        console.print(
            f"materialising {', '.join(k.to_user_string() for k in partitioned)} for source {source}"
        )
        result = dg.materialize(
            assets,
            instance=instance,
            resources=resources,
            partition_key=source,
            selection=partitioned,
            run_config=quiet,
        )
        summary.append(_row(f"{result.run_id[:8]} ({source})", partitioned, result))
    tables = write_demo_lake_tables(resources["lake"])
    console.print(f"writing {len(tables)} demo tables for containment to {os.path.dirname(tables[0])}")
    if unpartitioned:
        console.print(f"materialising {', '.join(k.to_user_string() for k in unpartitioned)}")
        result = dg.materialize(
            assets, instance=instance, resources=resources, selection=unpartitioned, run_config=quiet
        )
        summary.append(_row(result.run_id[:8], unpartitioned, result))
    return summary


def report_file(lake_root: Path) -> Path | None:
    """The curation report the demo's `curation_report` asset wrote (`<lake>/report/curation_report.html`), or
    None when it was not written."""
    from sift.pipelines.curation_report import report_path

    path = Path(report_path(str(lake_root)))
    return path if path.exists() else None


def write_demo_lake_tables(lake: LakeResource) -> list[str]:
    """The demo's tables for containment, derived from every source's ingested documents
    (`<lake>/raw_documents/*.parquet`), written under the lake's tables folder (`demo/`); returns the files
    written."""
    folder = Path(lake.local("raw_documents", stage="demo"))
    parts = sorted(str(p) for p in folder.glob("*.parquet"))
    if not parts:
        raise FileNotFoundError(f"no raw documents under {folder}: materialise raw_documents first")
    docs = pa.concat_tables([pq.read_table(p).select(["id", "source", "text"]) for p in parts])
    return write_demo_tables(docs, f"{lake.tables_path('demo')}/demo")


def _row(run: str, keys: list[dg.AssetKey], result: dg.ExecuteInProcessResult) -> dict[str, Any]:
    """One summary row per run: its assets with their row counts, and how many checks passed."""
    rows: dict[str, Any] = {}
    for key in keys:
        for mat in result.asset_materializations_for_node(key.to_python_identifier()):
            if "dagster/row_count" in mat.metadata:
                rows[mat.asset_key.to_user_string()] = mat.metadata["dagster/row_count"].value
    checks = result.get_asset_check_evaluations()
    failed = [c.check_name for c in checks if not c.passed]
    named = [
        f"{k.to_user_string()} ({rows[k.to_user_string()]:,} rows)"
        if k.to_user_string() in rows
        else k.to_user_string()
        for k in keys
    ]
    return {
        "run": run,
        "assets": ", ".join(named),
        "checks": f"{len(checks) - len(failed)}/{len(checks)} passed"
        + (f"; failed: {', '.join(failed)}" if failed else ""),
        "success": result.success and not failed,
    }
