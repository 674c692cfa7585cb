"""Cai et al. (FAccT 2022), the per-group learning curve: error_g(n) = a_g·n^(-b_g) + c_g, fitted from observed
(n, error) points, with a bootstrap over the points for its uncertainty.

Each point's residual is weighted by √(n / max n): the error of a learner trained on n samples varies roughly as
1/√n, so the small pilot sizes, the noisiest points, pull the fit least.

The fit works in a well-conditioned parametrisation: n is divided by the geometric mean n0 of the observed sizes and
the residuals by the mean observed error, so the three parameters (A = a·n0^(-b), b, c) are of order one whatever the
scale of n. For a fixed exponent b the model is linear in (A, c), so a grid over b with non-negative least squares
gives the starting points; the best few are refined by `scipy.optimize.least_squares` under the bounds A >= 0,
0 < b <= 3, c >= 0. With only two distinct sizes the three parameters are not identified, so c is held at 0 and
(a, b) pass exactly through the two points' trend.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import least_squares, nnls

B_MIN = 1e-4  # the exponent's lower bound: b > 0
B_MAX = 3.0
_B_GRID = np.geomspace(0.02, B_MAX, 16)
WEIGHTED = False
_STARTS = 2  # the best grid points refined by least squares


@dataclass(frozen=True)
class Curve:
    """error(n) = a·n^(-b) + c with a >= 0, b > 0, c >= 0. At n <= 0 the error is infinite (a > 0) or c (a = 0)."""

    a: float
    b: float
    c: float

    def error(self, n: float | np.ndarray) -> float | np.ndarray:
        x = np.asarray(n, dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            power = self.a * np.power(np.where(x > 0, x, 1.0), -self.b)
        out = np.where(x > 0, power + self.c, np.inf if self.a > 0 else self.c)
        return float(out) if out.ndim == 0 else out


@dataclass(frozen=True)
class CurveFit:
    """A fitted curve, its bootstrap estimates of (a, b, c) (shape (B, 3), B may be 0) and the points it fits."""

    curve: Curve
    boot: np.ndarray = field(compare=False)
    points: tuple[tuple[int, float], ...]

    def band(self, n: np.ndarray, q: tuple[float, float] = (0.1, 0.9)) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper quantiles `q` of the bootstrap curves' errors at sizes `n` (both the point estimate's
        errors when there is no bootstrap)."""
        x = np.asarray(n, dtype=np.float64)
        if self.boot.shape[0] == 0:
            point = np.asarray(self.curve.error(x), dtype=np.float64)
            return point, point.copy()
        a, b, c = self.boot[:, 0:1], self.boot[:, 1:2], self.boot[:, 2:3]
        with np.errstate(divide="ignore", over="ignore"):
            errs = a * np.power(np.maximum(x.reshape(1, -1), 1e-300), -b) + c
        lo, hi = np.quantile(errs, [q[0], q[1]], axis=0)
        return lo.reshape(x.shape), hi.reshape(x.shape)


def _fit_scaled(
    x: np.ndarray, y: np.ndarray, wt: np.ndarray, *, free_c: bool
) -> tuple[float, float, float, float]:
    """Best (A, b, c) of y ≈ A·x^(-b) + c on scaled sizes x and errors y, each residual weighted by wt, and its
    weighted sum of squared residuals."""
    logx = np.log(x)
    starts: list[tuple[float, float, float, float]] = []
    for b in _B_GRID:
        design = np.power(x, -b)[:, None]
        if free_c:
            design = np.hstack([design, np.ones_like(design)])
        coef, rnorm = nnls(design * wt[:, None], y * wt)
        starts.append((float(rnorm) ** 2, float(b), float(coef[0]), float(coef[1]) if free_c else 0.0))
    starts.sort()
    best = (np.inf, 0.0, 0.0, 0.0)
    for _, b0, a0, c0 in starts[:_STARTS]:
        if free_c:

            def resid3(p: np.ndarray) -> np.ndarray:
                return (p[0] * np.power(x, -p[1]) + p[2] - y) * wt

            def jac3(p: np.ndarray) -> np.ndarray:
                xb = np.power(x, -p[1])
                return np.column_stack([xb * wt, -p[0] * xb * logx * wt, wt])

            p0 = np.array([a0, b0, c0])
            lo, hi = np.array([0.0, B_MIN, 0.0]), np.array([np.inf, B_MAX, np.inf])
            sol = least_squares(resid3, np.clip(p0, lo + 1e-12, hi), jac=jac3, bounds=(lo, hi), method="trf")
            a, b, c = (float(v) for v in sol.x)
        else:

            def resid2(p: np.ndarray) -> np.ndarray:
                return (p[0] * np.power(x, -p[1]) - y) * wt

            def jac2(p: np.ndarray) -> np.ndarray:
                xb = np.power(x, -p[1])
                return np.column_stack([xb * wt, -p[0] * xb * logx * wt])

            lo, hi = np.array([0.0, B_MIN]), np.array([np.inf, B_MAX])
            sol = least_squares(
                resid2, np.clip([a0, b0], lo + 1e-12, hi), jac=jac2, bounds=(lo, hi), method="trf"
            )
            a, b, c = float(sol.x[0]), float(sol.x[1]), 0.0
        sse = float(np.sum(((a * np.power(x, -b) + c - y) * wt) ** 2))
        if sse < best[0] - 1e-15:
            best = (sse, a, b, c)
    return best[1], best[2], best[3], best[0]


def _fit_points(n: np.ndarray, err: np.ndarray) -> Curve:
    n0 = float(np.exp(np.mean(np.log(n))))
    scale = float(np.mean(np.abs(err)))
    if not scale > 0:
        return Curve(0.0, 1.0, 0.0)  # every observed error is 0
    x, y = n / n0, err / scale
    wt = np.sqrt(n / n.max())  # a learner trained on n samples varies as 1/√n: larger n weigh more
    big_a, b, c, _ = _fit_scaled(x, y, wt, free_c=np.unique(n).size >= 3)
    return Curve(a=big_a * scale * n0**b, b=b, c=c * scale)


def fit_curve(n: Sequence[float], err: Sequence[float], *, seed: int = 0, bootstrap: int = 200) -> CurveFit:
    """Fit error(n) = a·n^(-b) + c to the points (n_i, err_i), and `bootstrap` refits on points resampled with
    replacement (seeded by `seed`; resamples with fewer than 2 distinct sizes are drawn again)."""
    sizes = np.asarray(n, dtype=np.float64).ravel()
    errs = np.asarray(err, dtype=np.float64).ravel()
    if sizes.size != errs.size:
        raise ValueError(
            f"fit_curve needs as many errors as sizes, got {sizes.size} sizes and {errs.size} errors"
        )
    if not (np.all(np.isfinite(sizes)) and np.all(np.isfinite(errs))):
        raise ValueError("fit_curve needs finite sizes and errors")
    if np.any(sizes <= 0) or np.any(errs < 0):
        raise ValueError("fit_curve needs sizes > 0 and errors >= 0")
    if np.unique(sizes).size < 2:
        raise ValueError(
            f"fit_curve needs points at 2 or more distinct sizes, got {np.unique(sizes).size} "
            f"({sizes.size} points)"
        )
    if bootstrap < 0:
        raise ValueError(f"bootstrap must be >= 0, got {bootstrap}")
    order = np.argsort(sizes, kind="stable")
    sizes, errs = sizes[order], errs[order]
    curve = _fit_points(sizes, errs)
    rng = np.random.default_rng(seed)
    boot = np.empty((bootstrap, 3), dtype=np.float64)
    for i in range(bootstrap):
        for _ in range(100):
            pick = rng.integers(0, sizes.size, sizes.size)
            if np.unique(sizes[pick]).size >= 2:
                break
        else:
            pick = np.arange(sizes.size)
        c = _fit_points(sizes[pick], errs[pick])
        boot[i] = (c.a, c.b, c.c)
    points = tuple((int(round(s)), float(e)) for s, e in zip(sizes, errs, strict=True))
    return CurveFit(curve=curve, boot=boot, points=points)
