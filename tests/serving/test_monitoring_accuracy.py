"""Forecast accuracy on a hand-built forecast/actual pair; every expected number is
worked out by hand in the comments."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from serving.monitoring.accuracy import (
    bias,
    chance_alarm_rate,
    coverage,
    evaluate_accuracy,
    wape,
)

WEEKS = pd.date_range("2024-01-15", periods=5, freq="W-MON")  # 3 in January, 2 in February


def _pair() -> pd.DataFrame:
    """Series A (store S1, retail): actual 10, forecast 12 every week, interval [11, 13]
    never covers the actual. Series B (store S2, wholesale): actual 20, forecast
    18, 22, 18, 22, 18, interval +-3 always covers it."""
    a = pd.DataFrame({"series_id": "A", "ds": WEEKS, "y": 10.0, "yhat": 12.0,
                      "store": "S1", "segment": "retail"})
    b = pd.DataFrame({"series_id": "B", "ds": WEEKS, "y": 20.0,
                      "yhat": [18.0, 22.0, 18.0, 22.0, 18.0], "store": "S2",
                      "segment": "wholesale"})
    frame = pd.concat([a, b], ignore_index=True)
    lower = np.where(frame["series_id"] == "A", frame["yhat"] - 1, frame["yhat"] - 3)
    upper = np.where(frame["series_id"] == "A", frame["yhat"] + 1, frame["yhat"] + 3)
    return frame.assign(yhat_lower=lower, yhat_upper=upper, category="C1")


EXPECTED = {"wape": 0.1, "coverage": 0.8}


def test_metric_functions_on_arrays() -> None:
    actual, forecast = np.array([10.0, 20.0, 30.0]), np.array([12.0, 15.0, 30.0])
    assert wape(actual, forecast) == pytest.approx(7 / 60)  # (2 + 5 + 0) / 60
    assert bias(actual, forecast) == pytest.approx(-3 / 60)  # (2 - 5 + 0) / 60
    assert coverage(actual, forecast - 3, forecast + 3) == pytest.approx(2 / 3)
    assert np.isnan(wape(np.zeros(2), np.ones(2)))


def test_overall_accuracy_and_deviation_from_the_promise() -> None:
    report = evaluate_accuracy(_pair(), EXPECTED)
    overall = report.overall
    # |errors|: A 5 x 2 = 10, B 5 x 2 = 10; actuals 50 + 100 = 150
    assert overall["wape"] == pytest.approx(20 / 150)
    # errors: A +10, B -2 +2 -2 +2 -2 = -2
    assert overall["bias"] == pytest.approx(8 / 150)
    assert overall["coverage"] == pytest.approx(5 / 10)
    assert overall["wape_deviation"] == pytest.approx(20 / 150 - 0.1)
    assert overall["coverage_deviation"] == pytest.approx(0.5 - 0.8)
    assert (overall["forecast"], overall["actual"]) == (158.0, 150.0)


def test_tracking_signal_per_series_in_date_order() -> None:
    shuffled = _pair().sample(frac=1.0, random_state=3)
    report = evaluate_accuracy(shuffled, EXPECTED, tracking_signal_limit=4)
    series = report.by_series.set_index("series_id")
    # A: cumulative error 10, MAD 2 -> 5 (> 4: alarm); B: cumulative -2, MAD 2 -> -1
    assert series.loc["A", "tracking_signal"] == pytest.approx(5.0)
    assert series.loc["B", "tracking_signal"] == pytest.approx(-1.0)
    assert series["alarm"].to_dict() == {"A": True, "B": False}
    assert (report.n_alarms, report.n_series) == (1, 2)


def test_accuracy_by_series_key_and_segment() -> None:
    report = evaluate_accuracy(_pair(), EXPECTED, keys=("store", "category"))
    series = report.by_series.set_index("series_id")
    assert series.loc["A", "wape"] == pytest.approx(10 / 50)
    assert series.loc["B", "wape"] == pytest.approx(10 / 100)
    assert series.loc["B", "bias"] == pytest.approx(-2 / 100)
    assert series.loc["A", "coverage"] == 0.0 and series.loc["B", "coverage"] == 1.0
    assert series.loc["A", "wape_deviation"] == pytest.approx(0.2 - 0.1)
    store = report.by_key["store"].set_index("store")
    assert store.loc["S1", "wape"] == pytest.approx(0.2)  # one series per store
    category = report.by_key["category"].set_index("category")
    assert category.loc["C1", "wape"] == pytest.approx(20 / 150)
    segment = report.by_segment.set_index("segment")
    assert segment.loc["retail", "bias"] == pytest.approx(10 / 50)
    assert segment.loc["wholesale", "coverage_deviation"] == pytest.approx(1.0 - 0.8)


def test_period_table_names_the_series_driving_the_deviation() -> None:
    report = evaluate_accuracy(_pair(), EXPECTED)
    month = report.periods["month"].set_index("period")
    # January: forecast 36 + 58 = 94, actual 30 + 60 = 90; A +6, B -2
    assert month.loc["2024-01", "forecast"] == 94.0
    assert month.loc["2024-01", "deviation_pct"] == pytest.approx(100 * 4 / 90)
    assert month.loc["2024-01", "driver_series"] == "A"
    assert month.loc["2024-01", "driver_deviation"] == 6.0
    assert month.loc["2024-01", "driver_share"] == pytest.approx(6 / 8)
    # February: forecast 24 + 40 = 64, actual 60; A +4, B 0
    assert month.loc["2024-02", "deviation_pct"] == pytest.approx(100 * 4 / 60)
    quarter = report.periods["quarter"].set_index("period")
    assert quarter.loc["2024Q1", "deviation_pct"] == pytest.approx(100 * 8 / 150)
    assert report.periods["week"]["period"].tolist() == [d.strftime("%Y-%m-%d") for d in WEEKS]


def test_rows_without_actuals_are_left_out_and_missing_columns_refused() -> None:
    frame = _pair()
    frame.loc[frame.index[-1], "y"] = np.nan  # B's last week: no actual yet
    report = evaluate_accuracy(frame, EXPECTED)
    assert report.overall["n"] == 9
    assert report.overall["bias"] == pytest.approx((10 - 0) / 130)  # B's errors: -2 +2 -2 +2
    with pytest.raises(ValueError, match="yhat_upper"):
        evaluate_accuracy(frame.drop(columns="yhat_upper"))


def test_chance_alarm_rate_of_unbiased_tracking_signals() -> None:
    # |TS| <= periods, so within 4 periods a limit of 4 cannot be passed
    assert chance_alarm_rate(4, 4.0) == 0.0
    # rates from an independent simulation (200,000 draws of Gaussian errors)
    assert chance_alarm_rate(5, 4.0) == pytest.approx(0.166, abs=0.015)
    assert chance_alarm_rate(8, 4.0) == pytest.approx(0.275, abs=0.015)
    assert chance_alarm_rate(28, 4.0) == pytest.approx(0.552, abs=0.015)
    report = evaluate_accuracy(_pair(), EXPECTED)  # two series of 5 periods
    assert report.chance_alarms == pytest.approx(2 * chance_alarm_rate(5, 4.0))
