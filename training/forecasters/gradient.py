"""L-BFGS-B's finite-difference gradient, computed without scipy's per-call machinery.

Theta (alpha and theta) and the fixed-order ARIMA (its p + q coefficients) minimise a
sum of squares with ``scipy.optimize.minimize(method="L-BFGS-B")`` and no gradient, so
scipy differentiates by forward differences: ``approx_derivative`` with an absolute step
of 1e-8, flipped or shortened at a bound. On short series that wrapper (array-API
dispatch, bound checks, a generator of copies, ~0.25 ms a gradient) costs more than the
few function evaluations it makes. :class:`ForwardGradient` computes the same numbers,
operation for operation (the step, its adjustment to the bounds, ``(f(x + h e_i) - f(x))
/ ((x_i + h_i) - x_i)``), and reuses the value at ``x`` the optimiser has just asked
for, so L-BFGS-B sees bit-identical gradients and takes bit-identical steps
(``tests/training/test_gradient.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

ABSOLUTE_STEP = 1e-8  # L-BFGS-B's default ``eps``
RELATIVE_STEP = float(np.finfo(float).eps) ** 0.5  # where x + 1e-8 == x
Objective = Callable[..., float]


class ForwardGradient:
    """``value`` and ``gradient`` of ``fun`` for ``minimize(fun, x0, jac=gradient)``:
    the gradient that ``minimize(fun, x0)`` would approximate itself (see the module
    docstring). ``bounds``: L-BFGS-B's, one (low, high) per variable, None unbounded."""

    def __init__(self, fun: Objective, bounds: Sequence[tuple[float | None, float | None]]):
        self.fun = fun
        self.lb = np.array([-np.inf if low is None else low for low, _ in bounds], dtype=float)
        self.ub = np.array([np.inf if high is None else high for _, high in bounds], dtype=float)
        self.bounded = bool(np.any(np.isfinite(self.lb) | np.isfinite(self.ub)))
        self.last: tuple[np.ndarray, float] | None = None

    def value(self, x: np.ndarray, *args: Any) -> float:
        """``fun(x)``, remembered for the gradient at the same ``x``."""
        f = self.fun(x, *args)
        self.last = (x.copy(), f)
        return f

    def gradient(self, x: np.ndarray, *args: Any) -> np.ndarray:
        """scipy's ``approx_derivative(fun, x, method="2-point", abs_step=1e-8, bounds)``."""
        if self.last is not None and np.array_equal(self.last[0], x):
            f0 = self.last[1]
        else:
            f0 = self.fun(x, *args)
        h = self.steps(x)
        grad = np.empty(len(x))
        for i in range(len(x)):
            shifted = np.copy(x)
            shifted[i] = x[i] + h[i]
            grad[i] = (self.fun(shifted, *args) - f0) / ((x[i] + h[i]) - x[i])
        return grad

    def steps(self, x: np.ndarray) -> np.ndarray:
        """The absolute step (relative where it would vanish), one-sided, turned back or
        cut to the far bound where it would leave the box (``_adjust_scheme_to_bounds``)."""
        sign = (x >= 0).astype(float) * 2 - 1
        h = np.where((x + ABSOLUTE_STEP) - x == 0,
                     RELATIVE_STEP * sign * np.maximum(1.0, np.abs(x)), ABSOLUTE_STEP)
        if not self.bounded:
            return h
        adjusted = h.copy()
        lower, upper = x - self.lb, self.ub - x
        violated = ((x + h) < self.lb) | ((x + h) > self.ub)
        fitting = np.abs(h) <= np.maximum(lower, upper)
        adjusted[violated & fitting] *= -1
        forward = (upper >= lower) & ~fitting
        adjusted[forward] = upper[forward]
        backward = (upper < lower) & ~fitting
        adjusted[backward] = -lower[backward]
        return adjusted


def minimize_bounded(fun: Objective, x0: Sequence[float] | np.ndarray,
                     bounds: Sequence[tuple[float | None, float | None]],
                     args: tuple[Any, ...] = ()) -> Any:
    """``scipy.optimize.minimize(fun, x0, args, method="L-BFGS-B", bounds=bounds)``, its
    gradient from :class:`ForwardGradient`: the same result, with less overhead."""
    from scipy.optimize import minimize

    objective = ForwardGradient(fun, bounds)
    return minimize(objective.value, x0, args=args, jac=objective.gradient, bounds=bounds,
                    method="L-BFGS-B")
