"""Runtime settings: pydantic-settings with the ``SALESCAST_`` prefix.

Built once in the entry point (the CLI) and passed down; nothing reads the environment
at import time.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SALESCAST_", extra="ignore")

    tracking_uri: str = Field("sqlite:///mlflow.db", description="MLflow tracking store.")
    registry_uri: str | None = Field(None, description="Model registry; default = tracking.")
    optuna_storage: str = Field("sqlite:///optuna.db", description="Optuna RDB storage URL.")
    artifact_location: str | None = Field(
        None, description="Artifact root for new experiments (default: ./mlartifacts)."
    )
    n_jobs: int = Field(-1, ge=-1, description="Parallel per-series fits (joblib; -1 = all cores).")
