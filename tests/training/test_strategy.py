"""Multi-step strategies: buckets and recursive models, their leakage rule, and serving.

Leakage (the same rule as the direct design, per member): a feature row at ds of a member
with gap g must not change when y of the g periods (ds - g, ds] changes, and must change
when y at ds - g does (the newest period it may read). The recursive model reads its own
forecasts for the steps before s: a scenario at step 1 moves step 2.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features import TrainingSet
from features.pipeline import ORDER
from tests.training._panels import PanelShape, make_training_set
from training.backtest import make_windows, run_backtest
from training.config import BacktestConfig
from training.forecasters import LightGBMForecaster, RegressionForecaster
from training.forecasters.common import GlobalForecaster
from training.forecasters.strategy import (
    STRATEGIES,
    bucket_ends,
    recursive_rows,
    strategy_views,
)

H = 8
SHAPE = PanelShape(n_series=4, seed=5, periods=120, promo_rate=0.2)
MODELS = {"lightgbm": lambda s: LightGBMForecaster(n_estimators=60, strategy=s),
          "regression": lambda s: RegressionForecaster(strategy=s)}


@pytest.fixture(scope="module")
def full() -> TrainingSet:
    return make_training_set(SHAPE, horizon=H)


@pytest.mark.parametrize(("horizon", "season", "ends"), [
    (28, 7, (7, 14, 28)), (42, 7, (14, 21, 42)), (8, 52, (2, 4, 8)), (4, 52, (1, 2, 4)),
    (1, 52, (1,)), (13, 52, (4, 7, 13)),
])
def test_buckets_cover_the_horizon_in_whole_seasons_when_they_can(
    horizon: int, season: int, ends: tuple[int, ...]
) -> None:
    assert bucket_ends(horizon, season) == ends


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_each_member_reads_y_only_up_to_its_min_lag(strategy: str, full: TrainingSet) -> None:
    base = full.base.sort_values(["series_id", "ds"], ignore_index=True)
    series, at = base["series_id"].iloc[0], 90  # a row of the first series
    ds = base.loc[at, "ds"]
    for view in strategy_views(full.pipeline, strategy, season=52):
        gap = view.pipeline.min_lag
        assert gap >= view.last if strategy != "recursive" else gap == 1
        columns = [c for c in view.pipeline.feature_columns if c.startswith(("lag_", "roll_"))]
        row = _features_at(view.pipeline, base, series, ds, columns)
        hidden = base.copy()
        hidden.loc[at - gap + 1:at, "y"] *= 3.0  # (ds - gap, ds]: unknown at ds - gap
        np.testing.assert_array_equal(_features_at(view.pipeline, hidden, series, ds, columns),
                                      row)
        newest = base.copy()
        newest.loc[at - gap, "y"] *= 3.0  # ds - gap itself: the newest y it reads
        assert not np.allclose(_features_at(view.pipeline, newest, series, ds, columns), row)


def _features_at(pipeline, base: pd.DataFrame, series: str, ds: pd.Timestamp,
                 columns: list[str]) -> np.ndarray:
    panel = pipeline.transform(base)
    row = panel[(panel["series_id"] == series) & (panel["ds"] == ds)]
    return row[columns].to_numpy(dtype=float)[0]


def test_the_recursive_model_feeds_each_forecast_to_the_next_step(full: TrainingSet) -> None:
    model = LightGBMForecaster(n_estimators=60, strategy="recursive").fit(full)
    rows = model.future_features(H)
    forecast = model.predict_mean(H)
    for series, own in rows.groupby("series_id"):
        yhat = forecast.loc[forecast["series_id"] == series, "yhat"].to_numpy()
        np.testing.assert_allclose(own["lag_1"].to_numpy()[1:], yhat[:-1])
        last_y = full.base[full.base["series_id"] == series].sort_values("ds")["y"].iloc[-1]
        assert own["lag_1"].iloc[0] == pytest.approx(last_y)  # step 1 reads the origin


@pytest.mark.parametrize(("strategy", "later_steps_move"), [
    ("direct", False), ("buckets", False), ("recursive", True),
])
def test_a_promotion_at_step_one_moves_later_steps_only_when_recursive(
    strategy: str, later_steps_move: bool, full: TrainingSet
) -> None:
    model = RegressionForecaster(strategy=strategy).fit(full)
    series = model.origins().index[0]
    first = model.origins()[series] + pd.Timedelta(weeks=1)
    scenario = pd.DataFrame({"series_id": [series], "ds": [first], "promo": [1.0]})
    plain = model.predict_mean(H, series_ids=[series])["yhat"].to_numpy()
    moved = model.predict_mean(H, scenario, series_ids=[series])["yhat"].to_numpy()
    assert moved[0] > plain[0]  # the promotion lifts its own week
    assert (not np.allclose(moved[1:], plain[1:])) is later_steps_move


@pytest.mark.parametrize("family", sorted(MODELS))
@pytest.mark.parametrize("strategy", ["buckets", "recursive"])
def test_a_strategy_model_rolls_forward_the_same_however_the_rows_arrive(
    family: str, strategy: str, full: TrainingSet
) -> None:
    dates = sorted(full.base["ds"].unique())
    origin, middle, last = (pd.Timestamp(dates[-1 - k]) for k in (3, 2, 1))
    model = MODELS[family](strategy).fit(full.until(origin))
    posted = full.base[(full.base["ds"] > origin) & (full.base["ds"] <= last)]
    early = posted[posted["ds"] <= middle]
    at_once = model.update(posted).predict(H)
    in_steps = model.update(early).update(posted).predict(H)
    pd.testing.assert_frame_equal(at_once, in_steps)
    assert at_once["ds"].min() == last + pd.Timedelta(weeks=1)
    refit_free = model.update(posted)
    assert all(a is b for a, b in zip(refit_free.members_, model.members_, strict=True))


@pytest.mark.parametrize("family", sorted(MODELS))
def test_short_lags_beat_the_direct_model_when_last_week_tells(family: str) -> None:
    """A persistent AR(1) demand shock (phi 0.85 a week) is known from the newest weeks:
    the first steps of a bucketed or recursive model read them, a direct one with lags >= 8
    cannot (0.85^8 = 0.27 of the shock is left). Judged on the same backtest."""
    shocked = _ar1_set()
    windows = make_windows(shocked, BacktestConfig(n_windows=4, step=4))
    wape = {s: run_backtest(MODELS[family](s), shocked, windows).metrics["wape"]
            for s in STRATEGIES}
    assert wape["buckets"] < wape["direct"]
    assert wape["recursive"] < wape["direct"]


def _ar1_set() -> TrainingSet:
    """The simulated panel times a weekly AR(1) shock in logs, one per series."""
    from features.build import build_training_set
    from features.config import FeatureConfig
    from tests.training._panels import simulate_raw, with_factor

    raw = simulate_raw(PanelShape(n_series=8, seed=9, periods=130, noise=0.02,
                                  season_amplitude=0.05))
    rng = np.random.default_rng(9)
    shocks = {}
    for series in sorted(set(raw.sales["store"] + "|" + raw.sales["category"])):
        shock = 0.0
        for week in range(130):
            shock = 0.85 * shock + rng.normal(0, 0.2)
            shocks[series, week] = np.exp(shock)
    shocked = with_factor(raw, lambda series, week: shocks[series, week])
    return build_training_set(shocked, FeatureConfig(customers=False), freq="W", horizon=H)


def test_strategy_models_pickle_and_forecast_the_same(full: TrainingSet) -> None:
    import pickle

    for strategy in ("buckets", "recursive"):
        model: GlobalForecaster = MODELS["lightgbm"](strategy).fit(full)
        copy = pickle.loads(pickle.dumps(model))
        pd.testing.assert_frame_equal(copy.predict_mean(H), model.predict_mean(H))
        assert not copy.cells_supported and MODELS["lightgbm"]("direct").fit(
            full).cells_supported


@pytest.mark.parametrize("strategy", ["buckets", "recursive"])
def test_the_served_model_answers_a_what_if_like_the_forecaster(
    strategy: str, full: TrainingSet
) -> None:
    """Through the pyfunc model (a few cells: the fast path declines strategy models) the
    promotion of one series' first week moves what the forecaster says it moves."""
    from training.backtest import make_windows as windows_of
    from training.pyfunc import SalescastModel, model_metadata

    model = MODELS["lightgbm"](strategy).fit(full)
    backtest = run_backtest(MODELS["lightgbm"](strategy), full,
                            windows_of(full, BacktestConfig(n_windows=2, step=4)))
    model.set_conformal(backtest.calibration)
    metadata = model_metadata(model, full, backtest, "t", 0.8, model.predict(H))
    served = SalescastModel(model, metadata)
    series = model.origins().index[0]
    days = pd.date_range(model.origins()[series] + pd.Timedelta(weeks=1), periods=H,
                         freq="7D")
    rows = pd.DataFrame({"series_id": series, "ds": days, "promo": [1.0] + [np.nan] * (H - 1)})
    answer = served.predict(None, rows)
    scenario = rows.iloc[:1]
    expected = model.predict(H, scenario, 0.8, series_ids=[series])
    np.testing.assert_allclose(answer["yhat"].to_numpy(), expected["yhat"].to_numpy())
    np.testing.assert_allclose(answer["yhat_upper"].to_numpy(),
                               expected["yhat_upper"].to_numpy())
    plain = model.predict(H, None, 0.8, series_ids=[series])["yhat"].to_numpy()
    assert answer["yhat"].iloc[0] > plain[0]


def _recursive_rows_step_by_step(model: GlobalForecaster, history: pd.DataFrame,
                                 future_exog: pd.DataFrame | None) -> pd.DataFrame:
    """The recursion written plainly: a full transform of the history and the forecasts
    so far at every step (what :func:`recursive_rows` must equal bit for bit)."""
    pipeline, member = model.views_[0].pipeline, model.members_[0]
    history = pipeline.tail(history)
    future = pipeline.future_base(history, H, future_exog).sort_values(ORDER,
                                                                     ignore_index=True)
    step = future.groupby("series_id").cumcount().to_numpy() + 1
    y, taken = np.full(len(future), np.nan), []
    for s in range(1, H + 1):
        frame = pipeline.transform(pd.concat([history, future.assign(y=y)]),
                                   with_reference=True)
        rows = frame.merge(future.loc[step == s, ORDER], on=ORDER)
        yhat = member._predict_rows(rows)
        y[step == s] = np.maximum(yhat, 0.0) if model.nonnegative_ else yhat
        taken.append(rows.assign(member=0))
    out = pd.concat(taken, ignore_index=True).assign(y=np.nan)
    return out.sort_values(ORDER, kind="stable", ignore_index=True)


@pytest.mark.parametrize("family", sorted(MODELS))
@pytest.mark.parametrize("scenario", [False, True])
def test_recursive_rows_equal_a_full_transform_at_every_step(
    family: str, scenario: bool, full: TrainingSet
) -> None:
    model = MODELS[family]("recursive").fit(full)
    history = model._history_of(None)
    exog = None
    if scenario:
        first = model.origins().iloc[0] + pd.Timedelta(weeks=1)
        exog = pd.DataFrame({"series_id": model.origins().index, "ds": first, "promo": 1.0})
    expected = _recursive_rows_step_by_step(model, history, exog)
    pd.testing.assert_frame_equal(recursive_rows(model, history, exog), expected,
                                  check_exact=True)
