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


def pinball_loss(y: np.ndarray, quantile_forecast: np.ndarray, quantile: float) -> float:
    """Mean pinball (quantile) loss of ``quantile_forecast`` as the ``quantile`` of y."""
    return float(np.mean(_pinball_terms(y, quantile_forecast, quantile)))


def _scaled(error: float, scale: float) -> float:
    return float(error / scale) if scale > 0 else float("nan")


def _mase(frame: pd.DataFrame, mase_scale: float | pd.Series) -> float:
    abs_error = (frame["y"] - frame["yhat"]).abs()
    if not isinstance(mase_scale, pd.Series):
        return _scaled(abs_error.mean(), float(mase_scale))
    return _per_series_scaled(frame, abs_error.to_numpy(dtype=float), mase_scale, root=False)


def _rmsse(frame: pd.DataFrame, rmsse_scale: float | pd.Series | None) -> float:
    if rmsse_scale is None:
        return float("nan")
    squared = (frame["y"] - frame["yhat"]) ** 2
    if not isinstance(rmsse_scale, pd.Series):
        return _scaled(float(np.sqrt(squared.mean())), float(rmsse_scale))
    return _per_series_scaled(frame, squared.to_numpy(dtype=float), rmsse_scale, root=True)


def _per_series_scaled(frame: pd.DataFrame, loss: np.ndarray, scale: pd.Series,
                       root: bool) -> float:
    """:func:`_grouped_scaled` of ``frame``'s rows as one group (``scale`` by series_id)."""
    row_scale = scale.reindex(frame["series_id"].to_numpy()).to_numpy(dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(_grouped_scaled(frame, np.zeros(len(frame), dtype=np.int64), 1, loss,
                                     row_scale, root)[0])


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
    y, yhat, lower, upper = (frame[c].to_numpy(dtype=float)
                             for c in ("y", "yhat", "yhat_lower", "yhat_upper"))
    one_group = _GroupSums(np.zeros(len(y), dtype=np.int64), 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        point = _point_metrics(y, yhat, lower, upper, one_group, level)
    metrics = {name: float(values[0]) for name, values in point.items()}
    metrics["mase"], metrics["rmsse"] = _mase(frame, mase_scale), _rmsse(frame, rmsse_scale)
    return {name: metrics[name] for name in METRIC_NAMES}


def wape(frame: pd.DataFrame) -> float:
    """The ``wape`` of :func:`compute_metrics` alone (y, yhat; rows without y skipped)."""
    frame = frame[frame["y"].notna()]
    y = frame["y"].to_numpy(dtype=float)
    return _ratio(np.abs(frame["yhat"].to_numpy(dtype=float) - y).sum(), np.abs(y).sum())


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


def metrics_by_group(
    frame: pd.DataFrame, codes: np.ndarray, n_groups: int, level: float,
    mase_scale: np.ndarray, rmsse_scale: np.ndarray | None = None,
) -> pd.DataFrame:
    """:func:`compute_metrics` of every group at once (per-series scales): row g holds the
    metrics of the rows whose ``codes`` is g (0 <= g < ``n_groups``; -1: no group).

    ``mase_scale`` / ``rmsse_scale`` give each row its series' scale in its group (NaN:
    unknown; the same for all of a series' rows in a group). Equal to the per-group
    :func:`compute_metrics` up to floating-point summation order.
    """
    keep = frame["y"].notna().to_numpy() & (codes >= 0)
    rows, codes = frame.loc[keep], codes[keep]
    y, yhat, lower, upper = (rows[c].to_numpy(dtype=float)
                             for c in ("y", "yhat", "yhat_lower", "yhat_upper"))
    error = yhat - y
    with np.errstate(divide="ignore", invalid="ignore"):
        out = _point_metrics(y, yhat, lower, upper, _GroupSums(codes, n_groups), level)
        out["mase"] = _grouped_scaled(rows, codes, n_groups, np.abs(error), mase_scale[keep],
                                      root=False)
        out["rmsse"] = _grouped_scaled(rows, codes, n_groups, error**2,
                                       None if rmsse_scale is None else rmsse_scale[keep],
                                       root=True)
    return pd.DataFrame(out, columns=list(METRIC_NAMES))


def _point_metrics(y: np.ndarray, yhat: np.ndarray, lower: np.ndarray, upper: np.ndarray,
                   sums: _GroupSums, level: float) -> dict[str, np.ndarray]:
    """Per group: every metric but the scaled ones (see :func:`compute_metrics`)."""
    error = yhat - y
    alpha = (1.0 - level) / 2.0
    return {
        "wape": _ratios(sums(np.abs(error)), sums(np.abs(y))),
        "mae": sums.mean(np.abs(error)),
        "rmse": np.sqrt(sums.mean(error**2)),
        "smape": sums.mean(_smape_terms(y, yhat)),
        "bias_pct": _ratios(sums(error), sums(y)) * 100.0,
        "coverage": sums.mean(((y >= lower) & (y <= upper)).astype(float)),
        "pinball": (sums.mean(_pinball_terms(y, lower, alpha))
                    + sums.mean(_pinball_terms(y, upper, 1.0 - alpha))) / 2.0,
    }


class _GroupSums:
    """Per-group sums and means of row values (NaN propagates, as in ``np.sum``)."""

    def __init__(self, codes: np.ndarray, n_groups: int) -> None:
        self.codes, self.n_groups = codes, n_groups
        self.count = np.bincount(codes, minlength=n_groups).astype(float)

    def __call__(self, values: np.ndarray) -> np.ndarray:
        return np.bincount(self.codes, weights=values, minlength=self.n_groups)

    def mean(self, values: np.ndarray) -> np.ndarray:
        return self(values) / self.count


def _ratios(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """Elementwise :func:`_ratio`: NaN where the denominator is 0."""
    return np.where(denominator != 0, numerator / np.where(denominator != 0, denominator, 1.0),
                    np.nan)


def _smape_terms(y: np.ndarray, yhat: np.ndarray) -> np.ndarray:
    denominator = np.abs(y) + np.abs(yhat)
    safe = np.where(denominator == 0, 1.0, denominator)
    return np.where(denominator == 0, 0.0, 200.0 * np.abs(y - yhat) / safe)


def _pinball_terms(y: np.ndarray, quantile_forecast: np.ndarray, quantile: float
                   ) -> np.ndarray:
    diff = y - quantile_forecast
    return np.maximum(quantile * diff, (quantile - 1.0) * diff)


def _grouped_scaled(rows: pd.DataFrame, codes: np.ndarray, n_groups: int, loss: np.ndarray,
                    scale: np.ndarray | None, root: bool) -> np.ndarray:
    """Per group, the mean over its series of each series' mean ``loss`` (its root when
    ``root``: RMSSE) over the series' scale, a 0 or missing scale taking the group's
    median positive one (see the module docstring); NaN without a scale."""
    if scale is None:
        return np.full(n_groups, np.nan)
    series = pd.factorize(rows["series_id"])[0]
    width = series.max(initial=0) + 1
    pairs, pair_of_row = np.unique(codes * width + series, return_inverse=True)
    group = pairs // width
    per_series = _GroupSums(pair_of_row, len(pairs)).mean(loss)
    per_series = np.sqrt(per_series) if root else per_series
    pair_scale = np.full(len(pairs), np.nan)
    pair_scale[pair_of_row] = scale
    positive = pair_scale > 0
    fallback = _group_medians(pair_scale[positive], group[positive], n_groups)
    ratio = per_series / np.where(positive, pair_scale, fallback[group])
    valid = ~np.isnan(ratio)
    counted = _GroupSums(group[valid], n_groups)
    return counted(ratio[valid]) / counted.count


def _group_medians(values: np.ndarray, groups: np.ndarray, n_groups: int) -> np.ndarray:
    """The median of each group's ``values`` (NaN for a group without any)."""
    order = np.lexsort((values, groups))
    values, counts = values[order], np.bincount(groups, minlength=n_groups)
    starts = np.cumsum(counts) - counts
    medians = np.full(n_groups, np.nan)
    some = counts > 0
    low, high = (starts + (counts - 1) // 2)[some], (starts + counts // 2)[some]
    medians[some] = (values[low] + values[high]) / 2.0
    return medians
