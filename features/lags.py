"""Target-derived features: lags and rolling statistics, shifted by the forecast horizon.

The design is *direct*: one model forecasts every step 1..H from the origin, so a feature
at period ``ds`` may only use ``y`` up to ``ds - H``. Hence lags start at H, and rolling
windows end at ``ds - H``. Everything here works on a panel sorted by (series_id, ds) with
one row per period (the complete grid), so "k periods back" is "k rows back in the same
series"; shifts are vectorised over the whole panel, never a loop over series.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pandas.api.indexers import BaseIndexer

from features.calendar import SEASON_LENGTHS


def default_lags(horizon: int, freq: str, season_length: int | None = None) -> list[int]:
    """H, H+1, H+2, H+3 and one season (52 W, 7 D, 12 M) when the season exceeds H."""
    lags = [horizon + step for step in range(4)]
    season = season_length or SEASON_LENGTHS[freq]
    if season > horizon and season not in lags:
        lags.append(season)
    return lags


def resolve_lags(
    lags: list[int] | None, horizon: int, freq: str, season_length: int | None = None
) -> tuple[int, ...]:
    """The lags to build: the configured ones (sorted, unique) or :func:`default_lags`.

    A lag shorter than the horizon is refused: a forecast made at the origin cannot know it.
    """
    chosen = default_lags(horizon, freq, season_length) if lags is None else lags
    short = sorted(lag for lag in chosen if lag < horizon)
    if short:
        raise ValueError(f"lags {short} are shorter than the horizon ({horizon})")
    return tuple(sorted(set(chosen)))


def series_runs(series_id: pd.Series | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Run number and position within the run of each row (rows grouped by series)."""
    ids = np.asarray(series_id)
    n = len(ids)
    change = np.ones(n, dtype=bool)
    if n > 1:
        change[1:] = ids[1:] != ids[:-1]
    starts = np.maximum.accumulate(np.where(change, np.arange(n), 0))
    return np.cumsum(change) - 1, np.arange(n) - starts


def rows_to_end(runs: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Per row of a panel grouped by series (:func:`series_runs`): the rows from it to its
    series' last one, itself included (1 on the last row)."""
    return np.bincount(runs, minlength=1)[runs] - positions


def shift_within_series(values: np.ndarray, positions: np.ndarray, k: int) -> np.ndarray:
    """``values`` k rows back in the same series (NaN for the first k rows of a series)."""
    values = np.asarray(values, dtype=np.float64)
    out = np.full(len(values), np.nan)
    if k < len(values):
        out[k:] = values[:-k] if k > 0 else values
    out[positions < k] = np.nan
    return out


def lag_features(
    y: np.ndarray, positions: np.ndarray, lags: tuple[int, ...]
) -> dict[str, np.ndarray]:
    """``lag_<k>`` = y k periods before ds."""
    return {f"lag_{k}": shift_within_series(y, positions, k) for k in lags}


class RunWindows(BaseIndexer):
    """Bounds of the trailing ``window_size`` rows of each row within its run (series):
    the bounds ``groupby(runs).rolling(window)`` hands to pandas' rolling kernels, so the
    values are bit-identical, without the per-call cost of a groupby (a few ms: the
    recursive strategy and the backtests compute rolling statistics hundreds of times)."""

    def __init__(self, window_size: int, positions: np.ndarray) -> None:
        super().__init__(window_size=window_size)
        self.positions = np.asarray(positions, dtype=np.int64)

    def get_window_bounds(self, num_values: int = 0, min_periods: int | None = None,
                          center: bool | None = None, closed: str | None = None,
                          step: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        end = np.arange(1, num_values + 1, dtype=np.int64)
        start = np.maximum(end - self.window_size, end - 1 - self.positions[:num_values])
        return start, end


def rolling_mean_std(
    values: np.ndarray, runs: np.ndarray, window: int, min_periods: int
) -> tuple[np.ndarray, np.ndarray]:
    """Rolling mean and sample std over ``window`` rows within each run (series)."""
    _, positions = series_runs(runs)
    rolling = pd.Series(values, dtype=np.float64).rolling(RunWindows(window, positions),
                                                          min_periods=min_periods)
    return rolling.mean().to_numpy(), rolling.std().to_numpy()


def rolling_features(
    y: np.ndarray, runs: np.ndarray, positions: np.ndarray, horizon: int, windows: tuple[int, ...]
) -> dict[str, np.ndarray]:
    """``roll_mean_<w>`` / ``roll_std_<w>``: mean and std of y over the w periods ending at
    ds - H (NaN until a full window exists)."""
    shifted = shift_within_series(y, positions, horizon)
    out: dict[str, np.ndarray] = {}
    for window in windows:
        mean, std = rolling_mean_std(shifted, runs, window, min_periods=window)
        out[f"roll_mean_{window}"] = mean
        out[f"roll_std_{window}"] = std
    return out


def price_reference(
    price: np.ndarray, runs: np.ndarray, positions: np.ndarray, horizon: int, window: int
) -> np.ndarray:
    """The usual price at ds: mean price over the ``window`` periods ending at ds - H (the
    price level known at the origin, whatever the price at ds turns out to be)."""
    shifted = shift_within_series(price, positions, horizon)
    reference, _ = rolling_mean_std(shifted, runs, window, min_periods=1)
    return reference


def ratio_to_reference(price: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Relative price ``price_ratio``: price / :func:`price_reference` (NaN where not a
    finite number). Below 1 means cheaper than usual (a promotion), above 1 a price rise."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.asarray(price, dtype=np.float64) / np.asarray(reference, dtype=np.float64)
    return np.where(np.isfinite(ratio), ratio, np.nan)
