"""What the global families divide y by (``target_scale``): each row's level at its origin
(the longest rolling mean, read up to ds - H like every target-derived feature) or the
series' level at the training origin.

Trees cannot forecast past the range of y they were fitted on. Relative to the series'
level at the training origin, a series that keeps growing leaves that range within the
horizon; relative to each row's own origin it stays in it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features import TrainingSet
from features.build import build_training_set
from features.config import FeatureConfig
from tests.training._panels import PanelShape, make_training_set, simulate_raw, with_factor
from training.backtest import BacktestWindow, make_windows, period_grid, run_backtest
from training.config import BacktestConfig
from training.forecasters import LightGBMForecaster, RegressionForecaster, SeasonalNaive
from training.forecasters.common import ROW_LEVEL_FLOOR, TARGET_SCALES, level_column
from training.forecasters.strategy import STRATEGIES, strategy_views

H = 8
GROWTH = 0.025  # a week: x 2.4 over 36 weeks, x 1.2 over one horizon


@pytest.fixture(scope="module")
def plain() -> TrainingSet:
    return make_training_set(PanelShape(n_series=4, seed=5, periods=120), horizon=H)


@pytest.fixture(scope="module")
def growing() -> TrainingSet:
    """Four seeded series, flat for two years, then growing 2.5 % a week for 36 weeks."""
    raw = simulate_raw(PanelShape(n_series=4, seed=3, periods=140, noise=0.03,
                                  season_amplitude=0.1, promo_rate=0.0))
    grown = with_factor(raw, lambda series, week: np.exp(GROWTH * max(0, week - 104)))
    return build_training_set(grown, FeatureConfig(customers=False), freq="W", horizon=H)


def test_the_row_level_is_the_longest_rolling_mean() -> None:
    columns = ["lag_8", "roll_mean_4", "roll_std_26", "roll_mean_26", "roll_mean_12"]
    assert level_column(columns) == "roll_mean_26"
    assert level_column(["lag_8", "roll_std_4", "month"]) is None


def test_each_row_is_scaled_by_its_own_level_else_the_series_one(plain: TrainingSet) -> None:
    model = LightGBMForecaster(n_estimators=20).fit(plain)
    assert model.level_column_ == level_column(plain.feature_columns)
    rows = plain.panel.sort_values(["series_id", "ds"]).groupby("series_id").tail(3).copy()
    series = rows["series_id"].map(model.scales_).to_numpy()
    rows.iloc[0, rows.columns.get_loc(model.level_column_)] = np.nan  # not known yet
    rows.iloc[1, rows.columns.get_loc(model.level_column_)] = -5.0  # returns > sales
    rows.iloc[2, rows.columns.get_loc(model.level_column_)] = 0.5 * ROW_LEVEL_FLOOR * series[2]
    scales = model._row_scales(rows)
    np.testing.assert_array_equal(scales[:3], series[:3])
    np.testing.assert_array_equal(scales[3:], rows[model.level_column_].to_numpy()[3:])
    assert not np.allclose(scales[3:], series[3:])
    by_series = LightGBMForecaster(n_estimators=20, target_scale="series").fit(plain)
    assert by_series.level_column_ is None
    np.testing.assert_array_equal(by_series._row_scales(rows), series)
    with pytest.raises(ValueError, match="target_scale must be one of"):
        RegressionForecaster(target_scale="sideways").fit(plain)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_a_row_level_reads_y_only_up_to_the_members_min_lag(
    strategy: str, plain: TrainingSet
) -> None:
    """Each member's row level is one of its own target-derived features: a change of y
    after ds - min_lag leaves a row's scale alone."""
    base = plain.base.sort_values(["series_id", "ds"], ignore_index=True)
    at = 90
    for view in strategy_views(plain.pipeline, strategy, season=52):
        gap = view.pipeline.min_lag
        column = level_column(view.pipeline.feature_columns)
        assert column is not None
        hidden = base.copy()
        hidden.loc[at - gap + 1:at, "y"] *= 3.0
        level = [view.pipeline.transform(b).set_index(["series_id", "ds"]).loc[
            (base.loc[at, "series_id"], base.loc[at, "ds"]), column] for b in (base, hidden)]
        assert level[0] == level[1]


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_row_levels_follow_a_growing_series_past_its_training_range(
    strategy: str, growing: TrainingSet
) -> None:
    """On the same backtest (the last 3 x 8 weeks of growth), relative to the row's level
    LightGBM beats itself relative to the series' level, and seasonal naive."""
    windows = make_windows(growing, BacktestConfig(n_windows=3, step=H))
    wape = {scale: run_backtest(LightGBMForecaster(n_estimators=80, strategy=strategy,
                                                   target_scale=scale), growing,
                                windows).metrics["wape"] for scale in ("row", "series")}
    naive = run_backtest(SeasonalNaive(), growing, windows).metrics["wape"]
    assert wape["row"] < 0.7 * wape["series"]
    assert wape["row"] < naive


def test_a_model_pickled_before_target_scale_forecasts_by_the_series_level(
    plain: TrainingSet,
) -> None:
    """A pickle from before the param existed has neither attribute: the class defaults
    make it the series-scaled model it was fitted as."""
    old = RegressionForecaster(target_scale="series").fit(plain)
    expected = old.predict_mean(H)
    del old.target_scale, old.level_column_, old.halves_
    assert old.target_scale == "series" and old.level_column_ is None and old.halves_ is None
    pd.testing.assert_frame_equal(old.predict_mean(H), expected)


HEDGED = {"lightgbm": lambda **p: LightGBMForecaster(n_estimators=40, **p),
          "regression": lambda **p: RegressionForecaster(**p)}


@pytest.mark.parametrize("family", sorted(HEDGED))
@pytest.mark.parametrize("strategy", ["direct", "buckets"])
def test_a_hedged_model_forecasts_the_mean_of_a_row_and_a_series_scaled_model(
    family: str, strategy: str, plain: TrainingSet
) -> None:
    make = HEDGED[family]
    hedged = make(strategy=strategy, target_scale="both").fit(plain)
    halves = [make(strategy=strategy, target_scale=s).fit(plain).predict_mean(H)["yhat"]
              for s in ("row", "series")]
    forecast = hedged.predict_mean(H)["yhat"].to_numpy()
    np.testing.assert_allclose(forecast, (halves[0] + halves[1]).to_numpy() / 2, rtol=1e-12)
    assert not np.allclose(halves[0], halves[1])  # two different models were averaged
    # the few-cells path takes a LightGBM pair too (the regression has no matrix predictor)
    assert hedged.cells_supported is (strategy == "direct" and family == "lightgbm")


def test_a_hedged_recursion_feeds_the_halves_mean_to_the_next_step(plain: TrainingSet) -> None:
    """Step 1 reads only history: the mean of the halves. Later steps read that mean as y,
    so they differ from averaging two recursions run apart."""
    make = HEDGED["lightgbm"]
    hedged = make(strategy="recursive", target_scale="both").fit(plain).predict_mean(H)
    apart = [make(strategy="recursive", target_scale=s).fit(plain).predict_mean(H)["yhat"]
             for s in ("row", "series")]
    mean = ((apart[0] + apart[1]) / 2).to_numpy()
    first = hedged["step"].to_numpy() == 1
    np.testing.assert_allclose(hedged["yhat"].to_numpy()[first], mean[first], rtol=1e-12)
    assert not np.allclose(hedged["yhat"].to_numpy()[~first], mean[~first])


@pytest.mark.parametrize("strategy", ["direct", "recursive"])
def test_a_hedged_model_rolls_pickles_and_explains_like_any_other(
    strategy: str, plain: TrainingSet
) -> None:
    import pickle

    from training.forecasters.drivers import reconciliation_gap
    from training.forecasters.explain import explain_cells

    dates = sorted(plain.base["ds"].unique())
    origin, last = pd.Timestamp(dates[-3]), pd.Timestamp(dates[-1])
    model = HEDGED["lightgbm"](strategy=strategy, target_scale="both").fit(plain.until(origin))
    posted = plain.base[plain.base["ds"] > origin]
    rolled = pickle.loads(pickle.dumps(model)).update(posted)
    assert (rolled.origins() == last).all()
    assert not np.allclose(rolled.predict_mean(H)["yhat"], model.predict_mean(H)["yhat"])
    forecast = rolled.predict_mean(H)
    explained = explain_cells(rolled, forecast[["series_id", "ds"]], H, None)
    np.testing.assert_allclose(explained.yhat, forecast["yhat"], rtol=1e-12)
    assert np.abs(reconciliation_gap(explained)).max() < 1e-9 * forecast["yhat"].abs().max()
    assert "row and series level" in explained.method[0]
    parts = [half for member in model.members_ or [model] for half in member.halves_]
    gains = pd.concat([half.feature_importances() for half in parts]).groupby(level=0).sum()
    pd.testing.assert_series_equal(model.feature_importances().sort_index(),
                                   gains.sort_index(), check_names=False)


@pytest.fixture(scope="module")
def grown_then_paused() -> TrainingSet:
    """Six seeded series: flat for two years, growing 2.5 % a week for 36 weeks, then flat
    at the new level (a recovery, then a pause)."""
    raw = simulate_raw(PanelShape(n_series=6, seed=3, periods=180, noise=0.03,
                                  season_amplitude=0.1, promo_rate=0.0))
    grown = with_factor(raw, lambda series, week: np.exp(GROWTH * min(max(0, week - 104), 36)))
    return build_training_set(grown, FeatureConfig(customers=False), freq="W", horizon=H)


@pytest.mark.parametrize("strategy", ["direct", "recursive"])
def test_the_hedge_holds_through_a_pause_that_fools_each_scale_alone(
    strategy: str, grown_then_paused: TrainingSet
) -> None:
    """Through the pause after the growth the mean of the two scales beats each alone (the
    row level learned growth relative to the level H weeks back, which the pause stops);
    during the growth it stays near the row level and well ahead of the series level."""
    grid = period_grid(grown_then_paused)

    def wape(scale: str, origins: list[int]) -> float:
        windows = [BacktestWindow(i, grid[o], grid[o + H]) for i, o in enumerate(origins)]
        model = LightGBMForecaster(n_estimators=80, strategy=strategy, target_scale=scale)
        return run_backtest(model, grown_then_paused, windows).metrics["wape"]

    pause = {scale: wape(scale, [144, 152, 160]) for scale in TARGET_SCALES}
    assert pause["both"] < min(pause["row"], pause["series"])
    growth = {scale: wape(scale, [124, 132]) for scale in TARGET_SCALES}
    assert growth["both"] < growth["series"]
    assert growth["both"] < 1.25 * growth["row"]
