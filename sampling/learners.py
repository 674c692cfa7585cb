"""Learners of adaptive equitable sampling (Cai et al., FAccT 2022): the model whose per-group validation error the
learning curves describe. A pluggable registry (`register`, `LEARNERS`, `make_learner`):

- `logistic`, `hgb`: scikit-learn estimators (a standardised logistic regression; histogram gradient boosting) on
  numeric tabular features, error = the share of a group's validation rows misclassified; with `smote_floor` a
  group with fewer training rows than the floor is oversampled with SMOTE (imbalanced-learn) within each of its
  labels before training, and the synthetic rows are counted.
- `ngram-lm`: a proxy for training mixtures across corpus sources (SlimPajama-DC style): a bigram language model
  with Dirichlet smoothing towards an add-one unigram model, trained on the sample so far (every group together),
  error = each group's validation cross-entropy in nats per token.

Learners train on the driver, on the sample so far (which the budget bounds), one model for all groups.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from sift.pipelines.core.errors import InputError


@dataclass(frozen=True)
class LearnerSpec:
    """What a learner reads from the sample: its columns and the seed."""

    group_field: str  # column of the group (as strings: the draw's `_group`)
    label_field: str | None
    text_field: str
    features: list[str]
    seed: int
    smote_floor: int = 0


@dataclass
class Measure:
    """One training run's validation error per group, and the synthetic rows SMOTE added per group."""

    errors: dict[str, float]
    synthetic: dict[str, int] = field(default_factory=dict)


class Learner:
    """Train on `train`, measure every group of `valid`; both carry `_group` and the learner's columns."""

    needs_label = False
    needs_text = False
    tabular = False

    def __init__(self, spec: LearnerSpec) -> None:
        self.spec = spec

    def measure(self, train: pl.DataFrame, valid: pl.DataFrame, groups: list[str]) -> Measure:
        raise NotImplementedError


LEARNERS: dict[str, Callable[[LearnerSpec], Learner]] = {}


def register(name: str) -> Callable[[Callable[[LearnerSpec], Learner]], Callable[[LearnerSpec], Learner]]:
    """Add a learner factory to the registry under `name`."""

    def add(factory: Callable[[LearnerSpec], Learner]) -> Callable[[LearnerSpec], Learner]:
        LEARNERS[name] = factory
        return factory

    return add


def learner_class(name: str) -> Callable[[LearnerSpec], Learner]:
    if name not in LEARNERS:
        raise InputError(f"unknown learner {name!r} (one of {', '.join(sorted(LEARNERS))})")
    return LEARNERS[name]


def make_learner(name: str, spec: LearnerSpec) -> Learner:
    return learner_class(name)(spec)


class _Tabular(Learner):
    needs_label = True
    tabular = True

    def estimator(self) -> Any:
        raise NotImplementedError

    def _xy(self, df: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        x = df.select([pl.col(f).cast(pl.Float64) for f in self.spec.features]).to_numpy()
        y = df[str(self.spec.label_field)].cast(pl.Utf8).to_numpy()
        return x, y

    def _smote(
        self, x: np.ndarray, y: np.ndarray, g: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
        """Oversample each group below the floor, within each of its labels (SMOTE on group x label classes)."""
        from imblearn.over_sampling import SMOTE

        floor = self.spec.smote_floor
        combo = np.array([f"{a}\x1f{b}" for a, b in zip(g, y, strict=True)], dtype=object)
        names, counts = np.unique(combo, return_counts=True)
        size = Counter(g.tolist())
        want: dict[str, int] = {}
        for name, count in zip(names.tolist(), counts.tolist(), strict=True):
            grp = name.split("\x1f")[0]
            if size[grp] < floor and count >= 2:
                want[name] = int(math.ceil(count * floor / size[grp]))
        if not want:
            return x, y, {}
        k = min(5, min(int(counts[names.tolist().index(n)]) for n in want) - 1)
        sm = SMOTE(sampling_strategy=want, k_neighbors=k, random_state=self.spec.seed)
        xs, cs = sm.fit_resample(x, combo)
        added = Counter(str(c).split("\x1f")[0] for c in cs[len(combo) :])
        ys = np.array([str(c).split("\x1f")[1] for c in cs], dtype=object)
        return xs, ys, dict(sorted(added.items()))

    def measure(self, train: pl.DataFrame, valid: pl.DataFrame, groups: list[str]) -> Measure:
        x, y = self._xy(train)
        synthetic: dict[str, int] = {}
        if self.spec.smote_floor:
            x, y, synthetic = self._smote(x, y, train["_group"].to_numpy())
        vx, vy = self._xy(valid)
        if len(set(y.tolist())) < 2:
            pred = np.full(len(vy), y[0] if len(y) else "", dtype=object)
        else:
            model = self.estimator()
            model.fit(x, y)
            pred = model.predict(vx)
        vg = valid["_group"].to_numpy()
        errors = {}
        for grp in groups:
            mask = vg == grp
            errors[grp] = float(np.mean(pred[mask] != vy[mask])) if mask.any() else float("nan")
        return Measure(errors, synthetic)


@register("logistic")
class Logistic(_Tabular):
    def estimator(self) -> Any:
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))


@register("hgb")
class GradientBoosting(_Tabular):
    def estimator(self) -> Any:
        from sklearn.ensemble import HistGradientBoostingClassifier

        return HistGradientBoostingClassifier(max_iter=100, random_state=self.spec.seed)


_WORD = re.compile(r"\w+")


def tokens(text: str) -> list[str]:
    return ["<s>", *_WORD.findall(text.lower()), "</s>"]


@register("ngram-lm")
class NgramLM(Learner):
    """Bigram LM: p(w | v) = (c(v, w) + mu * p1(w)) / (c(v) + mu), p1(w) = (c(w) + 1) / (N + V + 1)."""

    needs_text = True
    mu = 10.0

    def measure(self, train: pl.DataFrame, valid: pl.DataFrame, groups: list[str]) -> Measure:
        uni: Counter[str] = Counter()
        bi: Counter[tuple[str, str]] = Counter()
        ctx: Counter[str] = Counter()
        for text in train[self.spec.text_field].to_list():
            toks = tokens(text)
            uni.update(toks[1:])
            bi.update(zip(toks[:-1], toks[1:], strict=False))
            ctx.update(toks[:-1])
        total, vocab = sum(uni.values()), len(uni)
        errors = {}
        vg = valid["_group"].to_list()
        texts = valid[self.spec.text_field].to_list()
        for grp in groups:
            nll, count = 0.0, 0
            for g, text in zip(vg, texts, strict=True):
                if g != grp:
                    continue
                toks = tokens(text)
                for v, w in zip(toks[:-1], toks[1:], strict=False):
                    p1 = (uni[w] + 1) / (total + vocab + 1)
                    nll -= math.log((bi[(v, w)] + self.mu * p1) / (ctx[v] + self.mu))
                    count += 1
            errors[grp] = nll / count if count else float("nan")
        return Measure(errors)
