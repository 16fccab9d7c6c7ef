"""What the API leaves behind: prediction-log rows per forecast, and Prometheus metrics."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from serving.app import create_app
from serving.store import PREDICTION_COLUMNS, PredictionStore
from tests.serving.conftest import MlflowStore, Registered, serving_settings


@pytest.fixture
def app(mlflow_store: MlflowStore, toy_champion: Registered, tmp_path: Path) -> FastAPI:
    return create_app(serving_settings(mlflow_store, tmp_path, log_flush_seconds=30))


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as test_client:
        yield test_client


def _flush(app: FastAPI) -> Any:
    assert app.state.prediction_log.flush()
    return app.state.store.read_predictions()


def test_each_forecast_row_is_logged_with_request_id_version_and_features(
    app: FastAPI, client: TestClient, toy_champion: Registered
) -> None:
    plain = client.post("/v1/forecast", json={"series": [{"series_id": "S02|C2"}], "horizon": 2})
    scenario = client.post("/v1/forecast", json={
        "rows": [{"series_id": "S01|C1", "ds": "2024-06-17"}],
        "scenario": [{"values": {"promo": 1}}]})
    logged = _flush(app)
    assert logged["request_id"].tolist() == [plain.json()["request_id"]] * 2 + [
        scenario.json()["request_id"]]
    assert set(logged["model_version"]) == {toy_champion.version}
    assert logged["yhat"].tolist() == [row["yhat"] for row in plain.json()["forecasts"]] + [
        scenario.json()["forecasts"][0]["yhat"]]
    # the toy model exposes predict_with_features: step, promo and price it used
    assert logged["features"].tolist() == [
        {"step": 1.0, "promo": 0.0, "price": 10.0},
        {"step": 2.0, "promo": 0.0, "price": 10.0},
        {"step": 2.0, "promo": 1.0, "price": 10.0},
    ]


def test_invocations_are_logged_too(app: FastAPI, client: TestClient) -> None:
    client.post("/invocations", json={"dataframe_records": [
        {"series_id": "S01|C2", "ds": "2024-06-24"},
        {"series_id": "S02|C1", "ds": "2024-06-10"}]})
    client.post("/invocations", json={"dataframe_records": [
        {"series_id": "S01|C2", "ds": "2024-06-24", "price": 12.0}]})
    logged = _flush(app)
    assert logged["series_id"].tolist() == ["S01|C2", "S02|C1", "S01|C2"]
    assert [f["price"] for f in logged["features"]] == [10.0, 10.0, 12.0]


def test_an_empty_store_reads_as_empty_frames_with_the_documented_columns(
    app: FastAPI, client: TestClient
) -> None:
    store: PredictionStore = app.state.store
    assert list(store.read_predictions().columns) == PREDICTION_COLUMNS
    assert store.read_predictions().empty and store.read_actuals().empty
    assert store.joined().empty and store.read_features().empty


def _sample(text: str, name: str, **labels: str) -> float:
    """The value of one Prometheus sample in exposition text (0 when absent)."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        match = re.match(r"^(\w+)(?:\{(.*)\})? (\S+)$", line)
        if match and match[1] == name:
            got = ",".join(sorted((match[2] or "").split(","))) if match[2] else ""
            if got == wanted:
                return float(match[3])
    return 0.0


def test_metrics_count_requests_by_endpoint_and_status(
    app: FastAPI, client: TestClient, toy_champion: Registered
) -> None:
    for _ in range(3):
        client.post("/v1/forecast", json={"series": [{"series_id": "S01|C1"}], "horizon": 1})
    client.post("/v1/forecast", json={"series": [{"series_id": "nope"}]})
    _flush(app)
    text = client.get("/metrics").text
    ok = {"endpoint": "/v1/forecast", "method": "POST", "status": "200"}
    assert _sample(text, "salescast_requests_total", **ok) == 3
    assert _sample(text, "salescast_requests_total", **(ok | {"status": "404"})) == 1
    assert _sample(text, "salescast_request_duration_seconds_count", **ok) == 3
    assert _sample(text, "salescast_model_version", model_name="toy", alias="champion",
                   source="registry") == float(toy_champion.version)
    assert _sample(text, "salescast_predictions_logged_total") == 3


def test_every_app_has_its_own_metrics(
    mlflow_store: MlflowStore, toy_champion: Registered, tmp_path: Path, client: TestClient
) -> None:
    client.get("/healthz")
    other = create_app(serving_settings(mlflow_store, tmp_path / "other"))
    with TestClient(other) as other_client:
        text = other_client.get("/metrics").text
    assert _sample(text, "salescast_requests_total", endpoint="/healthz", method="GET",
                   status="200") == 0
