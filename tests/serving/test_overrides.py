"""Overrides through the real API and store: served beside the model's number, logged,
listed, revoked, kept across champion swaps, seen by another app on the same store.

The toy champion forecasts ``level + 2 * step`` with bounds +-5 (tests/serving/_model.py):
S01|C1 from 2024-06-03 is 102, 104, 106, 108 for 2024-06-10 .. 2024-07-01.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from serving.app import create_app
from serving.overrides import (
    NewOverride,
    insert_override,
    list_overrides,
    revoke_override,
    signature,
    winning_cells,
)
from serving.store import PredictionStore, utc_now
from tests.serving.conftest import API_KEY, MlflowStore, Registered, register_toy, serving_settings

KEY = {"X-API-Key": API_KEY}
S01C1 = {"series": [{"series_id": "S01|C1"}], "horizon": 4}


def _override(**fields: Any) -> dict[str, Any]:
    body = {"series_id": "S01|C1", "ds": ["2024-06-17"], "value": 150.0, "author": "maria",
            "reason": "customer_order", "note": "ACME order"}
    return body | fields


@pytest.fixture
def app(mlflow_store: MlflowStore, toy_champion: Registered, tmp_path: Path) -> FastAPI:
    return create_app(serving_settings(mlflow_store, tmp_path, api_key=API_KEY,
                                       override_refresh_seconds=0))


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as test_client:
        yield test_client


def _post(client: TestClient, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/v1/overrides", json=body, headers=KEY)
    assert response.status_code == 201, response.text
    return response.json()


def _rows(client: TestClient, request: dict[str, Any] = S01C1) -> dict[str, dict[str, Any]]:
    response = client.post("/v1/forecast", json=request)
    assert response.status_code == 200, response.text
    return {row["ds"]: row for row in response.json()["forecasts"]}


def test_a_value_override_is_served_beside_the_model_number(client: TestClient) -> None:
    created = _post(client, _override())
    assert created["periods"] == ["2024-06-17"] and created["active"] is True
    assert (created["author"], created["reason"], created["note"]) == (
        "maria", "customer_order", "ACME order")
    rows = _rows(client)
    cell = rows["2024-06-17"]
    assert (cell["yhat"], cell["yhat_model"], cell["override_id"]) == (150.0, 104.0,
                                                                        created["id"])
    assert (cell["yhat_lower"], cell["yhat_upper"]) == (145.0, 155.0)  # shifted, same width
    plain = rows["2024-06-10"]
    assert (plain["yhat"], plain["yhat_model"], plain["override_id"]) == (102.0, 102.0, None)


def test_a_percent_override_by_keys_over_a_range_scales_the_interval(
    client: TestClient,
) -> None:
    created = _post(client, _override(series_id=None, keys={"store": "S02", "category": "C1"},
                                      ds=None, ds_from="2024-06-10", ds_to="2024-06-17",
                                      value=None, pct_change=20, reason="promotion"))
    assert created["series_id"] == "S02|C1"
    assert created["periods"] == ["2024-06-10", "2024-06-17"]
    rows = _rows(client, {"series": [{"series_id": "S02|C1"}], "horizon": 3})
    first = rows["2024-06-10"]  # the model: 80 + 2 = 82, bounds 77 .. 87
    assert first["yhat_model"] == 82.0 and first["override_id"] == created["id"]
    assert [first[k] for k in ("yhat", "yhat_lower", "yhat_upper")] == pytest.approx(
        [82 * 1.2, 77 * 1.2, 87 * 1.2])
    assert rows["2024-06-17"]["yhat"] == pytest.approx(84 * 1.2)
    assert rows["2024-06-24"]["override_id"] is None


def test_a_scenario_answer_gets_the_override_of_its_cell(client: TestClient) -> None:
    created = _post(client, _override(value=None, pct_change=-50))
    request = S01C1 | {"scenario": [{"values": {"promo": 1}}]}
    cell = _rows(client, request)["2024-06-17"]
    assert cell["yhat_model"] == 114.0  # promo adds 10
    assert (cell["yhat"], cell["override_id"]) == (57.0, created["id"])


def _flushed_log(app: FastAPI) -> Any:
    assert app.state.prediction_log.flush()
    return app.state.store.read_predictions()


def test_the_log_keeps_the_model_number_the_final_one_and_the_override(
    app: FastAPI, client: TestClient,
) -> None:
    created = _post(client, _override())
    _rows(client)
    logged = _flushed_log(app).set_index("ds")
    assert len(logged) == 4
    cell = logged.loc["2024-06-17"]
    assert (cell["yhat"], cell["yhat_final"], cell["override_id"]) == (104.0, 150.0,
                                                                        created["id"])
    others = logged.drop(index="2024-06-17")
    assert others["yhat_final"].isna().all() and others["override_id"].isna().all()


def test_newest_wins_and_revoking_goes_back_step_by_step(client: TestClient) -> None:
    older = _post(client, _override(value=150.0))
    newer = _post(client, _override(value=170.0, author="li", reason="supply"))
    assert _rows(client)["2024-06-17"]["yhat"] == 170.0
    listed = client.get("/v1/overrides", params={"series_id": "S01|C1"}).json()["overrides"]
    assert [o["id"] for o in listed] == [newer["id"], older["id"]]  # newest first

    gone = client.delete(f"/v1/overrides/{newer['id']}", params={"revoked_by": "boss"},
                         headers=KEY)
    assert gone.status_code == 200, gone.text
    assert gone.json()["active"] is False and gone.json()["revoked_by"] == "boss"
    assert _rows(client)["2024-06-17"]["yhat"] == 150.0
    client.delete(f"/v1/overrides/{older['id']}", params={"revoked_by": "boss"}, headers=KEY)
    cell = _rows(client)["2024-06-17"]
    assert (cell["yhat"], cell["override_id"]) == (104.0, None)

    assert client.get("/v1/overrides").json()["overrides"] == []
    kept = client.get("/v1/overrides", params={"include_revoked": True}).json()["overrides"]
    assert [(o["id"], o["active"], o["revoked_by"]) for o in kept] == [
        (newer["id"], False, "boss"), (older["id"], False, "boss")]
    again = client.delete(f"/v1/overrides/{older['id']}", params={"revoked_by": "x"},
                          headers=KEY)
    assert again.status_code == 409 and again.json()["error"]["code"] == "already_revoked"
    assert client.delete("/v1/overrides/999", params={"revoked_by": "x"},
                         headers=KEY).status_code == 404


def test_invocations_stay_the_raw_model(client: TestClient) -> None:
    _post(client, _override())
    body = {"dataframe_records": [{"series_id": "S01|C1", "ds": "2024-06-17"}]}
    assert client.post("/invocations", json=body).json()["predictions"][0]["yhat"] == 104.0


def test_an_override_survives_a_champion_swap(mlflow_store: MlflowStore, tmp_path: Path) -> None:
    name = f"toy_override_swap_{uuid.uuid4().hex[:6]}"
    register_toy(mlflow_store, name, offset=0.0)
    settings = serving_settings(mlflow_store, tmp_path, model_name=name, api_key=API_KEY)
    with TestClient(create_app(settings)) as client:
        value = _post(client, _override())
        pct = _post(client, _override(ds=["2024-06-24"], value=None, pct_change=10))
        second = register_toy(mlflow_store, name, offset=1000.0)
        reload = client.post("/v1/model/reload", headers=KEY)
        assert reload.json()["current"]["version"] == second.version
        rows = _rows(client)
    assert (rows["2024-06-17"]["yhat"], rows["2024-06-17"]["yhat_model"]) == (150.0, 1104.0)
    assert rows["2024-06-17"]["override_id"] == value["id"]
    assert rows["2024-06-24"]["yhat"] == pytest.approx(1106.0 * 1.1)
    assert rows["2024-06-24"]["override_id"] == pct["id"]


def test_another_app_on_the_same_store_sees_and_loses_the_override(
    mlflow_store: MlflowStore, toy_champion: Registered, tmp_path: Path,
) -> None:
    settings = serving_settings(mlflow_store, tmp_path, api_key=API_KEY,
                                override_refresh_seconds=0)
    with TestClient(create_app(settings)) as writer, TestClient(create_app(settings)) as other:
        assert _rows(other)["2024-06-17"]["override_id"] is None
        created = _post(writer, _override())
        assert _rows(other)["2024-06-17"]["override_id"] == created["id"]
        writer.delete(f"/v1/overrides/{created['id']}", params={"revoked_by": "x"}, headers=KEY)
        assert _rows(other)["2024-06-17"]["override_id"] is None


def test_a_restarted_app_serves_the_stored_override(
    mlflow_store: MlflowStore, toy_champion: Registered, tmp_path: Path,
) -> None:
    settings = serving_settings(mlflow_store, tmp_path, api_key=API_KEY)
    with TestClient(create_app(settings)) as client:
        created = _post(client, _override())
    with TestClient(create_app(settings)) as client:
        assert _rows(client)["2024-06-17"]["override_id"] == created["id"]


@pytest.mark.parametrize("call", [
    lambda c: c.post("/v1/overrides", json=_override()),
    lambda c: c.post("/v1/overrides", json=_override(), headers={"X-API-Key": "wrong" * 5}),
    lambda c: c.delete("/v1/overrides/1", params={"revoked_by": "x"}),
], ids=["post-no-key", "post-wrong-key", "delete-no-key"])
def test_writes_need_the_key(client: TestClient, call: Callable[[TestClient], Any]) -> None:
    response = call(client)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"
    assert client.get("/v1/overrides").json()["overrides"] == []


BAD = [
    ({"series_id": "S09|C9"}, "series_id", "unknown_series"),
    ({"series_id": None, "keys": {"store": "S09", "category": "C1"}}, "keys", "unknown_series"),
    ({"series_id": None, "keys": {"shop": "S01"}}, "keys", "invalid_keys"),
    ({"series_id": "S01|C1\x07"}, "series_id", "validation_error"),
    ({"ds": ["2024-06-18"]}, "ds[0]", "not_a_period"),  # a Tuesday
    ({"ds": ["2024-06-10", "2024-06-03"]}, "ds[1]", "before_origin"),
    ({"ds": ["2024-06-31"]}, "ds[0]", "validation_error"),
    ({"ds": None, "ds_from": "2024-06-10", "ds_to": "2034-06-13"}, "ds_to", "not_a_period"),
    ({"ds": None, "ds_from": "2024-06-10", "ds_to": "2034-06-12"}, "ds_to", "too_many_periods"),
    ({"value": 1e16}, "value", "validation_error"),
    ({"value": "150"}, "value", "validation_error"),
    ({"value": None, "pct_change": -101}, "pct_change", "validation_error"),
    ({"author": ""}, "author", "validation_error"),
    ({"author": "   "}, "author", "validation_error"),
    ({"author": "ma\x00ria"}, "author", "validation_error"),
    ({"reason": "gut_feeling"}, "reason", "validation_error"),
    ({"note": "bad\x1bnote"}, "note", "validation_error"),
    ({"colour": "red"}, "colour", "validation_error"),
]


@pytest.mark.parametrize(("change", "field", "code"), BAD,
                         ids=[f"{field}-{code}-{i}" for i, (_, field, code) in enumerate(BAD)])
def test_bad_input_is_a_422_naming_the_field_and_stores_nothing(
    client: TestClient, change: dict[str, Any], field: str, code: str,
) -> None:
    response = client.post("/v1/overrides", json=_override(**change), headers=KEY)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert (error["field"], error["code"]) == (field, code), error
    assert client.get("/v1/overrides", params={"include_revoked": True}).json()[
        "overrides"] == []


@pytest.mark.parametrize(("change", "named"), [
    ({"pct_change": 5}, "'value' or 'pct_change'"),
    ({"value": None}, "'value' or 'pct_change'"),
    ({"keys": {"store": "S01", "category": "C1"}}, "'series_id' or 'keys'"),
    ({"ds_from": "2024-06-10"}, "'ds'"),
    ({"ds": None, "ds_from": "2024-06-17", "ds_to": "2024-06-10"}, "'ds_to'"),
])
def test_contradictory_fields_are_a_422_that_names_them(
    client: TestClient, change: dict[str, Any], named: str,
) -> None:
    response = client.post("/v1/overrides", json=_override(**change), headers=KEY)
    assert response.status_code == 422 and named in response.json()["error"]["message"]
    assert client.get("/v1/overrides").json()["overrides"] == []


def test_a_non_finite_value_is_refused(client: TestClient) -> None:
    body = '{"series_id": "S01|C1", "ds": ["2024-06-17"], "value": NaN, "author": "a", ' \
           '"reason": "other"}'
    response = client.post("/v1/overrides", content=body,
                           headers=KEY | {"content-type": "application/json"})
    assert response.status_code == 422 and response.json()["error"]["field"] == "value"


# --- the store, on SQLite and PostgreSQL ------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[PredictionStore]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'predictions.db'}"
    else:
        url = request.getfixturevalue("pg_stack").new_database(f"ovr_{uuid.uuid4().hex[:16]}")
    opened = PredictionStore(url)
    yield opened
    opened.dispose()


def _new(value: float, *periods: str) -> NewOverride:
    from datetime import date

    return NewOverride("S01|C1", tuple(date.fromisoformat(p) for p in periods), value, None,
                       "maria", "supply")


def test_the_store_keeps_overrides_and_their_revocation(any_store: PredictionStore) -> None:
    assert signature(any_store) == (0, 0)
    first = insert_override(any_store, _new(1.0, "2024-06-10", "2024-06-17"))
    second = insert_override(any_store, _new(2.0, "2024-06-17"))
    assert signature(any_store) == (second.id, 0)
    cells = winning_cells(list_overrides(any_store))
    assert {ds: o.id for ds, o in cells["S01|C1"].items()} == {
        "2024-06-10": first.id, "2024-06-17": second.id}
    assert revoke_override(any_store, second.id, "boss") is True
    assert revoke_override(any_store, second.id, "boss") is False  # once only
    assert signature(any_store) == (second.id, 1)
    assert [o.id for o in list_overrides(any_store)] == [first.id]
    revoked = list_overrides(any_store, active_only=False)[0]
    assert (revoked.revoked_by, revoked.active) == ("boss", False)


def test_the_log_writes_overridden_and_plain_rows_together(any_store: PredictionStore) -> None:
    now = utc_now()
    head = ("r1", now, "toy", "1")
    plain = (*head, "S01|C1", "2024-06-10", 102.0, 97.0, 107.0, None, "2024-06-03")
    overridden = (*head, "S01|C1", "2024-06-17", 104.0, 99.0, 109.0, None, "2024-06-03",
                  150.0, 7)
    any_store.write_predictions([plain, overridden])
    logged = any_store.read_predictions().sort_values("ds")
    assert logged["yhat"].tolist() == [102.0, 104.0]
    assert math.isnan(logged["yhat_final"].iloc[0]) and logged["yhat_final"].iloc[1] == 150.0
    assert logged["override_id"].iloc[1] == 7


def test_a_store_from_before_overrides_gets_the_new_columns(tmp_path: Path) -> None:
    import sqlalchemy as sa

    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE predictions (id INTEGER PRIMARY KEY, request_id VARCHAR(64) NOT NULL,"
            " created_at DATETIME NOT NULL, model_name VARCHAR(255) NOT NULL, model_version "
            "VARCHAR(32) NOT NULL, series_id VARCHAR(255) NOT NULL, ds DATE NOT NULL, yhat "
            "FLOAT, yhat_lower FLOAT, yhat_upper FLOAT, features TEXT, origin DATE)")
    engine.dispose()
    store = PredictionStore(url)
    columns = {c["name"] for c in sa.inspect(store.engine).get_columns("predictions")}
    assert {"yhat_final", "override_id"} <= columns
    assert sa.inspect(store.engine).has_table("overrides")
    store.dispose()


def test_a_level_sums_the_final_numbers_of_its_series(client: TestClient) -> None:
    """Coherent levels: the store's roll-up adds the overridden number, not the model's."""
    level = {"level": {"store": "S01"}, "horizon": 2}
    before = {p["ds"]: p["yhat"] for p in client.post("/v1/forecast", json=level)
              .json()["forecasts"]}
    created = _post(client, _override(value=1000.0))
    answer = client.post("/v1/forecast", json=level).json()
    after = {p["ds"]: p["yhat"] for p in answer["forecasts"]}
    members = [{"series_id": s} for s in answer["series_ids"]]
    series = client.post("/v1/forecast", json={"series": members, "horizon": 2}).json()
    finals: dict[str, float] = {}
    for row in series["forecasts"]:
        finals[row["ds"]] = finals.get(row["ds"], 0.0) + row["yhat"]
    assert after == pytest.approx(finals)
    model = next(r["yhat_model"] for r in series["forecasts"]
                 if r["override_id"] == created["id"])
    assert after["2024-06-17"] == pytest.approx(before["2024-06-17"] + 1000.0 - model)
