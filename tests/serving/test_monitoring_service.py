"""monitor_store on a hand-filled prediction store: the window, keys, calendar columns,
the backtest promise and the empty-window error (no model, no training)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from serving.monitoring.drift import DriftThresholds
from serving.monitoring.service import (
    NoPredictionsError,
    calendar_columns,
    expected_accuracy,
    monitor_store,
    parse_window,
)
from serving.store import Actual, PredictionStore

NOW = datetime(2030, 3, 1, tzinfo=UTC)
SERIES = ["S1|A", "S1|B", "S2|A", "S2|B"]


def _reference(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ds = pd.date_range("2029-01-07", periods=50, freq="7D")
    frame = pd.DataFrame([(s, d) for s in SERIES for d in ds], columns=["series_id", "ds"])
    return frame.assign(price=rng.normal(10, 1, len(frame)), trend=frame["ds"].rank(
        method="dense"), y=rng.normal(100, 10, len(frame)))


def _fill(store: PredictionStore, created: datetime, price_shift: float, bias: float,
          seed: int = 1) -> None:
    rng = np.random.default_rng(seed)
    rows, actuals = [], []
    for i, (series, day) in enumerate((s, d) for s in SERIES for d in range(8)):
        ds = date(2030, 1, 6) + timedelta(days=7 * day)
        y = float(rng.normal(100, 10))
        yhat = y * (1 + bias)
        features = json.dumps({"price": float(rng.normal(10 + price_shift, 1)), "trend": 60 + day})
        rows.append((f"r{i}", created.replace(tzinfo=None), "m", "1", series, ds.isoformat(),
                     yhat, yhat - 15, yhat + 15, features, None))
        actuals.append(Actual(series, ds, y))
    store.write_predictions(rows)
    store.upsert_actuals(actuals)


@pytest.fixture
def store(tmp_path: Path) -> PredictionStore:
    opened = PredictionStore(f"sqlite:///{tmp_path / 'p.db'}")
    yield opened
    opened.dispose()


def test_accurate_stable_forecasts_are_ok_with_accuracy_by_key(store: PredictionStore) -> None:
    _fill(store, NOW - timedelta(days=1), price_shift=0.0, bias=0.0)
    result = monitor_store(store, _reference(), {"wape": 0.1, "coverage": 0.8, "bias_pct": 0.0},
                           DriftThresholds(), timedelta(days=28), now=NOW,
                           keys=["store", "product"])
    assert result.verdict.status == "ok", result.verdict.reasons
    assert result.accuracy.overall["wape"] == pytest.approx(0.0)
    assert sorted(result.accuracy.by_key["store"]["store"]) == ["S1", "S2"]
    assert [c.column for c in result.drift.columns] == ["price"]  # trend: calendar-like


def test_shifted_inputs_and_biased_forecasts_mean_retrain(store: PredictionStore) -> None:
    _fill(store, NOW - timedelta(days=1), price_shift=3.0, bias=0.5)
    result = monitor_store(store, _reference(), {"wape": 0.1, "coverage": 0.8},
                           DriftThresholds(), timedelta(days=28), now=NOW)
    assert result.verdict.status == "retrain"
    assert result.drift.drifted_columns == ["price"]
    assert result.prediction_drift is not None and result.prediction_drift.drifted
    assert result.target_drift is not None and not result.target_drift.drifted


def test_implausible_stored_actuals_are_ignored_not_fatal(store: PredictionStore,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    """Rows the API refuses today (written before the check, or by hand) are left out and
    logged: before, two actuals of +-1e308 made every monitor run fail (OverflowError)."""
    _fill(store, NOW - timedelta(days=1), price_shift=0.0, bias=0.0)
    store.upsert_actuals([Actual("S1|A", date(2030, 1, 6), 1e308),
                          Actual("S1|B", date(2030, 1, 6), -1e308),
                          Actual("S2|A", date(2030, 1, 6), float("inf"))])
    result = monitor_store(store, _reference(), {"wape": 0.1, "coverage": 0.8, "bias_pct": 0.0},
                           DriftThresholds(), timedelta(days=28), now=NOW)
    assert result.verdict.status == "ok", result.verdict.reasons
    assert result.accuracy.overall["wape"] == pytest.approx(0.0)
    assert result.accuracy.overall["n"] == len(SERIES) * 8 - 3
    assert "ignoring 3 stored actual(s) with an implausible y" in caplog.text


def test_only_the_window_counts_and_an_empty_one_is_a_clear_error(store: PredictionStore) -> None:
    _fill(store, NOW - timedelta(days=40), price_shift=3.0, bias=0.5)
    with pytest.raises(NoPredictionsError, match="no predictions logged in the last 28 days"):
        monitor_store(store, _reference(), {}, DriftThresholds(), timedelta(days=28), now=NOW)
    result = monitor_store(store, _reference(), {}, DriftThresholds(), timedelta(days=60), now=NOW)
    assert result.drift.drifted_columns == ["price"]


def test_calendar_columns_are_those_shared_by_every_series_per_period() -> None:
    reference = _reference().assign(store_level=lambda f: f["series_id"].str[:2])
    assert calendar_columns(reference, ["price", "trend", "store_level"]) == ["trend"]


def test_backtest_metrics_become_the_accuracy_promise() -> None:
    promise = expected_accuracy({"wape": 0.2, "coverage": 0.8, "bias_pct": 5.0, "mase": 0.9})
    assert promise == {"wape": 0.2, "coverage": 0.8, "bias": pytest.approx(0.05)}


@pytest.mark.parametrize("text", ["x", "-3D", "0D"])
def test_bad_windows_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="window"):
        parse_window(text)
