"""L-BFGS-B given :class:`ForwardGradient` steps exactly as it does differentiating itself.

``training.forecasters.gradient`` claims scipy's own finite-difference gradient, bit for
bit, so that Theta's and ARIMA's fits end where they did: at points inside, on and next
to the bounds the gradient must equal ``approx_derivative``'s, and seeded minimisations
(Theta's one-step errors, an optimum pressed against a bound) must stop at the same
point after the same iterations.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize
from scipy.optimize._numdiff import approx_derivative

from tests.training._reference import copied_versions
from training.forecasters.gradient import ForwardGradient, minimize_bounded
from training.forecasters.theta import ALPHA_BOUNDS, THETA_BOUNDS, one_step_sse, theta_lines

BOUNDS = [(0.0, 1.0), (-2.0, None), (None, None)]


def bumpy(x: np.ndarray) -> float:
    """A smooth, non-quadratic function whose minimum lies outside the box BOUNDS."""
    return float((x[0] - 1.3) ** 2 + 0.3 * np.sin(3 * x[1]) + (x[1] + 2.5) ** 2
                 + np.cosh(x[2] - 0.2))


@pytest.mark.parametrize("x", [[0.3, 0.5, -1.0], [1.0, -2.0, 0.0], [1.0 - 5e-9, 1e9, 3.0],
                               [0.0, -2.0 + 1e-9, -30.0]])
def test_the_gradient_is_scipys_forward_difference(x: list[float]) -> None:
    point = np.array(x)
    lb = np.array([-np.inf if low is None else low for low, _ in BOUNDS])
    ub = np.array([np.inf if high is None else high for _, high in BOUNDS])
    theirs = approx_derivative(bumpy, point, method="2-point", abs_step=1e-8, bounds=(lb, ub))
    ours = ForwardGradient(bumpy, BOUNDS).gradient(point)
    if not copied_versions():  # another scipy: the same derivative, not the same bits
        np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-6)
        return
    np.testing.assert_array_equal(ours, theirs)


def theta_objective(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    z = 10 + np.cumsum(rng.normal(0.1, 1.0, 48))
    t = np.arange(1.0, 49.0)
    slope, intercept = np.polyfit(t, z, 1)
    return z, theta_lines(z, seed % 2 == 1, intercept, slope)[0]


@pytest.mark.parametrize("seed", range(6))
def test_theta_fits_stop_where_scipy_stops(seed: int) -> None:
    z, line = theta_objective(seed)

    def sse(p: np.ndarray) -> float:
        return one_step_sse(z, line, p[0], p[1])

    theirs = minimize(sse, [0.5, 2.0], bounds=[ALPHA_BOUNDS, THETA_BOUNDS], method="L-BFGS-B")
    ours = minimize_bounded(sse, [0.5, 2.0], [ALPHA_BOUNDS, THETA_BOUNDS])
    if not copied_versions():
        assert ours.fun <= theirs.fun * (1 + 1e-6)
        return
    np.testing.assert_array_equal(ours.x, theirs.x)
    assert (ours.fun, ours.nit) == (theirs.fun, theirs.nit)


def test_an_optimum_beyond_a_bound_is_reached_as_scipy_reaches_it() -> None:
    theirs = minimize(bumpy, [0.5, 0.0, 1.0], bounds=BOUNDS, method="L-BFGS-B")
    ours = minimize_bounded(bumpy, [0.5, 0.0, 1.0], BOUNDS)
    assert ours.x[0] == 1.0 and ours.x[1] == -2.0  # both pressed against their bounds
    if not copied_versions():
        assert ours.fun <= theirs.fun * (1 + 1e-6)
        return
    np.testing.assert_array_equal(ours.x, theirs.x)
    assert ours.nit == theirs.nit
