"""POST /v1/forecast: the champion's forecast for series and a horizon, or explicit rows."""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from starlette.concurrency import run_in_threadpool

from serving.body import request_body_openapi, require_json, validate_json_body
from serving.champion import Champion
from serving.cold_start import cold_starts, siblings_of, with_cold_entries, without_cold
from serving.deps import ChampionDep, LivingDep, SettingsDep, request_id_for
from serving.explain import explanations, with_drivers
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
from serving.routes.level import answer_level, log_cold_start
from serving.routes.overrides import log_final_answer
from serving.rows_batch import RowsBatch, plan_rows_batch, read_rows_batch
from serving.schemas import (
    ForecastRequest,
    ForecastResponse,
    LevelForecastResponse,
    error_responses,
)

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
    "level": {
        "summary": "The roll-up of a store (all its categories), 4 periods ahead",
        "value": {"level": {"store": "S01"}, "horizon": 4},
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


async def forecast_payload(request: Request) -> ForecastRequest | RowsBatch:
    """The body: the batch shape read fast (serving.rows_batch), any other by pydantic."""
    require_json(request.headers.get("content-type"))
    raw = await request.body()
    return read_rows_batch(raw) or validate_json_body(ForecastRequest, raw)


ForecastBody = Annotated[ForecastRequest | RowsBatch, Depends(forecast_payload)]


@router.post(
    "/v1/forecast",
    response_model=ForecastResponse | LevelForecastResponse,
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
    """Per row: series_id, ds, origin, yhat, yhat_lower, yhat_upper, yhat_model (the
    model's number) and override_id (a person's override, else null); the model version;
    per series its origin and status (current, incomplete, gap, stale).

    Each series is forecast for the periods after its origin: its newest complete actual.
    Unknown series are listed in ``errors`` (a 404 when no series is known). Without a
    scenario the answer comes from the forecast precomputed for the series' origin;
    scenario rows are predicted by the model. ``as_of`` answers as the forecast was made at
    an earlier date (not logged: it is an audit, not a new forecast).

    ``level`` (e.g. ``{"store": "S01"}``, ``{}`` for the total) answers the sum of every
    series under it with the interval of the sum (serving.hierarchy). A new series whose
    key values are partly known gets its siblings' mean forecast, flagged ``cold_start``
    in ``origins`` (serving.cold_start). ``explain`` adds each row's drivers: ``drivers``,
    ``base``, ``family``, ``method``, with base + contributions = yhat_model (serving.explain).
    """
    request_id = request_id_for(request)
    headers = {"x-request-id": request_id, "x-salescast-worker": WORKER}
    limits = Limits(settings.max_rows, settings.max_horizon)
    if isinstance(payload, RowsBatch):  # known series at forecast dates: the batch path
        plan = plan_rows_batch(payload, champion, limits)
        if plan is not None:
            return await _answer_rows_batch(request, request_id, champion, plan, headers)
        payload = payload.validated()
    if payload.level is not None:  # a roll-up (serving.hierarchy)
        body = await answer_level(payload, request, request_id, champion, living, settings)
        return Response(body, media_type="application/json", headers=headers)
    colds = cold_starts(payload, champion)  # new series (serving.cold_start)
    series_ids = list(dict.fromkeys(requested_series(payload, champion) + siblings_of(colds)))
    if payload.as_of is None:
        state, entries, clock = take_entries(champion, living, series_ids, None)
    else:
        state, entries, clock = await run_in_threadpool(take_entries, champion, living,
                                                        series_ids, payload.as_of)
    entries = with_cold_entries(entries, colds)
    plan = plan_forecast(payload, champion, limits, entries, state)
    # each row's drivers (serving.explain): computed before anything is logged
    explained = (await explanations(plan, champion, payload.explain_top) if payload.explain
                 else {})
    if plan.overrides:
        answer = await _answer_with_model(plan, champion)
    else:
        answer = answer_from_table(plan)
    if payload.as_of is None:  # people's overrides (serving.overrides); logged with them
        known = replace(answer, log_rows=without_cold(answer.log_rows, colds))  # logged apart
        answer = await log_final_answer(request, request_id, champion, known, plan)
    if payload.explain:
        answer = with_drivers(answer, plan, explained)
    body = forecast_body(request_id, champion, answer, plan, clock)
    response = Response(body, media_type="application/json", headers=headers)
    if payload.as_of is None:
        log_cold_start(request, request_id, champion, plan, colds, response)
    return response


async def _answer_rows_batch(request: Request, request_id: str, champion: Champion,
                             plan: ForecastPlan, headers: dict[str, str]) -> Response:
    """The general path's answer of a plan without scenario, cold start or ``as_of``:
    precomputed rows, people's overrides applied, logged."""
    answer = await log_final_answer(request, request_id, champion, answer_from_table(plan),
                                    plan)
    body = forecast_body(request_id, champion, answer, plan, champion.clock)
    return Response(body, media_type="application/json", headers=headers)


async def _answer_with_model(plan: ForecastPlan, champion: Champion) -> Answer:
    if len(plan.overrides) <= INLINE_CELLS:
        return answer_with_scenario(plan, champion)
    return await run_in_threadpool(answer_with_scenario, plan, champion)
