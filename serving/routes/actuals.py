"""POST /v1/actuals: realised sales, upserted by (series_id, ds), committed before the 2xx."""

from __future__ import annotations

from fastapi import APIRouter

from serving.deps import ApiKeyRequired, SettingsDep, StoreDep
from serving.errors import ApiError
from serving.schemas import ActualsRequest, ActualsResponse, error_responses
from serving.store import Actual

router = APIRouter(tags=["actuals"])


@router.post(
    "/v1/actuals",
    response_model=ActualsResponse,
    dependencies=[ApiKeyRequired],
    responses=error_responses(401, 413, 422, 503),
    summary="Record realised sales (idempotent)",
)
def post_actuals(
    payload: ActualsRequest, store: StoreDep, settings: SettingsDep
) -> ActualsResponse:
    """Sending the same (series_id, ds) again replaces its value; the last one wins.

    Actuals of series the model does not know are kept too (new stores, say): the
    monitoring report matches them with predictions when there are any.
    """
    if len(payload.actuals) > settings.max_rows:
        raise ApiError(413, "too_many_rows", f"{len(payload.actuals)} actuals exceed the limit "
                       f"of {settings.max_rows} rows per request", "actuals")
    stored = store.upsert_actuals(Actual(a.series_id, a.ds, a.y) for a in payload.actuals)
    return ActualsResponse(received=len(payload.actuals), stored=stored)
