"""Forecast accuracy by lag: how good the forecasts were, by how far ahead they were made.

The **lag** of a forecast is the number of periods between the origin it was made from
(the newest complete period of its series, :mod:`features.origin`) and the period it is
for: 1 .. H for a model with horizon H. Made from the week of 2024-01-01 for the week of
2024-01-22 it is lag 3 (weekly); made from January for March, lag 2 (monthly). The API
keeps each series' no-scenario forecast at every origin it reached (the store's
``forecast_history``), so a period with an actual was forecast once at each lag.

**Why a sales & operations review uses it.** Plans are fixed some periods before the
period they are for: a purchase order, a production run or a staffing plan is frozen
one lead time ahead, so the forecast that mattered for it is the one made that many
periods before, not the latest. Accuracy over all forecasts mixes lags and flatters the
process with the easy lag-1 forecasts; the periodic review at the lag the business plans
on (``monitoring.review_lag``) judges the forecast the plan was built on. The table by
lag also shows how fast accuracy decays with distance, i.e. how far ahead the forecast
can be trusted.

Pure functions on frames, no store: ``history`` has the columns of
:meth:`serving.store.PredictionStore.read_forecast_history` (model_version, series_id,
origin, ds, yhat, yhat_lower, yhat_upper, made_at) and ``actuals`` those of
:meth:`~serving.store.PredictionStore.read_actuals` (series_id, ds, y). Only one model
version is judged - by default the current one (the version of the newest forecast): the
monitor judges the served champion. WAPE, bias and coverage are those of
:mod:`serving.monitoring.accuracy` (errors are ``yhat - y``: a positive bias means
over-forecasting); bias is given in % here (``bias_pct``), MAE in the target's unit.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from features.calendar import check_freq, period_numbers
from serving.monitoring.accuracy import PERIODS, accuracy_by, period_table, prepare

log = logging.getLogger(__name__)

REVIEW_PERIODS = ("month", "quarter")
LAG_COLUMNS = ["lag", "n", "n_series", "forecast", "actual", "wape", "bias_pct", "mae",
               "coverage"]
REVIEW_COLUMNS = ["period", "n", "n_series", "forecast", "actual", "wape", "bias_pct", "mae",
                  "coverage", "driver_series", "driver_share"]
PERIOD_WORDS = {"D": "days", "W": "weeks", "M": "months"}


@dataclass(frozen=True)
class LagOptions:
    """How to measure accuracy by lag: the model's frequency (D / W / M), the lag of the
    periodic review, and the model's horizon (the by-lag table then lists lags 1..H)."""

    freq: str
    review_lag: int = 1
    horizon: int | None = None

    def __post_init__(self) -> None:
        check_freq(self.freq)
        if self.review_lag < 1:
            raise ValueError(f"review_lag must be at least 1, got {self.review_lag}")
        if self.horizon is not None and self.horizon < 1:
            raise ValueError(f"horizon must be at least 1, got {self.horizon}")


@dataclass(frozen=True)
class LagAccuracy:
    """Accuracy by forecast lag and the periodic review at ``review_lag``.

    ``by_lag`` has one row per lag (:data:`LAG_COLUMNS`); ``review`` maps month / quarter
    to one row per period of the lag-``review_lag`` forecasts (:data:`REVIEW_COLUMNS`).
    ``summary`` says in one sentence how accuracy decays with lag (or why there is
    nothing to say yet).
    """

    freq: str
    model_version: str | None
    review_lag: int
    horizon: int | None
    summary: str
    n_forecasts: int = 0
    n_series: int = 0
    first_origin: str | None = None
    last_origin: str | None = None
    by_lag: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=LAG_COLUMNS))
    review: dict[str, pd.DataFrame] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return self.n_forecasts == 0


def forecast_lags(origin: pd.Series | np.ndarray, ds: pd.Series | np.ndarray,
                  freq: str) -> np.ndarray:
    """Periods from each origin to its ``ds`` (int64; 1 = the period right after)."""
    return period_numbers(ds, freq) - period_numbers(origin, freq)


def current_version(history: pd.DataFrame) -> str | None:
    """The model version of the newest forecast (by ``made_at``, else by ``origin``)."""
    if history.empty:
        return None
    order = "made_at" if "made_at" in history.columns else "origin"
    newest = history.sort_values([order, "origin"], kind="stable").iloc[-1]
    return str(newest["model_version"])


def join_actuals(history: pd.DataFrame, actuals: pd.DataFrame, freq: str,
                 model_version: str | None = None) -> pd.DataFrame:
    """The forecasts of ``model_version`` (default: the current one) that have their
    actual, with their ``lag`` and the error columns of :func:`accuracy.prepare`."""
    version = model_version if model_version is not None else current_version(history)
    rows = history[history["model_version"].astype(str) == str(version)]
    if rows.empty or actuals.empty:
        return prepare(_empty_joined())
    rows = rows.assign(ds=pd.to_datetime(rows["ds"]), origin=pd.to_datetime(rows["origin"]))
    values = actuals[["series_id", "ds", "y"]].assign(ds=pd.to_datetime(actuals["ds"]))
    joined = rows.merge(values, on=["series_id", "ds"], how="inner")
    joined = joined.assign(lag=forecast_lags(joined["origin"], joined["ds"], freq))
    ahead = joined["lag"] >= 1
    if not ahead.all():
        log.warning("%d forecast-history rows are not after their origin; left out",
                    int((~ahead).sum()))
    return prepare(joined[ahead])


def _empty_joined() -> pd.DataFrame:
    columns = ["model_version", "series_id", "origin", "ds", "yhat", "yhat_lower",
               "yhat_upper", "y", "lag"]
    return pd.DataFrame({c: pd.Series(dtype=float) for c in columns}).astype(
        {"model_version": str, "series_id": str, "origin": "datetime64[ns]",
         "ds": "datetime64[ns]", "lag": "int64"})


def _grouped(data: pd.DataFrame, column: str) -> pd.DataFrame:
    """:func:`accuracy.accuracy_by` plus series count, MAE and bias in % per group."""
    table = accuracy_by(data, column)
    groups = data.groupby(column, observed=True, sort=True)
    extra = pd.DataFrame({"n_series": groups["series_id"].nunique(),
                          "mae": groups["abs_error"].mean()}).reset_index()
    table = table.merge(extra, on=column, how="left")
    return table.assign(bias_pct=100 * table["bias"]).drop(columns="bias")


def accuracy_by_lag(data: pd.DataFrame, horizon: int | None = None) -> pd.DataFrame:
    """One row per lag of a :func:`join_actuals` frame (none when it is empty); with
    ``horizon`` every lag 1..H is listed, those without an actual yet with ``n`` 0 and
    no metric."""
    if data.empty:
        return pd.DataFrame(columns=LAG_COLUMNS)
    table = _grouped(data, "lag")
    if horizon is not None:
        lags = sorted(set(range(1, horizon + 1)) | set(table["lag"].astype(int)))
        table = table.set_index("lag").reindex(lags).rename_axis("lag").reset_index()
    counts = {c: table[c].fillna(0).astype(int) for c in ("lag", "n", "n_series")}
    return table.assign(**counts)[LAG_COLUMNS].astype({c: float for c in LAG_COLUMNS[3:]})


def period_labels(ds: pd.Series, period: str) -> pd.Series:
    """``2024-03`` (month) or ``2024Q1`` (quarter) of each date, as period_table labels."""
    return ds.dt.to_period(PERIODS[period]).astype(str).rename("period")


def lag_review(data: pd.DataFrame, lag: int, period: str = "month") -> pd.DataFrame:
    """The periodic review at ``lag``: per month or quarter of ``ds``, the accuracy of the
    forecasts made ``lag`` periods before, and the series with the largest miss."""
    rows = data[data["lag"] == lag]
    if rows.empty:
        return pd.DataFrame(columns=REVIEW_COLUMNS)
    table = _grouped(rows.assign(period=period_labels(rows["ds"], period)), "period")
    drivers = period_table(rows, period)[["period", "driver_series", "driver_share"]]
    return table.merge(drivers, on="period", how="left")[REVIEW_COLUMNS]


def describe_decay(by_lag: pd.DataFrame) -> str:
    """One sentence: ``WAPE rises from 0.120 at lag 1 to 0.190 at lag 8 (+58 %)``."""
    known = by_lag[by_lag["n"] > 0].dropna(subset=["wape"])
    if known.empty:
        return "No forecast in the history has its actual yet: no accuracy by lag."
    first, last = known.iloc[0], known.iloc[-1]
    start = f"{first['wape']:.3f} at lag {int(first['lag'])}"
    if len(known) == 1:
        return f"WAPE is {start}; no later lag has actuals yet."
    end = f"{last['wape']:.3f} at lag {int(last['lag'])}"
    if round(last["wape"], 3) == round(first["wape"], 3):
        return f"WAPE stays at {first['wape']:.3f} from lag {int(first['lag'])} to lag " \
               f"{int(last['lag'])}."
    verb = "rises" if last["wape"] > first["wape"] else "falls"
    change = _relative_change(first["wape"], last["wape"])
    return f"WAPE {verb} from {start} to {end}{change}."


def _relative_change(before: float, after: float) -> str:
    if before <= 0 or not math.isfinite(after / before):
        return ""
    return f" ({100 * (after / before - 1):+.0f} %)"


def _no_history_summary(history: pd.DataFrame, version: str | None) -> str:
    if history.empty:
        return ("No forecast history yet: the API keeps each series' forecast at every origin "
                "it reaches once actuals are posted.")
    return (f"No forecast of model version {version} in the history has its actual yet: "
            "accuracy by lag appears once actuals arrive.")


def lag_accuracy(history: pd.DataFrame, actuals: pd.DataFrame, options: LagOptions,
                 model_version: str | None = None) -> LagAccuracy:
    """Accuracy by lag and the month / quarter review at ``options.review_lag`` of one
    model version (default: the current one). Empty inputs give an empty result."""
    version = model_version if model_version is not None else current_version(history)
    data = join_actuals(history, actuals, options.freq, version)
    by_lag = accuracy_by_lag(data, options.horizon)
    review = {p: lag_review(data, options.review_lag, p) for p in REVIEW_PERIODS}
    common = {"freq": options.freq, "model_version": version, "review_lag": options.review_lag,
              "horizon": options.horizon, "by_lag": by_lag, "review": review}
    if data.empty:
        return LagAccuracy(summary=_no_history_summary(history, version), **common)
    origins = data["origin"]
    return LagAccuracy(
        summary=describe_decay(by_lag), n_forecasts=len(data),
        n_series=int(data["series_id"].nunique()),
        first_origin=f"{origins.min():%Y-%m-%d}", last_origin=f"{origins.max():%Y-%m-%d}",
        **common,
    )
