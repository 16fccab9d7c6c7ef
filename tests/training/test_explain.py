"""Why this number: every family's drivers reconcile with its forecast, on the model's
scale where it has one, and a seeded promotion effect is found where it acts."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from features.training_set import TrainingSet
from tests.training._panels import PanelShape, make_training_set
from training.base import Forecaster
from training.forecasters import FAMILIES
from training.forecasters.drivers import FLOOR, reconciliation_gap
from training.forecasters.explain import OTHER, explain_cells, explain_rows
from training.forecasters.explain_statistical import FALLBACK
from training.pyfunc import SalescastModel, model_metadata

HORIZON = 4
PROMO = PanelShape(n_series=4, periods=120, seed=3, promo_rate=0.25, promo_lift=1.5)
GLOBAL_CASES = {
    "lightgbm direct": ("lightgbm", {"n_estimators": 60}),
    "lightgbm tweedie buckets": ("lightgbm", {"n_estimators": 40, "objective": "tweedie",
                                              "strategy": "buckets"}),
    "lightgbm recursive": ("lightgbm", {"n_estimators": 40, "strategy": "recursive"}),
    "regression ridge": ("regression", {}),
    "regression elasticnet buckets": ("regression", {"l1_ratio": 0.5, "alpha": 0.001,
                                                     "strategy": "buckets"}),
}


@pytest.fixture(scope="module")
def panel() -> TrainingSet:
    return make_training_set(PROMO, horizon=HORIZON)


@pytest.fixture(scope="module")
def fitted(panel: TrainingSet) -> dict[str, Forecaster]:
    return {case: FAMILIES[family]().set_params(**params).fit(panel)
            for case, (family, params) in GLOBAL_CASES.items()}


def _cells(model: Forecaster, scenario: pd.DataFrame | None = None) -> pd.DataFrame:
    return model.predict_mean(HORIZON, scenario)


def _promo_scenario(model: Forecaster) -> pd.DataFrame:
    """Promotion in steps 2 and 4 of every series, none in steps 1 and 3."""
    grid = model.predict_mean(HORIZON)[["series_id", "ds", "step"]]
    return grid.assign(promo=(grid["step"] % 2 == 0).astype(float)).drop(columns="step")


@pytest.mark.parametrize("case", list(GLOBAL_CASES))
def test_global_drivers_reconcile_with_the_forecast(fitted, case: str) -> None:
    model = fitted[case]
    scenario = _promo_scenario(model)
    forecast = _cells(model, scenario)
    explained = explain_cells(model, forecast[["series_id", "ds"]], HORIZON, scenario)
    np.testing.assert_allclose(explained.yhat, forecast["yhat"], rtol=1e-12)
    assert np.abs(reconciliation_gap(explained)).max() < 1e-9 * forecast["yhat"].abs().max()


@pytest.mark.parametrize("case", ["lightgbm direct", "regression ridge"])
def test_contributions_reconstruct_the_models_raw_prediction(fitted, case: str) -> None:
    """On the model's own scale: SHAP values + expected value = the booster's raw score;
    coefficient x standardised value + intercept = the linear model's output."""
    model = fitted[case]
    rows = model.future_features(HORIZON)
    explained = explain_cells(model, rows[["series_id", "ds"]], HORIZON, None)
    raw = explained.drivers.groupby("cell")["model_contribution"].sum().sort_index()
    total = explained.model_base + raw.to_numpy()
    if model.family == "lightgbm":
        matrix, _ = model._matrix(rows, model.features_, model.categories_)
        expected = model.model_.booster_.predict(matrix, raw_score=True)
    else:
        expected = model.model_.predict(model._design(rows)[0])
    np.testing.assert_allclose(total, expected, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("case", ["lightgbm direct", "regression ridge"])
def test_a_promotion_is_the_top_driver_of_promo_rows(fitted, case: str) -> None:
    """The panel's promo lifts sales by 150 %: on rows with a planned promotion it is the
    largest driver and pushes the forecast up; without one (a quarter of the training rows
    had one) its absence pulls the forecast below the average row."""
    model = fitted[case]
    scenario = _promo_scenario(model)
    cells = scenario[["series_id", "ds"]]
    frame = explain_rows(model, cells, HORIZON, scenario, top=None)
    first = frame[frame["rank"] == 0].set_index(["series_id", "ds"])
    promo = scenario.set_index(["series_id", "ds"])["promo"] == 1
    assert (first.loc[promo[promo].index, "name"] == "promo").all()
    effect = frame[frame["name"] == "promo"].set_index(["series_id", "ds"])["contribution"]
    assert (effect.loc[promo[promo].index] > 0).all()
    assert (effect.loc[promo[~promo].index] < 0).all()


def test_top_drivers_keep_the_sum_and_name_the_rest_other(fitted) -> None:
    model = fitted["lightgbm direct"]
    cells = _cells(model)[["series_id", "ds"]]
    every = explain_rows(model, cells, HORIZON, None, top=None)
    top = explain_rows(model, cells, HORIZON, None, top=2)
    assert top.groupby("cell").size().max() == 3
    assert set(top.loc[top["rank"] == 2, "name"]) == {OTHER}
    np.testing.assert_allclose(top.groupby("cell")["contribution"].sum(),
                               every.groupby("cell")["contribution"].sum(), rtol=1e-12)
    sizes = top[top["name"] != OTHER].assign(size=lambda f: f["contribution"].abs())
    assert (sizes.groupby("cell")["size"].diff().dropna() <= 0).all()  # largest first


def test_rows_come_back_in_the_order_asked(fitted) -> None:
    model = fitted["regression ridge"]
    cells = _cells(model)[["series_id", "ds"]].sample(frac=1.0, random_state=1)
    frame = explain_rows(model, cells, HORIZON, None, top=1)
    firsts = frame.drop_duplicates("cell")
    assert firsts["series_id"].tolist() == cells["series_id"].tolist()
    assert firsts["ds"].tolist() == cells["ds"].tolist()


@pytest.mark.parametrize("kind", ["ets", "theta_optimised", "theta_dynamic", "mstl", "arima",
                                  "auto_arima"])
def test_statistical_components_sum_to_the_forecast(panel, kind: str) -> None:
    model = FAMILIES["time_series"](model=kind).fit(panel)
    forecast = _cells(model)
    explained = explain_cells(model, forecast[["series_id", "ds"]], HORIZON, None)
    names = set(explained.drivers["name"])
    assert "level" in names and "season" in " ".join(names), names
    assert not any("not decomposed" in n or n == FALLBACK for n in names), names
    assert np.abs(reconciliation_gap(explained)).max() < 1e-9 * forecast["yhat"].abs().max()
    np.testing.assert_allclose(explained.yhat, forecast["yhat"], rtol=1e-12)


def test_arima_lists_its_promotion_coefficient_times_value(panel) -> None:
    model = FAMILIES["time_series"](model="arima").fit(panel)
    scenario = _promo_scenario(model)
    cells = scenario[["series_id", "ds"]]
    frame = explain_rows(model, cells, HORIZON, scenario, top=None)
    promo = frame[frame["name"] == "promo"].merge(scenario, on=["series_id", "ds"])
    series = promo["series_id"].iloc[0]
    coef = model.series_[series].exog_coef["promo"] * model.scales_[series]
    mine = promo[promo["series_id"] == series]
    np.testing.assert_allclose(mine["contribution"], coef * mine["promo"], rtol=1e-12)
    assert (promo.loc[promo["promo"] == 1, "contribution"] > 0).all()


def test_seasonal_naive_names_the_period_it_repeats(panel) -> None:
    model = FAMILIES["seasonal_naive"]().fit(panel)
    forecast = _cells(model)
    frame = explain_rows(model, forecast[["series_id", "ds"]], HORIZON, None)
    assert (frame["name"] == "same period last season").all()
    expected = (frame["ds"] - pd.Timedelta(weeks=52)).dt.date.map(lambda d: d.isoformat())
    assert frame["value"].tolist() == expected.tolist()
    truth = panel.base.set_index(["series_id", "ds"])["y"]
    at = list(zip(frame["series_id"], pd.to_datetime(frame["value"]), strict=True))
    np.testing.assert_allclose(frame["contribution"], truth.loc[at].to_numpy())
    np.testing.assert_allclose(frame["contribution"], frame["yhat"])


def test_ensemble_drivers_are_its_members_weighted(panel) -> None:
    members = (("seasonal_naive", {}), ("regression", {}))
    model = FAMILIES["ensemble"](members=members, weights=(1.0, 3.0)).fit(panel)
    forecast = _cells(model)
    frame = explain_rows(model, forecast[["series_id", "ds"]], HORIZON, None)
    assert set(frame["name"]) == {"seasonal_naive", "regression"}
    weight = frame["name"].map({"seasonal_naive": 0.25, "regression": 0.75})
    np.testing.assert_allclose(frame["contribution"], weight * frame["value"].astype(float))
    np.testing.assert_allclose(frame.groupby("cell")["contribution"].sum(), forecast["yhat"])


def test_intermittent_and_rolled_models_reconcile(panel) -> None:
    last = panel.base.groupby("series_id")["ds"].max()
    series = str(last.index[0])
    posted = pd.DataFrame({"series_id": series, "y": [250.0, 260.0],
                           "ds": [last[series] + pd.Timedelta(weeks=k) for k in (1, 2)]})
    for family in ("intermittent", "time_series", "seasonal_naive", "regression"):
        model = FAMILIES[family]().fit(panel).update(posted)
        forecast = model.predict_mean(HORIZON, series_ids=[series])
        explained = explain_cells(model, forecast[["series_id", "ds"]], HORIZON, None)
        np.testing.assert_allclose(explained.yhat, forecast["yhat"], rtol=1e-12)
        assert np.abs(reconciliation_gap(explained)).max() < 1e-9 * forecast["yhat"].max()


def test_a_forecast_floored_at_zero_says_so(fitted) -> None:
    """A regression pushed below zero by an absurd price (on the side its price coefficient
    lowers the forecast) shows the floor as a driver."""
    model = fitted["regression ridge"]
    grid = model.predict_mean(HORIZON)[["series_id", "ds"]].head(1)
    frame = min((explain_rows(model, grid, HORIZON, grid.assign(price=price), top=None)
                 for price in (-1e4, 1e4)), key=lambda f: f["yhat"].iloc[0])
    assert frame["yhat"].iloc[0] == 0.0
    assert FLOOR in set(frame["name"])
    scale = frame["contribution"].abs().max()  # sinh of an absurd price: up to 1e17
    assert frame["contribution"].sum() + frame["base"].iloc[0] == pytest.approx(
        0.0, abs=1e-12 * scale)


def test_the_pyfunc_model_explains_its_input_rows(fitted, panel) -> None:
    model = fitted["lightgbm direct"]
    baseline = model.predict(HORIZON, None, 0.8)
    meta = model_metadata(model, panel, SimpleNamespace(metrics={}), "t", 0.8, baseline)
    served = SalescastModel(model, meta)
    rows = baseline[["series_id", "ds"]].iloc[[5, 0]].assign(promo=[1.0, np.nan])
    frame = served.explain(rows, {"top": 3})
    forecast = served.predict(None, rows)
    per_cell = frame.groupby("cell").agg(base=("base", "first"), total=("contribution", "sum"),
                                         yhat=("yhat", "first"))
    np.testing.assert_allclose(per_cell["yhat"], forecast["yhat"], rtol=1e-12)
    np.testing.assert_allclose(per_cell["base"] + per_cell["total"], forecast["yhat"])
    assert frame.loc[frame["cell"] == 0, "name"].iloc[0] == "promo"
    assert served.explain(rows, {"top": 0}).groupby("cell").size().min() > 4
