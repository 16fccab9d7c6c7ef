"""Conformal intervals: the quantile rule, the row scale, and coverage on held-out data."""

from __future__ import annotations

import pickle
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from tests.training._panels import PanelShape, make_training_set
from training.backtest import make_windows, run_backtest
from training.config import BacktestConfig
from training.conformal import (
    ConformalCalibration,
    conformal_quantile,
    relative_volatility,
    series_scales,
    series_volatility,
)
from training.forecasters import RegressionForecaster
from training.metrics import compute_metrics

LEVELS = pd.Series({"big": 100.0, "small": 8.0})


def _calibration() -> ConformalCalibration:
    """Step 1 scores 0.1, 0.2, 0.3, 0.4 (|y - yhat| / yhat); step 2 scores 0.5, 1.5."""
    frame = pd.DataFrame({
        "series_id": ["big", "big", "small", "small", "big", "small"],
        "step": [1, 1, 1, 1, 2, 2],
        "yhat": [100.0, 50.0, 10.0, 10.0, 40.0, 10.0],
        "y": [110.0, 40.0, 13.0, 6.0, 60.0, 25.0],
    })
    return ConformalCalibration.from_predictions(frame, LEVELS)


def test_quantile_is_the_conformal_rank_capped_at_the_largest_score() -> None:
    scores = np.arange(1.0, 10.0)  # n = 9
    assert conformal_quantile(scores, 0.8) == 8.0  # rank ceil(10 x 0.8) = 8
    assert conformal_quantile(scores, 0.95) == 9.0  # rank 10 > n: the largest score


def test_interval_is_the_step_quantile_times_the_forecast() -> None:
    calibration = _calibration().with_scales(LEVELS, nonnegative=False)
    forecast = pd.DataFrame({"series_id": ["big", "big"], "ds": pd.to_datetime(
        ["2024-01-01", "2024-01-08"]), "yhat": [200.0, 200.0]})
    out = calibration.apply(forecast, level=0.5)  # steps from the ds order: 1, 2
    # step 1: rank ceil(5 x 0.5) = 3 of (0.1, 0.2, 0.3, 0.4) -> 0.3; step 2: rank 2 -> 1.5
    assert out["yhat_lower"].tolist() == pytest.approx([140.0, -100.0])
    assert out["yhat_upper"].tolist() == pytest.approx([260.0, 500.0])


def test_forecast_near_zero_gets_a_width_from_the_series_level() -> None:
    forecast = pd.DataFrame({"series_id": ["big"], "ds": [pd.Timestamp("2024-01-01")],
                             "yhat": [0.0], "step": [1]})
    out = _calibration().apply(forecast, level=0.5)
    assert out["yhat_upper"].iloc[0] == pytest.approx(0.3 * 0.25 * 100.0)


def test_steps_beyond_the_calibrated_ones_use_the_last_step() -> None:
    calibration = _calibration()
    assert calibration.quantile(7, 0.5) == calibration.quantile(2, 0.5) == 1.5


def test_lower_bound_is_clipped_at_zero_only_for_nonnegative_sales() -> None:
    forecast = pd.DataFrame({"series_id": ["small"], "ds": [pd.Timestamp("2024-01-01")],
                             "yhat": [10.0], "step": [2]})
    clipped = _calibration().apply(forecast, level=0.5)
    signed = _calibration().with_scales(LEVELS, nonnegative=False).apply(forecast, level=0.5)
    # width 1.5 x 10 = 15 around 10
    assert clipped["yhat_lower"].iloc[0] == 0.0
    assert signed["yhat_lower"].iloc[0] == pytest.approx(-5.0)
    assert clipped["yhat_upper"].iloc[0] == signed["yhat_upper"].iloc[0] == pytest.approx(25.0)


def test_calibration_survives_pickling() -> None:
    calibration = _calibration()
    forecast = pd.DataFrame({"series_id": ["big", "small"], "ds": [pd.Timestamp("2024-01-01")] * 2,
                             "yhat": [90.0, 9.0]})
    restored = pickle.loads(pickle.dumps(calibration))
    pd.testing.assert_frame_equal(restored.apply(forecast, 0.8), calibration.apply(forecast, 0.8))


def test_exchangeable_residuals_are_covered_at_the_nominal_rate() -> None:
    rng = np.random.default_rng(3)

    def draws(n: int) -> pd.DataFrame:
        yhat = rng.uniform(50, 150, n)
        return pd.DataFrame({"series_id": "big", "step": 1, "yhat": yhat,
                             "y": yhat * np.exp(rng.normal(0, 0.2, n))})
    calibration = ConformalCalibration.from_predictions(draws(400), LEVELS)
    test = draws(4000)
    bounds = calibration.apply(test, 0.8)
    coverage = ((test["y"] >= bounds["yhat_lower"]) & (test["y"] <= bounds["yhat_upper"])).mean()
    assert abs(coverage - 0.8) < 0.05  # conformal guarantee + sampling noise at n = 400


def test_backtest_calibration_covers_a_held_out_window() -> None:
    """Tolerance: held-out coverage within +/- 0.1 of the nominal 0.8.

    30 series; the last 8 weeks are held out. The backtest (6 windows) and the refit only
    see data up to the held-out origin; realised promotions are the scenario.
    """
    full = make_training_set(PanelShape(n_series=30, periods=140, seed=0))
    origin = pd.Timestamp(np.sort(full.base["ds"].unique())[-9])
    history = full.until(origin)
    windows = make_windows(history, BacktestConfig(n_windows=6, step=4))
    backtest = run_backtest(RegressionForecaster(), history, windows, level=0.8)
    model = RegressionForecaster().fit(history).set_conformal(backtest.calibration)
    future = full.base[full.base["ds"] > origin]
    forecast = model.predict(8, future[["series_id", "ds", *full.exog_columns]], level=0.8)
    scored = forecast.merge(future[["series_id", "ds", "y"]], on=["series_id", "ds"])
    assert len(scored) == 30 * 8
    assert abs(compute_metrics(scored, 0.8, 1.0)["coverage"] - 0.8) <= 0.1


def test_backtest_calibration_carries_the_levels_of_the_refit_origin() -> None:
    training_set = make_training_set(PanelShape(n_series=4, seed=0))
    windows = make_windows(training_set, BacktestConfig(n_windows=2, step=4))
    calibration = run_backtest(RegressionForecaster(), training_set, windows).calibration
    pd.testing.assert_series_equal(calibration.scales, series_scales(training_set))
    pd.testing.assert_series_equal(calibration.volatility, series_volatility(training_set))
    assert calibration.steps == list(range(1, training_set.horizon + 1))


def _weekly(values: dict[str, list[float]]) -> pd.DataFrame:
    """A base panel (series_id, ds, y) of weekly series given by their values."""
    return pd.concat([
        pd.DataFrame({"series_id": sid, "ds": pd.date_range("2024-01-01", periods=len(y),
                                                            freq="W-MON"), "y": y})
        for sid, y in values.items()
    ], ignore_index=True)


def test_relative_volatility_is_the_mean_seasonal_change_over_the_mean_level() -> None:
    base = _weekly({"a": [10.0, 12.0, 14.0, 8.0], "b": [100.0, 100.0, 110.0, 90.0]})
    volatility = relative_volatility(base, season_length=2)
    # a: |14 - 10|, |8 - 12| over |14|, |8| -> 4 / 11; b: 10, 10 over 110, 90 -> 0.1
    assert volatility.to_dict() == pytest.approx({"a": 4 / 11, "b": 0.1})


def test_relative_volatility_is_clipped_and_falls_back_to_the_median() -> None:
    base = _weekly({"flat": [5.0] * 6, "low": [10.0, 11.0] * 3, "mid": [10.0, 12.0] * 3,
                    "wild": [1.0, 30.0] * 3, "new": [7.0], "zero": [0.0] * 6})
    volatility = relative_volatility(base, season_length=1)
    median = volatility["mid"]  # of the series that move (low, mid, wild): mid's
    assert volatility["low"] == pytest.approx(1 / 10.6)  # 1 over mean(11, 10, 11, 10, 11)
    assert volatility["flat"] == pytest.approx(median / 4)  # clipped: never a zero width
    assert volatility["wild"] == pytest.approx(median * 4)
    assert volatility["new"] == volatility["zero"] == pytest.approx(median)


def test_relative_volatility_reads_only_the_recent_periods() -> None:
    calm_then_wild = [10.0, 11.0] * 30 + [5.0, 20.0] * 30
    wild_then_calm = [5.0, 20.0] * 30 + [10.0, 11.0] * 30
    volatility = relative_volatility(_weekly({"a": calm_then_wild, "b": wild_then_calm}), 1)
    assert volatility["a"] > 5 * volatility["b"]


def _two_noise_levels(rng: np.random.Generator, n: int) -> tuple[pd.DataFrame, pd.Series]:
    """Forecasts with actuals of a quiet (5 % noise) and a noisy (25 %) series, and their
    relative volatilities from a history with the same noise."""
    noise = {"quiet": 0.05, "noisy": 0.25}
    history = _weekly({sid: list(100 * np.exp(rng.normal(0, sd, 104)))
                       for sid, sd in noise.items()})
    frames = [pd.DataFrame({"series_id": sid, "step": 1, "yhat": np.full(n, 100.0),
                            "y": 100 * np.exp(rng.normal(0, sd, n))})
              for sid, sd in noise.items()]
    return pd.concat(frames, ignore_index=True), relative_volatility(history, 52)


def _coverage_by_series(calibration: ConformalCalibration, test: pd.DataFrame) -> pd.Series:
    bounds = calibration.apply(test, 0.8)
    inside = (test["y"] >= bounds["yhat_lower"]) & (test["y"] <= bounds["yhat_upper"])
    return inside.groupby(test["series_id"]).mean()


def test_volatility_gives_a_quiet_and_a_noisy_series_each_the_nominal_coverage() -> None:
    rng = np.random.default_rng(7)
    calibrate, volatility = _two_noise_levels(rng, 300)
    test, _ = _two_noise_levels(rng, 3000)
    levels = pd.Series({"quiet": 100.0, "noisy": 100.0})
    pooled = _coverage_by_series(ConformalCalibration.from_predictions(calibrate, levels), test)
    assert pooled["quiet"] > 0.97 and pooled["noisy"] < 0.7  # one width for both: wrong
    scaled = _coverage_by_series(
        ConformalCalibration.from_predictions(calibrate, levels, volatility=volatility), test)
    assert scaled.to_numpy() == pytest.approx([0.8, 0.8], abs=0.06)


def test_volatility_widens_the_interval_of_a_noisier_series() -> None:
    volatility = pd.Series({"big": 0.1, "small": 0.3})
    calibration = replace(_calibration(), volatility=volatility)
    forecast = pd.DataFrame({"series_id": ["big", "small", "other"], "step": [1, 1, 1],
                             "ds": [pd.Timestamp("2024-01-01")] * 3, "yhat": [100.0] * 3})
    upper = calibration.apply(forecast, level=0.5)["yhat_upper"].to_numpy()
    # q = 0.3 (step 1) x 100 x v; an unknown series gets the median volatility, 0.2
    assert upper == pytest.approx(100.0 + 0.3 * 100.0 * np.array([0.1, 0.3, 0.2]))


def test_with_scales_replaces_the_volatility_only_of_a_calibration_that_has_one() -> None:
    new = pd.Series({"big": 0.5, "small": 0.5})
    with_volatility = replace(_calibration(), volatility=pd.Series({"big": 0.1, "small": 0.1}))
    assert with_volatility.with_scales(LEVELS, volatility=new).volatility is new
    assert with_volatility.with_scales(LEVELS).volatility is with_volatility.volatility
    assert _calibration().with_scales(LEVELS, volatility=new).volatility is None


def test_calibrations_with_and_without_volatility_are_not_pooled() -> None:
    with_volatility = replace(_calibration(), volatility=pd.Series({"big": 0.1}))
    with pytest.raises(ValueError, match="volatilities"):
        ConformalCalibration.combine([_calibration(), with_volatility])


def test_a_calibration_pickled_before_volatilities_applies_as_before() -> None:
    calibration = _calibration()
    state = {k: v for k, v in vars(calibration).items() if k != "volatility"}
    old = ConformalCalibration.__new__(ConformalCalibration)
    old.__dict__.update(state)  # what unpickling a calibration of the old class gives
    restored = pickle.loads(pickle.dumps(old))
    forecast = pd.DataFrame({"series_id": ["big", "small"], "step": [1, 2],
                             "ds": [pd.Timestamp("2024-01-01")] * 2, "yhat": [90.0, 9.0]})
    assert restored.volatility is None
    pd.testing.assert_frame_equal(restored.apply(forecast, 0.8), calibration.apply(forecast, 0.8))


def test_one_spike_in_the_lookback_does_not_set_the_volatility() -> None:
    clean = [10.0, 11.0] * 15
    spiky = [*clean[:20], 100.0, *clean[21:]]
    volatility = relative_volatility(_weekly({"clean": clean, "spiky": spiky}), 1)
    # untrimmed, the spike's two changes of ~90 would make it ~5 x the clean one's
    assert volatility["spiky"] < 1.5 * volatility["clean"]
