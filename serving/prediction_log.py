"""Writing the prediction log off the request's critical path, and keeping it bounded.

A request hands a :class:`LogEntry` to :meth:`PredictionLog.submit` (a non-blocking queue
put) and answers at once; a background thread writes entries in batches of about
``batch_size`` stored rows, at least every ``flush_seconds``. ``flush()`` waits for
everything submitted so far; ``close()`` flushes and stops (app shutdown).

* **Compact.** A cached answer (:class:`serving.compact_log.CachedAnswer`) is stored as
  one row per request pointing at forecast snapshots, each stored once (the writer
  remembers which it wrote); what-if rows are stored per cell. ``compact=False`` stores
  every answered cell as its own row, as before (~10x larger; kept for comparison).
* **Bounded.** The backlog is counted in stored rows (a cached answer weighs one per run,
  i.e. per series; a per-cell entry its ``n_rows``). When more than ``max_pending`` wait
  (the database is down or slower than the traffic) new entries are dropped and counted
  rather than slowing forecasts down. ``written`` counts answered rows (cells).
* **Retention.** With ``retention`` the writer deletes log rows older than that
  (:meth:`serving.store.PredictionStore.purge_predictions`) every ``purge_seconds``, in
  small transactions and at most ``PURGE_BUDGET_SECONDS`` at a time (a large backlog is
  purged over several rounds, between writes): requests never wait for it.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from serving.compact_log import (
    SNAPSHOT_TOUCH,
    CachedAnswer,
    CachedForecast,
    LogRow,
    RequestRow,
    SnapshotKey,
    runs_json,
    snapshot_rows,
)
from serving.store import PredictionRow, PredictionStore, utc_now

__all__ = ["LogEntry", "LogRow", "PredictionLog"]

log = logging.getLogger(__name__)

PURGE_BUDGET_SECONDS = 0.5  # longest the writer spends deleting before writing again
PURGE_RETRY_SECONDS = 2.0  # next round when a purge ran out of time with rows left
MAX_REMEMBERED_SNAPSHOTS = 100_000  # beyond, forgotten (re-writing one is harmless)


@dataclass(frozen=True)
class LogEntry:
    """One answered request. ``rows`` may be lazy (the writer thread expands it) or a
    :class:`CachedAnswer` (stored compactly)."""

    request_id: str
    created_at: datetime  # naive UTC
    model_name: str
    model_version: str
    rows: Iterable[LogRow]
    n_rows: int = 1  # for the backlog limit of per-cell entries; exact counts not needed


class _Stop:
    """Sentinel: write what is buffered, then end the thread."""


@dataclass
class _Batch:
    """What the writer holds until the next write."""

    rows: list[PredictionRow] = field(default_factory=list)  # per cell
    requests: list[RequestRow] = field(default_factory=list)  # compact answers
    snapshots: dict[SnapshotKey, CachedForecast] = field(default_factory=dict)  # to store
    cells: int = 0  # answered rows of ``requests``
    size: int = 0  # stored rows

    @property
    def empty(self) -> bool:
        return not self.rows and not self.requests


class PredictionLog:
    """Queue + background writer thread in front of :class:`PredictionStore`."""

    def __init__(
        self,
        store: PredictionStore,
        batch_size: int = 2000,
        flush_seconds: float = 1.0,
        max_pending: int = 200_000,
        on_written: Callable[[int], None] | None = None,
        compact: bool = True,
        retention: timedelta | None = None,
        purge_seconds: float = 300.0,
        on_purged: Callable[[int], None] | None = None,
    ) -> None:
        self.store = store
        self.batch_size = batch_size
        self.flush_seconds = flush_seconds
        self.max_pending = max_pending
        self.on_written = on_written
        self.compact = compact
        self.retention = retention
        self.purge_seconds = purge_seconds
        self.on_purged = on_purged
        self.written = 0
        self.dropped = 0
        self.failed = 0
        self.purged = 0  # stored rows deleted by retention
        self.peak_pending = 0
        self._pending = 0
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._stored: dict[SnapshotKey, float] = {}  # snapshot -> when its write committed
        self._next_purge = 0.0  # monotonic: the first purge right after start

    def start(self) -> None:
        self._thread.start()

    @property
    def pending(self) -> int:
        """Stored rows waiting to be written."""
        return self._pending

    def submit(self, entry: LogEntry) -> bool:
        """Queue ``entry`` for writing; False (and counted) when the backlog is full."""
        weight = self._weight(entry)
        with self._lock:
            if self._pending + weight > self.max_pending:
                self.dropped += _cells(entry)
                return False
            self._pending += weight
            self.peak_pending = max(self.peak_pending, self._pending)
        self._queue.put(entry)
        return True

    def flush(self, timeout: float = 30.0) -> bool:
        """Block until every entry submitted before this call is written (or timeout)."""
        if not self._thread.is_alive():
            return self._queue.empty()
        done = threading.Event()
        self._queue.put(done)
        return done.wait(timeout)

    def close(self, timeout: float = 30.0) -> None:
        """Flush and stop the writer thread (called on application shutdown)."""
        if self._thread.is_alive():
            self._queue.put(_Stop())
            self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("prediction log still writing after %.0fs; giving up", timeout)

    def _weight(self, entry: LogEntry) -> int:
        if self.compact and isinstance(entry.rows, CachedAnswer):
            return len(entry.rows.runs)
        return entry.n_rows

    def _run(self) -> None:
        batch, deadline = _Batch(), float("inf")
        while True:
            item = self._next_item(batch, deadline)
            if isinstance(item, LogEntry):
                deadline = deadline if not batch.empty else time.monotonic() + self.flush_seconds
                self._add(batch, item)
                if batch.size < self.batch_size:
                    continue
            self._write(batch)
            batch, deadline = _Batch(), float("inf")
            self._purge_when_due()
            if isinstance(item, threading.Event):
                item.set()
            elif isinstance(item, _Stop):
                return

    def _next_item(self, batch: _Batch, deadline: float) -> Any:
        """The next queued item, or None when the flush deadline or a purge is due."""
        now = time.monotonic()
        wait = None if batch.empty else max(0.0, deadline - now)
        if self.retention is not None:
            until_purge = max(0.0, self._next_purge - now)
            wait = until_purge if wait is None else min(wait, until_purge)
        try:
            return self._queue.get(timeout=wait)
        except queue.Empty:
            return None

    def _add(self, batch: _Batch, entry: LogEntry) -> None:
        weight = self._weight(entry)
        with self._lock:
            self._pending -= weight
        if self.compact and isinstance(entry.rows, CachedAnswer):
            self._add_cached(batch, entry, entry.rows)
            batch.size += weight
        else:
            rows = self._expand(entry)
            batch.rows.extend(rows)
            batch.size += len(rows)

    def _add_cached(self, batch: _Batch, entry: LogEntry, answer: CachedAnswer) -> None:
        """One request row; the snapshots it points at when not stored lately."""
        name, version, now = entry.model_name, entry.model_version, time.monotonic()
        for forecast, _, _ in answer.runs:
            key = (name, version, forecast.snapshot_id)
            stored = self._stored.get(key)
            if stored is None or now - stored > SNAPSHOT_TOUCH.total_seconds() / 2:
                batch.snapshots[key] = forecast
        batch.requests.append((entry.request_id, entry.created_at, name, version,
                               answer.n_cells, runs_json(answer)))
        batch.cells += answer.n_cells

    def _expand(self, entry: LogEntry) -> list[PredictionRow]:
        head = (entry.request_id, entry.created_at, entry.model_name, entry.model_version)
        try:
            return [(*head, *row) for row in entry.rows]
        except Exception:  # a broken entry is logged and skipped, the writer lives on
            self.failed += entry.n_rows
            log.exception("could not expand prediction-log entry %s", entry.request_id)
            return []

    def _write(self, batch: _Batch) -> None:
        if batch.rows:
            self._write_cells(batch.rows)
        if batch.requests:
            self._write_requests(batch)

    def _write_cells(self, rows: list[PredictionRow]) -> None:
        try:
            self.store.write_predictions(rows)
        except Exception:  # the log must never take the API down
            self.failed += len(rows)
            log.exception("could not write %d prediction-log rows", len(rows))
            return
        self._count(len(rows))

    def _write_requests(self, batch: _Batch) -> None:
        snapshots = [row for key, forecast in batch.snapshots.items()
                     for row in snapshot_rows(key, forecast)]
        try:
            self.store.write_requests(batch.requests, snapshots)
        except Exception:  # the log must never take the API down
            self.failed += batch.cells
            log.exception("could not write %d logged answers (%d rows)", len(batch.requests),
                          batch.cells)
            return
        if len(self._stored) > MAX_REMEMBERED_SNAPSHOTS:
            self._stored.clear()
        now = time.monotonic()
        self._stored.update(dict.fromkeys(batch.snapshots, now))
        self._count(batch.cells)

    def _count(self, cells: int) -> None:
        self.written += cells
        if self.on_written is not None:
            self.on_written(cells)

    def _purge_when_due(self) -> None:
        """Delete the rows past retention, when due (errors are logged, never raised)."""
        if self.retention is None or time.monotonic() < self._next_purge:
            return
        cutoff = utc_now() - self.retention
        try:
            purged = self.store.purge_predictions(cutoff, max_seconds=PURGE_BUDGET_SECONDS)
        except Exception:  # the next round tries again
            log.exception("could not delete prediction-log rows older than %s", cutoff)
            self._next_purge = time.monotonic() + self.purge_seconds
            return
        self.purged += purged.total
        if purged.total and self.on_purged is not None:
            self.on_purged(purged.total)
        if purged.total:
            log.info("retention: deleted %d prediction-log rows older than %s (%s)",
                     purged.total, cutoff, purged)
        wait = self.purge_seconds if purged.finished else PURGE_RETRY_SECONDS
        self._next_purge = time.monotonic() + wait


def _cells(entry: LogEntry) -> int:
    """Answered rows of ``entry`` (what a drop loses)."""
    return entry.rows.n_cells if isinstance(entry.rows, CachedAnswer) else entry.n_rows
