"""The curation report: what every stage did to the lake, as pictures and a few numbers (issue 14).

Built from the stage outputs in a local lake, not from Dagster (this module imports no Dagster; the asset
`curation_report` in assets/report.py calls it and puts the markdown in its metadata):

- ingest: `<lake>/raw_documents/<source>.parquet` and `_quarantine/<source>.parquet` (rows from the footers);
- dedup (SlimPajama-DC): `<lake>/dedup/run/stats.json` (per-source removal by reason, cluster-size histogram) and
  `cluster_sizes.png`; the removal rates by source are drawn here as a bar chart;
- containment (R2D2): `<lake>/containment/containment.parquet` (edges), `deletion_plan.parquet` (keep / delete
  per table) and `stats.json`; the graph is drawn here, deleted tables marked;
- selection (PASER): `<lake>/select/run/stats.json`, `cluster_map.png`, `cluster_budget.png`;
- sampling (equitable sampling): `<lake>/sampling/run/stats.json`, `curves.png`, `allocation.png`.

A stage whose outputs are not in the lake gets a "not run yet" section. `write_report` writes one self-contained
HTML file (CSS inline, every picture a base64 PNG data URI, no script, no external URL) atomically to
`<lake>/report/curation_report.html` (beside `<lake>/exports/`, which its own asset replaces whole).
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow.parquet as pq

from sift.pipelines.core.atomic import write_text

REPORT_PATH = ("report", "curation_report.html")  # under the lake root

REASONS = ("too_short", "exact_duplicate", "near_duplicate")


@dataclass
class Image:
    """A picture of a section: PNG bytes, its alt text and a caption."""

    alt: str
    png: bytes
    caption: str = ""

    def data_uri(self) -> str:
        return "data:image/png;base64," + base64.b64encode(self.png).decode()


@dataclass
class Section:
    """One stage's part of the report; `ran` is False when its outputs are not in the lake."""

    key: str
    title: str
    ran: bool
    summary: str = ""
    counts: list[tuple[str, str]] = field(default_factory=list)  # (what, value) rows
    table: tuple[list[str], list[list[str]]] | None = None  # (header, rows), e.g. per source
    images: list[Image] = field(default_factory=list)
    missing: str = ""  # what is not in the lake, for a section that did not run


@dataclass
class Report:
    """Every section, and the per-stage counts table (stage, in, out, note)."""

    lake: str
    sections: list[Section]
    stage_counts: list[tuple[str, str, str, str]]


def _read_json(path: str) -> dict[str, Any] | None:
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return dict(json.load(f))


def _png_file(path: str, alt: str, caption: str = "") -> list[Image]:
    if not os.path.exists(path):
        return []
    with open(path, "rb") as f:
        return [Image(alt, f.read(), caption)]


def _fig_png(fig: Any) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _n(v: Any) -> str:
    if isinstance(v, float) and not v.is_integer():
        return f"{v:,.4g}"
    return f"{int(v):,}" if isinstance(v, (int, float)) else str(v)


def _pct(part: float, whole: float) -> str:
    return f"{100.0 * part / whole:.1f}%" if whole else "-"


# --- ingest -------------------------------------------------------------------------------------------------


def _ingest(root: str) -> Section:
    folder = os.path.join(root, "raw_documents")
    files = sorted(f for f in os.listdir(folder) if f.endswith(".parquet")) if os.path.isdir(folder) else []
    if not files:
        return Section("ingest", "Ingest", False, missing=f"no raw documents under {folder}")
    rows = []
    total_docs = total_q = 0
    for f in files:
        source = f.removesuffix(".parquet")
        docs = pq.ParquetFile(os.path.join(folder, f)).metadata.num_rows
        qpath = os.path.join(folder, "_quarantine", f)
        quarantined = pq.ParquetFile(qpath).metadata.num_rows if os.path.exists(qpath) else 0
        total_docs += docs
        total_q += quarantined
        rows.append([source, _n(docs), _n(quarantined)])
    rows.append(["**total**", _n(total_docs), _n(total_q)])
    return Section(
        "ingest",
        "Ingest",
        True,
        summary=f"{len(files)} sources ingested into the documents contract; unreadable records quarantined.",
        counts=[
            ("sources", _n(len(files))),
            ("records", _n(total_docs + total_q)),
            ("documents", _n(total_docs)),
            ("quarantined", _n(total_q)),
        ],
        table=(["source", "documents", "quarantined"], rows),
    )


# --- dedup ----------------------------------------------------------------------------------------------------


def dedup_rates_chart(stats: dict[str, Any]) -> bytes:
    """Share of each source's documents removed, by reason (stacked horizontal bars, percent)."""
    plt = _pyplot()
    per_source = stats["per_source"]
    names = list(per_source)
    fig, ax = plt.subplots(figsize=(7, 0.5 * len(names) + 1.6))
    left = [0.0] * len(names)
    for i, reason in enumerate(REASONS):
        vals = [
            100.0 * per_source[s]["removed"].get(reason, 0) / per_source[s]["documents"]
            if per_source[s]["documents"]
            else 0.0
            for s in names
        ]
        ax.barh(names, vals, left=left, color=f"C{i}", label=reason.replace("_", " "))
        left = [a + b for a, b in zip(left, vals, strict=True)]
    for y, total in enumerate(left):
        ax.text(total + 0.5, y, f"{total:.1f}%", va="center", fontsize=8)
    ax.set_xlabel("documents removed (% of the source)")
    ax.set_xlim(0, max([*left, 1.0]) * 1.15 + 1)
    ax.invert_yaxis()
    ax.set_title("Dedup: removal rate by source and reason")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return _fig_png(fig)


def _dedup(root: str) -> Section:
    run = os.path.join(root, "dedup", "run")
    stats = _read_json(os.path.join(run, "stats.json"))
    if stats is None:
        return Section("dedup", "Dedup (SlimPajama)", False, missing=f"no {run}/stats.json")
    rows = []
    for source, v in stats["per_source"].items():
        removed = v["removed"]
        rows.append(
            [source, _n(v["documents"])]
            + [_pct(removed.get(r, 0), v["documents"]) for r in REASONS]
            + [_pct(sum(removed.values()), v["documents"]), _n(v["kept"])]
        )
    cfg = stats.get("config", {})
    clusters = stats["clusters"]
    return Section(
        "dedup",
        "Dedup (SlimPajama)",
        True,
        summary=f"Mode {cfg.get('mode', '?')}, scope {cfg.get('scope', '?')}, Jaccard threshold "
        f"{cfg.get('threshold', '?')}: {_n(stats['kept'])} of {_n(stats['documents'])} documents kept.",
        counts=[
            ("documents", _n(stats["documents"])),
            ("kept", _n(stats["kept"])),
            *[(f"removed: {r.replace('_', ' ')}", _n(stats["removed_by_reason"].get(r, 0))) for r in REASONS],
            ("quarantined", _n(stats.get("quarantined", 0))),
            ("duplicate clusters", _n(clusters["count"])),
            ("largest cluster", _n(clusters["largest"])),
        ],
        table=(["source", "documents", "too short", "exact dup", "near dup", "removed", "kept"], rows),
        images=[Image("dedup rates by source", dedup_rates_chart(stats), "Removal rate by source and reason")]
        + _png_file(os.path.join(run, "cluster_sizes.png"), "cluster sizes", "Duplicate cluster sizes"),
    )


# --- containment ----------------------------------------------------------------------------------------------


def containment_chart(tables: list[str], edges: list[tuple[str, str]], deleted: set[str]) -> bytes:
    """The containment graph: tables as nodes on a circle (in name order, so the same lake gives the same
    picture), an arrow from each contained table to its container; tables the plan deletes in red, kept ones in
    blue. Drawn with matplotlib alone."""
    import math

    from matplotlib.lines import Line2D

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 6.5))
    n = len(tables)
    pos = {
        t: (math.cos(math.pi / 2 - 2 * math.pi * i / n), math.sin(math.pi / 2 - 2 * math.pi * i / n))
        for i, t in enumerate(tables)
    }
    for a, b in edges:
        if a in pos and b in pos and a != b:
            ax.annotate(
                "",
                xy=pos[b],
                xytext=pos[a],
                arrowprops={"arrowstyle": "-|>", "color": "#666", "lw": 1, "shrinkA": 11, "shrinkB": 11},
            )
    for t, (x, y) in pos.items():
        ax.scatter([x], [y], s=320, color="#d62728" if t in deleted else "#1f77b4", zorder=3)
        ax.text(1.3 * x, 1.2 * y, t, ha="center", va="center", fontsize=8)
    if not tables:
        ax.text(0, 0, "no tables", ha="center", va="center")
    ax.legend(
        handles=[
            Line2D([], [], marker="o", ls="", color="#1f77b4", label="kept"),
            Line2D([], [], marker="o", ls="", color="#d62728", label="deleted (rebuilt by recipe)"),
        ],
        fontsize=8,
        loc="lower right",
        bbox_to_anchor=(1.0, -0.05),
    )
    ax.set_xlim(-1.6, 1.6)
    ax.set_ylim(-1.35, 1.35)
    ax.set_aspect("equal")
    ax.set_title("Containment: contained table -> container")
    ax.axis("off")
    fig.tight_layout()
    return _fig_png(fig)


def _containment(root: str) -> Section:
    out = os.path.join(root, "containment")
    edges_path = os.path.join(out, "containment.parquet")
    plan_path = os.path.join(out, "deletion_plan.parquet")
    if not os.path.exists(edges_path):
        return Section("containment", "Containment (R2D2)", False, missing=f"no {edges_path}")
    edges_t = pq.read_table(edges_path, columns=["contained", "container"])
    edges = list(
        zip(edges_t.column("contained").to_pylist(), edges_t.column("container").to_pylist(), strict=True)
    )
    result = _read_json(os.path.join(out, "containment_result.json")) or {}
    tables = sorted({r["name"] for r in result.get("refs", [])} | {t for e in edges for t in e})
    plan = pq.read_table(plan_path).to_pylist() if os.path.exists(plan_path) else []
    deleted = {r["table"] for r in plan if r["action"] == "delete"}
    stats = _read_json(os.path.join(out, "stats.json")) or {}
    counts = [("tables", _n(len(tables))), ("containment pairs", _n(len(edges)))]
    summary = f"{len(edges)} exact containments among {len(tables)} tables."
    table = None
    if plan:
        counts += [
            ("tables deleted", _n(len(deleted))),
            (
                "bytes deletable",
                _n(stats.get("bytes_deletable", sum(r["bytes"] for r in plan if r["table"] in deleted))),
            ),
            ("bytes of all tables", _n(stats.get("bytes_total", sum(r["bytes"] for r in plan)))),
        ]
        summary += f" The deletion plan deletes {len(deleted)} (each rebuilt exactly from a kept container)."
        rows = [
            [r["table"], str(r["reconstruct_from"]), _n(r["bytes"])] for r in plan if r["table"] in deleted
        ]
        table = (["deleted table", "rebuilt from", "bytes"], rows) if rows else None
    else:
        summary += " No deletion plan yet."
    return Section(
        "containment",
        "Containment (R2D2)",
        True,
        summary=summary,
        counts=counts,
        table=table,
        images=[Image("containment graph", containment_chart(tables, edges, deleted), "Containment graph")],
    )


# --- selection ------------------------------------------------------------------------------------------------


def _selection(root: str) -> Section:
    run = os.path.join(root, "select", "run")
    stats = _read_json(os.path.join(run, "stats.json"))
    if stats is None:
        return Section("select", "Recovery-data selection (PASER)", False, missing=f"no {run}/stats.json")
    info = stats.get("clusters") or {}
    per = info.get("per_cluster", [])
    rows = [
        [
            str(c["cluster"]),
            _n(c["size"]),
            f"{c['cds']:.4g}",
            _n(c["budget"]),
            _n(c["selected"]),
            _n(c["rejected"]),
        ]
        for c in per
    ]
    return Section(
        "select",
        "Recovery-data selection (PASER)",
        True,
        summary=f"Strategy {stats.get('strategy')}: {_n(stats['selected'])} of {_n(stats['rows_in'])} "
        f"instructions selected for a budget of {_n(stats['budget'])}"
        + (f", over {info.get('k')} clusters ({info.get('method')})." if info else "."),
        counts=[
            ("instructions", _n(stats["rows_in"])),
            ("pool", _n(stats["pool"])),
            ("budget", _n(stats["budget"])),
            ("selected", _n(stats["selected"])),
            ("rejected", _n(stats["rejected"])),
            *[(f"rejected: {k}", _n(v)) for k, v in stats.get("rejected_by_reason", {}).items()],
        ],
        table=(["cluster", "size", "mean JSD", "budget", "selected", "rejected"], rows) if rows else None,
        images=_png_file(os.path.join(run, "cluster_map.png"), "cluster map", "Instruction clusters (S2RIC)")
        + _png_file(os.path.join(run, "cluster_budget.png"), "budget per cluster", "Budget per cluster"),
    )


# --- sampling -------------------------------------------------------------------------------------------------


def _sampling(root: str) -> Section:
    run = os.path.join(root, "sampling", "run")
    stats = _read_json(os.path.join(run, "stats.json"))
    if stats is None:
        return Section("sample", "Equitable sampling", False, missing=f"no {run}/stats.json")
    final = stats["final"]
    rows = [
        [g, _n(v["pool"]), _n(v["cost"]), _n(final["allocation"].get(g, 0)), _n(final["errors"].get(g, 0.0))]
        for g, v in stats["groups"].items()
    ]
    return Section(
        "sample",
        "Equitable sampling",
        True,
        summary=f"Objective {stats.get('objective')}, strategy {stats.get('strategy')}: {_n(stats['sampled'])} "
        f"documents drawn over {len(stats['rounds'])} rounds, spent {_n(stats['spent'])} of {_n(stats['budget'])}.",
        counts=[
            ("pool", _n(stats["rows_in"])),
            ("sampled", _n(stats["sampled"])),
            ("budget", _n(stats["budget"])),
            ("spent", _n(stats["spent"])),
            ("rounds", _n(len(stats["rounds"]))),
            ("objective value", _n(float(final["loss"]))),
        ],
        table=(["source", "pool", "cost", "rows drawn", "validation error"], rows),
        images=_png_file(
            os.path.join(run, "curves.png"), "learning curves", "Fitted learning curves per source"
        )
        + _png_file(os.path.join(run, "allocation.png"), "allocation per round", "Allocation per round"),
    )


# --- the report -----------------------------------------------------------------------------------------------


def _stage_counts(sections: dict[str, Section], root: str) -> list[tuple[str, str, str, str]]:
    """One row per stage: what went in, what came out, and a note."""

    def value(key: str, what: str) -> str:
        return dict(sections[key].counts).get(what, "-")

    rows: list[tuple[str, str, str, str]] = []
    s = sections
    rows.append(
        (
            "ingest",
            value("ingest", "records"),
            value("ingest", "documents"),
            f"{value('ingest', 'quarantined')} quarantined",
        )
        if s["ingest"].ran
        else ("ingest", "-", "-", "not run yet")
    )
    rows.append(
        (
            "dedup",
            value("dedup", "documents"),
            value("dedup", "kept"),
            f"{value('dedup', 'duplicate clusters')} clusters",
        )
        if s["dedup"].ran
        else ("dedup", "-", "-", "not run yet")
    )
    rows.append(
        (
            "containment",
            f"{value('containment', 'tables')} tables",
            f"{value('containment', 'tables deleted')} deleted",
            f"{value('containment', 'containment pairs')} containment pairs",
        )
        if s["containment"].ran
        else ("containment", "-", "-", "not run yet")
    )
    rows.append(
        (
            "select",
            value("select", "instructions"),
            value("select", "selected"),
            f"budget {value('select', 'budget')}",
        )
        if s["select"].ran
        else ("select", "-", "-", "not run yet")
    )
    rows.append(
        (
            "sample",
            value("sample", "pool"),
            value("sample", "sampled"),
            f"spent {value('sample', 'spent')} of {value('sample', 'budget')}",
        )
        if s["sample"].ran
        else ("sample", "-", "-", "not run yet")
    )
    return rows


def build_report(lake_root: str) -> Report:
    """Every stage's section from the outputs in the lake at `lake_root` (a local folder)."""
    root = os.path.abspath(lake_root)
    sections = [_ingest(root), _dedup(root), _containment(root), _selection(root), _sampling(root)]
    by_key = {s.key: s for s in sections}
    return Report(root, sections, _stage_counts(by_key, root))


def _md_table(header: list[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


STAGE_HEADER = ["stage", "in", "out", "note"]


def render_markdown(report: Report, *, images: bool = True) -> str:
    """The report as markdown (Dagster metadata): the per-stage counts, then each section with its pictures
    inline as data URIs (`images=False`: the numbers only)."""
    parts = ["# Curation report", "", _md_table(STAGE_HEADER, report.stage_counts), ""]
    for s in report.sections:
        parts += [f"## {s.title}", ""]
        if not s.ran:
            parts += [f"*Not run yet* ({s.missing}).", ""]
            continue
        parts += [s.summary, ""]
        if s.table is not None:
            parts += [_md_table(*s.table), ""]
        if images:
            parts += [f"![{i.alt}]({i.data_uri()})\n" for i in s.images]
    return "\n".join(parts)


CSS = """
body { font-family: system-ui, -apple-system, Segoe UI, sans-serif; margin: 2rem auto; max-width: 1100px;
       color: #222; padding: 0 1rem; }
h1 { border-bottom: 2px solid #3b6ea5; padding-bottom: .3rem; }
h2 { margin-top: 2.5rem; color: #3b6ea5; }
table { border-collapse: collapse; margin: .8rem 0; font-size: .9rem; }
th, td { border: 1px solid #ddd; padding: .25rem .6rem; text-align: right; }
th { background: #f3f6fa; } td:first-child, th:first-child { text-align: left; }
.counts { display: flex; flex-wrap: wrap; gap: .6rem; margin: .8rem 0; }
.count { background: #f3f6fa; border-radius: 6px; padding: .4rem .8rem; }
.count b { display: block; font-size: 1.2rem; }
.notrun { background: #fff6e0; border-left: 4px solid #e0a800; padding: .6rem 1rem; }
figure { display: inline-block; width: calc(50% - 1.2rem); min-width: 320px; margin: .5rem 1rem .5rem 0;
         vertical-align: top; }
figure img { width: 100%; border: 1px solid #eee; }
figcaption { font-size: .85rem; color: #555; }
nav a { margin-right: 1rem; }
"""


def _html_table(header: list[str], rows: Sequence[Sequence[str]]) -> str:
    def cell(tag: str, v: str) -> str:
        text = html.escape(str(v))
        if text.startswith("**") and text.endswith("**"):
            text = f"<b>{text[2:-2]}</b>"
        return f"<{tag}>{text}</{tag}>"

    head = "<tr>" + "".join(cell("th", h) for h in header) + "</tr>"
    body = "".join("<tr>" + "".join(cell("td", c) for c in r) + "</tr>" for r in rows)
    return f"<table><thead>{head}</thead><tbody>{body}</tbody></table>"


def render_html(report: Report) -> str:
    """The report as one self-contained HTML page: CSS inline, pictures as base64 PNG data URIs, no script."""
    esc = html.escape
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>Sift curation report</title>",
        f"<style>{CSS}</style></head><body>",
        "<h1>Sift curation report</h1>",
        f"<p>Lake <code>{esc(report.lake)}</code></p>",
        "<nav>" + "".join(f'<a href="#{s.key}">{esc(s.title)}</a>' for s in report.sections) + "</nav>",
        '<section id="stages"><h2>Per-stage counts</h2>',
        _html_table(STAGE_HEADER, report.stage_counts),
        "</section>",
    ]
    for s in report.sections:
        out.append(f'<section id="{s.key}"><h2>{esc(s.title)}</h2>')
        if not s.ran:
            out.append(f'<p class="notrun"><b>Not run yet.</b> {esc(s.missing)}</p></section>')
            continue
        out.append(f"<p>{esc(s.summary)}</p>")
        out.append(
            '<div class="counts">'
            + "".join(f'<div class="count"><b>{esc(v)}</b>{esc(k)}</div>' for k, v in s.counts)
            + "</div>"
        )
        if s.table is not None:
            out.append(_html_table(*s.table))
        for i in s.images:
            out.append(
                f'<figure><img src="{i.data_uri()}" alt="{esc(i.alt)}">'
                f"<figcaption>{esc(i.caption or i.alt)}</figcaption></figure>"
            )
        out.append("</section>")
    out.append("</body></html>\n")
    return "\n".join(out)


def report_path(lake_root: str) -> str:
    """Where the HTML report of a lake goes: `<lake>/report/curation_report.html`."""
    return os.path.join(os.path.abspath(lake_root), *REPORT_PATH)


def write_report(lake_root: str, path: str | None = None) -> tuple[str, Report]:
    """Build the report of a lake and write its HTML atomically (default `report_path`); returns the path and
    the report."""
    report = build_report(lake_root)
    target = path or report_path(lake_root)
    write_text(render_html(report), target)
    return target, report


__all__ = [
    "REPORT_PATH",
    "Image",
    "Report",
    "Section",
    "build_report",
    "containment_chart",
    "dedup_rates_chart",
    "render_html",
    "render_markdown",
    "report_path",
    "write_report",
]
