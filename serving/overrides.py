"""People's overrides of the forecast: stored with their author, kept in memory, applied.

Why it exists: a sales manager knows what the model cannot (a big customer's order, a
lost account, a supply shortage) and adjusts the forecast of some (series, period) cells.
An override is one decision - a series, one or more periods, a new ``value`` or a
``pct_change`` of the model's number, an author, a reason code and a note - stored in the
prediction store's ``overrides`` table (:mod:`serving.store`) and never deleted: revoking
records who and when, so the audit trail and the forecast value added
(:mod:`serving.monitoring.fva`) keep it.

Rules (the README repeats them):

* An override applies to (series, period), not to a model version: it survives champion
  swaps and applies to whatever number the serving model gives for that cell.
* Several active overrides of one cell: the **newest wins** (the highest id, i.e. the
  latest accepted); revoking it brings back the one before, else the model's number.
* ``value`` replaces the number and shifts the interval by the same amount (its width is
  kept); ``pct_change`` (+20 = 20 % more) scales the number and both bounds.

**Each worker keeps the active overrides in memory** (:class:`OverrideBook`: series ->
period -> override), so a request whose series have none does no extra work. A worker
reloads them at once after its own writes, and otherwise checks the store's
*signature* - (max id, revoked count): rows are only inserted and revoked, so any change
moves it - at most every ``refresh_seconds`` (one small query): an override accepted by
another worker is served everywhere within that time.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal

import pandas as pd
import sqlalchemy as sa

from serving.store import PredictionStore, overrides_table, utc_now

log = logging.getLogger(__name__)

Reason = Literal["promotion", "customer_order", "supply", "other"]
REASONS: tuple[str, ...] = ("promotion", "customer_order", "supply", "other")
OVERRIDE_COLUMNS = ["id", "series_id", "periods", "value", "pct_change", "author", "reason",
                    "note", "created_at", "revoked_at", "revoked_by"]


@dataclass(frozen=True)
class NewOverride:
    """An accepted request, checked, before the store gives it an id."""

    series_id: str
    periods: tuple[date, ...]  # sorted, distinct period starts
    value: float | None
    pct_change: float | None
    author: str
    reason: str
    note: str | None = None


@dataclass(frozen=True)
class Override:
    """One stored override (``periods`` as ISO dates, times naive UTC)."""

    id: int
    series_id: str
    periods: tuple[str, ...]
    value: float | None
    pct_change: float | None
    author: str
    reason: str
    note: str | None
    created_at: datetime
    revoked_at: datetime | None = None
    revoked_by: str | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def adjust(self, yhat: float | None, lower: float | None, upper: float | None
               ) -> tuple[float | None, float | None, float | None]:
        """The final (yhat, lower, upper) from the model's: see the module docstring."""
        if self.pct_change is not None:
            factor = 1.0 + self.pct_change / 100.0
            return tuple(None if v is None else v * factor  # type: ignore[return-value]
                         for v in (yhat, lower, upper))
        assert self.value is not None
        if yhat is None:  # no model number to shift the interval from
            return self.value, None, None
        delta = self.value - yhat
        return (self.value, None if lower is None else lower + delta,
                None if upper is None else upper + delta)


# --- the store ------------------------------------------------------------------------


def _override(row: Any) -> Override:
    values = dict(zip(OVERRIDE_COLUMNS, row, strict=True))
    values["periods"] = tuple(json.loads(values["periods"]))
    return Override(**values)


def _select() -> sa.Select[Any]:
    return sa.select(*[overrides_table.c[name] for name in OVERRIDE_COLUMNS])


def insert_override(store: PredictionStore, new: NewOverride) -> Override:
    """Store ``new``; committed when this returns."""
    row = {"series_id": new.series_id, "periods": json.dumps([d.isoformat() for d in new.periods]),
           "first_ds": new.periods[0], "last_ds": new.periods[-1], "value": new.value,
           "pct_change": new.pct_change, "author": new.author, "reason": new.reason,
           "note": new.note, "created_at": utc_now()}
    with store.engine.begin() as conn:
        override_id = conn.execute(overrides_table.insert().values(**row)).inserted_primary_key[0]
    found = get_override(store, int(override_id))
    assert found is not None
    return found


def get_override(store: PredictionStore, override_id: int) -> Override | None:
    with store.engine.connect() as conn:
        row = conn.execute(_select().where(overrides_table.c.id == override_id)).first()
    return _override(row) if row is not None else None


def list_overrides(store: PredictionStore, series_id: str | None = None,
                   active_only: bool = True, limit: int | None = None) -> list[Override]:
    """Overrides, newest first; of one series, active ones only, at most ``limit``."""
    table = overrides_table
    query = _select().order_by(table.c.id.desc())
    if series_id is not None:
        query = query.where(table.c.series_id == series_id)
    if active_only:
        query = query.where(table.c.revoked_at.is_(None))
    if limit is not None:
        query = query.limit(limit)
    with store.engine.connect() as conn:
        return [_override(row) for row in conn.execute(query).all()]


def revoke_override(store: PredictionStore, override_id: int, revoked_by: str) -> bool:
    """Mark an active override revoked (the row stays); False when it is unknown or
    already revoked (one UPDATE: two workers revoking at once cannot both succeed)."""
    table = overrides_table
    statement = table.update().where(table.c.id == override_id, table.c.revoked_at.is_(None))
    with store.engine.begin() as conn:
        changed = conn.execute(statement.values(revoked_at=utc_now(), revoked_by=revoked_by))
    return changed.rowcount == 1


def signature(store: PredictionStore) -> tuple[int, int]:
    """(max id, revoked count): changes whenever an override is added or revoked."""
    table = overrides_table
    query = sa.select(sa.func.max(table.c.id), sa.func.count(table.c.revoked_at))
    with store.engine.connect() as conn:
        top, revoked = conn.execute(query).one()
    return int(top or 0), int(revoked or 0)


def read_overrides(store: PredictionStore) -> pd.DataFrame:
    """Every override (revoked ones too: a revoked override was served before), one row
    each: ``OVERRIDE_COLUMNS`` with ``periods`` as lists. For the forecast value added."""
    rows = list_overrides(store, active_only=False)
    return pd.DataFrame([vars(o) | {"periods": list(o.periods)} for o in rows],
                        columns=OVERRIDE_COLUMNS)


# --- the in-memory book ---------------------------------------------------------------

Cells = dict[str, dict[str, Override]]  # series_id -> ISO ds -> the override that wins


def winning_cells(overrides: Iterable[Override]) -> Cells:
    """Each (series, period) of the active ``overrides`` -> the newest one (highest id)."""
    cells: Cells = {}
    for override in sorted((o for o in overrides if o.active), key=lambda o: o.id):
        by_ds = cells.setdefault(override.series_id, {})
        for ds in override.periods:
            by_ds[ds] = override
    return cells


class OverrideBook:
    """The active overrides of one worker, refreshed when the store's signature moves."""

    def __init__(self, store: PredictionStore, refresh_seconds: float = 1.0) -> None:
        self.store = store
        self.refresh_seconds = refresh_seconds
        self.cells: Cells = {}
        self._signature: tuple[int, int] | None = None
        self._next_check = 0.0
        self._lock = threading.Lock()

    @property
    def due(self) -> bool:
        """True when the store should be checked (call :meth:`refresh`, off the loop)."""
        return time.monotonic() >= self._next_check

    def refresh(self, force: bool = False) -> None:
        """Reload the active overrides if the store changed (``force``: after a write)."""
        if not self._lock.acquire(blocking=force):
            return  # another thread is checking right now
        try:
            if not force and not self.due:
                return
            self._next_check = time.monotonic() + self.refresh_seconds
            now = signature(self.store)
            if force or now != self._signature:
                self.cells = winning_cells(list_overrides(self.store, active_only=True))
                self._signature = now
                log.debug("overrides reloaded: %d series with active overrides", len(self.cells))
        except sa.exc.SQLAlchemyError:  # keep serving the overrides known so far
            log.exception("could not refresh the overrides; serving the ones loaded before")
        finally:
            self._lock.release()

    def of(self, series_ids: Iterable[str]) -> Cells:
        """The winning overrides of these series (empty for most requests)."""
        cells = self.cells
        return {s: cells[s] for s in series_ids if s in cells} if cells else {}
