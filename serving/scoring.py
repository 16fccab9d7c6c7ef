"""MLflow scoring-server compatibility: the ``/invocations`` protocol.

Input: JSON ``{"dataframe_split": {"columns", "data", "index"?}}`` or
``{"dataframe_records": [{...}, ...]}``, with optional ``params`` passed to the model as
MLflow does (e.g. ``{"level": 0.9}`` for another interval), or ``text/csv``. Output:
``{"predictions": [records]}`` encoded as MLflow encodes it. Rows holding only series_id
and ds (and no params) are looked up in the precomputed forecast; the others go to the
model.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import pandas as pd

from serving.champion import Champion
from serving.encoding import features_json, mlflow_predictions_json, mlflow_record_json
from serving.errors import ApiError
from serving.forecast_table import Cell, Snapshot, feature_records
from serving.prediction_log import LogRow

FRAME_FORMATS = ("dataframe_split", "dataframe_records")
OTHER_FORMATS = ("inputs", "instances")
ID_COLUMNS = ("series_id", "ds")


@dataclass(frozen=True)
class ScoringInput:
    """The request's frame, row-major, without pandas."""

    columns: list[str]
    rows: list[list[Any]]
    params: dict[str, Any] | None = None


def parse_scoring_body(body: bytes, content_type: str | None) -> ScoringInput:
    """Decode an /invocations body (JSON or CSV) into columns and rows."""
    mime = (content_type or "application/json").split(";")[0].strip().lower()
    if mime == "text/csv":
        try:
            frame = pd.read_csv(io.BytesIO(body))
        except ValueError as exc:  # empty, ragged or not UTF-8 (pandas' errors are ValueErrors)
            raise ApiError(422, "invalid_csv", f"the body is not a readable CSV: {exc}") from None
        return ScoringInput(list(map(str, frame.columns)), frame.to_numpy().tolist())
    if mime != "application/json":
        raise ApiError(415, "unsupported_media_type", f"content type {mime!r}: use "
                       "application/json (dataframe_split / dataframe_records) or text/csv")
    try:
        payload = json.loads(body)
    except ValueError as exc:
        raise ApiError(422, "invalid_json", f"the body is not valid JSON: {exc}") from None
    return _from_payload(payload)


def _from_payload(payload: Any) -> ScoringInput:
    formats = [key for key in (*FRAME_FORMATS, *OTHER_FORMATS) if isinstance(payload, dict)
               and key in payload]
    if len(formats) != 1 or formats[0] in OTHER_FORMATS:
        raise ApiError(422, "invalid_format", "the body must be a JSON object with exactly one "
                       "of 'dataframe_split' or 'dataframe_records'")
    params = payload.get("params")
    if params is not None and not isinstance(params, dict):
        raise ApiError(422, "invalid_format", "params must be an object", "params")
    if formats[0] == "dataframe_split":
        frame = _from_split(payload["dataframe_split"])
    else:
        frame = _from_records(payload["dataframe_records"])
    return ScoringInput(frame.columns, frame.rows, params or None)


def _from_split(split: Any) -> ScoringInput:
    if not isinstance(split, dict) or not isinstance(split.get("data"), list):
        raise ApiError(422, "invalid_format", "dataframe_split needs 'columns' and 'data' "
                       "(a list of rows)", "dataframe_split")
    columns = [str(c) for c in split.get("columns") or []]
    rows = split["data"]
    if any(not isinstance(r, list) or len(r) != len(columns) for r in rows):
        raise ApiError(422, "invalid_format", f"every row of data needs {len(columns)} values "
                       f"({columns})", "dataframe_split.data")
    return ScoringInput(columns, rows)


def _from_records(records: Any) -> ScoringInput:
    if not isinstance(records, list) or any(not isinstance(r, dict) for r in records):
        raise ApiError(422, "invalid_format", "dataframe_records must be a list of objects",
                       "dataframe_records")
    columns = list(dict.fromkeys(key for record in records for key in record))
    return ScoringInput(columns, [[record.get(c) for c in columns] for record in records])


def check_frame(frame: ScoringInput, champion: Champion, max_rows: int) -> None:
    """Row limit, required and accepted columns, known series (404 otherwise)."""
    if len(frame.rows) > max_rows:
        raise ApiError(413, "too_many_rows", f"{len(frame.rows)} rows exceed the limit of "
                       f"{max_rows} rows per request", "data")
    missing = [c for c in ID_COLUMNS if c not in frame.columns]
    if missing:
        raise ApiError(422, "missing_column", f"column {missing[0]!r} is required", missing[0])
    extra = sorted(set(frame.columns) - set(ID_COLUMNS) - champion.exog_columns)
    if extra:
        raise ApiError(422, "unknown_column", f"column {extra[0]!r} is not a model input; "
                       f"accepted: series_id, ds, {sorted(champion.exog_columns)}", extra[0])
    position = frame.columns.index("series_id")
    unknown = sorted({str(r[position]) for r in frame.rows} - champion.series_ids)
    if unknown:
        raise ApiError(404, "unknown_series", f"unknown series {unknown[:10]}: the model was "
                       "not trained on them", "series_id")


def normalize_dates(frame: ScoringInput) -> None:
    """Each row's ``ds`` as an ISO date, in place: a timestamp names its day (``T12:00``
    included, as pandas and JSON clients send them); anything else is a 422 naming the row."""
    position = frame.columns.index("ds")
    for i, row in enumerate(frame.rows):
        value = row[position]
        try:
            row[position] = datetime.fromisoformat(value).date().isoformat()
        except (TypeError, ValueError):
            raise ApiError(422, "invalid_date", f"row {i}: ds must be an ISO date such as "
                           f"2025-01-06, not {value!r}", "ds") from None


SCORING_PARAMS = ("level", "as_of")


def scoring_params(params: dict[str, Any] | None) -> tuple[dict[str, Any], date | None]:
    """The checked params: ``level`` (a number strictly between 0 and 1) for the model, and
    ``as_of`` (a date); any other name is a 422 listing the accepted ones."""
    params = dict(params or {})
    unknown = sorted(set(params) - set(SCORING_PARAMS))
    if unknown:
        raise ApiError(422, "invalid_param", f"unknown param {unknown[0]!r}; accepted: "
                       f"{', '.join(SCORING_PARAMS)}", f"params.{unknown[0]}")
    as_of = as_of_param(params)
    params.pop("as_of", None)
    level = params.get("level")
    if level is not None and (isinstance(level, bool) or not isinstance(level, int | float)
                              or not 0 < level < 1):
        raise ApiError(422, "invalid_param", f"level must be a number strictly between 0 and "
                       f"1 (e.g. 0.9 for a 90 % interval), not {level!r}", "params.level")
    return params, as_of


def series_of(frame: ScoringInput) -> list[str]:
    position = frame.columns.index("series_id")
    return list(dict.fromkeys(str(r[position]) for r in frame.rows))


def as_of_param(params: dict[str, Any]) -> date | None:
    """The ``as_of`` param as a date (422 when it is not an ISO date)."""
    value = params.get("as_of")
    if value is None:
        return None
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError:
        raise ApiError(422, "invalid_param", f"as_of must be an ISO date, not {value!r}",
                       "params.as_of") from None


def table_cells(frame: ScoringInput, entries: Snapshot,
                params: dict[str, Any]) -> list[Cell] | None:
    """Cells of a series_id + ds frame whose dates are all forecastable, else None."""
    if set(frame.columns) != set(ID_COLUMNS) or params:
        return None
    at_series, at_ds = frame.columns.index("series_id"), frame.columns.index("ds")
    cells: list[Cell] = []
    for row in frame.rows:
        series_id = str(row[at_series])
        step = entries[series_id].step_of_iso.get(_iso_date(row[at_ds]) or "")
        if step is None:
            return None  # let the model judge (and explain) the date
        cells.append((series_id, step))
    return cells


def _iso_date(value: Any) -> str | None:
    """'2024-06-10' for '2024-06-10' or '2024-06-10T00:00:00'; None for other values."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment.date().isoformat() if moment.time() == datetime.min.time() else None


def answer_cells(cells: list[Cell], entries: Snapshot) -> bytes:
    """MLflow answer for precomputed cells."""
    return mlflow_predictions_json([entries[s].points[step].mlflow_json for s, step in cells])


def answer_with_model(frame: ScoringInput, champion: Champion, params: dict[str, Any],
                      state: Any) -> tuple[bytes, list[LogRow]]:
    """MLflow answer from the model itself (rows with exogenous values, or odd dates)."""
    data = pd.DataFrame(frame.rows, columns=frame.columns)
    try:
        forecast, features = champion.predict(data, params or None, state=state)
    except (ValueError, TypeError) as exc:
        raise ApiError(422, "model_rejected_input", str(exc)) from exc
    records = forecast.to_dict(orient="records")
    body = mlflow_predictions_json([mlflow_record_json(r) for r in records])
    return body, _log_rows(forecast, features, data)


def _log_rows(
    forecast: pd.DataFrame, features: pd.DataFrame | list[dict] | None, data: pd.DataFrame
) -> list[LogRow]:
    used = feature_records(features if features is not None and len(features) == len(forecast)
                           else data, len(forecast))
    iso = pd.to_datetime(forecast["ds"]).dt.strftime("%Y-%m-%d")
    origins = forecast["origin"] if "origin" in forecast else [None] * len(forecast)
    return [
        (str(s), ds, float(y), float(lo), float(hi), features_json(u), origin)
        for s, ds, y, lo, hi, u, origin in zip(
            forecast["series_id"], iso, forecast["yhat"], forecast["yhat_lower"],
            forecast["yhat_upper"], used, origins, strict=True,
        )
    ]
