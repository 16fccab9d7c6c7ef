"""``auto_arima``: the per-series seasonal ARIMA with automatic order selection.

Seeded simulations with a known answer: a seasonal random walk needs the seasonal
difference and beats seasonal naive, white noise needs neither difference, a simulated
promotion lift is recovered and moves the forecast, a short series is fitted without
seasonal orders, the fitted model pickles and rolls forward without a refit, and the
statistical family can force it on a panel.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from scipy.signal import lfilter

from tests.training._panels import PanelShape, make_training_set
from training.forecasters import TimeSeriesForecaster
from training.forecasters.auto_arima import (
    AutoArimaParams,
    Css,
    fit_auto_arima,
    fit_orders,
    pacf_jacobian,
    pacf_to_coefficients,
    polynomials,
    warm_start,
)
from training.forecasters.explain_statistical import split
from training.forecasters.statistical_spec import SeriesModelSpec, exog_effect

H = 14
SPEC = SeriesModelSpec(candidates=("auto_arima",), season_length=7, seasons=(7, 365),
                       horizon=H, exog=("promo",))


def airline(n: int, seed: int = 0) -> np.ndarray:
    """(0,1,1)(0,1,1)_7 with theta = -0.5, Theta = -0.6, around 100 (seeded)."""
    rng = np.random.default_rng(seed)
    ma = np.convolve([1.0, -0.5], np.r_[1.0, np.zeros(6), -0.6])
    z = np.cumsum(lfilter(ma, [1.0], rng.normal(0, 1, n + 50)))
    for i in range(7, len(z)):
        z[i] += z[i - 7]
    return 100.0 + z[50:]


def no_exog(n: int) -> np.ndarray:
    return np.zeros((n, 1))


def test_a_seasonal_random_walk_is_seasonally_differenced_and_beats_seasonal_naive() -> None:
    y = airline(600)
    train, truth = y[:-H], y[-H:]
    model = fit_auto_arima(train, no_exog(len(train)), SPEC)
    assert model.seasonal_order[1] == 1 and model.seasonal_order[3] == 7
    assert model.fourier_k == 0  # the season is in the ARIMA part
    forecast = model.path(train, no_exog(len(train)), H)
    naive = np.tile(train[-7:], 2)
    assert np.mean(np.abs(forecast - truth)) < 0.8 * np.mean(np.abs(naive - truth))


@pytest.mark.parametrize("seed", [0, 3, 4])
def test_white_noise_gets_no_difference_and_small_orders(seed: int) -> None:
    y = 10.0 + np.random.default_rng(seed).normal(0, 1, 400)
    model = fit_auto_arima(y, no_exog(len(y)), SPEC)
    assert model.order[1] == 0 and model.seasonal_order[1] == 0
    assert model.order[0] + model.order[2] + sum(model.seasonal_order[::2][:2]) <= 2
    assert model.trend == "c"
    forecast = model.path(y, no_exog(len(y)), H)
    assert np.abs(forecast - 10.0).max() < 0.5  # the mean, not a pattern


def test_a_promotion_lift_is_recovered_and_moves_the_forecast() -> None:
    rng = np.random.default_rng(2)
    y = airline(500, seed=3)
    promo = (rng.random(len(y) + H) < 0.2).astype(float)
    y = y + 8.0 * promo[:len(y)]
    model = fit_auto_arima(y, promo[:len(y), None], SPEC)
    assert model.exog_coef["promo"] == pytest.approx(8.0, abs=0.8)
    planned = np.zeros((H, 1))
    planned[3] = 1.0
    base = model.path(y, promo[:len(y), None], H)
    lifted = base + exog_effect(model, planned, SPEC.exog)
    assert lifted[3] - base[3] == pytest.approx(model.exog_coef["promo"])
    assert np.delete(lifted - base, 3) == pytest.approx(0.0)


def test_the_model_pickles_and_rolls_forward_without_a_refit() -> None:
    y = airline(420, seed=4)
    model = fit_auto_arima(y[:400], no_exog(400), SPEC)
    clone = pickle.loads(pickle.dumps(model))
    assert isinstance(clone, AutoArimaParams) and clone.kind == "auto_arima"
    np.testing.assert_array_equal(clone.params, model.params)
    longer = clone.path(y, no_exog(len(y)), H)
    np.testing.assert_allclose(longer, model.path(y, no_exog(len(y)), H))
    # the forecast after the longer history is statsmodels' own, with the same parameters
    from statsmodels.tsa.arima.model import ARIMA

    fitted = ARIMA(y, order=model.order, seasonal_order=model.seasonal_order,
                   trend=model.trend).filter(model.params)
    np.testing.assert_allclose(longer, fitted.forecast(H), rtol=1e-8)
    assert not np.allclose(longer, model.path(y[:400], no_exog(400), H))


def test_a_short_series_falls_back_to_non_seasonal_orders_with_fourier_terms() -> None:
    t = np.arange(25 + H)  # < 3 seasons + 10 periods of history
    truth = 100.0 + 10.0 * np.sin(2 * np.pi * t / 7)
    y = truth[:25] + np.random.default_rng(5).normal(0, 1, 25)
    model = fit_auto_arima(y, no_exog(len(y)), SPEC)
    assert model.seasonal_order == (0, 0, 0, 0)
    assert model.fourier_k == SPEC.fourier_k  # the week comes in as sine / cosine terms
    forecast = model.path(y, no_exog(len(y)), H)
    assert np.mean(np.abs(forecast - truth[25:])) < 2.0


def test_a_long_season_is_searched_without_seasonal_orders() -> None:
    y = airline(300, seed=6)
    spec = SeriesModelSpec(candidates=("auto_arima",), season_length=52, seasons=(52,),
                           horizon=8, exog=("promo",))
    model = fit_auto_arima(y, no_exog(len(y)), spec)
    assert model.seasonal_order == (0, 0, 0, 0)


@pytest.mark.parametrize("r", [[0.5], [0.9, -0.9], [-0.97, 0.97, 0.97]])
def test_partial_autocorrelations_map_to_a_stationary_polynomial(r: list[float]) -> None:
    phi = pacf_to_coefficients(np.array(r))
    roots = np.roots(np.r_[1.0, -phi][::-1])
    assert np.all(np.abs(roots) > 1.0)


@pytest.mark.parametrize("r", [[0.5], [0.9, -0.4], [-0.7, 0.3, 0.6]])
def test_the_partial_autocorrelation_jacobian_is_the_derivative(r: list[float]) -> None:
    r0, eps = np.array(r), 1e-6
    numeric = np.column_stack([
        (pacf_to_coefficients(r0 + eps * e) - pacf_to_coefficients(r0 - eps * e)) / (2 * eps)
        for e in np.eye(len(r))])
    np.testing.assert_allclose(pacf_jacobian(r0), numeric, atol=1e-8)


def css_problem(orders: tuple[int, int, int, int], skip: int) -> Css:
    """A concentrated CSS with a constant and a promotion regressor (seeded)."""
    rng = np.random.default_rng(11)
    n = 90
    x = np.column_stack([np.ones(n), (rng.random(n) < 0.3).astype(float)])
    w = x @ [5.0, 2.0] + lfilter([1.0, 0.4], [1.0, -0.5], rng.normal(0, 1, n))
    return Css(np.vstack([x.T, w]), orders, 4, skip)


@pytest.mark.parametrize(("orders", "skip"), [((1, 1, 0, 0), 11), ((2, 1, 1, 1), 11),
                                              ((3, 3, 2, 2), 11), ((0, 2, 2, 0), 3)])
def test_the_analytic_gradient_is_that_of_the_concentrated_sum(
        orders: tuple[int, int, int, int], skip: int) -> None:
    """J' e is the gradient of the sum of squares with beta re-fitted at every point (the
    variable projection), also where the lags reach before the first period (skip 3)."""
    css = css_problem(orders, skip)
    arma = np.random.default_rng(1).uniform(-0.6, 0.6, sum(orders))
    point = css.at(arma)
    gradient = css.jacobian(point).T @ point.errors[skip:]
    eps = 1e-6
    numeric = [(css.at(arma + eps * e).sse - css.at(arma - eps * e).sse) / (4 * eps)
               for e in np.eye(len(arma))]
    np.testing.assert_allclose(gradient, numeric, rtol=1e-5, atol=1e-7)


def test_the_fit_reaches_the_optimum_of_a_finite_difference_search() -> None:
    """The analytic Jacobian changes the cost of the search, not where it ends."""
    from scipy.optimize import least_squares

    css = css_problem((1, 1, 0, 1), 11)
    w, x = css.rows[-1], css.rows[:-1].T
    fit = fit_orders(w, x, (1, 1, 0, 1), 4, 11)
    numeric = least_squares(lambda a: css.at(a).errors[11:], np.zeros(3), bounds=(-0.98, 0.98),
                            method="trf", ftol=1e-10, xtol=1e-10).x
    np.testing.assert_allclose(fit.arma, numeric, atol=2e-2)
    assert fit.sigma2 * (len(w) - 11) == pytest.approx(css.at(numeric).sse, rel=1e-3)


def test_a_warm_start_of_higher_orders_is_the_nearer_model_itself() -> None:
    near, key = (2, 1, 1, 0, True, False), (3, 2, 1, 1, True, False)
    arma = np.array([0.4, -0.3, 0.5, 0.6])
    start = warm_start(near, arma, key)
    assert len(start) == sum(key[:4])
    for fitted, started in zip(polynomials(arma, near[:4], 7), polynomials(start, key[:4], 7),
                               strict=True):
        np.testing.assert_allclose(np.trim_zeros(started, "b"), fitted, atol=1e-12)


def test_the_family_forces_auto_arima_on_a_panel_and_explains_it() -> None:
    panel = make_training_set(PanelShape(n_series=3, periods=120, seed=7), horizon=8)
    model = TimeSeriesForecaster(model="auto_arima").fit(panel)
    assert set(model.chosen_models()) == {"auto_arima"}
    assert all(f.error is None for f in model.series_.values())
    forecast = model.predict_mean(8)
    assert len(forecast) == 3 * 8 and np.isfinite(forecast["yhat"]).all()
    fitted = next(iter(model.series_.values()))
    exog = fitted.exog if fitted.exog.size else np.zeros((len(fitted.y), len(model.exog_)))
    parts = split(fitted.params, np.nan_to_num(fitted.y), exog, 8)
    np.testing.assert_allclose(np.sum(list(parts.values()), axis=0), fitted.path)
