"""Per-group learning curves error(n) = a * n**(-b) + c (Cai et al., FAccT 2022, section 3), fitted by least squares
with bootstrap estimates of their uncertainty."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import curve_fit


@dataclass(frozen=True)
class Curve:
    """error(n) = a * n**(-b) + c, with a >= 0, b > 0, c >= 0."""

    a: float
    b: float
    c: float

    def error(self, n: float | np.ndarray) -> float | np.ndarray:
        n = np.maximum(np.asarray(n, dtype=np.float64), 1.0)
        out = self.a * n ** (-self.b) + self.c
        return float(out) if out.ndim == 0 else out


@dataclass(frozen=True)
class CurveFit:
    """A fitted curve, its bootstrap estimates (B, 3) of (a, b, c) and the points fitted."""

    curve: Curve
    boot: np.ndarray = field(repr=False)
    points: tuple[tuple[int, float], ...]

    def band(self, n: np.ndarray, q: tuple[float, float] = (0.1, 0.9)) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper quantiles of the bootstrap curves at `n` (the point curve when there is no bootstrap)."""
        n = np.asarray(n, dtype=np.float64)
        if len(self.boot) == 0:
            mid = np.asarray(self.curve.error(n), dtype=np.float64)
            return mid, mid
        errs = np.stack([Curve(*map(float, p)).error(n) for p in self.boot])
        return np.quantile(errs, q[0], axis=0), np.quantile(errs, q[1], axis=0)


def _model(n: np.ndarray, a: float, b: float, c: float) -> np.ndarray:
    return a * n ** (-b) + c


def _fit(n: np.ndarray, err: np.ndarray) -> tuple[float, float, float]:
    c0 = max(float(err.min()) * 0.5, 0.0)
    a0 = max(float(err.max()) - c0, 1e-6) * float(n.min()) ** 0.5
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            p, _ = curve_fit(
                _model,
                n,
                err,
                p0=(a0, 0.5, c0),
                bounds=([0.0, 1e-3, 0.0], [np.inf, 3.0, np.inf]),
                maxfev=5000,
            )
            return float(p[0]), float(p[1]), float(p[2])
        except (RuntimeError, ValueError):
            return a0, 0.5, c0


def fit_curve(n: Sequence[float], err: Sequence[float], *, seed: int = 0, bootstrap: int = 200) -> CurveFit:
    """Least-squares fit of a * n**(-b) + c to the points, with `bootstrap` refits on resampled points."""
    x = np.asarray(n, dtype=np.float64)
    y = np.asarray(err, dtype=np.float64)
    if len(np.unique(x)) < 2:
        raise ValueError(
            f"a learning curve needs points at 2 or more distinct sample sizes; got {len(np.unique(x))}"
        )
    curve = Curve(*_fit(x, y))
    rng = np.random.default_rng(seed)
    boot = []
    for _ in range(bootstrap):
        idx = rng.integers(0, len(x), len(x))
        if len(np.unique(x[idx])) < 2:
            continue
        boot.append(_fit(x[idx], y[idx]))
    points = tuple((int(a), float(b)) for a, b in zip(x, y, strict=True))
    return CurveFit(curve, np.asarray(boot, dtype=np.float64).reshape(-1, 3), points)
