"""Multiple-seasonal decomposition (MSTL) of one series, then a non-seasonal ETS.

Daily sales have two seasons, the week (7) and the year (365); Holt-Winters, Theta and
ARIMA here model one. statsmodels ``MSTL`` takes out every season of ``spec.seasons``
that the history covers twice (weekly data: 52; monthly: 12); each season component is
forecast by its seasonal naive (its last cycle, repeated: its *profile*) and the
seasonally adjusted series by a damped-trend ETS without season (as statsforecast's MSTL
does with AutoETS). A season longer than the primary one (the year of daily data) is
smoothed to its first ``LONG_SEASON_HARMONICS`` Fourier pairs: STL averages each day of
the year over the few years seen, so its last cycle carries the daily noise (~noise / sqrt
of the years), which the smoothing takes out (on the bench panel: WAPE 0.139 -> 0.115 for
MSTL alone). The profiles are fitted parameters: rolling forward takes them out of the
longer history by phase and re-runs the ETS recursion; they change at the next fit.

Speed: STL's LOESS over a 365-period trend window dominates (~0.5 s on 3 years of daily
data); ``trend_jump`` / ``low_pass_jump`` of 10 (LOESS evaluated every 10th point and
interpolated, Cleveland et al.'s own speed-up) make it ~10x faster and change the
components by ~1 % of the seasonal amplitude.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from training.forecasters.ets import EtsParams, fit_ets
from training.forecasters.statistical_spec import SeriesModelSpec

STL_SPEEDUP = {"trend_jump": 10, "low_pass_jump": 10}
LONG_SEASON_HARMONICS = 10  # a yearly profile resolves month-long features, not daily noise


@dataclass(frozen=True)
class MstlParams:
    """Season profiles (one cycle each, indexed by position modulo its period) and the
    ETS of the seasonally adjusted series."""

    periods: tuple[int, ...]
    profiles: tuple[np.ndarray, ...]
    adjusted_model: EtsParams

    kind = "mstl"

    @property
    def exog_coef(self) -> dict[str, float]:
        return {}

    def seasonal(self, start: int, count: int) -> np.ndarray:
        return profile_sum(self.periods, self.profiles, start, count)

    def path(self, y: np.ndarray, exog: np.ndarray, horizon: int) -> np.ndarray:
        """See :class:`~training.forecasters.statistical_spec.SeriesModel` (exog unused)."""
        n = len(y)
        adjusted = y - self.seasonal(0, n)
        return self.adjusted_model.forecast(adjusted, horizon) + self.seasonal(n, horizon)


def profile_sum(periods: tuple[int, ...], profiles: tuple[np.ndarray, ...], start: int,
                count: int) -> np.ndarray:
    """The sum of the season profiles at positions ``start .. start + count - 1``."""
    positions = np.arange(start, start + count)
    total = np.zeros(count)
    for period, profile in zip(periods, profiles, strict=True):
        total += profile[positions % period]
    return total


def last_cycle(component: np.ndarray, period: int) -> np.ndarray:
    """The last ``period`` values of ``component``, indexed by position modulo ``period``."""
    n = len(component)
    profile = np.empty(period)
    profile[np.arange(n - period, n) % period] = component[n - period:]
    return profile


def smoothed(profile: np.ndarray, harmonics: int) -> np.ndarray:
    """``profile`` projected on its first ``harmonics`` Fourier pairs (a smooth cycle)."""
    spectrum = np.fft.rfft(profile)
    spectrum[harmonics + 1:] = 0.0
    return np.fft.irfft(spectrum, n=len(profile))


def fit_mstl(y: np.ndarray, exog: np.ndarray, spec: SeriesModelSpec) -> MstlParams:
    """MSTL over the seasons ``y`` covers twice, then ETS (no season) on the rest."""
    from statsmodels.tsa.seasonal import MSTL

    periods = tuple(sorted(p for p in set(spec.seasons) if p > 1 and len(y) >= 2 * p))
    if not periods:
        raise ValueError(f"{len(y)} periods: shorter than two of any season {spec.seasons}")
    result = MSTL(y, periods=periods, stl_kwargs=STL_SPEEDUP).fit()
    components = np.asarray(result.seasonal, dtype=float).reshape(len(y), -1)
    profiles = tuple(last_cycle(components[:, i], p) for i, p in enumerate(periods))
    profiles = tuple(smoothed(pr, LONG_SEASON_HARMONICS) if p > spec.season_length else pr
                     for p, pr in zip(periods, profiles, strict=True))
    adjusted = y - profile_sum(periods, profiles, 0, len(y))
    return MstlParams(periods, profiles, fit_ets(adjusted, exog, spec, seasonal=False))
