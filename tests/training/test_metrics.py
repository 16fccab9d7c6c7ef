"""Forecast metrics against values computed by hand on tiny frames."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from training.metrics import (
    METRIC_NAMES,
    compute_metrics,
    metrics_by_group,
    naive_rmse,
    pinball_loss,
    seasonal_naive_mae,
    wape,
)

# y, yhat, interval: errors (yhat - y) = +2, -2, +3; the third y lies above its upper bound.
THREE_ROWS = pd.DataFrame({
    "series_id": ["a", "a", "b"],
    "y": [10.0, 20.0, 30.0],
    "yhat": [12.0, 18.0, 33.0],
    "yhat_lower": [8.0, 19.0, 25.0],
    "yhat_upper": [14.0, 25.0, 29.0],
})

# Hand computation, level 0.8 -> quantiles 0.1 (lower) and 0.9 (upper):
#   lower: y - lower = 2, 1, 5 (all above)  -> 0.1 * (2 + 1 + 5) / 3      = 0.8 / 3
#   upper: y - upper = -4, -5, 1            -> (0.1 * 4 + 0.1 * 5 + 0.9 * 1) / 3 = 1.8 / 3
EXPECTED = {
    "wape": 7 / 60,
    "mae": 7 / 3,
    "rmse": math.sqrt(17 / 3),
    "smape": (200 * 2 / 22 + 200 * 2 / 38 + 200 * 3 / 63) / 3,
    "mase": (7 / 3) / 2.0,
    "rmsse": math.sqrt(17 / 3) / 4.0,
    "bias_pct": 3 / 60 * 100,
    "coverage": 2 / 3,
    "pinball": (0.8 / 3 + 1.8 / 3) / 2,
}


def test_every_metric_name_is_computed_and_nothing_else() -> None:
    assert set(compute_metrics(THREE_ROWS, 0.8, 2.0, 4.0)) == set(METRIC_NAMES)
    assert set(EXPECTED) == set(METRIC_NAMES)  # each metric has a hand-computed case


@pytest.mark.parametrize("name", METRIC_NAMES)
def test_metric_matches_the_hand_computed_value(name: str) -> None:
    assert compute_metrics(THREE_ROWS, 0.8, 2.0, 4.0)[name] == pytest.approx(EXPECTED[name])


def test_mase_with_per_series_scales_is_averaged_over_series() -> None:
    # MAE a = (2 + 2) / 2 = 2 over scale 1; MAE b = 3 over scale 3 -> (2 + 1) / 2
    scales = pd.Series({"a": 1.0, "b": 3.0})
    assert compute_metrics(THREE_ROWS, 0.8, scales)["mase"] == pytest.approx(1.5)


def test_smape_counts_zero_actual_and_zero_forecast_as_no_error() -> None:
    frame = pd.DataFrame({"y": [0.0, 10.0], "yhat": [0.0, 10.0], "yhat_lower": [0.0, 9.0],
                          "yhat_upper": [0.0, 11.0]})
    assert compute_metrics(frame, 0.8, 1.0)["smape"] == 0.0


def test_wape_is_undefined_when_there_were_no_sales() -> None:
    frame = pd.DataFrame({"y": [0.0], "yhat": [1.0], "yhat_lower": [0.0], "yhat_upper": [2.0]})
    assert math.isnan(compute_metrics(frame, 0.8, 1.0)["wape"])


def test_pinball_loss_weights_misses_by_the_quantile() -> None:
    # quantile 0.9: under-forecast by 10 costs 9, over-forecast by 10 costs 1
    y = pd.Series([100.0, 100.0]).to_numpy()
    assert pinball_loss(y, y - 10, 0.9) == pytest.approx(9.0)
    assert pinball_loss(y, y + 10, 0.9) == pytest.approx(1.0)


def test_seasonal_naive_mae_uses_the_season_and_falls_back_to_lag_one() -> None:
    base = pd.DataFrame({
        "series_id": ["a"] * 5 + ["b"] * 2,
        "ds": list(pd.date_range("2024-01-01", periods=5, freq="7D"))
        + list(pd.date_range("2024-01-01", periods=2, freq="7D")),
        "y": [1.0, 2.0, 3.0, 5.0, 8.0, 4.0, 7.0],
    })
    scale = seasonal_naive_mae(base, season_length=2)
    # a: |3-1|, |5-2|, |8-3| -> 10/3; b is shorter than a season + 1: |7-4| = 3
    assert scale["a"] == pytest.approx(10 / 3)
    assert scale["b"] == pytest.approx(3.0)


# Series "a" sells every period; "z" sold nothing in-sample (both scales are 0).
IN_SAMPLE = pd.DataFrame({
    "series_id": ["a"] * 5 + ["z"] * 5,
    "ds": list(pd.date_range("2024-01-01", periods=5, freq="7D")) * 2,
    "y": [1.0, 3.0, 2.0, 4.0, 3.0, 0.0, 0.0, 0.0, 0.0, 0.0],
})
# Out of sample: errors a = 1, -1 (MAE 1, RMSE 1); z = 2, 0 (MAE 1, RMSE sqrt 2).
AFTER = pd.DataFrame({"series_id": ["a", "a", "z", "z"], "y": [2.0, 4.0, 0.0, 3.0],
                      "yhat": [3.0, 3.0, 2.0, 3.0], "yhat_lower": [0.0] * 4,
                      "yhat_upper": [9.0] * 4})


def test_rmsse_is_undefined_without_its_scale_and_with_a_zero_pooled_scale() -> None:
    assert math.isnan(compute_metrics(THREE_ROWS, 0.8, 2.0)["rmsse"])
    assert math.isnan(compute_metrics(THREE_ROWS, 0.8, 0.0, 0.0)["rmsse"])
    assert math.isnan(compute_metrics(THREE_ROWS, 0.8, 0.0, 0.0)["mase"])


def test_naive_rmse_starts_at_the_first_sale_and_skips_missing_periods() -> None:
    base = pd.DataFrame({
        "series_id": ["a"] * 6 + ["z"] * 2,
        "ds": list(pd.date_range("2024-01-01", periods=6, freq="7D"))
        + list(pd.date_range("2024-01-01", periods=2, freq="7D")),
        "y": [0.0, 0.0, 2.0, 4.0, float("nan"), 1.0, 0.0, 0.0],
    })
    scale = naive_rmse(base)
    # a from its first sale: steps 4-2 = 2 (the two next to NaN are missing) -> sqrt(4)
    assert scale["a"] == pytest.approx(2.0)
    assert scale["z"] == 0.0  # never sold


def test_scaled_metrics_stay_finite_on_a_series_with_no_sales_in_sample() -> None:
    mase_scale = seasonal_naive_mae(IN_SAMPLE, season_length=2)
    rmsse_scale = naive_rmse(IN_SAMPLE)
    assert mase_scale["z"] == rmsse_scale["z"] == 0.0
    metrics = compute_metrics(AFTER, 0.8, mase_scale, rmsse_scale)
    # a: seasonal |2-1|, |4-3|, |3-2| -> MAE 1; one-step 2, -1, 2, -1 -> RMS sqrt(2.5).
    # z takes a's scale (the median positive one).
    assert metrics["mase"] == pytest.approx((1 / 1 + 1 / 1) / 2)
    rms = math.sqrt(2.5)
    assert metrics["rmsse"] == pytest.approx((1 / rms + math.sqrt(2) / rms) / 2)


def _edge_case_groups() -> tuple[pd.DataFrame, np.ndarray, pd.Series, pd.Series]:
    """Six groups: NaN y, a zero and a missing scale, no sales, all y missing."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({
        "series_id": list("abcabcabcabcabcabc") * 2,
        "y": rng.gamma(2.0, 10.0, 36).round(),
    })
    frame["yhat"] = frame["y"] + rng.normal(0, 5, 36)
    frame["yhat_lower"], frame["yhat_upper"] = frame["yhat"] - 6, frame["yhat"] + 6
    codes = np.repeat(np.arange(6), 6)
    frame.loc[[1, 7], "y"] = np.nan                      # gaps
    frame.loc[12:17, ["y", "yhat"]] = 0.0                # group 2: no sales, no error
    frame.loc[18:23, "y"] = np.nan                       # group 3: nothing observed
    frame.loc[24, "yhat"] = frame.loc[24, "y"]
    mase = pd.Series({"a": 2.0, "b": 0.0, "c": 3.0})     # b: zero scale, falls back
    rmsse = pd.Series({"a": 4.0, "c": 0.0})              # b: missing
    return frame, codes, mase, rmsse


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # compute_metrics of a group with no y
def test_metrics_by_group_equals_compute_metrics_of_each_group() -> None:
    frame, codes, mase, rmsse = _edge_case_groups()
    row_scale = {name: frame["series_id"].map(scale).to_numpy(dtype=float)
                 for name, scale in (("mase", mase), ("rmsse", rmsse))}
    grouped = metrics_by_group(frame, codes, 7, 0.8, row_scale["mase"], row_scale["rmsse"])
    assert list(grouped.columns) == list(METRIC_NAMES)
    assert grouped.iloc[6].isna().all()  # a group without rows
    for group in range(6):
        expected = compute_metrics(frame[codes == group], 0.8, mase, rmsse)
        got = grouped.iloc[group].to_dict()
        for name in METRIC_NAMES:
            assert got[name] == pytest.approx(expected[name], rel=1e-12, nan_ok=True), name


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_wape_alone_is_the_wape_of_compute_metrics() -> None:
    frame, codes, mase, _ = _edge_case_groups()
    for group in range(6):
        rows = frame[codes == group]
        expected = compute_metrics(rows, 0.8, mase)["wape"]
        assert wape(rows) == expected or (math.isnan(wape(rows)) and math.isnan(expected))
