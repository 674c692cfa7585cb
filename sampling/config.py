"""Configuration of adaptive equitable sampling ("Adaptive Sampling Strategies to Construct Equitable Training
Datasets", Cai et al., FAccT 2022): the budget and per-group costs, the objective, the strategy (adaptive rounds, the
allocation optimal for curves fitted on a pilot, or the equal and proportional baselines), the learner whose
per-group validation error the curves model, the validation holdout, and the SMOTE option for small groups."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from sift.pipelines.core.config import StageConfig


class SampleConfig(StageConfig, stage="sample"):
    """Settings of `sift sample` (adaptive equitable sampling)."""

    group_field: str = Field("source", description="column holding each row's group")
    budget: float = Field(1000, gt=0, description="total cost to spend: sum over groups of cost x rows drawn")
    costs: dict[str, float] = Field(
        default_factory=dict, description="cost of one row per group (a group not named costs 1)"
    )
    objective: str = Field("weighted", description="weighted, maximin, target:GROUP or gap:X")
    weights: dict[str, float] = Field(
        default_factory=dict,
        description="weights of the weighted objective per group (default: each group's share of the pool)",
    )
    strategy: Literal["adaptive", "optimal", "equal", "proportional"] = Field(
        "adaptive", description="adaptive rounds, optimal for curves fitted on the pilot, or a baseline"
    )
    rounds: int = Field(4, ge=1, le=100, description="adaptive rounds after the pilot")
    pilot: int = Field(50, ge=2, description="rows per group drawn first (the pilot batch)")
    label_field: str | None = Field(None, description="label column (tabular learners)")
    text_field: str = Field("text", description="text column (text learners such as ngram-lm)")
    features: list[str] | None = Field(
        None, description="numeric feature columns (default: every numeric column but id, group and label)"
    )
    nan_features: Literal["drop", "refuse"] = Field(
        "drop",
        description="rows with a missing or NaN feature: drop them (counted in stats) or refuse the pool",
    )
    learner: str = Field("logistic", description="learner whose per-group validation error is measured")
    holdout: int = Field(200, ge=1, description="largest validation holdout per group")
    holdout_share: float = Field(
        0.25, gt=0, lt=1, description="largest share of a group's rows kept out for validation"
    )
    smote_floor: int = Field(
        0,
        ge=0,
        description="tabular learners: oversample (SMOTE) a group's training rows up to this many (0: off)",
    )
    id_field: str = Field("id", description="column holding each row's id")
    seed: int = Field(
        0, ge=0, le=2**32 - 1, description="seed of the draw order, the holdout and the learners"
    )

    @field_validator("costs")
    @classmethod
    def _costs(cls, value: dict[str, float]) -> dict[str, float]:
        for g, c in value.items():
            if not c > 0:
                raise ValueError(f"the cost of group {g!r} is {c:g}: a cost must be above 0")
        return value

    @field_validator("weights")
    @classmethod
    def _weights(cls, value: dict[str, float]) -> dict[str, float]:
        return _nonnegative_weights(value)


def _nonnegative_weights(value: dict[str, float]) -> dict[str, float]:
    for g, w in value.items():
        if w < 0:
            raise ValueError(f"the weight of group {g!r} is {w:g}: a weight must be 0 or above")
    return value


def parse_costs(text: str | None) -> dict[str, float]:
    """`g1=c1,g2=c2` as a dict; ValueError with one clear line on a malformed or non-positive entry."""
    out: dict[str, float] = {}
    if not text:
        return out
    for part in text.split(","):
        name, sep, value = part.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ValueError(f"--costs: {part!r} is not GROUP=COST (e.g. a=1,b=2.5)")
        try:
            cost = float(value)
        except ValueError:
            raise ValueError(f"--costs: the cost of {name!r} ({value!r}) is not a number") from None
        if not cost > 0 or cost != cost or cost == float("inf"):
            raise ValueError(f"--costs: the cost of {name!r} is {value.strip()}: a cost must be above 0")
        out[name] = cost
    return out
