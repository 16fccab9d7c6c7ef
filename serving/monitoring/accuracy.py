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
28 (it cannot happen within 4 periods, as |TS| <= periods). And a real model's errors are
neither unbiased nor independent from week to week: the demo's champion raises alarms on
about 58 % of its series over its own 8 backtest weeks, while it keeps its promise. So the
report gives ``chance_alarms``, the alarms expected by chance, and the verdict judges only
the excess: with the champion's backtest rows, at the backtest's own alarm rate over the
same number of periods (:func:`chance_from_backtest`); without them (or when the
backtest shows fewer), for unbiased Gaussian errors over the periods observed
(:func:`chance_alarm_rate`).

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

from serving.monitoring.levels import cold_start_accuracy, level_groups, level_summary
from serving.monitoring.promise import Promise, PromiseCheck, check_promise

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
    promise_check: PromiseCheck | None = None
    chance_basis: str = "unbiased forecasts over the periods observed"
    # roll-up accuracy per level and per key value, new series apart (monitoring.levels)
    by_level: pd.DataFrame | None = None
    by_level_group: dict[str, pd.DataFrame] | None = None
    cold_start: pd.DataFrame | None = None


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


def backtest_alarm_rate(rows: pd.DataFrame, periods: int, limit: float) -> tuple[float, int]:
    """Share of series whose tracking signal over their first ``periods`` backtest periods
    is beyond ``limit``, and how many series that is of: the alarms this model raised
    while it kept its promise (its own bias and autocorrelated errors included). Series
    with fewer backtest periods than ``periods`` are left out (0 of 0 when none has them)."""
    data = prepare(rows).sort_values(["series_id", "ds"], kind="stable")
    data = data[data.groupby("series_id", observed=True).cumcount() < max(periods, 1)]
    long_enough = data.groupby("series_id", observed=True)["ds"].transform("size") >= periods
    signals = tracking_signals(data[long_enough], limit)
    return (float(signals["alarm"].mean()) if len(signals) else np.nan), len(signals)


def chance_from_backtest(rows: pd.DataFrame, periods_per_series: Sequence[int],
                         limit: float) -> tuple[float, float, str] | None:
    """Alarms expected at the backtest's own rate, the std of (current - expected) (both
    samples' binomial noise), and the basis in words; None when the backtest has no
    series as long as the current window (a 4-week backtest cannot tell how often an
    8-week tracking signal passes 4)."""
    n = len(periods_per_series)
    periods = int(np.median(periods_per_series)) if n else 0
    rate, n_backtest = backtest_alarm_rate(rows, periods, limit)
    if not n_backtest:
        return None
    variance = n * rate * (1 - rate) + n**2 * rate * (1 - rate) / n_backtest
    basis = (f"the backtest's own rate over its first {periods} periods: "
             f"{rate:.0%} of {n_backtest} series")
    return rate * n, float(np.sqrt(variance)), basis


def _chance(by_series: pd.DataFrame, limit: float, promise: Promise) -> tuple[float, float, str]:
    """The backtest's own alarm rate, but never fewer alarms than unbiased independent
    errors would raise over the periods observed (a small backtest can show none)."""
    periods = by_series["n"].astype(int).tolist()
    chance, sd = chance_alarms(periods, limit)
    unbiased = (chance, sd, "unbiased forecasts over the periods observed")
    own = chance_from_backtest(promise.rows, periods, limit) if promise.has_rows else None
    return unbiased if own is None or own[0] < chance else own


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
    promise: Promise | None = None,
) -> AccuracyReport:
    """All accuracy tables of one forecast review (see the module docstring), and the
    comparison with the promise (``promise``, else ``expected`` alone)."""
    expected = dict(expected or {})
    data = prepare(frame)
    if data.empty:
        raise ValueError("no forecast rows with actuals to evaluate")
    promise = promise if promise is not None else Promise(expected=expected)
    check = check_promise(data, promise) if promise.has_rows or expected else None
    signals = tracking_signals(data, tracking_signal_limit)
    by_series = accuracy_by(data, "series_id", expected).merge(signals, on="series_id")
    has_segment = "segment" in data.columns
    chance, chance_sd, basis = _chance(by_series, tracking_signal_limit, promise)
    return AccuracyReport(
        overall=overall_accuracy(data, expected), expected=expected, by_series=by_series,
        by_key={k: accuracy_by(data, k, expected) for k in keys if k in data.columns},
        by_segment=accuracy_by(data, "segment", expected) if has_segment else None,
        periods={name: period_table(data, name) for name in PERIODS},
        tracking_signal_limit=tracking_signal_limit,
        n_series=len(by_series), n_alarms=int(signals["alarm"].sum()),
        chance_alarms=chance, chance_alarms_sd=chance_sd, promise_check=check,
        chance_basis=basis, by_level=level_summary(data, keys),
        by_level_group={k: level_groups(data, k) for k in keys if k in data.columns},
        cold_start=cold_start_accuracy(data),
    )
