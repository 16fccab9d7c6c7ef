"""ETS: the Holt-Winters forecast computed here is statsmodels' own, to the last bit.

:meth:`EtsParams.forecast` re-runs statsmodels' ``_predict`` recursion in plain floats (it
was 1.5 ms of model building and numpy-scalar loop per call). On seeded parameters of
every form the family fits (no / additive / damped trend, no / additive / multiplicative
season, horizons shorter and longer than the season), its path must equal
``ExponentialSmoothing(initialization_method="known").predict`` exactly.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from tests.training._reference import copied_versions
from training.forecasters.ets import EtsParams, fit_ets
from training.forecasters.statistical_spec import SeriesModelSpec

FORMS = [(trend, damped, seasonal)
         for trend, damped, seasonal in itertools.product([None, "add"], [False, True],
                                                          [None, "add", "mul"])
         if trend or not damped]


def random_model(trend: str | None, damped: bool, seasonal: str | None, m: int,
                 rng: np.random.Generator) -> EtsParams:
    smoothing = {"smoothing_level": rng.uniform(0.01, 0.99)}
    if trend:
        smoothing["smoothing_trend"] = rng.uniform(0.0, 0.5) * smoothing["smoothing_level"]
    if seasonal:
        smoothing["smoothing_seasonal"] = rng.uniform(0.0, 1.0 - smoothing["smoothing_level"])
    if damped:
        smoothing["damping_trend"] = rng.uniform(0.8, 0.99)
    seasons = None
    if seasonal:
        seasons = rng.normal(0, 3, m) if seasonal == "add" else rng.uniform(0.9, 1.1, m)
    return EtsParams(trend, damped, seasonal, m if seasonal else 0, smoothing,
                     float(rng.normal(50, 5)), float(rng.normal()) if trend else None, seasons)


@pytest.mark.parametrize(("trend", "damped", "seasonal"), FORMS)
@pytest.mark.parametrize("m", [4, 7, 12])
def test_the_forecast_is_statsmodels_bit_for_bit(trend: str | None, damped: bool,
                                                 seasonal: str | None, m: int) -> None:
    rng = np.random.default_rng(m)
    for n, horizon in [(3 * m, 1), (48, m - 1), (48, m + 3), (200, 30)]:
        y = 50 + np.cumsum(rng.normal(0, 1, n)) + 5 * np.sin(np.arange(n) * 2 * np.pi / m)
        model = random_model(trend, damped, seasonal, m, rng)
        assert_same_path(model.forecast(y, horizon), model._statsmodels_forecast(y, horizon))


def assert_same_path(ours: np.ndarray, theirs: np.ndarray) -> None:
    """Bit for bit with the statsmodels the recursion was copied from; to 1e-10 with
    another release (which may reorder an operation)."""
    if copied_versions():
        np.testing.assert_array_equal(ours, theirs)
    else:
        np.testing.assert_allclose(ours, theirs, rtol=1e-10)


def test_a_fitted_model_forecasts_its_own_history_as_statsmodels_does() -> None:
    rng = np.random.default_rng(3)
    t = np.arange(60)
    y = 100 + 0.5 * t + 10 * np.sin(2 * np.pi * t / 12) + rng.normal(0, 1, 60)
    spec = SeriesModelSpec(candidates=("ets",), season_length=12, seasons=(12,), horizon=6)
    model = fit_ets(y, np.zeros((60, 0)), spec)
    assert (model.trend, model.damped, model.seasonal) == ("add", True, "add")
    assert_same_path(model.forecast(y, 6), model._statsmodels_forecast(y, 6))


@pytest.mark.parametrize("seasonal", [None, "add", "mul"])
def test_the_fit_with_our_gradient_ends_where_scipys_own_gradient_ends(
        seasonal: str | None) -> None:
    """:func:`holt_winters_gradient` feeds L-BFGS-B the gradient scipy would compute: the
    fitted parameters are those of statsmodels' plain fit, bit for bit."""
    from statsmodels.tsa.holtwinters import ExponentialSmoothing

    from training.forecasters.ets import holt_winters_gradient

    rng = np.random.default_rng(5)
    t = np.arange(48)
    y = 50 + 0.3 * t + 6 * np.sin(2 * np.pi * t / 4) + rng.normal(0, 2, 48)
    model = ExponentialSmoothing(y, trend="add", damped_trend=True, seasonal=seasonal,
                                 seasonal_periods=4 if seasonal else None,
                                 initialization_method="heuristic" if seasonal else "estimated")
    assert "jac" in holt_winters_gradient(model)
    ours = model.fit(use_brute=False, minimize_kwargs=holt_winters_gradient(model)).params
    theirs = model.fit(use_brute=False).params
    if not copied_versions():  # another scipy / statsmodels: an optimum as good
        assert model.fit(use_brute=False, minimize_kwargs=holt_winters_gradient(model)).sse \
            <= model.fit(use_brute=False).sse * (1 + 1e-6)
        return
    for name in ("smoothing_level", "smoothing_trend", "damping_trend", "initial_level"):
        assert ours[name] == theirs[name]
    np.testing.assert_array_equal(ours["initial_seasons"], theirs["initial_seasons"])
