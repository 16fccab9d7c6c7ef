"""Session fixtures of the training-job tests: Settings pointing at one SQLite MLflow
store and one Optuna storage under tmp, and a tiny simulator-backed spec factory."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from experiments.settings import Settings
from experiments.spec import ExperimentSpec
from tests.conftest import MlflowStore

TinySpec = Callable[..., ExperimentSpec]


@pytest.fixture(scope="session")
def training_settings(mlflow_store: MlflowStore) -> Settings:
    """Settings of the session's MLflow store and Optuna storage."""
    return Settings(tracking_uri=mlflow_store.tracking_uri,
                    optuna_storage=mlflow_store.optuna_storage,
                    artifact_location=mlflow_store.artifact_location, n_jobs=1)


@pytest.fixture(scope="session")
def tiny_spec(tmp_path_factory: pytest.TempPathFactory) -> TinySpec:
    """``tiny_spec(name, **overrides)``: 2 stores x 2 categories x 90 weeks, horizon 4,
    2 backtest windows; the data are simulated into a shared folder on first use."""
    data_dir = tmp_path_factory.mktemp("tiny_retail")

    def make(name: str, **overrides: Any) -> ExperimentSpec:
        spec: dict[str, Any] = {
            "name": name,
            "model_name": f"{name}_model",
            "data": {table: {"path": str(Path(data_dir) / f"{table}.parquet")}
                     for table in ("sales", "customers", "calendar")},
            "simulator": {"seed": 11, "stores": 2, "categories": 2, "customers": 80,
                          "periods": 90},
            "frequency": "W",
            "horizon": 4,
            "features": {"lags": [4, 5, 6, 52], "rolling_windows": [4, 13]},
            "backtest": {"n_windows": 2, "step": 2, "min_train_periods": 26},
            "models": {"regression": {"trials": 1}, "lightgbm": {"enabled": False},
                       "time_series": {"enabled": False}, "intermittent": {"enabled": False}},
        }
        return ExperimentSpec.model_validate(spec | overrides)

    return make
