"""Runtime settings: ONE pydantic-settings object with the ``SALESCAST_`` prefix.

Built once in the entry point (the CLI) and passed down; nothing reads the environment
at import time. It extends the serving settings (``serving`` may not import
``experiments``), so `salescast serve` and `salescast train` read the same variables.
"""

from __future__ import annotations

from pydantic import Field

from serving.settings import ServingSettings


class Settings(ServingSettings):
    """Everything a command needs: tracking, registry, Optuna, serving, monitoring."""

    optuna_storage: str = Field("sqlite:///optuna.db", description="Optuna RDB storage URL.")
    artifact_location: str | None = Field(
        None, description="Artifact root for new experiments (default: MLflow's)."
    )
    n_jobs: int = Field(-1, description="Parallel per-series fits (joblib; -1 = all cores).")
    dask_scheduler: str | None = Field(
        None, description="Run the per-series fits and backtest windows on Dask: `local` (a "
        "LocalCluster of n_jobs worker processes) or a scheduler address such as "
        "tcp://host:8786; unset = joblib on this machine. Needs salescast[dask].",
    )
