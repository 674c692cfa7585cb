"""A byte-budgeted LRU cache, shared by R2D2 step 3 (hashes, projections, tables) and the table readers (CSV
tables parsed for their statistics and needed again by the content check)."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any


class LRU:
    """A byte-budgeted least-recently-used cache."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.used = 0
        self.items: OrderedDict[Any, tuple[Any, int]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, key: Any) -> Any:
        if key in self.items:
            self.items.move_to_end(key)
            self.hits += 1
            return self.items[key][0]
        self.misses += 1
        return None

    def put(self, key: Any, value: Any, size: int) -> None:
        if key in self.items:
            self.used -= self.items.pop(key)[1]
        self.items[key] = (value, size)
        self.used += size
        while self.used > self.budget and len(self.items) > 1:
            _, (_, s) = self.items.popitem(last=False)
            self.used -= s

    def clear(self) -> None:
        self.items.clear()
        self.used = 0
