"""Bounded nonlinear least squares: scipy's trust-region reflective algorithm, lean.

``auto_arima`` fits every candidate order by ``scipy.optimize.least_squares(method="trf")``
with bounds (:func:`~training.forecasters.auto_arima.gauss_newton`). On short series the
arithmetic is tiny (~48 residuals, <= 5 coefficients) and scipy's machinery is most of
the cost: the ``VectorFunction`` wrapper, argument checks, ``scipy.linalg.svd``'s
validation, a dozen helper calls per step; 3.6 ms a fit on the online retail panel, 90
fits and 0.34 s of its 0.62 s warm fit. A hand-rolled Levenberg-Marquardt was faster
but stepped differently, ended in other local optima and forecast worse (see
:mod:`~training.forecasters.auto_arima`), so this is *the same algorithm*, not another
one: scipy 1.17's ``trf_bounds`` with the exact (SVD) trust-region solver, linear loss and
``x_scale=1``, each operation as scipy does it (the same numpy calls in the same order,
LAPACK's ``gesdd`` called as ``scipy.linalg.svd`` calls it), so its iterates are
bit-identical to scipy's (``tests/training/test_trust_region.py`` holds it to that on
seeded problems). What it drops: the wrappers, the checks a fixed caller does not need,
the multiplications by a unit scale, the result object.

Source: scipy/optimize/_lsq/trf.py and common.py (scipy 1.17), Copyright (c) 2001-2002
Enthought, Inc. 2003, SciPy Developers; adapted under the BSD-3-Clause licence, whose
notice, conditions and disclaimer are in ``licenses/scipy-LICENSE.txt``. Algorithm:
Branch, Coleman & Li, "A Subspace, Interior, and Conjugate Gradient Method for Large-Scale
Bound-Constrained Minimization Problems", SIAM J. Sci. Comput. 21 (1999); More, "The
Levenberg-Marquardt Algorithm: Implementation and Theory", 1977.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from math import copysign, sqrt

import numpy as np

EPS = float(np.finfo(float).eps)
Residuals = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Solution:
    """Where the search stopped: the point, its cost ``0.5 |f|^2`` and why it stopped
    (scipy's ``status``: 0 evaluations exhausted, 1 gtol, 2 ftol, 3 xtol, 4 both; where
    scipy says 1 after a step met ftol or xtol, this says which: scipy evaluates the
    Jacobian at the last point once more, only to test its gradient, and this does not)."""

    x: np.ndarray
    cost: float
    nfev: int
    status: int


def least_squares(fun: Residuals, jac: Callable[[np.ndarray], np.ndarray], x0: np.ndarray,
                  bounds: tuple[float, float], ftol: float = 1e-8, xtol: float = 1e-8,
                  gtol: float = 1e-8, max_nfev: int | None = None) -> Solution:
    """``scipy.optimize.least_squares(fun, x0, jac, bounds, method="trf", ftol, xtol,
    gtol, max_nfev)`` for finite scalar ``bounds``, dense ``jac``: the same iterates."""
    x0 = np.atleast_1d(np.asarray(x0, dtype=float))
    lb, ub = np.full(x0.shape, float(bounds[0])), np.full(x0.shape, float(bounds[1]))
    if not lb[0] < ub[0]:
        raise ValueError("Each lower bound must be strictly less than each upper bound.")
    if not in_bounds(x0, lb, ub):
        raise ValueError("Initial guess is outside of provided bounds")
    x0 = interior(x0, lb, ub, 1e-10)
    f0 = np.atleast_1d(fun(x0.copy()))
    if not np.all(np.isfinite(f0)):
        raise ValueError("Residuals are not finite in the initial point.")
    search = Search(fun, jac, lb, ub, ftol, xtol, gtol, max_nfev or 100 * x0.size)
    return search.run(x0, f0, np.asarray(jac(x0.copy()), dtype=float))


@dataclass
class Search:
    """One run of scipy's ``trf_bounds`` (its loop, split into the outer iteration, the
    trust-region step and the step's acceptance)."""

    fun: Residuals
    jac: Callable[[np.ndarray], np.ndarray]
    lb: np.ndarray
    ub: np.ndarray
    ftol: float
    xtol: float
    gtol: float
    max_nfev: int
    nfev: int = 1
    alpha: float = 0.0  # the Levenberg-Marquardt parameter, carried between steps

    def run(self, x: np.ndarray, f: np.ndarray, J: np.ndarray) -> Solution:
        cost = 0.5 * np.dot(f, f)
        g = J.T.dot(f)
        v, _ = scaling_vector(x, g, self.lb, self.ub)
        delta = norm(x / v ** 0.5) or 1.0
        status = None
        while True:
            v, dv = scaling_vector(x, g, self.lb, self.ub)
            g_norm = float(np.max(np.abs(g * v)))
            if g_norm < self.gtol:
                status = 1
            if status is not None or self.nfev == self.max_nfev:
                break
            step = self.step(x, f, J, g, v ** 0.5, g * dv, delta, cost, max(0.995, 1 - g_norm))
            delta, status = step.delta, step.status
            if step.reduction > 0:
                x, f, cost = step.x, step.f, step.cost
                if status is None:  # scipy's Jacobian at the last point goes unused
                    J = np.asarray(self.jac(x.copy()), dtype=float)
                    g = J.T.dot(f)
        return Solution(x, float(cost), self.nfev, status or 0)

    def step(self, x: np.ndarray, f: np.ndarray, J: np.ndarray, g: np.ndarray,
             d: np.ndarray, diag_h: np.ndarray, delta: float, cost: float,
             theta: float) -> Step:
        """scipy's inner loop: trust-region steps, the radius shrinking, until one lowers
        the cost, a tolerance is met or the evaluations run out."""
        m, n = J.shape
        g_h = d * g
        J_h = J * d
        U, s, V = svd(np.vstack([J_h, np.diag(diag_h ** 0.5)]))
        uf = U.T.dot(np.concatenate([f, np.zeros(n)]))
        reduction, status = -1.0, None
        x_new, f_new, cost_new = x, f, cost
        while reduction <= 0 and self.nfev < self.max_nfev:
            p_h, self.alpha = trust_region_step(n, m, uf, s, V, delta, self.alpha)
            step, step_h, predicted = select_step(x, J_h, diag_h, g_h, d * p_h, p_h, d,
                                                  delta, self.lb, self.ub, theta)
            x_new = interior(x + step, self.lb, self.ub, 0.0)
            f_new = np.atleast_1d(self.fun(x_new.copy()))
            self.nfev += 1
            step_h_norm = norm(step_h)
            if not np.all(np.isfinite(f_new)):
                delta = 0.25 * step_h_norm
                continue
            cost_new = 0.5 * np.dot(f_new, f_new)
            reduction = cost - cost_new
            delta_new, ratio = new_radius(delta, reduction, predicted, step_h_norm,
                                          step_h_norm > 0.95 * delta)
            status = termination(reduction, cost, norm(step), norm(x), ratio, self.ftol,
                                 self.xtol)
            if status is not None:
                break
            self.alpha *= delta / delta_new
            delta = delta_new
        return Step(x_new, f_new, cost_new, max(reduction, 0.0), delta, status)


@dataclass(frozen=True)
class Step:
    """The outcome of :meth:`Search.step` (``reduction`` 0: the point is kept)."""

    x: np.ndarray
    f: np.ndarray
    cost: float
    reduction: float
    delta: float
    status: int | None


def norm(x: np.ndarray) -> float:
    """``numpy.linalg.norm`` of a vector, as it computes it (``sqrt(x.dot(x))``)."""
    return sqrt(x.dot(x))


@cache
def gesdd(rows: int, columns: int) -> tuple[Callable[..., tuple[np.ndarray, ...]], int]:
    """LAPACK's ``gesdd`` and its optimal work size, as ``scipy.linalg.svd`` picks them."""
    from scipy.linalg.lapack import get_lapack_funcs

    sample = np.empty((rows, columns))
    routine, lwork = get_lapack_funcs(("gesdd", "gesdd_lwork"), (sample,), ilp64="preferred")
    work, info = lwork(rows, columns, compute_uv=1, full_matrices=0)
    if info != 0:
        raise ValueError(f"Internal work array size computation failed: {info}")
    return routine, int(work.real)


def svd(a: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``U, s, V`` (V not transposed back: ``Vh.T``) of ``scipy.linalg.svd(a,
    full_matrices=False)``."""
    routine, lwork = gesdd(*a.shape)
    u, s, vh, info = routine(a, compute_uv=1, lwork=lwork, full_matrices=0, overwrite_a=1)
    if info > 0:
        raise np.linalg.LinAlgError("SVD did not converge")
    if info < 0:
        raise ValueError(f"illegal value in {-info}th argument of internal gesdd")
    return u, s, vh.T


def in_bounds(x: np.ndarray, lb: np.ndarray, ub: np.ndarray) -> bool:
    return bool(np.all((x >= lb) & (x <= ub)))


def interior(x: np.ndarray, lb: np.ndarray, ub: np.ndarray, rstep: float) -> np.ndarray:
    """scipy's ``make_strictly_feasible``: ``x`` moved off any bound it is within
    ``rstep`` (relative; 0: the next float) of."""
    x_new = x.copy()
    if rstep == 0:
        lower, upper = x <= lb, x >= ub
        x_new[lower] = np.nextafter(lb[lower], ub[lower])
        x_new[upper] = np.nextafter(ub[upper], lb[upper])
    else:
        lower_dist, upper_dist = x - lb, ub - x
        lower = lower_dist <= np.minimum(upper_dist, rstep * np.maximum(1, np.abs(lb)))
        upper = upper_dist <= np.minimum(lower_dist, rstep * np.maximum(1, np.abs(ub)))
        lower &= ~upper  # scipy marks the lower bound first, the upper one overwrites
        x_new[lower] = lb[lower] + rstep * np.maximum(1, np.abs(lb[lower]))
        x_new[upper] = ub[upper] - rstep * np.maximum(1, np.abs(ub[upper]))
    tight = (x_new < lb) | (x_new > ub)
    x_new[tight] = 0.5 * (lb[tight] + ub[tight])
    return x_new


def scaling_vector(x: np.ndarray, g: np.ndarray, lb: np.ndarray,
                   ub: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Coleman-Li's scaling ``v`` (the distance to the bound the gradient points away
    from, 1 where it is zero) and its derivative ``dv`` (finite bounds)."""
    v, dv = np.ones_like(x), np.zeros_like(x)
    down, up = g < 0, g > 0
    v[down], dv[down] = ub[down] - x[down], -1
    v[up], dv[up] = x[up] - lb[up], 1
    return v, dv


def trust_region_step(n: int, m: int, uf: np.ndarray, s: np.ndarray, V: np.ndarray,
                      delta: float, alpha: float) -> tuple[np.ndarray, float]:
    """scipy's ``solve_lsq_trust_region`` (More's method on one SVD): the Gauss-Newton
    step if it is inside the radius, else the regularised one whose norm is ``delta``."""
    suf = s * uf
    full_rank = m >= n and s[-1] > EPS * m * s[0]
    if full_rank:
        p = -V.dot(uf / s)
        if norm(p) <= delta:
            return p, 0.0
    alpha_upper = norm(suf) / delta
    alpha_lower = 0.0
    if full_rank:
        phi, phi_prime = phi_and_derivative(0.0, suf, s, delta)
        alpha_lower = -phi / phi_prime
    if not full_rank and alpha == 0:
        alpha = max(0.001 * alpha_upper, (alpha_lower * alpha_upper) ** 0.5)
    for _ in range(10):
        if alpha < alpha_lower or alpha > alpha_upper:
            alpha = max(0.001 * alpha_upper, (alpha_lower * alpha_upper) ** 0.5)
        phi, phi_prime = phi_and_derivative(alpha, suf, s, delta)
        if phi < 0:
            alpha_upper = alpha
        ratio = phi / phi_prime
        alpha_lower = max(alpha_lower, alpha - ratio)
        alpha -= (phi + delta) * ratio / delta
        if np.abs(phi) < 0.01 * delta:
            break
    p = -V.dot(suf / (s ** 2 + alpha))
    p *= delta / norm(p)
    return p, alpha


def phi_and_derivative(alpha: float, suf: np.ndarray, s: np.ndarray,
                       delta: float) -> tuple[float, float]:
    """The norm of the step regularised by ``alpha`` minus ``delta``, and its derivative."""
    denom = s ** 2 + alpha
    p_norm = norm(suf / denom)
    return p_norm - delta, -np.sum(suf ** 2 / denom ** 3) / p_norm


def select_step(x: np.ndarray, J_h: np.ndarray, diag_h: np.ndarray, g_h: np.ndarray,
                p: np.ndarray, p_h: np.ndarray, d: np.ndarray, delta: float, lb: np.ndarray,
                ub: np.ndarray, theta: float) -> tuple[np.ndarray, np.ndarray, float]:
    """scipy's ``select_step``: the trust-region step if it stays inside the bounds, else
    the best of it cut short, its reflection off the bound, and the scaled gradient."""
    if in_bounds(x + p, lb, ub):
        return p, p_h, -quadratic(J_h, g_h, p_h, diag_h)
    p_stride, hits = stride_to_bound(x, p, lb, ub)
    r_h = np.copy(p_h)
    r_h[hits.astype(bool)] *= -1
    p, p_h = p * p_stride, p_h * p_stride
    r_h, r_value = reflected(x + p, J_h, diag_h, g_h, p_h, r_h, d, delta, lb, ub, theta,
                             p_stride)
    p, p_h = p * theta, p_h * theta
    p_value = quadratic(J_h, g_h, p_h, diag_h)
    ag_h = -g_h
    ag = d * ag_h
    to_tr = delta / norm(ag_h)
    to_bound, _ = stride_to_bound(x, ag, lb, ub)
    ag_stride = theta * to_bound if to_bound < to_tr else to_tr
    ag_stride, ag_value = minimize_quadratic_1d(*quadratic_1d(J_h, g_h, ag_h, diag_h), 0,
                                                ag_stride)
    if p_value < r_value and p_value < ag_value:
        return p, p_h, -p_value
    if r_value < p_value and r_value < ag_value:
        return r_h * d, r_h, -r_value
    return ag * ag_stride, ag_h * ag_stride, -ag_value


def reflected(x_on_bound: np.ndarray, J_h: np.ndarray, diag_h: np.ndarray, g_h: np.ndarray,
              p_h: np.ndarray, r_h: np.ndarray, d: np.ndarray, delta: float, lb: np.ndarray,
              ub: np.ndarray, theta: float, p_stride: float) -> tuple[np.ndarray, float]:
    """The step to the bound ``p_h`` then along its reflection ``r_h``, minimising the
    model (value inf when the reflection has no room)."""
    _, to_tr = intersect_trust_region(p_h, r_h, delta)
    to_bound, _ = stride_to_bound(x_on_bound, d * r_h, lb, ub)
    r_stride = min(to_bound, to_tr)
    if r_stride > 0:
        r_stride_l = (1 - theta) * p_stride / r_stride
        r_stride_u = theta * to_bound if r_stride == to_bound else to_tr
    else:
        r_stride_l, r_stride_u = 0, -1
    if not r_stride_l <= r_stride_u:
        return r_h, np.inf
    a, b, c = quadratic_1d(J_h, g_h, r_h, diag_h, s0=p_h)
    r_stride, r_value = minimize_quadratic_1d(a, b, r_stride_l, r_stride_u, c=c)
    r_h *= r_stride
    r_h += p_h
    return r_h, r_value


def stride_to_bound(x: np.ndarray, s: np.ndarray, lb: np.ndarray,
                    ub: np.ndarray) -> tuple[float, np.ndarray]:
    """scipy's ``step_size_to_bound``: the smallest t >= 0 putting ``x + t s`` on a bound,
    and which components reach it (-1 lower, 1 upper, 0 not)."""
    non_zero = np.nonzero(s)
    steps = np.full_like(x, np.inf)
    with np.errstate(over="ignore"):
        steps[non_zero] = np.maximum((lb - x)[non_zero] / s[non_zero],
                                     (ub - x)[non_zero] / s[non_zero])
    min_step = np.min(steps)
    return min_step, np.equal(steps, min_step) * np.sign(s).astype(int)


def intersect_trust_region(x: np.ndarray, s: np.ndarray, delta: float) -> tuple[float, float]:
    """The roots t of ``|x + s t| = delta`` (negative, positive)."""
    a = np.dot(s, s)
    if a == 0:
        raise ValueError("`s` is zero.")
    b = np.dot(x, s)
    c = np.dot(x, x) - delta ** 2
    if c > 0:
        raise ValueError("`x` is not within the trust region.")
    q = -(b + copysign(np.sqrt(b * b - a * c), b))
    t1, t2 = q / a, c / q
    return (t1, t2) if t1 < t2 else (t2, t1)


def quadratic(J: np.ndarray, g: np.ndarray, s: np.ndarray, diag: np.ndarray) -> float:
    """The model ``0.5 s' (J'J + diag) s + g' s``."""
    Js = J.dot(s)
    q = np.dot(Js, Js)
    q += np.dot(s * diag, s)
    return 0.5 * q + np.dot(s, g)


def quadratic_1d(J: np.ndarray, g: np.ndarray, s: np.ndarray, diag: np.ndarray,
                 s0: np.ndarray | None = None) -> tuple[float, ...]:
    """scipy's ``build_quadratic_1d``: the model along ``s0 + t s`` as ``a t^2 + b t
    (+ c)``."""
    v = J.dot(s)
    a = np.dot(v, v)
    a += np.dot(s * diag, s)
    a *= 0.5
    b = np.dot(g, s)
    if s0 is None:
        return a, b
    u = J.dot(s0)
    b += np.dot(u, v)
    c = 0.5 * np.dot(u, u) + np.dot(g, s0)
    b += np.dot(s0 * diag, s)
    c += 0.5 * np.dot(s0 * diag, s0)
    return a, b, c


def minimize_quadratic_1d(a: float, b: float, lb: float, ub: float,
                          c: float = 0) -> tuple[float, float]:
    """The minimum of ``a t^2 + b t + c`` over ``lb <= t <= ub`` (its point, its value)."""
    t = [lb, ub]
    if a != 0:
        extremum = -0.5 * b / a
        if lb < extremum < ub:
            t.append(extremum)
    points = np.asarray(t)
    values = points * (a * points + b) + c
    best = np.argmin(values)
    return points[best], values[best]


def new_radius(delta: float, reduction: float, predicted: float, step_norm: float,
               bound_hit: bool) -> tuple[float, float]:
    """scipy's ``update_tr_radius``: a quarter of the step after a poor one, double after
    a good one that reached the radius."""
    if predicted > 0:
        ratio = reduction / predicted
    elif predicted == reduction == 0:
        ratio = 1
    else:
        ratio = 0
    if ratio < 0.25:
        delta = 0.25 * step_norm
    elif ratio > 0.75 and bound_hit:
        delta *= 2.0
    return delta, ratio


def termination(reduction: float, cost: float, step_norm: float, x_norm: float, ratio: float,
                ftol: float, xtol: float) -> int | None:
    """scipy's ``check_termination`` (2: ftol, 3: xtol, 4: both, None: go on)."""
    ftol_met = reduction < ftol * cost and ratio > 0.25
    xtol_met = step_norm < xtol * (xtol + x_norm)
    if ftol_met and xtol_met:
        return 4
    if ftol_met:
        return 2
    return 3 if xtol_met else None
