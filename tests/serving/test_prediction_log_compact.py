"""The compact prediction log: cached answers stored once per request, read back per row.

Through the API (toy champion, real SQLite store): what the log reads back is exactly what
the API answered, row for row, across an origin roll, a corrected actual (same origin, new
numbers) and a champion swap; what-if answers stay per cell. Then the writer alone: a burst
far larger than the old queue is kept whole in bounded memory; retention deletes what is
older than the cut-off (explicit timestamps) and keeps the rest; a database written before
the compact log still reads.
"""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient

from features.origin import SeriesOrigin, forecast_dates
from serving.app import create_app
from serving.forecast_table import SeriesForecast, build_entries, log_rows
from serving.prediction_log import LogEntry, PredictionLog
from serving.store import PredictionStore, utc_now
from tests.serving.conftest import MlflowStore, register_toy, serving_settings

TRAINED = date(2024, 6, 3)  # the toy's training origin; horizon 4 weeks
ANSWER_COLUMNS = ["series_id", "ds", "origin", "yhat", "yhat_lower", "yhat_upper"]


def week(k: int) -> str:
    return (TRAINED + timedelta(weeks=k)).isoformat()


def count(store: PredictionStore, table: str) -> int:
    with store.engine.connect() as conn:
        return int(conn.exec_driver_sql(f"SELECT count(*) FROM {table}").scalar() or 0)


# --- through the API ------------------------------------------------------------------


@pytest.fixture
def app(mlflow_store: MlflowStore, tmp_path: Path) -> Iterator[FastAPI]:
    register_toy(mlflow_store, "toy_compact", offset=0.0)
    settings = serving_settings(mlflow_store, tmp_path, model_name="toy_compact",
                                roll_seconds=0.1, log_flush_seconds=30)
    application = create_app(settings)
    with TestClient(application):
        yield application


def ask(client: TestClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post(path, json=body)
    assert response.status_code == 200, response.text
    return response.json()


def answered(body: dict[str, Any]) -> pd.DataFrame:
    """The rows a /v1/forecast answer gave, as the log should read them back."""
    frame = pd.DataFrame(body["forecasts"])[ANSWER_COLUMNS]
    return frame.assign(request_id=body["request_id"], model_version=body["model"]["version"])


def logged(app: FastAPI) -> pd.DataFrame:
    assert app.state.prediction_log.flush()
    frame = app.state.store.read_predictions()
    frame["ds"] = frame["ds"].dt.strftime("%Y-%m-%d")
    frame["origin"] = frame["origin"].dt.strftime("%Y-%m-%d")
    return frame


def roll_to(client: TestClient, series_id: str, first_yhat: float) -> list[dict[str, Any]]:
    """The series' cached answers until a roll made its first step ``first_yhat`` (every
    answer is logged, the ones before the roll too)."""
    deadline, bodies = time.monotonic() + 15, []
    while not bodies or bodies[-1]["forecasts"][0]["yhat"] != first_yhat:
        assert time.monotonic() < deadline, f"{series_id} did not roll to {first_yhat}"
        bodies.append(ask(client, "/v1/forecast", {"series": [{"series_id": series_id}]}))
        time.sleep(0.02)
    return bodies


def post_actual(client: TestClient, series_id: str, ds: str, y: float) -> None:
    body = {"actuals": [{"series_id": series_id, "ds": ds, "y": y}]}
    assert client.post("/v1/actuals", json=body).status_code == 200


def test_cached_answers_read_back_as_answered_across_rolls_corrections_and_a_swap(
    app: FastAPI, mlflow_store: MlflowStore,
) -> None:
    client = TestClient(app)
    bodies = [
        ask(client, "/v1/forecast", {"series": [{"series_id": "S01|C1"},
                                                {"series_id": "S02|C2"}], "horizon": 3}),
        ask(client, "/v1/forecast", {"rows": [  # out of order, a repeat, two series
            {"series_id": "S01|C1", "ds": week(3)}, {"series_id": "S01|C1", "ds": week(1)},
            {"series_id": "S02|C2", "ds": week(2)}, {"series_id": "S01|C1", "ds": week(2)},
            {"series_id": "S01|C1", "ds": week(3)}]}),
    ]
    post_actual(client, "S01|C1", week(1), 130.0)  # the origin rolls: a new snapshot
    bodies += roll_to(client, "S01|C1", 132.0)
    post_actual(client, "S01|C1", week(1), 150.0)  # same origin, corrected numbers
    bodies += roll_to(client, "S01|C1", 152.0)
    swapped = register_toy(mlflow_store, "toy_compact", offset=1000.0)
    assert client.post("/v1/model/reload").json()["swapped"] is True
    bodies.append(ask(client, "/v1/forecast", {"series": [{"series_id": "S01|C1"}]}))
    assert bodies[-1]["model"]["version"] == swapped.version
    firsts = [(b["forecasts"][0]["origin"], b["forecasts"][0]["yhat"]) for b in bodies]
    assert {(week(1), 132.0), (week(1), 152.0), (week(1), 1152.0)} <= set(firsts)

    frame = logged(app)
    expected = pd.concat([answered(b) for b in bodies], ignore_index=True)
    assert frame[expected.columns].to_dict("records") == expected.to_dict("records")
    store: PredictionStore = app.state.store
    assert count(store, "predictions") == 0
    assert count(store, "prediction_requests") == len(bodies)
    assert frame["features"].map(lambda f: sorted(f)).tolist() == [
        ["price", "promo", "step"]] * len(frame)  # the baseline features, stored once


def test_invocations_from_the_table_are_compact_too(app: FastAPI) -> None:
    client = TestClient(app)
    rows = [{"series_id": "S01|C2", "ds": week(2)}, {"series_id": "S02|C1", "ds": week(1)}]
    body = ask(client, "/invocations", {"dataframe_records": rows})
    frame = logged(app)
    assert frame[["series_id", "ds", "yhat"]].to_dict("records") == [
        {"series_id": r["series_id"], "ds": r["ds"], "yhat": p["yhat"]}
        for r, p in zip(rows, body["predictions"], strict=True)]
    assert count(app.state.store, "prediction_requests") == 1


def test_what_if_answers_are_still_logged_per_cell(app: FastAPI) -> None:
    client = TestClient(app)
    plain = ask(client, "/v1/forecast", {"series": [{"series_id": "S02|C1"}], "horizon": 2})
    what_if = ask(client, "/v1/forecast", {
        "series": [{"series_id": "S01|C2"}], "horizon": 3,
        "scenario": [{"ds": week(2), "values": {"promo": 1}}]})
    frame = logged(app)
    expected = pd.concat([answered(plain), answered(what_if)], ignore_index=True)
    assert frame[expected.columns].to_dict("records") == expected.to_dict("records")
    assert what_if["forecasts"][1]["yhat"] == what_if["forecasts"][0]["yhat"] + 12.0
    store: PredictionStore = app.state.store
    assert count(store, "predictions") == 3  # every row of the what-if answer
    assert count(store, "prediction_requests") == 1  # the plain one
    assert frame["features"].iloc[3]["promo"] == 1.0


# --- the writer alone ----------------------------------------------------------------

SERIES = [f"S{i:03d}" for i in range(120)]
ORIGIN = date(2024, 6, 3)


def table_entries(offset: float = 0.0) -> dict[str, SeriesForecast]:
    """120 series x 8 weeks of precomputed forecast (what the champion would hold)."""
    origins = {s: SeriesOrigin(s, ORIGIN, ORIGIN, None, "current") for s in SERIES}
    dates = forecast_dates(ORIGIN, "W", 8)
    forecast = pd.DataFrame([
        {"series_id": s, "ds": pd.Timestamp(d), "yhat": i + k + offset,
         "yhat_lower": i + k - 1.0, "yhat_upper": i + k + 1.0}
        for i, s in enumerate(SERIES) for k, d in enumerate(dates)])
    return build_entries(forecast, None, origins, "W", 8)


def batch_entry(entries: dict[str, SeriesForecast], request_id: str,
                created_at: datetime | None = None) -> LogEntry:
    """A 960-row batch answered from the table (every series x 8 weeks)."""
    cells = [(s, k) for s in SERIES for k in range(8)]
    return LogEntry(request_id, created_at or utc_now(), "demo", "1", log_rows(entries, cells),
                    len(cells))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[PredictionStore]:
    opened = PredictionStore(f"sqlite:///{tmp_path / 'predictions.db'}")
    yield opened
    opened.dispose()


def test_a_burst_far_past_the_old_queue_is_kept_whole_in_bounded_memory(
    store: PredictionStore,
) -> None:
    entries = table_entries()
    prediction_log = PredictionLog(store, flush_seconds=60)  # the default bound: 200,000
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    accepted = [prediction_log.submit(batch_entry(entries, f"r{i}")) for i in range(300)]
    held = tracemalloc.get_traced_memory()[0] - before  # the queue before any write
    tracemalloc.stop()
    assert all(accepted) and prediction_log.dropped == 0
    assert prediction_log.peak_pending == 300 * 120 < prediction_log.max_pending
    assert held < 8_000_000  # ~10 kB per 960-row request waiting
    prediction_log.start()
    prediction_log.close()
    assert (prediction_log.written, prediction_log.failed) == (300 * 960, 0)
    assert count(store, "prediction_requests") == 300
    assert count(store, "forecast_snapshots") == 120 * 8  # each forecast stored once
    frame = store.read_predictions()
    assert len(frame) == 300 * 960
    first = frame.iloc[:960]
    assert first["yhat"].tolist() == [i + k for i in range(120) for k in range(8)]


def test_per_cell_logging_of_the_same_burst_overflows_the_queue(store: PredictionStore) -> None:
    """The old behaviour (``compact=False``), for contrast: 960 queued rows per request."""
    entries = table_entries()
    prediction_log = PredictionLog(store, compact=False)  # not started: nothing drains
    accepted = [prediction_log.submit(batch_entry(entries, f"r{i}")) for i in range(300)]
    assert sum(accepted) == 200_000 // 960
    assert prediction_log.dropped == (300 - 200_000 // 960) * 960


def _log(store: PredictionStore, *entries: LogEntry) -> None:
    prediction_log = PredictionLog(store, flush_seconds=60)
    prediction_log.start()
    for entry in entries:
        assert prediction_log.submit(entry)
    prediction_log.close()


def _set_last_used(store: PredictionStore, when: datetime) -> None:
    with store.engine.begin() as conn:
        conn.execute(sa.text("UPDATE forecast_snapshots SET last_used = :when"),
                     {"when": when.strftime("%Y-%m-%d %H:%M:%S.%f")})


def test_retention_deletes_what_is_older_and_keeps_the_rest(store: PredictionStore) -> None:
    now = utc_now()
    old, recent = now - timedelta(days=10), now - timedelta(days=1)
    per_cell = ("A", "2024-06-10", 1.0, 0.0, 2.0, '{"promo": 1.0}', "2024-06-03")
    stale, fresh = table_entries(offset=0.0), table_entries(offset=0.5)
    _log(store, LogEntry("old-what-if", old, "demo", "1", [per_cell]),
         LogEntry("new-what-if", recent, "demo", "1", [per_cell]),
         batch_entry(stale, "old", old), batch_entry(fresh, "new", recent))
    _set_last_used(store, old)  # as if neither forecast had been asked for since
    _log(store, batch_entry(fresh, "now"))  # ... until now: `fresh` is in use again
    purged = store.purge_predictions(now - timedelta(days=3))
    assert (purged.predictions, purged.requests, purged.finished) == (1, 1, True)
    assert purged.snapshots == 960  # `stale`: pointed at by no kept answer
    frame = store.read_predictions()
    assert list(dict.fromkeys(frame["request_id"])) == ["new-what-if", "new", "now"]
    assert len(frame) == 1 + 2 * 960 and frame["yhat"].iloc[1] == 0.5
    assert store.purge_predictions(now - timedelta(days=3)).total == 0


def test_a_purge_runs_in_small_batches_within_its_time(store: PredictionStore) -> None:
    long_ago = utc_now() - timedelta(days=30)
    rows = [("A", "2024-06-10", float(i), 0.0, 2.0, None, "2024-06-03") for i in range(5)]
    _log(store, LogEntry("old", long_ago, "demo", "1", rows, len(rows)))
    first = store.purge_predictions(utc_now(), max_seconds=0.0, batch_rows=2)
    assert (first.predictions, first.finished) == (2, False)
    rest = store.purge_predictions(utc_now(), batch_rows=2)
    assert (rest.predictions, rest.finished) == (3, True)


def test_the_writer_applies_retention_itself(store: PredictionStore) -> None:
    entries = table_entries()
    _log(store, batch_entry(entries, "old", utc_now() - timedelta(days=8)),
         batch_entry(entries, "new", utc_now() - timedelta(days=6)))
    prediction_log = PredictionLog(store, retention=timedelta(days=7))
    prediction_log.start()
    assert prediction_log.flush()
    prediction_log.close()
    assert prediction_log.purged == 1
    assert set(store.read_predictions()["request_id"]) == {"new"}


def test_a_database_from_before_the_compact_log_still_reads(tmp_path: Path) -> None:
    """Per-cell rows of an older version stay readable, next to new compact answers."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE predictions (id INTEGER PRIMARY KEY, request_id VARCHAR(64), "
            "created_at DATETIME, model_name VARCHAR(255), model_version VARCHAR(32), "
            "series_id VARCHAR(255), ds DATE, yhat FLOAT, yhat_lower FLOAT, yhat_upper FLOAT, "
            "features TEXT, origin DATE)")
        for i, ds in enumerate(("2024-06-10", "2024-06-17")):
            conn.exec_driver_sql(
                "INSERT INTO predictions (request_id, created_at, model_name, model_version, "
                "series_id, ds, yhat, yhat_lower, yhat_upper, features, origin) VALUES "
                f"('before', '2024-06-04 09:00:00.000000', 'demo', '1', 'S000', '{ds}', "
                f"{i}.0, -1.0, 1.0, NULL, '2024-06-03')")
    engine.dispose()
    store = PredictionStore(url)
    try:
        frame = store.read_predictions()
        assert frame[["request_id", "ds", "yhat"]].to_dict("records") == [
            {"request_id": "before", "ds": pd.Timestamp("2024-06-10"), "yhat": 0.0},
            {"request_id": "before", "ds": pd.Timestamp("2024-06-17"), "yhat": 1.0}]
        _log(store, batch_entry(table_entries(), "after"))
        frame = store.read_predictions()
        assert frame["request_id"].tolist() == ["before"] * 2 + ["after"] * 960
        assert list(frame.columns) == list(store.read_predictions().columns)
    finally:
        store.dispose()
