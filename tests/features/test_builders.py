"""Calendar, lag, rolling and price features, checked by hand on tiny series."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.calendar import calendar_features, period_numbers, period_starts, shift_periods
from features.lags import (
    default_lags,
    lag_features,
    price_reference,
    ratio_to_reference,
    resolve_lags,
    rolling_features,
    rolling_mean_std,
    series_runs,
)

NAN = np.nan


@pytest.mark.parametrize(
    ("freq", "day", "start"),
    [
        ("D", "2024-03-13", "2024-03-13"),  # a Wednesday is its own period
        ("W", "2024-03-13", "2024-03-11"),  # the week's Monday
        ("W", "2024-03-17", "2024-03-11"),  # Sunday still belongs to that week
        ("W", "2024-03-18", "2024-03-18"),
        ("M", "2024-02-29", "2024-02-01"),
        ("W", "1969-12-31", "1969-12-29"),  # before the epoch, too
    ],
)
def test_a_date_maps_to_its_period_start(freq: str, day: str, start: str) -> None:
    numbers = period_numbers(pd.DatetimeIndex([day]), freq)
    assert period_starts(numbers, freq)[0] == pd.Timestamp(start)


@pytest.mark.parametrize(
    ("freq", "ds", "steps", "expected"),
    [("D", "2024-02-28", 2, "2024-03-01"), ("W", "2024-12-30", 1, "2025-01-06"),
     ("M", "2024-11-01", 3, "2025-02-01")],
)
def test_shift_periods_steps_whole_periods(freq: str, ds: str, steps: int, expected: str) -> None:
    assert shift_periods(pd.DatetimeIndex([ds]), steps, freq)[0] == pd.Timestamp(expected)


def test_calendar_features_of_known_weeks() -> None:
    ds = pd.Series(pd.to_datetime(["2024-01-01", "2024-07-01", "2024-12-30"]))
    features = calendar_features(ds, "W", start=pd.Timestamp("2023-12-25"))
    assert features["month"].tolist() == [1, 7, 12]
    assert features["quarter"].tolist() == [1, 3, 4]
    assert features["week_of_year"].tolist() == [1, 27, 1]  # ISO: 30 Dec 2024 is week 1 of 2025
    assert features["trend"].tolist() == [1, 27, 53]
    assert "day_of_week" not in features
    assert features.loc[0, "sin_year_1"] == pytest.approx(0.0)
    assert features.loc[0, "cos_year_1"] == pytest.approx(1.0)
    assert features.loc[1, "cos_year_1"] == pytest.approx(-1.0, abs=1e-3)  # mid-year
    assert features.loc[1, "cos_year_2"] == pytest.approx(1.0, abs=1e-3)  # two cycles a year
    radius = features["sin_year_2"] ** 2 + features["cos_year_2"] ** 2
    assert radius.to_numpy() == pytest.approx(1.0)


@pytest.mark.parametrize("freq", ["D", "W", "M"])
def test_calendar_arithmetic_agrees_with_the_pandas_date_accessors(freq: str) -> None:
    """Every day of 1968-2101 (ISO years of 52 and 53 weeks, leap days, times of day)."""
    days = pd.date_range("1968-01-01", "2101-12-31", freq="D")
    ds = pd.Series(days + pd.to_timedelta(np.arange(len(days)) % 86_400, unit="s"))
    start = pd.Timestamp("2011-01-03")
    features = calendar_features(ds, freq, start)
    dates = pd.DatetimeIndex(ds)
    expected = {"month": dates.month, "week_of_year": dates.isocalendar().week,
                "quarter": dates.quarter}
    if freq == "D":
        expected |= {"day_of_week": dates.day_of_week, "day_of_month": dates.day}
    for name, values in expected.items():
        np.testing.assert_array_equal(features[name].to_numpy(), np.asarray(values, np.int64))
    year_fraction = (dates.day_of_year.to_numpy(np.float64) - 1.0) / 365.25
    np.testing.assert_array_equal(features["sin_year_1"].to_numpy(),
                                  np.sin(2 * np.pi * year_fraction))
    assert features["trend"].dtype == np.int64


def test_daily_calendar_has_day_of_week_and_monthly_trend_counts_months() -> None:
    days = pd.Series(pd.to_datetime(["2024-03-11", "2024-03-17"]))
    assert calendar_features(days, "D", days[0])["day_of_week"].tolist() == [0, 6]
    months = pd.Series(pd.to_datetime(["2024-02-01"]))
    assert calendar_features(months, "M", pd.Timestamp("2023-11-01"))["trend"].tolist() == [3]


@pytest.mark.parametrize(
    ("lags", "horizon", "freq", "season", "expected"),
    [
        (None, 8, "W", None, (8, 9, 10, 11, 52)),
        (None, 7, "D", None, (7, 8, 9, 10)),  # the 7-day season is not longer than H
        (None, 2, "D", None, (2, 3, 4, 5, 7)),
        (None, 3, "M", None, (3, 4, 5, 6, 12)),
        (None, 4, "W", 13, (4, 5, 6, 7, 13)),
        ([12, 4, 4], 4, "W", None, (4, 12)),
    ],
)
def test_lags_default_to_h_to_h_plus_3_and_a_season(
    lags: list[int] | None, horizon: int, freq: str, season: int | None,
    expected: tuple[int, ...],
) -> None:
    assert resolve_lags(lags, horizon, freq, season) == expected


def test_a_lag_shorter_than_the_horizon_is_refused() -> None:
    with pytest.raises(ValueError, match=r"lags \[1, 3\] are shorter than the horizon \(4\)"):
        resolve_lags([1, 3, 4], 4, "W")
    assert default_lags(60, "W") == [60, 61, 62, 63]


# two series, sorted: a = 1..6, b = 10, 20, 30
SERIES = np.array(["a"] * 6 + ["b"] * 3, dtype=object)
Y = np.array([1, 2, 3, 4, 5, 6, 10, 20, 30], dtype=float)


def test_series_runs_number_series_and_positions() -> None:
    runs, positions = series_runs(SERIES)
    assert runs.tolist() == [0] * 6 + [1] * 3
    assert positions.tolist() == [0, 1, 2, 3, 4, 5, 0, 1, 2]


def test_lags_never_cross_into_another_series() -> None:
    _, positions = series_runs(SERIES)
    lags = lag_features(Y, positions, (2, 3))
    np.testing.assert_array_equal(lags["lag_2"], [NAN, NAN, 1, 2, 3, 4, NAN, NAN, 10])
    np.testing.assert_array_equal(lags["lag_3"], [NAN, NAN, NAN, 1, 2, 3, NAN, NAN, NAN])


def test_rolling_windows_end_h_periods_back_and_need_a_full_window() -> None:
    runs, positions = series_runs(SERIES)
    rolled = rolling_features(Y, runs, positions, horizon=2, windows=(2,))
    # at position p: y[p-3], y[p-2] of the same series
    np.testing.assert_allclose(rolled["roll_mean_2"],
                               [NAN, NAN, NAN, 1.5, 2.5, 3.5, NAN, NAN, NAN])
    np.testing.assert_allclose(rolled["roll_std_2"],
                               [NAN, NAN, NAN, *[np.sqrt(0.5)] * 3, NAN, NAN, NAN])


def test_rolling_std_of_a_known_window() -> None:
    ids = np.array(["a"] * 5, dtype=object)
    runs, positions = series_runs(ids)
    y = np.array([2.0, 4.0, 9.0, 0.0, 0.0])
    rolled = rolling_features(y, runs, positions, horizon=1, windows=(3,))
    assert rolled["roll_mean_3"][3] == pytest.approx(5.0)
    assert rolled["roll_std_3"][3] == pytest.approx(np.sqrt(((-3) ** 2 + 1 + 4 ** 2) / 2))


@pytest.mark.parametrize(("window", "min_periods"), [(1, 1), (3, 3), (4, 1), (7, 7)])
def test_rolling_statistics_are_a_groupby_rolling_bit_for_bit(window: int,
                                                            min_periods: int) -> None:
    """The same pandas kernels on the same bounds: equal to the last bit (the recursive
    strategy's numbers must not move), with gaps, zeros and runs shorter than a window."""
    rng = np.random.default_rng(3)
    runs = np.repeat(np.arange(6), [1, 2, 9, 30, 5, 40])
    values = rng.normal(1e6, 1e3, len(runs))
    values[rng.random(len(runs)) < 0.15] = NAN
    values[rng.random(len(runs)) < 0.2] = 0.0
    mean, std = rolling_mean_std(values, runs, window, min_periods)
    rolling = pd.Series(values).groupby(runs).rolling(window, min_periods=min_periods)
    np.testing.assert_array_equal(mean, rolling.mean().droplevel(0).sort_index().to_numpy())
    np.testing.assert_array_equal(std, rolling.std().droplevel(0).sort_index().to_numpy())


def test_price_ratio_compares_the_price_with_the_level_known_h_periods_back() -> None:
    ids = np.array(["a"] * 5, dtype=object)
    runs, positions = series_runs(ids)
    price = np.array([10.0, 10.0, 12.0, 8.0, 11.0])
    ratio = ratio_to_reference(price, price_reference(price, runs, positions, horizon=1,
                                                      window=2))
    # references: -, 10, mean(10, 10), mean(10, 12), mean(12, 8)
    np.testing.assert_allclose(ratio, [NAN, 1.0, 1.2, 8 / 11, 11 / 10])
