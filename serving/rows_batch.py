"""The batch shape of /v1/forecast — explicit rows of known series — read and planned fast.

Why it exists: batch clients send ``{"rows": [{"series_id": ..., "ds": ...}, ...]}``,
about a thousand rows of known series at dates they may forecast. pydantic built a model
per row and the planner looked each row's date up again as a ``date``: 28 % of a served
worker's CPU on 960-row batches (py-spy: 19 % reading, 9 % planning), of which one worker
must answer over 100 a second (issue 13).

:func:`read_rows_batch` takes exactly that shape with the standard json module, into two
columns: the body is a JSON object with the one key ``rows``, a non-empty list of objects
with exactly ``series_id`` (a non-empty string) and ``ds`` (a date written YYYY-MM-DD);
pydantic accepts every such body as the same request. Any other body — another key, a
number where a string goes, a date written otherwise, a ``\\u`` escape (the json module
takes lone surrogates pydantic refuses) — is left to pydantic, so its errors are the
general path's. :func:`plan_rows_batch` plans the cells when every row is a known series
at one of its forecast dates within the served horizon; otherwise the request takes the
general path (unknown series, cold starts, dates outside the horizon, too many rows), whose
answers and errors are unchanged. A test holds both paths' answers equal.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import date
from operator import itemgetter

from serving.body import validate_json_body
from serving.champion import Champion
from serving.forecasting import ForecastPlan, Limits, longest_horizon
from serving.schemas import ForecastRequest

ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
SERIES_ID, DS = itemgetter("series_id"), itemgetter("ds")


@dataclass(frozen=True)
class RowsBatch:
    """A rows-only body as columns (``ds`` as written: ISO dates), and the body itself."""

    raw: bytes
    series_ids: list[str]
    ds: list[str]

    def validated(self) -> ForecastRequest:
        """The same body as the general path reads it (pydantic)."""
        return validate_json_body(ForecastRequest, self.raw)


def read_rows_batch(raw: bytes) -> RowsBatch | None:
    """``raw`` as a :class:`RowsBatch` when it has exactly the batch shape, else None."""
    if b"\\u" in raw:
        return None
    try:
        document = json.loads(raw.decode())
    except (ValueError, RecursionError):  # not JSON, not UTF-8, or nested too deep
        return None
    if type(document) is not dict or len(document) != 1:
        return None
    rows = document.get("rows")
    if type(rows) is not list or not rows:
        return None
    columns = _columns(rows)
    return None if columns is None else RowsBatch(raw, *columns)


def _columns(rows: list) -> tuple[list[str], list[str]] | None:
    """(series ids, ISO dates) of rows that are each exactly {series_id, ds}, else None."""
    if set(map(type, rows)) != {dict} or set(map(len, rows)) != {2}:
        return None
    try:
        series_ids, days = list(map(SERIES_ID, rows)), list(map(DS, rows))
    except KeyError:
        return None
    if set(map(type, series_ids)) != {str} or set(map(type, days)) != {str}:
        return None
    if not all(series_ids) or not all(map(_is_iso_date, set(days))):
        return None
    return series_ids, days


def _is_iso_date(text: str) -> bool:
    if not ISO_DATE.fullmatch(text):
        return False
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True


def plan_rows_batch(batch: RowsBatch, champion: Champion, limits: Limits
                    ) -> ForecastPlan | None:
    """The plan of ``batch`` when every row is a known series at a forecast date within
    the served horizon (the plan the general path makes of it), else None."""
    if len(batch.series_ids) > limits.max_rows:
        return None
    named = list(dict.fromkeys(batch.series_ids))
    if not all(map(champion.series_ids.__contains__, named)):
        return None
    state, entries = champion.take(named)
    if len(entries) != len(named):
        return None
    longest = longest_horizon(champion, limits)
    steps = [entries[s].step_of_iso.get(ds, longest)
             for s, ds in zip(batch.series_ids, batch.ds, strict=True)]
    if max(steps) >= longest:
        return None
    return ForecastPlan(list(zip(batch.series_ids, steps, strict=True)), entries, state)
