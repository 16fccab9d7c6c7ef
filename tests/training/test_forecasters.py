"""The four families: estimator contract, accuracy vs naive baselines, what-if promotions."""

from __future__ import annotations

import logging
import pickle
from dataclasses import replace

import numpy as np
import optuna
import pandas as pd
import pytest
from sklearn.base import clone

from features import TrainingSet
from tests.training._panels import PanelShape, make_training_set, simulate_raw
from training.backtest import make_windows, run_backtest
from training.base import FORECAST_COLUMNS, Forecaster
from training.config import FAMILIES as FAMILY_NAMES
from training.config import BacktestConfig
from training.families import BY_NAME
from training.forecasters import (
    FAMILIES,
    LightGBMForecaster,
    RegressionForecaster,
    SeasonalNaive,
    TimeSeriesForecaster,
)

H = 8
WEEK = pd.Timedelta(days=7)
# Trend + strong yearly season + some promotions: the shape every family must beat naive on.
SEASONAL = PanelShape(n_series=4, seed=0, season_amplitude=0.5, promo_rate=0.1)
PROMO_HEAVY = PanelShape(n_series=6, seed=1, promo_rate=0.3, promo_lift=0.8)
CHANGED_PARAMS = {
    "seasonal_naive": {"season_length": 4},
    "regression": {"alpha": 3.0, "l1_ratio": 0.5, "strategy": "recursive"},
    "time_series": {"model": "sarimax", "order": (1, 0, 0)},
    "lightgbm": {"num_leaves": 7, "objective": "tweedie", "strategy": "buckets"},
    "intermittent": {"method": "tsb", "alpha": 0.2},
    "ensemble": {"members": (("seasonal_naive", {}), ("lightgbm", {"num_leaves": 7})),
                 "weights": (1.0, 3.0)},
}


@pytest.fixture(scope="module")
def seasonal() -> TrainingSet:
    return make_training_set(SEASONAL, horizon=H)


@pytest.fixture(scope="module")
def promo_heavy() -> TrainingSet:
    return make_training_set(PROMO_HEAVY, horizon=H)


@pytest.fixture(scope="module")
def fitted(seasonal: TrainingSet) -> dict[str, Forecaster]:
    return {name: FAMILIES[name]().fit(seasonal) for name in FAMILIES}


def _wape(model: Forecaster, training_set: TrainingSet, n_windows: int) -> float:
    windows = make_windows(training_set, BacktestConfig(n_windows=n_windows, step=4))
    return run_backtest(model, training_set, windows).metrics["wape"]


# --- estimator contract -------------------------------------------------------------------

def test_families_cover_the_spec_names_and_their_search_spaces() -> None:
    assert set(FAMILIES) == set(FAMILY_NAMES) == set(BY_NAME)
    assert all(FAMILIES[name].family == name for name in FAMILIES)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_params_round_trip_through_clone_and_set_params(family: str) -> None:
    model = FAMILIES[family]()
    params = model.get_params()
    assert set(vars(model)) == set(params)  # __init__ stores the params, nothing else
    assert clone(model).get_params() == params
    changed = clone(model).set_params(**CHANGED_PARAMS[family])
    for name, value in CHANGED_PARAMS[family].items():
        assert clone(changed).get_params()[name] == value != params[name]
    assert model.get_params() == params


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_fit_returns_self_and_keeps_fitted_state_in_underscore_attributes(
    family: str, seasonal: TrainingSet
) -> None:
    model = FAMILIES[family]()
    before = set(vars(model))
    assert model.fit(seasonal) is model
    learned = set(vars(model)) - before
    assert learned and all(name.endswith("_") for name in learned)
    assert not set(vars(clone(model))) - before  # a clone is unfitted


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_predict_mean_gives_the_next_periods_of_every_series(
    family: str, seasonal: TrainingSet, fitted: dict[str, Forecaster]
) -> None:
    forecast = fitted[family].predict_mean(H)
    assert list(forecast.columns) == ["series_id", "ds", "step", "yhat"]
    last = seasonal.base.groupby("series_id")["ds"].max()
    for series_id, rows in forecast.groupby("series_id"):
        expected = [last[series_id] + k * WEEK for k in range(1, H + 1)]
        assert rows["ds"].tolist() == expected
        assert rows["step"].tolist() == list(range(1, H + 1))
    assert set(forecast["series_id"]) == set(seasonal.series_ids)
    assert np.isfinite(forecast["yhat"]).all() and (forecast["yhat"] >= 0).all()


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_a_pickled_model_forecasts_the_same(family: str, fitted: dict[str, Forecaster]) -> None:
    restored = pickle.loads(pickle.dumps(fitted[family]))
    pd.testing.assert_frame_equal(restored.predict(H), fitted[family].predict(H))
    assert list(restored.predict(3).columns) == FORECAST_COLUMNS


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_a_horizon_beyond_the_trained_one_is_refused(
    family: str, fitted: dict[str, Forecaster]
) -> None:
    with pytest.raises(ValueError, match="horizon"):
        fitted[family].predict_mean(H + 1)


def test_fitted_models_do_not_keep_the_whole_panel(
    seasonal: TrainingSet, fitted: dict[str, Forecaster]
) -> None:
    for model in fitted.values():
        for part in getattr(model, "members_", None) or [model]:  # an ensemble's members
            assert len(part.tail_) < len(seasonal.base) / 2



def test_seasonal_naive_by_default_repeats_the_training_sets_own_season(
    seasonal: TrainingSet,
) -> None:
    quarterly = replace(seasonal, metadata=replace(
        seasonal.metadata, extra={**seasonal.metadata.extra, "season_length": 13}))
    model = SeasonalNaive().fit(quarterly)
    last = seasonal.base[seasonal.base["series_id"] == seasonal.series_ids[0]]["y"].to_numpy()
    forecast = model.predict_mean(H)
    first = forecast[forecast["series_id"] == seasonal.series_ids[0]]["yhat"].to_numpy()
    np.testing.assert_allclose(first, last[-13:][:H])

# --- accuracy ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def last_value_wape(seasonal: TrainingSet) -> float:
    return _wape(SeasonalNaive(season_length=1), seasonal, n_windows=2)


@pytest.mark.parametrize(
    "model",
    [
        SeasonalNaive(),
        RegressionForecaster(),
        TimeSeriesForecaster(model="ets"),
        TimeSeriesForecaster(model="sarimax", order=(1, 0, 0), fourier_k=2),
        LightGBMForecaster(),
    ],
    ids=["seasonal_naive", "regression", "ets", "sarimax", "lightgbm"],
)
def test_each_family_beats_the_last_value_forecast(
    model: Forecaster, seasonal: TrainingSet, last_value_wape: float
) -> None:
    assert _wape(model, seasonal, n_windows=2) < 0.85 * last_value_wape


@pytest.mark.parametrize("model", [RegressionForecaster(), LightGBMForecaster()],
                         ids=["regression", "lightgbm"])
def test_global_models_beat_seasonal_naive_on_promo_heavy_data(
    model: Forecaster, promo_heavy: TrainingSet
) -> None:
    baseline = _wape(SeasonalNaive(), promo_heavy, n_windows=3)
    assert _wape(model, promo_heavy, n_windows=3) < 0.6 * baseline


# --- what-if -------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "model",
    [RegressionForecaster(), LightGBMForecaster(),
     TimeSeriesForecaster(model="sarimax", order=(1, 0, 0))],
    ids=["regression", "lightgbm", "sarimax"],
)
def test_a_planned_promotion_raises_that_week_only(
    model: Forecaster, promo_heavy: TrainingSet
) -> None:
    model.fit(promo_heavy)
    weeks = promo_heavy.pipeline.future_base(promo_heavy.base, H)[["series_id", "ds"]]
    promo_week = weeks["ds"] == weeks["ds"].min() + 2 * WEEK
    plain = model.predict_mean(H, weeks.assign(promo=0.0))
    scenario = model.predict_mean(H, weeks.assign(promo=np.where(promo_week, 1.0, 0.0)))
    lift = scenario["yhat"] / plain["yhat"]
    assert (lift[promo_week.to_numpy()] > 1.2).all()  # simulated lift: +80 %
    assert lift[~promo_week.to_numpy()].to_numpy() == pytest.approx(1.0)


def test_lightgbm_ranks_promo_first_on_promo_heavy_data(promo_heavy: TrainingSet) -> None:
    importances = LightGBMForecaster().fit(promo_heavy).feature_importances()
    assert set(importances.index) == set(promo_heavy.feature_columns)
    assert importances.index[0] == "promo"
    assert importances.is_monotonic_decreasing


# --- time-series fallback ------------------------------------------------------------------

def test_a_series_too_short_to_fit_falls_back_to_naive(caplog: pytest.LogCaptureFixture) -> None:
    from features.build import build_training_set
    from features.config import FeatureConfig

    raw = simulate_raw(PanelShape(n_series=2, seed=0))
    late = (raw.sales["store"] == "S00") & (raw.sales["category"] == "C1")
    recent = raw.sales["date"] > raw.sales["date"].max() - 6 * WEEK
    sales = raw.sales[~late | recent].reset_index(drop=True)
    short = build_training_set(raw.__class__(sales=sales, keys=raw.keys, calendar=raw.calendar),
                               FeatureConfig(customers=False), freq="W", horizon=H)
    with caplog.at_level(logging.WARNING, logger="training.forecasters.time_series"):
        forecast = TimeSeriesForecaster(model="ets").fit(short).predict_mean(H)
    history = short.base[short.base["series_id"] == "S00|C1"].sort_values("ds")
    assert len(history) < 10
    fallback = forecast.loc[forecast["series_id"] == "S00|C1", "yhat"]
    assert fallback.to_numpy() == pytest.approx(history["y"].iloc[-1])  # < 1 season: last y
    fitted = forecast.loc[forecast["series_id"] == "S00|C0", "yhat"]
    assert fitted.nunique() > 1
    assert "S00|C1" in caplog.text


# --- search spaces -------------------------------------------------------------------------

@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_search_space_samples_valid_params(family: str) -> None:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(12):
        params = BY_NAME[family].search_space(study.ask())
        model = clone(FAMILIES[family]()).set_params(**params)
        assert {k: model.get_params()[k] for k in params} == params
    if family == "seasonal_naive":
        assert params == {}


def test_the_tweedie_fallback_is_said_once_per_process(caplog: pytest.LogCaptureFixture
                                                        ) -> None:
    """Every window and trial refits: the same warning 20 times is noise (issue 14, 8)."""
    import logging

    from training.forecasters import gbm

    gbm._SAID.clear()
    forecaster = gbm.LightGBMForecaster(objective="tweedie")
    with caplog.at_level(logging.DEBUG, logger=gbm.__name__):
        for _ in range(3):
            assert forecaster._make_model(pd.Series([-1.0, 2.0])).objective == "l2"
    said = [r.levelno for r in caplog.records if "tweedie objective replaced" in r.message]
    assert said == [logging.WARNING, logging.DEBUG, logging.DEBUG]
