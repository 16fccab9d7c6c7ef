"""The fair drift reference: comparable periods picked exactly, and target-derived features
relative to the series level so a growing business does not look like drift."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from serving.monitoring.drift import DriftThresholds, dataset_drift
from serving.monitoring.matched import (
    MIN_MATCHED_ROWS,
    level_column,
    level_relative,
    matched_reference,
    target_derived,
)

THRESHOLDS = DriftThresholds()
START, WEEKS = pd.Timestamp("2021-01-04"), 156  # Mondays 2021-01-04 .. 2023-12-25


def _weekly(n_series: int, first: pd.Timestamp = START, weeks: int = WEEKS) -> pd.DataFrame:
    ds = pd.date_range(first, periods=weeks, freq="7D")
    return pd.DataFrame({"series_id": np.repeat([f"S{s}" for s in range(n_series)], weeks),
                         "ds": np.tile(ds, n_series), "price": 1.0})


def _chosen(frame: pd.DataFrame) -> list[pd.Timestamp]:
    return sorted(frame["ds"].unique())


# --- matched reference -----------------------------------------------------------------


@pytest.mark.parametrize("current_start", ["2024-01-01", "2023-12-31"])  # Mondays, Sundays
def test_matched_reference_is_the_recent_periods_and_the_season_a_year_earlier(
    current_start: str,
) -> None:
    reference = _weekly(5)
    current = _weekly(3, pd.Timestamp(current_start), weeks=8)
    matched = matched_reference(reference, current)
    expected = [*pd.date_range("2023-01-02", periods=8, freq="7D"),  # a year earlier
                *pd.date_range("2023-11-06", periods=8, freq="7D")]  # last 8 up to 2023-12-25
    assert matched.view == "matched"
    assert _chosen(matched.frame) == expected
    assert len(matched.frame) == 5 * 16
    assert matched.description.startswith("last 8 periods up to 2023-12-25 (40 rows) and ")
    assert matched.description.endswith("a year earlier (40 rows)")


def test_a_short_window_still_gets_four_recent_periods_and_origin_moves_them() -> None:
    reference = _weekly(20)
    current = _weekly(3, pd.Timestamp("2023-07-03"), weeks=2)
    matched = matched_reference(reference, current, origin=pd.Timestamp("2023-06-26"))
    expected = [*pd.date_range("2022-07-04", periods=2, freq="7D"),
                *pd.date_range("2023-06-05", periods=4, freq="7D")]
    assert _chosen(matched.frame) == expected


def test_too_few_comparable_rows_fall_back_to_the_whole_history() -> None:
    reference = _weekly(2, weeks=30)  # no season a year earlier; 8 recent weeks: 16 rows
    current = _weekly(2, START + pd.Timedelta(weeks=30), weeks=8)
    fallback = matched_reference(reference, current)
    assert fallback.view == "whole history" and fallback.frame is reference
    assert f"only 16 rows from comparable periods (< {MIN_MATCHED_ROWS})" in fallback.description
    no_dates = matched_reference(reference.drop(columns="ds"), current)
    assert no_dates.view == "whole history" and "no periods" in no_dates.description


# --- level-relative features ------------------------------------------------------------


def test_target_derived_columns_and_the_longest_rolling_mean() -> None:
    columns = ["lag_8", "roll_mean_4", "roll_std_13", "roll_mean_13", "price", "cust_n_lag8",
               "share_retail", "lag_x"]
    assert target_derived(columns) == ["lag_8", "roll_mean_4", "roll_std_13", "roll_mean_13"]
    assert level_column(columns) == "roll_mean_13"  # by window, not "13" < "4" as text
    assert level_column(["lag_8", "price"]) is None


def test_level_relative_divides_by_the_longest_rolling_mean_and_drops_it() -> None:
    frame = pd.DataFrame({
        "series_id": ["a", "a", "b", "b"], "lag_8": [10.0, 20, 30, 5],
        "roll_mean_4": [8.0, 10, 12, 1], "roll_std_4": [2.0, 2, 3, 1],
        "roll_mean_13": [5.0, 10, 0, np.nan], "price": [1.0, 2, 3, 4],
    })
    columns = ["lag_8", "roll_mean_4", "roll_std_4", "roll_mean_13", "price"]
    relative, compared = level_relative(frame, columns)
    assert compared == ["lag_8", "roll_mean_4", "roll_std_4", "price"]
    assert "roll_mean_13" not in relative.columns
    nan = math.nan
    assert relative["lag_8"].tolist() == pytest.approx([2.0, 2.0, nan, nan], nan_ok=True)
    assert relative["roll_mean_4"].tolist() == pytest.approx([1.6, 1.0, nan, nan], nan_ok=True)
    assert relative["roll_std_4"].tolist() == pytest.approx([0.4, 0.2, nan, nan], nan_ok=True)
    pd.testing.assert_series_equal(relative["price"], frame["price"])
    assert relative["series_id"].tolist() == ["a", "a", "b", "b"]


def test_without_a_rolling_mean_the_level_is_the_mean_of_the_lags() -> None:
    frame = pd.DataFrame({"lag_8": [10.0, np.nan, 0], "lag_9": [30.0, 4, 0],
                          "roll_std_4": [4.0, 2, 1], "promo": [0, 1, 0]})
    columns = ["lag_8", "lag_9", "roll_std_4", "promo"]
    relative, compared = level_relative(frame, columns)
    assert compared == columns
    nan = math.nan
    assert relative["lag_8"].tolist() == pytest.approx([0.5, nan, nan], nan_ok=True)
    assert relative["lag_9"].tolist() == pytest.approx([1.5, 1.0, nan], nan_ok=True)
    assert relative["roll_std_4"].tolist() == pytest.approx([0.2, 0.5, nan], nan_ok=True)
    assert relative["promo"].tolist() == [0, 1, 0]
    unchanged, names = level_relative(frame, ["promo", "roll_std_4"])  # no level at all
    assert unchanged is frame and names == ["promo", "roll_std_4"]


H, LAGS, WINDOWS = 8, (8, 9, 10, 11), (4, 13)


def _target_features(y: np.ndarray) -> dict[str, np.ndarray]:
    """lag_k = y k periods back; roll_mean_w / roll_std_w over the w periods ending H back."""
    out: dict[str, np.ndarray] = {}
    for k in LAGS:
        lagged = np.full_like(y, np.nan)
        lagged[:, k:] = y[:, :-k]
        out[f"lag_{k}"] = lagged
    for w in WINDOWS:
        windows = sliding_window_view(y, w, axis=1)  # windows[:, j] ends at period j + w - 1
        for name, values in (("mean", windows.mean(-1)), ("std", windows.std(-1, ddof=1))):
            rolled = np.full_like(y, np.nan)
            rolled[:, H + w - 1:] = values[:, : y.shape[1] - H - w + 1]
            out[f"roll_{name}_{w}"] = rolled
    return out


def _growing_panel(n_series: int = 20, seed: int = 0) -> pd.DataFrame:
    """Weekly sales doubling over 3 years (a different size per series, 10 % noise)."""
    rng = np.random.default_rng(seed)
    growth = 2.0 ** (np.arange(WEEKS) / WEEKS)
    y = rng.lognormal(4, 0.5, (n_series, 1)) * growth * rng.lognormal(0, 0.1, (n_series, WEEKS))
    features = {name: values.ravel() for name, values in _target_features(y).items()}
    return _weekly(n_series).assign(price=rng.normal(10, 1, n_series * WEEKS), y=y.ravel(),
                                    **features)


def test_growth_is_drift_of_the_raw_features_but_not_of_the_relative_ones() -> None:
    panel = _growing_panel().dropna()
    first = panel[panel["ds"] < START + pd.DateOffset(years=1)]
    last = panel[panel["ds"] >= START + pd.DateOffset(years=2)]
    columns = [*(f"lag_{k}" for k in LAGS), "roll_mean_4", "roll_std_4", "roll_mean_13",
               "roll_std_13", "price"]
    # rows counted as independent (no cluster): the most sensitive comparison
    raw = dataset_drift(first, last, THRESHOLDS, columns, cluster=None)
    assert sorted(raw.drifted_columns) == sorted(c for c in columns if c != "price")
    relative_first, compared = level_relative(first, columns)
    relative_last, _ = level_relative(last, columns)
    relative = dataset_drift(relative_first, relative_last, THRESHOLDS, compared, cluster=None)
    assert [c.column for c in relative.columns] == [c for c in columns if c != "roll_mean_13"]
    assert relative.drifted_columns == []
