"""A tiny forecaster that follows the served-model contract, logged as MLflow "model from code".

Serving tests must not depend on `training`, so this stands in for the champion: four
weekly series (store x category), a forecast origin, and a horizon of four weeks.

    yhat = level[series] + offset + 2 * step + 10 * promo - 3 * (price - 10)
    yhat_lower / yhat_upper = yhat -/+ 5

``step`` is the horizon step (1..4) after the series' origin; promo defaults to 0 and
price to 10 (the "plan"), so a scenario with promo=1 adds exactly 10. ``offset`` comes from
the model config: version 2 of the test champion uses offset 1000, which makes every
answer say which model made it.

It follows the living-forecast contract too: ``roll(actuals)`` (per series, all its
consecutive actuals after the training origin) returns a copy whose series forecast from
their newest actual, with level = that actual's y; the output carries ``origin``.

MLflow executes this file when it loads the model (``mlflow.models.set_model`` below), so
the logged artifact is self-contained: `mlflow models serve` and a uvicorn subprocess load
it without the test package on ``sys.path``.
"""

from __future__ import annotations

import copy
from typing import Any

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel

LEVELS = {"S01|C1": 100.0, "S01|C2": 50.0, "S02|C1": 80.0, "S02|C2": 20.0}
LAST_DS = "2024-06-03"
HORIZON = 4
HALF_WIDTH = 5.0


class ToyForecaster(PythonModel):
    """Per-series level + trend step + promo and price effects; see the module docstring."""

    def __init__(self) -> None:
        self.offset = 0.0
        self.levels = dict(LEVELS)
        self.origin = dict.fromkeys(LEVELS, pd.Timestamp(LAST_DS))

    def load_context(self, context: Any) -> None:
        config = getattr(context, "model_config", None) or {}
        self.offset = float(config.get("offset", 0.0))

    @property
    def metadata(self) -> dict[str, Any]:
        return {
            "family": "toy",
            "horizon": HORIZON,
            "freq": "W",
            "last_ds": LAST_DS,
            "series_ids": sorted(LEVELS),
            "keys": ["store", "category"],
            "level": 0.8,
            "exog_columns": ["promo", "price"],
        }

    def trained_origins(self) -> dict[str, str]:
        return dict.fromkeys(LEVELS, LAST_DS)

    def origins(self) -> dict[str, str]:
        return {s: d.date().isoformat() for s, d in self.origin.items()}

    def roll(self, actuals: pd.DataFrame) -> ToyForecaster:
        rolled = copy.copy(self)
        rolled.levels, rolled.origin = dict(self.levels), dict(self.origin)
        for series_id, rows in actuals.groupby("series_id"):
            ds = pd.to_datetime(rows["ds"]).sort_values()
            expected = pd.Timestamp(LAST_DS) + pd.to_timedelta(7 * (1 + pd.RangeIndex(len(ds))),
                                                                unit="D")
            if list(ds) != list(expected):
                raise ValueError(f"{series_id}: not the consecutive weeks after {LAST_DS}")
            last = rows.loc[pd.to_datetime(rows["ds"]).idxmax()]
            rolled.levels[series_id] = float(last["y"])
            rolled.origin[series_id] = ds.iloc[-1]
        return rolled

    def _steps(self, frame: pd.DataFrame) -> pd.Series:
        unknown = sorted(set(frame["series_id"]) - set(LEVELS))
        if unknown:
            raise ValueError(f"unknown series: {unknown}")
        ds = pd.to_datetime(frame["ds"])
        origin = pd.to_datetime(frame["series_id"].map(self.origin))
        steps = (ds - origin).dt.days / 7
        bad = ~steps.isin(range(1, HORIZON + 1))
        if bad.any():
            raise ValueError(f"ds outside the horizon: {sorted(ds[bad].astype(str).unique())}")
        return steps.astype(float)

    def predict_with_features(self, frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
        steps = self._steps(frame)
        promo = frame["promo"].astype(float) if "promo" in frame else 0.0 * steps
        price = frame["price"].astype(float) if "price" in frame else 0.0 * steps + 10.0
        level = frame["series_id"].map(self.levels).astype(float)
        yhat = level + self.offset + 2.0 * steps + 10.0 * promo - 3.0 * (price - 10.0)
        ds = pd.to_datetime(frame["ds"])
        forecast = pd.DataFrame(
            {
                "series_id": frame["series_id"].astype(str).to_numpy(),
                "ds": ds.to_numpy(),
                "yhat": yhat.to_numpy(),
                "yhat_lower": (yhat - HALF_WIDTH).to_numpy(),
                "yhat_upper": (yhat + HALF_WIDTH).to_numpy(),
                "origin": frame["series_id"].map(self.origins()).to_numpy(),
            }
        )
        features = pd.DataFrame(
            {
                "series_id": forecast["series_id"],
                "ds": forecast["ds"],
                "step": steps.to_numpy(),
                "promo": promo.to_numpy(),
                "price": price.to_numpy(),
            }
        )
        return forecast, features

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> pd.DataFrame:
        return self.predict_with_features(model_input)[0]


mlflow.models.set_model(ToyForecaster())
