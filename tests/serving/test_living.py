"""Living forecasts in the API: posted actuals move each series' origin (no refit).

The toy champion (``_model.py``) forecasts ``level + 2 x step`` after each series' origin
and, rolled, takes the newest actual as its level — so every expected number here follows
from the actuals posted, not from the code under test.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from serving.app import create_app
from serving.store import PredictionStore
from tests.serving.conftest import MlflowStore, Registered, serving_settings

TRAINED = date(2024, 6, 3)  # the toy's training origin (a Monday); horizon 4 weeks


def week(k: int) -> str:
    return (TRAINED + timedelta(weeks=k)).isoformat()


@pytest.fixture
def app_settings(mlflow_store: MlflowStore, toy_champion: Registered, tmp_path: Path) -> Any:
    return serving_settings(mlflow_store, tmp_path, roll_seconds=0.2)


@pytest.fixture
def client(app_settings: Any) -> Iterator[TestClient]:
    with TestClient(create_app(app_settings)) as test_client:
        yield test_client


def post(client: TestClient, *actuals: tuple[str, str, float], status: int = 200) -> Any:
    body = {"actuals": [{"series_id": s, "ds": d, "y": y} for s, d, y in actuals]}
    response = client.post("/v1/actuals", json=body)
    assert response.status_code == status, response.text
    return response.json()


def origins(client: TestClient) -> dict[str, dict[str, Any]]:
    return {s["series_id"]: s for s in client.get("/v1/origins").json()["series"]}


def wait_for(client: TestClient, series_id: str, origin: str, timeout: float = 15) -> dict:
    """The series' origin state once it reads ``origin`` (rolls run off the request)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = origins(client)[series_id]
        if state["origin"] == origin:
            return state
        time.sleep(0.05)
    raise AssertionError(f"{series_id} still at {origins(client)[series_id]}, not {origin}")


def wait_for_metrics(client: TestClient, line: str, timeout: float = 15) -> str:
    """The /metrics text once it shows ``line`` (a roll counts the series after it has
    published their new origins, so the gauge can trail :func:`wait_for` briefly)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = client.get("/metrics").text
        if line in text:
            return text
        time.sleep(0.05)
    raise AssertionError(f"/metrics never showed {line!r}:\n{text}")


def forecast(client: TestClient, series_id: str, **extra: Any) -> dict[str, Any]:
    response = client.post("/v1/forecast", json={"series": [{"series_id": series_id}], **extra})
    assert response.status_code == 200, response.text
    return response.json()


def test_the_next_periods_actual_moves_the_origin_by_one_period(client: TestClient) -> None:
    before = forecast(client, "S01|C1")
    assert [r["ds"] for r in before["forecasts"]] == [week(k) for k in (1, 2, 3, 4)]
    assert {r["origin"] for r in before["forecasts"]} == {week(0)}
    post(client, ("S01|C1", week(1), 130.0))
    wait_for(client, "S01|C1", week(1))
    after = forecast(client, "S01|C1")
    assert [r["ds"] for r in after["forecasts"]] == [week(k) for k in (2, 3, 4, 5)]
    assert [r["yhat"] for r in after["forecasts"]] == [132.0, 134.0, 136.0, 138.0]
    assert after["origins"] == [{"series_id": "S01|C1", "origin": week(1), "status": "current"}]
    untouched = forecast(client, "S02|C2")  # level 20 from training, origin unchanged
    assert [r["yhat"] for r in untouched["forecasts"]][:1] == [22.0]
    assert untouched["forecasts"][0]["ds"] == week(1)


def test_a_gap_holds_the_origin_until_the_missing_period_arrives(client: TestClient) -> None:
    post(client, ("S01|C2", week(2), 70.0))
    state = wait_for(client, "S01|C2", week(0))
    deadline = time.monotonic() + 10
    while state["status"] != "gap" and time.monotonic() < deadline:
        state = origins(client)["S01|C2"]
    assert state["status"] == "gap" and week(1) in state["detail"]
    assert forecast(client, "S01|C2")["origins"][0]["status"] == "gap"
    post(client, ("S01|C2", week(1), 60.0))
    assert wait_for(client, "S01|C2", week(2))["status"] == "current"
    assert forecast(client, "S01|C2")["forecasts"][0]["yhat"] == 72.0  # level 70 + 2


def test_a_corrected_actual_recomputes_the_forecast(client: TestClient) -> None:
    post(client, ("S02|C1", week(1), 100.0))
    wait_for(client, "S02|C1", week(1))
    assert forecast(client, "S02|C1")["forecasts"][0]["yhat"] == 102.0
    post(client, ("S02|C1", week(1), 150.0))  # the upsert corrects it
    deadline = time.monotonic() + 10
    while forecast(client, "S02|C1")["forecasts"][0]["yhat"] != 152.0:
        assert time.monotonic() < deadline, "the correction was not rolled in"
        time.sleep(0.05)


def test_a_period_not_over_yet_keeps_the_older_origin_and_says_so(
    client: TestClient,
) -> None:
    living = client.app.state.living  # type: ignore[attr-defined]
    living.today = lambda: TRAINED + timedelta(weeks=2, days=3)  # the Thursday of week 2
    post(client, ("S01|C1", week(1), 110.0), ("S01|C1", week(2), 120.0))
    state = wait_for(client, "S01|C1", week(1))
    deadline = time.monotonic() + 10
    while state["status"] != "incomplete" and time.monotonic() < deadline:
        state = origins(client)["S01|C1"]
    assert state["status"] == "incomplete" and week(2) in state["detail"]
    assert state["newest_actual"] == week(2)
    living.today = lambda: TRAINED + timedelta(weeks=3)  # week 2 is over: nothing is posted,
    assert wait_for(client, "S01|C1", week(2))["status"] == "current"  # the poll sees it


def test_a_series_left_behind_by_more_than_the_horizon_is_stale(client: TestClient) -> None:
    post(client, *[("S01|C1", week(k), 100.0 + k) for k in range(1, 6)])
    wait_for(client, "S01|C1", week(5))
    answer = forecast(client, "S02|C2")
    assert answer["origins"][0]["status"] == "stale"  # 5 weeks behind, horizon 4
    assert "5 periods" in answer["origins"][0]["detail"]
    assert answer["forecasts"][0]["ds"] == week(1)  # still answered, from its own origin
    metrics = wait_for_metrics(client, 'salescast_series{status="stale"} 3.0')
    assert 'salescast_series{status="current"} 1.0' in metrics


@pytest.mark.parametrize(("actual", "code"), [
    ({"series_id": "S99|C9", "ds": "2024-06-10", "y": 1.0}, "unknown_series"),
    ({"series_id": "S01|C1", "ds": "2024-06-03", "y": 1.0}, "before_origin"),
    ({"series_id": "S01|C1", "ds": "2024-05-27", "y": 1.0}, "before_origin"),
    ({"series_id": "S01|C1", "ds": "2024-06-12", "y": 1.0}, "not_a_period"),  # a Wednesday
])
def test_actuals_the_model_cannot_take_are_422_and_nothing_is_stored(
    client: TestClient, app_settings: Any, actual: dict[str, Any], code: str
) -> None:
    good = {"series_id": "S02|C1", "ds": week(1), "y": 5.0}
    response = client.post("/v1/actuals", json={"actuals": [good, actual]})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == code and error["field"].startswith("actuals[1]")
    assert PredictionStore(app_settings.store_url).read_actuals().empty


def test_as_of_answers_as_the_forecast_was_made_then(client: TestClient) -> None:
    post(client, ("S02|C2", week(1), 40.0))
    wait_for(client, "S02|C2", week(1))
    seen_then = forecast(client, "S02|C2")
    post(client, ("S02|C2", week(2), 50.0), ("S02|C2", week(3), 60.0))
    wait_for(client, "S02|C2", week(3))
    assert forecast(client, "S02|C2")["forecasts"][0]["yhat"] == 62.0
    audit = forecast(client, "S02|C2", as_of=week(1))
    assert audit["forecasts"] == seen_then["forecasts"]
    assert forecast(client, "S02|C2", as_of=week(0))["forecasts"][0]["yhat"] == 22.0
    early = client.post("/v1/forecast", json={"series": [{"series_id": "S02|C2"}],
                                              "as_of": "2024-05-27"})
    assert early.status_code == 422 and early.json()["error"]["field"] == "as_of"


def test_invocations_rows_carry_their_origin_on_both_paths(client: TestClient) -> None:
    post(client, ("S01|C1", week(1), 130.0))
    wait_for(client, "S01|C1", week(1))
    plain = client.post("/invocations", json={"dataframe_records": [
        {"series_id": "S01|C1", "ds": week(2)}, {"series_id": "S02|C1", "ds": week(1)}]})
    assert [(r["origin"], r["yhat"]) for r in plain.json()["predictions"]] == [
        (week(1), 132.0), (week(0), 82.0)]
    promo = client.post("/invocations", json={"dataframe_records": [
        {"series_id": "S01|C1", "ds": week(2), "promo": 1.0}]})
    assert [(r["origin"], r["yhat"]) for r in promo.json()["predictions"]] == [
        (week(1), 142.0)]
    audit = client.post("/invocations", json={
        "dataframe_records": [{"series_id": "S01|C1", "ds": week(1)}],
        "params": {"as_of": week(0)}})
    assert audit.json()["predictions"][0]["yhat"] == 102.0  # level 100 before the actual
    outside = client.post("/invocations", json={"dataframe_records": [
        {"series_id": "S01|C1", "ds": week(1)}]})  # now the origin itself
    assert outside.status_code == 422


def test_a_scenario_rolls_with_the_origin(client: TestClient) -> None:
    post(client, ("S01|C1", week(1), 130.0))
    wait_for(client, "S01|C1", week(1))
    answer = forecast(client, "S01|C1", horizon=2,
                      scenario=[{"ds": week(3), "values": {"promo": 1}}])
    assert [(r["ds"], r["yhat"]) for r in answer["forecasts"]] == [
        (week(2), 132.0), (week(3), 144.0)]
    outside = client.post("/v1/forecast", json={
        "series": [{"series_id": "S01|C1"}], "horizon": 2,
        "scenario": [{"ds": week(1), "values": {"promo": 1}}]})
    assert outside.status_code == 422
    assert outside.json()["error"]["code"] == "scenario_outside_request"


def test_every_origin_reached_is_recorded_and_a_restart_agrees(
    app_settings: Any, client: TestClient
) -> None:
    post(client, ("S02|C1", week(1), 90.0))
    wait_for(client, "S02|C1", week(1))
    post(client, ("S02|C1", week(2), 95.0))
    wait_for(client, "S02|C1", week(2))
    answer = forecast(client, "S02|C1")
    history = PredictionStore(app_settings.store_url).read_forecast_history()
    mine = history[history["series_id"] == "S02|C1"]
    assert sorted({d.date().isoformat() for d in mine["origin"]}) == [week(0), week(1), week(2)]
    assert mine.groupby("origin").size().tolist() == [4, 4, 4]
    with TestClient(create_app(app_settings)) as restarted:
        assert forecast(restarted, "S02|C1")["forecasts"] == answer["forecasts"]


def test_many_series_are_read_without_naming_each_in_the_query(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    import serving.living

    monkeypatch.setattr(serving.living, "MAX_NAMED_SERIES", 1)  # as if there were thousands
    post(client, ("S01|C1", week(1), 111.0), ("S02|C2", week(1), 33.0))
    wait_for(client, "S01|C1", week(1))
    wait_for(client, "S02|C2", week(1))
    assert forecast(client, "S02|C2")["forecasts"][0]["yhat"] == 35.0
    assert forecast(client, "S01|C2")["origins"][0]["origin"] == week(0)  # untouched


def test_realised_exog_is_stored_and_reaches_the_roll(
    client: TestClient, app_settings: Any
) -> None:
    body = {"actuals": [{"series_id": "S01|C1", "ds": week(1), "y": 120.0,
                         "values": {"promo": 1.0, "price": 8.0}},
                        {"series_id": "S02|C1", "ds": week(1), "y": 80.0}]}
    assert client.post("/v1/actuals", json=body).status_code == 200
    wait_for(client, "S01|C1", week(1))
    wait_for(client, "S02|C1", week(1))
    stored = PredictionStore(app_settings.store_url).read_actuals(exog=True)
    by_series = stored.set_index("series_id")
    assert by_series.loc["S01|C1", ["promo", "price"]].tolist() == [1.0, 8.0]
    assert by_series.loc["S02|C1", ["promo", "price"]].isna().all()  # the plan, then
    champion = client.app.state.champions.current  # type: ignore[attr-defined]
    living = client.app.state.living  # type: ignore[attr-defined]
    _, rows = living.derive(champion, stored, ["S01|C1", "S02|C1"])
    assert rows.set_index("series_id").loc["S01|C1", "price"] == 8.0
    assert living.roll(champion, ["S01|C1", "S02|C1"]) == 0  # same actuals: not recomputed


def test_a_series_rolled_alone_is_not_recomputed_for_its_neighbours_exog(
    client: TestClient,
) -> None:
    """A read of one series returns no exog columns when it posted none; its digest must
    match the one taken with a neighbour that posted some (else it is recomputed)."""
    body = {"actuals": [{"series_id": "S01|C1", "ds": week(1), "y": 120.0,
                         "values": {"promo": 1.0}},
                        {"series_id": "S02|C1", "ds": week(1), "y": 80.0}]}
    assert client.post("/v1/actuals", json=body).status_code == 200
    wait_for(client, "S01|C1", week(1))
    wait_for(client, "S02|C1", week(1))
    champion = client.app.state.champions.current  # type: ignore[attr-defined]
    living = client.app.state.living  # type: ignore[attr-defined]
    assert living.roll(champion, None) == 0
    assert living.roll(champion, ["S02|C1"]) == 0


def test_an_exogenous_value_the_model_does_not_take_is_422(
    client: TestClient, app_settings: Any
) -> None:
    body = {"actuals": [{"series_id": "S01|C1", "ds": week(1), "y": 1.0,
                         "values": {"weather": 3.0}}]}
    response = client.post("/v1/actuals", json=body)
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "actuals[0].values.weather"
    assert PredictionStore(app_settings.store_url).read_actuals().empty
