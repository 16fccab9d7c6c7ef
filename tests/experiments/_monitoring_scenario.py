"""A served champion before and after the simulator's regime shift, for the monitoring tests.

The champion is trained on sales up to ``TRAINED_UNTIL`` (a tiny spec, the simulator
shifts the market on ``SHIFT_AT``). :func:`serve_weeks` plays the API: for each week it
logs the champion's forecast of every series (4 weeks ahead, as a forecast made at the
origin) with the feature row it used, and posts the realised sales as actuals. The
feature rows come from the leakage-free training set of the full (shifted) data, so the
weeks after the shift carry the shifted prices, promotions and customer mix.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import pandas as pd

from serving.store import Actual, PredictionStore

SHIFT_AT = "2023-07-03"  # week 78 of the simulation
TRAINED_UNTIL = "2023-05-07"  # eight weeks before the shift (a Sunday)
PERIODS = 96
SIMULATOR = {"seed": 11, "stores": 3, "categories": 3, "customers": 1000, "lines_per_day": 360.0,
             "periods": PERIODS,
             "shift_at": SHIFT_AT}
BEFORE = pd.date_range("2023-05-08", periods=8, freq="7D")  # served before the shift
AFTER = pd.date_range("2023-08-07", periods=8, freq="7D")  # 5..12 weeks after it


def forecast_rows(model: Any, panel: pd.DataFrame, weeks: pd.DatetimeIndex) -> pd.DataFrame:
    """The champion's forecast (with its conformal interval) of ``weeks`` from their
    feature rows; each block of 4 weeks counts as steps 1..4 of one forecast."""
    forecaster = model.forecaster
    rows = panel[panel["ds"].isin(weeks)].sort_values(["series_id", "ds"]).reset_index(drop=True)
    design, scale = forecaster._design(rows)  # the fitted model on given feature rows
    yhat = forecaster._decode(forecaster.model_.predict(design), scale)
    frame = rows[["series_id", "ds"]].assign(yhat=yhat)
    frame = frame.assign(step=(weeks.get_indexer(frame["ds"]) % 4) + 1)
    frame = forecaster.conformal_.apply(frame, float(model.metadata["level"]))
    return rows.assign(yhat=frame["yhat"], yhat_lower=frame["yhat_lower"],
                       yhat_upper=frame["yhat_upper"])


def serve_weeks(store: PredictionStore, model: Any, panel: pd.DataFrame,
                weeks: pd.DatetimeIndex, version: str, logged_at: datetime) -> None:
    """Log the forecasts of ``weeks`` (created one hour apart up to ``logged_at``) and
    post their actuals."""
    served = forecast_rows(model, panel, weeks)
    columns = [c for c in model.metadata["feature_columns"] if c in served.columns]
    rows = []
    for i, row in enumerate(served.itertuples(index=False)):
        created = logged_at - timedelta(hours=len(served) - i)
        features = json.dumps({c: _plain(getattr(row, c)) for c in columns})
        rows.append((f"req-{version}-{i}", created, model.metadata["spec_name"], version,
                     row.series_id, row.ds.date().isoformat(), float(row.yhat),
                     float(row.yhat_lower), float(row.yhat_upper), features, None))
    store.write_predictions(rows)
    store.upsert_actuals(Actual(r.series_id, r.ds.date(), float(r.y))
                         for r in served.itertuples(index=False))


def _plain(value: Any) -> Any:
    if isinstance(value, str):
        return value
    return None if pd.isna(value) else float(value)
