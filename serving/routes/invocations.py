"""MLflow scoring-server compatible endpoints: POST /invocations, GET /ping, /health, /version.

An MLflow client (``ScoringServerClient``, ``mlflow models predict`` style payloads) works
against this API unchanged.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import PlainTextResponse
from starlette.concurrency import run_in_threadpool

from serving.deps import ChampionDep, LivingDep, SettingsDep, log_predictions, request_id_for
from serving.forecast_table import log_rows
from serving.forecasting import take_entries
from serving.schemas import InvocationsResponse, error_responses, json_error_responses
from serving.scoring import (
    answer_cells,
    answer_with_model,
    check_frame,
    normalize_dates,
    parse_scoring_body,
    scoring_params,
    series_of,
    table_cells,
)

router = APIRouter(tags=["mlflow compatible"])

_SPLIT_EXAMPLE = {"dataframe_split": {"columns": ["series_id", "ds"],
                                      "data": [["S01|grocery", "2025-01-06"]]}}
_RECORDS_EXAMPLE = {"dataframe_records": [{"series_id": "S01|grocery", "ds": "2025-01-06",
                                           "promo": 1.0}]}
INVOCATIONS_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "dataframe_split": {"type": "object", "properties": {
                            "columns": {"type": "array", "items": {"type": "string"}},
                            "data": {"type": "array", "items": {"type": "array", "items": {}}},
                            "index": {"type": "array", "items": {}}}},
                        "dataframe_records": {"type": "array", "items": {"type": "object"}},
                        "params": {"type": "object", "properties": {
                            "level": {"type": "number", "exclusiveMinimum": 0,
                                      "exclusiveMaximum": 1},
                            "as_of": {"type": "string", "format": "date"}},
                            "additionalProperties": False},
                    },
                    "oneOf": [{"required": ["dataframe_split"]},
                              {"required": ["dataframe_records"]}],
                },
                "examples": {
                    "split": {"summary": "dataframe_split", "value": _SPLIT_EXAMPLE},
                    "records": {"summary": "dataframe_records, with a promo",
                                "value": _RECORDS_EXAMPLE},
                },
            },
            "text/csv": {"schema": {"type": "string"},
                         "example": "series_id,ds\nS01|C1,2025-01-06\n"},
        },
    }
}


@router.post(
    "/invocations",
    response_model=InvocationsResponse,
    responses=error_responses(404, 413, 415, 422, 503),
    openapi_extra=INVOCATIONS_BODY,
    summary="Score rows like `mlflow models serve`",
)
async def invocations(request: Request, champion: ChampionDep, living: LivingDep,
                      settings: SettingsDep) -> Response:
    """MLflow's scoring protocol: a frame of series_id, ds (+ exogenous) -> predictions,
    each row with the ``origin`` it was made from (params: ``level``, ``as_of``)."""
    frame = parse_scoring_body(await request.body(), request.headers.get("content-type"))
    check_frame(frame, champion, settings.max_rows)
    normalize_dates(frame)
    params, as_of = scoring_params(frame.params)
    if as_of is None:
        state, entries, _ = take_entries(champion, living, series_of(frame), None)
    else:
        state, entries, _ = await run_in_threadpool(take_entries, champion, living,
                                                    series_of(frame), as_of)
    cells = table_cells(frame, entries, params)
    if cells is not None:
        body, rows = answer_cells(cells, entries), log_rows(entries, cells)
    else:
        body, rows = await run_in_threadpool(answer_with_model, frame, champion, params, state)
    if as_of is None:
        log_predictions(request, request_id_for(request), champion, rows, len(frame.rows))
    return Response(body, media_type="application/json")


@router.get("/ping", summary="MLflow health check (200 when a model is loaded)",
            response_class=PlainTextResponse, responses=json_error_responses(503))
@router.get("/health", summary="MLflow health check (200 when a model is loaded)",
            response_class=PlainTextResponse, responses=json_error_responses(503))
def ping(champion: ChampionDep) -> PlainTextResponse:
    """A newline, as MLflow's scoring server answers, declared and sent as text."""
    return PlainTextResponse("\n")


@router.get("/version", summary="MLflow version (as the MLflow scoring server answers)",
            response_class=PlainTextResponse)
def version() -> PlainTextResponse:
    from mlflow.version import VERSION

    return PlainTextResponse(VERSION)
