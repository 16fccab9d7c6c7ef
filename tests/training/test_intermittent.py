"""The intermittent family: Syntetos-Boylan classes, Croston-SBA / TSB beating the seasonal
naive on sparse item-level demand, and update() recomputing the state exactly."""

from __future__ import annotations

from dataclasses import replace
from functools import lru_cache

import numpy as np
import pandas as pd
import pytest

from features.build import build_training_set
from features.config import FeatureConfig
from features.raw import RawData
from features.training_set import TrainingSet
from tests.training._panels import START, is_holiday_week
from training.backtest import make_windows, run_backtest
from training.config import BacktestConfig
from training.forecasters.intermittent import (
    SBA,
    SES,
    TSB,
    IntermittentForecaster,
    demand_classes,
    initial_state,
    one_step,
    ragged,
    run,
)
from training.forecasters.naive import SeasonalNaive

H = 4
SPARSE = ((0.3, 2.0),) * 24  # per series: demand probability, gamma shape of the sizes
# smooth, erratic, intermittent, lumpy: (probability, shape) -> ADI ~ 1 / p, CV² = 1 / shape
FOUR_CLASSES = ((1.0, 20.0), (1.0, 0.7), (0.3, 20.0), (0.3, 0.7))


@lru_cache(maxsize=4)
def sparse_panel(demand: tuple[tuple[float, float], ...], periods: int = 120,
                 seed: int = 0) -> TrainingSet:
    """Weekly item sales: a demand with probability p, gamma(shape, 10 / shape) sizes."""
    rng = np.random.default_rng(seed)
    ds = pd.date_range(START, periods=periods, freq="7D")
    lines = []
    for i, (probability, shape) in enumerate(demand):
        sold = rng.random(periods) < probability
        y = np.where(sold, rng.gamma(shape, 10.0 / shape, periods), 0.0)
        lines.append(pd.DataFrame({"date": ds, "store": f"S{i:02d}", "category": "C0",
                                   "y": y, "price": 1.0, "promo": 0.0}))
    sales = pd.concat(lines, ignore_index=True)
    sales = sales.assign(revenue=sales["y"], quantity=sales["y"])
    mondays = pd.date_range(START, periods=periods + 26, freq="7D")
    calendar = pd.DataFrame({"date": mondays, "holiday": is_holiday_week(mondays).astype(float)})
    raw = RawData(sales=sales, keys=("store", "category"), calendar=calendar)
    return build_training_set(raw, FeatureConfig(customers=False), freq="W", horizon=H)


def _cut(training_set: TrainingSet, back: int) -> pd.Timestamp:
    return pd.Timestamp(sorted(training_set.base["ds"].unique())[-1 - back])


def _posted(training_set: TrainingSet, after: pd.Timestamp, through: pd.Timestamp
            ) -> pd.DataFrame:
    base = training_set.base
    rows = base[(base["ds"] > after) & (base["ds"] <= through)]
    return rows[["series_id", "ds", "y"]].reset_index(drop=True)


# --- classes ------------------------------------------------------------------------------

def test_each_series_gets_its_syntetos_boylan_class() -> None:
    model = IntermittentForecaster().fit(sparse_panel(FOUR_CLASSES, periods=200))
    assert list(model.demand_class_) == ["smooth", "erratic", "intermittent", "lumpy"]
    assert model.adi_[:2] == pytest.approx(1.0) and (model.adi_[2:] > 2.5).all()
    assert list(model.kind_) == [0, 0, 1, 1]  # SES, SES, SBA, SBA


def test_classes_skip_missing_periods_and_a_series_without_demand_is_intermittent() -> None:
    y = np.array([[0.0, 4.0, np.nan, 0.0, 4.0, 0.0],     # demands at observed periods 2, 4
                  [0.0, 0.0, 0.0, 0.0, 0.0, 0.0]])
    adi, cv2, classes = demand_classes(y)
    assert adi[0] == pytest.approx(2.0) and cv2[0] == pytest.approx(0.0)
    assert np.isinf(adi[1]) and list(classes) == ["intermittent", "intermittent"]


# y = 0, 3, (missing), 0, 0, 6 with alpha = beta = 0.5, by hand:
#   Croston: first demand z = 3, p = 2; then z = 3 + (6 - 3) / 2 = 4.5, p = 2 + (3 - 2) / 2
#   TSB: d = 1/2 at the first demand, then 1/4, 1/8 and 1/8 + (1 - 1/8) / 2 = 9/16
#   SES: 0, 1.5, 0.75, 0.375, 0.375 + (6 - 0.375) / 2
@pytest.mark.parametrize(("kind", "expected"), [
    (SBA, (1 - 0.25) * 4.5 / 2.5), (TSB, 9 / 16 * 4.5), (SES, 0.375 + 5.625 / 2)],
    ids=["sba", "tsb", "ses"])
def test_the_recursions_match_a_hand_computation(kind: int, expected: float) -> None:
    y = np.array([[0.0, 3.0, np.nan, 0.0, 0.0, 6.0]])
    state, _ = run(kind, y, 0.5, 0.5, initial_state((1, 1)))
    assert one_step(kind, state, 0.5)[0, 0] == pytest.approx(expected)


# --- accuracy -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def sparse_naive() -> dict[str, float]:
    training_set = sparse_panel(SPARSE)
    windows = make_windows(training_set, BacktestConfig(n_windows=4, step=4))
    return run_backtest(SeasonalNaive(), training_set, windows).metrics


@pytest.mark.parametrize("method", ["sba", "tsb"])
def test_it_beats_seasonal_naive_on_sparse_demand(method: str,
                                                  sparse_naive: dict[str, float]) -> None:
    training_set = sparse_panel(SPARSE)
    windows = make_windows(training_set, BacktestConfig(n_windows=4, step=4))
    metrics = run_backtest(IntermittentForecaster(method=method), training_set,
                           windows).metrics
    assert metrics["wape"] < sparse_naive["wape"]
    assert metrics["rmsse"] < sparse_naive["rmsse"]


# --- update -------------------------------------------------------------------------------

def _offline(model: IntermittentForecaster, base: pd.DataFrame) -> np.ndarray:
    """Each series' forecast from the recursion run over its whole ``base`` y."""
    y = ragged(base, model.series_ids_)
    forecast = np.zeros(len(y))
    for kind in np.unique(model.kind_):
        rows = model.kind_ == kind
        alpha, beta = model.alpha_[rows, None], model.beta_[rows, None]
        state, _ = run(int(kind), y[rows], alpha, beta, initial_state((rows.sum(), 1)))
        forecast[rows] = one_step(int(kind), state, beta)[:, 0]
    return np.maximum(forecast, 0.0)


@pytest.mark.parametrize(("method", "demand", "periods"), [
    ("sba", SPARSE, 120), ("tsb", SPARSE, 120), ("tsb", FOUR_CLASSES, 200)],
    ids=["sba", "tsb", "tsb-and-ses"])
def test_update_equals_the_recursion_over_the_extended_history(
    method: str, demand: tuple[tuple[float, float], ...], periods: int
) -> None:
    full = sparse_panel(demand, periods)
    origin, new_origin = _cut(full, 6), _cut(full, 2)
    model = IntermittentForecaster(method=method).fit(full.until(origin))
    before = model.forecasts().copy()
    rolled = model.update(_posted(full, origin, new_origin))
    assert (rolled.origins() == new_origin).all()
    assert rolled.alpha_ is model.alpha_  # the fitted parameters: no refit
    pd.testing.assert_series_equal(model.forecasts(), before)  # self is not modified
    forecast = rolled.predict_mean(H)
    assert forecast["ds"].min() == new_origin + pd.Timedelta(weeks=1)
    expected = _offline(model, full.until(new_origin).base)
    np.testing.assert_array_equal(rolled.forecasts().to_numpy(), expected)  # bit-identical
    assert not np.array_equal(before.to_numpy(), expected)


def test_the_same_posted_rows_give_the_same_state_however_they_arrived() -> None:
    full = sparse_panel(SPARSE)
    origin = _cut(full, 5)
    model = IntermittentForecaster(method="tsb").fit(full.until(origin))
    first = _posted(full, origin, _cut(full, 3))
    both = _posted(full, origin, _cut(full, 1))
    at_once = model.update(both).predict(H)
    in_steps = model.update(first).update(both).predict(H)
    pd.testing.assert_frame_equal(at_once, in_steps)
    one = at_once["series_id"].iloc[0]
    alone = model.update(both[both["series_id"] == one]).predict(H, series_ids=[one])
    pd.testing.assert_frame_equal(alone, at_once[at_once["series_id"] == one]
                                  .reset_index(drop=True))


# --- missing periods ----------------------------------------------------------------------

def test_missing_y_is_skipped_like_a_period_that_is_not_there() -> None:
    full = sparse_panel(SPARSE)
    training_set = full.until(_cut(full, 4))
    base = training_set.base
    gone = np.random.default_rng(5).random(len(base)) < 0.1
    gone &= base["ds"].to_numpy() < base["ds"].max()  # keep every series' origin
    with_nan = replace(training_set, base=base.assign(y=base["y"].where(~gone)))
    without = replace(training_set, base=base[~gone].reset_index(drop=True))
    model = IntermittentForecaster().fit(with_nan)
    forecast = model.forecasts()
    assert np.isfinite(forecast).all() and (forecast >= 0).all()
    np.testing.assert_array_equal(forecast, IntermittentForecaster().fit(without).forecasts())
    posted = _posted(full, training_set.base["ds"].max(), _cut(full, 2))
    posted.loc[posted["ds"] == posted["ds"].max(), "y"] = np.nan
    rolled = model.update(posted)
    shorter = model.update(posted[posted["ds"] < posted["ds"].max()])
    np.testing.assert_array_equal(rolled.forecasts(), shorter.forecasts())
    assert np.isfinite(rolled.predict_mean(H)["yhat"]).all()
