"""The one forecaster contract every family follows (scikit-learn estimator style).

* ``__init__`` only stores hyper-parameters (keyword arguments with defaults); fitted
  state lives in attributes ending in ``_``.
* ``get_params`` / ``set_params`` come from :class:`sklearn.base.BaseEstimator`, so
  Optuna's best params apply as ``clone(model).set_params(**best)``.
* ``fit(training_set) -> self`` learns from a :class:`features.TrainingSet`.
* ``predict_mean(horizon, future_exog, series_ids)`` returns the point forecast for the
  ``horizon`` periods after each series' origin: columns series_id, ds, step (1..H),
  yhat (only the ``series_ids`` asked for, when given).
* ``predict(horizon, future_exog, level, series_ids)`` adds ``yhat_lower`` /
  ``yhat_upper`` from the conformal calibration attached with :meth:`set_conformal` (the
  same method for every family, so coverage is comparable); without calibration the
  bounds equal ``yhat``.
* ``update(new_rows) -> Forecaster`` rolls origins forward without a refit: a copy whose
  series in ``new_rows`` forecast from their newest row (see :mod:`features.origin`).
  ``new_rows`` (series_id, ds, y, optional exog) hold, per series named, *all* its
  periods after the training origin, consecutive; they replace what that series was
  updated with before, so the state is a function of (fitted forecaster, rows): the same
  rows give the same forecast however they arrived. Fitted parameters never change;
  ``self`` is not modified. ``origins()`` gives each series' current origin.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar

import pandas as pd
from sklearn.base import BaseEstimator

if TYPE_CHECKING:
    from features import TrainingSet
    from training.conformal import ConformalCalibration

FORECAST_COLUMNS = ["series_id", "ds", "yhat", "yhat_lower", "yhat_upper"]


class Forecaster(BaseEstimator):
    """Base class: subclasses implement ``fit`` and ``predict_mean``."""

    family: ClassVar[str] = "base"
    conformal_: ConformalCalibration | None = None

    def fit(self, training_set: TrainingSet) -> Forecaster:  # pragma: no cover - abstract
        raise NotImplementedError

    def predict_mean(
        self, horizon: int, future_exog: pd.DataFrame | None = None,
        series_ids: Sequence[str] | None = None,
    ) -> pd.DataFrame:  # pragma: no cover - abstract
        raise NotImplementedError

    def update(self, new_rows: pd.DataFrame) -> Forecaster:  # pragma: no cover - abstract
        raise NotImplementedError

    def origins(self) -> pd.Series:  # pragma: no cover - abstract
        raise NotImplementedError

    def set_conformal(self, calibration: ConformalCalibration) -> Forecaster:
        self.conformal_ = calibration
        return self

    def predict(
        self,
        horizon: int,
        future_exog: pd.DataFrame | None = None,
        level: float = 0.8,
        series_ids: Sequence[str] | None = None,
    ) -> pd.DataFrame:
        """Point forecast plus conformal interval at ``level`` (e.g. 0.8 = 10%-90%)."""
        return self.with_interval(self.predict_mean(horizon, future_exog, series_ids), level)

    def predict_with_rows(
        self, horizon: int, future_exog: pd.DataFrame | None = None, level: float = 0.8,
        series_ids: Sequence[str] | None = None,
    ) -> tuple[pd.DataFrame, pd.DataFrame]:
        """:meth:`predict` and, row-aligned with it, the rows the forecast was made from
        (feature rows, or base rows for a family that reads no features)."""
        mean, rows = self.predict_mean_with_rows(horizon, future_exog, series_ids)
        return self.with_interval(mean, level), rows

    def predict_mean_with_rows(
        self, horizon: int, future_exog: pd.DataFrame | None = None,
        series_ids: Sequence[str] | None = None,
    ) -> tuple[pd.DataFrame, pd.DataFrame]:  # pragma: no cover - abstract
        raise NotImplementedError

    def with_interval(self, frame: pd.DataFrame, level: float) -> pd.DataFrame:
        """``frame`` (series_id, ds, [step,] yhat) with the conformal interval at ``level``."""
        if self.conformal_ is None:
            frame["yhat_lower"] = frame["yhat"]
            frame["yhat_upper"] = frame["yhat"]
        else:
            frame = self.conformal_.apply(frame, level)
        return frame[FORECAST_COLUMNS].reset_index(drop=True)
