"""Conformal intervals: the quantile rule, the row scale, and coverage on held-out data."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

from tests.training._panels import PanelShape, make_training_set
from training.backtest import make_windows, run_backtest
from training.config import BacktestConfig
from training.conformal import ConformalCalibration, conformal_quantile, series_scales
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
    assert calibration.steps == list(range(1, training_set.horizon + 1))
