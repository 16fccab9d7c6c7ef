"""Forecast value added: naive vs model vs final (overridden), checked by hand.

Expected numbers are computed here from the example's data with the definitions
(WAPE = sum |f - y| / sum |y|, bias = sum (f - y) / sum y), never copied from the code.
The last test goes through the real API and store: an override, forecasts, actuals, the
monitor, its JSON / HTML report and GET /v1/monitoring/accuracy.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from serving.app import create_app
from serving.monitoring.drift import DriftThresholds
from serving.monitoring.fva import forecast_value_added, fva_frame, fva_table, seasonal_naive
from serving.monitoring.lag import LagOptions
from serving.monitoring.report import render_html, to_document
from serving.monitoring.service import monitor_store
from serving.store import Actual
from tests.serving.conftest import API_KEY, MlflowStore, Registered, serving_settings


def wape(forecast: list[float], actual: list[float]) -> float:
    return sum(abs(f - y) for f, y in zip(forecast, actual, strict=True)) / sum(
        abs(y) for y in actual)


def bias(forecast: list[float], actual: list[float]) -> float:
    return sum(f - y for f, y in zip(forecast, actual, strict=True)) / sum(actual)


# Two series x two weeks. A's first week overridden by maria (promotion) to 100, B's second
# by li (supply) to 65. The store has a naive value (the actual 52 weeks before) for A's
# two weeks and B's first week only.
WEEKS = ["2024-06-10", "2024-06-17"]
Y = {"A": [100.0, 100.0], "B": [50.0, 50.0]}
MODEL = {"A": [110.0, 90.0], "B": [40.0, 60.0]}
FINAL = {"A": [100.0, 90.0], "B": [40.0, 65.0]}
NAIVE = {"A": [80.0, 120.0], "B": [50.0, None]}


def _joined() -> pd.DataFrame:
    rows = []
    for s in ("A", "B"):
        for k, ds in enumerate(WEEKS):
            touched = FINAL[s][k] != MODEL[s][k]
            rows.append({"series_id": s, "ds": pd.Timestamp(ds), "y": Y[s][k],
                         "yhat": MODEL[s][k], "yhat_final": FINAL[s][k] if touched else np.nan,
                         "override_id": {"A": 1, "B": 2}[s] if touched else np.nan,
                         "store": "north" if s == "A" else "south"})
    return pd.DataFrame(rows)


def _actuals() -> pd.DataFrame:
    rows = [{"series_id": s, "ds": pd.Timestamp(ds) - pd.Timedelta(weeks=52), "y": NAIVE[s][k]}
            for s in ("A", "B") for k, ds in enumerate(WEEKS) if NAIVE[s][k] is not None]
    return pd.DataFrame(rows)


OVERRIDES = pd.DataFrame({"id": [1, 2], "author": ["maria", "li"],
                          "reason": ["promotion", "supply"]})


@pytest.fixture
def frame() -> pd.DataFrame:
    return fva_frame(_joined(), _actuals(), OVERRIDES, "W")


def test_the_seasonal_naive_is_the_actual_a_season_before(frame: pd.DataFrame) -> None:
    naive = seasonal_naive(_joined(), _actuals(), "W").tolist()
    assert naive[:3] == [80.0, 120.0, 50.0] and np.isnan(naive[3])
    assert frame["final"].tolist() == [100.0, 90.0, 40.0, 65.0]
    assert frame["author"].tolist() == ["maria", "(no override)", "(no override)", "li"]


def test_overall_wape_bias_and_value_added_match_the_hand_computation(
    frame: pd.DataFrame,
) -> None:
    y = Y["A"] + Y["B"]
    model, final = MODEL["A"] + MODEL["B"], FINAL["A"] + FINAL["B"]
    with_naive = [0, 1, 2]  # B's second week has no actual a season before
    naive = [(NAIVE["A"] + NAIVE["B"])[i] for i in with_naive]
    y_n, model_n = [y[i] for i in with_naive], [model[i] for i in with_naive]
    row = fva_table(frame).iloc[0]
    assert (row["n"], row["n_overridden"], row["n_naive"]) == (4, 2, 3)
    assert row["wape_model"] == pytest.approx(wape(model, y))  # 40 / 300
    assert row["wape_final"] == pytest.approx(wape(final, y))  # 35 / 300
    assert row["wape_naive"] == pytest.approx(wape(naive, y_n))  # 40 / 250
    assert row["bias_model"] == pytest.approx(bias(model, y))
    assert row["bias_final"] == pytest.approx(bias(final, y))
    assert row["bias_naive"] == pytest.approx(bias(naive, y_n))
    assert row["fva_override"] == pytest.approx(wape(model, y) - wape(final, y))  # +5 / 300
    assert row["fva_model"] == pytest.approx(wape(naive, y_n) - wape(model_n, y_n))  # +0.04


def test_value_added_by_author_reason_and_key(frame: pd.DataFrame) -> None:
    report = forecast_value_added(frame, keys=["store"], season_length=52)
    by_author = report.by_author.set_index("author")
    # maria: 110 -> 100 against 100 (helped); li: 60 -> 65 against 50 (hurt)
    assert by_author.loc["maria", "fva_override"] == pytest.approx(
        wape([110], [100]) - wape([100], [100]))
    assert by_author.loc["li", "fva_override"] == pytest.approx(
        wape([60], [50]) - wape([65], [50]))
    assert report.by_reason.set_index("reason").loc["supply", "wape_final"] == pytest.approx(
        wape([65], [50]))
    south = report.by_key["store"].set_index("store").loc["south"]
    assert south["wape_final"] == pytest.approx(wape([40, 65], [50, 50]))
    assert south["fva_override"] == pytest.approx(wape([40, 60], [50, 50])
                                                  - wape([40, 65], [50, 50]))
    assert report.overridden is not None and report.overridden["n"] == 2
    assert report.overridden["fva_override"] == pytest.approx(
        wape([110, 60], [100, 50]) - wape([100, 65], [100, 50]))
    assert report.n_overrides == 2 and "Overrides changed 2 of 4" in report.summary


def test_without_naive_values_or_overrides_the_report_says_so() -> None:
    plain = _joined().assign(yhat_final=np.nan, override_id=np.nan)
    frame = fva_frame(plain, pd.DataFrame(columns=["series_id", "ds", "y"]), OVERRIDES.iloc[:0],
                      "W")
    report = forecast_value_added(frame)
    assert report.overridden is None and report.by_author.empty
    assert report.overall["n_naive"] == 0 and np.isnan(report.overall["wape_naive"])
    assert report.overall["fva_override"] == 0.0
    assert "No served forecast" in report.summary and "no comparison" in report.summary


# --- through the API and the store ----------------------------------------------------

TOY_Y = {"S01|C1": [100.0, 140.0], "S01|C2": [50.0, 60.0], "S02|C1": [80.0, 90.0],
         "S02|C2": [20.0, 30.0]}
TOY_MODEL = {"S01|C1": [102.0, 104.0], "S01|C2": [52.0, 54.0], "S02|C1": [82.0, 84.0],
             "S02|C2": [22.0, 24.0]}  # level + 2 * step (tests/serving/_model.py)


def _reference() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    ds = pd.date_range("2024-01-01", periods=20, freq="7D")
    frame = pd.DataFrame([(s, d) for s in TOY_Y for d in ds], columns=["series_id", "ds"])
    return frame.assign(price=rng.normal(10, 0.1, len(frame)), y=rng.normal(60, 30, len(frame)))


def test_the_monitor_reports_value_added_in_json_html_and_the_api(
    mlflow_store: MlflowStore, toy_champion: Registered, tmp_path: Path,
) -> None:
    reports = tmp_path / "reports"
    settings = serving_settings(mlflow_store, tmp_path, api_key=API_KEY, reports_dir=reports)
    with TestClient(create_app(settings)) as client:
        store = client.app.state.store
        override = client.post("/v1/overrides", headers={"X-API-Key": API_KEY}, json={
            "series_id": "S01|C1", "ds": ["2024-06-17"], "value": 150.0, "author": "maria",
            "reason": "customer_order"}).json()
        assert client.post("/v1/forecast", json={"series": [{"series_id": s} for s in TOY_Y],
                                                 "horizon": 2}).status_code == 200
        actuals = [{"series_id": s, "ds": ds, "y": ys[k]} for s, ys in TOY_Y.items()
                   for k, ds in enumerate(WEEKS)]
        assert client.post("/v1/actuals", json={"actuals": actuals},
                           headers={"X-API-Key": API_KEY}).status_code == 200
        year_before = [date.fromisoformat(d) - timedelta(weeks=52) for d in WEEKS]
        store.upsert_actuals([Actual("S01|C1", year_before[0], 90.0),  # history: naive
                              Actual("S01|C1", year_before[1], 120.0)])
        assert client.app.state.prediction_log.flush()
        result = monitor_store(store, _reference(), {}, DriftThresholds(), timedelta(days=1),
                               keys=["store", "category"], lag=LagOptions("W", 1, 4))
        reports.mkdir()
        (reports / "latest.json").write_text(json.dumps(to_document(result)))
        (reports / "latest.html").write_text(render_html(result))
        served = client.get("/v1/monitoring/accuracy")
    y = [v for s in TOY_Y for v in TOY_Y[s]]
    model = [v for s in TOY_MODEL for v in TOY_MODEL[s]]
    final = [150.0 if (i == 1) else m for i, m in enumerate(model)]  # S01|C1, 2024-06-17
    fva = served.json()["fva"]
    assert fva["overall"]["wape_model"] == pytest.approx(wape(model, y))
    assert fva["overall"]["wape_final"] == pytest.approx(wape(final, y))
    assert fva["overall"]["wape_naive"] == pytest.approx(wape([90, 120], [100, 140]))
    assert fva["overall"]["fva_model"] == pytest.approx(wape([90, 120], [100, 140])
                                                        - wape([102, 104], [100, 140]))
    assert fva["by_author"] == [row | {"author": "maria"} for row in fva["by_author"]]
    assert fva["by_author"][0]["fva_override"] == pytest.approx(
        wape([104], [140]) - wape([150], [140]))
    assert fva["by_reason"][0]["reason"] == "customer_order"
    assert [r["store"] for r in fva["by_key"]["store"]] == ["S01", "S02"]
    assert fva["n_overrides"] == 1 and override["id"] == 1
    page = (reports / "latest.html").read_text()
    assert "Forecast value added" in page and "maria" in page
