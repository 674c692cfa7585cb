"""Issue 14's curation report: the `curation_report` asset on a real Dagster instance writes one self-contained HTML
file (every picture inlined, no external URL, no script) with a section per stage, and puts the per-stage counts
and the key pictures in its metadata as markdown; a lake where some stages did not run still gives a report, with
those sections marked "not run yet"."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from sift.pipelines.curation_report import build_report, render_html, render_markdown, report_path
from sift.pipelines.resources import SOURCES_PARTITIONS, EngineResource, LakeResource

SECTIONS = ("ingest", "dedup", "containment", "select", "sample")
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
PNG = b"\x89PNG\r\n\x1a\n"


def _assets() -> list[Any]:
    from sift.pipelines.definitions import defs

    return [*defs.assets, *(defs.asset_checks or [])]


def _resources(lake: Path) -> dict[str, Any]:
    return {"lake": LakeResource(root=str(lake)), "engine": EngineResource(name="polars")}


def _ingest_and_dedup(instance: dg.DagsterInstance, lake: Path) -> list[str]:
    from sift.pipelines.demo_corpus import write_demo_inputs

    sources = sorted(write_demo_inputs(lake / "incoming", max_per_source=80))
    instance.add_dynamic_partitions(SOURCES_PARTITIONS.name, sources)
    for source in sources:
        result = dg.materialize(
            _assets(),
            instance=instance,
            partition_key=source,
            selection=["raw_documents"],
            resources=_resources(lake),
            run_config=QUIET,
        )
        assert result.success
    result = dg.materialize(
        _assets(),
        instance=instance,
        selection=["duplicate_clusters", "deduplicated_documents"],
        resources=_resources(lake),
        run_config=QUIET,
    )
    assert result.success
    return sources


def _materialise_report(instance: dg.DagsterInstance, lake: Path) -> dict[str, Any]:
    result = dg.materialize(
        _assets(),
        instance=instance,
        selection=["curation_report"],
        resources=_resources(lake),
        run_config=QUIET,
    )
    assert result.success
    event = instance.get_latest_materialization_event(dg.AssetKey("curation_report"))
    assert event is not None and event.asset_materialization is not None  # recorded in the instance
    return dict(event.asset_materialization.metadata)


def _sections(page: str) -> dict[str, str]:
    """Each `<section id=...>`'s HTML."""
    return dict(re.findall(r'<section id="([a-z]+)">(.*?)</section>', page, flags=re.S))


def _check_self_contained(page: str) -> list[bytes]:
    """The page fetches nothing: no external URL anywhere, no script, no stylesheet link; every src and href is a
    data URI or an anchor. Returns the inlined images' bytes."""
    assert "http://" not in page and "https://" not in page
    assert "<script" not in page and "<link" not in page and "@import" not in page
    refs = re.findall(r'\b(?:src|href)\s*=\s*"([^"]*)"', page)
    assert refs and all(r.startswith(("data:image/png;base64,", "#")) for r in refs), refs
    images = [base64.b64decode(r.split(",", 1)[1]) for r in refs if r.startswith("data:")]
    assert all(img.startswith(PNG) for img in images)
    return images


def test_report_of_an_empty_lake_says_not_run_yet(tmp_path: Path) -> None:
    report = build_report(str(tmp_path / "lake"))
    assert [s.key for s in report.sections] == list(SECTIONS) and not any(s.ran for s in report.sections)
    page = render_html(report)
    sections = _sections(page)
    assert all("Not run yet" in sections[k] for k in SECTIONS)
    assert [row[3] for row in report.stage_counts] == ["not run yet"] * len(SECTIONS)
    assert "*Not run yet*" in render_markdown(report)


def test_report_asset_on_a_lake_where_later_stages_did_not_run(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    (tmp_path / "dagster").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster")) as instance:
        sources = _ingest_and_dedup(instance, lake)
        meta = _materialise_report(instance, lake)

    html_path = Path(report_path(str(lake)))
    assert meta["html"].value == str(html_path) and html_path.parent == lake / "report"
    assert [p.name for p in html_path.parent.iterdir()] == ["curation_report.html"]  # one file, no temporary
    page = html_path.read_text()
    images = _check_self_contained(page)
    assert len(images) == 2  # dedup rates by source, cluster-size histogram
    sections = _sections(page)
    assert set(sections) == {"stages", *SECTIONS}
    for key in ("containment", "select", "sample"):
        assert "Not run yet" in sections[key]
    for key in ("ingest", "dedup"):
        assert "Not run yet" not in sections[key]
    stats = json.loads((lake / "dedup" / "run" / "stats.json").read_text())
    assert all(s in sections["dedup"] and s in sections["ingest"] for s in sources)
    assert f"{stats['kept']:,}" in sections["dedup"]
    assert meta["stages_run"].value == ["Ingest", "Dedup (SlimPajama)"]
    markdown = meta["report"].value
    assert markdown.count("](data:image/png;base64,") == 2 and "*Not run yet*" in markdown
    assert "| dedup | " + f"{stats['documents']:,} | {stats['kept']:,} |" in markdown
    records = meta["stage_counts"].value.records
    assert [r.data["stage"] for r in records] == list(SECTIONS)


@pytest.mark.slow
def test_report_asset_after_the_whole_graph(tmp_path: Path) -> None:
    """Every stage materialised on small demo data (as `sift demo` does, smaller), then the report holds every
    section with its numbers and pictures."""
    pytest.importorskip("sentence_transformers")
    from sift.pipelines.demo import write_demo_lake_tables

    lake = tmp_path / "lake"
    (tmp_path / "dagster").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster")) as instance:
        _ingest_and_dedup(instance, lake)
        write_demo_lake_tables(LakeResource(root=str(lake)))
        run_config = {
            "ops": {
                "selection_instructions": {"config": {"demo_per_group": 10}},
                "instruction_clusters": {"config": {"budget": 0.25, "clusters": "4"}},
                "sample_allocation": {"config": {"budget": 60.0, "pilot": 8, "rounds": 2}},
            },
            **QUIET,
        }
        result = dg.materialize(
            _assets(),
            instance=instance,
            selection=dg.AssetSelection.all()
            - dg.AssetSelection.groups("raw", "report")
            - dg.AssetSelection.assets("duplicate_clusters", "deduplicated_documents", "dedup_signatures"),
            resources=_resources(lake),
            run_config=run_config,
        )
        assert result.success
        meta = _materialise_report(instance, lake)

    page = Path(meta["html"].value).read_text()
    images = _check_self_contained(page)
    # dedup rates + cluster sizes, containment graph, cluster map + budgets, curves + allocation
    assert len(images) == 7
    sections = _sections(page)
    assert not any("Not run yet" in sections[k] for k in SECTIONS)
    for key, alt in [
        ("dedup", "dedup rates by source"),
        ("dedup", "cluster sizes"),
        ("containment", "containment graph"),
        ("select", "cluster map"),
        ("select", "budget per cluster"),
        ("sample", "learning curves"),
        ("sample", "allocation per round"),
    ]:
        assert f'alt="{alt}"' in sections[key]
    plan = [r for r in build_report(str(lake)).sections if r.key == "containment"][0]
    assert dict(plan.counts)["tables deleted"] != "0"
    assert "demo/documents_copy" in sections["containment"]  # a deleted table, with its container
    select_stats = json.loads((lake / "select" / "run" / "stats.json").read_text())
    sample_stats = json.loads((lake / "sampling" / "run" / "stats.json").read_text())
    assert f"{select_stats['selected']:,} of {select_stats['rows_in']:,} instructions" in sections["select"]
    assert f"{sample_stats['sampled']:,} documents drawn" in sections["sample"]
    markdown = meta["report"].value
    assert markdown.count("](data:image/png;base64,") == 7
    assert meta["stages_not_run"].value == []
