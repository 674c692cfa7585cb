"""The dedup report's picture (SlimPajama-DC section 2: how large the duplicate clusters are).

Drawn with Pillow (imported in ~50 ms) rather than matplotlib (~0.8 s of imports, which on a two-core machine cost
a run as much time as the drawing saved): one bar per cluster size, a log-scaled count axis with a grid, the count
over each bar when there are few. The same stats give the same PNG bytes.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from sift.pipelines.core.atomic import atomic_path

BAR = (59, 110, 165)
INK = (34, 34, 34)
GRID = (222, 222, 222)
SCALE = 2  # drawn at twice the nominal 600 x 350 size, so it stays sharp on high-density screens


def _font(size: int) -> Any:
    from PIL import ImageFont

    return ImageFont.load_default(size=size * SCALE)


def _text(draw: Any, xy: tuple[float, float], text: str, size: int, anchor: str) -> None:
    draw.text(xy, text, fill=INK, font=_font(size), anchor=anchor)


def _count(v: int) -> str:
    return f"{v:,}"


def cluster_histogram(stats: dict[str, Any], path: Path) -> None:
    """Bar chart of cluster sizes (documents per cluster -> number of clusters), counts on a log scale."""
    from PIL import Image, ImageDraw

    hist = sorted((int(k), int(v)) for k, v in stats["clusters"]["size_histogram"].items())
    w, h = 600 * SCALE, 350 * SCALE
    left, right, top, bottom = 78 * SCALE, 16 * SCALE, 40 * SCALE, 58 * SCALE
    img = Image.new("RGB", (w, h), "white")
    draw = ImageDraw.Draw(img)
    _text(draw, (w / 2, 18 * SCALE), "Duplicate cluster sizes", 15, "mm")
    x0, x1, y0, y1 = left, w - right, top, h - bottom  # plot area; y1 is the baseline
    if not hist:
        draw.rectangle((x0, y0, x1, y1), outline=INK, width=SCALE)
        _text(draw, ((x0 + x1) / 2, (y0 + y1) / 2), "no duplicate clusters", 12, "mm")
    else:
        decades = max(1, math.ceil(math.log10(max(v for _, v in hist)) + 1e-9))
        if 10**decades == max(v for _, v in hist):
            decades += 1  # headroom over a bar that reaches a power of ten exactly

        def y_of(v: float) -> float:
            return y1 - (y1 - y0) * math.log10(max(v, 1)) / decades

        for d in range(decades + 1):
            y = y_of(10**d)
            draw.line((x0, y, x1, y), fill=GRID, width=SCALE)
            draw.line((x0 - 4 * SCALE, y, x0, y), fill=INK, width=SCALE)
            _text(draw, (x0 - 7 * SCALE, y), _count(10**d), 10, "rm")
        slot = (x1 - x0) / len(hist)
        every = max(1, math.ceil(len(hist) / 20))  # at most 20 size labels
        for i, (size, count) in enumerate(hist):
            cx = x0 + slot * (i + 0.5)
            half = max(slot * 0.4, SCALE / 2)
            y = y_of(count)
            # a cluster count of 1 sits on the baseline of a log axis: it still gets a visible sliver
            draw.rectangle((cx - half, min(y, y1 - 2 * SCALE), cx + half, y1), fill=BAR)
            if i % every == 0:
                draw.line((cx, y1, cx, y1 + 4 * SCALE), fill=INK, width=SCALE)
                _text(draw, (cx, y1 + 7 * SCALE), str(size), 10, "mt")
            if len(hist) <= 25:
                _text(draw, (cx, min(y, y1 - 2 * SCALE) - 3 * SCALE), _count(count), 8, "mb")
        draw.line((x0, y0, x0, y1), fill=INK, width=SCALE)
        draw.line((x0, y1, x1, y1), fill=INK, width=SCALE)
    _text(draw, ((x0 + x1) / 2, h - 14 * SCALE), "documents in cluster", 12, "mm")
    label = Image.new("RGB", (120 * SCALE, 20 * SCALE), "white")
    _text(ImageDraw.Draw(label), (60 * SCALE, 10 * SCALE), "clusters", 12, "mm")
    rotated = label.rotate(90, expand=True)
    img.paste(rotated, (4 * SCALE, int((y0 + y1) / 2 - rotated.height / 2)))
    with atomic_path(path) as tmp:
        img.save(tmp, format="PNG", optimize=False)
