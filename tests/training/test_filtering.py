"""The wrapper-free ``lfilter`` gives scipy's floats, bit for bit.

auto_arima's CSS and Theta's SES call :func:`training.forecasters.filtering.lfilter`
thousands of times a fit; it must return what ``scipy.signal.lfilter`` returns for
every shape they use: recursive and moving-average filters, vectors and stacks of rows,
with and without an initial state.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import lfilter as scipy_lfilter

from training.forecasters.filtering import lfilter

ONE = np.ones(1)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize(("nb", "na", "rows"), [(1, 1, 0), (3, 1, 0), (1, 3, 0), (4, 9, 0),
                                                (3, 1, 4), (5, 8, 3), (1, 2, 1)])
def test_the_filter_is_scipys(seed: int, nb: int, na: int, rows: int) -> None:
    rng = np.random.default_rng(seed)
    b = np.r_[1.0, rng.uniform(-0.5, 0.5, nb - 1)]
    a = np.r_[1.0, rng.uniform(-0.3, 0.3, na - 1)]
    x = rng.normal(size=(rows, 48)) if rows else rng.normal(size=48)
    np.testing.assert_array_equal(lfilter(b, a, x), scipy_lfilter(b, a, x))


def test_an_initial_state_is_carried_as_scipy_carries_it() -> None:
    w = np.random.default_rng(1).normal(size=40)
    for alpha in (0.001, 0.3, 0.999):
        b, a, zi = np.array([alpha]), np.array([1.0, alpha - 1.0]), np.array([0.7])
        ours, theirs = lfilter(b, a, w, zi=zi), scipy_lfilter(b, a, w, zi=zi)
        np.testing.assert_array_equal(ours[0], theirs[0])
        np.testing.assert_array_equal(ours[1], theirs[1])
