"""The lean trust-region reflective least squares steps exactly as scipy's does.

``training.forecasters.trust_region`` claims scipy's ``least_squares(method="trf")``
iterates, not merely a nearby optimum (a hand-rolled Levenberg-Marquardt that ended in
other local optima chose other ARIMA orders and forecast worse). So on seeded problems
the point it stops at, the number of evaluations and the reason it stopped must be
scipy's: ARMA fits of auto_arima's (from zeros and warm), and curve fits whose optimum
lies beyond a bound (the reflected and gradient steps of ``select_step``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from scipy.optimize import least_squares as scipy_least_squares
from scipy.signal import lfilter

from tests.training._reference import copied_versions
from training.forecasters import trust_region
from training.forecasters.auto_arima import BOUND, Css

Problem = tuple[Callable[[np.ndarray], np.ndarray], Callable[[np.ndarray], np.ndarray]]


def arma_problem(orders: tuple[int, int, int, int], seed: int) -> Problem:
    """auto_arima's concentrated CSS of a seeded ARMA(1, 1) around a constant and a
    promotion, season 4 (the innovations and their analytic Jacobian)."""
    rng = np.random.default_rng(seed)
    n = 60
    x = np.column_stack([np.ones(n), (rng.random(n) < 0.3).astype(float)])
    phi, theta = rng.uniform(-0.9, 0.9, 2)
    w = x @ [5.0, 2.0] + lfilter([1.0, theta], [1.0, -phi], rng.normal(0, 1, n))
    css = Css(np.vstack([x.T, w]), orders, 4, 11)
    return (lambda a: css.at(a).errors[css.skip:]), (lambda a: css.jacobian(css.at(a)))


def decay_problem(seed: int) -> Problem:
    """``y = a exp(-b t) + c`` with the true a, b outside the box [-1, 1]^3."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0.0, 4.0, 40)
    a, b, c = rng.uniform(1.5, 3.0), rng.uniform(0.5, 0.9), rng.uniform(-0.5, 0.5)
    y = a * np.exp(-b * t) + c + rng.normal(0, 0.05, len(t))

    def residuals(p: np.ndarray) -> np.ndarray:
        return p[0] * np.exp(-p[1] * t) + p[2] - y

    def jacobian(p: np.ndarray) -> np.ndarray:
        e = np.exp(-p[1] * t)
        return np.column_stack([e, -p[0] * t * e, np.ones_like(t)])

    return residuals, jacobian


def assert_same_search(problem: Problem, x0: np.ndarray, bounds: tuple[float, float],
                       ftol: float, xtol: float) -> None:
    fun, jac = problem
    theirs = scipy_least_squares(fun, x0, jac=jac, bounds=bounds, method="trf", ftol=ftol,
                                 xtol=xtol)
    ours = trust_region.least_squares(fun, jac, x0, bounds, ftol=ftol, xtol=xtol)
    if not copied_versions():  # another scipy: the same optimum, within its tolerances
        assert ours.cost <= theirs.cost * (1 + 10 * ftol) + 1e-12
        return
    np.testing.assert_allclose(ours.x, theirs.x, rtol=0, atol=1e-12)
    assert ours.cost == pytest.approx(theirs.cost, rel=1e-12)
    assert ours.nfev == theirs.nfev
    assert ours.status == theirs.status or theirs.status == 1  # see Solution.status


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("orders", [(1, 1, 0, 0), (2, 2, 1, 1), (0, 3, 0, 2)])
def test_arma_fits_stop_where_scipy_stops(orders: tuple[int, int, int, int],
                                          seed: int) -> None:
    problem = arma_problem(orders, seed)
    assert_same_search(problem, np.zeros(sum(orders)), (-BOUND, BOUND), 1e-4, 1e-3)
    warm = np.random.default_rng(seed).uniform(-0.5, 0.5, sum(orders))
    assert_same_search(problem, warm, (-BOUND, BOUND), 1e-8, 1e-8)


@pytest.mark.parametrize("seed", range(6))
def test_an_optimum_beyond_the_bounds_is_reached_as_scipy_reaches_it(seed: int) -> None:
    problem = decay_problem(seed)
    assert_same_search(problem, np.zeros(3), (-1.0, 1.0), 1e-8, 1e-8)
    result = trust_region.least_squares(*problem, np.zeros(3), (-1.0, 1.0))
    assert result.x[0] == pytest.approx(1.0, abs=1e-6)  # pressed against the bound


def test_a_start_outside_the_bounds_or_non_finite_residuals_are_refused() -> None:
    fun, jac = decay_problem(0)
    with pytest.raises(ValueError, match="outside"):
        trust_region.least_squares(fun, jac, np.full(3, 2.0), (-1.0, 1.0))
    with pytest.raises(ValueError, match="not finite"):
        trust_region.least_squares(lambda p: np.full(3, np.nan), jac, np.zeros(3), (-1, 1))
