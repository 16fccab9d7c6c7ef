"""The ensemble family: a weighted mean of fitted families, chosen on the tuning windows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features import TrainingSet
from tests.training._panels import PanelShape, make_training_set
from training.backtest import combine_backtests, make_windows, run_backtest
from training.config import BacktestConfig
from training.forecasters import RegressionForecaster, SeasonalNaive
from training.forecasters.ensemble import EnsembleForecaster, choose_members, diverse_ranking

H = 4
MEMBERS = (("seasonal_naive", {}), ("regression", {"alpha": 3.0}))


@pytest.fixture(scope="module")
def panel() -> TrainingSet:
    return make_training_set(PanelShape(n_series=4, seed=2, periods=110), horizon=H)


def test_the_forecast_is_the_weighted_mean_of_the_members(panel: TrainingSet) -> None:
    naive, regression = SeasonalNaive().fit(panel), RegressionForecaster(alpha=3.0).fit(panel)
    ensemble = EnsembleForecaster(MEMBERS, (1.0, 3.0)).fit(panel)
    expected = (0.25 * naive.predict_mean(H)["yhat"].to_numpy()
                + 0.75 * regression.predict_mean(H)["yhat"].to_numpy())
    np.testing.assert_allclose(ensemble.predict_mean(H)["yhat"].to_numpy(), expected)
    of_fitted = EnsembleForecaster.of_fitted({"seasonal_naive": naive,
                                              "regression": regression}, [1.0, 3.0])
    pd.testing.assert_frame_equal(of_fitted.predict_mean(H), ensemble.predict_mean(H))


def test_combining_backtests_equals_backtesting_the_ensemble(panel: TrainingSet) -> None:
    """The training job scores an ensemble from its members' backtests (no refit): the
    same numbers as refitting the ensemble in every window."""
    windows = make_windows(panel, BacktestConfig(n_windows=2, step=4))
    members = [run_backtest(SeasonalNaive(), panel, windows),
               run_backtest(RegressionForecaster(alpha=3.0), panel, windows)]
    combined = combine_backtests(members, [1.0, 3.0], panel, windows)
    direct = run_backtest(EnsembleForecaster(MEMBERS, (1.0, 3.0)), panel, windows)
    columns = ["window", "series_id", "ds", "y", "yhat", "yhat_lower", "yhat_upper"]
    pd.testing.assert_frame_equal(combined.predictions[columns], direct.predictions[columns])
    assert combined.metrics == pytest.approx(direct.metrics, nan_ok=True)


def test_the_ensemble_rolls_every_member_forward(panel: TrainingSet) -> None:
    dates = sorted(panel.base["ds"].unique())
    origin, new_origin = pd.Timestamp(dates[-3]), pd.Timestamp(dates[-1])
    ensemble = EnsembleForecaster(MEMBERS).fit(panel.until(origin))
    posted = panel.base[(panel.base["ds"] > origin) & (panel.base["ds"] <= new_origin)]
    rolled = ensemble.update(posted)
    assert (rolled.origins() == new_origin).all() and (ensemble.origins() == origin).all()
    for before, after in zip(ensemble.members_, rolled.members_, strict=True):
        pd.testing.assert_series_equal(after.origins(), before.update(posted).origins())
    expected = 0.5 * sum(m.update(posted).predict_mean(H)["yhat"].to_numpy()
                         for m in ensemble.members_)
    np.testing.assert_allclose(rolled.predict_mean(H)["yhat"].to_numpy(), expected)


def test_members_and_weights_are_the_best_combination_on_the_tuning_windows() -> None:
    tuning = {"a": 0.10, "b": 0.12, "c": 0.30, "naive": 0.40}
    scores = {("a", "b"): 0.095, ("a", "b", "c"): 0.11}

    def combined(names: list[str], weights: list[float]) -> float:
        inverse = weights[0] != weights[-1]
        return scores[tuple(names)] - (0.001 if inverse else 0.0)

    names, weights = choose_members(tuning, combined)
    assert names == ["a", "b"]
    assert weights == pytest.approx([1 / 0.10, 1 / 0.12])
    with pytest.raises(ValueError, match="two families"):
        choose_members({"a": 0.1}, combined)


def test_the_ensemble_combines_the_best_local_and_the_best_global_family() -> None:
    """The two best by tuning WAPE are both global: the best local one joins the best global
    one in every candidate combination; without scopes the plain ranking stands."""
    tuning = {"lightgbm": 0.10, "regression": 0.11, "time_series": 0.14, "naive": 0.20}
    scopes = {"lightgbm": "global", "regression": "global", "time_series": "local",
              "naive": "local"}
    tried: list[list[str]] = []

    def combined(names: list[str], weights: list[float]) -> float:
        tried.append(list(names))
        return 0.1 * len(names)

    names, weights = choose_members(tuning, combined, scopes=scopes)
    assert names == ["lightgbm", "time_series"] and weights == [1.0, 1.0]
    assert all({"lightgbm", "time_series"} <= set(t) for t in tried)
    assert ["lightgbm", "time_series", "regression"] in tried
    assert diverse_ranking(tuning, {}) == ["lightgbm", "regression", "time_series", "naive"]
    one_scope = {name: "global" for name in tuning}
    assert diverse_ranking(tuning, one_scope) == diverse_ranking(tuning, {})


def test_weights_must_be_one_positive_number_per_member(panel: TrainingSet) -> None:
    with pytest.raises(ValueError, match="one positive number per member"):
        EnsembleForecaster(MEMBERS, (1.0,)).fit(panel)
