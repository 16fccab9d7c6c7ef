"""Forecasts at a key level through the real API: coherent sums, the interval of the sum.

Two champions: the session's toy (no backtest rows in its run: independence is assumed)
and ``toy_hier``, the same toy whose run also holds ``backtest/predictions.parquet`` with
errors of known correlation (rho = 0.5 between every pair, each series' 80 % half-width
exactly the toy's 5), so the aggregate half-width and its coverage can be reasoned about:
for 4 series, W = 5 sqrt(4 + 0.5 x 12) = 15.8, between independence (10) and summed
bounds (20), and the summed errors fall inside +-W about 80 % of the time.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from serving.app import create_app
from serving.error_correlation import correlation_from_backtest
from serving.hierarchy import aggregate_half_width
from tests.serving._model import HALF_WIDTH, LEVELS
from tests.serving.conftest import MlflowStore, register_toy, serving_settings

RHO = 0.5
SIGMA = HALF_WIDTH / 1.2815515655446004  # the 80 % half-width of N(0, sigma^2) is 5
SERIES = sorted(LEVELS)


def backtest_rows(windows: int = 60, seed: int = 0) -> pd.DataFrame:
    """Signed errors with correlation RHO between series: sigma (sqrt(rho) common + ...)."""
    rng = np.random.default_rng(seed)
    rows = []
    for window in range(windows):
        for step, ds in enumerate(pd.date_range("2023-01-02", periods=4, freq="7D"), start=1):
            common = rng.standard_normal()
            for series_id in SERIES:
                error = SIGMA * (math.sqrt(RHO) * common
                                 + math.sqrt(1 - RHO) * rng.standard_normal())
                rows.append({"window": window, "step": step, "series_id": series_id,
                             "ds": ds + pd.Timedelta(weeks=window), "yhat": 100.0,
                             "y": 100.0 + error})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def hier_client(mlflow_store: MlflowStore, tmp_path_factory: pytest.TempPathFactory
                ) -> Iterator[TestClient]:
    from mlflow import MlflowClient

    registered = register_toy(mlflow_store, "toy_hier", offset=0.0)
    folder = tmp_path_factory.mktemp("backtest")
    backtest_rows().to_parquet(folder / "predictions.parquet", index=False)
    client = MlflowClient(mlflow_store.tracking_uri)
    client.log_artifact(registered.run_id, str(folder / "predictions.parquet"), "backtest")
    workdir = tmp_path_factory.mktemp("hier")
    settings = serving_settings(mlflow_store, workdir, model_name="toy_hier")
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def _forecast(client: TestClient, body: dict[str, Any]) -> Any:
    return client.post("/v1/forecast", json=body)


def _series_yhat(client: TestClient, series: list[str]) -> pd.DataFrame:
    answer = _forecast(client, {"series": [{"series_id": s} for s in series]}).json()
    return pd.DataFrame(answer["forecasts"])


@pytest.mark.parametrize("level, members", [
    ({}, SERIES), ({"store": "S01"}, ["S01|C1", "S01|C2"]),
    ({"category": "C1"}, ["S01|C1", "S02|C1"]), ({"store": "S02", "category": "C2"}, ["S02|C2"]),
])
def test_level_is_the_sum_of_its_series(client: TestClient, level: dict[str, str],
                                        members: list[str]) -> None:
    answer = _forecast(client, {"level": level}).json()
    series = _series_yhat(client, members)
    sums = series.groupby("ds")["yhat"].sum()
    assert answer["level"] == level and answer["n_series"] == len(members)
    assert answer["series_ids"] == members
    assert [p["ds"] for p in answer["forecasts"]] == list(sums.index)
    assert [p["yhat"] for p in answer["forecasts"]] == sums.tolist()  # exactly: bottom-up
    assert {o["series_id"] for o in answer["origins"]} == set(members)


def test_total_is_the_sum_of_the_store_levels(client: TestClient) -> None:
    total = _forecast(client, {"level": {}, "horizon": 2}).json()["forecasts"]
    stores = [_forecast(client, {"level": {"store": s}, "horizon": 2}).json()["forecasts"]
              for s in ("S01", "S02")]
    assert len(total) == 2
    for i, point in enumerate(total):
        assert point["yhat"] == pytest.approx(sum(s[i]["yhat"] for s in stores), abs=1e-9)


def test_without_backtest_rows_independence_is_assumed_and_said(client: TestClient) -> None:
    answer = _forecast(client, {"level": {}}).json()
    assert answer["interval"]["method"].startswith("independent (assumed")
    for point in answer["forecasts"]:
        width = point["yhat_upper"] - point["yhat"]
        assert width == pytest.approx(HALF_WIDTH * 2)  # sqrt(4 x 5^2): not 4 x 5 = 20
        assert point["yhat"] - point["yhat_lower"] == pytest.approx(width)


def test_correlated_interval_is_between_independence_and_summed_bounds(
        hier_client: TestClient) -> None:
    answer = _forecast(hier_client, {"level": {}}).json()
    assert answer["interval"]["method"].startswith("correlated")
    assert 0.3 < answer["interval"]["correlation"] < 0.7  # estimated from 240 cells, true 0.5
    for point in answer["forecasts"]:
        width = point["yhat_upper"] - point["yhat"]
        assert 2 * HALF_WIDTH < width < 4 * HALF_WIDTH  # narrower than summed bounds


def test_correlated_interval_covers_the_summed_backtest_errors() -> None:
    """The aggregate half-width with the correlation estimated on one backtest covers about
    80 % of the summed errors of another draw (independence would cover about 58 %)."""
    fitted = correlation_from_backtest(backtest_rows(seed=1))
    widths = np.full(len(SERIES), HALF_WIDTH)
    width, rho = aggregate_half_width(widths, fitted.among(SERIES))
    fresh = backtest_rows(windows=500, seed=2)
    summed = (fresh["y"] - fresh["yhat"]).groupby([fresh["window"], fresh["ds"]]).sum()
    assert 0.3 < rho < 0.7
    assert 0.74 < float((summed.abs() <= width).mean()) < 0.86
    independent, _ = aggregate_half_width(widths, None)
    assert float((summed.abs() <= independent).mean()) < 0.68


def test_aggregate_half_width_limits() -> None:
    widths = np.array([3.0, 4.0])
    assert aggregate_half_width(widths, None) == (5.0, 0.0)
    assert aggregate_half_width(widths, np.ones((2, 2)))[0] == pytest.approx(7.0)
    negative = np.array([[1.0, -0.9], [-0.9, 1.0]])
    assert aggregate_half_width(widths, negative) == (5.0, 0.0)  # clamped at independence
    assert aggregate_half_width(np.array([2.0]), None) == (2.0, 0.0)


@pytest.mark.parametrize("body, status, code, field", [
    ({"level": {"region": "north"}}, 422, "unknown_level_key", "level.region"),
    ({"level": {"store": "S09"}}, 404, "unknown_level", "level.store"),
    ({"level": {}, "series": [{"series_id": "S01|C1"}]}, 422, "validation_error", None),
    ({"level": {}, "rows": [{"series_id": "S01|C1", "ds": "2024-06-10"}]}, 422,
     "validation_error", None),
    ({"level": {}, "scenario": [{"values": {"promo": 1}}]}, 422, "validation_error", None),
    ({"level": {}, "horizon": 9}, 422, "horizon_too_long", "horizon"),
])
def test_level_validation(client: TestClient, body: dict[str, Any], status: int, code: str,
                          field: str | None) -> None:
    response = _forecast(client, body)
    assert response.status_code == status
    error = response.json()["error"]
    assert error["code"] == code
    if field is not None:
        assert error["field"] == field
    if code == "unknown_level_key":
        assert "region" in error["message"] and "store" in error["message"]
    if code == "unknown_level":
        assert "S09" in error["message"]


def test_exactly_one_way_message(client: TestClient) -> None:
    response = _forecast(client, {"level": {}, "series": [{"series_id": "S01|C1"}]})
    assert "exactly one of" in response.text and "level" in response.text


def test_openapi_documents_level(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()["components"]["schemas"]
    assert "level" in schema["ForecastRequest"]["properties"]
    assert "LevelForecastResponse" in schema


def test_backtest_rows_are_kept_beside_the_model(hier_client: TestClient,
                                                 tmp_path: Path) -> None:
    _forecast(hier_client, {"level": {"store": "S01"}})
    champion = hier_client.app.state.champions.current
    assert (Path(champion.ref.path) / "salescast_backtest_errors.parquet").is_file()
