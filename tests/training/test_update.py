"""update(): the global families and seasonal naive roll their origin forward without a refit.

The reference for "the same forecast" is an offline, refit-free computation on the extended
history: the pipeline's feature rows built from the full panel up to the new origin, fed to
the *fitted* estimator (or, for seasonal naive, y one season before each period).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features import TrainingSet
from tests.training._panels import PanelShape, make_training_set
from training.forecasters import LightGBMForecaster, RegressionForecaster, SeasonalNaive
from training.forecasters.common import GlobalForecaster

H = 4
SHAPE = PanelShape(n_series=4, seed=3, periods=120, promo_rate=0.2)
GLOBAL = {"regression": RegressionForecaster, "lightgbm": LightGBMForecaster}


@pytest.fixture(scope="module")
def full() -> TrainingSet:
    return make_training_set(SHAPE, horizon=H)


def _cut(full: TrainingSet, back: int) -> pd.Timestamp:
    return pd.Timestamp(sorted(full.base["ds"].unique())[-1 - back])


def _posted(full: TrainingSet, after: pd.Timestamp, through: pd.Timestamp) -> pd.DataFrame:
    """The realised base rows of (after, through]: what an application posts back."""
    base = full.base
    return base[(base["ds"] > after) & (base["ds"] <= through)].reset_index(drop=True)


def _offline_global(model: GlobalForecaster, extended: TrainingSet) -> np.ndarray:
    rows = extended.pipeline.future_frame(extended.base, H).sort_values(["series_id", "ds"])
    design, scale = model._design(rows.reset_index(drop=True))
    return np.clip(model._decode(model.model_.predict(design), scale), 0.0, None)


@pytest.mark.parametrize("family", sorted(GLOBAL))
def test_a_global_model_rolls_one_period_and_equals_the_refit_free_offline_call(
    family: str, full: TrainingSet
) -> None:
    origin, new_origin = _cut(full, 3), _cut(full, 2)
    model = GLOBAL[family]().fit(full.until(origin))
    rolled = model.update(_posted(full, origin, new_origin))
    assert (rolled.origins() == new_origin).all()
    assert (model.origins() == origin).all()  # the fitted model itself is unchanged
    assert rolled.model_ is model.model_  # the same fitted estimator: no refit
    forecast = rolled.predict_mean(H).sort_values(["series_id", "ds"])
    assert forecast["ds"].min() == new_origin + pd.Timedelta(weeks=1)
    expected = _offline_global(model, full.until(new_origin))
    np.testing.assert_allclose(forecast["yhat"].to_numpy(), expected, rtol=1e-9)
    before = model.predict_mean(H).sort_values(["series_id", "ds"])
    assert not np.allclose(before["yhat"].to_numpy()[H - 1::H], forecast["yhat"].to_numpy()[
        H - 2::H])  # a forecast that did not move would repeat the old numbers


def test_seasonal_naive_reads_the_new_season(full: TrainingSet) -> None:
    origin, new_origin = _cut(full, 3), _cut(full, 1)
    model = SeasonalNaive().fit(full.until(origin))
    rolled = model.update(_posted(full, origin, new_origin)[["series_id", "ds", "y"]])
    forecast = rolled.predict_mean(H).sort_values(["series_id", "ds"])
    assert forecast["ds"].min() == new_origin + pd.Timedelta(weeks=1)
    season = model.season_length_
    known = full.base.set_index(["series_id", "ds"])["y"]
    expected = [known[(s, d - pd.Timedelta(weeks=season))]
                for s, d in zip(forecast["series_id"], forecast["ds"], strict=True)]
    np.testing.assert_allclose(forecast["yhat"].to_numpy(), expected)


@pytest.mark.parametrize("family", [*sorted(GLOBAL), "seasonal_naive"])
def test_the_same_posted_rows_give_the_same_state_however_they_arrived(
    family: str, full: TrainingSet
) -> None:
    origin = _cut(full, 3)
    model = {**GLOBAL, "seasonal_naive": SeasonalNaive}[family]().fit(full.until(origin))
    week_one = _posted(full, origin, _cut(full, 2))
    both = _posted(full, origin, _cut(full, 1))
    at_once = model.update(both).predict(H)
    in_steps = model.update(week_one).update(both).predict(H)
    pd.testing.assert_frame_equal(at_once, in_steps)
    one_series = at_once["series_id"].iloc[0]
    only = model.update(both).predict(H, series_ids=[one_series])
    pd.testing.assert_frame_equal(only, at_once[at_once["series_id"] == one_series]
                                  .reset_index(drop=True))


def test_rows_that_skip_a_period_or_precede_the_origin_are_refused(full: TrainingSet) -> None:
    origin = _cut(full, 3)
    model = LightGBMForecaster(n_estimators=20).fit(full.until(origin))
    skipped = _posted(full, _cut(full, 2), _cut(full, 1))  # week 2 without week 1
    with pytest.raises(ValueError, match="consecutive periods after its training origin"):
        model.update(skipped)
    with pytest.raises(ValueError, match="unknown series"):
        model.update(_posted(full, origin, _cut(full, 2)).assign(series_id="nowhere"))


def test_a_scenario_on_rolled_rows_equals_building_them_with_the_scenario(
    full: TrainingSet,
) -> None:
    origin, new_origin = _cut(full, 3), _cut(full, 2)
    model = LightGBMForecaster(n_estimators=50).fit(full.until(origin))
    rolled = model.update(_posted(full, origin, new_origin))
    series_id = rolled.origins().index[0]
    when = new_origin + pd.Timedelta(weeks=2)
    scenario = pd.DataFrame({"series_id": [series_id], "ds": [when], "promo": [1.0],
                             "price": [3.0]})
    fast = rolled.future_features(H, scenario, series_ids=[series_id])
    extended = full.until(new_origin)
    slow = extended.pipeline.future_frame(
        extended.base[extended.base["series_id"] == series_id], H, scenario)
    columns = [c for c in extended.feature_columns if c not in extended.keys]
    np.testing.assert_allclose(fast[columns].to_numpy(float), slow[columns].to_numpy(float))
    moved = rolled.predict_mean(H, scenario, series_ids=[series_id])
    plain = rolled.predict_mean(H, series_ids=[series_id])
    assert (moved["yhat"] != plain["yhat"]).sum() == 1  # only the scenario's period moves
