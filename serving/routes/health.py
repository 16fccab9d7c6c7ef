"""Operations: GET /healthz (process up), /readyz (champion loaded), /metrics (Prometheus)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST

from serving.deps import MetricsDep
from serving.errors import ApiError
from serving.routes.model import model_ref_out
from serving.schemas import HealthStatus, ReadyStatus, error_responses

router = APIRouter(tags=["operations"])


@router.get("/healthz", response_model=HealthStatus, summary="Liveness: the process answers")
def healthz() -> HealthStatus:
    return HealthStatus(status="ok")


@router.get("/readyz", response_model=ReadyStatus, responses=error_responses(503),
            summary="Readiness: a champion is loaded (503 otherwise)")
def readyz(request: Request) -> ReadyStatus:
    manager = request.app.state.champions
    champion = manager.current if manager is not None else None
    if champion is None:
        reason = manager.last_error if manager is not None else None
        raise ApiError(503, "not_ready", f"no champion loaded ({reason or 'starting'})")
    return ReadyStatus(status="ready", model=model_ref_out(champion.ref))


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
def metrics(request: Request, serving_metrics: MetricsDep) -> Response:
    prediction_log = request.app.state.prediction_log
    if prediction_log is not None:
        serving_metrics.predictions_dropped.set(prediction_log.dropped)
    return Response(serving_metrics.render(), media_type=CONTENT_TYPE_LATEST)
