"""Time-series family: rolling the origin forward with ``update`` (no refit), every model kind.

The model is trained on a panel without its last two weeks; those weeks' actuals are then
posted. Oracles are computed here, independently of the family's code: the Holt-Winters
recursion written out for ETS (and for the adjusted series of MSTL, its season profiles
taken out by phase), the Theta lines and SES written as loops, statsmodels' own ``append``
for ARIMA.
"""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pandas as pd
import pytest
from joblib import Parallel, parallel_config

from features import TrainingSet
from features.build import build_training_set
from features.config import FeatureConfig
from tests.training._panels import PanelShape, is_holiday_week, simulate_raw, simulate_weeks
from training.forecasters import TimeSeriesForecaster, time_series
from training.forecasters.arima import fourier_terms
from training.forecasters.time_series import KINDS

H = 8
WEEK = pd.Timedelta(days=7)
# Promo-heavy (the what-if needs a clear promo lift); every series ETS-fits a level that
# moves (smoothing_level > 0), so a posted week changes its next weeks' forecast.
SHAPE = PanelShape(n_series=4, seed=1, promo_rate=0.3, promo_lift=0.8)
POSTED = 2  # weeks held out of training, posted as actuals
MODELS = {
    **{kind: {"model": kind} for kind in KINDS},
    "sarimax": {"model": "sarimax", "order": (1, 1, 1)},  # the former name of "arima"
    "auto": {"model": "auto"},
}


def _training_set(shape: PanelShape, keep: pd.Series | None = None) -> TrainingSet:
    """The training set of ``shape`` without its last POSTED weeks (and, where ``keep`` is
    False, without those sales lines)."""
    raw = simulate_raw(shape)
    cutoff = simulate_weeks(shape)["ds"].max() - (POSTED - 1) * WEEK
    kept = raw.sales["date"] < cutoff
    if keep is not None:
        kept &= keep(raw.sales)
    sales = raw.sales[kept].reset_index(drop=True)
    return build_training_set(raw.__class__(sales=sales, keys=raw.keys, calendar=raw.calendar),
                              FeatureConfig(customers=False), freq="W", horizon=H)


@pytest.fixture(scope="module")
def trained() -> TrainingSet:
    return _training_set(SHAPE)


@pytest.fixture(scope="module")
def posted() -> pd.DataFrame:
    """The held-out weeks' truth: series_id, ds, y, promo, price, holiday (oldest first)."""
    weeks = simulate_weeks(SHAPE)
    last = weeks["ds"].sort_values().unique()[-POSTED:]
    rows = weeks[weeks["ds"].isin(last)]
    return rows[["series_id", "ds", "y", "promo", "price", "holiday"]].sort_values(
        ["series_id", "ds"], ignore_index=True)


@pytest.fixture(scope="module", params=sorted(MODELS))
def model(request: pytest.FixtureRequest, trained: TrainingSet) -> TimeSeriesForecaster:
    fitted = TimeSeriesForecaster(**MODELS[request.param]).fit(trained)
    assert all(s.params is not None for s in fitted.series_.values())  # no naive fallback
    return fitted


def _counting_parallel(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Records how many jobs each joblib ``Parallel`` call of the family is given."""
    counts: list[int] = []

    class Counting(Parallel):
        def __call__(self, iterable):  # type: ignore[no-untyped-def]
            jobs = list(iterable)
            counts.append(len(jobs))
            return super().__call__(jobs)

    monkeypatch.setattr(time_series, "Parallel", Counting)
    return counts


def test_a_small_panel_is_fitted_in_process_and_a_large_one_in_parallel(
    trained: TrainingSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    batches = _counting_parallel(monkeypatch)
    assert len(trained.base) < time_series.SMALL_PANEL  # the module's panel is a small one
    in_process = TimeSeriesForecaster(model="ets", n_jobs=2).fit(trained)
    assert batches == []  # no worker was started
    monkeypatch.setattr(time_series, "SMALL_PANEL", 1)  # now it is large enough
    with parallel_config(backend="threading"):
        parallel = TimeSeriesForecaster(model="ets", n_jobs=2).fit(trained)
    assert batches == [min(SHAPE.n_series, 2 * time_series.BATCHES_PER_WORKER)]
    pd.testing.assert_frame_equal(parallel.predict_mean(H), in_process.predict_mean(H),
                                  check_exact=True)


def _weeks(posted: pd.DataFrame, n: int) -> pd.DataFrame:
    """The first ``n`` posted weeks of every series, as the actuals sent to ``update``."""
    first = posted["ds"].sort_values().unique()[:n]
    return posted.loc[posted["ds"].isin(first), ["series_id", "ds", "y", "promo", "price"]]


def _path(frame: pd.DataFrame, series_id: str) -> np.ndarray:
    return frame.loc[frame["series_id"] == series_id, "yhat"].to_numpy()


def _scaled_history(model: TimeSeriesForecaster, trained: TrainingSet, posted: pd.DataFrame,
                    series_id: str, columns: list[str]) -> pd.DataFrame:
    """A series' training window + posted weeks, oldest first: ds, y / scale, ``columns``."""
    window = len(model.series_[series_id].y)
    train = trained.base[trained.base["series_id"] == series_id].sort_values("ds")
    rows = pd.concat([train.tail(window), posted[posted["series_id"] == series_id]])
    return rows[["ds", *columns]].assign(y=rows["y"].to_numpy(float) / model.scales_[series_id])


# --- oracles --------------------------------------------------------------------------------

def holt_winters_forecast(y: np.ndarray, params: object, horizon: int) -> np.ndarray:
    """Additive damped trend + additive season (none: zeros), written out (Hyndman &
    Athanasopoulos)."""
    alpha, beta = params.smoothing["smoothing_level"], params.smoothing["smoothing_trend"]
    gamma = params.smoothing.get("smoothing_seasonal", 0.0)
    phi = params.smoothing["damping_trend"]
    level, trend = params.initial_level, params.initial_trend
    seasons = list(params.initial_seasons if params.initial_seasons is not None
                   else np.zeros(len(y) + horizon))  # seasons[t]: the season of period t
    for t, value in enumerate(y):
        previous = level + phi * trend
        level_before = level
        level = alpha * (value - seasons[t]) + (1 - alpha) * previous
        trend = beta * (level - level_before) + (1 - beta) * phi * trend
        seasons.append(gamma * (value - previous) + (1 - gamma) * seasons[t])
    damping = np.cumsum(phi ** np.arange(1, horizon + 1))
    return level + damping * trend + np.array(seasons[len(y):len(y) + horizon])


def theta_forecast(y: np.ndarray, params: object, horizon: int) -> np.ndarray:
    """The Theta method written as loops: deseasonalise, the line known before each t
    (fixed, or refitted on the data before t when dynamic), SES of the theta line."""
    n, season = len(y), params.season
    index = (np.array([season.indices[t % len(season.indices)] for t in range(n + horizon)])
             if season else np.zeros(n + horizon))
    z = y / index[:n] if season and season.multiplicative else y - index[:n]
    intercept, slope = params.intercept, params.slope
    level = None
    for t in range(1, n + 1):  # t: 1-based time of z[t - 1]
        if params.variant == "dynamic":
            intercept, slope = (np.polyfit(np.arange(1, t), z[:t - 1], 1)[::-1]
                                if t > 2 else (z[0], 0.0))
        w = params.theta * z[t - 1] - (params.theta - 1) * (intercept + slope * t)
        level = w if level is None else params.alpha * w + (1 - params.alpha) * level
    if params.variant == "dynamic":
        intercept, slope = np.polyfit(np.arange(1, n + 1), z, 1)[::-1]
    line = intercept + slope * np.arange(n + 1, n + horizon + 1)
    zhat = (1 - 1 / params.theta) * line + level / params.theta
    return zhat * index[n:] if season and season.multiplicative else zhat + index[n:]


def mstl_forecast(y: np.ndarray, params: object, horizon: int) -> np.ndarray:
    """Season profiles taken out by phase, Holt's damped trend on the rest, put back."""
    def seasons(start: int, count: int) -> np.ndarray:
        return sum(np.array([profile[t % period] for t in range(start, start + count)])
                   for period, profile in zip(params.periods, params.profiles, strict=True))

    adjusted = y - seasons(0, len(y))
    return holt_winters_forecast(adjusted, params.adjusted_model, horizon) + seasons(
        len(y), horizon)


def arima_forecast(model: TimeSeriesForecaster, trained: TrainingSet, posted: pd.DataFrame,
                   series_id: str) -> tuple[np.ndarray, np.ndarray]:
    """(forecast at the training origin, forecast after the posted weeks): statsmodels'
    filter with the stored parameters, then ``append`` of the posted weeks (no refit)."""
    from statsmodels.tsa.arima.model import ARIMA

    fitted = model.series_[series_id].params
    n_train = len(model.series_[series_id].y)
    rows = _scaled_history(model, trained, posted, series_id, list(fitted.flags))
    y, flags = rows["y"].to_numpy(), rows[list(fitted.flags)].to_numpy(float)

    def design(start: int, flag_values: np.ndarray) -> np.ndarray:
        t = np.arange(start, start + len(flag_values))
        return np.column_stack([flag_values, fourier_terms(t, fitted.season_length,
                                                           fitted.fourier_k)])

    def future(start: int) -> np.ndarray:
        """The H periods after index start - 1: no promotion planned, the holiday calendar,
        the last price."""
        ds = pd.DatetimeIndex([rows["ds"].iloc[start - 1] + s * WEEK for s in range(1, H + 1)])
        planned = {"promo": np.zeros(H), "holiday": is_holiday_week(ds).astype(float),
                   "price": np.full(H, rows["price"].iloc[start - 1])}
        return design(start, np.column_stack([planned[c] for c in fitted.flags]))

    seasonal_order = getattr(fitted, "seasonal_order", (0, 0, 0, 0))  # auto_arima's
    base = ARIMA(y[:n_train], exog=design(0, flags[:n_train]), order=fitted.order,
                 seasonal_order=seasonal_order, trend=fitted.trend).filter(fitted.params)
    extended = base.append(y[n_train:], exog=design(n_train, flags[n_train:]))
    return base.forecast(H, exog=future(n_train)), extended.forecast(H, exog=future(len(y)))


RECURSIONS = {"ets": holt_winters_forecast, "mstl": mstl_forecast,
              **{f"theta_{v}": theta_forecast for v in ("standard", "optimised", "dynamic")}}


def oracle(model: TimeSeriesForecaster, trained: TrainingSet, posted: pd.DataFrame,
           series_id: str) -> tuple[np.ndarray, np.ndarray]:
    """The forecast at the training origin and after ``posted``, in level units."""
    fitted, scale = model.series_[series_id], model.scales_[series_id]
    if fitted.kind in ("arima", "auto_arima"):
        return tuple(path * scale for path in arima_forecast(model, trained, posted,
                                                             series_id))
    y = _scaled_history(model, trained, posted, series_id, [])["y"].to_numpy()
    recursion = RECURSIONS[fitted.kind]
    n_train = len(fitted.y)
    return (recursion(y[:n_train], fitted.params, H) * scale,
            recursion(y, fitted.params, H) * scale)


# --- origins ----------------------------------------------------------------------------------

def test_update_moves_each_origin_one_period_and_the_forecast_with_it(
    model: TimeSeriesForecaster, posted: pd.DataFrame
) -> None:
    before = model.predict_mean(H)
    rolled = model.update(_weeks(posted, 1))
    assert ((rolled.origins() - model.origins()) == WEEK).all()
    after = rolled.predict_mean(H)
    for series_id, rows in after.groupby("series_id"):
        expected = [rolled.origins()[series_id] + k * WEEK for k in range(1, H + 1)]
        assert rows["ds"].tolist() == expected
        first_before = before.loc[before["series_id"] == series_id, "ds"].min()
        assert rows["ds"].min() == first_before + WEEK
    assert np.isfinite(after["yhat"]).all()
    pd.testing.assert_frame_equal(model.predict_mean(H), before)  # the original is untouched


def test_series_not_posted_keep_their_origin_and_forecast(
    model: TimeSeriesForecaster, posted: pd.DataFrame
) -> None:
    week = _weeks(posted, 1)
    first = sorted(week["series_id"].unique())[0]
    rolled = model.update(week[week["series_id"] == first])
    moved = rolled.origins() != model.origins()
    assert moved[moved].index.tolist() == [first]
    others = [s for s in model.series_ if s != first]
    pd.testing.assert_frame_equal(rolled.predict_mean(H, series_ids=others),
                                  model.predict_mean(H, series_ids=others))


# --- the rolled forecast ------------------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
def test_a_rolled_forecast_is_the_models_recursion_over_the_extended_history(
    kind: str, trained: TrainingSet, posted: pd.DataFrame
) -> None:
    model = TimeSeriesForecaster(**MODELS[kind]).fit(trained)
    week = _weeks(posted, 1)
    rolled = model.update(week)
    before, after = model.predict_mean(H), rolled.predict_mean(H)
    truth = posted[posted["ds"].isin(week["ds"])]
    for series_id, fitted in model.series_.items():
        assert fitted.kind == kind
        at_origin, extended = oracle(model, trained, truth, series_id)
        np.testing.assert_allclose(_path(before, series_id), at_origin, rtol=1e-9)
        np.testing.assert_allclose(_path(after, series_id), extended, rtol=1e-9)
        if kind != "mstl":  # its adjusted series is a near-deterministic trend here (alpha ~ 0)
            # the posted week changed the forecast of the weeks both forecasts cover
            assert not np.allclose(_path(after, series_id)[:-1],
                                   _path(before, series_id)[1:], rtol=1e-6)


def test_ets_levels_move(trained: TrainingSet) -> None:
    """SHAPE makes every ETS fit a level that moves, so a posted week matters."""
    model = TimeSeriesForecaster(model="ets").fit(trained)
    assert all(f.params.smoothing["smoothing_level"] > 1e-3 for f in model.series_.values())


def test_update_does_not_refit(model: TimeSeriesForecaster, posted: pd.DataFrame) -> None:
    rolled = model.update(_weeks(posted, POSTED))
    assert rolled.series_.keys() == model.series_.keys()
    for series_id, fitted in model.series_.items():
        new = rolled.series_[series_id]
        assert pickle.dumps(new.params) == pickle.dumps(fitted.params)
        assert new.exog_coef == fitted.exog_coef
        np.testing.assert_array_equal(new.y, fitted.y)  # the training history stays
        assert not np.array_equal(new.path, fitted.path)
    pd.testing.assert_series_equal(rolled.scales_, model.scales_)


# --- determinism --------------------------------------------------------------------------------

def test_the_same_rows_give_the_same_forecast_however_they_arrived(
    model: TimeSeriesForecaster, posted: pd.DataFrame
) -> None:
    both = _weeks(posted, 2)
    at_once = model.update(both)
    first = _weeks(posted, 1)
    wrong = first.assign(y=first["y"] * 2.0)  # a first post, later corrected
    in_steps = model.update(wrong).update(first).update(both)
    assert ((at_once.origins() - model.origins()) == 2 * WEEK).all()
    pd.testing.assert_series_equal(in_steps.origins(), at_once.origins())
    pd.testing.assert_frame_equal(in_steps.predict_mean(H), at_once.predict_mean(H),
                                  check_exact=True)
    restored = pickle.loads(pickle.dumps(model))
    pd.testing.assert_frame_equal(restored.update(both).predict_mean(H),
                                  at_once.predict_mean(H), check_exact=True)


def test_a_parallel_roll_equals_the_sequential_one(
    model: TimeSeriesForecaster, posted: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(time_series, "SMALL_PANEL", 0)  # this small panel too, in parallel
    batches = _counting_parallel(monkeypatch)
    parallel = copy.copy(model)
    parallel.n_jobs = 2
    with parallel_config(backend="threading"):
        rolled = parallel.update(_weeks(posted, 2))
    assert batches == [min(SHAPE.n_series, 2 * time_series.BATCHES_PER_WORKER)]
    pd.testing.assert_frame_equal(rolled.predict_mean(H),
                                  model.update(_weeks(posted, 2)).predict_mean(H),
                                  check_exact=True)


# --- what-if and series_ids -----------------------------------------------------------------------

def test_a_planned_promotion_still_raises_the_arima_forecast_after_a_roll(
    trained: TrainingSet, posted: pd.DataFrame
) -> None:
    rolled = TimeSeriesForecaster(**MODELS["sarimax"]).fit(trained).update(_weeks(posted, 1))
    weeks = rolled.predict_mean(H)[["series_id", "ds"]]
    promo_week = (weeks["ds"] == weeks["ds"].min() + 2 * WEEK).to_numpy()
    plain = rolled.predict_mean(H, weeks.assign(promo=0.0))
    scenario = rolled.predict_mean(H, weeks.assign(promo=np.where(promo_week, 1.0, 0.0)))
    lift = scenario["yhat"] / plain["yhat"]
    assert (lift[promo_week] > 1.2).all()  # simulated lift: +80 %
    assert lift[~promo_week].to_numpy() == pytest.approx(1.0)


def test_series_ids_restrict_the_forecast_to_those_series(
    model: TimeSeriesForecaster, posted: pd.DataFrame
) -> None:
    for fitted in (model, model.update(_weeks(posted, 1))):
        everything = fitted.predict_mean(H)
        asked = sorted(fitted.series_)[1:3]
        some = fitted.predict_mean(H, series_ids=asked)
        assert sorted(some["series_id"].unique()) == asked
        expected = everything[everything["series_id"].isin(asked)].reset_index(drop=True)
        pd.testing.assert_frame_equal(some, expected)
        assert sorted(fitted.predict(H, series_ids=asked[:1])["series_id"].unique()) == asked[:1]


# --- seasonal-naive fallback --------------------------------------------------------------------

def test_a_series_that_fell_back_to_naive_rolls_as_seasonal_naive() -> None:
    shape = PanelShape(n_series=2, seed=0)
    short_id, short = "S00|C1", simulate_weeks(shape)["ds"].max() - (POSTED + 6) * WEEK

    def keep(sales: pd.DataFrame) -> pd.Series:
        is_short = (sales["store"] == "S00") & (sales["category"] == "C1")
        return ~is_short | (sales["date"] > short)

    model = TimeSeriesForecaster(model="ets").fit(_training_set(shape, keep))
    assert model.series_[short_id].params is None
    weeks = simulate_weeks(shape)
    new = weeks[weeks["ds"] == weeks["ds"].max() - (POSTED - 1) * WEEK]
    rolled = model.update(new[["series_id", "ds", "y", "promo"]])
    posted_y = new.loc[new["series_id"] == short_id, "y"].item()
    # less than one season of history: the naive forecast is the newest actual
    assert _path(rolled.predict_mean(H), short_id) == pytest.approx(posted_y)
    assert _path(model.predict_mean(H), short_id) != pytest.approx(posted_y)
