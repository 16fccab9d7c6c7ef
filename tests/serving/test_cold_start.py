"""New series through the real API and store: a flagged forecast from the siblings.

The toy knows S01|C1 (level 100), S01|C2 (50), S02|C1 (80), S02|C2 (20); its yhat is
level + 2 x step and its half-width 5. A new store S03 with category C1 has the C1
series of every store as siblings: yhat = (100 + 80) / 2 + 2 x step, half-width
sqrt(5^2 + var(100, 80)) = sqrt(25 + 100).
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from serving.cold_start import find_siblings
from serving.key_index import build_index
from serving.monitoring.accuracy import evaluate_accuracy
from serving.monitoring.service import mark_cold_start
from serving.store import join_actuals
from tests.serving._model import LEVELS

FIRST_DS = "2024-06-10"


def _forecast(client: TestClient, body: dict[str, Any]) -> Any:
    return client.post("/v1/forecast", json=body)


@pytest.mark.parametrize("series_id, siblings, shared", [
    ("S03|C1", ("S01|C1", "S02|C1"), 1),  # new store, known category
    ("S01|C3", ("S01|C1", "S01|C2"), 1),  # known store, new category
    ("S09|C9", None, 0),  # nothing known: stays unknown
    ("S01", None, 0),  # does not split into the keys
    ("S01|C1", None, 0),  # known: not a cold start
])
def test_find_siblings(series_id: str, siblings: tuple[str, ...] | None, shared: int) -> None:
    cold = find_siblings(series_id, build_index(["store", "category"], sorted(LEVELS)))
    if siblings is None:
        assert cold is None
    else:
        assert cold is not None and cold.siblings == siblings and cold.shared_keys == shared


def test_new_store_gets_the_mean_of_its_siblings_flagged(client: TestClient) -> None:
    response = _forecast(client, {"series": [{"keys": {"store": "S03", "category": "C1"}}]})
    assert response.status_code == 200
    answer = response.json()
    assert [p["series_id"] for p in answer["forecasts"]] == ["S03|C1"] * 4
    for step, point in enumerate(answer["forecasts"], start=1):
        assert point["yhat"] == pytest.approx(90 + 2 * step)
        assert point["yhat_upper"] - point["yhat"] == pytest.approx(math.sqrt(125))
    (origin,) = answer["origins"]
    assert origin["cold_start"] is True and origin["origin"] == "2024-06-03"
    assert "S01|C1" in origin["detail"] and "S02|C1" in origin["detail"]


def test_known_series_are_not_flagged(client: TestClient) -> None:
    answer = _forecast(client, {"series": [{"series_id": "S01|C1"},
                                           {"series_id": "S01|C3"}]}).json()
    flags = {o["series_id"]: o.get("cold_start") for o in answer["origins"]}
    assert flags == {"S01|C1": None, "S01|C3": True}
    new = [p["yhat"] for p in answer["forecasts"] if p["series_id"] == "S01|C3"]
    assert new == pytest.approx([75 + 2 * s for s in range(1, 5)])


def test_rows_of_a_new_series(client: TestClient) -> None:
    answer = _forecast(client, {"rows": [{"series_id": "S03|C2", "ds": FIRST_DS}]}).json()
    assert answer["forecasts"][0]["yhat"] == pytest.approx(35 + 2)
    assert answer["origins"][0]["cold_start"] is True


def test_fully_unknown_keys_stay_an_error(client: TestClient) -> None:
    alone = _forecast(client, {"series": [{"series_id": "S09|C9"}]})
    assert alone.status_code == 404
    mixed = _forecast(client, {"series": [{"series_id": "S01|C1"}, {"series_id": "S09|C9"}]})
    assert mixed.status_code == 200
    assert mixed.json()["errors"][0]["series_id"] == "S09|C9"


def test_no_scenario_on_a_new_series(client: TestClient) -> None:
    response = _forecast(client, {"series": [{"series_id": "S03|C1"}],
                                  "scenario": [{"values": {"promo": 1}}]})
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "cold_start_scenario"


def test_cold_start_rows_are_logged_flagged_and_scored_apart(client: TestClient) -> None:
    """Forecast a new and a known series, post both actuals, score: the cold-start rows
    carry the flag in the store and the accuracy report keeps them apart."""
    body = {"series": [{"series_id": "S04|C2"}, {"series_id": "S02|C2"}], "horizon": 1}
    request_id = _forecast(client, body).headers["x-request-id"]
    client.app.state.prediction_log.flush()
    store = client.app.state.store
    cold = store.read_cold_start()
    assert set(cold.loc[cold["request_id"] == request_id, "series_id"]) == {"S04|C2"}
    posted = client.post("/v1/actuals", json={"actuals": [
        {"series_id": "S04|C2", "ds": FIRST_DS, "y": 40.0},
        {"series_id": "S02|C2", "ds": FIRST_DS, "y": 20.0}]})
    assert posted.status_code == 200, posted.text
    predictions = mark_cold_start(store.read_predictions(), store.read_cold_start())
    mine = predictions[predictions["request_id"] == request_id]
    assert len(mine) == 2  # the new series logged once, not also in the compact log
    joined = join_actuals(mine, store.read_actuals())
    report = evaluate_accuracy(joined, keys=["store", "category"])
    table = report.cold_start.set_index("forecasts")
    assert table.loc["cold_start", "n_series"] == 1
    assert table.loc["cold_start", "forecast"] == pytest.approx(35 + 2)  # (50 + 20) / 2 + 2
    assert table.loc["cold_start", "wape"] == pytest.approx(abs(37 - 40) / 40)
    assert table.loc["model", "wape"] == pytest.approx(abs(22 - 20) / 20)


def test_actuals_of_unknown_keys_stay_refused(client: TestClient) -> None:
    response = client.post("/v1/actuals", json={"actuals": [
        {"series_id": "S09|C9", "ds": FIRST_DS, "y": 1.0}]})
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "unknown_series"


def test_mark_cold_start_matches_request_series_and_ds() -> None:
    ds = pd.to_datetime(["2024-06-10", "2024-06-10", "2024-06-17"])
    predictions = pd.DataFrame({"request_id": ["a", "b", "a"], "series_id": ["X|1"] * 3,
                                "ds": ds})
    cold = pd.DataFrame({"request_id": ["a"], "series_id": ["X|1"], "ds": ds[:1]})
    assert mark_cold_start(predictions, cold)["cold_start"].tolist() == [True, False, False]
    none = cold.iloc[:0]
    assert not mark_cold_start(predictions, none)["cold_start"].any()
