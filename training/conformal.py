"""Conformal prediction intervals, the same method for every family.

From backtest forecasts we keep, per horizon step h, the *scores* |y - yhat| / s where the
row scale s = max(|yhat|, ``floor_share`` x level) is known at the forecast origin: the
forecast itself (sales noise grows with the level, so intervals follow the season and
the promotions), floored by a share of the series' recent level (mean |y| over its last
season at the origin: :func:`series_scales`) so that a forecast near 0 still gets an
interval. A forecast made at a new origin gets

    yhat_lower, yhat_upper = yhat -/+ q_h(level) x s

with q_h the split-conformal quantile of step h's scores (rank ceil((n + 1) level), capped
at the largest score when n is small). Steps beyond the calibrated ones use the last
step's quantile. The lower bound is clipped at 0 when the training y were all >= 0.
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


def row_scales(frame: pd.DataFrame, levels: pd.Series, floor_share: float) -> np.ndarray:
    """Per row: max(|yhat|, floor_share x the series' level); unknown series get the median."""
    return scales_of(frame["series_id"].astype(str).tolist(), frame["yhat"].to_numpy(float),
                     levels, floor_share)


def scales_of(series: list[str], yhat: np.ndarray, levels: pd.Series,
              floor_share: float) -> np.ndarray:
    """:func:`row_scales` of forecasts given as a list of series and an array of yhat."""
    known = dict(zip(levels.index.astype(str), levels.to_numpy(dtype=float), strict=True))
    level = np.array([known.get(s, np.nan) for s in series], dtype=float)
    missing = np.isnan(level)
    if missing.any():
        unknown = sorted({s for s, gap in zip(series, missing, strict=True) if gap})
        log.warning("no conformal level for series %s: the median level is used", unknown)
        level[missing] = float(levels.median())
    return np.maximum(np.abs(np.asarray(yhat, dtype=float)), floor_share * level)


@dataclass(frozen=True)
class ConformalCalibration:
    """Scaled absolute residuals per horizon step + the series levels of the model's origin."""

    scores: dict[int, np.ndarray]
    scales: pd.Series | None = None  # series_id -> recent level at the forecasts' origin
    nonnegative: bool = True
    floor_share: float = 0.25

    @classmethod
    def from_predictions(
        cls,
        frame: pd.DataFrame,
        scales: pd.Series,
        nonnegative: bool | None = None,
        floor_share: float = 0.25,
    ) -> ConformalCalibration:
        """Calibrate on forecasts with actuals: step, series_id, y, yhat.

        ``scales`` (series_id -> recent level at the forecasts' origin) are kept as the
        levels to apply, right when the next forecasts share that origin (otherwise use
        :meth:`with_scales`). ``nonnegative`` defaults to "all y in frame >= 0".
        """
        scale = row_scales(frame, scales, floor_share)
        score = np.abs(frame["y"].to_numpy(float) - frame["yhat"].to_numpy(float)) / scale
        step = horizon_steps(frame)
        scores = {int(h): score[step == h] for h in np.unique(step)}
        if nonnegative is None:
            nonnegative = bool((frame["y"].dropna() >= 0).all())
        return cls(scores, scales, nonnegative, floor_share)

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
        nonnegative = all(c.nonnegative for c in calibrations)
        return cls(scores, calibrations[-1].scales, nonnegative, calibrations[0].floor_share)

    def with_scales(
        self, scales: pd.Series, nonnegative: bool | None = None
    ) -> ConformalCalibration:
        """The same scores, applied with the levels of another origin (the refit model)."""
        flag = self.nonnegative if nonnegative is None else nonnegative
        return replace(self, scales=scales, nonnegative=flag)

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
            series_ids, yhat, self.scales, self.floor_share)
        lower = yhat - width
        return (np.maximum(lower, 0.0) if self.nonnegative else lower), yhat + width

    def apply(self, frame: pd.DataFrame, level: float) -> pd.DataFrame:
        """Add yhat_lower / yhat_upper to forecasts (series_id, ds, yhat[, step])."""
        lower, upper = self.bounds(frame["series_id"].tolist(), horizon_steps(frame).tolist(),
                                   frame["yhat"].to_numpy(float), level)
        return frame.assign(yhat_lower=lower, yhat_upper=upper)
