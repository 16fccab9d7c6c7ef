"""JSON encoding of forecasts with the standard library, on plain Python values.

Two shapes: salescast's own forecast point (compact, ISO date, non-finite -> null) and
MLflow's scoring-server record (``json.dump`` with MLflow's encoder rules: timestamps as
``isoformat()``, numpy scalars as Python numbers, NaN written as ``NaN`` like MLflow does).
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

COMPACT = (",", ":")


def finite_or_none(value: Any) -> float | None:
    """A float for JSON, or None for missing / infinite values."""
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def forecast_point_json(
    series_id: str, ds: str, origin: str | None, yhat: Any, yhat_lower: Any, yhat_upper: Any,
    yhat_model: Any = None, override_id: int | None = None,
) -> str:
    """One forecast row of the /v1/forecast answer, encoded: ``yhat`` is the final number,
    ``yhat_model`` the model's (the same unless a person's override applies: ``override_id``)."""
    return json.dumps(
        {
            "series_id": series_id,
            "ds": ds,
            "origin": origin,
            "yhat": finite_or_none(yhat),
            "yhat_lower": finite_or_none(yhat_lower),
            "yhat_upper": finite_or_none(yhat_upper),
            "yhat_model": finite_or_none(yhat if override_id is None else yhat_model),
            "override_id": override_id,
        },
        separators=COMPACT,
    )


def _mlflow_default(value: Any) -> Any:
    """What MLflow's NumpyEncoder does with values the json module cannot encode."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.datetime64):
        return np.datetime_as_string(value)
    if isinstance(value, dt.date | dt.datetime | dt.time):  # pandas Timestamp included
        return value.isoformat()
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def mlflow_record_json(record: Mapping[str, Any]) -> str:
    """One record of an MLflow scoring-server ``{"predictions": [...]}`` answer."""
    return json.dumps(dict(record), default=_mlflow_default)


def mlflow_predictions_json(records_json: list[str]) -> bytes:
    """The whole MLflow answer from encoded records (same bytes as ``json.dump`` gives)."""
    return ('{"predictions": [' + ", ".join(records_json) + "]}").encode()


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    return value


def features_json(values: Mapping[str, Any]) -> str | None:
    """Feature values of one prediction as JSON text (NaN -> null); None when empty."""
    if not values:
        return None
    return json.dumps({str(k): _plain(v) for k, v in values.items()}, default=str)
