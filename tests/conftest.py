"""Session-wide fixtures: ONE real SQLite MLflow store per test session.

Creating a SQLite MLflow database runs its migrations (seconds here), so every package's
tests share this one; each test uses its own experiment / registered-model names.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass(frozen=True)
class MlflowStore:
    """Where a test session's MLflow runs, models and Optuna studies live."""

    root: Path
    tracking_uri: str
    optuna_storage: str
    artifact_location: str


@pytest.fixture(scope="session")
def mlflow_store(tmp_path_factory: pytest.TempPathFactory) -> MlflowStore:
    from mlflow import MlflowClient

    root = tmp_path_factory.mktemp("mlflow_store")
    store = MlflowStore(root, f"sqlite:///{root}/mlflow.db", f"sqlite:///{root}/optuna.db",
                        str(root / "artifacts"))
    MlflowClient(store.tracking_uri).search_experiments()  # run the migrations once
    return store
