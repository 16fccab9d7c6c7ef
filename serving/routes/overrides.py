"""/v1/overrides: people adjust the forecast of (series, periods), with author and reason.

``POST`` (write key) checks a request whole before anything is written, like
/v1/actuals: an unknown series, key values that name no series, a date that is not the
first day of a period, or a period at or before the series' current origin (its forecast
starts after it) is a 422 naming the field, and nothing is stored. An accepted override
is committed before the 201. ``GET`` lists them (newest first; active ones unless
``include_revoked``); ``DELETE /v1/overrides/{id}`` (write key) revokes one: the row is
kept with who and when. The rules (newest wins, survives champion swaps, the interval)
are in :mod:`serving.overrides`; how an answer shows them in
:mod:`serving.override_answers`.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from starlette.concurrency import run_in_threadpool

from features.origin import is_period_start, periods_between, shift
from serving.body import json_body, request_body_openapi
from serving.champion import Champion
from serving.deps import ApiKeyRequired, ChampionDep, StoreDep, log_predictions
from serving.errors import ApiError
from serving.forecast_table import FREQ_NAMES
from serving.forecasting import Answer, ForecastPlan
from serving.override_answers import apply_overrides
from serving.override_schemas import (
    AUTHOR_PATTERN,
    MAX_PERIODS,
    OverrideList,
    OverrideOut,
    OverrideRequest,
)
from serving.overrides import (
    Cells,
    NewOverride,
    OverrideBook,
    get_override,
    insert_override,
    list_overrides,
    revoke_override,
)
from serving.schemas import error_responses

router = APIRouter(tags=["overrides"])
OverrideBody = Annotated[OverrideRequest, Depends(json_body(OverrideRequest))]
EXAMPLES = {
    "percent": {"summary": "+20 % in two weeks: a customer's order", "value": {
        "series_id": "S01|grocery", "ds": ["2024-07-15", "2024-07-22"], "pct_change": 20,
        "author": "maria.lopez", "reason": "customer_order", "note": "ACME order confirmed"}},
    "value": {"summary": "A new number for a range of weeks, series by keys", "value": {
        "keys": {"store": "S02", "category": "garden"}, "ds_from": "2024-07-15",
        "ds_to": "2024-08-05", "value": 250.0, "author": "li.wei", "reason": "supply"}},
}


async def get_override_book(request: Request) -> OverrideBook:
    book = getattr(request.app.state, "overrides", None)
    if book is None:
        raise ApiError(503, "not_ready", "the prediction store is not open")
    return book


BookDep = Annotated[OverrideBook, Depends(get_override_book)]
RevokedBy = Annotated[str, Query(min_length=1, max_length=255, pattern=AUTHOR_PATTERN,
                                 description="Who revokes it (kept on the row).")]


@router.post(
    "/v1/overrides", status_code=201, response_model=OverrideOut,
    dependencies=[ApiKeyRequired], responses=error_responses(401, 413, 415, 422, 503),
    openapi_extra=request_body_openapi(OverrideRequest, EXAMPLES),
    summary="Override the forecast of a series in some periods (author and reason)",
)
def post_override(payload: OverrideBody, store: StoreDep, champion: ChampionDep,
                  book: BookDep) -> OverrideOut:
    """Served by /v1/forecast as ``yhat`` (the model's number beside it as ``yhat_model``,
    ``override_id`` this id) from now on, by every worker within a second; kept across
    champion swaps. The newest override of a cell wins."""
    stored = insert_override(store, check_override(payload, champion))
    book.refresh(force=True)
    return OverrideOut.of(stored)


@router.get("/v1/overrides", response_model=OverrideList, responses=error_responses(422, 503),
            summary="The overrides, newest first")
def get_overrides(
    store: StoreDep, series_id: str | None = None, include_revoked: bool = False,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> OverrideList:
    rows = list_overrides(store, series_id, active_only=not include_revoked, limit=limit)
    return OverrideList(overrides=[OverrideOut.of(o) for o in rows])


# Ids are 64-bit integers in every store: a larger number is a 422, not a database error.
OverrideId = Annotated[int, Path(ge=1, le=2**63 - 1)]


@router.delete(
    "/v1/overrides/{override_id}", response_model=OverrideOut, dependencies=[ApiKeyRequired],
    responses=error_responses(401, 404, 409, 422, 503), summary="Revoke an override (kept)",
)
def delete_override(override_id: OverrideId, revoked_by: RevokedBy, store: StoreDep,
                    book: BookDep) -> OverrideOut:
    """The cells go back to the model's number (or to an older active override)."""
    if not revoke_override(store, override_id, revoked_by):
        found = get_override(store, override_id)
        if found is None:
            raise ApiError(404, "unknown_override", f"no override {override_id}", "override_id")
        raise ApiError(409, "already_revoked", f"override {override_id} was revoked by "
                       f"{found.revoked_by!r} at {found.revoked_at:%Y-%m-%d %H:%M:%S} UTC",
                       "override_id")
    book.refresh(force=True)
    found = get_override(store, override_id)
    assert found is not None
    return OverrideOut.of(found)


def _series_of(payload: OverrideRequest, champion: Champion) -> str:
    if payload.keys is not None:
        try:
            series_id = champion.series_id_for(payload.keys)
        except KeyError as exc:
            raise ApiError(422, "invalid_keys", f"{exc.args[0]}; nothing was stored",
                           "keys") from None
    else:
        series_id = payload.series_id or ""
    if series_id not in champion.series_ids:
        where = "keys" if payload.keys is not None else "series_id"
        raise ApiError(422, "unknown_series", f"unknown series {series_id!r}: the model was "
                       "not trained on it; nothing was stored", where)
    return series_id


def _check_period(ds: date, where: str, freq: str, origin: date, series_id: str) -> None:
    if not is_period_start(ds, freq):
        raise ApiError(422, "not_a_period", f"{where}: {ds} is not the first day of a "
                       f"{FREQ_NAMES[freq]} period (weeks start on Monday, months on the "
                       "1st); nothing was stored", where)
    if ds <= origin:
        raise ApiError(422, "before_origin", f"{where}: {ds} is not after the origin "
                       f"{origin} of {series_id!r} (its forecast starts after it); nothing "
                       "was stored", where)


def _periods(payload: OverrideRequest, freq: str, origin: date, series_id: str
             ) -> tuple[date, ...]:
    if payload.ds is not None:
        for i, ds in enumerate(payload.ds):
            _check_period(ds, f"ds[{i}]", freq, origin, series_id)
        return tuple(sorted(set(payload.ds)))
    first, last = payload.ds_from, payload.ds_to
    assert first is not None and last is not None
    _check_period(first, "ds_from", freq, origin, series_id)
    _check_period(last, "ds_to", freq, origin, series_id)
    count = periods_between(first, last, freq) + 1
    if count > MAX_PERIODS:
        raise ApiError(422, "too_many_periods", f"{count} periods from {first} to {last}: at "
                       f"most {MAX_PERIODS} per override; nothing was stored", "ds_to")
    return tuple(shift(first, k, freq) for k in range(count))


def check_override(payload: OverrideRequest, champion: Champion) -> NewOverride:
    """The override to store, or a 422 naming the first field at fault."""
    series_id = _series_of(payload, champion)
    _, entries = champion.take([series_id])
    origin = entries[series_id].origin.origin
    periods = _periods(payload, champion.metadata.freq, origin, series_id)
    return NewOverride(series_id, periods, payload.value, payload.pct_change,
                       payload.author, payload.reason, payload.note)


async def active_overrides(request: Request, series_ids: Iterable[str]) -> Cells:
    """This worker's active overrides of ``series_ids``, the store checked when due (off
    the event loop); empty when the app has no store."""
    book: OverrideBook | None = getattr(request.app.state, "overrides", None)
    if book is None:
        return {}
    if book.due:
        await run_in_threadpool(book.refresh)
    return book.of(series_ids)


async def log_final_answer(request: Request, request_id: str, champion: Champion,
                           answer: Answer, plan: ForecastPlan) -> Answer:
    """The answer with this worker's active overrides applied, handed to the prediction
    log (overridden cells per cell, with the model's and the final number)."""
    final = apply_overrides(answer, plan, await active_overrides(request, plan.entries))
    if not final.overridden:
        log_predictions(request, request_id, champion, answer.log_rows, len(plan.cells))
        return answer
    if final.n_rest:
        log_predictions(request, request_id, champion, final.answer.log_rows, final.n_rest)
    log_predictions(request, request_id, champion, final.overridden, len(final.overridden))
    return final.answer
