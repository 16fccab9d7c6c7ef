"""`salescast serve` for real: uvicorn on a loopback port, an MLflow client, SIGTERM.

One process test (it takes ~10 s: a fresh interpreter imports MLflow and loads the model);
the multi-worker path is checked in process through the worker factory.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from experiments.traffic import free_port, wait_for_http
from serving.app import create_app_from_env
from serving.server import settings_environment
from serving.store import PredictionStore
from tests.serving.conftest import API_KEY, MlflowStore, Registered, serving_settings

REPO = Path(__file__).resolve().parents[2]


def _wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float = 90) -> None:
    wait_for_http(f"{url}/readyz", process, timeout,
                  lambda: process.stderr.read().decode()[-3000:])  # type: ignore[union-attr]


def _start(port: int, workdir: Path, store: MlflowStore, *extra: str
           ) -> subprocess.Popen[bytes]:
    env = os.environ | {
        "PYTHONPATH": str(REPO),
        "SALESCAST_TRACKING_URI": store.tracking_uri,
        "SALESCAST_STORE_URL": f"sqlite:///{workdir / 'predictions.db'}",
        "SALESCAST_LOCAL_MODEL_DIR": str(workdir / "champion"),
        "SALESCAST_LOG_FLUSH_SECONDS": "600",  # rows reach the store only by the shutdown flush
        "SALESCAST_POLL_SECONDS": "0",
    }
    command = [sys.executable, "-m", "experiments.commands_serve", "--port", str(port),
               "--model-name", "toy", *extra]
    return subprocess.Popen(command, cwd=workdir, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)


def test_serve_command_answers_mlflow_clients_and_flushes_on_shutdown(
    mlflow_store: MlflowStore, toy_champion: Registered, toy_model: Any, tmp_path: Path
) -> None:
    from mlflow.pyfunc.scoring_server.client import ScoringServerClient

    port = free_port()
    process = _start(port, tmp_path, mlflow_store)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, process)
        forecast = httpx.post(f"{url}/v1/forecast",
                              json={"series": [{"series_id": "S02|C1"}], "horizon": 3})
        assert forecast.status_code == 200
        frame = pd.DataFrame({"series_id": ["S01|C1", "S02|C2"],
                              "ds": pd.to_datetime(["2024-06-17", "2024-07-01"]),
                              "promo": [1.0, 0.0]})
        answer = ScoringServerClient("127.0.0.1", port).invoke(frame).get_predictions()
        expected = toy_model.predict(frame)
        assert answer["yhat"].tolist() == expected["yhat"].tolist()
        assert answer["series_id"].tolist() == ["S01|C1", "S02|C2"]
    finally:
        process.send_signal(signal.SIGTERM)
        # uvicorn shuts down gracefully, then re-raises the signal it caught
        assert process.wait(timeout=60) in (0, -signal.SIGTERM)
    logged = PredictionStore(f"sqlite:///{tmp_path / 'predictions.db'}").read_predictions()
    assert len(logged) == 5
    assert set(logged["request_id"]) >= {forecast.json()["request_id"]}
    assert set(logged["model_version"]) == {toy_champion.version}


def test_worker_factory_builds_the_app_from_the_environment(
    mlflow_store: MlflowStore, toy_champion: Registered, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What each of `--workers N` processes does: settings from SALESCAST_* variables."""
    settings = serving_settings(mlflow_store, tmp_path, max_rows=7, api_key=API_KEY)
    for name, value in settings_environment(settings).items():
        monkeypatch.setenv(name, value)
    with TestClient(create_app_from_env()) as client:
        assert client.get("/v1/model").json()["version"] == toy_champion.version
        too_many = client.post("/v1/forecast", json={"series": [{"series_id": "S01|C1"}] * 2})
        assert too_many.status_code == 413  # 2 series x 4 periods > 7 rows
        assert client.post("/v1/model/reload").status_code == 401


def _forecasts_by_worker(url: str, series_id: str, tries: int = 200) -> dict[str, list]:
    """Ask many times on fresh connections: each worker's (origin, yhat) answers."""
    seen: dict[str, list] = {}
    for _ in range(tries):
        with httpx.Client(base_url=url) as client:  # a new connection: any worker may take it
            answer = client.post("/v1/forecast", json={"series": [{"series_id": series_id}]})
        rows = answer.json()["forecasts"]
        seen.setdefault(answer.headers["x-salescast-worker"], []).append(
            [(r["origin"], r["ds"], r["yhat"]) for r in rows])
        if len(seen) == 2 and all(v[-1][0][0] == "2024-06-10" for v in seen.values()):
            break
    return seen


def test_two_workers_and_a_restarted_process_roll_to_the_same_forecast(
    mlflow_store: MlflowStore, toy_champion: Registered, tmp_path: Path
) -> None:
    """Actuals posted to one worker move the origin in both (they read the store); a
    process started afterwards derives the same forecast from the same store."""
    port = free_port()
    process = _start(port, tmp_path, mlflow_store, "--workers", "2")
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, process)
        posted = httpx.post(f"{url}/v1/actuals", json={"actuals": [
            {"series_id": "S01|C1", "ds": "2024-06-10", "y": 140.0}]})
        assert posted.status_code == 200
        seen = _forecasts_by_worker(url, "S01|C1")
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    assert len(seen) == 2, f"only worker(s) {sorted(seen)} answered"
    latest = [answers[-1] for answers in seen.values()]
    assert latest[0] == latest[1]
    assert [yhat for _, _, yhat in latest[0]] == [142.0, 144.0, 146.0, 148.0]
    port = free_port()
    again = _start(port, tmp_path, mlflow_store)
    try:
        _wait_ready(f"http://127.0.0.1:{port}", again)
        answer = httpx.post(f"http://127.0.0.1:{port}/v1/forecast",
                            json={"series": [{"series_id": "S01|C1"}]}).json()
    finally:
        again.send_signal(signal.SIGTERM)
        again.wait(timeout=60)
    assert [(r["origin"], r["ds"], r["yhat"]) for r in answer["forecasts"]] == latest[0]
