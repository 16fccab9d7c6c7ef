"""POST /v1/actuals: upsert on (series_id, ds), committed before the 2xx, behind the API key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from serving.app import create_app
from serving.store import PredictionStore
from tests.serving.conftest import API_KEY, MlflowStore, Registered, serving_settings

ACTUALS = [{"series_id": "S01|C1", "ds": "2024-06-10", "y": 99.5},
           {"series_id": "S02|C2", "ds": "2024-06-10", "y": 18.0}]


@pytest.fixture
def keyed_app(mlflow_store: MlflowStore, toy_champion: Registered, tmp_path: Path) -> Any:
    return create_app(serving_settings(mlflow_store, tmp_path, api_key=API_KEY, max_rows=3))


def _post(client: TestClient, actuals: list[dict[str, Any]], **headers: str) -> Any:
    return client.post("/v1/actuals", json={"actuals": actuals}, headers=headers)


def test_actuals_persist_across_a_restart_and_upsert(
    mlflow_store: MlflowStore, toy_champion: Registered, tmp_path: Path
) -> None:
    settings = serving_settings(mlflow_store, tmp_path)
    with TestClient(create_app(settings)) as client:
        response = _post(client, ACTUALS)
        assert response.status_code == 200
        assert response.json() == {"received": 2, "stored": 2}
    with TestClient(create_app(settings)) as client:  # a new app on the same store URL
        again = [{"series_id": "S01|C1", "ds": "2024-06-10", "y": 101.0}]
        assert _post(client, again).json() == {"received": 1, "stored": 1}
    stored = PredictionStore(settings.store_url).read_actuals()
    assert sorted(zip(stored["series_id"], stored["y"], strict=True)) == [
        ("S01|C1", 101.0), ("S02|C2", 18.0)
    ]


def test_duplicates_within_a_request_keep_the_last_value(keyed_app: Any) -> None:
    rows = [{"series_id": "S01|C1", "ds": "2024-06-17", "y": 1.0},
            {"series_id": "S01|C1", "ds": "2024-06-17", "y": 2.0}]
    with TestClient(keyed_app) as client:
        assert _post(client, rows, **{"X-API-Key": API_KEY}).json() == {"received": 2,
                                                                        "stored": 1}
        assert keyed_app.state.store.read_actuals()["y"].tolist() == [2.0]


@pytest.mark.parametrize(
    "headers",
    [{}, {"X-API-Key": "wrong-key-0123456789abcdef"}, {"Authorization": "Bearer nope"},
     {"Authorization": API_KEY}],
    ids=["none", "wrong-header", "wrong-bearer", "not-bearer"],
)
def test_without_the_key_actuals_are_401(keyed_app: Any, headers: dict[str, str]) -> None:
    with TestClient(keyed_app) as client:
        response = _post(client, ACTUALS, **headers)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "unauthorized"
        assert keyed_app.state.store.read_actuals().empty


@pytest.mark.parametrize("headers", [{"X-API-Key": API_KEY},
                                     {"Authorization": f"Bearer {API_KEY}"}],
                         ids=["header", "bearer"])
def test_with_the_key_actuals_are_stored(keyed_app: Any, headers: dict[str, str]) -> None:
    with TestClient(keyed_app) as client:
        assert _post(client, ACTUALS, **headers).status_code == 200
        assert len(keyed_app.state.store.read_actuals()) == 2


def test_too_many_actuals_are_413_and_bad_values_422(keyed_app: Any) -> None:
    key = {"X-API-Key": API_KEY}
    with TestClient(keyed_app) as client:
        too_many = [{"series_id": f"S{i}", "ds": "2024-06-10", "y": 1.0} for i in range(4)]
        assert _post(client, too_many, **key).status_code == 413
        bad = _post(client, [{"series_id": "S01|C1", "ds": "2024-06-10", "y": "lots"}], **key)
        assert bad.status_code == 422
        assert bad.json()["error"]["field"] == "actuals[0].y"
        assert keyed_app.state.store.read_actuals().empty


@pytest.mark.parametrize(("row", "field"), [
    ({"y": 1e308}, "actuals[1].y"), ({"y": -1e308}, "actuals[1].y"),
    ({"y": True}, "actuals[1].y"), ({"y": "123"}, "actuals[1].y"),
    ({"values": {"price": 1e300}}, "actuals[1].values.price"),
    ({"series_id": "S01|C1\u0000"}, "actuals[1].series_id"),
    ({"ds": "0001-01-01"}, "actuals[1].ds"), ({"ds": "9999-12-27"}, "actuals[1].ds"),
    ({"ds": "2024-06-12"}, "actuals[1].ds"),  # a Wednesday: weeks start on Monday
], ids=["huge", "huge-negative", "boolean", "string", "huge-value", "nul", "year-1",
        "year-9999", "wednesday"])
def test_implausible_actuals_are_422_naming_the_row_and_store_nothing(
    keyed_app: Any, row: dict[str, Any], field: str
) -> None:
    good = {"series_id": "S01|C1", "ds": "2024-06-10", "y": 5.0}
    with TestClient(keyed_app) as client:
        response = _post(client, [good, good | row], **{"X-API-Key": API_KEY})
        assert response.status_code == 422, response.text
        assert response.json()["error"]["field"] == field
        assert keyed_app.state.store.read_actuals().empty


@pytest.mark.parametrize(("body", "content_type", "status"), [
    (b"\xff", "application/json", 422), (b'{"actuals": [', "application/json", 422),
    (b'{"actuals": []}', "text/plain", 415),
], ids=["not-utf8", "truncated", "text-plain"])
def test_unreadable_bodies_are_4xx_documented_and_store_nothing(
    keyed_app: Any, body: bytes, content_type: str, status: int
) -> None:
    with TestClient(keyed_app) as client:
        response = client.post("/v1/actuals", content=body, headers={
            "content-type": content_type, "X-API-Key": API_KEY})
        assert response.status_code == status, response.text
        documented = client.get("/openapi.json").json()["paths"]["/v1/actuals"]["post"]
        assert str(status) in documented["responses"]
        assert keyed_app.state.store.read_actuals().empty
