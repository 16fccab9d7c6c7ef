"""Running the API under uvicorn: one process, or N workers through an import string."""

from __future__ import annotations

import logging
import os

from pydantic import SecretStr

from serving.settings import ServingSettings

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

        uvicorn.run(create_app(settings), **options)
        return
    os.environ.update(settings_environment(settings))  # the workers' settings
    uvicorn.run(FACTORY, factory=True, workers=settings.workers, **options)
