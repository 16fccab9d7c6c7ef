"""Accuracy by forecast lag: the lag of a forecast, accuracy decaying with lag, the review
at the planning lag, the current model version only, the report and the route."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from serving.monitoring.drift import DriftThresholds
from serving.monitoring.lag import (
    LagOptions,
    forecast_lags,
    join_actuals,
    lag_accuracy,
    lag_review,
)
from serving.monitoring.report import render_html, to_document
from serving.monitoring.service import monitor_store, read_lag_accuracy
from serving.monitoring.verdict import build_result
from serving.store import Actual, PredictionStore

HORIZON = 6
SERIES = [f"S{i}|A" for i in range(8)]
FIRST_ORIGIN = date(2024, 1, 1)  # a Monday
WEEKS = 40


def _actuals(seed: int) -> dict[tuple[str, date], float]:
    rng = np.random.default_rng(seed)
    days = [FIRST_ORIGIN + timedelta(weeks=w) for w in range(WEEKS + HORIZON + 1)]
    return {(s, d): float(rng.uniform(80, 120)) for s in SERIES for d in days}


def _history_rows(actuals: dict[tuple[str, date], float], seed: int, noise_per_lag: float,
                  ) -> list[tuple[str, str, str, float, float, float]]:
    """Every series' forecast at every weekly origin; the forecast k weeks ahead misses
    the actual by a relative error of standard deviation ``noise_per_lag`` x k, inside a
    fixed-width interval (so it also covers less often further ahead)."""
    rng = np.random.default_rng(seed)
    rows = []
    for week in range(WEEKS):
        origin = FIRST_ORIGIN + timedelta(weeks=week)
        for series in SERIES:
            for lag in range(1, HORIZON + 1):
                ds = origin + timedelta(weeks=lag)
                yhat = actuals[series, ds] * (1 + rng.normal(0, noise_per_lag * lag))
                rows.append((series, origin.isoformat(), ds.isoformat(), yhat, yhat - 10,
                             yhat + 10))
    return rows


def _filled_store(tmp_path: Path, seed: int, noise_per_lag: float = 0.04) -> PredictionStore:
    store = PredictionStore(f"sqlite:///{tmp_path / f'lag{seed}.db'}")
    actuals = _actuals(seed)
    store.save_forecasts("m", "3", _history_rows(actuals, seed + 100, noise_per_lag))
    store.upsert_actuals(Actual(s, d, y) for (s, d), y in actuals.items())
    return store


# --- the lag of a forecast --------------------------------------------------------------


@pytest.mark.parametrize(("freq", "origin", "ds", "lag"), [
    ("W", "2024-01-01", "2024-01-08", 1),
    ("W", "2024-01-01", "2024-01-22", 3),
    ("W", "2024-01-03", "2024-01-08", 1),  # a Wednesday: its week starts 2024-01-01
    ("W", "2023-12-25", "2024-01-29", 5),  # across the new year
    ("M", "2024-01-01", "2024-03-01", 2),
    ("M", "2023-12-01", "2024-02-01", 2),
    ("M", "2024-01-31", "2024-02-01", 1),
    ("M", "2023-11-01", "2024-11-01", 12),
    ("D", "2024-02-28", "2024-03-01", 2),  # 2024 is a leap year
])
def test_lag_counts_periods_between_origin_and_ds(freq: str, origin: str, ds: str,
                                                  lag: int) -> None:
    lags = forecast_lags(pd.Series(pd.to_datetime([origin])), pd.Series(pd.to_datetime([ds])),
                         freq)
    assert lags.tolist() == [lag]


def test_lags_are_computed_for_every_row_of_a_monthly_history() -> None:
    history = pd.DataFrame({
        "model_version": "1", "series_id": "a",
        "origin": pd.to_datetime(["2024-01-01", "2024-01-01", "2024-02-01"]),
        "ds": pd.to_datetime(["2024-02-01", "2024-04-01", "2024-04-01"]),
        "yhat": 1.0, "yhat_lower": 0.0, "yhat_upper": 2.0,
        "made_at": pd.Timestamp("2024-02-02"),
    })
    actuals = pd.DataFrame({"series_id": "a", "ds": pd.to_datetime(["2024-02-01", "2024-04-01"]),
                            "y": 1.0})
    joined = join_actuals(history, actuals, "M")
    assert sorted(joined["lag"].tolist()) == [1, 2, 3]


# --- accuracy by lag --------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_forecasts_made_further_ahead_are_less_accurate(tmp_path: Path, seed: int) -> None:
    store = _filled_store(tmp_path, seed)
    try:
        result = read_lag_accuracy(store, LagOptions("W", review_lag=2, horizon=HORIZON))
    finally:
        store.dispose()
    table = result.by_lag
    assert table["lag"].tolist() == list(range(1, HORIZON + 1))
    assert table["wape"].is_monotonic_increasing and table["wape"].iloc[-1] > 3 * table[
        "wape"].iloc[0]
    assert table["mae"].is_monotonic_increasing
    assert table["coverage"].iloc[-1] < table["coverage"].iloc[0]
    # each lag holds one forecast per series and origin whose target period is known
    assert (table["n"] == WEEKS * len(SERIES)).all() and (table["n_series"] == len(SERIES)).all()
    assert result.n_forecasts == WEEKS * len(SERIES) * HORIZON
    first, last = table.iloc[0], table.iloc[-1]
    assert result.summary == (f"WAPE rises from {first['wape']:.3f} at lag 1 to "
                              f"{last['wape']:.3f} at lag {HORIZON} "
                              f"({100 * (last['wape'] / first['wape'] - 1):+.0f} %).")


def test_metrics_by_lag_match_a_hand_computed_case() -> None:
    """A hand-computed case: the lag-1 forecast is 10 % high, the lag-2 one 20 % low."""
    history = pd.DataFrame({
        "model_version": "1", "series_id": ["a", "a", "b", "b"],
        "origin": pd.to_datetime(["2024-01-01", "2023-12-25", "2024-01-01", "2023-12-25"]),
        "ds": pd.to_datetime(["2024-01-08"] * 4), "yhat": [110.0, 80.0, 55.0, 40.0],
        "yhat_lower": [100.0, 60.0, 40.0, 30.0], "yhat_upper": [120.0, 105.0, 60.0, 45.0],
        "made_at": pd.Timestamp("2024-01-02"),
    })
    actuals = pd.DataFrame({"series_id": ["a", "b"], "ds": pd.to_datetime(["2024-01-08"] * 2),
                            "y": [100.0, 50.0]})
    table = lag_accuracy(history, actuals, LagOptions("W", horizon=3)).by_lag.set_index("lag")
    assert table.loc[1, "wape"] == pytest.approx(15 / 150)
    assert table.loc[1, "bias_pct"] == pytest.approx(10.0)
    assert table.loc[1, "mae"] == pytest.approx(7.5)
    assert table.loc[1, "coverage"] == pytest.approx(1.0)
    assert table.loc[2, "bias_pct"] == pytest.approx(-20.0)
    assert table.loc[2, "coverage"] == pytest.approx(0.5)  # a inside [60, 105], b above [30, 45]
    assert table.loc[3, "n"] == 0 and np.isnan(table.loc[3, "wape"])  # no lag-3 forecast yet


def test_only_the_current_model_version_is_judged_by_default() -> None:
    ds = pd.to_datetime(["2024-01-08", "2024-01-15"])
    base = {"series_id": "a", "origin": pd.Timestamp("2024-01-01"), "ds": ds,
            "yhat_lower": 0.0, "yhat_upper": 500.0}
    old = pd.DataFrame(base | {"model_version": "1", "yhat": 200.0,
                               "made_at": pd.Timestamp("2024-01-01 10:00")})
    new = pd.DataFrame(base | {"model_version": "2", "yhat": 100.0,
                               "made_at": pd.Timestamp("2024-01-01 11:00")})
    actuals = pd.DataFrame({"series_id": "a", "ds": ds, "y": 100.0})
    history = pd.concat([new, old], ignore_index=True)
    current = lag_accuracy(history, actuals, LagOptions("W"))
    assert current.model_version == "2" and current.n_forecasts == 2
    assert current.by_lag["wape"].tolist() == [0.0, 0.0]
    previous = lag_accuracy(history, actuals, LagOptions("W"), model_version="1")
    assert previous.by_lag["wape"].tolist() == [1.0, 1.0]


# --- the review at the planning lag -----------------------------------------------------


def test_the_review_at_lag_k_uses_only_the_lag_k_forecasts(tmp_path: Path) -> None:
    """Lag-2 forecasts are exact and every other lag is 50 % high: the lag-2 review is
    perfect, the lag-1 review is not."""
    actuals = _actuals(7)
    rows = [(s, o, d, y if lag == 2 else 1.5 * y, lo, hi)
            for s, o, d, y, lo, hi in _history_rows(actuals, 8, noise_per_lag=0.0)
            for lag in [(date.fromisoformat(d) - date.fromisoformat(o)).days // 7]]
    history = pd.DataFrame(rows, columns=["series_id", "origin", "ds", "yhat", "yhat_lower",
                                          "yhat_upper"])
    history = history.assign(model_version="1", made_at=pd.Timestamp("2024-12-01"),
                             origin=pd.to_datetime(history["origin"]),
                             ds=pd.to_datetime(history["ds"]))
    frame = pd.DataFrame([(s, pd.Timestamp(d), y) for (s, d), y in actuals.items()],
                         columns=["series_id", "ds", "y"])
    result = lag_accuracy(history, frame, LagOptions("W", review_lag=2, horizon=HORIZON))
    monthly = result.review["month"]
    assert (monthly["wape"] == 0).all() and (monthly["bias_pct"] == 0).all()
    joined = join_actuals(history, frame, "W")
    lag2 = joined[joined["lag"] == 2]
    expected_n = lag2.groupby(lag2["ds"].dt.strftime("%Y-%m")).size()
    assert monthly.set_index("period")["n"].to_dict() == expected_n.to_dict()
    assert result.review["quarter"]["n"].sum() == len(lag2)
    assert result.review["quarter"]["period"].tolist()[0] == "2024Q1"
    lag1 = lag_review(joined, 1, "month")
    assert lag1["wape"].tolist() == pytest.approx([0.5] * len(lag1))
    assert lag_review(joined, HORIZON + 1, "month").empty


# --- empty history ----------------------------------------------------------------------


def test_an_empty_history_is_an_empty_result_not_an_error(tmp_path: Path) -> None:
    store = PredictionStore(f"sqlite:///{tmp_path / 'empty.db'}")
    try:
        result = read_lag_accuracy(store, LagOptions("W", review_lag=2, horizon=HORIZON))
        store.save_forecasts("m", "1", [("a", "2024-01-01", "2024-01-08", 1.0, 0.0, 2.0)])
        no_actuals = read_lag_accuracy(store, LagOptions("W", horizon=HORIZON))
    finally:
        store.dispose()
    assert result.empty and result.by_lag.empty
    assert all(table.empty for table in result.review.values())
    assert result.summary.startswith("No forecast history yet")
    assert no_actuals.empty and no_actuals.model_version == "1"
    assert "has its actual yet" in no_actuals.summary
    monitored = replace(build_result(DriftThresholds()), lag_accuracy=result)
    page = render_html(monitored)
    assert "<h2>Accuracy by forecast lag</h2>" in page and "No forecast history yet" in page
    document = to_document(monitored)
    json.dumps(document, allow_nan=False)
    assert document["lag_accuracy"]["by_lag"] == [] and document["lag_accuracy"]["n_forecasts"] == 0


@pytest.mark.parametrize(("options", "match"), [
    ({"freq": "Q"}, "unknown frequency"), ({"freq": "W", "review_lag": 0}, "review_lag"),
])
def test_bad_options_are_refused(options: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        LagOptions(**options)


# --- the monitor, the report and the route ----------------------------------------------

NOW = datetime(2024, 12, 1, tzinfo=UTC)


def _log_predictions(store: PredictionStore) -> None:
    """A few logged forecasts in the monitoring window (the monitor needs some)."""
    rows = [(f"r{i}", (NOW - timedelta(hours=i + 1)).replace(tzinfo=None), "m", "3", series,
             "2024-01-08", 100.0, 90.0, 110.0, json.dumps({"price": 10.0 + i}), "2024-01-01")
            for i, series in enumerate(SERIES)]
    store.write_predictions(rows)


def _reference() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({"series_id": np.repeat(SERIES, 10), "price": rng.normal(10, 3, 80),
                         "y": rng.uniform(80, 120, 80)})


def _monitored(tmp_path: Path) -> tuple:
    store = _filled_store(tmp_path, 5)
    _log_predictions(store)
    try:
        args = (store, _reference(), {"wape": 0.1, "coverage": 0.8}, DriftThresholds(),
                timedelta(days=28))
        plain = monitor_store(*args, now=NOW, model_version="3")
        with_lag = monitor_store(*args, now=NOW, model_version="3",
                                 lag=LagOptions("W", review_lag=2, horizon=HORIZON))
    finally:
        store.dispose()
    return plain, with_lag


def test_the_monitor_reports_lag_accuracy_without_changing_the_verdict(tmp_path: Path) -> None:
    plain, with_lag = _monitored(tmp_path)
    assert plain.lag_accuracy is None
    assert with_lag.verdict == plain.verdict
    assert with_lag.lag_accuracy.model_version == "3"
    assert with_lag.lag_accuracy.by_lag["wape"].is_monotonic_increasing


def test_the_report_has_the_lag_section_in_json_and_html(tmp_path: Path) -> None:
    _, result = _monitored(tmp_path)
    lag = result.lag_accuracy
    document = json.loads(json.dumps(to_document(result), allow_nan=False))
    section = document["lag_accuracy"]
    assert section["review_lag"] == 2 and section["freq"] == "W"
    assert [row["lag"] for row in section["by_lag"]] == list(range(1, HORIZON + 1))
    assert section["by_lag"][0]["wape"] == pytest.approx(lag.by_lag["wape"].iloc[0])
    assert set(section["review"]) == {"month", "quarter"}
    assert section["review"]["month"][0]["period"] == "2024-01"
    page = render_html(result)
    body = page[page.index("<h2>Accuracy by forecast lag</h2>"):]
    assert lag.summary in body and "<svg" in body and "WAPE by forecast lag" in body
    assert "Review at lag 2 (the lag the business plans on)" in body
    # numbers for people: WAPE with 3 decimals, coverage and bias in %
    cells = re.findall(r"<td>([^<]*)</td>", body)
    assert f"{lag.by_lag['wape'].iloc[0]:.3f}" in cells
    assert f"{100 * lag.by_lag['coverage'].iloc[0]:.0f} %" in cells
    assert any(re.fullmatch(r"[+-]\d+\.\d %", cell) for cell in cells)
    assert not any(re.search(r"\d\.\d{5,}", cell) for cell in cells)


def test_the_accuracy_route_returns_the_table_by_lag(
    mlflow_store, toy_champion, tmp_path: Path,
) -> None:
    from serving.app import create_app
    from tests.serving.conftest import serving_settings

    _, result = _monitored(tmp_path)
    reports = tmp_path / "reports"
    reports.mkdir()
    (reports / "latest.json").write_text(json.dumps(to_document(result), allow_nan=False))
    settings = serving_settings(mlflow_store, tmp_path, reports_dir=reports)
    with TestClient(create_app(settings)) as client:
        answer = client.get("/v1/monitoring/accuracy")
        assert answer.status_code == 200, answer.text
        lag = answer.json()["lag_accuracy"]
        assert [row["lag"] for row in lag["by_lag"]] == list(range(1, HORIZON + 1))
        assert lag["by_lag"][-1]["wape"] > lag["by_lag"][0]["wape"]
        assert lag["summary"] == result.lag_accuracy.summary
        assert lag["review"]["quarter"][0]["period"] == "2024Q1"
        schema = client.get("/openapi.json").json()["components"]["schemas"]
        assert {"LagRow", "ReviewRow"} <= set(schema)  # a concrete response model
        old = to_document(replace(result, lag_accuracy=None))
        del old["lag_accuracy"]  # a report written before accuracy by lag existed
        (reports / "latest.json").write_text(json.dumps(old, allow_nan=False))
        assert client.get("/v1/monitoring/accuracy").json()["lag_accuracy"] is None
