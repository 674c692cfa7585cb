"""The PASER selection report: report.md with the cluster map (S2RIC's spectral embedding on its two principal axes,
each cluster a colour, selected samples ringed) and the budget per cluster (share given by degradation, samples
taken, mean degradation score), both drawn with matplotlib's Agg backend into PNG files beside it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from sift.pipelines.core.atomic import atomic_path, write_text


def _save(fig: Any, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, metadata={"Software": None})


def cluster_map(clusters: pa.Table, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = clusters.column("x").to_numpy(zero_copy_only=False)
    y = clusters.column("y").to_numpy(zero_copy_only=False)
    label = clusters.column("cluster").fill_null(-1).to_numpy(zero_copy_only=False)
    chosen = np.asarray(clusters.column("status").to_pylist()) == "selected"
    fig, ax = plt.subplots(figsize=(6.4, 5.0))
    ax.scatter(x, y, c=label, cmap="tab20", s=8, alpha=0.6, linewidths=0)
    ax.scatter(x[chosen], y[chosen], facecolors="none", edgecolors="black", s=22, linewidths=0.6,
               label="selected")  # fmt: skip
    ax.set_title("Instruction clusters (S2RIC spectral embedding, 2-D PCA)")
    ax.set_xlabel("principal axis 1")
    ax.set_ylabel("principal axis 2")
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)


def budget_chart(per_cluster: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = np.arange(len(per_cluster))
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    ax.bar(k - 0.2, [c["budget"] for c in per_cluster], 0.4, label="budget (by degradation)")
    ax.bar(k + 0.2, [c["selected"] for c in per_cluster], 0.4, label="selected")
    ax2 = ax.twinx()
    ax2.plot(k, [c["cds"] for c in per_cluster], "ko", label="mean JSD (CDS)")
    ax2.set_ylabel("mean JSD")
    ax.set_xlabel("cluster")
    ax.set_ylabel("samples")
    ax.set_xticks(k)
    ax.set_title("Budget per cluster")
    lines = ax.get_legend_handles_labels()
    more = ax2.get_legend_handles_labels()
    ax.legend(lines[0] + more[0], lines[1] + more[1], fontsize=8, loc="best")
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)


def write_report(stats: dict[str, Any], clusters: pa.Table, out: Path) -> None:
    """report.md (and its two pictures when there are clusters) in `out`."""
    lines = [
        "# PASER recovery-data selection",
        "",
        f"Strategy **{stats['strategy']}**: {stats['rows_in']} records in, {stats['pool']} usable, budget "
        f"{stats['budget']}; **{stats['selected']} selected**, {stats['not_selected']} not selected, "
        f"{stats['rejected']} rejected.",
        "",
    ]
    if stats["rejected_by_reason"]:
        lines += ["| rejected because | records |", "| --- | ---: |"]
        lines += [f"| {reason} | {n} |" for reason, n in stats["rejected_by_reason"].items()]
        lines.append("")
    info = stats.get("clusters") or {}
    if info:
        lines += [
            f"{info['k']} clusters ({info['method']}); kernel bandwidth σ = {info['sigma']:.4g}.",
            "",
            "![cluster map](cluster_map.png)",
            "",
            "![budget per cluster](cluster_budget.png)",
            "",
            "| cluster | size | mean JSD | budget | selected | rejected |",
            "| ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        lines += [
            f"| {c['cluster']} | {c['size']} | {c['cds']:.4g} | {c['budget']} | {c['selected']} | {c['rejected']} |"
            for c in info["per_cluster"]
        ]
        cluster_map(clusters, out / "cluster_map.png")
        budget_chart(info["per_cluster"], out / "cluster_budget.png")
    write_text("\n".join(lines) + "\n", out / "report.md")
