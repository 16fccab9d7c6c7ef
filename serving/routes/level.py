"""The parts of POST /v1/forecast that are not plain series: key levels and new series.

Why it exists: the forecast route stays one screen. A ``level`` request is answered here
(:func:`answer_level`: the members' entries summed by :mod:`serving.hierarchy`), and the
rows of cold-start series (:mod:`serving.cold_start`) are logged apart with their flag
(:func:`log_cold_start`). Both answer from the same entries as a series request, so a
level's total equals the sum of the series' answers given at the same moment.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from fastapi import Request, Response
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from serving.champion import Champion
from serving.cold_start import ColdStart, cold_log_rows
from serving.deps import log_predictions
from serving.error_correlation import CorrelationCache, ErrorCorrelation
from serving.forecast_table import log_rows
from serving.forecasting import (
    ForecastPlan,
    Limits,
    origins_json,
    requested_steps,
    take_entries,
)
from serving.hierarchy import (
    common_dates,
    level_body,
    level_cells,
    level_json,
    level_members,
    roll_up,
)
from serving.key_index import key_index
from serving.living import LivingForecasts
from serving.routes.overrides import active_overrides
from serving.schemas import ForecastRequest
from serving.settings import ServingSettings
from serving.store import PredictionRow, PredictionStore, utc_now

log = logging.getLogger(__name__)


def correlations(request: Request, champion: Champion) -> ErrorCorrelation | None:
    """The champion's backtest error correlation (blocking the first time per version)."""
    state = request.app.state
    cache = getattr(state, "error_correlations", None)
    if cache is None:
        cache = state.error_correlations = CorrelationCache(state.settings.tracking_uri)
    return cache.get(champion)


async def answer_level(payload: ForecastRequest, request: Request, request_id: str,
                       champion: Champion, living: LivingForecasts,
                       settings: ServingSettings) -> bytes:
    """The answer to a ``level`` request (logged as the member cells it sums)."""
    members = level_members(payload.level or {}, key_index(champion))
    steps = requested_steps(payload.horizon, champion,
                            Limits(settings.max_rows, settings.max_horizon))
    state, entries, clock = await run_in_threadpool(take_entries, champion, living, members,
                                                    payload.as_of)
    dates = common_dates(entries, members, steps)
    correlation = await run_in_threadpool(correlations, request, champion)
    points = roll_up(entries, members, dates, correlation,
                     await active_overrides(request, members) if payload.as_of is None else None)
    plan = ForecastPlan(cells=level_cells(entries, members, dates), entries=entries, state=state)
    if payload.as_of is None:
        log_predictions(request, request_id, champion, log_rows(entries, plan.cells),
                        len(plan.cells))
    part = level_json(payload.level or {}, members, points, correlation,
                      champion.metadata.level)
    return level_body(request_id, champion, part, origins_json(plan, champion, clock))


def log_cold_start(request: Request, request_id: str, champion: Champion, plan: ForecastPlan,
                   colds: Mapping[str, ColdStart], response: Response) -> None:
    """Write the answered cold-start rows, flagged, after the response is sent."""
    if not colds or request.app.state.prediction_log is None:
        return
    head = (request_id, utc_now(), champion.ref.name, champion.ref.version)
    rows = cold_log_rows(head, plan, colds)
    if rows:
        response.background = BackgroundTask(_write_cold_start, request.app.state.store, rows)


def _write_cold_start(store: PredictionStore, rows: list[PredictionRow]) -> None:
    try:
        store.write_cold_start(rows)
    except Exception:  # the log must never take the API down
        log.exception("could not log %d cold-start rows", len(rows))
