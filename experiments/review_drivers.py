"""Why the review's biggest misses were forecast as they were: the model's drivers.

Why it exists: a review names the series behind a month's deviation; the next question is
why the model said what it said. This module asks the model version that made most of the
period's forecasts (``models:/<name>/<version>``) to explain them, as
``/v1/forecast`` with ``explain: true`` would have when the period began.

**Which forecast is explained.** For each of the ``series`` behind the largest deviations:
the model rolled forward with the actuals in the store dated before the period (its
``roll``: the fitted parameters unchanged, the origin moved, as the API does), then asked
for the period's dates that lie within its horizon from that origin. So the explanation
is of the plan the business had at the start of the period — not of every later forecast
of the same dates. Scenario values of the logged requests are not replayed (the planned
calendar and known-future table are used). Each row: ``series_id``, ``ds``, the driver's
``name``, ``value`` and ``contribution``, with ``base`` and the model's ``yhat`` they add
up to (:mod:`training.forecasters.explain`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import date
from typing import Any

import pandas as pd

from features.origin import forecast_dates

log = logging.getLogger(__name__)

DRIVER_SERIES = 3  # the series with the largest absolute error
DRIVERS_PER_CELL = 3
RECORD_COLUMNS = ["series_id", "ds", "name", "value", "contribution", "base", "yhat"]


def made_by(predictions: pd.DataFrame) -> str | None:
    """The model version that made most of these forecast rows (None when none)."""
    versions = predictions["model_version"].dropna().astype(str)
    return None if versions.empty else str(versions.value_counts().idxmax())


def rolled_to(model: Any, actuals: pd.DataFrame, series: Sequence[str],
              before: pd.Timestamp) -> Any:
    """``model`` rolled forward with the ``series``' actuals dated before ``before``."""
    known = actuals[actuals["series_id"].isin(series) & (actuals["ds"] < before)]
    if known.empty:
        return model
    return model.roll(known[["series_id", "ds", "y"]].reset_index(drop=True))


def cells_in_reach(origins: dict[str, str], series: Sequence[str], dates: Sequence[pd.Timestamp],
                   horizon: int, freq: str) -> pd.DataFrame:
    """(series_id, ds) of ``dates`` within ``horizon`` periods after each series' origin
    (:func:`features.origin.forecast_dates`)."""
    wanted = {pd.Timestamp(ds).date(): pd.Timestamp(ds) for ds in dates}
    rows = [(series_id, wanted[ds]) for series_id in series if series_id in origins
            for ds in forecast_dates(date.fromisoformat(origins[series_id]), freq, horizon)
            if ds in wanted]
    return pd.DataFrame(rows, columns=["series_id", "ds"])


def explain_period(model: Any, actuals: pd.DataFrame, series: Sequence[str],
                   dates: Sequence[pd.Timestamp]) -> list[dict[str, Any]]:
    """The drivers of the ``series``' forecasts of ``dates`` (see the module docstring);
    ValueError when the model cannot explain them."""
    rolled = rolled_to(model, actuals, series, min(dates))
    horizon, freq = int(rolled.metadata["horizon"]), str(rolled.metadata["freq"])
    cells = cells_in_reach(rolled.origins(), series, dates, horizon, freq)
    if cells.empty:
        return []
    frame = rolled.explain(cells, {"top": DRIVERS_PER_CELL})
    frame = frame.assign(ds=pd.to_datetime(frame["ds"]).dt.strftime("%Y-%m-%d"))
    return [{k: _plain(v) for k, v in row.items()}
            for row in frame[RECORD_COLUMNS].to_dict("records")]


def _plain(value: Any) -> Any:
    if isinstance(value, float) and value != value:  # NaN: the "other" row has no value
        return None
    return value.item() if hasattr(value, "item") else value


def drivers_section(store: Any, doc: dict[str, Any], model_name: str | None,
                    tracking_uri: str, registry_uri: str | None) -> str | list[dict[str, Any]]:
    """The review's ``drivers``: records of :func:`explain_period` for the top deviation
    series, by the version that forecast them; a sentence saying why when there are none."""
    series = [row["series_id"] for row in doc["deviations"][:DRIVER_SERIES]]
    if model_name is None:
        return "not computed: give --spec (or --model) to name the registered model"
    if not series:
        return "no deviation to explain"
    first, last = pd.Timestamp(doc["period"]["first"]), pd.Timestamp(doc["period"]["last"])
    predictions = store.read_predictions()
    mine = predictions[predictions["series_id"].isin(series)
                       & predictions["ds"].between(first, last)]
    version = made_by(mine)
    if version is None:
        return "no logged forecast names its model version"
    try:
        model = load_version(model_name, version, tracking_uri, registry_uri)
        dates = sorted(pd.Timestamp(d) for d in mine["ds"].unique())
        return explain_period(model, store.read_actuals(), series, dates)
    except Exception as exc:  # a report must not fail on its optional section
        log.warning("drivers not computed: %s", exc)
        return f"not computed: {model_name} v{version} could not explain ({exc})"


def load_version(name: str, version: str, tracking_uri: str, registry_uri: str | None) -> Any:
    """The python model of ``models:/<name>/<version>`` (what the API serves)."""
    import mlflow

    from training.tracking import tracking

    with tracking(tracking_uri, registry_uri):
        return mlflow.pyfunc.load_model(f"models:/{name}/{version}").unwrap_python_model()
