"""The statistical family chooses per series: the model built for a series wins its holdout;
missing periods, known-future inputs and scenarios are handled; it beats seasonal naive.

The daily series are drawn here, each the textbook case of one candidate: two seasons
with a yearly event (only MSTL's yearly profile foresees it), a promotion-driven series
(only ARIMA reads exogenous inputs), a weekly season growing with a linear trend (Theta's
multiplicative decomposition is exact for it, ARIMA's fixed Fourier terms are not), a
linear trend with a constant weekly season (Holt-Winters and ARIMA with drift + Fourier
terms are both exact for it).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from features import TrainingSet
from features.build import build_training_set
from features.config import FeatureConfig
from features.raw import RawData
from tests.training._panels import PanelShape, make_training_set
from training.backtest import make_windows, run_backtest
from training.config import BacktestConfig
from training.forecasters import SeasonalNaive, TimeSeriesForecaster
from training.forecasters.time_series import KINDS

START = pd.Timestamp("2021-01-04")
DAYS, H = 800, 14
WEEKLY = PanelShape(n_series=4, seed=0, season_amplitude=0.5, promo_rate=0.1)


def designed_series(seed: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """series name -> (daily y, promo flags)."""
    rng = np.random.default_rng(seed)
    t = np.arange(DAYS)
    week = np.sin(2 * np.pi * t / 7)
    event = np.exp(-0.5 * (((t - (DAYS - 7)) % 365 + 182) % 365 - 182) ** 2 / 144)
    promo = (rng.random(DAYS) < 0.3).astype(float)
    none = np.zeros(DAYS)
    return {
        "two_seasons": (100 * (1 + 0.3 * week) * (1 + 0.3 * np.sin(2 * np.pi * t / 365.25))
                        * (1 + 0.8 * event) + rng.normal(0, 2, DAYS), none),
        "promotions": (100 + 10 * week + 60 * promo + rng.normal(0, 2, DAYS), promo),
        "trend_and_week": (50 + 0.1 * t + 10 * week + rng.normal(0, 1, DAYS), none),
        "growing_week": ((50 + 0.15 * t) * (1 + 0.4 * week)
                         * np.exp(rng.normal(0, 0.01, DAYS)), none),
    }


def daily_training_set(series: dict[str, tuple[np.ndarray, np.ndarray]]) -> TrainingSet:
    dates = pd.date_range(START, periods=DAYS, freq="D")
    sales = pd.concat([pd.DataFrame({"date": dates, "store": name, "y": y, "promo": promo})
                       for name, (y, promo) in series.items()], ignore_index=True)
    calendar = pd.DataFrame({"date": pd.date_range(START, periods=DAYS + H, freq="D"),
                             "holiday": 0.0})
    raw = RawData(sales=sales, keys=("store",), calendar=calendar)
    features = FeatureConfig(customers=False, lags=[H], rolling_windows=[])
    return build_training_set(raw, features, freq="D", horizon=H)


@pytest.fixture(scope="module")
def daily() -> TrainingSet:
    return daily_training_set(designed_series())


@pytest.fixture(scope="module")
def chosen(daily: TrainingSet) -> TimeSeriesForecaster:
    """The per-series choice alone (``combine=1``): one model per series."""
    return TimeSeriesForecaster(combine=1, holdout=1).fit(daily)


# --- the choice ---------------------------------------------------------------------------

@pytest.mark.parametrize(("series_id", "winners"), [
    ("two_seasons", {"mstl"}),
    ("promotions", {"arima"}),
    ("trend_and_week", {"ets", "arima", "auto_arima"}),
    ("growing_week", {"theta_standard", "theta_optimised", "theta_dynamic", "auto_arima"}),
])
def test_each_series_gets_the_model_built_for_it(
    chosen: TimeSeriesForecaster, series_id: str, winners: set[str]
) -> None:
    fitted = chosen.series_[series_id]
    assert fitted.kind in winners
    assert set(fitted.scores) == set(KINDS)  # every candidate was fitted and scored
    assert fitted.scores[fitted.kind] == min(fitted.scores.values())


def test_the_panel_is_not_forecast_by_one_model_for_all(chosen: TimeSeriesForecaster) -> None:
    assert chosen.chosen_models().nunique() >= 3


def test_one_kind_can_be_forced_and_an_unknown_one_is_refused(daily: TrainingSet) -> None:
    forced = TimeSeriesForecaster(model="theta_dynamic").fit(daily)
    assert set(forced.chosen_models()) == {"theta_dynamic"}
    assert all(not f.scores or set(f.scores) == {"theta_dynamic"}
               for f in forced.series_.values())
    with pytest.raises(ValueError, match="model must be"):
        TimeSeriesForecaster(model="prophet").fit(daily)


# --- known-future inputs and scenarios -------------------------------------------------------

def test_a_scenario_moves_the_series_whose_model_reads_it_and_only_its_day(
    chosen: TimeSeriesForecaster, daily: TrainingSet
) -> None:
    days = daily.pipeline.future_base(daily.base, H)[["series_id", "ds"]]
    promo_day = (days["ds"] == days["ds"].min() + pd.Timedelta(days=3)).to_numpy()
    plain = chosen.predict_mean(H, days.assign(promo=0.0))
    scenario = chosen.predict_mean(H, days.assign(promo=np.where(promo_day, 1.0, 0.0)))
    lift = (scenario["yhat"] - plain["yhat"]).to_numpy()
    is_promo_series = (plain["series_id"] == "promotions").to_numpy()
    assert lift[is_promo_series & promo_day] == pytest.approx(60.0, rel=0.1)  # simulated
    assert np.abs(lift[~(is_promo_series & promo_day)]).max() == pytest.approx(0.0)


def test_a_named_known_future_column_is_an_arima_input(daily: TrainingSet) -> None:
    """Any column of the pipeline's exog_columns, not only promo / holiday."""
    rng = np.random.default_rng(5)
    base = daily.base.copy()
    base["temperature"] = rng.normal(20, 5, len(base))
    base["y"] = base["y"] + 3.0 * base["temperature"]
    exog = (*daily.pipeline.exog_columns, "temperature")
    warm = replace(daily, base=base, pipeline=replace(daily.pipeline, exog_columns=exog),
                   metadata=replace(daily.metadata, exog_columns=exog))
    model = TimeSeriesForecaster(model="arima").fit(warm)
    days = warm.pipeline.future_base(warm.base, H)[["series_id", "ds"]]
    cold = model.predict_mean(H, days.assign(temperature=10.0))
    hot = model.predict_mean(H, days.assign(temperature=30.0))
    np.testing.assert_allclose(hot["yhat"] - cold["yhat"], 60.0, rtol=0.1)


# --- missing periods ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def with_gaps() -> TrainingSet:
    """The weekly panel with missing weeks: a 3-week gap, single weeks, the first week."""
    weekly = make_training_set(WEEKLY, horizon=8)
    base = weekly.base.copy()
    position = base.groupby("series_id").cumcount().to_numpy()
    gaps = np.isin(position, [0, 40, 41, 42, 90, 120])
    base.loc[gaps, "y"] = np.nan
    return replace(weekly, base=base)


@pytest.mark.parametrize("model", ["auto", *KINDS])
def test_missing_periods_are_filled_not_fatal(with_gaps: TrainingSet, model: str) -> None:
    fitted = TimeSeriesForecaster(model=model).fit(with_gaps)
    assert all(f.error is None and f.params is not None for f in fitted.series_.values())
    assert np.isfinite(fitted.predict_mean(8)["yhat"]).all()
    origin = fitted.origins().iloc[0]
    posted = pd.DataFrame({"series_id": fitted.origins().index,
                           "ds": origin + pd.Timedelta(weeks=1), "y": np.nan})
    rolled = fitted.update(posted)  # a missing week posted: the origin still moves
    assert (rolled.origins() == origin + pd.Timedelta(weeks=1)).all()
    assert np.isfinite(rolled.predict_mean(8)["yhat"]).all()


def test_gaps_change_the_forecast_little(with_gaps: TrainingSet) -> None:
    complete = make_training_set(WEEKLY, horizon=8)
    full = TimeSeriesForecaster(model="ets").fit(complete).predict_mean(8)["yhat"]
    gappy = TimeSeriesForecaster(model="ets").fit(with_gaps).predict_mean(8)["yhat"]
    assert np.abs(gappy - full).sum() / full.abs().sum() < 0.05


# --- accuracy -----------------------------------------------------------------------------

def _wape(model: object, training_set: TrainingSet) -> float:
    windows = make_windows(training_set, BacktestConfig(n_windows=2, step=4))
    return run_backtest(model, training_set, windows).metrics["wape"]


def test_the_choice_beats_seasonal_naive_on_a_seeded_panel() -> None:
    weekly = make_training_set(WEEKLY, horizon=8)
    assert _wape(TimeSeriesForecaster(), weekly) < 0.9 * _wape(SeasonalNaive(), weekly)


def test_the_choice_beats_seasonal_naive_on_the_daily_holdout(daily: TrainingSet) -> None:
    origin = daily.base["ds"].max() - pd.Timedelta(days=H)
    past = daily.until(origin)
    truth = daily.base[daily.base["ds"] > origin].set_index(["series_id", "ds"])["y"]

    def error(model: object) -> float:
        forecast = model.fit(past).predict_mean(H).set_index(["series_id", "ds"])["yhat"]
        return float((forecast - truth).abs().sum() / truth.abs().sum())

    assert error(TimeSeriesForecaster()) < 0.8 * error(SeasonalNaive())


def test_combine_averages_the_best_candidates_and_rolls_each(daily: TrainingSet) -> None:
    model = TimeSeriesForecaster(combine=3).fit(daily)
    fitted = model.series_["two_seasons"]
    best = sorted(fitted.scores, key=fitted.scores.__getitem__)[:3]
    assert fitted.kind == "+".join(best)
    exog = fitted.exog if fitted.exog.size else np.zeros((len(fitted.y), len(model.exog_)))
    expected = np.mean([m.path(fitted.y, exog, H) for m in fitted.params.members], axis=0)
    np.testing.assert_allclose(fitted.path, expected)
    dates = sorted(daily.base["ds"].unique())
    origin = pd.Timestamp(dates[-8])
    early = TimeSeriesForecaster(combine=3).fit(daily.until(origin))
    posted = daily.base[daily.base["ds"] > origin]
    halfway = posted[posted["ds"] <= pd.Timestamp(dates[-4])]
    pd.testing.assert_frame_equal(early.update(posted).predict_mean(H),
                                  early.update(halfway).update(posted).predict_mean(H))
