"""Conformal prediction intervals, the same method for every family.

From backtest forecasts we keep, per horizon step h, the *scores* |y - yhat| / s where the
row scale s = max(|yhat|, ``floor_share`` x level) x v is known at the forecast origin:

* the forecast itself (sales noise grows with the level, so intervals follow the season
  and the promotions), floored by a share of the series' recent level (mean |y| over its
  last season at the origin: :func:`series_scales`) so that a forecast near 0 still gets
  an interval;
* times the series' *relative volatility* v at the origin (:func:`series_volatility`):
  mean |y_t - y_{t-m}| / mean |y_t| over its last max(2 m, 26) periods (m = season
  length: the MASE denominator in relative form; the changes' mean 10 %-trimmed, so one
  holiday or spike does not set it), clipped to [1/4, 4] x the median over the series;
  a series without one gets the median.

Without v one pooled quantile of relative errors served series of very different noise:
quiet series got intervals far too wide, noisy ones too narrow. With it the scores of
all series (and of all origins: v is recent, so it follows a calmer or busier period)
are on one footing, which is what pooling them assumes. Any scale known at the origin
keeps the conformal guarantee (normalised scores); a better one brings each series'
coverage closer to the level and narrows the intervals overall.

A forecast made at a new origin gets

    yhat_lower, yhat_upper = yhat -/+ q_h(level) x s

with q_h the split-conformal quantile of step h's scores (rank ceil((n + 1) level), capped
at the largest score when n is small). Steps beyond the calibrated ones use the last
step's quantile. The lower bound is clipped at 0 when the training y were all >= 0.

A calibration without volatilities (``volatility=None``: pickled before they existed, or
built without them) scores and applies with v = 1, i.e. as before.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from training.forecasters.common import recent_level, season_length_for

if TYPE_CHECKING:
    from features import TrainingSet

log = logging.getLogger(__name__)


def series_scales(training_set: TrainingSet, season_length: int | None = None) -> pd.Series:
    """Per series: its recent level at the training set's last ds (the origin)."""
    return recent_level(training_set.base, season_length_for(training_set, season_length))


VOLATILITY_MIN_PERIODS = 26  # the volatility's lookback: max(2 seasons, this) periods
VOLATILITY_CLIP = 4.0  # per-series volatility within [1/clip, clip] x the median one
VOLATILITY_TRIM = 0.1  # share of the changes dropped at each end (a trimmed mean)


def series_volatility(training_set: TrainingSet, season_length: int | None = None
                      ) -> pd.Series:
    """Per series: its relative volatility at the training set's last ds (the origin)."""
    return relative_volatility(training_set.base,
                               season_length_for(training_set, season_length))


def relative_volatility(base: pd.DataFrame, season_length: int) -> pd.Series:
    """Per series: trimmed mean |y_t - y_{t-m}| / mean |y_t| over its last max(2 m, 26)
    periods (the changes' top and bottom 10 % dropped: a holiday or a one-off spike in the
    lookback is no noise level; the conformal quantile, not v, covers the tails).

    Clipped to [1/4, 4] x the median over the series that move; a series with too short
    (or all zero) history gets the median, and all get 1 when no series moves.
    """
    m = max(int(season_length), 1)
    ordered = base.sort_values(["series_id", "ds"])
    recent = ordered.groupby("series_id", sort=True).tail(
        max(2 * m, VOLATILITY_MIN_PERIODS) + m)
    change = (recent["y"] - recent.groupby("series_id", sort=True)["y"].shift(m)).abs()
    paired = change.notna()
    ids = recent.loc[paired, "series_id"]
    mean_abs = recent.loc[paired, "y"].abs().groupby(ids, sort=True).mean()
    ratio = trimmed_mean(change[paired], ids) / mean_abs.where(mean_abs > 0)
    ratio = ratio.reindex(pd.Index(ordered["series_id"].unique())).sort_index()
    median = float(ratio[ratio > 0].median()) if (ratio > 0).any() else 1.0
    clipped = ratio.clip(median / VOLATILITY_CLIP, median * VOLATILITY_CLIP)
    return clipped.fillna(median).rename("volatility")


def trimmed_mean(values: pd.Series, groups: pd.Series) -> pd.Series:
    """Per group: the mean of ``values`` without its int(10 % x n) largest and smallest."""
    grouped = values.groupby(groups, sort=True)
    rank = grouped.rank(method="first")
    size = grouped.transform("size")
    cut = np.floor(VOLATILITY_TRIM * size)
    kept = (rank > cut) & (rank <= size - cut)
    return values[kept].groupby(groups[kept], sort=True).mean()


def conformal_quantile(scores: np.ndarray, level: float) -> float:
    """Split-conformal quantile: the ceil((n+1) level)-th smallest score (max if beyond n)."""
    ordered = np.sort(scores[np.isfinite(scores)])
    if len(ordered) == 0:
        return float("nan")
    rank = min(math.ceil((len(ordered) + 1) * level), len(ordered))
    return float(ordered[rank - 1])


def horizon_steps(frame: pd.DataFrame) -> np.ndarray:
    """The step (1..H) of each row: its ``step`` column, else its ds rank in the series."""
    if "step" in frame.columns:
        return frame["step"].to_numpy(dtype=int)
    ranks = frame.groupby("series_id", sort=False)["ds"].rank(method="dense")
    return ranks.to_numpy(dtype=int)


def row_scales(frame: pd.DataFrame, levels: pd.Series, floor_share: float,
               volatility: pd.Series | None = None) -> np.ndarray:
    """Per row: max(|yhat|, floor_share x the series' level) x its volatility (1 without
    ``volatility``); unknown series get the median level / volatility."""
    return scales_of(frame["series_id"].astype(str).tolist(), frame["yhat"].to_numpy(float),
                     levels, floor_share, volatility)


def scales_of(series: list[str], yhat: np.ndarray, levels: pd.Series,
              floor_share: float, volatility: pd.Series | None = None) -> np.ndarray:
    """:func:`row_scales` of forecasts given as a list of series and an array of yhat."""
    level = per_series(series, levels, "level")
    scale = np.maximum(np.abs(np.asarray(yhat, dtype=float)), floor_share * level)
    return scale if volatility is None else scale * per_series(series, volatility,
                                                               "volatility")


def per_series(series: list[str], values: pd.Series, what: str) -> np.ndarray:
    """``values`` (series_id -> float) of each of ``series``; unknown ones get the median."""
    known = dict(zip(values.index.astype(str), values.to_numpy(dtype=float), strict=True))
    out = np.array([known.get(s, np.nan) for s in series], dtype=float)
    missing = np.isnan(out)
    if missing.any():
        unknown = sorted({s for s, gap in zip(series, missing, strict=True) if gap})
        log.warning("no conformal %s for series %s: the median %s is used", what, unknown,
                    what)
        out[missing] = float(values.median())
    return out


@dataclass(frozen=True)
class ConformalCalibration:
    """Scaled absolute residuals per horizon step + the series levels (and relative
    volatilities) of the model's origin."""

    scores: dict[int, np.ndarray]
    scales: pd.Series | None = None  # series_id -> recent level at the forecasts' origin
    nonnegative: bool = True
    floor_share: float = 0.25
    volatility: pd.Series | None = None  # series_id -> relative volatility; None: v = 1

    @classmethod
    def from_predictions(
        cls,
        frame: pd.DataFrame,
        scales: pd.Series,
        nonnegative: bool | None = None,
        floor_share: float = 0.25,
        volatility: pd.Series | None = None,
    ) -> ConformalCalibration:
        """Calibrate on forecasts with actuals: step, series_id, y, yhat.

        ``scales`` (series_id -> recent level at the forecasts' origin) and ``volatility``
        (series_id -> relative volatility there, :func:`series_volatility`; None: v = 1)
        are kept as the ones to apply, right when the next forecasts share that origin
        (otherwise use :meth:`with_scales`). ``nonnegative`` defaults to "all y in frame
        >= 0".
        """
        scale = row_scales(frame, scales, floor_share, volatility)
        score = np.abs(frame["y"].to_numpy(float) - frame["yhat"].to_numpy(float)) / scale
        step = horizon_steps(frame)
        scores = {int(h): score[step == h] for h in np.unique(step)}
        if nonnegative is None:
            nonnegative = bool((frame["y"].dropna() >= 0).all())
        return cls(scores, scales, nonnegative, floor_share, volatility)

    @classmethod
    def combine(cls, calibrations: Sequence[ConformalCalibration]) -> ConformalCalibration:
        """Pool the scores of several calibrations (e.g. backtest windows)."""
        if not calibrations:
            raise ValueError("nothing to combine: no calibrations given")
        steps = sorted({h for c in calibrations for h in c.scores})
        scores = {
            h: np.concatenate([c.scores[h] for c in calibrations if h in c.scores])
            for h in steps
        }
        if len({c.floor_share for c in calibrations}) > 1:
            raise ValueError("cannot pool calibrations with different floor_share")
        if len({c.volatility is None for c in calibrations}) > 1:
            raise ValueError("cannot pool calibrations with and without volatilities")
        nonnegative = all(c.nonnegative for c in calibrations)
        last = calibrations[-1]
        return cls(scores, last.scales, nonnegative, calibrations[0].floor_share,
                   last.volatility)

    def with_scales(
        self, scales: pd.Series, nonnegative: bool | None = None,
        volatility: pd.Series | None = None,
    ) -> ConformalCalibration:
        """The same scores, applied with the levels (and, when given, the volatilities) of
        another origin (the refit model). ``volatility`` is ignored when the scores were
        made without (they are applied with v = 1, as they were scored)."""
        flag = self.nonnegative if nonnegative is None else nonnegative
        kept = self.volatility if volatility is None or self.volatility is None else volatility
        return replace(self, scales=scales, nonnegative=flag, volatility=kept)

    @property
    def steps(self) -> list[int]:
        return sorted(self.scores)

    def quantile(self, step: int, level: float) -> float:
        """q_h(level) for horizon step ``step`` (the last calibrated step beyond them)."""
        calibrated = self.steps
        below = [h for h in calibrated if h <= step]
        chosen = below[-1] if below else calibrated[0]
        return conformal_quantile(self.scores[chosen], level)

    def bounds(self, series_ids: list[str], steps: list[int], yhat: np.ndarray,
               level: float) -> tuple[np.ndarray, np.ndarray]:
        """yhat_lower, yhat_upper of forecasts given as arrays (what :meth:`apply` adds)."""
        if self.scales is None:
            raise ValueError("calibration has no series scales: call with_scales() first")
        quantiles = {h: self.quantile(int(h), level) for h in set(steps)}
        width = np.array([quantiles[h] for h in steps]) * scales_of(
            series_ids, yhat, self.scales, self.floor_share, self.volatility)
        lower = yhat - width
        return (np.maximum(lower, 0.0) if self.nonnegative else lower), yhat + width

    def apply(self, frame: pd.DataFrame, level: float) -> pd.DataFrame:
        """Add yhat_lower / yhat_upper to forecasts (series_id, ds, yhat[, step])."""
        lower, upper = self.bounds(frame["series_id"].tolist(), horizon_steps(frame).tolist(),
                                   frame["yhat"].to_numpy(float), level)
        return frame.assign(yhat_lower=lower, yhat_upper=upper)
