"""What every forecaster family shares: the season length, the per-series level, and the
fitted history (feature pipeline + tail of the base panel) that prediction needs.

A fitted forecaster is pickled into MLflow and served, so it keeps only ``pipeline_`` and
``tail_ = pipeline.tail(base)``: enough history to build the feature rows of the next
``horizon`` periods, not the whole panel.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from features.calendar import SEASON_LENGTHS
from training.base import Forecaster

if TYPE_CHECKING:
    from features import TrainingSet

log = logging.getLogger(__name__)

TARGET_DERIVED_PREFIXES: tuple[str, ...] = ("lag_", "roll_mean_", "roll_std_")
_LEVEL_FLOOR = 1e-6


def season_length_for(training_set: TrainingSet, explicit: int | None = None) -> int:
    """Periods per season: ``explicit``, else the training set's own, else by frequency."""
    if explicit is not None:
        return int(explicit)
    recorded = training_set.metadata.extra.get("season_length")
    if recorded:
        return int(recorded)
    return SEASON_LENGTHS.get(training_set.freq, 1)


def recent_level(base: pd.DataFrame, season_length: int) -> pd.Series:
    """Per series: mean |y| over its last ``season_length`` periods (known at the origin).

    The scale that makes series of different size comparable (regression targets,
    conformal residuals). Floored at 1 % of the median level, so a series with no recent
    sales gets a small positive scale instead of 0.
    """
    recent = base.sort_values(["series_id", "ds"]).groupby("series_id", sort=True).tail(
        season_length
    )
    level = recent["y"].abs().groupby(recent["series_id"], sort=True).mean()
    positive = level[level > 0]
    floor = max(_LEVEL_FLOOR, 0.01 * float(positive.median())) if len(positive) else 1.0
    return level.clip(lower=floor).rename("scale")


def target_derived_columns(columns: list[str]) -> list[str]:
    """Feature columns computed from past y (lags, rolling statistics): scaled with y."""
    return [c for c in columns if c.startswith(TARGET_DERIVED_PREFIXES)]


class PanelForecaster(Forecaster):
    """A forecaster that predicts from the feature pipeline's future rows.

    Subclasses call :meth:`_remember` in ``fit`` and :meth:`_future_rows` in
    ``predict_mean``; :meth:`_finish` shapes the output (series_id, ds, yhat).
    """

    def _remember(self, training_set: TrainingSet) -> None:
        base = training_set.base
        self.pipeline_: Any = training_set.pipeline
        self.tail_: pd.DataFrame = training_set.pipeline.tail(base).reset_index(drop=True)
        self.horizon_: int = training_set.horizon
        self.nonnegative_: bool = bool((base["y"].dropna() >= 0).all())

    def _check_horizon(self, horizon: int) -> None:
        if not 1 <= horizon <= self.horizon_:
            raise ValueError(
                f"horizon {horizon} is outside 1..{self.horizon_}: this model's features "
                f"are direct for at most {self.horizon_} periods after the origin"
            )

    def _future_rows(
        self, horizon: int, future_exog: pd.DataFrame | None, features: bool = True
    ) -> pd.DataFrame:
        """Rows of the next ``horizon`` periods per series (feature rows or base rows)."""
        self._check_horizon(horizon)
        if features:
            rows = self.pipeline_.future_frame(self.tail_, horizon, future_exog)
        else:
            rows = self.pipeline_.future_base(self.tail_, horizon, future_exog)
        return rows.sort_values(["series_id", "ds"]).reset_index(drop=True)

    def _finish(self, rows: pd.DataFrame, yhat: np.ndarray) -> pd.DataFrame:
        frame = rows[["series_id", "ds"]].copy()
        frame["yhat"] = np.asarray(yhat, dtype=float)
        if self.nonnegative_:
            frame["yhat"] = frame["yhat"].clip(lower=0.0)
        return frame.reset_index(drop=True)


class GlobalForecaster(PanelForecaster):
    """One model across all series: target-derived features in series-scale units.

    Subclasses set ``scale_target`` and ``season_length`` params and the fitted
    ``scales_`` (from :meth:`_series_scales`) and ``derived_`` columns.
    """

    scale_target: bool
    season_length: int | None
    scales_: pd.Series
    derived_: list[str]

    def _series_scales(self, training_set: TrainingSet) -> pd.Series:
        """Each series' recent level (1.0 everywhere when ``scale_target`` is off)."""
        if not self.scale_target:
            return pd.Series(1.0, index=training_set.series_ids, name="scale")
        season = season_length_for(training_set, self.season_length)
        return recent_level(training_set.base, season)

    def _scaled(self, rows: pd.DataFrame, columns: list[str]) -> tuple[pd.DataFrame, np.ndarray]:
        """``columns`` of ``rows`` with the target-derived ones divided by the series scale."""
        scale = rows["series_id"].map(self.scales_).fillna(1.0).to_numpy(dtype=float)
        design = rows[columns].copy()
        for column in self.derived_:
            design[column] = design[column].to_numpy(dtype=float) / scale
        return design, scale
