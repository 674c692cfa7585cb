"""The dedup report's cluster-size chart (dedup/plots.py): a real PNG, the same bytes from the same stats, a bar
per cluster size whose height follows its count on the log axis, and a readable empty chart."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from sift.dedup.plots import BAR, SCALE, cluster_histogram


def _draw(hist: dict[str, int], path: Path) -> np.ndarray:
    cluster_histogram({"clusters": {"size_histogram": hist}}, path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    img = Image.open(path)
    assert img.size == (600 * SCALE, 350 * SCALE)
    return np.asarray(img.convert("RGB"))


def _bar_heights(pixels: np.ndarray) -> list[int]:
    """Height in pixels of each run of bar-coloured columns, left to right."""
    is_bar = np.all(pixels == np.array(BAR, np.uint8), axis=2)
    cols = is_bar.sum(axis=0)
    heights, run = [], 0
    for c in list(cols) + [0]:
        if c:
            run = max(run, int(c))
        elif run:
            heights.append(run)
            run = 0
    return heights


def test_bars_follow_the_counts_on_a_log_axis_and_the_bytes_are_stable(tmp_path: Path) -> None:
    # keys as stats.json holds them (strings, in string order): the bars come in numeric order
    hist = {"10": 10, "2": 1000, "3": 100, "40": 1}
    pixels = _draw(hist, tmp_path / "a.png")
    heights = _bar_heights(pixels)
    assert len(heights) == 4
    h2, h3, h10, h40 = heights
    assert h2 > h3 > h10 > h40 > 0  # sizes 2, 3, 10, 40 left to right; a count of 1 still shows
    assert abs((h2 - h3) - (h3 - h10)) <= 2  # one decade is one step of the same height
    _draw(hist, tmp_path / "b.png")
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()


def test_many_sizes_and_no_clusters_still_draw(tmp_path: Path) -> None:
    many = _draw({str(s): 1000 // s for s in range(2, 300)}, tmp_path / "many.png")
    assert np.all(many == np.array(BAR, np.uint8), axis=2).sum() > 10_000
    empty = _draw({}, tmp_path / "empty.png")
    assert not np.all(empty == np.array(BAR, np.uint8), axis=2).any()
    assert (empty < 128).any()  # the frame and the message are drawn
