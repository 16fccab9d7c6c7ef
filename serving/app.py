"""The prediction API: ``create_app(settings) -> FastAPI``.

Nothing happens at import time. The lifespan opens the prediction store and its log
writer, loads ``models:/<name>@<alias>`` (or its local copy when MLflow is unreachable)
and polls the alias every ``poll_seconds`` to swap a new champion in; on shutdown it
stops polling and flushes the prediction log.

``app.state`` holds ``settings``, ``metrics``, ``champions`` (the ChampionManager),
``store`` (PredictionStore), ``prediction_log`` (None when logging is off) and ``living``
(:class:`serving.living.LivingForecasts`, which rolls each series' origin forward as
actuals arrive) — the monitoring routes read the same objects.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib
import logging
from collections.abc import AsyncIterator, Callable

from fastapi import FastAPI

from serving.body import document_json_bodies
from serving.champion import Champion, ChampionManager
from serving.errors import install_error_handlers
from serving.living import LivingForecasts
from serving.metrics import MetricsMiddleware, ServingMetrics
from serving.middleware import BodyLimitMiddleware
from serving.override_schemas import OverrideRequest
from serving.overrides import OverrideBook
from serving.prediction_log import PredictionLog
from serving.registry import ModelSource
from serving.routes import actuals, forecast, health, invocations, model, overrides
from serving.schemas import ActualsRequest, ForecastRequest
from serving.settings import ServingSettings
from serving.store import PredictionStore

log = logging.getLogger(__name__)

DESCRIPTION = """\
Forecasts from the champion model of the MLflow Model Registry.

* `POST /v1/forecast` — series (by id or key values) and a horizon, or explicit rows,
  with optional what-if values for future exogenous features (promo, price).
* `POST /invocations` — the MLflow scoring-server protocol (`dataframe_split`,
  `dataframe_records`), so MLflow clients work unchanged.
* `POST /v1/actuals` — realised sales: they move each series' forecast origin to its newest
  complete period (no refit) and feed accuracy monitoring (API key when configured).
* `GET /v1/origins` — where each series' forecast starts, and why there.
* `POST /v1/overrides`, `GET /v1/overrides`, `DELETE /v1/overrides/{id}` — people's
  adjustments (author, reason) of series and periods: `/v1/forecast` serves them as
  `yhat`, the model's number beside it (`yhat_model`); `/invocations` stays the raw model.
* `GET /v1/model`, `POST /v1/model/reload` — the champion, and an immediate alias check.

Errors are always `{"error": {"code", "message", "field"?}}`.
"""

OPTIONAL_ROUTERS = ("serving.monitoring.routes",)


def create_app(settings: ServingSettings | None = None) -> FastAPI:
    """A new, independent app (own metrics registry, store, champion) for ``settings``."""
    settings = settings or ServingSettings()
    app = FastAPI(title="salescast", version="0.1.0", description=DESCRIPTION,
                  lifespan=_lifespan)
    app.state.settings = settings
    app.state.metrics = ServingMetrics()
    app.state.champions = None
    app.state.living = None
    app.state.store = None
    app.state.prediction_log = None
    app.state.overrides = None
    install_error_handlers(app)
    for module in (forecast, invocations, actuals, overrides, model, health):
        app.include_router(module.router)
    _include_optional_routers(app)
    document_json_bodies(app, [ForecastRequest, ActualsRequest, OverrideRequest])
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)  # outermost: sees all
    return app


def create_app_from_env() -> FastAPI:
    """uvicorn factory for worker processes: settings from the SALESCAST_ environment."""
    if not logging.getLogger().handlers:  # a spawned worker starts without logging set up
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s"
        )
    return create_app(ServingSettings())


def _include_optional_routers(app: FastAPI) -> None:
    """Routers of later stages (monitoring) join when their module is present."""
    for name in OPTIONAL_ROUTERS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name is not None and name.startswith(exc.name):
                continue  # not written yet
            raise
        app.include_router(module.router)


@contextlib.asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: ServingSettings = app.state.settings
    metrics: ServingMetrics = app.state.metrics
    app.state.store = store = PredictionStore(settings.store_url)
    app.state.prediction_log = prediction_log = _start_prediction_log(settings, store, metrics)
    app.state.overrides = book = OverrideBook(store, settings.override_refresh_seconds)
    await asyncio.to_thread(book.refresh, True)
    app.state.living = living = LivingForecasts(store, metrics, settings.roll_seconds)
    on_swap = _on_swap(metrics, settings.gc_freeze)
    manager = ChampionManager(ModelSource(settings), on_swap=on_swap, prepare=living.prepare)
    await asyncio.to_thread(manager.start)
    app.state.champions = manager
    living.start(manager)
    if settings.gc_freeze:
        gc.freeze()  # the loaded model is long-lived: keep it out of every full GC pass
    poller = None
    if settings.poll_seconds > 0:
        poller = asyncio.create_task(manager.poll(settings.poll_seconds), name="champion-poll")
    try:
        yield
    finally:
        if poller is not None:
            poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poller
        await asyncio.to_thread(living.stop)
        if prediction_log is not None:
            await asyncio.to_thread(prediction_log.close)
        store.dispose()


def _start_prediction_log(
    settings: ServingSettings, store: PredictionStore, metrics: ServingMetrics
) -> PredictionLog | None:
    if not settings.log_predictions:
        return None
    prediction_log = PredictionLog(
        store, batch_size=settings.log_batch_size, flush_seconds=settings.log_flush_seconds,
        max_pending=settings.log_queue_size, on_written=metrics.predictions_logged.inc,
        compact=settings.log_compact, retention=settings.log_retention,
        on_purged=metrics.predictions_purged.inc,
    )
    prediction_log.start()
    return prediction_log


def _on_swap(metrics: ServingMetrics, freeze: bool) -> Callable[[Champion], None]:
    """What follows a new champion: its version in /metrics, the old one out of memory."""

    def on_swap(champion: Champion) -> None:
        ref = champion.ref
        metrics.set_model(ref.name, ref.version, ref.alias, ref.source)
        if freeze and gc.get_freeze_count():  # a hot swap: free the old model, freeze the new
            gc.unfreeze()
            gc.collect()
            gc.freeze()

    return on_swap
