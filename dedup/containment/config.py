"""R2D2 configuration (paper: "R2D2: Reducing Redundancy and Duplication in Data Lakes").

Typed settings for the three-step containment hierarchy (schema graph, min-max pruning, content check) and the
deletion plan's cost model. Defaults follow the paper's setup: exact containment, a small random sample of rows
checked before the exact anti-join, a cost model of storage plus expected rebuild (scan) cost, and a bound on the
rebuild latency of every deleted table.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from sift.pipelines.core.config import StageConfig


class ContainConfig(StageConfig, stage="contain"):
    """Settings of `sift contain` (containment + deletion plan)."""

    engine: Literal["polars", "spark"] = Field("polars", description="engine of the content check")
    case_insensitive: bool = Field(False, description="match column names ignoring case")
    sample_rows: int = Field(
        64, ge=0, description="random rows of A tested against B before the exact anti-join"
    )
    seed: int = Field(0, ge=0, le=2**64 - 1, description="seed of the row sample (64 bits)")
    cache_bytes: int = Field(
        1 << 30, ge=0, description="memory budget of the cached per-column hashes and projection fingerprints"
    )
    storage_cost_per_byte: float = Field(
        0.02 / 1e9, ge=0, description="cost of keeping one byte for one period (default: $0.02 per GB-month)"
    )
    scan_cost_per_byte: float = Field(
        0.005 / 1e9, ge=0, description="cost of scanning one byte of a container to rebuild a deleted table"
    )
    default_access_frequency: float = Field(
        1.0,
        ge=0,
        description="accesses per period of a table that the access log does not name (uniform default)",
    )
    scan_bytes_per_second: float = Field(
        200e6, gt=0, description="assumed scan throughput used to estimate a rebuild's latency"
    )
    max_rebuild_seconds: float | None = Field(
        None, gt=0, description="largest allowed rebuild latency of a deleted table (None: no limit)"
    )
    milp_max_edges: int = Field(
        200_000,
        ge=0,
        description="solve the plan exactly (HiGHS MILP) up to this many candidate edges, else greedy",
    )
    milp_time_limit_s: float = Field(120.0, gt=0, description="time limit of the exact plan solver")
