"""The prediction store and the background prediction log in front of it.

The store's own tests run on SQLite (WAL) and on PostgreSQL (a new database of the
session's `pg_stack` per test: ids ``[sqlite]`` / ``[postgresql]``); the last one serves
`salescast serve --workers 2` on PostgreSQL and posts actuals to both workers at once.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
import sqlalchemy as sa

import serving.store as store_module
from experiments.stack import Stack
from experiments.traffic import free_port, wait_for_http
from serving.prediction_log import LogEntry, LogRow, PredictionLog
from serving.store import Actual, PredictionStore, utc_now
from tests.serving.conftest import MlflowStore, register_toy


@pytest.fixture(params=["sqlite", "postgresql"])
def new_url(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], str]:
    """Gives the URL of a new, empty database of the test's backend at each call."""
    if request.param == "sqlite":
        numbers = itertools.count()
        return lambda: f"sqlite:///{tmp_path / 'nested' / f'predictions{next(numbers)}.db'}"
    stack = request.getfixturevalue("pg_stack")
    return lambda: stack.new_database(f"store_{uuid.uuid4().hex[:16]}")


@pytest.fixture
def store(new_url: Callable[[], str]) -> Iterator[PredictionStore]:
    opened = PredictionStore(new_url())
    yield opened
    opened.dispose()


@pytest.fixture
def sqlite_store(tmp_path: Path) -> PredictionStore:
    return PredictionStore(f"sqlite:///{tmp_path / 'nested' / 'predictions.db'}")


def _entry(request_id: str, rows: list[LogRow], version: str = "1",
           created_at: datetime | None = None) -> LogEntry:
    return LogEntry(request_id, created_at or utc_now(), "toy", version, rows)


ORIGIN = "2024-06-03"


def _row(series_id: str, ds: str, yhat: float, features: str | None = None) -> LogRow:
    return (series_id, ds, yhat, yhat - 5, yhat + 5, features, ORIGIN)


def _write(store: PredictionStore, *entries: LogEntry) -> None:
    log = PredictionLog(store, flush_seconds=60)
    log.start()
    for entry in entries:
        assert log.submit(entry)
    log.close()


def test_sqlite_store_runs_in_wal_mode(sqlite_store: PredictionStore) -> None:
    with sqlite_store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() > 0


def test_close_writes_everything_submitted(store: PredictionStore) -> None:
    _write(store, _entry("r1", [_row("A", "2024-06-10", 10.0, '{"promo": 1.0}'),
                                _row("B", "2024-06-17", 20.0)]))
    frame = store.read_predictions()
    assert frame[["request_id", "model_name", "model_version", "series_id", "yhat"]].to_dict(
        "records") == [
        {"request_id": "r1", "model_name": "toy", "model_version": "1", "series_id": "A",
         "yhat": 10.0},
        {"request_id": "r1", "model_name": "toy", "model_version": "1", "series_id": "B",
         "yhat": 20.0},
    ]
    assert frame["ds"].tolist() == [pd.Timestamp("2024-06-10"), pd.Timestamp("2024-06-17")]
    assert frame["features"].tolist() == [{"promo": 1.0}, None]
    assert str(frame["created_at"].dt.tz) == "UTC"


class CountingStore(PredictionStore):
    """Records how many rows each insert carried, and fails the first one if asked."""

    def __init__(self, url: str, fail_first: bool = False) -> None:
        super().__init__(url)
        self.batches: list[int] = []
        self.fail_next = fail_first

    def write_predictions(self, rows: Any) -> None:
        if self.fail_next:
            self.fail_next = False
            raise sa.exc.OperationalError("insert", {}, Exception("database is locked"))
        self.batches.append(len(rows))
        super().write_predictions(rows)


def test_rows_are_expanded_off_the_request_thread_and_batched(tmp_path: Path) -> None:
    store = CountingStore(f"sqlite:///{tmp_path / 'p.db'}")
    log = PredictionLog(store, batch_size=4, flush_seconds=60)
    threads: list[str] = []

    def lazy_rows(n: int) -> Any:
        threads.append(threading.current_thread().name)
        yield from (_row("A", "2024-06-10", float(i)) for i in range(n))

    log.start()
    for i in range(5):
        log.submit(_entry(f"r{i}", lazy_rows(2)))  # type: ignore[arg-type]
    assert log.flush()
    assert set(threads) == {"prediction-log"}
    assert store.batches == [4, 4, 2]  # two full batches, then the flush
    log.close()
    assert log.written == 10 and len(store.read_predictions()) == 10


def test_a_failed_write_is_counted_and_the_writer_lives_on(tmp_path: Path) -> None:
    store = CountingStore(f"sqlite:///{tmp_path / 'p.db'}", fail_first=True)
    log = PredictionLog(store, flush_seconds=60)
    log.start()
    log.submit(_entry("lost", [_row("A", "2024-06-10", 1.0)]))
    log.flush()
    log.submit(_entry("kept", [_row("A", "2024-06-10", 2.0)]))
    log.close()
    assert (log.failed, log.written) == (1, 1)
    assert store.read_predictions()["request_id"].tolist() == ["kept"]


def test_a_full_queue_drops_and_counts_instead_of_blocking(
    sqlite_store: PredictionStore,
) -> None:
    log = PredictionLog(sqlite_store, max_pending=2)  # not started: nothing drains the queue
    accepted = [log.submit(_entry(f"r{i}", [])) for i in range(4)]
    assert accepted == [True, True, False, False]
    assert log.dropped == 2


def test_actuals_upsert_and_joined_keeps_the_latest_prediction(store: PredictionStore) -> None:
    earlier = utc_now() - timedelta(hours=2)
    _write(store,
           _entry("old", [_row("A", "2024-06-10", 10.0)], created_at=earlier),
           _entry("new", [_row("A", "2024-06-10", 12.0), _row("B", "2024-06-10", 30.0)]),
           _entry("v2", [_row("A", "2024-06-10", 11.0)], version="2"))
    store.upsert_actuals([Actual("A", date(2024, 6, 10), 9.0), Actual("A", date(2024, 6, 17), 1.0)])
    store.upsert_actuals([Actual("A", date(2024, 6, 10), 13.0)])  # a correction replaces
    joined = store.joined()
    assert joined[["request_id", "model_version", "yhat", "y"]].to_dict("records") == [
        {"request_id": "new", "model_version": "1", "yhat": 12.0, "y": 13.0},
        {"request_id": "v2", "model_version": "2", "yhat": 11.0, "y": 13.0},
    ]  # B has no actual yet; "old" is superseded by "new" for version 1
    assert len(store.joined(latest_only=False)) == 3
    assert store.read_actuals()["y"].tolist() == [13.0, 1.0]


def test_duplicated_actuals_in_one_call_keep_the_last_and_count_once(
    store: PredictionStore,
) -> None:
    """PostgreSQL refuses an ON CONFLICT upsert touching one row twice: the store keeps
    the last of a (series_id, ds) before writing."""
    posted = [Actual("A", date(2024, 6, 10), 1.0), Actual("B", date(2024, 6, 10), 5.0),
              Actual("A", date(2024, 6, 10), 2.0, {"promo": 1.0})]
    assert store.upsert_actuals(posted) == 2
    assert store.upsert_actuals(posted) == 2  # idempotent
    stored = store.read_actuals(exog=True)
    assert stored[["series_id", "y"]].to_dict("records") == [
        {"series_id": "A", "y": 2.0}, {"series_id": "B", "y": 5.0}]
    assert stored["promo"].tolist()[0] == 1.0


def test_since_filters_by_creation_and_receipt_time(store: PredictionStore) -> None:
    long_ago = utc_now() - timedelta(days=3)
    _write(store, _entry("old", [_row("A", "2024-06-10", 1.0)], created_at=long_ago),
           _entry("new", [_row("A", "2024-06-10", 2.0)]))
    store.upsert_actuals([Actual("A", date(2024, 6, 10), 3.0)])
    since = utc_now() - timedelta(days=1)
    assert store.read_predictions(since)["request_id"].tolist() == ["new"]
    assert len(store.read_actuals(since)) == 1
    assert store.read_actuals(utc_now() + timedelta(minutes=1)).empty


def test_read_features_gives_one_column_per_feature(store: PredictionStore) -> None:
    _write(store, _entry("r", [_row("A", "2024-06-10", 1.0, '{"promo": 1.0, "step": 1.0}'),
                               _row("B", "2024-06-10", 2.0),
                               _row("C", "2024-06-17", 3.0, '{"promo": 0.0, "step": 2.0}')]))
    features = store.read_features()
    assert features["series_id"].tolist() == ["A", "C"]
    assert features[["promo", "step"]].to_dict("records") == [
        {"promo": 1.0, "step": 1.0}, {"promo": 0.0, "step": 2.0}
    ]


def test_baseline_features_are_stored_once_and_read_back_onto_their_rows(
    store: PredictionStore,
) -> None:
    baseline = [("A", ORIGIN, "2024-06-10", '{"lag_8": 5.0}'), ("B", ORIGIN, "2024-06-10", None)]
    assert store.save_baseline_features("toy", "1", baseline) == 1
    assert store.save_baseline_features("toy", "1", baseline) == 0  # a second worker, say
    _write(store,
           _entry("v1", [_row("A", "2024-06-10", 1.0), _row("B", "2024-06-10", 2.0),
                         _row("A", "2024-06-10", 3.0, '{"lag_8": 5.0, "promo": 1.0}')]),
           _entry("v2", [_row("A", "2024-06-10", 4.0)], version="2"))
    assert store.read_predictions()["features"].tolist() == [
        {"lag_8": 5.0}, None, {"lag_8": 5.0, "promo": 1.0}, None,
    ]  # shared for v1's plain row; a scenario row keeps its own; v2 has no baseline here
    with store.engine.connect() as conn:
        inline = conn.exec_driver_sql("SELECT count(features) FROM predictions").scalar()
    assert inline == 1


def test_large_batches_round_trip_across_insert_chunks(store: PredictionStore) -> None:
    created = utc_now()
    rows = [(f"r{i // 8}", created, "toy", "1", f"S{i % 5}", "2024-06-10", float(i),
             i - 0.5, i + 0.5, None if i % 3 else f'{{"i": {i}}}', None) for i in range(1007)]
    store.write_predictions(rows)
    frame = store.read_predictions()
    assert frame["yhat"].tolist() == [float(i) for i in range(1007)]
    assert frame["request_id"].tolist() == [r[0] for r in rows]
    assert frame["features"].tolist()[:4] == [{"i": 0}, None, None, {"i": 3}]
    assert (frame["created_at"] == pd.Timestamp(created, tz="UTC")).all()


def test_a_store_from_before_origins_is_upgraded_without_losing_rows(tmp_path: Path) -> None:
    """Old tables (no origin column) get one; old baseline features are kept aside."""
    import sqlalchemy as sa

    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE predictions (id INTEGER PRIMARY KEY, request_id VARCHAR(64), "
            "created_at DATETIME, model_name VARCHAR(255), model_version VARCHAR(32), "
            "series_id VARCHAR(255), ds DATE, yhat FLOAT, yhat_lower FLOAT, yhat_upper FLOAT, "
            "features TEXT)")
        conn.exec_driver_sql(
            "INSERT INTO predictions VALUES (1, 'old', '2024-06-01 00:00:00.000000', 'toy', '1', "
            "'A', '2024-06-10', 1.0, 0.0, 2.0, NULL)")
        conn.exec_driver_sql(
            "CREATE TABLE baseline_features (id INTEGER PRIMARY KEY, model_name VARCHAR(255), "
            "model_version VARCHAR(32), series_id VARCHAR(255), ds DATE, features TEXT)")
        conn.exec_driver_sql("INSERT INTO baseline_features VALUES "
                             "(1, 'toy', '1', 'A', '2024-06-10', '{\"lag_8\": 5.0}')")
    engine.dispose()
    store = PredictionStore(url)
    assert store.read_predictions()["request_id"].tolist() == ["old"]
    baseline = [("A", ORIGIN, "2024-06-17", '{"lag_8": 6.0}')]
    assert store.save_baseline_features("toy", "1", baseline) == 1
    with store.engine.connect() as conn:
        kept = conn.exec_driver_sql("SELECT count(*) FROM baseline_features_v1").scalar()
    assert kept == 1


def _one_line_store_error(url: str) -> str:
    with pytest.raises(store_module.StoreError) as raised:
        PredictionStore(url)
    message = str(raised.value)
    assert message and "\n" not in message
    return message


def test_a_postgres_url_without_its_driver_says_which_extra_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # `import psycopg` fails
    message = _one_line_store_error("postgresql://app:s3cret@127.0.0.1:1/sales")
    assert "salescast[postgres]" in message
    assert "s3cret" not in message


def test_a_malformed_store_url_is_one_clear_error() -> None:
    assert "invalid prediction-store URL" in _one_line_store_error("not a url")


def test_an_unreachable_database_is_one_clear_error() -> None:
    pytest.importorskip("psycopg")  # in the dev extra (salescast[postgres])
    message = _one_line_store_error("postgresql://app:s3cret@127.0.0.1:1/sales")  # nothing on :1
    assert "cannot connect to prediction store postgresql://app:***@127.0.0.1:1/sales" in message
    assert "s3cret" not in message


def _fail_first_create(monkeypatch: pytest.MonkeyPatch, failures: int) -> list[int]:
    """``metadata.create_all`` fails ``failures`` times as on PostgreSQL when another worker
    creates the tables at the same moment (that worker's ``predictions`` is there after)."""
    calls: list[int] = []
    real = store_module.metadata.create_all

    def racing(bind: sa.Engine, **kwargs: Any) -> None:
        calls.append(1)
        if len(calls) > failures:
            return real(bind, **kwargs)
        store_module.predictions_table.create(bind, checkfirst=True)
        raise sa.exc.IntegrityError(
            "CREATE TABLE predictions", {}, Exception(
                'duplicate key value violates unique constraint "pg_type_typname_nsp_index"'))

    monkeypatch.setattr(store_module.metadata, "create_all", racing)
    monkeypatch.setattr(store_module, "CREATE_BACKOFF_SECONDS", 0.0, raising=False)
    return calls


def _assert_complete_schema(engine: sa.Engine) -> None:
    """Every table with all its columns, indexes and unique constraints."""
    inspector = sa.inspect(engine)
    for table in store_module.metadata.sorted_tables:
        assert {c["name"] for c in inspector.get_columns(table.name)} == set(table.c.keys())
        indexed = {tuple(i["column_names"]) for i in inspector.get_indexes(table.name)}
        assert {tuple(i.columns.keys()) for i in table.indexes} <= indexed
        unique = {tuple(u["column_names"]) for u in inspector.get_unique_constraints(table.name)}
        assert {tuple(c.columns.keys()) for c in table.constraints
                if isinstance(c, sa.UniqueConstraint)} <= unique


def test_losing_the_race_to_create_the_tables_retries(
    new_url: Callable[[], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _fail_first_create(monkeypatch, failures=1)
    store = PredictionStore(new_url())
    assert len(calls) == 2
    _assert_complete_schema(store.engine)
    assert store.upsert_actuals([Actual("A", date(2024, 6, 10), 1.0)]) == 1


def test_table_creation_gives_up_with_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _fail_first_create(monkeypatch, failures=99)
    message = _one_line_store_error(f"sqlite:///{tmp_path / 'raced.db'}")
    assert "could not create the prediction-store tables" in message
    assert len(calls) == store_module.CREATE_ATTEMPTS


def _open_together(url: str, workers: int) -> list[BaseException]:
    """``workers`` threads open a store on ``url`` at the same moment; their errors."""
    start = threading.Barrier(workers)
    errors: list[BaseException] = []

    def open_store() -> None:
        start.wait()
        try:
            PredictionStore(url).dispose()
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_store) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return errors


def test_workers_starting_together_on_a_fresh_database_all_open_it(
    new_url: Callable[[], str],
) -> None:
    """4 stores opened at once on a new database, 8 times (on SQLite a round used to fail
    ~2 in 3; on PostgreSQL the loser of CREATE TABLE gets a unique violation on pg_type)."""
    for _ in range(8):
        url = new_url()
        assert _open_together(url, workers=4) == []
        opened = PredictionStore(url)
        _assert_complete_schema(opened.engine)
        opened.dispose()


def _serve_two_workers(store_url: str, tracking_uri: str, workdir: Path, port: int,
                       model: str = "toy", poll_seconds: float = 0) -> subprocess.Popen[bytes]:
    env = os.environ | {
        "SALESCAST_TRACKING_URI": tracking_uri, "SALESCAST_STORE_URL": store_url,
        "SALESCAST_LOCAL_MODEL_DIR": str(workdir / "champion"),
        "SALESCAST_POLL_SECONDS": str(poll_seconds), "SALESCAST_ROLL_SECONDS": "0.2",
    }
    command = [sys.executable, "-m", "experiments.commands_serve", "--port", str(port),
               "--model-name", model, "--workers", "2"]
    with (workdir / "api.log").open("wb") as log_file:
        return subprocess.Popen(command, cwd=workdir, env=env, stdout=log_file,
                                stderr=subprocess.STDOUT)


def _origins_by_worker(api: str, series_id: str, wanted: str, timeout: float = 30) -> dict:
    """Ask on fresh connections until both workers forecast from ``wanted``."""
    seen: dict[str, str] = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = httpx.post(f"{api}/v1/forecast", json={"series": [{"series_id": series_id}]})
        if answer.status_code != 200:  # a worker swapping or rolling: ask again
            continue
        seen[answer.headers["x-salescast-worker"]] = answer.json()["forecasts"][0]["origin"]
        if len(seen) == 2 and set(seen.values()) == {wanted}:
            break
    return seen


POLL = 2.0  # the alias poll of the two-worker test


def _versions_by_worker(api: str, wanted: str, timeout: float) -> dict[str, str]:
    """Ask on fresh connections until both workers serve version ``wanted``."""
    seen: dict[str, str] = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = httpx.post(f"{api}/v1/forecast", json={"series": [{"series_id": "S01|C1"}]})
        if answer.status_code == 200:  # a worker swapping or rolling: ask again
            seen[answer.headers["x-salescast-worker"]] = str(answer.json()["model"]["version"])
        if len(seen) == 2 and set(seen.values()) == {wanted}:
            break
        time.sleep(0.05)
    return seen


def test_two_api_workers_on_postgresql_keep_every_actual_posted_at_once(
    mlflow_store: MlflowStore, pg_stack: Stack, tmp_path: Path,
) -> None:
    """`salescast serve --workers 2` on a new PostgreSQL database (both worker processes
    create its tables at once); 100 actuals posted concurrently, one per request: all are
    stored, and both workers roll the series to the newest week; a new champion is served
    by both within one poll."""
    model = f"toy_pg_{uuid.uuid4().hex[:8]}"
    register_toy(mlflow_store, model, offset=0.0)
    store_url = pg_stack.new_database(f"api_{uuid.uuid4().hex[:16]}")
    port = free_port()
    api = f"http://127.0.0.1:{port}"
    weeks = [date(2024, 6, 10) + timedelta(weeks=k) for k in range(25)]
    actuals = [{"series_id": s, "ds": w.isoformat(), "y": 100.0 + k}
               for s in ("S01|C1", "S01|C2", "S02|C1", "S02|C2") for k, w in enumerate(weeks)]
    process = _serve_two_workers(store_url, mlflow_store.tracking_uri, tmp_path, port, model,
                                 poll_seconds=POLL)
    try:
        wait_for_http(f"{api}/readyz", process, 90, lambda: (tmp_path / "api.log").read_text())
        with ThreadPoolExecutor(max_workers=10) as pool:
            statuses = list(pool.map(
                lambda a: httpx.post(f"{api}/v1/actuals", json={"actuals": [a]}).status_code,
                actuals))
        origins = _origins_by_worker(api, "S01|C1", weeks[-1].isoformat())
        new = register_toy(mlflow_store, model, offset=100.0)
        versions = _versions_by_worker(api, new.version, timeout=POLL + 30)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    assert statuses == [200] * 100
    stored = PredictionStore(store_url)
    assert len(stored.read_actuals()) == 100
    stored.dispose()
    assert origins == dict.fromkeys(origins, weeks[-1].isoformat()) and len(origins) == 2
    # both serve it within one poll plus the new version's load and roll (generous bound)
    assert versions == dict.fromkeys(versions, new.version) and len(versions) == 2
