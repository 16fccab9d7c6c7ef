"""Monitoring the served champion from its prediction store: drift, accuracy, verdict.

:func:`monitor_store` reads what the API logged over the last ``window`` (the *current*
data) and judges it against the champion's drift reference (a seeded sample of its
training feature rows) and its backtest promise (``expected``, e.g. the model's
``backtest_metrics``):

* **data drift** (:func:`feature_drift`): per feature, the logged prediction inputs vs
  the reference rows of comparable periods (the last periods before the origin and the
  same season a year earlier, :mod:`serving.monitoring.matched`), lags and rolling
  statistics divided by each row's level; the same inputs vs the whole sample, raw, are
  the second view (reported, not judged). Calendar-like columns - those with one value
  per ``ds`` across every series in the reference (month, week of year, Fourier terms,
  trend, holidays) - are left out: they are known in advance. Identical logged rows (the
  same series, period and inputs asked for again) count once.
* **prediction drift**: the logged forecasts ``yhat`` (the latest one per model version,
  series and period) vs the actuals ``y`` of those comparable reference rows: a
  calibrated model's forecasts are distributed like the sales it was trained on.
* **target drift**: the actuals that arrived for the window's forecasts vs the same ``y``.
* **accuracy**: forecasts joined with their actuals, by series, by key column
  (``series_id`` split on ``"|"`` into the model's ``keys``) and by segment when
  ``series_attributes`` gives one per series, against the ``promise`` (the version's
  backtest rows, :mod:`serving.monitoring.promise`) or ``expected`` alone.
* **accuracy by forecast lag** (with ``lag`` options): the version's whole forecast
  history (each series' forecast at every origin it reached, not only the window's) joined
  with the actuals, by lag and in the month / quarter review at the review lag
  (:mod:`serving.monitoring.lag`). Reported; the verdict does not use it.
* **forecast value added**: the same forecasts with actuals as seasonal naive vs the
  model vs the final number after people's overrides, by author, reason and key
  (:mod:`serving.monitoring.fva`). Reported; the verdict does not use it.

An empty window raises :class:`NoPredictionsError` (a clear message, no crash). This
module reads the store only: no MLflow, no training code.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import pandas as pd

from features.calendar import SEASON_LENGTHS
from serving.monitoring.accuracy import AccuracyReport, evaluate_accuracy
from serving.monitoring.drift import ColumnDrift, DatasetDrift, DriftThresholds, column_drift
from serving.monitoring.drift import dataset_drift as compare_columns
from serving.monitoring.fva import FvaReport, forecast_value_added, fva_frame
from serving.monitoring.lag import LagAccuracy, LagOptions, lag_accuracy
from serving.monitoring.matched import level_column, level_relative, matched_reference
from serving.monitoring.promise import Promise
from serving.monitoring.verdict import MonitorResult, VerdictRule, build_result
from serving.overrides import read_overrides
from serving.store import PredictionStore, features_of, join_actuals

log = logging.getLogger(__name__)

ID_COLUMNS = ("request_id", "created_at", "model_name", "model_version", "series_id", "ds")
NOT_FEATURES = frozenset((*ID_COLUMNS, "y", "yhat", "yhat_lower", "yhat_upper", "features"))
EXPECTED_METRICS = ("wape", "coverage")
KEY_SEPARATOR = "|"


class NoPredictionsError(ValueError):
    """Nothing was logged in the monitoring window: there is nothing to judge."""


def describe_window(window: timedelta) -> str:
    """``28 days`` / ``36 hours``: a window in words."""
    if window.total_seconds() % 86400 == 0:
        days = int(window.total_seconds() // 86400)
        return f"{days} day{'s' if days != 1 else ''}"
    return f"{window.total_seconds() / 3600:g} hours"


def describe_periods(periods: Periods) -> str:
    """`` for periods 2024-09-09 .. 2024-10-28`` (empty when unbounded)."""
    first, last = periods
    if first is None and last is None:
        return ""
    shown = [f"{p:%Y-%m-%d}" if p is not None else "..." for p in (first, last)]
    return f" for periods {shown[0]} .. {shown[1]}"


def parse_window(text: str) -> timedelta:
    """A pandas offset like ``28D`` or ``12h`` as a positive timedelta (ValueError otherwise)."""
    try:
        window = pd.Timedelta(text).to_pytimedelta()
    except (ValueError, TypeError):
        raise ValueError(f"window {text!r} is not a duration such as 28D or 12h") from None
    if window <= timedelta(0):
        raise ValueError(f"window {text!r} must be positive")
    return window


def calendar_columns(reference: pd.DataFrame, columns: Sequence[str]) -> list[str]:
    """Columns with exactly one value per ``ds`` (shared by all series) that still vary
    over time: known in advance, so a short window always differs from the reference."""
    if "ds" not in reference.columns or reference["ds"].duplicated().sum() == 0:
        return []
    by_ds = reference.groupby("ds")
    found = []
    for column in columns:
        one_per_ds = by_ds[column].nunique(dropna=False).max() <= 1
        if one_per_ds and reference[column].nunique(dropna=True) > 1:
            found.append(column)
    return found


def expected_accuracy(backtest_metrics: Mapping[str, float]) -> dict[str, float]:
    """The backtest's promise in the accuracy report's terms: wape, coverage, bias (ratio)."""
    expected = {m: float(backtest_metrics[m]) for m in EXPECTED_METRICS if m in backtest_metrics}
    if "bias_pct" in backtest_metrics:
        expected["bias"] = float(backtest_metrics["bias_pct"]) / 100.0
    elif "bias" in backtest_metrics:
        expected["bias"] = float(backtest_metrics["bias"])
    return expected


def latest_forecasts(predictions: pd.DataFrame) -> pd.DataFrame:
    """The most recent forecast per (model_version, series_id, ds)."""
    ordered = predictions.sort_values("created_at", kind="stable")
    return ordered.drop_duplicates(["model_version", "series_id", "ds"], keep="last")


def with_keys(frame: pd.DataFrame, keys: Sequence[str],
              series_attributes: pd.DataFrame | None = None) -> pd.DataFrame:
    """Add the key columns (``series_id`` split on "|") and the per-series attributes."""
    if keys:
        parts = frame["series_id"].astype(str).str.split(KEY_SEPARATOR, expand=True)
        if parts.shape[1] == len(keys):
            frame = frame.assign(**{k: parts[i] for i, k in enumerate(keys)})
        else:
            log.warning("series ids do not split into the keys %s; no accuracy by key", keys)
    if series_attributes is not None and not series_attributes.empty:
        extra = [c for c in series_attributes.columns if c != "series_id" and c not in frame]
        attributes = series_attributes[["series_id", *extra]].astype({"series_id": str})
        frame = frame.merge(attributes, on="series_id", how="left")
    return frame


@dataclass(frozen=True)
class FeatureDrift:
    """The judged view (window-matched reference, level-relative target features) and the
    whole-history view of the same logged inputs; the calendar columns left out."""

    matched: DatasetDrift | None
    history: DatasetDrift | None
    calendar: list[str]
    reference: str = ""  # which reference rows the matched view used, in words
    level: str | None = None  # the column target-derived features were divided by
    rows: pd.DataFrame | None = None  # the matched reference rows (for y and yhat)


def feature_drift(reference: pd.DataFrame, current: pd.DataFrame,
                  thresholds: DriftThresholds) -> FeatureDrift:
    """Drift of the logged model inputs: against the reference rows of comparable periods
    (the last periods before the origin and the same season a year earlier) with lags and
    rolling statistics relative to each row's level, and against the whole history."""
    common = [c for c in reference.columns if c in current.columns and c not in NOT_FEATURES]
    calendar = calendar_columns(reference, common)
    compared = [c for c in common if c not in calendar]
    if current.empty or not compared:
        return FeatureDrift(None, None, calendar)
    rows = current.drop_duplicates(["series_id", "ds", *compared])
    matched = matched_reference(reference, rows)
    relative_reference, relative_columns = level_relative(matched.frame, compared)
    relative_rows, _ = level_relative(rows, compared)
    judged = compare_columns(relative_reference, relative_rows, thresholds, relative_columns)
    history = compare_columns(reference, rows, thresholds, compared)
    return FeatureDrift(judged, history, calendar, matched.description,
                        level_column(compared), matched.frame)


def _column_drift(reference: pd.DataFrame, values: pd.Series, thresholds: DriftThresholds,
                  name: str) -> ColumnDrift | None:
    """Drift of ``values`` against reference ``y`` (None without data on either side)."""
    if "y" not in reference.columns or values.dropna().empty:
        return None
    return column_drift(reference["y"].astype(float), values.astype(float), thresholds, name)


def review_accuracy(joined: pd.DataFrame, expected: Mapping[str, float], keys: Sequence[str],
                    series_attributes: pd.DataFrame | None, thresholds: DriftThresholds,
                    promise: Promise | None = None) -> AccuracyReport | None:
    """The forecast review of the window's forecasts whose actuals arrived (None if none),
    compared with the ``promise`` (else with ``expected`` alone)."""
    if joined.empty:
        return None
    frame = with_keys(joined, keys, series_attributes)
    return evaluate_accuracy(frame, expected, keys, thresholds.tracking_signal_limit, promise)


Periods = tuple[pd.Timestamp | None, pd.Timestamp | None]


def _in_window(frame: pd.DataFrame, model_version: str | None, periods: Periods) -> pd.DataFrame:
    """The rows of ``model_version`` (all when None) whose ``ds`` is within ``periods``."""
    keep = pd.Series(True, index=frame.index)
    if model_version is not None:
        keep &= frame["model_version"] == model_version
    first, last = periods
    if first is not None:
        keep &= pd.to_datetime(frame["ds"]) >= first
    if last is not None:
        keep &= pd.to_datetime(frame["ds"]) <= last
    return frame[keep]


def _read_window(store: PredictionStore, since: datetime, model_version: str | None,
                 periods: Periods) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Latest forecasts, logged inputs, and forecasts joined with actuals, of the window
    (the log is read, and compact answers expanded, once)."""
    predictions = mark_cold_start(store.read_predictions(since), store.read_cold_start(since))
    frames = (predictions, features_of(predictions),
              join_actuals(predictions, store.read_actuals(), latest_only=True))
    predictions, features, joined = (_in_window(f, model_version, periods) for f in frames)
    return latest_forecasts(predictions), features, joined


def mark_cold_start(predictions: pd.DataFrame, cold: pd.DataFrame) -> pd.DataFrame:
    """``predictions`` with a ``cold_start`` column: True on the rows of new series'
    forecasts (serving.cold_start), matched by request, series and ds."""
    keys = set(zip(cold["request_id"], cold["series_id"], pd.to_datetime(cold["ds"]),
                   strict=True))
    flags = [(r, s, d) in keys for r, s, d in zip(
        predictions["request_id"], predictions["series_id"], pd.to_datetime(predictions["ds"]),
        strict=True)] if keys else False
    return predictions.assign(cold_start=flags)


def read_fva(store: PredictionStore, joined: pd.DataFrame, keys: Sequence[str],
             series_attributes: pd.DataFrame | None, freq: str | None) -> FvaReport | None:
    """Forecast value added of the window's forecasts with actuals (None when none):
    naive (seasonal, from the store's actuals) vs model vs final, with the overrides'
    authors and reasons (:mod:`serving.monitoring.fva`)."""
    if joined.empty:
        return None
    season = SEASON_LENGTHS[freq] if freq is not None else None
    frame = fva_frame(with_keys(joined, keys, series_attributes), store.read_actuals(),
                      read_overrides(store), freq, season)
    return forecast_value_added(frame, keys, season)


def read_lag_accuracy(store: PredictionStore, options: LagOptions,
                      model_version: str | None = None) -> LagAccuracy:
    """Accuracy by forecast lag of ``model_version`` (default: the newest version in the
    forecast history) from the store's forecast history and actuals."""
    history = store.read_forecast_history()
    actuals = store.read_actuals() if not history.empty else pd.DataFrame(
        columns=["series_id", "ds", "y"])
    return lag_accuracy(history, actuals, options, model_version)


def _context(now: datetime, window: timedelta, forecasts: pd.DataFrame, features: pd.DataFrame,
             joined: pd.DataFrame, drift: FeatureDrift, periods: Periods) -> dict[str, str]:
    versions = sorted(forecasts["model_version"].astype(str).unique())
    return {
        "window": f"last {describe_window(window)} ({(now - window).isoformat(timespec='seconds')}"
                  f" .. {now.isoformat(timespec='seconds')}){describe_periods(periods)}",
        "model_version": ", ".join(versions),
        "forecasts": f"{len(forecasts):,} (series x period, latest per model version)",
        "logged_inputs": f"{len(features):,} rows with feature values",
        "with_actuals": f"{len(joined):,} forecasts with their actual",
        "calendar_columns_not_compared": ", ".join(drift.calendar) or "none",
        "drift_reference": drift.reference or "none",
        "judged_relative_to": (f"{drift.level} (lags and rolling statistics divided by it)"
                               if drift.level else "none"),
        "generated": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def monitor_store(
    store: PredictionStore, reference: pd.DataFrame, expected: Mapping[str, float],
    thresholds: DriftThresholds, window: timedelta, now: datetime | None = None,
    keys: Sequence[str] = (), series_attributes: pd.DataFrame | None = None,
    model_version: str | None = None, rule: VerdictRule | None = None,
    lag: LagOptions | None = None, periods: Periods = (None, None),
    promise: Promise | None = None,
) -> MonitorResult:
    """Drift, accuracy and the verdict of the forecasts logged in the last ``window``.

    ``expected`` is the backtest's promise (``backtest_metrics`` are translated by
    :func:`expected_accuracy`); ``model_version`` restricts the window to one version.
    With ``lag`` the result also has the accuracy by forecast lag of that version.
    ``periods`` (first, last ``ds``, either may be None) keeps only the forecasts of those
    periods: "the forecasts for September and October", whenever they were logged.
    ``promise`` (the champion's backtest rows, :mod:`serving.monitoring.promise`) lets
    accuracy be judged with the promise's own noise; without it ``expected`` alone.
    Raises :class:`NoPredictionsError` when nothing was logged in the window.
    """
    now = now or datetime.now(UTC)
    now = now if now.tzinfo is not None else now.replace(tzinfo=UTC)
    forecasts, features, joined = _read_window(store, now - window, model_version, periods)
    if forecasts.empty:
        which = f" by model version {model_version}" if model_version else ""
        which += describe_periods(periods)
        raise NoPredictionsError(f"no predictions logged{which} in the last "
                                 f"{describe_window(window)} (since {now - window:%Y-%m-%d %H:%M} "
                                 "UTC): nothing to monitor yet")
    drift = feature_drift(reference, features, thresholds)
    actuals = (joined.drop_duplicates(["series_id", "ds"])["y"] if not joined.empty
               else pd.Series(dtype=float))
    comparable = drift.rows if drift.rows is not None else reference
    result = build_result(
        thresholds, drift=drift.matched, history_drift=drift.history,
        prediction_drift=_column_drift(comparable, forecasts["yhat"], thresholds, "yhat"),
        target_drift=_column_drift(comparable, actuals, thresholds, "y"),
        accuracy=review_accuracy(joined, expected_accuracy(expected), keys, series_attributes,
                                 thresholds, promise),
        context=_context(now, window, forecasts, features, joined, drift, periods),
        rule=rule, served=True,
    )
    result = replace(result, fva=read_fva(store, joined, keys, series_attributes,
                                          lag.freq if lag is not None else None))
    if lag is None:
        return result
    return replace(result, lag_accuracy=read_lag_accuracy(store, lag, model_version))
