"""Components of the statistical family's forecasts: level, trend, season — where exact.

Each per-series model (:mod:`~training.forecasters.statistical_spec`) forecasts a path of
H steps from its fitted parameters; this module splits that path into named components
that sum to it exactly, re-running the model's own recursion over the same history:

* ``ets`` (Holt-Winters): ``level`` = the last level state, ``trend`` = the last trend
  state x (1 + phi + ... + phi^(h-1)) x phi (damped) or x h, ``season`` = the rest (for an
  additive season its state, for a multiplicative one (level + trend) x (index - 1)).
* ``theta_*``: ``level`` = the SES level / theta + the drift line at the origin x
  (1 - 1/theta), ``trend`` = the line's slope x h x (1 - 1/theta), ``season`` = the
  classical seasonal index applied (0 when the series tested non-seasonal).
* ``mstl``: ``season (p)`` = each season profile p, then the non-seasonal ETS of the
  adjusted series as ``level`` and ``trend``.
* ``arima``: ``season`` = the Fourier terms x their coefficients (exact: a regression with
  ARIMA errors forecasts x'beta plus the error forecast); ``level`` = the rest (constant
  or drift and the ARIMA error forecast together). Exogenous effects (a promotion) are
  separate drivers added by the caller.
* ``auto_arima``: as ``arima`` when it kept the Fourier terms; when the season is in its
  ARIMA dynamics (seasonal difference, AR or MA) no state splits it exactly, so the path is
  described: ``level`` = its mean, ``trend`` = its least-squares slope over the steps
  (centred), ``season`` = the rest.
* a combination of the best few: the mean of its members' components.
* ``naive`` (the fit fell back to seasonal naive): one driver, ``seasonal naive
  (fallback)``; so is any model whose components do not sum to its path (a check, not
  expected), with the model kind in its name.

Components are on the series' scaled values; the caller multiplies them by the level.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from training.forecasters.arima import ArimaParams, fourier_terms
from training.forecasters.auto_arima import AutoArimaParams
from training.forecasters.ets import EtsParams
from training.forecasters.mstl import MstlParams
from training.forecasters.statistical_select import quiet_single_thread
from training.forecasters.statistical_spec import Combination
from training.forecasters.theta import ThetaParams, ses_levels, theta_lines

Components = dict[str, np.ndarray]
FALLBACK = "seasonal naive (fallback)"


def components(model: Any, y: np.ndarray, exog: np.ndarray, path: np.ndarray) -> Components:
    """``path`` (the H-step forecast after ``y`` at exog 0) split into named components
    that sum to it; one component named after the model when no exact split exists."""
    if model is None:
        return {FALLBACK: path}
    try:
        with quiet_single_thread():  # statsmodels' warnings off, as in the fit
            parts = split(model, y, exog, len(path))
    except (ValueError, TypeError, KeyError) as exc:  # a form we do not split: say so
        return {f"{model.kind} forecast (not decomposed: {exc})": path}
    total = np.sum(list(parts.values()), axis=0)
    if not np.allclose(total, path, rtol=1e-7, atol=1e-9 * max(1.0, np.abs(path).max())):
        return {f"{model.kind} forecast (not decomposed)": path}
    return parts


def split(model: Any, y: np.ndarray, exog: np.ndarray, horizon: int) -> Components:
    """The components of ``model``'s forecast (see the module docstring)."""
    if isinstance(model, Combination):
        return mean_components([split(m, y, exog, horizon) for m in model.members])
    if isinstance(model, EtsParams):
        return ets_components(model, y, horizon)
    if isinstance(model, ThetaParams):
        return theta_components(model, y, horizon)
    if isinstance(model, MstlParams):
        return mstl_components(model, y, horizon)
    if isinstance(model, ArimaParams):
        return arima_components(model, y, exog, horizon)
    if isinstance(model, AutoArimaParams):
        return auto_arima_components(model, y, exog, horizon)
    raise TypeError(f"no decomposition for {type(model).__name__}")


def mean_components(parts: list[Components]) -> Components:
    names = list(dict.fromkeys(name for part in parts for name in part))
    horizon = len(next(iter(parts[0].values())))
    return {name: sum((part.get(name, np.zeros(horizon)) for part in parts),
                      np.zeros(horizon)) / len(parts) for name in names}


def ets_components(model: EtsParams, y: np.ndarray, horizon: int) -> Components:
    """Level and trend from the last states of the Holt-Winters recursion; the season is
    the rest of the path (exact by construction)."""
    if model.trend not in (None, "add"):
        raise ValueError(f"trend {model.trend!r}")
    path = model.forecast(y, horizon)
    level, slope = ets_last_states(model, y)
    h = np.arange(1, horizon + 1)
    phi = model.smoothing.get("damping_trend", 1.0) if model.damped else 1.0
    trend = slope * (np.cumsum(phi ** h) if model.damped else h.astype(float))
    if model.trend is None:
        trend = np.zeros(horizon)
    if model.seasonal is None:
        return {"level": path - trend, "trend": trend}
    return {"level": np.full(horizon, level), "trend": trend, "season": path - level - trend}


def ets_last_states(model: EtsParams, y: np.ndarray) -> tuple[float, float]:
    """(level, trend) after ``y``: statsmodels' recursion with the fixed parameters."""
    from statsmodels.tsa.holtwinters import ExponentialSmoothing

    fitted = ExponentialSmoothing(
        y, trend=model.trend, damped_trend=model.damped, seasonal=model.seasonal,
        seasonal_periods=model.season_length if model.seasonal else None,
        initialization_method="known", initial_level=model.initial_level,
        initial_trend=model.initial_trend, initial_seasonal=model.initial_seasons,
    ).fit(optimized=False, **model.smoothing)
    slope = float(fitted.trend[-1]) if model.trend is not None else 0.0
    return float(fitted.level[-1]), slope


def theta_components(model: ThetaParams, y: np.ndarray, horizon: int) -> Components:
    """The Theta forecast's terms (the same arithmetic as :meth:`ThetaParams.path`)."""
    z = model.season.adjust(y) if model.season else y
    line, a, b = theta_lines(z, model.variant == "dynamic", model.intercept, model.slope)
    w = model.theta * z - (model.theta - 1.0) * line
    last = ses_levels(w, model.alpha, w[0])[-1]
    n, h = len(z), np.arange(1.0, horizon + 1.0)
    weight = 1.0 - 1.0 / model.theta
    level = np.full(horizon, weight * (a + b * n) + last / model.theta)
    trend = weight * b * h
    season = (model.season.restore(level + trend, n) - (level + trend) if model.season
              else np.zeros(horizon))
    return {"level": level, "trend": trend, "season": season}


def mstl_components(model: MstlParams, y: np.ndarray, horizon: int) -> Components:
    n = len(y)
    adjusted = y - model.seasonal(0, n)
    parts = ets_components(model.adjusted_model, adjusted, horizon)
    positions = np.arange(n, n + horizon)
    for period, profile in zip(model.periods, model.profiles, strict=True):
        parts[f"season ({period})"] = profile[positions % period]
    return parts


def arima_components(model: ArimaParams | AutoArimaParams, y: np.ndarray, exog: np.ndarray,
                     horizon: int) -> Components:
    """The Fourier season (x'beta of the future periods) and the rest of the path."""
    path = model.path(y, exog, horizon)
    first = (0 if model.trend == "n" else 1) + len(model.flags)
    t = np.arange(len(y), len(y) + horizon)
    terms = fourier_terms(t, model.season_length, model.fourier_k)
    season = terms @ model.params[first:first + terms.shape[1]]
    return {"level": path - season, "season": season}


def auto_arima_components(model: AutoArimaParams, y: np.ndarray, exog: np.ndarray,
                          horizon: int) -> Components:
    """``arima``'s split when the season is Fourier terms; else the path's mean, centred
    slope and the rest (module docstring)."""
    if not model.seasonal:
        return arima_components(model, y, exog, horizon)
    path = model.path(y, exog, horizon)
    steps = np.arange(horizon) - (horizon - 1) / 2.0
    slope = float(steps @ path / (steps @ steps)) if horizon > 1 else 0.0
    level = np.full(horizon, path.mean())
    trend = slope * steps
    return {"level": level, "trend": trend, "season": path - level - trend}
