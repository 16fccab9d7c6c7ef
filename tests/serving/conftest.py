"""Fixtures of the serving tests: one MLflow SQLite store per session, a registered toy champion.

The toy model (``tests/serving/_model.py``) follows the served-model contract, so these
tests never depend on `training`. Registering takes a second or two; the store's
migrations several seconds: both happen once per session.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from serving.app import create_app
from serving.settings import ServingSettings

MODEL_FILE = Path(__file__).with_name("_model.py")
API_KEY = "k3y-for-tests-0123456789abcdef"


@dataclass(frozen=True)
class MlflowStore:
    tracking_uri: str
    experiment_id: str


@dataclass(frozen=True)
class Registered:
    name: str
    version: str
    run_id: str


def _signature() -> Any:
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    inputs = Schema([
        ColSpec("string", "series_id"), ColSpec("datetime", "ds"),
        ColSpec("double", "promo", required=False), ColSpec("double", "price", required=False),
    ])
    outputs = Schema([
        ColSpec("string", "series_id"), ColSpec("datetime", "ds"), ColSpec("double", "yhat"),
        ColSpec("double", "yhat_lower"), ColSpec("double", "yhat_upper"),
    ])
    return ModelSignature(inputs=inputs, outputs=outputs)


def register_toy(
    store: MlflowStore, name: str, offset: float, alias: str = "champion"
) -> Registered:
    """Log the toy model (``offset`` added to every forecast), register it, point ``alias``."""
    import mlflow
    from mlflow import MlflowClient

    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(store.tracking_uri)  # MLflow's registration code reads the global
    try:
        with mlflow.start_run(experiment_id=store.experiment_id) as run:
            info = mlflow.pyfunc.log_model(
                name="model", python_model=str(MODEL_FILE), model_config={"offset": offset},
                signature=_signature(), pip_requirements=["mlflow", "pandas"],
                input_example=pd.DataFrame(
                    {"series_id": ["S01|C1"], "ds": pd.to_datetime(["2024-06-10"])}
                ),
            )
        client = MlflowClient(store.tracking_uri, registry_uri=store.tracking_uri)
        if not client.search_registered_models(filter_string=f"name = '{name}'"):
            client.create_registered_model(name)
        created = client.create_model_version(
            name, source=info.model_uri, run_id=run.info.run_id, model_id=info.model_id
        )
        client.set_registered_model_alias(name, alias, created.version)
    finally:
        mlflow.set_tracking_uri(previous)
    return Registered(name, str(created.version), run.info.run_id)


@pytest.fixture(scope="session")
def mlflow_store(tmp_path_factory: pytest.TempPathFactory) -> MlflowStore:
    from mlflow import MlflowClient

    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    experiment_id = MlflowClient(uri, registry_uri=uri).create_experiment(
        "serving-tests", artifact_location=(root / "artifacts").as_uri()
    )
    return MlflowStore(uri, experiment_id)


@pytest.fixture(scope="session")
def toy_champion(mlflow_store: MlflowStore) -> Registered:
    """Version 1 of the registered model 'toy' (offset 0), alias @champion."""
    return register_toy(mlflow_store, "toy", offset=0.0)


def serving_settings(store: MlflowStore, workdir: Path, **overrides: Any) -> ServingSettings:
    """Settings for a test app: its own prediction store and local copy under ``workdir``."""
    values: dict[str, Any] = {
        "tracking_uri": store.tracking_uri, "model_name": "toy", "poll_seconds": 0,
        "store_url": f"sqlite:///{workdir / 'predictions.db'}",
        "local_model_dir": workdir / "champion", "log_flush_seconds": 0.05, "api_key": None,
        "gc_freeze": False,  # many apps in one test process: keep the GC as it is
    }
    return ServingSettings(**(values | overrides))


@pytest.fixture(scope="module")
def shared_workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("serving")


@pytest.fixture(scope="module")
def client(
    mlflow_store: MlflowStore, toy_champion: Registered, shared_workdir: Path
) -> Iterator[TestClient]:
    """One app per test module serving toy v1 (read-only tests share it)."""
    settings = serving_settings(mlflow_store, shared_workdir, max_rows=50, max_body_bytes=20_000)
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture(scope="session")
def toy_model(mlflow_store: MlflowStore, toy_champion: Registered) -> Any:
    """The registered pyfunc model itself, for comparing answers with its own predictions."""
    import mlflow.artifacts
    import mlflow.pyfunc
    from mlflow import MlflowClient

    uri = mlflow_store.tracking_uri
    client = MlflowClient(uri, registry_uri=uri)
    source = client.get_model_version_download_uri(toy_champion.name, toy_champion.version)
    path = mlflow.artifacts.download_artifacts(artifact_uri=source, tracking_uri=uri)
    return mlflow.pyfunc.load_model(path)


def model_predict(model: Any, rows: list[dict[str, Any]]) -> pd.DataFrame:
    """The pyfunc model's own prediction of ``rows`` (ds given as ISO dates)."""
    frame = pd.DataFrame(rows)
    frame["ds"] = pd.to_datetime(frame["ds"])
    return model.predict(frame)
