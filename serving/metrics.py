"""Prometheus metrics of the prediction API, on a registry owned by each app.

Request counts and latency by endpoint (the route template, never the raw path) and
status, the serving model version, prediction-log throughput. Each app builds its own
:class:`ServingMetrics` (tests create many apps; the global registry would clash).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


class ServingMetrics:
    """The app's metric families; ``render()`` gives the Prometheus text exposition."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        labels = ["endpoint", "method", "status"]
        self.requests = Counter(
            "salescast_requests", "HTTP requests answered.", labels, registry=self.registry
        )
        self.latency = Histogram(
            "salescast_request_duration_seconds", "Time to answer a request.", labels,
            buckets=LATENCY_BUCKETS, registry=self.registry,
        )
        self.model_version = Gauge(
            "salescast_model_version", "Version of the champion being served.",
            ["model_name", "alias", "source"], registry=self.registry,
        )
        self.model_swaps = Counter(
            "salescast_model_swaps", "Champions swapped in (including the first).",
            registry=self.registry,
        )
        self.predictions_logged = Counter(
            "salescast_predictions_logged", "Prediction rows written to the prediction log.",
            registry=self.registry,
        )
        self.predictions_dropped = Gauge(
            "salescast_prediction_log_dropped", "Prediction rows not logged (queue full).",
            registry=self.registry,
        )
        self.predictions_purged = Counter(
            "salescast_prediction_log_purged", "Stored prediction-log rows deleted by "
            "retention (SALESCAST_LOG_RETENTION_DAYS).", registry=self.registry,
        )

        self.series_origins = Gauge(
            "salescast_series", "Series by the status of their forecast origin (current, "
            "incomplete, gap: waiting for an actual, stale: far behind the newest origin).",
            ["status"], registry=self.registry,
        )
        self.series_rolled = Counter(
            "salescast_series_rolled", "Series forecasts recomputed because actuals moved "
            "or changed their origin.", registry=self.registry,
        )
        self.roll_duration = Histogram(
            "salescast_roll_duration_seconds", "Time to roll a batch of series forward.",
            buckets=LATENCY_BUCKETS, registry=self.registry,
        )

    def observe_roll(self, rolled: int, seconds: float) -> None:
        self.series_rolled.inc(rolled)
        self.roll_duration.observe(seconds)

    def set_origins(self, origins: Iterable[Any]) -> None:
        """Count the series by the status of their origin (features.origin.SeriesOrigin)."""
        counts = dict.fromkeys(("current", "incomplete", "gap", "stale"), 0)
        for origin in origins:
            counts[origin.status] += 1
        for status, count in counts.items():
            self.series_origins.labels(status).set(count)

    def set_model(self, name: str, version: str, alias: str, source: str) -> None:
        """Record the model now serving (one labelled gauge sample per serving model)."""
        self.model_version.clear()
        numeric = float(version) if version.isdigit() else 0.0
        self.model_version.labels(name, alias, source).set(numeric)
        self.model_swaps.inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Pure ASGI middleware: counts and times every HTTP request by route and status."""

    def __init__(self, app: ASGIApp, metrics: ServingMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [500]

        async def send_with_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            self._observe(scope, status[0], time.perf_counter() - started)

    def _observe(self, scope: Scope, status: int, seconds: float) -> None:
        route: Any = scope.get("route")
        endpoint = getattr(route, "path", None) or "unmatched"
        labels = (endpoint, scope["method"], str(status))
        self.metrics.requests.labels(*labels).inc()
        self.metrics.latency.labels(*labels).observe(seconds)
