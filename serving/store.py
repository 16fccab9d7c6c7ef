"""The prediction log and the realised sales (actuals), in one SQLAlchemy database.

SQLite in WAL mode by default (readers never block the writer, ``busy_timeout`` lets
several workers share the file); any SQLAlchemy URL (PostgreSQL, with the
``salescast[postgres]`` extra) for scale. Workers opening a new database together all
come up (table creation is retried); a store that cannot be opened raises
:class:`StoreError`, one line saying why.

Tables (timestamps are UTC):

* ``predictions``: one row per forecast row served — request_id, created_at, model_name,
  model_version, series_id, ds, yhat, yhat_lower, yhat_upper, features (JSON text: the
  feature values the model used when it exposes them, else the scenario inputs, else
  null), origin (the period the forecast was made from), and for a cell a person's
  override changed (:mod:`serving.overrides`) yhat_final (the number served) and
  override_id; ``yhat`` and its bounds stay the model's, so drift and the accuracy
  against the model's promise judge the model (null = the model's number was served);
  ``cold_start`` is true on the rows of a new series' forecast (:mod:`serving.cold_start`,
  logged per cell), null otherwise.
* ``baseline_features``: the features of each champion's no-scenario forecast, once per
  (model_name, model_version, series_id, origin, ds). Rows answered from that forecast
  leave ``predictions.features`` null and share these (~1 kB of JSON per row otherwise,
  the same for every request: it made the log 10x larger and 3x slower to write).
* ``forecast_history``: the no-scenario forecast of every series at every origin it
  reached (model_name, model_version, series_id, origin, ds, yhat, yhat_lower,
  yhat_upper, made_at) — what accuracy by forecast lag is measured on, whether or not an
  application asked for it. A recomputed origin (a corrected actual) replaces its rows.
* ``prediction_requests`` and ``forecast_snapshots``: the compact log of cached
  (no-scenario) answers (:mod:`serving.compact_log`): one row per request (request_id,
  created_at, model_name, model_version, n_rows, runs: JSON ``[[snapshot_id, first step,
  steps], ...]``) pointing at each precomputed forecast, stored once per model version and
  snapshot_id (model_name, model_version, snapshot_id, step, series_id, origin, ds, yhat,
  yhat_lower, yhat_upper, last_used). What-if answers stay in ``predictions``.
* ``actuals``: series_id, ds, y, received_at, exog (JSON: realised promo / price ... of the
  period, when posted); unique on (series_id, ds), written by upsert. They also move each
  series' forecast origin (:mod:`features.origin`).
* ``overrides``: people's adjustments of (series, periods): id, series_id, periods (JSON
  list of ISO dates), first_ds, last_ds, value or pct_change, author, reason, note,
  created_at, revoked_at, revoked_by. Rows are never deleted: a revocation is recorded.

The monitoring code reads them through :meth:`PredictionStore.read_predictions` (per-cell
and compact rows as one per-cell frame, the baseline features back on their rows),
:meth:`read_actuals`, :meth:`read_features` and :meth:`joined` (DataFrames).
:meth:`purge_predictions` deletes log rows older than a date (retention, in small batches);
forecast history, baseline features and actuals are kept.
"""

from __future__ import annotations

import functools
import json
import logging
import random
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from serving.compact_log import (
    REQUEST_COLUMNS,
    SNAPSHOT_COLUMNS,
    SNAPSHOT_TOUCH,
    RequestRow,
    SnapshotRow,
    expand,
    runs_frame,
)

log = logging.getLogger(__name__)

MAX_ABS_VALUE = 1e15  # the largest |y| the API accepts (sums of many stay finite)

metadata = sa.MetaData()

predictions_table = sa.Table(
    "predictions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("request_id", sa.String(64), nullable=False, index=True),
    sa.Column("created_at", sa.DateTime, nullable=False, index=True),
    sa.Column("model_name", sa.String(255), nullable=False),
    sa.Column("model_version", sa.String(32), nullable=False),
    sa.Column("series_id", sa.String(255), nullable=False),
    sa.Column("ds", sa.Date, nullable=False),
    sa.Column("yhat", sa.Float),
    sa.Column("yhat_lower", sa.Float),
    sa.Column("yhat_upper", sa.Float),
    sa.Column("features", sa.Text),
    sa.Column("origin", sa.Date),
    sa.Column("yhat_final", sa.Float),  # set when a person's override changed the answer
    sa.Column("override_id", sa.Integer),  # which override (serving.overrides)
    sa.Column("cold_start", sa.Boolean),  # a new series' forecast (serving.cold_start)
)

CELL_KEY = ("model_name", "model_version", "series_id", "origin", "ds")


def _per_cell(name: str, *columns: sa.Column) -> sa.Table:
    """A table with one row per (model version, series, origin, ds): a forecast cell."""
    return sa.Table(
        name,
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("model_name", sa.String(255), nullable=False),
        sa.Column("model_version", sa.String(32), nullable=False),
        sa.Column("series_id", sa.String(255), nullable=False),
        sa.Column("origin", sa.Date, nullable=False),
        sa.Column("ds", sa.Date, nullable=False),
        *columns,
        sa.UniqueConstraint(*CELL_KEY, name=f"uq_{name}_cell"),
    )


baseline_features_table = _per_cell("baseline_features",
                                    sa.Column("features", sa.Text, nullable=False))
forecast_history_table = _per_cell(
    "forecast_history", sa.Column("yhat", sa.Float), sa.Column("yhat_lower", sa.Float),
    sa.Column("yhat_upper", sa.Float), sa.Column("made_at", sa.DateTime, nullable=False))

prediction_requests_table = sa.Table(
    "prediction_requests",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("request_id", sa.String(64), nullable=False, index=True),
    sa.Column("created_at", sa.DateTime, nullable=False, index=True),
    sa.Column("model_name", sa.String(255), nullable=False),
    sa.Column("model_version", sa.String(32), nullable=False),
    sa.Column("n_rows", sa.Integer, nullable=False),
    sa.Column("runs", sa.Text, nullable=False),
)
forecast_snapshots_table = sa.Table(
    "forecast_snapshots",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("model_name", sa.String(255), nullable=False),
    sa.Column("model_version", sa.String(32), nullable=False),
    sa.Column("snapshot_id", sa.String(32), nullable=False),
    sa.Column("step", sa.Integer, nullable=False),
    sa.Column("series_id", sa.String(255), nullable=False),
    sa.Column("origin", sa.Date),
    sa.Column("ds", sa.Date, nullable=False),
    sa.Column("yhat", sa.Float),
    sa.Column("yhat_lower", sa.Float),
    sa.Column("yhat_upper", sa.Float),
    sa.Column("last_used", sa.DateTime, nullable=False, index=True),
    sa.UniqueConstraint("model_name", "model_version", "snapshot_id", "step",
                        name="uq_forecast_snapshots_cell"),
)

actuals_table = sa.Table(
    "actuals",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("series_id", sa.String(255), nullable=False),
    sa.Column("ds", sa.Date, nullable=False),
    sa.Column("y", sa.Float, nullable=False),
    sa.Column("received_at", sa.DateTime, nullable=False, index=True),
    sa.Column("exog", sa.Text),  # JSON: realised exogenous values of the period, if posted
    sa.UniqueConstraint("series_id", "ds", name="uq_actuals_series_ds"),
)

overrides_table = sa.Table(  # people's adjustments: serving.overrides (rows never deleted)
    "overrides",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("series_id", sa.String(255), nullable=False, index=True),
    sa.Column("periods", sa.Text, nullable=False),  # JSON list of ISO period dates
    sa.Column("first_ds", sa.Date, nullable=False),
    sa.Column("last_ds", sa.Date, nullable=False),
    sa.Column("value", sa.Float),
    sa.Column("pct_change", sa.Float),
    sa.Column("author", sa.String(255), nullable=False),
    sa.Column("reason", sa.String(32), nullable=False),
    sa.Column("note", sa.Text),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("revoked_at", sa.DateTime),
    sa.Column("revoked_by", sa.String(255)),
)

PREDICTION_COLUMNS = [
    "request_id", "created_at", "model_name", "model_version", "series_id", "ds",
    "yhat", "yhat_lower", "yhat_upper", "features", "origin", "yhat_final", "override_id",
]
PLAIN_WIDTH = 11  # a row without the override columns (yhat_final, override_id) is this long
ACTUAL_COLUMNS = ["series_id", "ds", "y", "received_at"]
HISTORY_COLUMNS = ["model_name", "model_version", "series_id", "origin", "ds", "yhat",
                   "yhat_lower", "yhat_upper", "made_at"]


# request_id, created_at, model_name, model_version, series_id, ds, yhat, yhat_lower,
# yhat_upper, features (JSON text or None), origin (ISO date or None); an overridden cell
# adds yhat_final and override_id (``yhat`` stays the model's number)
PredictionRow = tuple[Any, ...]
# series_id, origin (ISO), ds (ISO), yhat, yhat_lower, yhat_upper: one no-scenario forecast row
HistoryRow = tuple[str, str, str, float, float, float]

_SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"  # how SQLAlchemy stores DateTime in SQLite
# Rows per multi-row INSERT, within SQLite's limit on parameters (999 before 3.32).
_SQLITE_CHUNK = 400 if sqlite3.sqlite_version_info >= (3, 32, 0) else 90
PURGE_BATCH_ROWS = 5000  # rows per retention DELETE (a short transaction)
SNAPSHOT_CHUNK = 500  # snapshot ids per query (SQL parameter limits)


@functools.lru_cache(maxsize=8)
def _sqlite_insert(n_rows: int, width: int = PLAIN_WIDTH) -> str:
    columns = PREDICTION_COLUMNS[:width]
    row = "(" + ", ".join("?" for _ in columns) + ")"
    return f"INSERT INTO predictions ({', '.join(columns)}) VALUES " + ", ".join(
        [row] * n_rows
    )


def _by_width(rows: Sequence[PredictionRow]) -> list[Sequence[PredictionRow]]:
    """Plain rows, then overridden ones (longer): one INSERT shape each. Only what-if
    answers and overridden cells are logged per cell, so the split is cheap."""
    if all(len(row) == PLAIN_WIDTH for row in rows):
        return [rows]
    return [[r for r in rows if len(r) == PLAIN_WIDTH], [r for r in rows if len(r) > PLAIN_WIDTH]]


def _sqlite_write(conn: sa.Connection, rows: Sequence[PredictionRow]) -> None:
    """Multi-row INSERTs: one SQLite step (one GIL release) per chunk instead of per row.

    Per-row executemany lets the request thread starve the writer of the GIL (the
    "convoy effect"): 3x fewer rows per second under load.
    """
    stamps: dict[datetime, str] = {}
    values: list[Any] = []
    for row in rows:
        stamp = stamps.get(row[1]) or stamps.setdefault(row[1], row[1].strftime(_SQLITE_TIME))
        values.append(row[0])
        values.append(stamp)
        values.extend(row[2:])
    width = len(rows[0]) if rows else PLAIN_WIDTH  # one width per call (_by_width)
    for start in range(0, len(rows), _SQLITE_CHUNK):
        n_rows = min(_SQLITE_CHUNK, len(rows) - start)
        chunk = tuple(values[start * width:(start + n_rows) * width])
        conn.exec_driver_sql(_sqlite_insert(n_rows, width), chunk)


def _typed_rows(rows: Sequence[PredictionRow]) -> list[dict[str, Any]]:
    return [
        dict(zip(PREDICTION_COLUMNS, (*row[:5], date.fromisoformat(row[5]), *row[6:10],
                                      _date_or_none(row[10]), *row[11:]), strict=False))
        for row in rows
    ]


def _date_or_none(text: str | None) -> date | None:
    return date.fromisoformat(text) if text else None


@dataclass(frozen=True)
class Actual:
    """One realised value: sales ``y`` of ``series_id`` in period ``ds`` (and, optionally,
    the exogenous values the period really had, e.g. its promotion and price)."""

    series_id: str
    ds: date
    y: float
    exog: dict[str, float] | None = None


def utc_now() -> datetime:
    """Naive UTC timestamp (how the tables store time, portably across databases)."""
    return datetime.now(UTC).replace(tzinfo=None)


class StoreError(RuntimeError):
    """The prediction store cannot be opened: one line that says why (no traceback)."""


# Drivers that SQLAlchemy loads for a backend, and how to get them.
DRIVER_HINTS = {"postgresql": "pip install 'salescast[postgres]' (psycopg 3)"}
CREATE_ATTEMPTS = 5  # tries at creating the tables while other workers do the same
CREATE_BACKOFF_SECONDS = 0.1  # before the 2nd try; doubled (with jitter) for each next one
CONNECT_TIMEOUT_SECONDS = 10  # PostgreSQL (libpq): an unreachable host fails, never hangs


def _sqlite_pragmas(dbapi_connection: Any, connection_record: Any) -> None:
    cursor = dbapi_connection.cursor()
    _set_wal(cursor)
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def _set_wal(cursor: sqlite3.Cursor) -> None:
    """WAL mode (kept in the file). Connections switching a new file to it at the same moment
    get "database is locked" at once, not after the busy timeout: they try again."""
    for attempt in range(1, CREATE_ATTEMPTS + 1):
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError:
            if attempt == CREATE_ATTEMPTS:
                raise
            _pause(attempt)


def _shown(url: sa.URL) -> str:
    return url.render_as_string(hide_password=True)


def _first_line(exc: BaseException) -> str:
    """The driver's own message (SQLAlchemy's wrapper adds SQL and a link on more lines)."""
    reason = getattr(exc, "orig", None) or exc
    lines = str(reason).strip().splitlines()
    return lines[0] if lines else type(reason).__name__


def _parse_url(url: str) -> sa.URL:
    try:
        return sa.make_url(url)
    except (sa.exc.ArgumentError, ValueError) as exc:  # not echoed: it may hold a password
        raise StoreError("invalid prediction-store URL: expected e.g. sqlite:///predictions.db "
                         "or postgresql://user:password@host:5432/dbname") from exc


def create_store_engine(url: str) -> Engine:
    """Engine for ``url``; SQLite files get WAL + busy_timeout and their folder created.

    Raises :class:`StoreError` for a malformed URL, a missing driver or a folder it cannot make.
    """
    sa_url = _parse_url(url)
    try:
        return _engine(sa_url)
    except ImportError as exc:
        raise _missing_driver(sa_url, exc) from exc
    except (sa.exc.ArgumentError, OSError) as exc:
        raise StoreError(f"cannot use prediction store {_shown(sa_url)}: {exc}") from exc


def _missing_driver(sa_url: sa.URL, exc: ImportError) -> StoreError:
    backend = sa_url.get_backend_name()
    hint = DRIVER_HINTS.get(backend, f"install the {backend} driver")
    reason = f"{exc.name} is not installed" if exc.name else _first_line(exc)
    return StoreError(f"no driver for {sa_url.drivername}:// store URLs ({reason}): {hint}")


def _engine(sa_url: sa.URL) -> Engine:
    if sa_url.get_backend_name() != "sqlite":
        connect_args: dict[str, Any] = {}
        if sa_url.get_driver_name() in ("psycopg", "psycopg2") and (
                "connect_timeout" not in sa_url.query):
            connect_args["connect_timeout"] = CONNECT_TIMEOUT_SECONDS
        return sa.create_engine(sa_url, pool_pre_ping=True, connect_args=connect_args)
    if sa_url.database and sa_url.database != ":memory:":
        Path(sa_url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(sa_url, connect_args={"check_same_thread": False, "timeout": 10})
    sa.event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _check_connection(engine: Engine) -> None:
    """Connect once, so that an unreachable database is one clear :class:`StoreError`."""
    try:
        with engine.connect():
            pass
    except sa.exc.DBAPIError as exc:
        raise StoreError(f"cannot connect to prediction store {_shown(engine.url)}: "
                         f"{_first_line(exc)}") from exc


# What a worker racing another one to CREATE TABLE gets: PostgreSQL's UniqueViolation on
# pg_type_typname_nsp_index (IntegrityError), "already exists" (ProgrammingError), SQLite's
# "table ... already exists" or "database is locked" (OperationalError).
RACE_ERRORS = (sa.exc.IntegrityError, sa.exc.ProgrammingError, sa.exc.OperationalError)


def _create_tables(engine: Engine) -> None:
    """Create the missing tables (and columns), also while other workers do the same."""
    _check_connection(engine)
    _set_aside_old_baseline(engine)
    _create_missing_tables(engine)
    _add_new_columns(engine)


def _create_missing_tables(engine: Engine) -> None:
    """``create_all`` (it checks which tables exist) until it succeeds; a failed attempt
    retries after a short, growing, jittered pause and gives up after ``CREATE_ATTEMPTS``."""
    for attempt in range(1, CREATE_ATTEMPTS + 1):
        try:
            metadata.create_all(engine, checkfirst=True)
            return
        except RACE_ERRORS as exc:
            if attempt == CREATE_ATTEMPTS:
                raise StoreError(
                    f"could not create the prediction-store tables in {_shown(engine.url)} "
                    f"after {attempt} attempts: {_first_line(exc)}") from exc
            log.info("tables being created by another worker (%s); retrying", _first_line(exc))
            _pause(attempt)


def _pause(attempt: int) -> None:
    """Before retry ``attempt + 1``: short, doubling, jittered (racing workers fall apart)."""
    time.sleep(CREATE_BACKOFF_SECONDS * 2 ** (attempt - 1) * random.uniform(0.5, 1.5))


def _columns(engine: Engine, table: str) -> set[str]:
    inspector = sa.inspect(engine)
    if not inspector.has_table(table):
        return set()
    return {c["name"] for c in inspector.get_columns(table)}


def _set_aside_old_baseline(engine: Engine) -> None:
    """A store written before forecasts had origins keyed baseline features without one:
    that table is kept as ``baseline_features_v1`` (renamed, not dropped) and a new one made."""
    columns = _columns(engine, "baseline_features")
    if not columns or "origin" in columns:
        return
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("ALTER TABLE baseline_features RENAME TO baseline_features_v1")
        log.warning("baseline_features had no origin column: kept as baseline_features_v1")
    except (sa.exc.OperationalError, sa.exc.ProgrammingError):
        log.info("baseline_features set aside by another worker")


# Columns added since a table was first created: (table, column, SQL type).
ADDED_COLUMNS = (("predictions", "origin", "DATE"), ("actuals", "exog", "TEXT"),
                 ("predictions", "yhat_final", "FLOAT"), ("predictions", "override_id", "INTEGER"),
                 ("predictions", "cold_start", "BOOLEAN"))


def _add_new_columns(engine: Engine) -> None:
    """A store written by an earlier version gets the columns added since (nullable)."""
    for table, column, kind in ADDED_COLUMNS:
        if column in _columns(engine, table):
            continue
        try:
            with engine.begin() as conn:
                conn.exec_driver_sql(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
        except (sa.exc.OperationalError, sa.exc.ProgrammingError):
            log.info("%s.%s added by another worker", table, column)


def _as_utc_naive(moment: datetime | None) -> datetime | None:
    if moment is None or moment.tzinfo is None:
        return moment
    return moment.astimezone(UTC).replace(tzinfo=None)


class PredictionStore:
    """Prediction log + actuals behind one SQLAlchemy engine (tables created on start)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = create_store_engine(url)
        try:
            _create_tables(self.engine)
        except BaseException:
            self.engine.dispose()
            raise

    def dispose(self) -> None:
        self.engine.dispose()

    def write_predictions(self, rows: Sequence[PredictionRow]) -> None:
        """Insert prediction-log rows in one transaction.

        Each row is a tuple in ``PREDICTION_COLUMNS`` order with ``created_at`` a naive
        UTC datetime and ``ds`` an ISO date string. On SQLite the rows go to the driver
        as they are (SQLAlchemy's own text formats, ~2x faster than dicts); other
        databases get typed values through SQLAlchemy (its executemany).
        """
        if not rows:
            return
        with self.engine.begin() as conn:
            for same_width in _by_width(rows):
                if not same_width:
                    continue
                if conn.dialect.name == "sqlite":
                    _sqlite_write(conn, same_width)
                else:
                    conn.execute(predictions_table.insert(), _typed_rows(same_width))

    def write_requests(self, requests: Sequence[RequestRow],
                       snapshots: Sequence[SnapshotRow] = ()) -> None:
        """Log cached answers compactly (:mod:`serving.compact_log`), in one transaction:
        the forecast snapshots they point at (added, or their ``last_used`` refreshed),
        then one row per request."""
        used = utc_now()
        cells = [dict(zip(SNAPSHOT_COLUMNS, (*row[:5], _date_or_none(row[5]),
                                             date.fromisoformat(row[6]), *row[7:]), strict=True))
                 | {"last_used": used} for row in snapshots]
        answers = [dict(zip(REQUEST_COLUMNS, row, strict=True)) for row in requests]
        with self.engine.begin() as conn:
            if cells:
                _refresh_snapshots(conn, cells)
            if answers:
                conn.execute(prediction_requests_table.insert(), answers)

    def save_baseline_features(
        self, model_name: str, model_version: str,
        rows: Iterable[tuple[str, str, str, str | None]],
    ) -> int:
        """Store no-scenario features: (series_id, ISO origin, ISO ds, JSON) per row.

        Written once per (model version, series, origin, ds): rows already there are kept
        (another worker wrote the same); returns how many rows were added.
        """
        new = [{"model_name": model_name, "model_version": model_version, "series_id": s,
                "origin": date.fromisoformat(o), "ds": date.fromisoformat(d), "features": f}
               for s, o, d, f in rows if f is not None]
        return self._insert_new(baseline_features_table, new, do_update=False)

    def save_forecasts(self, model_name: str, model_version: str,
                       rows: Iterable[HistoryRow]) -> int:
        """Add no-scenario forecast rows to ``forecast_history`` (replacing the rows of the
        same version, series, origin and ds: a recomputed origin wins)."""
        made_at = utc_now()
        new = [{"model_name": model_name, "model_version": model_version, "series_id": s,
                "origin": date.fromisoformat(o), "ds": date.fromisoformat(d), "yhat": y,
                "yhat_lower": lo, "yhat_upper": hi, "made_at": made_at}
               for s, o, d, y, lo, hi in rows]
        return self._insert_new(forecast_history_table, new, do_update=True)

    def _insert_new(self, table: sa.Table, rows: list[dict[str, Any]], do_update: bool) -> int:
        """Insert ``rows``; on the table's unique key update them (or keep the old ones)."""
        if not rows:
            return 0
        with self.engine.begin() as conn:
            statement = _on_conflict(conn.dialect.name, table, do_update)
            if statement is None:  # a database without ON CONFLICT: delete, then insert
                _delete_matching(conn, table, rows)
                statement = table.insert()
            if conn.dialect.insert_executemany_returning:  # psycopg 3 gives rowcount -1
                key = list(table.primary_key.columns)
                return len(conn.execute(statement.returning(*key), rows).all())
            written = conn.execute(statement, rows).rowcount
        return written if written is not None and written >= 0 else len(rows)

    def read_forecast_history(self) -> pd.DataFrame:
        """The no-scenario forecasts kept per origin (``HISTORY_COLUMNS``; dates as
        datetime64), oldest origin first."""
        table = forecast_history_table
        query = sa.select(*[table.c[name] for name in HISTORY_COLUMNS])
        order = (table.c.origin, table.c.series_id, table.c.ds)
        frame = self._read(query.order_by(*order), HISTORY_COLUMNS)
        frame["origin"] = pd.to_datetime(frame["origin"])
        return frame

    def upsert_actuals(self, actuals: Iterable[Actual]) -> int:
        """Insert or replace actuals by (series_id, ds); committed when this returns.

        Within one call the last value of a duplicated (series_id, ds) wins. Returns the
        number of distinct (series_id, ds) written.
        """
        received = utc_now()
        latest = {(a.series_id, a.ds): a for a in actuals}
        rows = [
            {"series_id": s, "ds": d, "y": a.y, "received_at": received,
             "exog": json.dumps(a.exog, sort_keys=True) if a.exog else None}
            for (s, d), a in latest.items()
        ]
        return self._insert_new(actuals_table, rows, do_update=True)

    def read_predictions(self, since: datetime | None = None) -> pd.DataFrame:
        """Logged predictions created at or after ``since`` (UTC), oldest first: one row per
        answered cell, whether it was logged per cell or as a compact answer (expanded).

        Columns: ``PREDICTION_COLUMNS``; ``features`` holds dicts (or None); ``ds`` and
        ``origin`` are datetime64, ``created_at`` datetime64 UTC.
        """
        per_cell, cached = self._read_per_cell(since), self._read_cached(since)
        both = not per_cell.empty and not cached.empty
        frame = pd.concat([per_cell, cached], ignore_index=True) if both else (
            per_cell if cached.empty else cached)
        frame["ds"] = pd.to_datetime(frame["ds"])
        frame["features"] = [_features(value) for value in frame["features"]]
        frame["created_at"] = pd.to_datetime(frame["created_at"], utc=True)
        frame["origin"] = pd.to_datetime(frame["origin"])
        if both:  # two tables: merge them by time (each keeps its own order)
            frame = frame.sort_values("created_at", kind="stable").reset_index(drop=True)
        return frame

    def _read_per_cell(self, since: datetime | None) -> pd.DataFrame:
        table, shared = predictions_table, baseline_features_table
        features = sa.func.coalesce(table.c.features, shared.c.features).label("features")
        columns = [features if name == "features" else table.c[name]
                   for name in PREDICTION_COLUMNS]
        on = sa.and_(*(table.c[k] == shared.c[k] for k in CELL_KEY))
        query = sa.select(*columns).select_from(table.outerjoin(shared, on))
        if since is not None:
            query = query.where(table.c.created_at >= _as_utc_naive(since))
        return self._rows(query.order_by(table.c.id), PREDICTION_COLUMNS)

    def _read_cached(self, since: datetime | None) -> pd.DataFrame:
        """The compactly logged answers since ``since``, expanded to per-cell rows."""
        table = prediction_requests_table
        names = ["request_id", "created_at", "model_name", "model_version", "runs"]
        query = sa.select(*[table.c[name] for name in names])
        if since is not None:
            query = query.where(table.c.created_at >= _as_utc_naive(since))
        with self.engine.connect() as conn:
            requests = pd.DataFrame.from_records(
                conn.execute(query.order_by(table.c.id)).all(), columns=names)
            if requests.empty:
                return pd.DataFrame(columns=PREDICTION_COLUMNS)
            runs = runs_frame(requests)
            cells = _snapshot_cells(conn, list(runs["snapshot_id"].unique()))
        frame, missing = expand(requests, runs, cells, PREDICTION_COLUMNS[:PLAIN_WIDTH])
        frame = frame.assign(yhat_final=float("nan"), override_id=float("nan"))  # no override
        if missing:
            log.warning("%d logged rows point at forecast snapshots no longer stored "
                        "(purged?): left out", missing)
        return frame

    def write_cold_start(self, rows: Sequence[PredictionRow]) -> None:
        """Log the rows of cold-start forecasts (:mod:`serving.cold_start`) per cell, with
        ``cold_start`` set (rare: plain typed inserts, whatever the row width elsewhere)."""
        names = PREDICTION_COLUMNS[:11]
        typed = [dict(zip(names, (*row[:5], date.fromisoformat(row[5]), *row[6:10],
                                  _date_or_none(row[10])), strict=True)) | {"cold_start": True}
                 for row in rows]
        if typed:
            with self.engine.begin() as conn:
                conn.execute(predictions_table.insert(), typed)

    def read_cold_start(self, since: datetime | None = None) -> pd.DataFrame:
        """(request_id, series_id, ds) of the cold-start rows logged since ``since``."""
        table = predictions_table
        names = ["request_id", "series_id", "ds"]
        query = sa.select(*[table.c[n] for n in names]).where(table.c.cold_start.is_(True))
        if since is not None:
            query = query.where(table.c.created_at >= _as_utc_naive(since))
        return self._read(query, names)

    def read_actuals(self, since: datetime | None = None,
                     series_ids: Sequence[str] | None = None,
                     after: date | None = None, exog: bool = False) -> pd.DataFrame:
        """Actuals received at or after ``since`` (UTC), of ``series_ids`` (all when None),
        for periods after ``after``: series_id, ds, y, received_at (and with ``exog`` one
        column per posted exogenous value, NaN where a row has none)."""
        table = actuals_table
        names = [*ACTUAL_COLUMNS, "exog"] if exog else ACTUAL_COLUMNS
        query = sa.select(*[table.c[name] for name in names])
        if since is not None:
            query = query.where(table.c.received_at >= _as_utc_naive(since))
        if series_ids is not None:
            query = query.where(table.c.series_id.in_(list(series_ids)))
        if after is not None:
            query = query.where(table.c.ds > after)
        frame = _plausible(self._read(query.order_by(table.c.series_id, table.c.ds), names))
        frame["received_at"] = pd.to_datetime(frame["received_at"], utc=True)
        return _expand_exog(frame) if exog else frame

    def read_features(self, since: datetime | None = None) -> pd.DataFrame:
        """Logged model inputs, one column per feature (the *current* data for drift):
        :func:`features_of` the predictions created since ``since``."""
        return features_of(self.read_predictions(since))

    def joined(self, since: datetime | None = None, latest_only: bool = True) -> pd.DataFrame:
        """Predictions (created since ``since``) next to the actual of their (series_id, ds):
        :func:`join_actuals`."""
        return join_actuals(self.read_predictions(since), self.read_actuals(), latest_only)

    def purge_predictions(self, older_than: datetime, max_seconds: float | None = None,
                          batch_rows: int = PURGE_BATCH_ROWS) -> Purged:
        """Delete the prediction log created before ``older_than`` (UTC): per-cell rows,
        compact answers, then the forecast snapshots no kept answer can point at (unused
        for ``SNAPSHOT_TOUCH`` longer). Transactions of ``batch_rows`` rows, so other
        writers wait for one at most; with ``max_seconds`` it stops after the batch that
        passes it (``finished`` False: call again). Nothing else is deleted."""
        cutoff = older_than if older_than.tzinfo is None else (
            older_than.astimezone(UTC).replace(tzinfo=None))
        deadline = time.monotonic() + max_seconds if max_seconds is not None else float("inf")
        plan = ((predictions_table.c.created_at, cutoff),
                (prediction_requests_table.c.created_at, cutoff),
                (forecast_snapshots_table.c.last_used, cutoff - SNAPSHOT_TOUCH))
        removed: list[int] = []
        for column, before in plan:
            count, finished = self._delete_before(column, before, batch_rows, deadline)
            removed.append(count)
            if not finished:
                break
        return Purged(*removed, *[0] * (3 - len(removed)), finished=finished)

    def _delete_before(self, column: sa.Column, before: datetime, batch_rows: int,
                       deadline: float) -> tuple[int, bool]:
        """Delete the rows whose ``column`` is before ``before``, ``batch_rows`` per
        transaction: (rows deleted, whether none is left)."""
        table = column.table
        ids = sa.select(table.c.id).where(column < before).limit(batch_rows)
        statement = table.delete().where(table.c.id.in_(ids.scalar_subquery()))
        total = 0
        while True:
            with self.engine.begin() as conn:
                deleted = conn.execute(statement).rowcount
            total += deleted
            if deleted < batch_rows:
                return total, True
            if time.monotonic() >= deadline:
                return total, False

    def _read(self, query: sa.Select[Any], columns: list[str]) -> pd.DataFrame:
        frame = self._rows(query, columns)
        frame["ds"] = pd.to_datetime(frame["ds"])
        return frame

    def _rows(self, query: sa.Select[Any], columns: list[str]) -> pd.DataFrame:
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return pd.DataFrame.from_records(rows, columns=columns)


@dataclass(frozen=True)
class Purged:
    """What one :meth:`PredictionStore.purge_predictions` removed."""

    predictions: int = 0  # per-cell rows
    requests: int = 0  # compactly logged answers
    snapshots: int = 0  # forecast-snapshot cells
    finished: bool = True  # False: its time ran out with rows left

    @property
    def total(self) -> int:
        return self.predictions + self.requests + self.snapshots


def features_of(predictions: pd.DataFrame) -> pd.DataFrame:
    """The rows of :meth:`PredictionStore.read_predictions` that carry features, one column
    per feature: request_id, created_at, model_version, series_id, ds, then the names."""
    predictions = predictions[predictions["features"].notna()].reset_index(drop=True)
    ids = predictions[["request_id", "created_at", "model_version", "series_id", "ds"]]
    values = pd.DataFrame.from_records(predictions["features"].tolist(), index=ids.index)
    return pd.concat([ids, values], axis=1)


def join_actuals(predictions: pd.DataFrame, actuals: pd.DataFrame,
                 latest_only: bool = True) -> pd.DataFrame:
    """Predictions next to the actual of their (series_id, ds): only those whose actual
    has arrived. With ``latest_only`` the most recent prediction per (model_version,
    series_id, ds) stands for its forecast (a series asked for many times is scored once
    per model version)."""
    frame = predictions.merge(actuals, on=["series_id", "ds"], how="inner")
    if latest_only and not frame.empty:
        frame = frame.sort_values("created_at", kind="stable")
        keys = ["model_version", "series_id", "ds"]
        frame = frame.drop_duplicates(keys, keep="last").sort_values(["series_id", "ds"])
    return frame.reset_index(drop=True)


def _features(value: Any) -> dict[str, Any] | None:
    """Logged features as a dict (stored as JSON text), or None."""
    if isinstance(value, dict):
        return value
    return json.loads(value) if isinstance(value, str) and value else None


def _snapshot_cells(conn: sa.Connection, snapshot_ids: list[str]) -> pd.DataFrame:
    """The stored cells of these forecast snapshots, with their baseline features."""
    snapshots, shared = forecast_snapshots_table, baseline_features_table
    names = ["model_name", "model_version", "snapshot_id", "step", "series_id", "ds", "yhat",
             "yhat_lower", "yhat_upper", "origin"]
    on = sa.and_(*(snapshots.c[k] == shared.c[k] for k in CELL_KEY))
    query = sa.select(*[snapshots.c[name] for name in names], shared.c.features).select_from(
        snapshots.outerjoin(shared, on))
    rows = []
    for start in range(0, len(snapshot_ids), SNAPSHOT_CHUNK):
        chunk = snapshot_ids[start:start + SNAPSHOT_CHUNK]
        rows += conn.execute(query.where(snapshots.c.snapshot_id.in_(chunk))).all()
    cells = pd.DataFrame.from_records(rows, columns=[*names, "features"])
    cells["features"] = [_features(text) for text in cells["features"]]  # once per cell
    return cells


def _expand_exog(frame: pd.DataFrame) -> pd.DataFrame:
    """The ``exog`` JSON column as one float column per name (NaN where not posted)."""
    values = [json.loads(text) if isinstance(text, str) and text else {}
              for text in frame.pop("exog")]
    for name in sorted({key for given in values for key in given}):
        frame[name] = [float(given.get(name, "nan")) for given in values]
    return frame


def _refresh_snapshots(conn: sa.Connection, cells: list[dict[str, Any]]) -> None:
    """Insert snapshot cells; a cell already there gets the new ``last_used``."""
    table = forecast_snapshots_table
    statement = _on_conflict(conn.dialect.name, table, do_update=True)
    if statement is None:  # a database without ON CONFLICT: delete, then insert
        _delete_matching(conn, table, cells)
        statement = table.insert()
    conn.execute(statement, cells)


def _unique_key(table: sa.Table) -> list[str]:
    constraint = next(c for c in table.constraints if isinstance(c, sa.UniqueConstraint))
    return [column.name for column in constraint.columns]


def _on_conflict(dialect: str, table: sa.Table, do_update: bool = True) -> Any:
    """INSERT .. ON CONFLICT (the table's unique key) DO UPDATE (or DO NOTHING) for SQLite
    and PostgreSQL, else None."""
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    elif dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        return None
    statement = insert(table)
    key = _unique_key(table)
    if not do_update:
        return statement.on_conflict_do_nothing(index_elements=key)
    values = [c.name for c in table.columns if c.name not in (*key, "id")]
    return statement.on_conflict_do_update(
        index_elements=key, set_={name: statement.excluded[name] for name in values})


def _delete_matching(conn: sa.Connection, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    """Delete the rows of ``table`` that share a unique key with ``rows``."""
    key = _unique_key(table)
    statement = table.delete().where(
        *(table.c[name] == sa.bindparam(f"key_{name}") for name in key))
    conn.execute(statement, [{f"key_{name}": r[name] for name in key} for r in rows])


def _plausible(actuals: pd.DataFrame) -> pd.DataFrame:
    """Actuals without the rows the API refuses today (infinite, NaN or |y| > 1e15),
    which a store may hold from before that check or from a hand-written insert: one
    such row must not stop every report. Dropped rows are logged."""
    y = pd.to_numeric(actuals["y"], errors="coerce")
    bad = ~(y.abs() <= MAX_ABS_VALUE)
    if bad.any():
        where = actuals.loc[bad, ["series_id", "ds"]].head(3).to_dict("records")
        log.warning("ignoring %d stored actual(s) with an implausible y (infinite, missing "
                    "or |y| > %.0e), e.g. %s", int(bad.sum()), MAX_ABS_VALUE, where)
        return actuals.loc[~bad].reset_index(drop=True)
    return actuals
