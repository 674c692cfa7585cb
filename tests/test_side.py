"""The side worker (pipelines/core/side.py) that containment shares work with: work shared with it comes back whole and in
order, taken by both processes, and falls back to the caller without a worker."""

from __future__ import annotations

import os
import time

from sift.pipelines.core.side import share, side_worker


def _tagged(items: list[int]) -> list[tuple[int, int]]:
    time.sleep(0.02 * len(items))
    return [(x * x, os.getpid()) for x in items]


def test_shared_work_comes_back_whole_and_in_order() -> None:
    items = list(range(200))
    with side_worker(True) as pool:
        assert pool is not None
        got = share(pool, _tagged, items, chunks=20)
    assert [v for v, _pid in got] == [x * x for x in items]
    pids = {pid for _v, pid in got}
    assert os.getpid() in pids and len(pids) == 2  # both processes took chunks
    # without a worker, or with one that is shut down, the caller does it all (with `local` when given)
    assert share(None, _tagged, items[:5]) == [(x * x, os.getpid()) for x in items[:5]]
    local = share(pool, _tagged, items[:30], local=lambda xs: [(-x, 0) for x in xs])
    assert local == [(-x, 0) for x in items[:30]]
