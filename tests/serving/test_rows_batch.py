"""The batch path of /v1/forecast (serving.rows_batch): read like pydantic reads, answered
like the general path, logged whole; every other body keeps the general path's answer.

The toy champion (tests/serving/_model.py): four weekly series, origin 2024-06-03,
horizon 4 weeks (2024-06-10 .. 2024-07-01).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from serving.app import create_app
from serving.forecasting import Limits, origins_json, plan_forecast
from serving.rows_batch import plan_rows_batch, read_rows_batch
from serving.schemas import ForecastRequest
from tests.serving.conftest import API_KEY, MlflowStore, Registered, serving_settings

DATES = ["2024-06-10", "2024-06-17", "2024-06-24", "2024-07-01"]
SERIES = ["S01|C1", "S01|C2", "S02|C1", "S02|C2"]
ROW = '{"series_id":"S01|C1","ds":"2024-06-10"}'


def _rows_body(rows: list[tuple[str, str]], **extra: Any) -> bytes:
    return json.dumps({"rows": [{"series_id": s, "ds": d} for s, d in rows]} | extra).encode()


GRID = [(s, d) for s in SERIES for d in DATES]  # every series x horizon, as batches ask
MIXED = [GRID[5], GRID[0], GRID[1], GRID[2], GRID[15], GRID[5], GRID[9]]  # any order, repeats


# --- reading: the batch shape only, and as pydantic reads it ------------------------------

@pytest.mark.parametrize(("raw", "batch"), [
    (b'{"rows":[' + ROW.encode() + b"]}", True),
    (b' { "rows" : [ {"ds": "2024-06-10", "series_id": "S01|C1"} ] } \n', True),
    (b'{"rows":[{"series_id":"x","series_id":"S01|C1","ds":"2024-06-10"}]}', True),  # last wins
    (_rows_body(GRID), True),
    (b'{"rows":[' + ROW.encode() + b'],"explain":false}', False),  # another key
    (b'{"rows":[{"series_id":"S01|C1","ds":"2024-06-10","promo":1}]}', False),
    (b'{"rows":[{"series_id":"S01|C1"}]}', False),
    (b'{"rows":[{"series_id":1,"ds":"2024-06-10"}]}', False),
    (b'{"rows":[{"series_id":"","ds":"2024-06-10"}]}', False),
    (b'{"rows":[{"series_id":"S01|C1","ds":"2024-6-10"}]}', False),
    (b'{"rows":[{"series_id":"S01|C1","ds":"2024-06-10T00:00:00"}]}', False),
    (b'{"rows":[{"series_id":"S01|C1","ds":"2024-02-30"}]}', False),
    (b'{"rows":[{"series_id":"S01|C1","ds":20240610}]}', False),
    ('{"rows":[{"series_id":"S01|C1","ds":"２０２４-06-10"}]}'.encode(), False),
    (b'{"rows":[{"series_id":"\\u0053\\ud800","ds":"2024-06-10"}]}', False),  # an escape
    (b'{"rows":[]}', False),
    (b'{"rows":{}}', False),
    (b'[' + ROW.encode() + b"]", False),
    (b'{"rows":[' + ROW.encode() + b",]}", False),  # not JSON
    (b"\xef\xbb\xbf" + b'{"rows":[' + ROW.encode() + b"]}", False),  # a UTF-8 BOM
    (('{"rows":[' + ROW + "]}").encode("utf-16"), False),
    (b'{"rows":' + b"[" * 100_000 + b"]" * 100_000 + b"}", False),
])
def test_the_batch_shape_is_read_as_pydantic_reads_it(raw: bytes, batch: bool) -> None:
    found = read_rows_batch(raw)
    assert (found is not None) is (batch is True)
    if found is None:
        return
    request = ForecastRequest.model_validate_json(raw)
    assert request.rows is not None
    assert [(r.series_id, r.ds.isoformat()) for r in request.rows] == list(
        zip(found.series_ids, found.ds, strict=True))
    assert request == found.validated()


# --- planning and answering: as the general path does ---------------------------------

@pytest.fixture(scope="module")
def client(mlflow_store: MlflowStore, toy_champion: Registered,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """The toy champion served with at most 20 rows a request, overrides read at once."""
    settings = serving_settings(mlflow_store, tmp_path_factory.mktemp("rows-batch"),
                                max_rows=20, api_key=API_KEY, override_refresh_seconds=0)
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def app(client: TestClient) -> FastAPI:
    return client.app  # type: ignore[return-value]


@pytest.mark.parametrize("rows", [GRID, MIXED, GRID[:1]])
def test_the_batch_plan_is_the_general_plan(app: FastAPI, rows: list[tuple[str, str]]) -> None:
    champion, limits = app.state.champions.current, Limits(20)
    batch = read_rows_batch(_rows_body(rows))
    assert batch is not None
    plan = plan_rows_batch(batch, champion, limits)
    assert plan is not None
    state, entries = champion.take(list(dict.fromkeys(s for s, _ in rows)))
    general = plan_forecast(batch.validated(), champion, limits, entries, state)
    assert (plan.cells, plan.entries, plan.errors, plan.overrides) == (
        general.cells, general.entries, general.errors, general.overrides)
    assert plan.state is general.state


@pytest.mark.parametrize("rows", [
    [*GRID[:3], ("S09|C9", DATES[0])],  # an unknown series: answered with an error entry
    [("S01|C1", "2024-06-11")],  # not a forecast date
    [("S01|C1", "2024-07-08")],  # past the horizon
    [*GRID, *GRID[:5]],  # 21 rows: over the limit of 20
])
def test_batches_the_batch_path_cannot_plan_go_the_general_way(
    app: FastAPI, rows: list[tuple[str, str]]
) -> None:
    batch = read_rows_batch(_rows_body(rows))
    assert batch is not None
    assert plan_rows_batch(batch, app.state.champions.current, Limits(20)) is None


def _post(client: TestClient, body: bytes) -> tuple[int, bytes]:
    response = client.post("/v1/forecast", content=body, headers={
        "content-type": "application/json", "x-request-id": "same-request"})
    return response.status_code, response.content


@pytest.mark.parametrize("rows", [GRID, MIXED, [*GRID[:3], ("S09|C9", DATES[0])],
                                  [("S01|C1", "2024-06-11")], [*GRID, *GRID[:5]],
                                  [("S09|C9", DATES[0])]])
def test_the_answer_is_the_general_paths_byte_for_byte(
    client: TestClient, rows: list[tuple[str, str]]
) -> None:
    """The same rows with ``"explain": false`` (the same request) take the general path."""
    fast = _post(client, _rows_body(rows))
    general = _post(client, _rows_body(rows, explain=False))
    assert fast == general
    assert fast[0] in (200, 404, 413, 422)


def test_overrides_apply_on_the_batch_path(client: TestClient) -> None:
    override = {"series_id": "S02|C2", "ds": [DATES[1]], "value": 7.0, "author": "li.wei",
                "reason": "supply"}
    created = client.post("/v1/overrides", json=override, headers={"X-API-Key": API_KEY})
    assert created.status_code == 201, created.text
    status, body = _post(client, _rows_body(GRID))
    cell = json.loads(body)["forecasts"][13]  # S02|C2, the second week
    assert (status, cell["yhat"], cell["override_id"]) == (200, 7.0, created.json()["id"])
    assert _post(client, _rows_body(GRID, explain=False)) == (status, body)
    client.delete(f"/v1/overrides/{created.json()['id']}", params={"revoked_by": "li.wei"},
                  headers={"X-API-Key": API_KEY})


def test_every_answered_row_of_the_batch_path_is_logged(app: FastAPI, client: TestClient
                                                         ) -> None:
    rows = MIXED
    ids = [f"batch-{i}" for i in range(5)]
    answers = [client.post("/v1/forecast", content=_rows_body(rows), headers={
        "content-type": "application/json", "x-request-id": i}).json() for i in ids]
    assert app.state.prediction_log.flush(30)
    frame = app.state.store.read_predictions()
    logged = frame[frame["request_id"].isin(ids)]
    assert len(logged) == len(ids) * len(rows)
    for request_id, answer in zip(ids, answers, strict=True):
        mine = logged[logged["request_id"] == request_id]
        days = mine["ds"].dt.strftime("%Y-%m-%d")
        assert list(zip(mine["series_id"], days, mine["yhat"], strict=True)) == [
            (r["series_id"], r["ds"], r["yhat"]) for r in answer["forecasts"]]


def test_a_series_status_follows_the_clock_it_is_asked_with(app: FastAPI) -> None:
    """The entry keeps its encoded origins item per clock: a later clock is re-encoded."""
    champion = app.state.champions.current
    batch = read_rows_batch(_rows_body(GRID[:1]))
    assert batch is not None
    plan = plan_rows_batch(batch, champion, Limits(20))
    assert plan is not None
    origin = plan.entries["S01|C1"].origin.origin
    now = json.loads(origins_json(plan, champion, origin))
    later = json.loads(origins_json(plan, champion, origin + timedelta(weeks=5)))
    assert json.loads(origins_json(plan, champion, origin)) == now
    assert now[0]["status"] == "current" and later[0]["status"] == "stale"
    assert "5 periods" in later[0]["detail"] and origin == date(2024, 6, 3)


def test_a_batch_body_before_the_champion_loads_is_503_and_a_bad_one_422(
    mlflow_store: MlflowStore, tmp_path: Path
) -> None:
    """The body is read before the champion is asked for, on both paths."""
    unstarted = TestClient(create_app(serving_settings(mlflow_store, tmp_path)))  # no lifespan
    assert _post(unstarted, _rows_body(GRID[:2]))[0] == 503
    assert _post(unstarted, _rows_body([("S01|C1", "June")]))[0] == 422
