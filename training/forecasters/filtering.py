"""``scipy.signal.lfilter`` without its Python wrapper, for the tiny filters of CSS and SES.

auto_arima whitens a candidate's series and regressors, and differentiates its
innovations, with ``lfilter`` (3 to 6 calls an evaluation, ~4,000 calls a fit of the
online retail panel); Theta's SES is one ``lfilter`` with an initial state. On ~48
periods the filtering itself takes a few microseconds and ``lfilter``'s argument handling
(array-API dispatch, dtype checks, and for a polynomial denominator of 1
``np.apply_along_axis``) ~20: 14 % of the fit. :func:`lfilter` does what scipy's does
for float64 coefficients with ``a[0] == 1``: the same C routine
(``scipy.signal._sigtools._linear_filter``) for a recursive filter, the same
``np.convolve`` per row for a moving average, so the same floats (a test holds it to
scipy's); it falls back to scipy's own should that private routine move.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np


def _linear_filter() -> Callable[..., Any] | None:
    try:
        from scipy.signal._sigtools import _linear_filter as routine
    except ImportError:  # scipy moved it: lfilter below then calls scipy's public one
        return None
    return routine


LINEAR_FILTER = _linear_filter()


def lfilter(b: np.ndarray, a: np.ndarray, x: np.ndarray,
            zi: np.ndarray | None = None) -> Any:
    """``scipy.signal.lfilter(b, a, x, axis=-1, zi=zi)`` for float64 ``b``, ``a`` (1-D,
    ``a[0] == 1``) and ``x``; with ``zi``, (y, final state) as scipy returns them."""
    if LINEAR_FILTER is None or a[0] != 1.0 or (len(a) == 1 and zi is not None):
        from scipy.signal import lfilter as scipy_lfilter

        return scipy_lfilter(b, a, x, zi=zi)
    if len(a) == 1:  # scipy's moving-average path: b convolved with each row, cut
        n = x.shape[-1]
        if x.ndim == 1:
            return np.convolve(b, x)[:n]
        return np.array([np.convolve(b, row)[:n] for row in x]).reshape(x.shape)
    if zi is None:
        return LINEAR_FILTER(b, a, x, -1)
    return LINEAR_FILTER(b, a, x, -1, np.asarray(zi, dtype=float))
