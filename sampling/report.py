"""The report of adaptive equitable sampling (Cai et al., FAccT 2022): the per-group learning curves fitted on the
measured (n, error) points with their bootstrap bands (curves.png), the allocation per round (allocation.png), and
report.md with the rounds' tables. Matplotlib with the Agg backend; the PNGs carry no timestamp."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

from sift.pipelines.core.atomic import write_bytes, write_text
from sift.sampling.kernels.adaptive import Round


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    return buf.getvalue()


def plot_curves(rounds: list[Round], groups: list[str]) -> bytes:
    """The last round's fitted curves (line), bootstrap band (10-90%) and measured points, per group."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fits = rounds[-1].fits
    fig, ax = plt.subplots(figsize=(7, 4.5))
    top = max([rounds[-1].allocation[g] for g in groups] + [2])
    n = np.linspace(1, top * 1.2, 200)
    for i, g in enumerate(groups):
        color = f"C{i % 10}"
        fit = fits.get(g)
        if fit is None:
            continue
        ax.plot(
            n,
            fit.curve.error(n),
            color=color,
            label=f"{g}: {fit.curve.a:.3g}·n^-{fit.curve.b:.3g}+{fit.curve.c:.3g}",
        )
        lo, hi = fit.band(n)
        ax.fill_between(n, lo, hi, color=color, alpha=0.15, linewidth=0)
        pts = np.asarray(fit.points, dtype=float)
        ax.scatter(pts[:, 0], pts[:, 1], color=color, s=14)
    ax.set_xlabel("training rows of the group (n)")
    ax.set_ylabel("validation error")
    ax.set_title("Learning curves per group (band: bootstrap 10-90%)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    data = _png(fig)
    plt.close(fig)
    return data


def plot_allocation(rounds: list[Round], groups: list[str]) -> bytes:
    """Rows per group after each round (stacked bars)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    x = np.arange(len(rounds))
    bottom = np.zeros(len(rounds))
    for i, g in enumerate(groups):
        vals = np.array([r.allocation[g] for r in rounds], dtype=float)
        ax.bar(x, vals, bottom=bottom, color=f"C{i % 10}", label=g)
        bottom += vals
    ax.set_xticks(x, [f"round {r.index}" for r in rounds])
    ax.set_ylabel("rows drawn (cumulative)")
    ax.set_title("Allocation per round")
    ax.legend(fontsize=7)
    fig.tight_layout()
    data = _png(fig)
    plt.close(fig)
    return data


def write_report(out: Path, stats: dict[str, Any], rounds: list[Round], groups: list[str]) -> None:
    """curves.png, allocation.png and report.md into `out`."""
    write_bytes(plot_curves(rounds, groups), out / "curves.png")
    write_bytes(plot_allocation(rounds, groups), out / "allocation.png")
    lines = [
        f"# Equitable sampling: {stats['strategy']} strategy, {stats['objective']} objective",
        "",
        f"Pool {stats['input']}: {stats['rows_in']} rows in, {stats['usable']} usable "
        f"(dropped: {stats['dropped'] or 'none'}); {stats['holdout']} held out for validation, "
        f"{stats['sampled']} sampled, {stats['not_sampled']} not sampled. "
        f"Budget {stats['budget']:g}, spent {stats['spent']:g}. Learner `{stats['config']['learner']}`.",
        "",
        "| group | pool | holdout | cost | weight | final n | final error |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for g in groups:
        info = stats["groups"][g]
        lines.append(
            f"| {g} | {info['pool']} | {info['holdout']} | {info['cost']:g} | {info['weight']:.3f} | "
            f"{stats['final']['allocation'][g]} | {stats['final']['errors'][g]:.4f} |"
        )
    lines += ["", "## Rounds", "", "| round | spent | loss | " + " | ".join(f"{g} n (err)" for g in groups) + " |",
              "|---:|---:|---:|" + "---:|" * len(groups)]  # fmt: skip
    for r in stats["rounds"]:
        cells = " | ".join(f"{r['allocation'][g]} ({r['errors'][g]:.4f})" for g in groups)
        lines.append(f"| {r['index']} | {r['spent']:g} | {r['loss']:.4f} | {cells} |")
    lines += [
        "",
        "## Fitted curves (last round)",
        "",
        "| group | a | b | c | points |",
        "|---|---:|---:|---:|---:|",
    ]
    for g, c in stats["rounds"][-1]["curves"].items():
        lines.append(f"| {g} | {c['a']:.4g} | {c['b']:.4g} | {c['c']:.4g} | {len(c['points'])} |")
    lines += ["", "![learning curves](curves.png)", "", "![allocation per round](allocation.png)", ""]
    write_text("\n".join(lines), out / "report.md")
