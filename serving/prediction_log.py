"""Writing the prediction log off the request's critical path.

A request hands a :class:`LogEntry` to :meth:`PredictionLog.submit` (a non-blocking queue
put) and answers at once; a background thread expands entries into rows and inserts
them in batches of ``batch_size`` rows, at least every ``flush_seconds``. ``flush()``
waits for everything submitted so far; ``close()`` flushes and stops (app shutdown).
When more than ``max_pending`` rows wait (the database is down or slower than the
traffic) new entries are dropped and counted rather than slowing forecasts down.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from serving.store import PredictionRow, PredictionStore

log = logging.getLogger(__name__)

# series_id, ds (ISO date), yhat, yhat_lower, yhat_upper, features (JSON text or None),
# origin (ISO date the forecast was made from, or None)
LogRow = tuple[str, str, float | None, float | None, float | None, str | None, str | None]


@dataclass(frozen=True)
class LogEntry:
    """One answered request. ``rows`` may be lazy: the writer thread expands it."""

    request_id: str
    created_at: datetime  # naive UTC
    model_name: str
    model_version: str
    rows: Iterable[LogRow]
    n_rows: int = 1  # for the backlog limit; exact counts are not needed


class _Stop:
    """Sentinel: write what is buffered, then end the thread."""


class PredictionLog:
    """Queue + background writer thread in front of :class:`PredictionStore`."""

    def __init__(
        self,
        store: PredictionStore,
        batch_size: int = 2000,
        flush_seconds: float = 1.0,
        max_pending: int = 200_000,
        on_written: Callable[[int], None] | None = None,
    ) -> None:
        self.store = store
        self.batch_size = batch_size
        self.flush_seconds = flush_seconds
        self.max_pending = max_pending
        self.on_written = on_written
        self.written = 0
        self.dropped = 0
        self.failed = 0
        self._pending = 0
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def submit(self, entry: LogEntry) -> bool:
        """Queue ``entry`` for writing; False (and counted) when the backlog is full."""
        with self._lock:
            if self._pending + entry.n_rows > self.max_pending:
                self.dropped += entry.n_rows
                return False
            self._pending += entry.n_rows
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

    def _run(self) -> None:
        buffer: list[PredictionRow] = []
        deadline = float("inf")
        while True:
            wait = None if not buffer else max(0.0, deadline - time.monotonic())
            try:
                item = self._queue.get(timeout=wait)
            except queue.Empty:
                item = None
            if isinstance(item, LogEntry):
                deadline = deadline if buffer else time.monotonic() + self.flush_seconds
                buffer.extend(self._expand(item))
                if len(buffer) < self.batch_size:
                    continue
            self._write(buffer)
            buffer, deadline = [], float("inf")
            if isinstance(item, threading.Event):
                item.set()
            elif isinstance(item, _Stop):
                return

    def _expand(self, entry: LogEntry) -> list[PredictionRow]:
        with self._lock:
            self._pending -= entry.n_rows
        head = (entry.request_id, entry.created_at, entry.model_name, entry.model_version)
        try:
            return [(*head, *row) for row in entry.rows]
        except Exception:  # a broken entry is logged and skipped, the writer lives on
            self.failed += entry.n_rows
            log.exception("could not expand prediction-log entry %s", entry.request_id)
            return []

    def _write(self, rows: list[PredictionRow]) -> None:
        if not rows:
            return
        try:
            self.store.write_predictions(rows)
        except Exception:  # the log must never take the API down
            self.failed += len(rows)
            log.exception("could not write %d prediction-log rows", len(rows))
            return
        self.written += len(rows)
        if self.on_written is not None:
            self.on_written(len(rows))
