"""The champion's life: model info, hot swap under load, polling, the local copy, readiness."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from serving.app import create_app
from tests.serving.conftest import API_KEY, MlflowStore, Registered, register_toy, serving_settings

ONE_SERIES = {"series": [{"series_id": "S01|C1"}], "horizon": 2}


def test_model_info_describes_the_champion(client: TestClient, toy_champion: Registered) -> None:
    info = client.get("/v1/model").json()
    assert (info["name"], info["version"], info["run_id"]) == ("toy", toy_champion.version,
                                                                toy_champion.run_id)
    assert info["source"] == "registry"
    assert info["last_ds"] == info["newest_origin"] == "2024-06-03"  # no actuals yet
    assert info["series_ids"] == ["S01|C1", "S01|C2", "S02|C1", "S02|C2"]
    assert info["exog_columns"] == ["promo", "price"]


class Hammer:
    """Threads posting the same forecast until stopped; keeps every (status, body)."""

    def __init__(self, client: TestClient, threads: int = 4) -> None:
        self.client = client
        self.results: list[tuple[int, dict[str, Any]]] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run) for _ in range(threads)]

    def _run(self) -> None:
        while not self._stop.is_set():
            response = self.client.post("/v1/forecast", json=ONE_SERIES)
            self.results.append((response.status_code, response.json()))

    def __enter__(self) -> Hammer:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()


def _version_and_level(body: dict[str, Any]) -> tuple[str, bool]:
    """The version an answer claims, and whether its numbers carry v2's offset of 1000."""
    return body["model"]["version"], body["forecasts"][0]["yhat"] > 1000


def test_alias_swap_under_load_loses_no_request(
    mlflow_store: MlflowStore, tmp_path: Path
) -> None:
    first = register_toy(mlflow_store, "toy_swap", offset=0.0)
    settings = serving_settings(mlflow_store, tmp_path, model_name="toy_swap", api_key=API_KEY)
    with TestClient(create_app(settings)) as client, Hammer(client) as hammer:
        time.sleep(0.3)
        second = register_toy(mlflow_store, "toy_swap", offset=1000.0)
        reload = client.post("/v1/model/reload", headers={"X-API-Key": API_KEY})
        served_after = len(hammer.results)
        time.sleep(0.3)
    assert reload.status_code == 200, reload.text
    assert reload.json()["swapped"] is True
    assert reload.json()["previous"]["version"] == first.version
    assert reload.json()["current"]["version"] == second.version
    assert len(hammer.results) > served_after > 0
    assert all(status == 200 for status, _ in hammer.results)
    claims = [_version_and_level(body) for _, body in hammer.results]
    assert set(claims) == {(first.version, False), (second.version, True)}
    assert all(claim == (second.version, True) for claim in claims[served_after + 4:])


def test_the_poller_picks_up_a_moved_alias(mlflow_store: MlflowStore, tmp_path: Path) -> None:
    register_toy(mlflow_store, "toy_poll", offset=0.0)
    settings = serving_settings(mlflow_store, tmp_path, model_name="toy_poll", poll_seconds=0.2)
    with TestClient(create_app(settings)) as client:
        second = register_toy(mlflow_store, "toy_poll", offset=1000.0)
        deadline = time.monotonic() + 30
        while client.get("/v1/model").json()["version"] != second.version:
            assert time.monotonic() < deadline, "the poller never swapped the champion in"
            time.sleep(0.1)
        body = client.post("/v1/forecast", json=ONE_SERIES).json()
        assert _version_and_level(body) == (second.version, True)


def test_reload_needs_the_key_and_keeps_serving_when_the_registry_is_gone(
    mlflow_store: MlflowStore, toy_champion: Registered, tmp_path: Path
) -> None:
    settings = serving_settings(mlflow_store, tmp_path, api_key=API_KEY)
    app = create_app(settings)
    with TestClient(app) as client:
        assert client.post("/v1/model/reload").status_code == 401
        same = client.post("/v1/model/reload", headers={"Authorization": f"Bearer {API_KEY}"})
        assert same.json()["swapped"] is False
        app.state.settings.tracking_uri = "http://127.0.0.1:9"  # the tracking server goes away
        gone = client.post("/v1/model/reload", headers={"X-API-Key": API_KEY})
        assert gone.status_code == 503
        assert gone.json()["error"]["code"] == "registry_unavailable"
        assert client.post("/v1/forecast", json=ONE_SERIES).status_code == 200


@pytest.mark.parametrize("unreachable", ["http://127.0.0.1:9", "sqlite-in-missing-dir"])
def test_starts_from_the_local_copy_when_mlflow_is_unreachable(
    mlflow_store: MlflowStore, toy_champion: Registered, tmp_path: Path, unreachable: str
) -> None:
    with TestClient(create_app(serving_settings(mlflow_store, tmp_path))) as client:
        online = client.post("/v1/forecast", json=ONE_SERIES).json()["forecasts"]
    missing_db = tmp_path / "missing" / "dir" / "mlflow.db"
    uri = f"sqlite:///{missing_db}" if unreachable.startswith("sqlite") else unreachable
    offline = serving_settings(mlflow_store, tmp_path, tracking_uri=uri)
    with TestClient(create_app(offline)) as client:
        assert client.get("/readyz").status_code == 200
        info = client.get("/v1/model").json()
        assert (info["source"], info["version"]) == ("local-copy", toy_champion.version)
        assert client.post("/v1/forecast", json=ONE_SERIES).json()["forecasts"] == online
    assert not missing_db.parent.exists()  # serving never creates a tracking store


def test_without_registry_or_copy_it_is_alive_but_not_ready(tmp_path: Path) -> None:
    store = MlflowStore(tracking_uri="http://127.0.0.1:9", experiment_id="0")
    with TestClient(create_app(serving_settings(store, tmp_path))) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["error"]["code"] == "not_ready"
        assert "127.0.0.1:9" in ready.json()["error"]["message"]
        forecast = client.post("/v1/forecast", json=ONE_SERIES)
        assert forecast.status_code == 503
        assert forecast.json()["error"]["code"] == "model_not_loaded"


def test_readyz_never_shows_the_tracking_uri_credentials(tmp_path: Path) -> None:
    store = MlflowStore(tracking_uri="http://bob:hunter2-s3cret@127.0.0.1:9", experiment_id="0")
    with TestClient(create_app(serving_settings(store, tmp_path))) as client:
        message = client.get("/readyz").json()["error"]["message"]
        assert "127.0.0.1:9" in message
        assert "hunter2" not in message and "bob" not in message
