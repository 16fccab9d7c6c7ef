"""Regression with ARIMA errors on one series: the model that reads known-future inputs.

``y = x' beta + u``, ``u`` ARIMA(p, d, q) (statsmodels ``SARIMAX``), where ``x`` holds the
forecaster's exogenous columns that vary in the series (``training_set.exog_columns``:
promo, holiday, price, any named covariate) and ``fourier_k`` sine/cosine pairs of the
primary season (a seasonal ARIMA of period 52 or 365 is far too slow to fit per series).
A drift (``trend="t"`` on differenced errors, a constant otherwise) when ``spec.trend``.

Speed: the parameters are estimated by conditional sum of squares (CSS) with numpy /
scipy, not by statsmodels: the state-space MLE of ``SARIMAX`` costs ~1 s on 3 years of
daily data (2 s per 52-week seasonal fit), ``ARIMA(method="innovations_mle")`` ~0.3 s;
CSS ~10 ms. Given the ARMA coefficients, filtering y and the regressors by
``phi(L) / theta(L)`` (``scipy.signal.lfilter``) whitens the errors, so beta is the least
squares of the filtered regression (the CSS is concentrated: scipy's L-BFGS-B searches
the p + q ARMA coefficients only, bounded to |c| < 0.98; its finite-difference gradient
computed by :mod:`~training.forecasters.gradient`, bit-identical and cheaper). On
hundreds of periods CSS and exact likelihood estimates agree closely; the forecasts
themselves come from statsmodels' exact Kalman filter (``ARIMA(...).filter`` with the
fitted parameters). The mean forecast is linear in future exog, so
:meth:`ArimaParams.path` gives it at exog 0 and ``exog_coef`` (beta) adds a scenario's
values: a planned promotion moves the forecast of its period.
Rolling forward re-runs the Kalman filter with the fitted parameters over the longer
history (Fourier terms continue the time index), then reads the H-step forecasts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from training.forecasters.gradient import minimize_bounded
from training.forecasters.statistical_spec import SeriesModelSpec


def fourier_terms(t: np.ndarray, period: int, k: int) -> np.ndarray:
    """sin/cos pairs 1..k of the season ``period`` at time indices ``t`` (rows x 2k)."""
    k = min(k, period // 2)
    angles = [2.0 * np.pi * j * t / period for j in range(1, k + 1)]
    columns = [f(a) for a in angles for f in (np.sin, np.cos)]
    return np.column_stack(columns) if columns else np.empty((len(t), 0))


def arima_design(flags: np.ndarray, period: int, k: int) -> np.ndarray:
    """The SARIMAX exog of consecutive periods from the series' first one: the exogenous
    values, then the Fourier terms."""
    t = np.arange(len(flags))
    return np.column_stack([flags, fourier_terms(t, period, k)])


def arima_trend(order: tuple[int, int, int], trend: str | None) -> str:
    """statsmodels' ARIMA trend: a constant for undifferenced errors; on differenced ones a
    drift (a linear time trend) when a trend is asked for, else none."""
    if order[1] == 0:
        return "c"
    return "t" if trend is not None and order[1] == 1 else "n"


@dataclass(frozen=True)
class ArimaParams:
    """A fitted regression with ARIMA errors: ``result.params`` and its design."""

    params: np.ndarray
    order: tuple[int, int, int]
    trend: str  # "c", "t" or "n" (see :func:`arima_trend`)
    flags: tuple[str, ...]  # exog columns in the design (those that varied in the fit)
    columns: tuple[int, ...]  # their positions in the forecaster's exog matrix
    season_length: int
    fourier_k: int

    kind = "arima"

    seasonal_order = (0, 0, 0, 0)

    @property
    def exog_coef(self) -> dict[str, float]:
        return exog_coefficients(self)

    def path(self, y: np.ndarray, exog: np.ndarray, horizon: int) -> np.ndarray:
        return kalman_path(self, y, exog, horizon)


class ArimaLike(Protocol):
    """What :func:`kalman_path` reads of a fitted ``arima`` or ``auto_arima`` model."""

    params: np.ndarray
    order: tuple[int, int, int]
    trend: str
    flags: tuple[str, ...]
    columns: tuple[int, ...]
    season_length: int
    fourier_k: int

    @property
    def seasonal_order(self) -> tuple[int, int, int, int]: ...


def exog_coefficients(model: ArimaLike) -> dict[str, float]:
    """The exogenous columns' betas (after the trend term, when there is one)."""
    start = 0 if model.trend == "n" else 1
    return {c: float(model.params[start + i]) for i, c in enumerate(model.flags)}


def kalman_path(model: ArimaLike, y: np.ndarray, exog: np.ndarray, horizon: int) -> np.ndarray:
    """The H-step forecasts after ``y`` (exog: its rows, all the forecaster's columns): the
    Kalman filter over y with the fitted parameters, then ``horizon`` periods at exog 0."""
    from statsmodels.tsa.arima.model import ARIMA

    n = len(y)
    flags = np.vstack([exog[:n, list(model.columns)], np.zeros((horizon, len(model.columns)))])
    design = arima_design(flags, model.season_length, model.fourier_k)
    endog = np.concatenate([y, np.full(horizon, np.nan)])
    arima = ARIMA(endog, exog=design if design.shape[1] else None, order=model.order,
                  seasonal_order=model.seasonal_order, trend=model.trend)
    forecasts = arima.filter(model.params, return_ssm=True).forecasts[0, n:]
    return np.asarray(forecasts, dtype=float)


def trend_columns(trend: str, count: int) -> np.ndarray:
    """The regressors statsmodels' ARIMA adds for ``trend``: a constant, or t = 1..n."""
    if trend == "c":
        return np.ones((count, 1))
    if trend == "t":
        return np.arange(1.0, count + 1.0)[:, None]
    return np.empty((count, 0))


def concentrated_css(arma: np.ndarray, w: np.ndarray, x: np.ndarray,
                     p: int) -> tuple[float, np.ndarray]:
    """(sum of squared innovations, beta) of ``w = x beta + ARMA errors`` given the AR
    and MA coefficients ``arma`` (the first ``p`` are AR)."""
    from scipy.signal import lfilter

    ar, ma = np.r_[1.0, -arma[:p]], np.r_[1.0, arma[p:]]
    w_white, x_white = lfilter(ar, ma, w), lfilter(ar, ma, x, axis=0)
    beta = np.linalg.lstsq(x_white, w_white, rcond=None)[0] if x.shape[1] else np.empty(0)
    innovations = w_white - x_white @ beta
    return float(innovations @ innovations), beta


def varying_columns(exog: np.ndarray) -> tuple[int, ...]:
    """The exog columns that vary over the fit (a constant one is the trend's business)."""
    return tuple(i for i in range(exog.shape[1]) if np.std(exog[:, i]) > 0)


def fit_arima(y: np.ndarray, exog: np.ndarray, spec: SeriesModelSpec) -> ArimaParams:
    """Regression with ARIMA(``spec.order``) errors on ``y`` by CSS (module docstring)."""
    p, d, q = spec.order
    columns = varying_columns(exog)
    design = arima_design(exog[:, list(columns)], spec.season_length, spec.fourier_k)
    trend = arima_trend(spec.order, spec.trend)
    regressors = np.column_stack([trend_columns(trend, len(y)), design])
    w, x = np.diff(y, n=d), np.diff(regressors, n=d, axis=0)
    arma = np.zeros(p + q)
    if p + q:
        arma = minimize_bounded(lambda c: concentrated_css(c, w, x, p)[0], arma,
                                [(-0.98, 0.98)] * (p + q)).x
    sse, beta = concentrated_css(arma, w, x, p)
    params = np.concatenate([beta, arma, [sse / len(w)]])
    return ArimaParams(params, spec.order, trend, tuple(spec.exog[i] for i in columns),
                       columns, spec.season_length, spec.fourier_k)
