"""Runtime settings of the prediction API: pydantic-settings with the ``SALESCAST_`` prefix.

Built once in the entry point (`salescast serve`, or `create_app_from_env` in each uvicorn
worker) and passed down; nothing reads the environment at import time.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

MIN_API_KEY_LENGTH = 16
WEAK_KEY_WORDS = ("changeme", "change-me", "password", "secret", "example")


class ServingSettings(BaseSettings):
    """Where the champion comes from, where predictions go, and the API's limits."""

    model_config = SettingsConfigDict(
        env_prefix="SALESCAST_", extra="ignore", protected_namespaces=()
    )

    tracking_uri: str = Field("sqlite:///mlflow.db", description="MLflow tracking store.")
    registry_uri: str | None = Field(None, description="Model registry; default = tracking.")
    model_name: str | None = Field(
        None, description="Registered model to serve; default: the only one carrying the alias."
    )
    model_alias: str = Field("champion", description="Registry alias that names the champion.")
    store_url: str = Field(
        "sqlite:///predictions.db", description="SQLAlchemy URL of the prediction log + actuals."
    )
    api_key: SecretStr | None = Field(
        None, description="Required by /v1/actuals and /v1/model/reload when set."
    )
    host: str = Field("127.0.0.1", description="Bind address (loopback by default).")
    port: int = Field(8000, ge=1, le=65535)
    workers: int = Field(1, ge=1, description="uvicorn worker processes.")
    access_log: bool = Field(False, description="uvicorn access log (one line per request).")
    poll_seconds: float = Field(
        30.0, ge=0, description="How often to check the alias for a new champion; 0 = never."
    )
    roll_seconds: float = Field(
        2.0, gt=0, description="How often to look for actuals other workers accepted and roll "
        "those series' forecasts forward (actuals posted to this worker roll at once)."
    )
    override_refresh_seconds: float = Field(
        1.0, ge=0, description="How often a worker checks the store for overrides other "
        "workers accepted or revoked (its own apply at once); 0 = on every forecast."
    )
    connect_timeout: float = Field(
        3.0, gt=0, description="Seconds to wait for an http(s) tracking server before using "
        "the local copy."
    )
    max_body_bytes: int = Field(1_000_000, ge=1024, description="Largest request body accepted.")
    max_rows: int = Field(10_000, ge=1, description="Most forecast rows / actuals per request.")
    max_horizon: int | None = Field(
        None, ge=1, description="Longest horizon served; default = the model's horizon."
    )
    local_model_dir: Path = Field(
        Path("./.salescast/champion"),
        description="Local copy of the champion, so a restart works while MLflow is down.",
    )
    log_predictions: bool = Field(True, description="Write every forecast to the prediction log.")
    log_batch_size: int = Field(2000, ge=1, description="Rows per prediction-log insert.")
    log_flush_seconds: float = Field(1.0, gt=0, description="Longest wait before a write.")
    log_queue_size: int = Field(
        200_000, ge=1, description="Prediction-log rows waiting to be written (a cached "
        "answer counts one per series, a what-if answer one per row); beyond, dropped."
    )
    log_compact: bool = Field(
        True, description="Log a cached (no-scenario) answer as one row per request that "
        "points at the forecast it was taken from, stored once (read back per row as "
        "before). False: one row per answered row (~10x larger; for comparison)."
    )
    log_retention_days: int | None = Field(
        None, ge=1, description="Delete prediction-log rows older than this many days (the "
        "log's writer thread checks every 5 minutes and deletes in small batches; forecast "
        "history, baseline features and actuals are kept). Default: keep everything."
    )
    gc_freeze: bool = Field(
        True, description="Move the loaded model out of Python's cyclic GC (gc.freeze): "
        "full GC passes over it stalled requests for ~0.4 s. Off in tests that build "
        "many apps in one process.",
    )
    reports_dir: Path = Field(Path("reports"), description="Monitoring reports (JSON + HTML).")

    @property
    def log_retention(self) -> timedelta | None:
        """``log_retention_days`` as a duration (None: keep everything)."""
        days = self.log_retention_days
        return timedelta(days=days) if days is not None else None

    @field_validator("api_key", mode="before")
    @classmethod
    def _refuse_blank_key(cls, value: object) -> object:
        """A key that is set but blank is a mistake (an empty secret, a bad template), not
        a wish to turn authentication off: refuse it instead of serving writes unguarded."""
        if isinstance(value, str) and not value.strip():
            raise ValueError("api_key is set but blank; set a real key (e.g. `openssl rand "
                             "-hex 24`) or unset SALESCAST_API_KEY to serve without one")
        return value

    @field_validator("api_key")
    @classmethod
    def _refuse_weak_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        key = value.get_secret_value()
        if len(key) < MIN_API_KEY_LENGTH:
            raise ValueError(f"api_key must be at least {MIN_API_KEY_LENGTH} characters")
        if len(set(key)) < 6 or any(word in key.lower() for word in WEAK_KEY_WORDS):
            raise ValueError("api_key is trivially guessable; use e.g. `openssl rand -hex 24`")
        return value
