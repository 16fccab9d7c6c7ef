"""POST /v1/forecast: answers equal the pyfunc model's own predictions; every error is JSON."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.serving.conftest import Registered, model_predict

ORIGIN_DATES = ["2024-06-10", "2024-06-17", "2024-06-24", "2024-07-01"]


def _forecast(client: TestClient, payload: dict[str, Any], status: int = 200) -> dict[str, Any]:
    response = client.post("/v1/forecast", json=payload)
    assert response.status_code == status, response.text
    return response.json()


def _values(rows: list[dict[str, Any]]) -> list[tuple[str, str, float, float, float]]:
    keys = ("series_id", "ds", "yhat", "yhat_lower", "yhat_upper")
    return [tuple(row[k] for k in keys) for row in rows]  # type: ignore[misc]


def _expected(toy_model: Any, rows: list[dict[str, Any]]) -> list[tuple]:
    frame = model_predict(toy_model, rows)
    frame["ds"] = frame["ds"].dt.strftime("%Y-%m-%d")
    return [tuple(r) for r in frame[["series_id", "ds", "yhat", "yhat_lower", "yhat_upper"]]
            .itertuples(index=False)]


def test_series_and_horizon_equal_the_models_own_predictions(
    client: TestClient, toy_model: Any, toy_champion: Registered
) -> None:
    body = _forecast(client, {"series": [{"series_id": "S02|C1"}, {"series_id": "S01|C2"}],
                              "horizon": 3})
    asked = [{"series_id": s, "ds": d} for s in ("S02|C1", "S01|C2") for d in ORIGIN_DATES[:3]]
    assert _values(body["forecasts"]) == _expected(toy_model, asked)
    assert body["model"] == {"name": "toy", "version": toy_champion.version,
                             "run_id": toy_champion.run_id}
    assert body["errors"] == []
    assert len(body["request_id"]) >= 16


def test_default_horizon_is_the_models_and_keys_name_a_series(client: TestClient) -> None:
    body = _forecast(client, {"series": [{"keys": {"category": "C2", "store": "S02"}}]})
    assert [row["ds"] for row in body["forecasts"]] == ORIGIN_DATES
    assert {row["series_id"] for row in body["forecasts"]} == {"S02|C2"}
    # level 20 + 2 per step, interval +-5 (the toy model's definition)
    assert [row["yhat"] for row in body["forecasts"]] == [22.0, 24.0, 26.0, 28.0]


def test_explicit_rows_keep_their_order(client: TestClient, toy_model: Any) -> None:
    rows = [{"series_id": "S01|C1", "ds": ORIGIN_DATES[3]},
            {"series_id": "S02|C2", "ds": ORIGIN_DATES[0]},
            {"series_id": "S01|C1", "ds": ORIGIN_DATES[1]}]
    body = _forecast(client, {"rows": rows})
    assert _values(body["forecasts"]) == _expected(toy_model, rows)


def test_scenario_values_reach_the_model_only_where_they_apply(
    client: TestClient, toy_model: Any
) -> None:
    payload = {
        "series": [{"series_id": "S01|C1"}, {"series_id": "S02|C2"}], "horizon": 2,
        "scenario": [{"values": {"price": 9.0}},
                     {"series_id": "S01|C1", "ds": ORIGIN_DATES[1], "values": {"promo": 1}}],
    }
    body = _forecast(client, payload)
    scenario_rows = [
        {"series_id": "S01|C1", "ds": ORIGIN_DATES[0], "price": 9.0},
        {"series_id": "S01|C1", "ds": ORIGIN_DATES[1], "price": 9.0, "promo": 1.0},
        {"series_id": "S02|C2", "ds": ORIGIN_DATES[0], "price": 9.0},
        {"series_id": "S02|C2", "ds": ORIGIN_DATES[1], "price": 9.0},
    ]  # each predicted alone: a row without promo must not get one
    expected = [_expected(toy_model, [row])[0] for row in scenario_rows]
    assert _values(body["forecasts"]) == expected
    plain = _forecast(client, {"series": [{"series_id": "S01|C1"}], "horizon": 2})
    # the promo adds 10 and a price 1 lower adds 3 on top of the no-scenario forecast
    assert body["forecasts"][1]["yhat"] - plain["forecasts"][1]["yhat"] == pytest.approx(13.0)


def test_later_scenario_entries_override_earlier_ones(client: TestClient) -> None:
    series = {"series": [{"series_id": "S01|C1"}, {"series_id": "S02|C2"}], "horizon": 1}
    plain = [r["yhat"] for r in _forecast(client, series)["forecasts"]]
    scenario = [{"values": {"promo": 1}}, {"series_id": "S01|C1", "values": {"promo": 0}}]
    body = _forecast(client, series | {"scenario": scenario})
    assert [r["yhat"] for r in body["forecasts"]] == [plain[0], plain[1] + 10.0]


def test_a_scenario_touching_too_many_rows_is_413(client: TestClient) -> None:
    scenario = [{"values": {"promo": 1}}] * 600  # each entry touches every row again
    payload = {"series": [{"series_id": "S01|C1"}], "horizon": 1, "scenario": scenario}
    assert _forecast(client, payload, 413)["error"]["code"] == "scenario_too_large"


def test_unknown_series_get_their_own_error_entry(client: TestClient) -> None:
    body = _forecast(client, {"series": [{"series_id": "S01|C1"}, {"series_id": "S09|C9"}],
                              "horizon": 1})
    assert [row["series_id"] for row in body["forecasts"]] == ["S01|C1"]
    assert body["errors"] == [{
        "code": "unknown_series", "field": "series[1]", "series_id": "S09|C9",
        "message": "unknown series 'S09|C9': the model was not trained on it",
    }]


def test_only_unknown_series_is_a_404(client: TestClient) -> None:
    body = _forecast(client, {"rows": [{"series_id": "nope", "ds": ORIGIN_DATES[0]}]}, 404)
    assert body["error"]["code"] == "unknown_series"
    assert body["error"]["field"] == "rows[0].series_id"


@pytest.mark.parametrize(
    ("payload", "code", "field"),
    [
        ({"series": [{"series_id": "S01|C1"}], "horizon": 5}, "horizon_too_long", "horizon"),
        ({"rows": [{"series_id": "S01|C1", "ds": "2024-06-11"}]}, "ds_outside_horizon",
         "rows[0].ds"),
        ({"rows": [{"series_id": "S01|C1", "ds": "June"}]}, "validation_error", "rows[0].ds"),
        ({"series": [{"series_id": "S01|C1"}], "scenario": [{"values": {"discount": 1}}]},
         "unknown_scenario_column", "scenario[0].values.discount"),
        ({"series": [{"keys": {"store": "S01"}}]}, "invalid_keys", "series[0].keys"),
        ({"series": [{"series_id": "S01|C1"}], "horizn": 2}, "validation_error", "horizn"),
        ({"horizon": 2}, "validation_error", None),
    ],
)
def test_invalid_requests_are_422_naming_the_field(
    client: TestClient, payload: dict[str, Any], code: str, field: str | None
) -> None:
    error = _forecast(client, payload, 422)["error"]
    assert error["code"] == code
    assert error.get("field") == field
    assert error["message"]


def test_an_unknown_scenario_name_is_422_listing_the_names_the_model_takes(
    client: TestClient,
) -> None:
    """Scenario values are named like the model's exogenous columns (promo, price, and
    any known-future column of its spec): another name is refused, with the known ones."""
    payload = {"series": [{"series_id": "S01|C1"}],
               "scenario": [{"values": {"promo": 1}}, {"values": {"open": 0}}]}
    error = _forecast(client, payload, 422)["error"]
    assert error["field"] == "scenario[1].values.open"
    assert error["message"] == ("this model takes no 'open'; scenario columns it accepts: "
                                "['price', 'promo']")


def test_a_body_that_is_not_json_is_422_saying_so(client: TestClient) -> None:
    response = client.post("/v1/forecast", content=b"{series: S01}",
                           headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert response.json()["error"]["message"].startswith("Invalid JSON")
    assert "field" not in response.json()["error"]


def test_rows_beyond_the_limit_are_413(client: TestClient) -> None:
    # the module's app allows 50 rows: 13 series x 4 periods = 52
    series = [{"series_id": "S01|C1"}] * 13
    error = _forecast(client, {"series": series}, 413)["error"]
    assert error["code"] == "too_many_rows"
    assert error["field"] == "series"


def test_bodies_beyond_the_limit_are_413_declared_or_streamed(client: TestClient) -> None:
    rows = [{"series_id": "S01|C1", "ds": ORIGIN_DATES[0]}] * 600  # > 20 kB
    declared = client.post("/v1/forecast", json={"rows": rows})
    assert declared.status_code == 413
    assert declared.json()["error"]["code"] == "payload_too_large"

    def chunks() -> Any:  # no Content-Length: the limit applies while the body streams in
        yield b'{"rows": ['
        for _ in range(600):
            yield b'{"series_id": "S01|C1", "ds": "2024-06-10"},'
        yield b"{}]}"

    streamed = client.post("/v1/forecast", content=chunks(),
                           headers={"content-type": "application/json"})
    assert streamed.status_code == 413
    assert "limit is 20000 bytes" in streamed.json()["error"]["message"]


def test_request_id_from_the_caller_is_echoed(client: TestClient) -> None:
    response = client.post("/v1/forecast", json={"series": [{"series_id": "S01|C1"}]},
                           headers={"X-Request-ID": "order-42"})
    assert response.json()["request_id"] == "order-42"
    assert response.headers["x-request-id"] == "order-42"



def test_openapi_documents_the_forecast_contract(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    body = spec["paths"]["/v1/forecast"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"] == {"$ref": "#/components/schemas/ForecastRequest"}
    assert {"one series", "rows", "scenario"} <= set(body["examples"])
    schemas = spec["components"]["schemas"]
    assert {"ForecastRequest", "SeriesRef", "ScenarioValues", "ForecastResponse",
            "ErrorResponse"} <= set(schemas)
    responses = spec["paths"]["/v1/forecast"]["post"]["responses"]
    assert {"200", "404", "413", "422"} <= set(responses)
    assert client.get("/docs").status_code == 200


@pytest.mark.parametrize(("scenario", "field"), [
    ({"ds": "2030-01-07", "values": {"promo": 1}}, "scenario[0].ds"),  # beyond the horizon
    ({"series_id": "S02|C2", "values": {"promo": 1}}, "scenario[0].series_id"),  # not asked
], ids=["beyond-horizon", "series-not-asked"])
def test_a_scenario_entry_that_touches_no_row_is_422_not_ignored(
    client: TestClient, scenario: dict[str, Any], field: str
) -> None:
    payload = {"series": [{"series_id": "S01|C1"}], "horizon": 2, "scenario": [scenario]}
    error = _forecast(client, payload, 422)["error"]
    assert (error["code"], error["field"]) == ("scenario_outside_request", field)


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded"])
def test_a_body_declared_as_something_else_than_json_is_415(client: TestClient,
                                                           content_type: str) -> None:
    body = b'{"series": [{"series_id": "S01|C1"}], "horizon": 1}'
    response = client.post("/v1/forecast", content=body, headers={"content-type": content_type})
    assert response.status_code == 415, response.text
    assert response.json()["error"]["code"] == "unsupported_media_type"
    assert client.post("/v1/forecast", content=body, headers={
        "content-type": "application/json; charset=utf-8"}).status_code == 200


def test_openapi_says_exactly_one_of_series_or_rows(client: TestClient) -> None:
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    assert schemas["ForecastRequest"]["oneOf"] == [{"required": ["series"]},
                                                   {"required": ["rows"]},
                                                   {"required": ["level"]}]
    for both_or_none in ({"series": [{"series_id": "S01|C1"}], "rows": [
            {"series_id": "S01|C1", "ds": ORIGIN_DATES[0]}]}, {}):
        assert _forecast(client, both_or_none, 422)["error"]["code"] == "validation_error"
