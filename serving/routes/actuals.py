"""POST /v1/actuals: realised sales, upserted by (series_id, ds), committed before the 2xx.

Accepted actuals move each series' forecast origin (``serving.living``, off the request
path). A request is checked whole before anything is written: an unknown series (one
sharing a key value with a known series is a new series, :mod:`serving.cold_start`: its
actuals are kept for its accuracy and have no training origin), a date
that is not the first day of a period, or a period at or before the series' training
origin (the model's history is fixed when it is trained: :mod:`features.origin`), a
period after today, or an
exogenous value the model does not take is a 422 naming the first such row, and nothing is
stored. Realised exogenous values (``values``: the period's real promotion, price) replace
the plan when the series' origin rolls over that period.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends

from features.origin import is_period_start
from serving.body import json_body, request_body_openapi
from serving.champion import Champion
from serving.cold_start import find_siblings
from serving.deps import ApiKeyRequired, ChampionDep, LivingDep, SettingsDep, StoreDep
from serving.errors import ApiError
from serving.forecast_table import FREQ_NAMES
from serving.key_index import key_index
from serving.schemas import ActualIn, ActualsRequest, ActualsResponse, error_responses
from serving.store import Actual

router = APIRouter(tags=["actuals"])
ActualsBody = Annotated[ActualsRequest, Depends(json_body(ActualsRequest))]
EXAMPLES = {"one week": {"summary": "Realised sales of two series in one week", "value": {
    "actuals": [{"series_id": "S01|grocery", "ds": "2024-07-15", "y": 1480.0},
                {"series_id": "S02|garden", "ds": "2024-07-15", "y": 312.5,
                 "values": {"promo": 1, "price": 9.5}}]}}}


@router.post(
    "/v1/actuals",
    response_model=ActualsResponse,
    dependencies=[ApiKeyRequired],
    responses=error_responses(401, 413, 415, 422, 503),
    openapi_extra=request_body_openapi(ActualsRequest, EXAMPLES),
    summary="Record realised sales (idempotent); they move the forecast origins",
)
def post_actuals(
    payload: ActualsBody, store: StoreDep, settings: SettingsDep, champion: ChampionDep,
    living: LivingDep,
) -> ActualsResponse:
    """Sending the same (series_id, ds) again replaces its value (the last one wins) and
    recomputes that series' forecast. Each series' forecast then starts after its newest
    complete period: see GET /v1/origins.
    """
    if len(payload.actuals) > settings.max_rows:
        raise ApiError(413, "too_many_rows", f"{len(payload.actuals)} actuals exceed the limit "
                       f"of {settings.max_rows} rows per request", "actuals")
    check_actuals(payload.actuals, champion)
    stored = store.upsert_actuals(Actual(a.series_id, a.ds, a.y, a.values)
                                  for a in payload.actuals)
    living.notify({a.series_id for a in payload.actuals})
    return ActualsResponse(received=len(payload.actuals), stored=stored)


def check_actuals(actuals: Sequence[ActualIn], champion: Champion) -> None:
    """422 for the first actual the champion cannot take (see the module docstring)."""
    freq, trained = champion.metadata.freq, champion.trained_origins
    today = datetime.now(UTC).date() + timedelta(days=1)  # any time zone's today
    for i, actual in enumerate(actuals):
        where = f"actuals[{i}]"
        known = actual.series_id in trained
        if not known and find_siblings(actual.series_id, key_index(champion)) is None:
            raise ApiError(422, "unknown_series", f"{where}: unknown series "
                           f"{actual.series_id!r}: the model was not trained on it; nothing "
                           "was stored", f"{where}.series_id")
        if not is_period_start(actual.ds, freq):
            raise ApiError(422, "not_a_period", f"{where}: {actual.ds} is not the first day "
                           f"of a {FREQ_NAMES[freq]} period (weeks start on Monday, months "
                           "on the 1st); nothing was stored", f"{where}.ds")
        unknown = sorted(set(actual.values or {}) - champion.exog_columns)
        if unknown:
            raise ApiError(422, "unknown_exog", f"{where}: this model takes no {unknown[0]!r}; "
                           f"exogenous values it accepts: {sorted(champion.exog_columns)}; "
                           "nothing was stored", f"{where}.values.{unknown[0]}")
        if actual.ds > today:
            raise ApiError(422, "in_the_future", f"{where}: {actual.ds} is after today "
                           f"({today}): actuals are realised sales; nothing was stored",
                           f"{where}.ds")
        if not known:  # a new series (serving.cold_start): kept for its accuracy
            continue
        origin = trained[actual.series_id]
        if actual.ds <= origin:
            raise ApiError(422, "before_origin", f"{where}: {actual.ds} is not after the "
                           f"training origin {origin} of {actual.series_id!r}: the model's "
                           "history is fixed; nothing was stored", f"{where}.ds")
