"""Seasonal naive: the baseline every other family must beat.

The forecast for ds is y at ds - season_length (the same week last year for weekly data);
beyond one season the last season repeats. A series with less than one season of history
gets its last value. ``season_length=1`` is the plain naive (last value) forecast.

Missing values (y NaN: a gap in the data, see :mod:`features.gaps`) are skipped: a season
position whose last value is missing takes the most recent known value of that position (a
season earlier, or two, ...), else the series' last known value.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from training.forecasters.common import PanelForecaster, season_length_for

if TYPE_CHECKING:
    import optuna

    from features import TrainingSet


def seasonal_naive_path(history: np.ndarray, season_length: int, horizon: int) -> np.ndarray:
    """The next ``horizon`` seasonal-naive values after ``history`` (oldest first; NaN
    values are skipped as the module docstring says)."""
    history = np.asarray(history, dtype=float)
    known = history[~np.isnan(history)]
    if len(known) == 0:
        return np.full(horizon, np.nan)
    if len(history) < season_length:
        return np.full(horizon, float(known[-1]))
    last_season = last_known_season(history, season_length)
    return np.array([last_season[h % season_length] for h in range(horizon)], dtype=float)


def last_known_season(history: np.ndarray, season_length: int) -> np.ndarray:
    """The last ``season_length`` values of ``history`` (at most all of it), each missing
    one replaced by its position's most recent known value, else the last known value."""
    history = np.asarray(history, dtype=float)
    width = min(season_length, len(history))
    if width == 0 or not np.isnan(history[-width:]).any():
        return history[-width:] if width else history
    n_seasons = -(-len(history) // width)
    padded = np.full(n_seasons * width, np.nan)
    padded[len(padded) - len(history):] = history
    by_position = pd.DataFrame(padded.reshape(n_seasons, width)).ffill()
    season = by_position.iloc[-1].to_numpy(dtype=float)
    known = history[~np.isnan(history)]
    return np.where(np.isnan(season), known[-1] if len(known) else np.nan, season)


class SeasonalNaive(PanelForecaster):
    """yhat(ds) = y(ds - season_length); ``season_length=None`` takes the data's season."""

    family = "seasonal_naive"

    def __init__(self, season_length: int | None = None) -> None:
        self.season_length = season_length

    def fit(self, training_set: TrainingSet) -> SeasonalNaive:
        self._remember(training_set)
        self.season_length_: int = season_length_for(training_set, self.season_length)
        self.trained_season_ = self._last_seasons(training_set.base)
        self.last_season_: dict[str, np.ndarray] = dict(self.trained_season_)
        return self

    def _last_seasons(self, base: pd.DataFrame) -> dict[str, np.ndarray]:
        """Each series' last season, missing values filled from earlier seasons."""
        ordered = base.sort_values(["series_id", "ds"])
        return {
            str(series_id): last_known_season(group["y"].to_numpy(dtype=float),
                                              self.season_length_)
            for series_id, group in ordered.groupby("series_id", sort=True)
        }

    def _rolled(self, series_ids: list[str]) -> None:
        """The season read after the posted rows: the training season, then the new y."""
        self.last_season_ = dict(self.last_season_)
        extension = self.extension_[self.extension_["series_id"].isin(series_ids)]
        for series_id, group in extension.groupby("series_id", sort=False):
            joined = np.concatenate([self.trained_season_[str(series_id)],
                                     group["y"].to_numpy(dtype=float)])
            self.last_season_[str(series_id)] = joined[-self.season_length_:]

    reads_features = False

    def _predict_rows(self, rows: pd.DataFrame) -> np.ndarray:
        """Seasonal-naive values of each row's step (exog is ignored)."""
        step = rows["step"].to_numpy() - 1
        yhat = np.empty(len(rows))
        for series_id, index in rows.groupby("series_id", sort=False).indices.items():
            season = self.last_season_[str(series_id)]
            yhat[index] = seasonal_naive_path(season, self.season_length_, step.max() + 1)[
                step[index]]
        return yhat


def search_space(trial: optuna.Trial) -> dict[str, Any]:
    """Nothing to tune: the baseline runs once as it is."""
    return {}
