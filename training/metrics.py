"""Forecast accuracy metrics: the same names in every backtest, MLflow run and report.

Conventions (documented once here, relied on everywhere):

* ``wape`` = sum|y - yhat| / sum|y| (a fraction: 0.12 = 12 %); NaN when sum|y| is 0.
* ``mae``, ``rmse`` in units of ``y``.
* ``smape`` on the 0..200 scale (percent): mean of 200 |y - yhat| / (|y| + |yhat|); a row
  where both are 0 counts as 0 error.
* ``mase`` = MAE / the in-sample MAE of the seasonal-naive forecast on the training
  history. With a scalar scale it is pooled (MAE of all rows / scale); with a per-series
  scale (Series by series_id) it is computed per series and then averaged over series.
* ``bias_pct`` = sum(yhat - y) / sum(y) * 100: positive = over-forecast.
* ``coverage`` = share of rows with yhat_lower <= y <= yhat_upper.
* ``pinball`` = mean pinball loss of the interval's two quantiles, the lower bound as
  quantile (1 - level) / 2 and the upper bound as 1 - (1 - level) / 2, averaged over rows
  and the two quantiles (units of ``y``; the median is not included).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

METRIC_NAMES: tuple[str, ...] = (
    "wape", "mae", "rmse", "smape", "mase", "bias_pct", "coverage", "pinball",
)
_SCALE_FLOOR = 1e-9


def _ratio(numerator: float, denominator: float) -> float:
    return float(numerator / denominator) if denominator != 0 else float("nan")


def _smape(y: np.ndarray, yhat: np.ndarray) -> float:
    denominator = np.abs(y) + np.abs(yhat)
    safe = np.where(denominator == 0, 1.0, denominator)
    terms = np.where(denominator == 0, 0.0, 200.0 * np.abs(y - yhat) / safe)
    return float(terms.mean())


def pinball_loss(y: np.ndarray, quantile_forecast: np.ndarray, quantile: float) -> float:
    """Mean pinball (quantile) loss of ``quantile_forecast`` as the ``quantile`` of y."""
    diff = y - quantile_forecast
    return float(np.mean(np.maximum(quantile * diff, (quantile - 1.0) * diff)))


def _mase(frame: pd.DataFrame, mase_scale: float | pd.Series) -> float:
    abs_error = (frame["y"] - frame["yhat"]).abs()
    if not isinstance(mase_scale, pd.Series):
        return _ratio(abs_error.mean(), max(float(mase_scale), _SCALE_FLOOR))
    per_series_mae = abs_error.groupby(frame["series_id"]).mean()
    scale = mase_scale.reindex(per_series_mae.index).clip(lower=_SCALE_FLOOR)
    return float((per_series_mae / scale).mean())


def compute_metrics(
    frame: pd.DataFrame, level: float, mase_scale: float | pd.Series
) -> dict[str, float]:
    """All of :data:`METRIC_NAMES` for one set of forecasts (see the module docstring).

    ``frame`` has y, yhat, yhat_lower, yhat_upper (and series_id when ``mase_scale`` is
    a per-series Series); ``level`` is the interval's nominal coverage (e.g. 0.8).
    """
    y = frame["y"].to_numpy(dtype=float)
    yhat = frame["yhat"].to_numpy(dtype=float)
    lower = frame["yhat_lower"].to_numpy(dtype=float)
    upper = frame["yhat_upper"].to_numpy(dtype=float)
    error = yhat - y
    alpha = (1.0 - level) / 2.0
    return {
        "wape": _ratio(np.abs(error).sum(), np.abs(y).sum()),
        "mae": float(np.abs(error).mean()),
        "rmse": float(np.sqrt(np.mean(error**2))),
        "smape": _smape(y, yhat),
        "mase": _mase(frame, mase_scale),
        "bias_pct": _ratio(error.sum(), y.sum()) * 100.0,
        "coverage": float(np.mean((y >= lower) & (y <= upper))),
        "pinball": (pinball_loss(y, lower, alpha) + pinball_loss(y, upper, 1.0 - alpha)) / 2.0,
    }


def seasonal_naive_mae(base: pd.DataFrame, season_length: int) -> pd.Series:
    """Per series: in-sample MAE of the seasonal-naive forecast y(ds - season) on ``base``.

    The MASE denominator. A series shorter than one season + 1 uses the lag-1 (naive)
    MAE instead; a series with a single period gets NaN.
    """
    ordered = base.sort_values(["series_id", "ds"])
    grouped = ordered.groupby("series_id", sort=True)["y"]
    seasonal = (ordered["y"] - grouped.shift(season_length)).abs()
    naive = (ordered["y"] - grouped.shift(1)).abs()
    seasonal_mae = seasonal.groupby(ordered["series_id"]).mean()
    naive_mae = naive.groupby(ordered["series_id"]).mean()
    return seasonal_mae.fillna(naive_mae).rename("mase_scale")
