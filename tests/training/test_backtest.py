"""Rolling-origin backtest: windows, what each window's model sees, callbacks, intervals."""

from __future__ import annotations

from typing import Any, ClassVar

import optuna
import pandas as pd
import pytest

from features import TrainingSet
from tests.training._panels import PanelShape, make_training_set
from training.backtest import (
    PREDICTION_COLUMNS,
    make_windows,
    plan_windows,
    run_backtest,
    run_outer,
)
from training.base import Forecaster
from training.config import BacktestConfig
from training.forecasters.common import season_length_for
from training.metrics import METRIC_NAMES, compute_metrics, naive_rmse, seasonal_naive_mae

WEEK = pd.Timedelta(days=7)
H = 8


@pytest.fixture(scope="module")
def training_set() -> TrainingSet:
    return make_training_set(PanelShape(n_series=3, seed=0), horizon=H)


class SpyForecaster(Forecaster):
    """Last-value forecast (times ``factor`` at the origins in ``biased_origins``) that
    records what each fitted clone saw: latest training ds, future_exog given to predict."""

    family = "spy"
    seen: ClassVar[list[dict[str, Any]]] = []
    truth: ClassVar[pd.DataFrame | None] = None

    def __init__(self, factor: float = 1.0, biased_origins: tuple[pd.Timestamp, ...] = ()) -> None:
        self.factor = factor
        self.biased_origins = biased_origins

    def fit(self, training_set: TrainingSet) -> SpyForecaster:
        self.origin_ = training_set.base["ds"].max()
        self.pipeline_, self.base_ = training_set.pipeline, training_set.base
        SpyForecaster.seen.append({"train_end": self.origin_})
        return self

    def predict_mean(self, horizon: int, future_exog: pd.DataFrame | None = None) -> pd.DataFrame:
        SpyForecaster.seen[-1]["future_exog"] = future_exog
        rows = self.pipeline_.future_base(self.base_, horizon)[["series_id", "ds"]]
        last = self.base_.sort_values("ds").groupby("series_id")["y"].last()
        rows["yhat"] = rows["series_id"].map(last)
        if self.origin_ in self.biased_origins:
            rows["yhat"] *= self.factor
        return rows.reset_index(drop=True)


@pytest.fixture
def spy() -> type[SpyForecaster]:
    SpyForecaster.seen = []
    return SpyForecaster


def test_window_origins_step_back_from_the_last_period(training_set: TrainingSet) -> None:
    windows = make_windows(training_set, BacktestConfig(n_windows=3, step=4))
    last = training_set.base["ds"].max()
    assert [w.index for w in windows] == [0, 1, 2]
    for w in windows:
        assert w.origin == last - (H + (2 - w.index) * 4) * WEEK
        assert w.ds_end == w.origin + H * WEEK
    assert windows[-1].ds_end == last


def test_short_history_is_refused_with_the_numbers(training_set: TrainingSet) -> None:
    # 156 periods: the first origin (n_windows=3, step=4, H=8) is period 140.
    assert make_windows(training_set, BacktestConfig(min_train_periods=140))
    with pytest.raises(ValueError, match=r"not enough history.*156 periods, need 157"):
        make_windows(training_set, BacktestConfig(min_train_periods=141))


def test_each_window_trains_before_its_origin_and_tests_after_it(
    training_set: TrainingSet, spy: type[SpyForecaster]
) -> None:
    windows = make_windows(training_set, BacktestConfig(n_windows=3, step=4))
    result = run_backtest(spy(), training_set, windows)
    assert [s["train_end"] for s in spy.seen] == [w.origin for w in windows]
    for w in windows:
        rows = result.predictions[result.predictions["window"] == w.index]
        assert len(rows) == 3 * H  # every series, every step
        assert sorted(rows["step"].unique()) == list(range(1, H + 1))
        assert rows["ds"].min() == w.origin + WEEK and rows["ds"].max() == w.ds_end
        assert (rows["ds"] == w.origin + rows["step"] * WEEK).all()
    assert list(result.predictions.columns) == PREDICTION_COLUMNS


def test_windows_forecast_with_the_realised_exog_and_score_the_actual_y(
    training_set: TrainingSet, spy: type[SpyForecaster]
) -> None:
    windows = make_windows(training_set, BacktestConfig(n_windows=2, step=4))
    result = run_backtest(spy(), training_set, windows)
    base = training_set.base
    for w, seen in zip(windows, spy.seen, strict=True):
        inside = base[(base["ds"] > w.origin) & (base["ds"] <= w.ds_end)]
        given = seen["future_exog"].sort_values(["series_id", "ds"]).reset_index(drop=True)
        expected = inside[["series_id", "ds", "promo", "price", "holiday"]]
        pd.testing.assert_frame_equal(given, expected.reset_index(drop=True), check_like=True)
    joined = result.predictions.merge(base[["series_id", "ds", "y"]], on=["series_id", "ds"],
                                      suffixes=("", "_base"))
    assert (joined["y"] == joined["y_base"]).all() and len(joined) == len(result.predictions)


def test_on_window_is_called_once_per_window_with_its_wape(
    training_set: TrainingSet, spy: type[SpyForecaster]
) -> None:
    windows = make_windows(training_set, BacktestConfig(n_windows=3, step=4))
    calls: list[tuple[int, float]] = []
    result = run_backtest(spy(), training_set, windows, on_window=lambda k, w: calls.append((k, w)))
    assert [k for k, _ in calls] == [0, 1, 2]
    assert [w for _, w in calls] == pytest.approx(result.window_metrics["wape"].tolist())


def test_a_pruned_trial_stops_the_backtest(
    training_set: TrainingSet, spy: type[SpyForecaster]
) -> None:
    windows = make_windows(training_set, BacktestConfig(n_windows=3, step=4))

    def prune(k: int, wape: float) -> None:
        raise optuna.TrialPruned(f"window {k}")

    with pytest.raises(optuna.TrialPruned):
        run_backtest(spy(), training_set, windows, on_window=prune)
    assert len(spy.seen) == 1  # no window after the pruned one was fitted


def test_metrics_are_the_window_means_and_by_step_has_every_step(
    training_set: TrainingSet, spy: type[SpyForecaster]
) -> None:
    windows = make_windows(training_set, BacktestConfig(n_windows=3, step=4))
    result = run_backtest(spy(), training_set, windows)
    assert list(result.metrics) == list(METRIC_NAMES)
    for name in METRIC_NAMES:
        assert result.metrics[name] == pytest.approx(result.window_metrics[name].mean())
    assert len(result.window_metrics) == 3
    assert result.by_step["step"].tolist() == list(range(1, H + 1))


def test_window_intervals_come_from_the_other_windows(
    training_set: TrainingSet, spy: type[SpyForecaster]
) -> None:
    """The forecaster is 90 % too low in window 0 only. Cross-conformal: window 1's interval
    comes from window 0's huge residuals and must be far wider than window 0's, which
    comes from window 1's ordinary ones (in-window calibration would do the opposite)."""
    windows = make_windows(training_set, BacktestConfig(n_windows=2, step=4))
    biased = spy(factor=0.1, biased_origins=(windows[0].origin,))
    predictions = run_backtest(biased, training_set, windows).predictions
    half_width = (predictions["yhat_upper"] - predictions["yhat"]) / predictions["y"]
    by_window = half_width.groupby(predictions["window"]).mean()
    assert by_window[1] > 0.5  # window 0 missed by ~90 % of y
    assert by_window[0] < 0.2 * by_window[1]


def test_a_single_window_is_calibrated_in_window(
    training_set: TrainingSet, spy: type[SpyForecaster]
) -> None:
    windows = make_windows(training_set, BacktestConfig(n_windows=1))
    biased = spy(factor=0.1, biased_origins=(windows[0].origin,))
    predictions = run_backtest(biased, training_set, windows).predictions
    half_width = (predictions["yhat_upper"] - predictions["yhat"]) / predictions["y"]
    assert half_width.mean() > 0.5  # its own ~90 % misses


def test_the_nested_plan_holds_the_outer_window_out_of_tuning(
    training_set: TrainingSet,
) -> None:
    config = BacktestConfig(n_windows=3, step=4, outer_windows=1)
    plan = plan_windows(training_set, config)
    last = training_set.base["ds"].max()
    (outer,) = plan.outer
    assert outer.ds_end == last and outer.origin == last - H * WEEK
    assert [w.index for w in plan.inner] == [0, 1, 2] and outer.index == 3
    assert max(w.ds_end for w in plan.inner) <= outer.origin  # tuning never sees its y
    assert plan.scoring == plan.outer
    unnested = plan_windows(training_set, config.model_copy(update={"outer_windows": 0}))
    assert unnested.outer == [] and unnested.scoring == unnested.inner
    assert unnested.inner == make_windows(training_set, config)


def test_a_plan_too_long_for_the_history_says_what_is_held_out(
    training_set: TrainingSet,
) -> None:
    periods = training_set.base["ds"].nunique()
    fits = BacktestConfig(n_windows=1, outer_windows=1, min_train_periods=periods - 2 * H)
    assert plan_windows(training_set, fits).inner
    with pytest.raises(ValueError, match=f"{H} periods held out for the outer"):
        too_long = fits.model_copy(update={"min_train_periods": periods - 2 * H + 1})
        plan_windows(training_set, too_long)


def test_the_outer_interval_is_calibrated_on_the_tuning_windows(
    training_set: TrainingSet, spy: type[SpyForecaster]
) -> None:
    """The forecaster is 90 % too low in the outer window only. Its interval comes from the
    inner windows' ordinary residuals, so it is narrow and misses (an honest coverage);
    in-window calibration would have widened it to cover its own misses."""
    plan = plan_windows(training_set, BacktestConfig(n_windows=2, step=4, outer_windows=1))
    biased = spy(factor=0.1, biased_origins=(plan.outer[0].origin,))
    tuned = run_backtest(biased, training_set, plan.inner)
    outer = run_outer(biased, training_set, plan.outer, tuned)
    assert outer.predictions["window"].unique().tolist() == [2]
    assert outer.metrics["coverage"] < 0.2
    assert outer.metrics["wape"] > 3 * tuned.metrics["wape"]
    pooled = sum(len(v) for v in outer.calibration.scores.values())
    inner = sum(len(v) for v in tuned.calibration.scores.values())
    assert pooled == inner + len(outer.predictions)  # the refit model learns from both


def test_window_metrics_are_compute_metrics_with_each_origins_scales(
    training_set: TrainingSet, spy: type[SpyForecaster]
) -> None:
    """All groups at once, the scales memoised per origin: the same numbers as one
    compute_metrics per window with scales computed afresh, however often it runs."""
    windows = make_windows(training_set, BacktestConfig(n_windows=3, step=4))
    first = run_backtest(spy(), training_set, windows)
    again = run_backtest(spy(), training_set, windows)
    pd.testing.assert_frame_equal(first.window_metrics, again.window_metrics)
    season = season_length_for(training_set)
    for window in windows:
        history = training_set.until(window.origin).base
        rows = first.predictions[first.predictions["window"] == window.index]
        expected = compute_metrics(rows, 0.8, seasonal_naive_mae(history, season),
                                   naive_rmse(history))
        got = first.window_metrics.set_index("window").loc[window.index]
        for name in METRIC_NAMES:
            assert got[name] == pytest.approx(expected[name], rel=1e-12, nan_ok=True)
