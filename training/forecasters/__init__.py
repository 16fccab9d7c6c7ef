"""The four forecaster families, all following the contract in :mod:`training.base`.

``FAMILIES`` maps the family names used in specs, MLflow tags and the registry to classes:
``seasonal_naive`` (baseline), ``regression`` (global Ridge / ElasticNet), ``time_series``
(per-series ETS / SARIMAX) and ``lightgbm`` (global gradient boosting).
"""

from __future__ import annotations

from training.base import Forecaster
from training.forecasters.gbm import LightGBMForecaster
from training.forecasters.naive import SeasonalNaive
from training.forecasters.regression import RegressionForecaster
from training.forecasters.time_series import TimeSeriesForecaster

FAMILIES: dict[str, type[Forecaster]] = {
    "seasonal_naive": SeasonalNaive,
    "regression": RegressionForecaster,
    "time_series": TimeSeriesForecaster,
    "lightgbm": LightGBMForecaster,
}

__all__ = [
    "FAMILIES",
    "LightGBMForecaster",
    "RegressionForecaster",
    "SeasonalNaive",
    "TimeSeriesForecaster",
]
