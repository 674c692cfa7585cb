"""The dedup report's picture (SlimPajama-DC section 2: how large the duplicate clusters are).

Only the standard library at import and matplotlib inside the function, so a side worker (dedup/side.py) that
draws it imports nothing else.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def cluster_histogram(stats: dict[str, Any], path: Path) -> None:
    """Bar chart of cluster sizes (documents per cluster -> number of clusters), log scale."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    hist = {int(k): v for k, v in stats["clusters"]["size_histogram"].items()}
    fig = Figure(figsize=(6, 3.5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    if hist:
        ax.bar([str(k) for k in hist], list(hist.values()), color="#3b6ea5")
        ax.set_yscale("log")
        if len(hist) > 20:
            ax.set_xticks(range(0, len(hist), max(1, len(hist) // 10)))
    else:
        ax.text(0.5, 0.5, "no duplicate clusters", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("documents in cluster")
    ax.set_ylabel("clusters")
    ax.set_title("Duplicate cluster sizes")
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.png")
    fig.savefig(tmp, format="png", metadata={"Software": None})
    os.replace(tmp, path)
