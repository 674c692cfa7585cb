"""R2D2 step 3 engine contract: projection fingerprints, sample test, anti-join and value confirmation.

An engine turns (table, column keys) into a projection handle holding the 64-bit fingerprint of every row of the
table projected on those columns (in sorted key order), computed once and reused by every pair that needs it. The
orchestrator in `content.py` only calls the methods below, so both engines run the same decisions. The value
confirmation is either the engine's own (`confirm`, the Spark engine: on its executors) or the orchestrator's, from
the engine's row mapping (`mapping`, `fingerprints_of`, `rows_with_fingerprint`, the embedded engine).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import numpy as np

from sift.dedup.containment.schema import TableSchema
from sift.dedup.containment.tables import TableRef


@dataclass(frozen=True)
class Confirmation:
    """Every row of A compared by value with the B row its fingerprint matched (`collisions`: rows whose value
    differs, a hash collision in B or within A) and, for those, with every B row of that fingerprint:
    `unresolved` is the first row of A that no B row equals (None when every row has one)."""

    rows: int
    collisions: int
    unresolved: int | None


class ContentEngine(ABC):
    """What the content check needs from an engine."""

    name = "base"

    def __init__(self, refs: list[TableRef], schemas: list[TableSchema], cache_bytes: int) -> None:
        self.refs = refs
        self.schemas = schemas
        self.cache_bytes = cache_bytes

    @abstractmethod
    def projection(self, t: int, keys: tuple[str, ...]) -> Any:
        """Handle of table t's fingerprints on the given column keys (sorted)."""

    @abstractmethod
    def distinct_signature(self, p: Any) -> tuple[int, int]:
        """(number of distinct fingerprints, order-free digest of the distinct set)."""

    @abstractmethod
    def column_values_missing(self, a: int, b: int, key: str) -> bool:
        """True when some value of column `key` of table a is absent from that column of table b."""

    @abstractmethod
    def sample_missing(self, pa_: Any, pb: Any, rows: np.ndarray) -> int:
        """How many of A's rows at the given indices have a fingerprint absent from B's projection."""

    @abstractmethod
    def missing(self, pa_: Any, pb: Any) -> int:
        """Exact anti-join on fingerprints: 0 when every fingerprint of A is in B, else a positive number (a
        count of missing fingerprints, or 1 when the engine stops at the first)."""

    def mapping(self, pa_: Any, pb: Any) -> np.ndarray:
        """For every row of A in order, the first row of B with the same fingerprint (-1 when none); needed only
        when `confirm` leaves the value comparison to the orchestrator."""
        raise NotImplementedError(f"the {self.name} engine confirms rows itself (confirm)")

    def fingerprints_of(self, p: Any, rows: np.ndarray) -> np.ndarray:
        """The fingerprints (uint64) of the given rows of a projection (as `mapping`)."""
        raise NotImplementedError(f"the {self.name} engine confirms rows itself (confirm)")

    def rows_with_fingerprint(self, p: Any, fp: int) -> np.ndarray:
        """All rows of a projection whose fingerprint is `fp`, to resolve hash collisions (as `mapping`)."""
        raise NotImplementedError(f"the {self.name} engine confirms rows itself (confirm)")

    def confirm(self, pa_: Any, pb: Any) -> Confirmation | None:
        """The value confirmation of A in B done by the engine itself (None: the orchestrator compares the rows)."""
        return None

    def prefetch(self, specs: list[tuple[int, tuple[str, ...]]]) -> None:  # noqa: B027 - optional hook
        """Projections (table, keys) the check is about to need; engines may compute them together."""

    def prefetch_pairs(self, pairs: list[tuple[int, int, tuple[str, ...], np.ndarray | None]]) -> None:  # noqa: B027
        """Pairs (a, b, keys, sample rows) the check may test; engines may test them together."""

    def cached_canon(self, t: int, position: int) -> Any:
        """A normalised column the engine already holds (None when it does not)."""
        return None

    def num_rows(self, p: Any) -> int:
        return int(p.rows)

    def close(self) -> None:  # noqa: B027 - optional hook
        pass
