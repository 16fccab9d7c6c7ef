"""FastAPI dependencies: the app's settings, champion, store and log, and the API key check.

Everything lives on ``app.state`` (set by ``create_app`` and its lifespan); routes take
it through the ``Annotated`` aliases below, never from module globals.
"""

from __future__ import annotations

import itertools
import re
import secrets
import uuid
from collections.abc import Iterable
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from serving.champion import Champion, ChampionManager
from serving.errors import ApiError
from serving.living import LivingForecasts
from serving.metrics import ServingMetrics
from serving.prediction_log import LogEntry, LogRow, PredictionLog
from serving.settings import ServingSettings
from serving.store import PredictionStore, utc_now

REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")

api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="The API key.")
bearer_token = HTTPBearer(auto_error=False, description="The API key as a bearer token.")


async def get_settings(request: Request) -> ServingSettings:
    return request.app.state.settings


async def get_metrics(request: Request) -> ServingMetrics:
    return request.app.state.metrics


async def get_manager(request: Request) -> ChampionManager:
    manager = request.app.state.champions
    if manager is None:
        raise ApiError(503, "not_ready", "the service is starting")
    return manager


async def get_champion(request: Request) -> Champion:
    """The champion at the time the request starts; it answers the whole request."""
    manager = request.app.state.champions
    champion = manager.current if manager is not None else None
    if champion is None:
        raise ApiError(503, "model_not_loaded", "no champion is loaded yet; see /readyz")
    return champion


async def get_living(request: Request) -> LivingForecasts:
    living = request.app.state.living
    if living is None:
        raise ApiError(503, "not_ready", "the service is starting")
    return living


async def get_store(request: Request) -> PredictionStore:
    store = request.app.state.store
    if store is None:
        raise ApiError(503, "not_ready", "the prediction store is not open")
    return store


async def require_api_key(
    request: Request,
    header_key: Annotated[str | None, Security(api_key_header)] = None,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(bearer_token)] = None,
) -> None:
    """401 unless the request carries the configured key (X-API-Key or Bearer)."""
    expected = request.app.state.settings.api_key
    if expected is None:
        return
    supplied = header_key or (bearer.credentials if bearer is not None else "")
    if not secrets.compare_digest(supplied.encode(), expected.get_secret_value().encode()):
        message = "a valid API key is required (header X-API-Key or Authorization: Bearer)"
        raise ApiError(401, "unauthorized", message, "X-API-Key",
                       headers={"WWW-Authenticate": "Bearer"})


SettingsDep = Annotated[ServingSettings, Depends(get_settings)]
MetricsDep = Annotated[ServingMetrics, Depends(get_metrics)]
ManagerDep = Annotated[ChampionManager, Depends(get_manager)]
ChampionDep = Annotated[Champion, Depends(get_champion)]
StoreDep = Annotated[PredictionStore, Depends(get_store)]
LivingDep = Annotated[LivingForecasts, Depends(get_living)]
ApiKeyRequired = Depends(require_api_key)


_PROCESS_PREFIX = uuid.uuid4().hex[:20]  # random per process (uuid4 per request is slow here)
_REQUEST_NUMBERS = itertools.count(1)


def request_id_for(request: Request) -> str:
    """The caller's X-Request-ID when it is a sane token, else a fresh unique one."""
    given = request.headers.get("x-request-id")
    if given and REQUEST_ID.match(given):
        return given
    return f"{_PROCESS_PREFIX}{next(_REQUEST_NUMBERS):012x}"


def log_predictions(
    request: Request, request_id: str, champion: Champion, rows: Iterable[LogRow], n_rows: int
) -> None:
    """Hand the answered rows to the prediction log (non-blocking; off when disabled).

    ``rows`` answered from the forecast table (:func:`serving.forecast_table.log_rows`)
    are logged as one compact row per request; ``n_rows`` counts the answered rows."""
    prediction_log: PredictionLog | None = request.app.state.prediction_log
    if prediction_log is not None:
        ref = champion.ref
        prediction_log.submit(LogEntry(request_id, utc_now(), ref.name, ref.version, rows, n_rows))
