"""R2D2 report: the containment graph (transitive reduction over collapsed identical tables) as a PNG, and a
markdown summary of the steps, the plan and the skipped inputs."""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from sift.pipelines.core.atomic import atomic_path


def transitive_reduction(nodes: list[str], edges: set[tuple[str, str]]) -> set[tuple[str, str]]:
    """Edges a->c for which no b gives a->b->c (the graph is a DAG over collapsed nodes)."""
    out: dict[str, set[str]] = defaultdict(set)
    for a, b in edges:
        out[a].add(b)
    keep: set[tuple[str, str]] = set()
    for a, succ in out.items():
        # every node two steps from a (through some b other than a; a self loop b->b is no second step)
        two: set[str] = set()
        for b in succ:
            if b != a and b in out:
                ob = out[b]
                two |= ob - {b} if b in ob else ob
        keep.update((a, c) for c in succ if c not in two)
    return keep


def _levels(nodes: list[str], edges: set[tuple[str, str]]) -> dict[str, int]:
    """Longest path from a source (contained tables low, containers high)."""
    into: dict[str, list[str]] = defaultdict(list)
    for a, b in edges:
        into[b].append(a)
    level: dict[str, int] = {}

    def depth(n: str, seen: frozenset) -> int:
        if n in level:
            return level[n]
        d = 0
        for p in into[n]:
            if p not in seen:
                d = max(d, depth(p, seen | {n}) + 1)
        level[n] = d
        return d

    for n in nodes:
        depth(n, frozenset())
    return level


def draw_graph(nodes: dict[str, int], edges: set[tuple[str, str]], path: str, title: str = "") -> int:
    """Draw the reduced containment graph. `nodes` maps a node label to its member count. Returns edges drawn."""
    # imported here (~0.5 s that a run drawing on its side worker never pays); a Figure with the Agg canvas,
    # not pyplot: no backend selection, no global figure registry
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.collections import LineCollection
    from matplotlib.figure import Figure

    reduced = transitive_reduction(list(nodes), edges)
    shown = sorted({n for e in reduced for n in e}) or sorted(nodes)[:50]
    level = _levels(shown, reduced)
    by_level: dict[int, list[str]] = defaultdict(list)
    for n in shown:
        by_level[level.get(n, 0)].append(n)
    pos = {}
    for lv, ns in by_level.items():
        for i, n in enumerate(sorted(ns)):
            pos[n] = ((i + 1) / (len(ns) + 1), lv)
    label = {n: (n if nodes.get(n, 1) == 1 else f"{n} (x{nodes[n]})") for n in shown}
    widest = max((sum(len(label[n]) + 4 for n in ns) for ns in by_level.values()), default=20)
    height = max(3.0, 1.4 * (max(by_level) + 1 if by_level else 1))
    width = max(6.0, min(60.0, 0.11 * widest))  # about 0.1 inch per character at font size 7
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    small = len(shown) > 60
    if len(reduced) <= 300:
        for a, b in sorted(reduced):
            (x0, y0), (x1, y1) = pos[a], pos[b]
            ax.annotate(
                "", xy=(x1, y1), xytext=(x0, y0), arrowprops={"arrowstyle": "->", "color": "0.4", "lw": 0.8}
            )
    else:  # large graphs: plain segments in one collection (containers are always above what they contain)
        segments = [[pos[a], pos[b]] for a, b in sorted(reduced)]
        ax.add_collection(LineCollection(segments, colors="0.5", linewidths=0.3, alpha=0.6))
    xy = np.array([pos[n] for n in shown]) if shown else np.zeros((0, 2))
    ax.scatter(xy[:, 0], xy[:, 1], s=8 if small else 40, color="tab:blue", zorder=3)
    if len(shown) <= 300:
        for ns in by_level.values():
            for i, n in enumerate(sorted(ns)):
                x, y = pos[n]
                dy = 0.1 if i % 2 == 0 else -0.22  # alternate above/below so neighbours do not overlap
                ax.text(x, y + dy, label[n], ha="center", va="bottom", fontsize=5 if small else 7)
    ax.set_title(
        title or "containment graph (arrow: contained -> container; transitive reduction)", fontsize=9
    )
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.6, (max(by_level) if by_level else 0) + 0.7)
    ax.axis("off")
    fig.tight_layout()
    with atomic_path(path) as tmp:  # fast zlib level: large graphs encode slowly
        fig.savefig(tmp, format="png", dpi=110, pil_kwargs={"compress_level": 1})
    return len(reduced)
