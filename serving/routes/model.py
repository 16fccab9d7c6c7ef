"""GET /v1/model (the champion being served) and POST /v1/model/reload (admin)."""

from __future__ import annotations

from fastapi import APIRouter

from serving.champion import Champion, ModelRef
from serving.deps import ApiKeyRequired, ChampionDep, LivingDep, ManagerDep
from serving.errors import ApiError
from serving.registry import RegistryUnavailable, redact
from serving.schemas import (
    ModelInfo,
    ModelRefOut,
    OriginsResponse,
    ReloadResponse,
    SeriesOriginState,
    error_responses,
)

router = APIRouter(tags=["model"])


def model_ref_out(ref: ModelRef) -> ModelRefOut:
    return ModelRefOut(name=ref.name, version=ref.version, run_id=ref.run_id)


def model_info(champion: Champion) -> ModelInfo:
    ref, meta = champion.ref, champion.metadata
    return ModelInfo(
        name=ref.name, version=ref.version, run_id=ref.run_id, alias=ref.alias,
        source=ref.source, loaded_at=ref.loaded_at, family=meta.family, freq=meta.freq,
        horizon=meta.horizon, last_ds=meta.last_ds, newest_origin=champion.clock,
        level=meta.level, keys=meta.keys, exog_columns=meta.exog_columns,
        series_ids=sorted(champion.series_ids),
    )


@router.get("/v1/model", response_model=ModelInfo, responses=error_responses(503),
            summary="The champion being served")
def get_model(champion: ChampionDep) -> ModelInfo:
    return model_info(champion)


@router.get("/v1/origins", response_model=OriginsResponse, responses=error_responses(503),
            summary="Where each series' forecast starts, and why there")
def get_origins(champion: ChampionDep, living: LivingDep) -> OriginsResponse:
    """Per series: its training origin, its origin now (the newest complete period),
    the newest period with an actual, and a status — current, incomplete (the newest
    period is not over), gap (an actual is missing), stale (far behind the others)."""
    origins = living.status(champion)
    counts = dict.fromkeys(("current", "incomplete", "gap", "stale"), 0)
    for origin in origins:
        counts[origin.status] += 1
    series = [SeriesOriginState(series_id=o.series_id, origin=o.origin, status=o.status,
                                detail=o.detail or None, trained=o.trained,
                                newest_actual=o.newest_actual) for o in origins]
    return OriginsResponse(model=model_ref_out(champion.ref), newest_origin=champion.clock,
                           counts=counts, series=series)


@router.post(
    "/v1/model/reload",
    response_model=ReloadResponse,
    dependencies=[ApiKeyRequired],
    responses=error_responses(401, 503),
    summary="Check the alias now and swap in its version",
)
def reload_model(manager: ManagerDep, force: bool = False) -> ReloadResponse:
    """Swaps only when the alias names another version (``force`` reloads anyway).

    The current champion keeps answering until the new one is fully loaded.
    """
    try:
        outcome = manager.refresh(force=force)
    except RegistryUnavailable as exc:
        raise ApiError(503, "registry_unavailable", str(exc)) from exc
    except Exception as exc:
        raise ApiError(503, "reload_failed", redact(f"{type(exc).__name__}: {exc}; ")
                       + "the current champion keeps serving") from exc
    previous = model_ref_out(outcome.previous) if outcome.previous else None
    return ReloadResponse(swapped=outcome.swapped, previous=previous,
                          current=model_ref_out(outcome.current))
