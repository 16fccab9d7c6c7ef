"""The forecast origin: what it is, what moves it, and how every process agrees on it.

This module owns the rule; the forecasters (``training``), the served model
(``training.pyfunc``) and the API (``serving.living``) ask it instead of keeping their own
copy.

* **What an origin is.** A forecast is made *from an origin*: the newest complete period of
  its series. It covers the ``horizon`` periods after the origin (steps 1..H). A trained
  model starts every series at its **training origin**, the last period of the data it
  was fitted on.
* **What moves it.** Realised sales (actuals) of the periods right after the origin, in
  order. The origin of a series is the last period ``p`` such that every period from the
  training origin to ``p`` has an actual *and* ``p`` is over (its last day is before
  ``today``). An actual of a period that is not over yet is *incomplete*: the origin stays
  before it and says so. A missing period (a gap) holds the origin at the period before it;
  later actuals wait for it. Nothing else moves an origin: the fitted parameters stay
  (no refit); only the model's state (history for lags, filter state) follows the actuals.
* **Corrections.** The state is a function of the actuals, not of the order they arrived in:
  a corrected actual (an upsert) recomputes its series, and the same actuals always give the
  same forecast.
* **What is refused.** Actuals at or before a series' training origin (the model's history
  is fixed when it is trained), actuals of series the model does not know, and dates that
  are not the first day of a period (a Wednesday for a weekly model).
* **Stale.** A series whose origin is more than ``horizon`` periods behind the newest origin
  of any series (the data's clock) is *stale*: its forecast no longer reaches the periods
  the other series are being forecast for. It is still answered, flagged.
* **How processes agree.** A series' state is derived from (the trained model, the actuals
  in the prediction store after its training origin) — never from one process's memory —
  so several API workers and a restarted process give the same forecast for the same
  series and origin.

Periods follow :mod:`features.calendar`: days, Monday weeks, calendar months; a period's
``ds`` is its first day.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import Literal

import numpy as np
import pandas as pd

from features.calendar import first_days, period_numbers

OriginStatus = Literal["current", "incomplete", "gap", "stale"]


def period_number(ds: date, freq: str) -> int:
    """The period number (see :mod:`features.calendar`) of the period holding ``ds``."""
    return int(period_numbers(np.array([np.datetime64(ds, "D")]), freq)[0])


def period_start(number: int, freq: str) -> date:
    """The first day of period ``number``."""
    return _dates(first_days(np.array([number]), freq))[0]


def _dates(days: np.ndarray) -> list[date]:
    """Day numbers (days since 1970-01-01) as dates."""
    return np.asarray(days, dtype=np.int64).astype("datetime64[D]").tolist()


def is_period_start(ds: date, freq: str) -> bool:
    """True when ``ds`` is the first day of its period (a Monday for ``W``)."""
    return period_start(period_number(ds, freq), freq) == ds


def periods_between(origin: date, ds: date, freq: str) -> int:
    """How many periods ``ds`` lies after ``origin`` (negative before, 0 for the same)."""
    return period_number(ds, freq) - period_number(origin, freq)


def shift(ds: date, steps: int, freq: str) -> date:
    """The period start ``steps`` periods after the period of ``ds``."""
    return period_start(period_number(ds, freq) + steps, freq)


def forecast_dates(origin: date, freq: str, horizon: int) -> list[date]:
    """The ``horizon`` periods a forecast made at ``origin`` covers (steps 1..H)."""
    first = period_number(origin, freq)
    return _dates(first_days(np.arange(first + 1, first + horizon + 1), freq))


def is_over(ds: date, freq: str, today: date) -> bool:
    """True when the period starting at ``ds`` has ended before ``today``."""
    return shift(ds, 1, freq) <= today


@dataclass(frozen=True)
class SeriesOrigin:
    """Where one series' forecast starts, and why there (``detail`` is for people)."""

    series_id: str
    trained: date  # the training origin
    origin: date  # the newest complete period: forecasts cover the periods after it
    newest_actual: date | None  # the newest period with an actual (may be past the origin)
    status: OriginStatus
    detail: str = ""


def advance(series_id: str, trained: date, actual_dates: Iterable[date], freq: str,
            today: date) -> SeriesOrigin:
    """The origin a series reaches from its training origin with actuals at ``actual_dates``
    (dates after ``trained``; any order): the last consecutive, complete period."""
    start = period_number(trained, freq)
    numbers = sorted({period_number(d, freq) for d in actual_dates} - {start})
    newest = period_start(numbers[-1], freq) if numbers else None
    reached = start
    for number in numbers:
        if number != reached + 1:
            break
        if not is_over(period_start(number, freq), freq, today):
            return _held(series_id, trained, reached, newest, freq, "incomplete",
                         f"{period_start(number, freq)} is not over yet")
        reached = number
    if newest is not None and period_number(newest, freq) > reached:
        missing = period_start(reached + 1, freq)
        return _held(series_id, trained, reached, newest, freq, "gap",
                     f"waiting for the actual of {missing} (later periods are posted)")
    return SeriesOrigin(series_id, trained, period_start(reached, freq), newest, "current")


def _held(series_id: str, trained: date, reached: int, newest: date | None, freq: str,
          status: OriginStatus, why: str) -> SeriesOrigin:
    origin = period_start(reached, freq)
    detail = f"origin held at {origin}: {why}"
    return SeriesOrigin(series_id, trained, origin, newest, status, detail)


def data_clock(origins: Iterable[SeriesOrigin]) -> date | None:
    """The newest origin of any series: how far the data have come."""
    return max((o.origin for o in origins), default=None)


def flag_stale(origin: SeriesOrigin, clock: date | None, freq: str,
               horizon: int) -> SeriesOrigin:
    """``origin`` marked stale when it is more than ``horizon`` periods behind ``clock``."""
    if clock is None:
        return origin
    behind = periods_between(origin.origin, clock, freq)
    if behind <= horizon:
        return origin
    detail = (f"no complete actual since {origin.origin}, {behind} periods behind the newest "
              f"origin ({clock}); the forecast may not cover the periods asked for")
    return SeriesOrigin(origin.series_id, origin.trained, origin.origin, origin.newest_actual,
                        "stale", detail)


def consecutive_actuals(actuals: pd.DataFrame, origins: dict[str, date],
                        trained: dict[str, date]) -> pd.DataFrame:
    """The actuals a series' state is built from: those after its training origin up to
    and including its origin (``actuals``: series_id, ds, y; sorted by series, ds)."""
    if actuals.empty:
        return actuals
    ds = pd.to_datetime(actuals["ds"])
    first = pd.to_datetime(actuals["series_id"].map(trained))
    last = pd.to_datetime(actuals["series_id"].map(origins))
    keep = (ds > first) & (ds <= last)
    return actuals.loc[keep].sort_values(["series_id", "ds"]).reset_index(drop=True)
