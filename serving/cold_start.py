"""New series (cold start): a forecast for a series the model has not seen, from its siblings.

Why it exists: a new store or a new category in a store has no history, so the model has
no forecast for it; answering 404 leaves the planner with nothing. When at least one of
its key values is known, its **siblings** are the known series sharing the most key
values with it (for ``{store: S09, category: grocery}`` with S09 new: every store's
grocery; for a known store with a new category: that store's series; ties count alike).
Its forecast per period is the siblings' mean forecast times ``COLD_START_FACTOR``:

* ``yhat = factor x mean_i(yhat_i)``: 1.0, because the request carries nothing else about
  the new series (no size, no opening date); a known ratio would be a request field.
* the interval half-width is ``factor x sqrt(mean_i(w_i^2) + var_i(yhat_i))``: a typical
  sibling's own uncertainty plus the spread between siblings (which one it resembles is
  unknown), so it is wider than any sibling's when they differ. The lower bound is
  clipped at 0 when every sibling's is >= 0.
* dates and origin are those of the siblings with the newest origin; each date averages
  the siblings that forecast it.

The answer flags the series ``"cold_start": true`` in ``origins`` with the siblings
named in ``detail``; its rows are logged per cell with ``cold_start`` set
(:meth:`serving.store.PredictionStore.write_cold_start`) so the monitor tracks their
accuracy apart. A series with no known key value, or an id that does not split into the
model's keys, stays unknown (404 / a per-series error). Limits: no scenario on a
cold-start series (the model cannot score it), and its own actuals do not move its
forecast: only a retrain that includes it learns it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from features.origin import SeriesOrigin
from serving.champion import Champion
from serving.compact_log import CachedAnswer, LogRow
from serving.encoding import forecast_point_json, mlflow_record_json
from serving.errors import ApiError
from serving.forecast_table import SeriesForecast, TablePoint
from serving.forecasting import ForecastPlan
from serving.key_index import KeyIndex, key_index
from serving.schemas import ForecastRequest
from serving.store import PredictionRow

COLD_START_FACTOR = 1.0


@dataclass(frozen=True)
class ColdStart:
    """A new series and the known series its forecast is made from."""

    series_id: str
    siblings: tuple[str, ...]
    shared_keys: int  # how many key values each sibling shares with it
    factor: float = COLD_START_FACTOR

    @property
    def detail(self) -> str:
        shown = ", ".join(self.siblings[:5]) + (" ..." if len(self.siblings) > 5 else "")
        return (f"new series: mean forecast of {len(self.siblings)} sibling series sharing "
                f"{self.shared_keys} key value(s) ({shown}) x {self.factor:g}")


def find_siblings(series_id: str, index: KeyIndex) -> ColdStart | None:
    """The cold start of an unknown ``series_id``; None when it shares no key value with
    any known series (or does not split into the model's keys)."""
    values = index.split(series_id)
    if values is None or series_id in index.values_of:
        return None
    shared = {s: sum(a == b for a, b in zip(values, known, strict=True))
              for s, known in index.values_of.items()}
    best = max(shared.values(), default=0)
    if best == 0:
        return None
    siblings = tuple(sorted(s for s, n in shared.items() if n == best))
    return ColdStart(series_id, siblings, best)


def cold_entry(cold: ColdStart, entries: Mapping[str, SeriesForecast]) -> SeriesForecast:
    """The new series' forecast from its siblings' ``entries`` (see the module docstring)."""
    siblings = [entries[s] for s in cold.siblings if s in entries]
    if not siblings:
        raise KeyError(f"no forecast of the siblings of {cold.series_id!r}")
    newest = max(siblings, key=lambda e: e.origin.origin)
    points = tuple(_point(cold, ds, siblings, newest.origin_iso) for ds in newest.dates)
    origin = SeriesOrigin(cold.series_id, newest.origin.trained, newest.origin.origin,
                          None, "current", cold.detail)
    return SeriesForecast(origin, points)


def _point(cold: ColdStart, ds: str, siblings: list[SeriesForecast], origin: str) -> TablePoint:
    rows = [e.points[e.step_of_iso[ds]] for e in siblings if ds in e.step_of_iso]
    yhat = np.array([p.yhat for p in rows])
    widths = np.array([max(p.yhat_upper - p.yhat, 0.0) for p in rows])
    mean = cold.factor * float(yhat.mean())
    width = cold.factor * float(np.sqrt(np.mean(widths**2) + np.var(yhat)))
    lower = mean - width
    if all(p.yhat_lower >= 0 for p in rows):
        lower = max(lower, 0.0)
    values = (mean, lower, mean + width)
    record = {"series_id": cold.series_id, "ds": ds, "yhat": values[0],
              "yhat_lower": values[1], "yhat_upper": values[2], "origin": origin}
    return TablePoint(ds, *values, forecast_point_json(cold.series_id, ds, origin, *values),
                      mlflow_record_json(record), None,
                      (cold.series_id, ds, *values, None, origin))


def asked_ids(request: ForecastRequest, champion: Champion) -> list[str]:
    """The series ids a request names, known or not (key refs that do not fit the
    model's keys are left to the planner's 422)."""
    if request.rows is not None:
        return list(dict.fromkeys(row.series_id for row in request.rows))
    ids = []
    for ref in request.series or []:
        try:
            ids.append(ref.series_id or champion.series_id_for(ref.keys or {}))
        except KeyError:
            continue
    return list(dict.fromkeys(ids))


def cold_starts(request: ForecastRequest, champion: Champion) -> dict[str, ColdStart]:
    """The unknown series of ``request`` that can cold-start (422 with a scenario)."""
    index = key_index(champion)
    found = {}
    for series_id in asked_ids(request, champion):
        if series_id not in champion.series_ids:
            cold = find_siblings(series_id, index)
            if cold is not None:
                found[series_id] = cold
    if found and request.scenario:
        raise ApiError(422, "cold_start_scenario", "a scenario cannot apply to new series "
                       f"{sorted(found)}: their forecast comes from their siblings, not the "
                       "model", "scenario")
    return found


def siblings_of(colds: Mapping[str, ColdStart]) -> list[str]:
    return sorted({s for cold in colds.values() for s in cold.siblings})


def with_cold_entries(entries: dict[str, SeriesForecast], colds: Mapping[str, ColdStart]
                      ) -> dict[str, SeriesForecast]:
    """``entries`` plus the cold-start entry of each new series."""
    return entries | {s: cold_entry(cold, entries) for s, cold in colds.items()}


def cold_log_rows(head: tuple[str, datetime, str, str], plan: ForecastPlan,
                  colds: Mapping[str, ColdStart]) -> list[PredictionRow]:
    """The prediction-log rows of the answered cold-start cells (``head``: request_id,
    created_at, model name, model version)."""
    return [(*head, *plan.entries[s].points[step].log_row)
            for s, step in plan.cells if s in colds]


def without_cold(rows: Iterable[LogRow], colds: Mapping[str, ColdStart]) -> Iterable[LogRow]:
    """An answer's log rows without those of cold-start series (they are logged apart)."""
    if not colds:
        return rows
    if isinstance(rows, CachedAnswer):
        runs = tuple(r for r in rows.runs if r[0].points[0].log_row[0] not in colds)
        return CachedAnswer(runs, sum(steps for _, _, steps in runs))
    return [row for row in rows if row[0] not in colds]
