"""Forecast accuracy once actuals arrive: the monthly / quarterly forecast review.

Pure functions on one frame of forecasts joined with actuals: ``series_id``, ``ds``,
``yhat``, ``yhat_lower``, ``yhat_upper``, ``y``, plus the series key columns (``store``,
``category``) and ``segment`` when known. Errors are ``yhat - y``, so a positive bias or
tracking signal means **over-forecasting**.

* WAPE = sum |yhat - y| / sum |y|
* bias = sum (yhat - y) / sum y
* coverage = share of actuals inside [yhat_lower, yhat_upper]
* tracking signal, per series in ``ds`` order = cumulative error / MAD of the errors so
  far; its last value raises an alarm beyond +-``tracking_signal_limit``. Five periods in
  a row with errors of one sign give a tracking signal of 5.

The tracking signal's noise grows with the number of periods: with unbiased Gaussian
errors |TS| > 4 happens to 17 % of series after 5 periods, 28 % after 8 and 55 % after
28 (it cannot happen within 4 periods, as |TS| <= periods). So the report also gives
``chance_alarms``, the alarms unbiased forecasts would raise by chance
(:func:`chance_alarm_rate`), and the verdict judges only the excess.

Every table is compared with ``expected`` (the backtest's promise for this model
version, e.g. ``{"wape": 0.16, "coverage": 0.8}``): ``<metric>_deviation`` is the
observed value minus the promised one.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

REQUIRED = ("series_id", "ds", "yhat", "yhat_lower", "yhat_upper", "y")
PERIODS = {"week": "W", "month": "M", "quarter": "Q"}
_SUMS = ["yhat", "y", "error", "abs_error", "inside"]


@dataclass(frozen=True)
class AccuracyReport:
    """Accuracy overall, by series, by key column, by segment and by calendar period.

    ``overall`` holds n, forecast, actual, wape, bias, coverage (and deviations from
    ``expected``); ``by_series`` adds the tracking signal and its alarm; ``periods`` maps
    week / month / quarter to :func:`period_table`. ``chance_alarms`` (and its standard
    deviation) is the number of alarms unbiased forecasts would raise by chance.
    """

    overall: dict[str, float]
    expected: dict[str, float]
    by_series: pd.DataFrame
    by_key: dict[str, pd.DataFrame]
    by_segment: pd.DataFrame | None
    periods: dict[str, pd.DataFrame]
    tracking_signal_limit: float
    n_series: int
    n_alarms: int
    chance_alarms: float = 0.0
    chance_alarms_sd: float = 0.0


def wape(actual: np.ndarray | pd.Series, forecast: np.ndarray | pd.Series) -> float:
    """Weighted absolute percentage error: sum |forecast - actual| / sum |actual|."""
    denominator = float(np.abs(actual).sum())
    if not denominator:
        return np.nan
    return float(np.abs(np.subtract(forecast, actual)).sum()) / denominator


def bias(actual: np.ndarray | pd.Series, forecast: np.ndarray | pd.Series) -> float:
    """Relative bias: sum (forecast - actual) / sum actual (positive = over-forecast)."""
    denominator = float(np.sum(actual))
    return float(np.subtract(forecast, actual).sum()) / denominator if denominator else np.nan


def coverage(
    actual: np.ndarray | pd.Series, lower: np.ndarray | pd.Series, upper: np.ndarray | pd.Series,
) -> float:
    """Share of actuals inside their prediction interval [lower, upper]."""
    inside = (np.asarray(lower) <= np.asarray(actual)) & (np.asarray(actual) <= np.asarray(upper))
    return float(inside.mean()) if inside.size else np.nan


def prepare(frame: pd.DataFrame) -> pd.DataFrame:
    """Check the columns and add ``error``, ``abs_error`` and ``inside`` (interval hit)."""
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise ValueError(f"forecast/actual frame lacks columns: {', '.join(missing)}")
    data = frame.dropna(subset=["yhat", "y"])
    error = data["yhat"] - data["y"]
    inside = (data["yhat_lower"] <= data["y"]) & (data["y"] <= data["yhat_upper"])
    return data.assign(
        ds=pd.to_datetime(data["ds"]), error=error, abs_error=error.abs(),
        inside=inside.astype(float),
    )


def _metrics(sums: pd.DataFrame, counts: pd.Series) -> pd.DataFrame:
    """WAPE, bias and coverage from per-group sums (vectorised; 0 actuals -> NaN)."""
    actual = sums["y"].where(sums["y"] != 0)
    return pd.DataFrame({
        "n": counts, "forecast": sums["yhat"], "actual": sums["y"],
        "wape": sums["abs_error"] / actual.abs(), "bias": sums["error"] / actual,
        "coverage": sums["inside"] / counts,
    })


def _with_deviation(table: pd.DataFrame, expected: Mapping[str, float]) -> pd.DataFrame:
    extra = {f"{m}_deviation": table[m] - v for m, v in expected.items() if m in table.columns}
    return table.assign(**extra)


def accuracy_by(
    data: pd.DataFrame, column: str, expected: Mapping[str, float] | None = None,
) -> pd.DataFrame:
    """Accuracy per value of ``column`` (series_id, a key, or segment) of a prepared frame."""
    groups = data.groupby(column, observed=True, sort=True)
    table = _metrics(groups[_SUMS].sum(), groups.size())
    return _with_deviation(table, expected or {}).reset_index()


def overall_accuracy(
    data: pd.DataFrame, expected: Mapping[str, float] | None = None,
) -> dict[str, float]:
    """Accuracy of the whole prepared frame, as a flat dict."""
    table = _metrics(data[_SUMS].sum().to_frame().T, pd.Series([len(data)]))
    row = _with_deviation(table, expected or {}).iloc[0]
    return {k: float(v) for k, v in row.items()}


def tracking_signals(data: pd.DataFrame, limit: float) -> pd.DataFrame:
    """Per series, in ds order: cumulative error, MAD, tracking signal and its alarm."""
    ordered = data.sort_values(["series_id", "ds"], kind="stable")
    groups = ordered.groupby("series_id", observed=True, sort=False)
    cumulative = groups["error"].cumsum()
    mad = groups["abs_error"].cumsum() / (groups.cumcount() + 1)
    signal = (cumulative / mad.where(mad > 0)).fillna(0.0)
    last = pd.DataFrame({
        "series_id": ordered["series_id"], "cumulative_error": cumulative, "mad": mad,
        "tracking_signal": signal,
    }).groupby("series_id", observed=True, sort=True).last()
    return last.assign(alarm=last["tracking_signal"].abs() > limit).reset_index()


@lru_cache(maxsize=512)
def chance_alarm_rate(periods: int, limit: float) -> float:
    """P(|tracking signal| > limit) after ``periods`` unbiased iid Gaussian errors.

    Exactly 0 when ``periods <= limit``; otherwise a seeded Monte Carlo estimate
    (2,000 to 20,000 draws, about +-1 %).
    """
    if periods <= limit:
        return 0.0
    draws = max(2000, min(20000, 4_000_000 // periods))
    errors = np.random.default_rng(periods).standard_normal((draws, periods))
    signal = errors.sum(axis=1) / np.abs(errors).mean(axis=1)
    return float(np.mean(np.abs(signal) > limit))


def chance_alarms(periods_per_series: Sequence[int], limit: float) -> tuple[float, float]:
    """Expected number of tracking-signal alarms of unbiased series, and its std."""
    rates = np.array([chance_alarm_rate(int(n), float(limit)) for n in periods_per_series])
    return float(rates.sum()), float(np.sqrt((rates * (1 - rates)).sum()))


def period_table(data: pd.DataFrame, period: str) -> pd.DataFrame:
    """Forecast and actual sums per week (labelled by its Monday), month or quarter, the
    deviation in % of the actual, and the series driving it: the largest absolute
    forecast - actual that period (``driver_deviation``), with its share of all series'
    absolute deviations (``driver_share``)."""
    periods = data["ds"].dt.to_period(PERIODS[period])
    week = period == "week"
    label = periods.dt.start_time.dt.strftime("%Y-%m-%d") if week else periods.astype(str)
    label = label.rename("period")
    totals = data.groupby(label, sort=True)[["yhat", "y"]].sum()
    per_series = data.groupby([label, data["series_id"]], observed=True)["error"].sum()
    per_series = per_series.reset_index().assign(size=lambda t: t["error"].abs())
    top = per_series.sort_values("size", ascending=False, kind="stable")
    top = top.drop_duplicates("period").set_index("period").reindex(totals.index)
    all_series = per_series.groupby("period")["size"].sum().reindex(totals.index)
    return pd.DataFrame({
        "forecast": totals["yhat"], "actual": totals["y"],
        "deviation_pct": 100 * (totals["yhat"] - totals["y"]) / totals["y"].where(totals["y"] != 0),
        "driver_series": top["series_id"], "driver_deviation": top["error"],
        "driver_share": top["size"] / all_series.where(all_series > 0),
    }).reset_index()


def evaluate_accuracy(
    frame: pd.DataFrame, expected: Mapping[str, float] | None = None,
    keys: Sequence[str] = (), tracking_signal_limit: float = 4.0,
) -> AccuracyReport:
    """All accuracy tables of one forecast review (see the module docstring)."""
    expected = dict(expected or {})
    data = prepare(frame)
    if data.empty:
        raise ValueError("no forecast rows with actuals to evaluate")
    signals = tracking_signals(data, tracking_signal_limit)
    by_series = accuracy_by(data, "series_id", expected).merge(signals, on="series_id")
    has_segment = "segment" in data.columns
    chance, chance_sd = chance_alarms(by_series["n"].tolist(), tracking_signal_limit)
    return AccuracyReport(
        overall=overall_accuracy(data, expected), expected=expected, by_series=by_series,
        by_key={k: accuracy_by(data, k, expected) for k in keys if k in data.columns},
        by_segment=accuracy_by(data, "segment", expected) if has_segment else None,
        periods={name: period_table(data, name) for name in PERIODS},
        tracking_signal_limit=tracking_signal_limit,
        n_series=len(by_series), n_alarms=int(signals["alarm"].sum()),
        chance_alarms=chance, chance_alarms_sd=chance_sd,
    )
