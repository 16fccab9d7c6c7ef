"""Durability: `kill -9` of the server while an application streams /v1/actuals loses no
acknowledged row and duplicates none (three kills in a row on the same store).

An actual is acknowledged when its 200 arrives: it was committed before the answer
(SQLite in WAL mode: a killed process loses no committed transaction; a power cut is
another matter). Rows whose request was cut by the kill may or may not be there; the
application would post them again (upsert by (series_id, ds): a retry never duplicates).
"""

from __future__ import annotations

import os
import threading
from datetime import date, timedelta
from pathlib import Path

import httpx
import pandas as pd
import pytest

from experiments.traffic import ApiProcess
from serving.store import PredictionStore
from tests.serving._model import LAST_DS, LEVELS
from tests.serving.conftest import API_KEY, MlflowStore, Registered

REPO = Path(__file__).resolve().parents[2]
ROWS_PER_RUN = 160  # posted one per request; the kill comes after ~40 acknowledgements


def _rows(run: int) -> list[dict[str, object]]:
    """Distinct (series_id, ds) with a value that names the run and the row."""
    first = date.fromisoformat(LAST_DS) + timedelta(weeks=1 + run * 40)
    weeks = [first + timedelta(weeks=k) for k in range(ROWS_PER_RUN // len(LEVELS))]
    return [{"series_id": s, "ds": d.isoformat(), "y": float(run * 10_000 + i)}
            for i, (d, s) in enumerate((d, s) for d in weeks for s in sorted(LEVELS))]


def _stream(url: str, rows: list[dict[str, object]], acked: list[dict[str, object]],
            enough: threading.Event) -> None:
    """Post rows one by one; keep those answered 200; stop at the first broken connection."""
    with httpx.Client(base_url=url, headers={"X-API-Key": API_KEY}, timeout=10) as client:
        for row in rows:
            try:
                response = client.post("/v1/actuals", json={"actuals": [row]})
            except httpx.TransportError:
                return
            assert response.status_code == 200, response.text
            acked.append(row)
            if len(acked) >= ROWS_PER_RUN // 4:
                enough.set()


@pytest.fixture
def api_env(mlflow_store: MlflowStore, toy_champion: Registered, tmp_path: Path
            ) -> dict[str, str]:
    return {"PYTHONPATH": str(REPO), "SALESCAST_TRACKING_URI": mlflow_store.tracking_uri,
            "SALESCAST_MODEL_NAME": "toy", "SALESCAST_API_KEY": API_KEY,
            "SALESCAST_STORE_URL": f"sqlite:///{tmp_path / 'predictions.db'}",
            "SALESCAST_LOCAL_MODEL_DIR": str(tmp_path / "champion"),
            "SALESCAST_POLL_SECONDS": "0"}


def test_kill_9_while_streaming_actuals_loses_no_acknowledged_row(
    api_env: dict[str, str], tmp_path: Path
) -> None:
    acked_all: list[dict[str, object]] = []
    for run in range(3):
        api = ApiProcess(env=api_env, cwd=tmp_path)
        api.start()
        acked: list[dict[str, object]] = []
        enough = threading.Event()
        writer = threading.Thread(target=_stream, args=(api.url, _rows(run), acked, enough))
        writer.start()
        assert enough.wait(120), f"run {run}: only {len(acked)} acknowledged"
        assert api.process is not None
        os.kill(api.process.pid, 9)  # no shutdown hook runs
        api.process.wait(30)
        writer.join(30)
        assert len(acked) < ROWS_PER_RUN, "the kill came after the stream ended"
        acked_all += acked
    store = PredictionStore(api_env["SALESCAST_STORE_URL"])
    try:
        stored = store.read_actuals()
    finally:
        store.dispose()
    assert not stored.duplicated(["series_id", "ds"]).any()
    expected = pd.DataFrame(acked_all).assign(ds=lambda f: pd.to_datetime(f["ds"]).dt.date)
    found = expected.merge(stored.assign(ds=pd.to_datetime(stored["ds"]).dt.date),
                           on=["series_id", "ds"], how="left", suffixes=("", "_stored"))
    assert found["y_stored"].notna().all(), found[found["y_stored"].isna()].head()
    assert (found["y"] == found["y_stored"]).all()
