"""POST /invocations answers like MLflow's own scoring server for the same model and input."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

SPLIT = {"dataframe_split": {"columns": ["series_id", "ds"],
                             "data": [["S01|C2", "2024-06-17"], ["S02|C1", "2024-06-10"]]}}
SPLIT_WITH_INDEX = {"dataframe_split": {"index": [7, 3], "columns": ["series_id", "ds"],
                                        "data": [["S01|C1", "2024-07-01T00:00:00"],
                                                 ["S02|C2", "2024-06-24T00:00:00"]]}}
RECORDS = {"dataframe_records": [{"series_id": "S01|C1", "ds": "2024-06-24"},
                                 {"series_id": "S02|C2", "ds": "2024-06-10"}]}
RECORDS_WITH_EXOG = {"dataframe_records": [
    {"series_id": "S01|C1", "ds": "2024-06-24", "promo": 1.0, "price": 8.0},
    {"series_id": "S02|C2", "ds": "2024-06-10", "promo": 0.0, "price": 12.5},
]}


WITH_PARAMS = {**SPLIT, "params": {"level": 0.9}}  # through model.predict, as MLflow does


@pytest.fixture(scope="module")
def mlflow_server(toy_model: Any) -> Iterator[TestClient]:
    """MLflow's scoring server (the app `mlflow models serve` runs) on the same model."""
    from mlflow.pyfunc import scoring_server

    saved = dict(os.environ)
    app = scoring_server.init(toy_model)  # sets a process-wide env flag: restored below
    os.environ.clear()
    os.environ.update(saved)
    with TestClient(app) as test_client:
        yield test_client


@pytest.mark.parametrize(
    "payload", [SPLIT, SPLIT_WITH_INDEX, RECORDS, RECORDS_WITH_EXOG, WITH_PARAMS],
    ids=["split", "split-index", "records", "records-exog", "params"],
)
def test_answers_equal_the_mlflow_scoring_server(
    client: TestClient, mlflow_server: TestClient, payload: dict[str, Any]
) -> None:
    ours = client.post("/invocations", json=payload)
    theirs = mlflow_server.post("/invocations", json=payload)
    assert ours.status_code == theirs.status_code == 200, ours.text
    assert ours.json() == theirs.json()
    assert set(ours.json()) == {"predictions"}


def test_csv_bodies_score_like_the_same_frame_in_json(
    client: TestClient, mlflow_server: TestClient
) -> None:
    # MLflow 3.17's own CSV parsing refuses a datetime signature, so compare with its JSON
    csv = "series_id,ds,promo\nS01|C1,2024-06-10,1\nS02|C1,2024-06-17,0\n"
    ours = client.post("/invocations", content=csv, headers={"content-type": "text/csv"})
    split = {"dataframe_split": {"columns": ["series_id", "ds", "promo"],
                                 "data": [["S01|C1", "2024-06-10", 1.0],
                                          ["S02|C1", "2024-06-17", 0.0]]}}
    assert ours.status_code == 200, ours.text
    assert ours.json() == mlflow_server.post("/invocations", json=split).json()


def test_precomputed_rows_keep_mlflow_encoding_byte_for_byte(
    client: TestClient, mlflow_server: TestClient
) -> None:
    assert client.post("/invocations", json=SPLIT).content == \
        mlflow_server.post("/invocations", json=SPLIT).content


def test_unknown_series_is_404_not_500(client: TestClient) -> None:
    payload = {"dataframe_records": [{"series_id": "S77|C7", "ds": "2024-06-10"}]}
    response = client.post("/invocations", json=payload)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "unknown_series"
    assert "S77|C7" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("body", "content_type", "status", "code"),
    [
        (b'{"inputs": [[1, 2]]}', "application/json", 422, "invalid_format"),
        (b'{"dataframe_records": [{"series_id": "S01|C1"}]}', "application/json", 422,
         "missing_column"),
        (b'{"dataframe_records": [{"series_id": "S01|C1", "ds": "2024-06-10", "discount": 1}]}',
         "application/json", 422, "unknown_column"),
        (b'{"dataframe_records": [{"series_id": "S01|C1", "ds": "2025-01-01"}]}',
         "application/json", 422, "model_rejected_input"),
        (b"{not json", "application/json", 422, "invalid_json"),
        (b"<xml/>", "application/xml", 415, "unsupported_media_type"),
        (b"", "text/csv", 422, "invalid_csv"),
        (b'series_id,ds\n"S01|C1,2024-06-10\n', "text/csv", 422, "invalid_csv"),
    ],
)
def test_bad_payloads_are_clear_json_errors(
    client: TestClient, body: bytes, content_type: str, status: int, code: str
) -> None:
    response = client.post("/invocations", content=body, headers={"content-type": content_type})
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code


def test_ping_answers_like_mlflow(client: TestClient, mlflow_server: TestClient) -> None:
    for path in ("/ping", "/health"):
        ours, theirs = client.get(path), mlflow_server.get(path)
        assert (ours.status_code, ours.text) == (theirs.status_code, theirs.text)
        assert ours.headers["content-type"].startswith("text/plain")  # as declared
    schema = client.get("/openapi.json").json()["paths"]
    for path in ("/ping", "/health", "/version"):
        assert list(schema[path]["get"]["responses"]["200"]["content"]) == ["text/plain"]


@pytest.mark.parametrize(("params", "field"), [
    ({"level": "x"}, "params.level"), ({"level": 2}, "params.level"),
    ({"level": 0}, "params.level"), ({"level": True}, "params.level"),
    ({"levels": 0.9}, "params.levels"), ({"as_of": "soon"}, "params.as_of"),
], ids=["string", "above-one", "zero", "boolean", "unknown-name", "bad-as-of"])
def test_bad_params_are_422_naming_the_param(client: TestClient, params: dict[str, Any],
                                             field: str) -> None:
    response = client.post("/invocations", json={**SPLIT, "params": params})
    assert response.status_code == 422, response.text
    assert response.json()["error"]["field"] == field


def test_a_timestamp_names_its_day(client: TestClient) -> None:
    """A noon timestamp inside the horizon is that day, not 'outside the horizon'."""
    noon = {"dataframe_split": {"columns": ["series_id", "ds"],
                                "data": [["S01|C2", "2024-06-17T12:00:00"]]}}
    day = {"dataframe_split": {"columns": ["series_id", "ds"], "data": [["S01|C2", "2024-06-17"]]}}
    answered = client.post("/invocations", json=noon)
    assert answered.status_code == 200, answered.text
    assert answered.json() == client.post("/invocations", json=day).json()
    garbage = client.post("/invocations", json={"dataframe_split": {
        "columns": ["series_id", "ds"], "data": [["S01|C2", "next monday"]]}})
    assert garbage.status_code == 422 and garbage.json()["error"]["field"] == "ds"


def test_openapi_says_exactly_one_frame_format_and_which_params(client: TestClient) -> None:
    body = client.get("/openapi.json").json()["paths"]["/invocations"]["post"]["requestBody"]
    schema = body["content"]["application/json"]["schema"]
    assert schema["oneOf"] == [{"required": ["dataframe_split"]},
                               {"required": ["dataframe_records"]}]
    assert set(schema["properties"]["params"]["properties"]) == {"level", "as_of"}
    both = {**SPLIT, **RECORDS}
    assert client.post("/invocations", json=both).json()["error"]["code"] == "invalid_format"
