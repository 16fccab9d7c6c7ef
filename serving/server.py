"""Running the API under uvicorn: one process, or N workers through an import string.

A server that cannot start raises (:class:`serving.store.StoreError` for the prediction
store, :class:`StartupError` otherwise) with the reason in one line, instead of uvicorn's
traceback and exit code 3.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

from pydantic import SecretStr

from serving.settings import ServingSettings

if TYPE_CHECKING:
    import uvicorn

log = logging.getLogger(__name__)

FACTORY = "serving.app:create_app_from_env"
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def settings_environment(settings: ServingSettings) -> dict[str, str]:
    """``SALESCAST_*`` variables that rebuild ``settings`` in a worker process."""
    env: dict[str, str] = {}
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        env[f"SALESCAST_{name.upper()}"] = str(value)
    return env


class StartupError(RuntimeError):
    """The server did not start (the reason in one line)."""


def open_store(settings: ServingSettings) -> None:
    """Open the prediction store once before uvicorn starts: a URL it cannot use fails here
    (one StoreError line), and its tables exist before N workers would race to create them."""
    from serving.store import PredictionStore

    PredictionStore(settings.store_url).dispose()


def run_server(settings: ServingSettings) -> None:
    """Serve until interrupted; SIGINT/SIGTERM shut down cleanly (the log is flushed)."""
    import uvicorn

    if settings.host not in LOOPBACK and settings.api_key is None:
        log.warning("listening on %s without SALESCAST_API_KEY: /v1/actuals and "
                    "/v1/model/reload are open to anyone who can reach it", settings.host)
    options = {
        "host": settings.host, "port": settings.port, "access_log": settings.access_log,
        "log_config": None,  # keep the CLI's logging set-up
    }
    if settings.workers == 1:
        from serving.app import create_app

        _serve_one(uvicorn.Config(create_app(settings), **options))
        return
    os.environ.update(settings_environment(settings))  # the workers' settings
    uvicorn.run(FACTORY, factory=True, workers=settings.workers, **options)


class _HeldErrors(logging.Filter):
    """uvicorn's errors before the server has started (a lifespan traceback, a port in use)
    are held back, the first one's last line kept as the reason (shown with --verbose)."""

    def __init__(self, server: uvicorn.Server) -> None:
        super().__init__()
        self.server = server
        self.reason: str | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        if self.server.started or record.levelno < logging.ERROR:
            return True
        lines = record.getMessage().strip().splitlines()
        self.reason = self.reason or (lines[-1] if lines else None)
        return log.isEnabledFor(logging.DEBUG)


def _serve_one(config: uvicorn.Config) -> None:
    """``uvicorn.run`` for one process, but a failed start raises StartupError."""
    import uvicorn

    server = uvicorn.Server(config)
    held = _HeldErrors(server)
    uvicorn_log = logging.getLogger("uvicorn.error")
    uvicorn_log.addFilter(held)
    try:
        server.run()
    except SystemExit:  # uvicorn's exit on a failed start (code 3)
        if server.started:
            raise
    except KeyboardInterrupt:  # as uvicorn.run: stopped, not failed
        return
    finally:
        uvicorn_log.removeFilter(held)
    if not server.started:
        raise StartupError(f"the server did not start: {held.reason or 'see the log above'}")
