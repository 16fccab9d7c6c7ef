"""Gaps (y NaN) and known-future covariates through the families, metrics and the pyfunc.

A small seeded panel where a store's open flag drives y (closed weeks sell nothing): the
global model must learn it from the known-future table and a scenario must move the
forecast by naming the column; NaN y (a gap) must not break fitting, the seasonal naive
or the metrics.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.build import build_training_set
from features.config import FeatureConfig, KnownFutureColumns
from features.raw import RawData
from training.forecasters.gbm import LightGBMForecaster
from training.forecasters.naive import SeasonalNaive, seasonal_naive_path
from training.forecasters.regression import RegressionForecaster
from training.metrics import compute_metrics

START = pd.Timestamp("2022-01-03")  # a Monday
WEEKS = 120
HORIZON = 4
STORES = ("S1", "S2", "S3", "S4")
FEATURES = FeatureConfig(customers=False, price_promo=False, holidays=False,
                         rolling_windows=[4])


def open_flags(seed: int = 0) -> pd.DataFrame:
    """Weekly rows per store (8 weeks past the sales): open, closed ~15 % of weeks."""
    rng = np.random.default_rng(seed)
    weeks = pd.date_range(START, periods=WEEKS + 8, freq="7D")
    return pd.concat([pd.DataFrame({"date": weeks, "store": store,
                                    "open": (rng.random(len(weeks)) > 0.15).astype(float)})
                      for store in STORES], ignore_index=True)


def store_raw(seed: int = 0) -> RawData:
    """Two lines a week (Monday, Sunday) per open store-week; none while closed."""
    rng = np.random.default_rng(seed + 1)
    flags = open_flags(seed)
    sales = flags[(flags["open"] == 1) & (flags["date"] < START + pd.Timedelta(weeks=WEEKS))]
    level = sales["store"].map({s: 50.0 * (i + 1) for i, s in enumerate(STORES)})
    lines = pd.concat([sales.assign(date=sales["date"] + pd.Timedelta(days=d),
                                    y=level * np.exp(rng.normal(0, 0.05, len(sales))) / 2)
                       for d in (0, 6)], ignore_index=True)
    columns = KnownFutureColumns(date="date", keys=["store"], values={"open": "mean"})
    return RawData(lines[["date", "store", "y"]].sort_values("date", ignore_index=True),
                   ("store",), known_future=flags, known_future_columns=columns)


@pytest.fixture(scope="module")
def store_training_set():
    return build_training_set(store_raw(), FEATURES, "W", horizon=HORIZON)


@pytest.fixture(scope="module")
def lightgbm(store_training_set):
    model = LightGBMForecaster(n_estimators=200, min_child_samples=5, num_leaves=8)
    return model.fit(store_training_set)


def _scenario(forecaster, open_value: float) -> pd.DataFrame:
    grid = forecaster.predict_mean(HORIZON)[["series_id", "ds"]]
    return grid.assign(open=open_value)


def test_lightgbm_learns_the_open_flag_and_a_scenario_sets_it_by_name(lightgbm) -> None:
    assert "open" in lightgbm.pipeline_.exog_columns
    is_open = lightgbm.predict_mean(HORIZON, _scenario(lightgbm, 1.0))
    closed = lightgbm.predict_mean(HORIZON, _scenario(lightgbm, 0.0))
    assert (closed["yhat"].to_numpy() < 0.2 * is_open["yhat"].to_numpy()).all()


def test_the_plan_comes_from_the_known_future_table(lightgbm) -> None:
    flags = open_flags().rename(columns={"date": "ds"})
    flags["series_id"] = flags["store"]
    plan = lightgbm.predict_mean(HORIZON).merge(flags, on=["series_id", "ds"])
    assert len(plan) == len(STORES) * HORIZON
    closed, is_open = plan[plan["open"] == 0], plan[plan["open"] == 1]
    assert len(closed) and closed["yhat"].max() < 0.2 * is_open["yhat"].min()


def test_the_served_model_takes_the_column_by_name(lightgbm, store_training_set) -> None:
    from training.pyfunc import SalescastModel

    future = lightgbm.predict_mean(HORIZON)
    meta = store_training_set.metadata
    metadata = {"family": "lightgbm", "horizon": HORIZON, "freq": "W", "level": 0.8,
                "keys": list(meta.keys), "series_ids": store_training_set.series_ids,
                "exog_columns": list(meta.exog_columns),
                "feature_columns": list(meta.feature_columns),
                "last_ds": store_training_set.base["ds"].max().date().isoformat(),
                "forecast_ds": sorted({d.date().isoformat() for d in future["ds"]})}
    model = SalescastModel(lightgbm, metadata)
    rows = future[["series_id", "ds"]].iloc[:1]
    closed = model.predict(None, rows.assign(open=0.0))
    is_open = model.predict(None, rows.assign(open=1.0))
    assert closed["yhat"].iloc[0] < 0.2 * is_open["yhat"].iloc[0]


def test_regression_fits_with_a_known_future_column(store_training_set) -> None:
    model = RegressionForecaster().fit(store_training_set)
    is_open = model.predict_mean(HORIZON, _scenario(model, 1.0))
    closed = model.predict_mean(HORIZON, _scenario(model, 0.0))
    assert (closed["yhat"].to_numpy() < is_open["yhat"].to_numpy()).all()


# --- gaps: NaN y downstream ------------------------------------------------------------


@pytest.fixture(scope="module")
def gap_training_set():
    """Weekly totals (one row per store and week) with a 20-week hole in S2."""
    rng = np.random.default_rng(5)
    weeks = pd.date_range(START, periods=WEEKS, freq="7D") + pd.Timedelta(days=4)  # Fridays
    frames = []
    for i, store in enumerate(("S1", "S2", "S3")):
        y = 100.0 * (i + 1) * (1 + 0.3 * np.sin(2 * np.pi * np.arange(WEEKS) / 52))
        frame = pd.DataFrame({"date": weeks, "store": store,
                              "y": y * np.exp(rng.normal(0, 0.05, WEEKS))})
        frames.append(frame.drop(index=frame.index[80:100]) if store == "S2" else frame)
    sales = pd.concat(frames).sort_values("date", ignore_index=True)
    return build_training_set(RawData(sales, ("store",)), FEATURES, "W", horizon=HORIZON)


def test_the_global_families_fit_and_predict_around_a_gap(gap_training_set) -> None:
    assert gap_training_set.base["y"].isna().sum() == 20
    for model in (LightGBMForecaster(n_estimators=50), RegressionForecaster()):
        forecast = model.fit(gap_training_set).predict_mean(HORIZON)
        assert np.isfinite(forecast["yhat"]).all()


def test_seasonal_naive_skips_a_gap_in_the_last_season(gap_training_set) -> None:
    """S2's last 52 weeks hold the 20-week gap: those positions take the season before."""
    naive = SeasonalNaive(season_length=52).fit(gap_training_set)
    forecast = naive.predict_mean(HORIZON)
    assert np.isfinite(forecast["yhat"]).all()
    season = naive.last_season_["S2"]
    assert np.isfinite(season).all()
    base = gap_training_set.base[gap_training_set.base["series_id"] == "S2"]
    y = base["y"].to_numpy()
    assert season[80 - 68] == y[80 - 52]  # week 80 (missing) -> week 28, a season earlier


def test_seasonal_naive_path_rules_for_missing_values() -> None:
    nan = np.nan
    history = np.array([1.0, 2.0, 3.0, 4.0, nan, 6.0, nan, nan])  # season 4
    assert seasonal_naive_path(history, 4, 4).tolist() == [1.0, 6.0, 3.0, 4.0]
    assert seasonal_naive_path(np.array([5.0, nan]), 4, 2).tolist() == [5.0, 5.0]
    only_last = np.array([nan, nan, nan, 7.0, nan, nan, nan, nan])
    assert seasonal_naive_path(only_last, 4, 4).tolist() == [7.0, 7.0, 7.0, 7.0]
    assert np.isnan(seasonal_naive_path(np.array([nan, nan]), 4, 2)).all()


def test_metrics_skip_rows_whose_y_is_missing() -> None:
    frame = pd.DataFrame({"series_id": ["a"] * 4, "y": [10.0, np.nan, 20.0, np.nan],
                          "yhat": [12.0, 99.0, 18.0, 5.0]})
    frame["yhat_lower"], frame["yhat_upper"] = frame["yhat"] - 3, frame["yhat"] + 3
    metrics = compute_metrics(frame, 0.8, mase_scale=2.0)
    known = compute_metrics(frame.dropna(subset=["y"]), 0.8, mase_scale=2.0)
    assert metrics == pytest.approx(known, nan_ok=True)
    assert metrics["wape"] == pytest.approx(4 / 30)
    assert metrics["coverage"] == 1.0
