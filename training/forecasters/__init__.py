"""The forecaster families, all following the contract in :mod:`training.base`.

``FAMILIES`` maps the family names used in specs, MLflow tags and the registry to classes;
it is derived from the one family table, :mod:`training.families`.
"""

from __future__ import annotations

from training.base import Forecaster
from training.families import TABLE
from training.forecasters.gbm import LightGBMForecaster
from training.forecasters.intermittent import IntermittentForecaster
from training.forecasters.naive import SeasonalNaive
from training.forecasters.regression import RegressionForecaster
from training.forecasters.time_series import TimeSeriesForecaster

FAMILIES: dict[str, type[Forecaster]] = {family.name: family.estimator for family in TABLE}

__all__ = [
    "FAMILIES",
    "IntermittentForecaster",
    "LightGBMForecaster",
    "RegressionForecaster",
    "SeasonalNaive",
    "TimeSeriesForecaster",
]
