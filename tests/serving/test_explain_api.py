"""``"explain": true`` on POST /v1/forecast, through the real app and a real trained model:
each row's drivers reconcile with the model's number, a scenario's promotion shows as its
top driver, nothing is added without the flag, and the limits answer clearly.

The toy model of the other serving tests has no drivers, so this module logs a small
LightGBM forecaster with the real pyfunc code (``training.pyfunc``) on a seeded panel
whose promotions lift sales by 150 %.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi.testclient import TestClient

from serving.app import create_app
from serving.explain import MAX_EXPLAIN_ROWS
from tests.serving.conftest import MlflowStore, serving_settings
from tests.training._panels import PanelShape, make_training_set

NAME = "explained_gbm"
PROMO = PanelShape(n_series=4, periods=120, seed=3, promo_rate=0.25, promo_lift=1.5)


def _register_gbm(store: MlflowStore) -> None:
    """Fit, log (the real pyfunc model) and alias @champion a small LightGBM forecaster."""
    import mlflow
    from mlflow import MlflowClient

    from training.forecasters import LightGBMForecaster
    from training.pyfunc import log_forecaster

    training_set = make_training_set(PROMO, horizon=4)
    forecaster = LightGBMForecaster(n_estimators=40).fit(training_set)
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(store.tracking_uri)
    try:
        with mlflow.start_run(experiment_id=store.experiment_id) as run:
            info = log_forecaster(forecaster, training_set, SimpleNamespace(metrics={}),
                                  spec_name="explain-tests", level=0.8)
        client = MlflowClient(store.tracking_uri, registry_uri=store.tracking_uri)
        client.create_registered_model(NAME)
        created = client.create_model_version(NAME, source=info.model_uri,
                                              run_id=run.info.run_id, model_id=info.model_id)
        client.set_registered_model_alias(NAME, "champion", created.version)
    finally:
        mlflow.set_tracking_uri(previous)


@pytest.fixture(scope="module")
def client(mlflow_store: MlflowStore, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[TestClient]:
    _register_gbm(mlflow_store)
    workdir: Path = tmp_path_factory.mktemp("explain")
    settings = serving_settings(mlflow_store, workdir, model_name=NAME, max_rows=5_000)
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def _post(client: TestClient, payload: dict[str, Any], status: int = 200) -> dict[str, Any]:
    response = client.post("/v1/forecast", json=payload)
    assert response.status_code == status, response.text
    return response.json()


def _series(client: TestClient) -> list[str]:
    return client.get("/v1/model").json()["series_ids"]


def _reconciles(row: dict[str, Any]) -> None:
    total = row["base"] + sum(d["contribution"] for d in row["drivers"])
    assert total == pytest.approx(row["yhat_model"], rel=1e-9, abs=1e-9)


def test_without_explain_rows_have_no_drivers(client: TestClient) -> None:
    series = _series(client)[0]
    plain = _post(client, {"series": [{"series_id": series}]})
    unasked = _post(client, {"series": [{"series_id": series}], "explain": False})
    for row in plain["forecasts"] + unasked["forecasts"]:
        assert "drivers" not in row and "base" not in row
    assert [r["yhat"] for r in plain["forecasts"]] == [r["yhat"] for r in unasked["forecasts"]]


def test_each_row_gets_drivers_that_sum_to_the_models_number(client: TestClient) -> None:
    series = _series(client)[:2]
    plain = _post(client, {"series": [{"series_id": s} for s in series]})
    body = _post(client, {"series": [{"series_id": s} for s in series], "explain": True})
    assert [r["yhat"] for r in body["forecasts"]] == [r["yhat"] for r in plain["forecasts"]]
    for row in body["forecasts"]:
        assert row["family"] == "lightgbm" and "TreeSHAP" in row["method"]
        assert 1 <= len(row["drivers"]) <= 6
        sizes = [abs(d["contribution"]) for d in row["drivers"] if d["name"] != "other"]
        assert sizes == sorted(sizes, reverse=True)
        _reconciles(row)


def test_a_scenario_promotion_is_the_top_driver_of_its_row(client: TestClient) -> None:
    series = _series(client)[0]
    dates = [r["ds"] for r in _post(client, {"series": [{"series_id": series}]})["forecasts"]]
    rows = [{"series_id": series, "ds": ds} for ds in dates[:2]]
    scenario = [{"series_id": series, "ds": dates[1], "values": {"promo": 1}}]
    body = _post(client, {"rows": rows, "scenario": scenario, "explain": True,
                          "explain_top": 2})
    quiet, promoted = body["forecasts"]
    assert promoted["drivers"][0]["name"] == "promo"
    assert promoted["drivers"][0]["value"] == 1.0 and promoted["drivers"][0]["contribution"] > 0
    assert promoted["yhat"] > quiet["yhat"]
    for row in (quiet, promoted):
        assert len(row["drivers"]) == 3 and row["drivers"][-1]["name"] == "other"
        _reconciles(row)


def test_too_many_rows_to_explain_is_a_413_that_says_the_limit(client: TestClient) -> None:
    series = _series(client)[0]
    ds = _post(client, {"series": [{"series_id": series}], "horizon": 1})["forecasts"][0]["ds"]
    rows = [{"series_id": series, "ds": ds}] * (MAX_EXPLAIN_ROWS + 1)
    error = _post(client, {"rows": rows, "explain": True}, status=413)["error"]
    assert error["code"] == "too_many_rows_to_explain"
    assert f"at most {MAX_EXPLAIN_ROWS:,}".replace(",", "") in error["message"].replace(",", "")
    assert len(_post(client, {"rows": rows})["forecasts"]) == MAX_EXPLAIN_ROWS + 1


@pytest.mark.parametrize(("payload", "field"), [
    ({"level": {}, "explain": True}, "explain"),
    ({"series": [{"series_id": "S00|C0"}], "explain": True, "explain_top": 0}, "explain_top"),
])
def test_explain_with_a_level_or_a_bad_top_is_a_422(client: TestClient, payload: dict,
                                                     field: str) -> None:
    error = _post(client, payload, status=422)["error"]
    assert field in (error.get("field") or "") + error["message"]


def test_the_drivers_frame_for_reports_matches_the_api(client: TestClient) -> None:
    """``serving.explain.drivers_frame``: the same explanation as a frame, from the served
    champion, for any (series, ds) list — what a review report reads."""
    import pandas as pd

    from serving.explain import drivers_frame

    series = _series(client)[1]
    rows = _post(client, {"series": [{"series_id": series}], "explain": True})["forecasts"]
    champion = client.app.state.champions.current
    cells = pd.DataFrame({"series_id": series, "ds": [r["ds"] for r in rows]})
    frame = drivers_frame(champion.state, cells, top=5)
    for cell, row in enumerate(rows):
        mine = frame[frame["cell"] == cell]
        assert mine["name"].tolist() == [d["name"] for d in row["drivers"]]
        assert mine["contribution"].tolist() == pytest.approx(
            [d["contribution"] for d in row["drivers"]])
    every = drivers_frame(champion.state, cells)  # top=None: every feature, largest first
    assert every.groupby("cell").size().min() > 6
    with pytest.raises(ValueError, match="before explanations existed"):
        drivers_frame(object(), cells)
