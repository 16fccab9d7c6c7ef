"""POST /v1/forecast: the champion's forecast for series and a horizon, or explicit rows."""

from __future__ import annotations

import os
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from starlette.concurrency import run_in_threadpool

from serving.body import json_body, request_body_openapi
from serving.champion import Champion
from serving.deps import ChampionDep, LivingDep, SettingsDep, log_predictions, request_id_for
from serving.forecasting import (
    Answer,
    ForecastPlan,
    Limits,
    answer_from_table,
    answer_with_scenario,
    forecast_body,
    plan_forecast,
    requested_series,
    take_entries,
)
from serving.schemas import ForecastRequest, ForecastResponse, error_responses

router = APIRouter(tags=["forecast"])

OPENAPI_EXAMPLES = {
    "one series": {
        "summary": "One series by id, 8 periods ahead",
        "value": {"series": [{"series_id": "S01|grocery"}], "horizon": 8},
    },
    "by keys": {
        "summary": "Series by key values, the model's whole horizon",
        "value": {"series": [{"keys": {"store": "S01", "category": "grocery"}},
                             {"series_id": "S02|toys"}]},
    },
    "rows": {
        "summary": "Explicit (series_id, ds) rows",
        "value": {"rows": [{"series_id": "S01|grocery", "ds": "2025-01-06"},
                           {"series_id": "S02|toys", "ds": "2025-01-13"}]},
    },
    "scenario": {
        "summary": "What if: price 9.5 everywhere, a promotion in one week",
        "value": {
            "series": [{"series_id": "S01|grocery"}],
            "horizon": 4,
            "scenario": [
                {"values": {"price": 9.5}},
                {"series_id": "S01|grocery", "ds": "2025-01-13", "values": {"promo": 1}},
            ],
        },
    },
}


# Scenario cells up to this many are predicted on the event loop: a few milliseconds of
# CPU-bound work that a thread hand-off (and GIL contention between threads) made 2x slower.
INLINE_CELLS = 64
WORKER = str(os.getpid())  # which API worker answered (several share a port)
ForecastBody = Annotated[ForecastRequest, Depends(json_body(ForecastRequest))]


@router.post(
    "/v1/forecast",
    response_model=ForecastResponse,
    responses=error_responses(404, 413, 415, 422, 503),
    openapi_extra=request_body_openapi(ForecastRequest, OPENAPI_EXAMPLES),
    summary="Forecast series (with an optional what-if scenario)",
)
async def forecast(
    payload: ForecastBody,
    request: Request,
    champion: ChampionDep,
    living: LivingDep,
    settings: SettingsDep,
) -> Response:
    """Per row: series_id, ds, origin, yhat, yhat_lower, yhat_upper; the model version;
    per series its origin and status (current, incomplete, gap, stale).

    Each series is forecast for the periods after its origin: its newest complete actual.
    Unknown series are listed in ``errors`` (a 404 when no series is known). Without a
    scenario the answer comes from the forecast precomputed for the series' origin;
    scenario rows are predicted by the model. ``as_of`` answers as the forecast was made at
    an earlier date (not logged: it is an audit, not a new forecast).
    """
    request_id = request_id_for(request)
    series_ids = requested_series(payload, champion)
    if payload.as_of is None:
        state, entries, clock = take_entries(champion, living, series_ids, None)
    else:
        state, entries, clock = await run_in_threadpool(take_entries, champion, living,
                                                        series_ids, payload.as_of)
    plan = plan_forecast(payload, champion, Limits(settings.max_rows, settings.max_horizon),
                         entries, state)
    if plan.overrides:
        answer = await _answer_with_model(plan, champion)
    else:
        answer = answer_from_table(plan)
    if payload.as_of is None:
        log_predictions(request, request_id, champion, answer.log_rows, len(plan.cells))
    body = forecast_body(request_id, champion, answer, plan, clock)
    headers = {"x-request-id": request_id, "x-salescast-worker": WORKER}
    return Response(body, media_type="application/json", headers=headers)


async def _answer_with_model(plan: ForecastPlan, champion: Champion) -> Answer:
    if len(plan.overrides) <= INLINE_CELLS:
        return answer_with_scenario(plan, champion)
    return await run_in_threadpool(answer_with_scenario, plan, champion)
