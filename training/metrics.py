"""Forecast accuracy metrics: the same names in every backtest, MLflow run and report.

Conventions (documented once here, relied on everywhere):

* ``wape`` = sum|y - yhat| / sum|y| (a fraction: 0.12 = 12 %); NaN when sum|y| is 0.
* ``mae``, ``rmse`` in units of ``y``.
* ``smape`` on the 0..200 scale (percent): mean of 200 |y - yhat| / (|y| + |yhat|); a row
  where both are 0 counts as 0 error.
* ``mase`` = MAE / the in-sample MAE of the seasonal-naive forecast on the training
  history. With a scalar scale it is pooled (MAE of all rows / scale); with a per-series
  scale (Series by series_id) it is computed per series and then averaged over series.
* ``rmsse`` (M5 competition) = RMSE / the root mean squared one-step naive difference
  y(t) - y(t-1) on the training history from the series' first non-zero y (the periods it
  is actively sold, :func:`naive_rmse`); pooled or per series as ``mase``, and NaN when
  no scale is given. Per series it is averaged with equal weights (M5 weighs by sales).
* Scaled metrics on intermittent series: a series whose in-sample scale is 0 or missing
  (no sales, or no change, in its history) is scaled by the median positive scale of the
  other series, so a never-sold item's forecast error still counts, in the panel's typical
  units; NaN when no series has a positive scale (a pooled scale of 0 gives NaN too).
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
    "wape", "mae", "rmse", "smape", "mase", "rmsse", "bias_pct", "coverage", "pinball",
)


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


def _scaled(error: float, scale: float) -> float:
    return float(error / scale) if scale > 0 else float("nan")


def _mean_scaled(per_series_error: pd.Series, scale: pd.Series) -> float:
    """Mean over series of error / scale; a 0 or missing scale takes the median positive
    one (see the module docstring)."""
    scale = scale.reindex(per_series_error.index)
    positive = scale[scale > 0]
    fallback = float(positive.median()) if len(positive) else float("nan")
    scale = scale.where(scale > 0, fallback)
    return float((per_series_error / scale).mean())


def _mase(frame: pd.DataFrame, mase_scale: float | pd.Series) -> float:
    abs_error = (frame["y"] - frame["yhat"]).abs()
    if not isinstance(mase_scale, pd.Series):
        return _scaled(abs_error.mean(), float(mase_scale))
    return _mean_scaled(abs_error.groupby(frame["series_id"]).mean(), mase_scale)


def _rmsse(frame: pd.DataFrame, rmsse_scale: float | pd.Series | None) -> float:
    if rmsse_scale is None:
        return float("nan")
    squared = (frame["y"] - frame["yhat"]) ** 2
    if not isinstance(rmsse_scale, pd.Series):
        return _scaled(float(np.sqrt(squared.mean())), float(rmsse_scale))
    return _mean_scaled(np.sqrt(squared.groupby(frame["series_id"]).mean()), rmsse_scale)


def compute_metrics(
    frame: pd.DataFrame, level: float, mase_scale: float | pd.Series,
    rmsse_scale: float | pd.Series | None = None,
) -> dict[str, float]:
    """All of :data:`METRIC_NAMES` for one set of forecasts (see the module docstring).

    ``frame`` has y, yhat, yhat_lower, yhat_upper (and series_id when a scale is a
    per-series Series); ``level`` is the interval's nominal coverage (e.g. 0.8);
    ``mase_scale`` comes from :func:`seasonal_naive_mae`, ``rmsse_scale`` from
    :func:`naive_rmse` (``rmsse`` is NaN without it). Rows whose y is missing (NaN: a gap
    in the data) are skipped.
    """
    frame = frame[frame["y"].notna()]
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
        "rmsse": _rmsse(frame, rmsse_scale),
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


def naive_rmse(base: pd.DataFrame) -> pd.Series:
    """Per series: root mean squared one-step difference y(t) - y(t-1) on ``base``, over
    the periods from its first non-zero y (M5: while the item is sold).

    The RMSSE denominator. 0 for a series that never sold (or never changed); NaN for one
    with a single such period. NaN y (missing periods) are skipped.
    """
    ordered = base.sort_values(["series_id", "ds"])
    sold = ordered["y"].fillna(0.0).ne(0.0).astype(int)
    active = ordered[sold.groupby(ordered["series_id"]).cummax().to_numpy() > 0]
    step = active.groupby("series_id", sort=True)["y"].diff()
    mean_square = (step**2).groupby(active["series_id"]).mean()
    ids = pd.Index(ordered["series_id"].unique()).sort_values()
    return np.sqrt(mean_square.reindex(ids, fill_value=0.0)).rename("rmsse_scale")
