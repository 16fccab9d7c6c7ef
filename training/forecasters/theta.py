"""The Theta method on one series, in closed form with numpy / scipy (no statsmodels).

Why here and not ``statsmodels.tsa.forecasting.theta.ThetaModel``: it offers the standard
method only, and we need the optimised and dynamic variants and a refit-free roll; the
whole method is an SES recursion, which ``scipy.signal.lfilter``'s C routine runs in
microseconds (called without its Python wrapper: :mod:`~training.forecasters.filtering`).

1. **Season** (classical decomposition, as ``forecast::thetaf``): when the series has
   two seasons of ``season_length`` and its autocorrelation at that lag passes a 90 %
   test, the per-phase seasonal indices of a centred moving average are taken out —
   multiplicative when y > 0 throughout, additive otherwise. ``z`` is the adjusted series.
2. **Theta lines**: ``L(t) = A + B t``, the least-squares line of ``z`` over t = 1..n,
   and the theta line ``w = theta z - (theta - 1) L``, smoothed by SES (``alpha``,
   initial level ``w_1``). The forecast combines them with weights ``1 - 1/theta`` and
   ``1/theta``: ``yhat(n + h) = (1 - 1/theta) L(n + h) + (1/theta) level_n``, reseasoned.
   With theta = 2 this is the standard Theta method (Assimakopoulos & Nikolopoulos 2000),
   i.e. SES with drift = half the regression slope (Hyndman & Billah 2003).

Variants (Fiorucci et al. 2016): ``standard`` (theta = 2, alpha by least squares of
the one-step errors), ``optimised`` (alpha and theta >= 1 both), ``dynamic`` (optimised,
and ``A``, ``B`` re-estimated at each t from the data up to t, so the in-sample errors
have no look-ahead and the line follows the newest data). Rolling forward re-runs the
recursion over the longer history with the fitted alpha, theta, A, B and indices.
Estimation: scipy's bounded Brent (standard) or L-BFGS-B (the others) on the sum of squared
one-step errors; L-BFGS-B's forward-difference gradient is computed by
:mod:`~training.forecasters.gradient` (bit-identical, without scipy's ~0.25 ms of wrapper
a gradient: most of a fit's cost on 48 weeks).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from training.forecasters.filtering import lfilter
from training.forecasters.gradient import minimize_bounded
from training.forecasters.statistical_spec import SeriesModelSpec

THETA_BOUNDS = (1.0, 10.0)
ALPHA_BOUNDS = (0.001, 0.999)
VARIANTS = ("standard", "optimised", "dynamic")


@dataclass(frozen=True)
class SeasonalIndices:
    """Fixed per-phase seasonal indices (phase = position modulo the season length)."""

    indices: np.ndarray
    multiplicative: bool

    def adjust(self, y: np.ndarray) -> np.ndarray:
        season = self.at(0, len(y))
        return y / season if self.multiplicative else y - season

    def restore(self, z: np.ndarray, start: int) -> np.ndarray:
        season = self.at(start, len(z))
        return z * season if self.multiplicative else z + season

    def at(self, start: int, count: int) -> np.ndarray:
        return self.indices[np.arange(start, start + count) % len(self.indices)]


def is_seasonal(y: np.ndarray, period: int) -> bool:
    """The 90 % autocorrelation test of ``forecast::thetaf`` at lag ``period``."""
    if period < 2 or len(y) < 2 * period:
        return False
    x = y - y.mean()
    denominator = float(x @ x)
    if denominator == 0.0:
        return False
    acf = np.array([x[:-k] @ x[k:] for k in range(1, period + 1)]) / denominator
    limit = 1.645 * np.sqrt((1.0 + 2.0 * np.sum(acf[:-1] ** 2)) / len(y))
    return bool(abs(acf[-1]) > limit)


def classical_indices(y: np.ndarray, period: int) -> SeasonalIndices:
    """Seasonal indices of a centred moving-average decomposition of ``y``."""
    multiplicative = bool((y > 0).all())
    if period % 2 == 0:
        weights = np.r_[0.5, np.ones(period - 1), 0.5] / period
    else:
        weights = np.ones(period) / period
    trend = np.convolve(y, weights, mode="valid")
    offset = len(weights) // 2
    centred = y[offset:offset + len(trend)]
    detrended = centred / trend if multiplicative else centred - trend
    phase = np.arange(offset, offset + len(trend)) % period
    indices = np.bincount(phase, detrended, period) / np.bincount(phase, minlength=period)
    indices = indices / indices.mean() if multiplicative else indices - indices.mean()
    return SeasonalIndices(indices, multiplicative)


def theta_lines(z: np.ndarray, dynamic: bool, intercept: float,
                slope: float) -> tuple[np.ndarray, float, float]:
    """(L at t = 1..n as known before t, A_n, B_n). Static: the fixed line ``intercept +
    slope t``; dynamic: the least-squares line of z_1..z_{t-1}, evaluated at t."""
    n = len(z)
    t = np.arange(1.0, n + 1.0)
    if not dynamic:
        return intercept + slope * t, intercept, slope
    s1, s2 = np.cumsum(t), np.cumsum(t * t)
    sz, stz = np.cumsum(z), np.cumsum(t * z)
    denominator = t * s2 - s1 * s1
    with np.errstate(divide="ignore", invalid="ignore"):
        b = np.where(denominator > 0, (t * stz - s1 * sz) / denominator, 0.0)
    a = (sz - b * s1) / t
    line = np.empty(n)
    line[0] = z[0]
    line[1:] = a[:-1] + b[:-1] * t[1:]
    return line, float(a[-1]), float(b[-1])


def ses_levels(w: np.ndarray, alpha: float, level0: float) -> np.ndarray:
    """SES levels l_1..l_n of ``w`` from l_0 = ``level0`` (one ``lfilter`` call)."""
    return lfilter(np.array([alpha]), np.array([1.0, alpha - 1.0]), w,
                   zi=np.array([(1.0 - alpha) * level0]))[0]


def least_squares_line(z: np.ndarray) -> tuple[float, float]:
    """(A, B) of the least-squares line ``A + B t`` of ``z`` over t = 1..n."""
    t = np.arange(1.0, len(z) + 1.0)
    slope, intercept = np.polyfit(t, z, 1) if len(z) > 1 else (0.0, float(z[0]))
    return float(intercept), float(slope)


@dataclass(frozen=True)
class ThetaParams:
    """A fitted Theta model (see the module docstring)."""

    variant: str  # "standard", "optimised" or "dynamic"
    alpha: float
    theta: float
    intercept: float  # A of the static line (dynamic: unused, re-estimated from the data)
    slope: float  # B
    season: SeasonalIndices | None

    @property
    def kind(self) -> str:
        return f"theta_{self.variant}"

    @property
    def exog_coef(self) -> dict[str, float]:
        return {}

    def path(self, y: np.ndarray, exog: np.ndarray, horizon: int) -> np.ndarray:
        """See :class:`~training.forecasters.statistical_spec.SeriesModel` (exog unused)."""
        z = self.season.adjust(y) if self.season else y
        line, a, b = theta_lines(z, self.variant == "dynamic", self.intercept, self.slope)
        w = self.theta * z - (self.theta - 1.0) * line
        level = ses_levels(w, self.alpha, w[0])[-1]
        n = len(z)
        future = a + b * np.arange(n + 1.0, n + horizon + 1.0)
        zhat = (1.0 - 1.0 / self.theta) * future + level / self.theta
        return self.season.restore(zhat, n) if self.season else zhat


def one_step_sse(z: np.ndarray, line: np.ndarray, alpha: float, theta: float) -> float:
    """Sum of squared one-step errors of the Theta fit with ``alpha`` and ``theta``."""
    w = theta * z - (theta - 1.0) * line
    levels = ses_levels(w, alpha, w[0])
    before = np.concatenate([[w[0]], levels[:-1]])
    fitted = (1.0 - 1.0 / theta) * line + before / theta
    return float(np.sum((z - fitted) ** 2))


def fit_theta(y: np.ndarray, exog: np.ndarray, spec: SeriesModelSpec,
              variant: str = "optimised") -> ThetaParams:
    """Theta ``variant`` on ``y`` (season taken out first when it tests seasonal)."""
    from scipy.optimize import minimize_scalar

    season = (classical_indices(y, spec.season_length)
              if is_seasonal(y, spec.season_length) else None)
    z = season.adjust(y) if season else y
    intercept, slope = least_squares_line(z)
    line = theta_lines(z, variant == "dynamic", intercept, slope)[0]
    if variant == "standard":
        best = minimize_scalar(lambda a: one_step_sse(z, line, a, 2.0), bounds=ALPHA_BOUNDS,
                               method="bounded")
        alpha, theta = float(best.x), 2.0
    else:
        best = minimize_bounded(lambda p: one_step_sse(z, line, p[0], p[1]), [0.5, 2.0],
                                [ALPHA_BOUNDS, THETA_BOUNDS])
        alpha, theta = float(best.x[0]), float(best.x[1])
    return ThetaParams(variant, alpha, theta, intercept, slope, season)
