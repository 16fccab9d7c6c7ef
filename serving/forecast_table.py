"""The champion's no-scenario forecast of every series, computed ahead and served from memory.

Without scenario values a forecast depends only on the model and the series' origin (its
newest complete period: :mod:`features.origin`), so each series' forecast of the
``horizon`` periods after its origin is computed once — when the champion loads, and again
for a series when its actuals move its origin (``serving.living``, off the request path).
Requests without a scenario are answered by looking rows up here, already JSON-encoded,
with no pandas and no model call on the request path.

Validity rule: an entry is the forecast of (model version, series, origin). An entry is
replaced whole (one dict assignment: atomic) when its series' origin or actuals change; a
request takes its series' entries once, at planning, so all its rows come from one origin.
Each entry carries a ``snapshot_id``, the digest of the rows it logs: the prediction log
stores an entry once under it and logs a cached answer as runs of steps of entries
(:mod:`serving.compact_log`), so a recomputed entry is a new snapshot and an answer
already given still reads back as it was.

An entry also keeps its item of an answer's ``origins`` list, encoded, for the few
(clock, frequency, horizon) it was last asked with (:func:`serving.forecasting.origins_json`):
whether a series is stale depends only on its origin and those, and working it out anew
for every series of every request was a third of a served worker's CPU on 960-row batches.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import NamedTuple

import pandas as pd

from features.origin import SeriesOrigin, data_clock, forecast_dates
from serving.compact_log import CachedAnswer, LogRow, snapshot_id
from serving.encoding import features_json, forecast_point_json, mlflow_record_json
from serving.store import HistoryRow

FREQ_NAMES = {"W": "weekly", "D": "daily", "M": "monthly"}


class TablePoint(NamedTuple):
    """One precomputed forecast row and its encodings."""

    ds: str  # ISO date
    yhat: float
    yhat_lower: float
    yhat_upper: float
    point_json: str  # as in /v1/forecast
    mlflow_json: str  # as in /invocations (MLflow scoring-server record)
    features_json: str | None  # what the model used (stored once per model version + origin)
    log_row: LogRow  # the prediction-log row, features left to the baseline table


# (series_id, step index 0..horizon-1): one cell of the forecast grid
Cell = tuple[str, int]


@dataclass(frozen=True)
class SeriesForecast:
    """One series' no-scenario forecast from its origin: the points of steps 1..H."""

    origin: SeriesOrigin
    points: tuple[TablePoint, ...]
    step_of_date: dict[date, int] = field(init=False)  # ds -> step index
    step_of_iso: dict[str, int] = field(init=False)  # ISO ds -> step index
    points_json: tuple[str, ...] = field(init=False)  # each step's /v1/forecast row
    snapshot_id: str = field(init=False)  # names the logged rows (serving.compact_log)
    # (series_id, clock, freq, horizon, cold start) -> the encoded ``origins`` item
    origin_items: dict[tuple, str] = field(init=False, default_factory=dict, compare=False,
                                           repr=False)

    def __post_init__(self) -> None:
        steps = {p.ds: i for i, p in enumerate(self.points)}
        object.__setattr__(self, "step_of_iso", steps)
        object.__setattr__(self, "points_json", tuple(p.point_json for p in self.points))
        object.__setattr__(self, "snapshot_id", snapshot_id(p.log_row for p in self.points))
        object.__setattr__(self, "step_of_date",
                           {date.fromisoformat(ds): i for ds, i in steps.items()})

    @property
    def origin_iso(self) -> str:
        return self.origin.origin.isoformat()

    @property
    def dates(self) -> tuple[str, ...]:
        return tuple(p.ds for p in self.points)


Snapshot = Mapping[str, SeriesForecast]


@dataclass
class ForecastTable:
    """Series id -> its forecast from its origin; entries are replaced whole."""

    series: dict[str, SeriesForecast]

    def take(self, series_ids: Iterable[str]) -> dict[str, SeriesForecast]:
        """The current entries of ``series_ids``: what one request answers from."""
        entries = self.series
        return {s: entries[s] for s in series_ids if s in entries}

    def replace(self, entries: Mapping[str, SeriesForecast]) -> None:
        """Swap the entries of these series in (each one atomically)."""
        for series_id, entry in entries.items():
            self.series[series_id] = entry

    def clock(self) -> date | None:
        """The newest origin of any series (features.origin.data_clock)."""
        return data_clock(e.origin for e in self.series.values())


def log_rows(snapshot: Snapshot, cells: Iterable[Cell]) -> CachedAnswer:
    """The prediction-log form of the answer of ``cells``: runs of consecutive steps of
    each series' entry (one run per series for a series x horizon request), which the
    log stores once per request; iterating it gives the per-cell rows.

    Their features are not repeated on every row: they are the baseline features the
    store keeps once per model version, series and origin (see :func:`baseline_features`).
    """
    cells = cells if isinstance(cells, list) else list(cells)
    runs: list[tuple[SeriesForecast, int, int]] = []
    series, first, start, expected = "", 0, 0, -1
    for i, (series_id, step) in enumerate(cells):  # on the request path: kept lean
        if step != expected or series_id != series:
            if i:
                runs.append((snapshot[series], first, i - start))
            series, first, start = series_id, step, i
        expected = step + 1
    if cells:
        runs.append((snapshot[series], first, len(cells) - start))
    return CachedAnswer(tuple(runs), len(cells))


def baseline_features(entries: Snapshot) -> Iterator[tuple[str, str, str, str | None]]:
    """(series_id, ISO origin, ISO ds, features JSON) of every cell, for the store."""
    for series_id, entry in entries.items():
        for p in entry.points:
            yield series_id, entry.origin_iso, p.ds, p.features_json


def history_rows(entries: Snapshot) -> Iterator[HistoryRow]:
    """The ``forecast_history`` rows of these entries."""
    for series_id, entry in entries.items():
        for p in entry.points:
            yield series_id, entry.origin_iso, p.ds, p.yhat, p.yhat_lower, p.yhat_upper


def grid(origins: Mapping[str, SeriesOrigin], freq: str, horizon: int) -> pd.DataFrame:
    """The (series_id, ds) rows of every series' horizon after its origin."""
    series, days = [], []
    for series_id, origin in origins.items():
        dates = forecast_dates(origin.origin, freq, horizon)
        series += [series_id] * len(dates)
        days += dates
    return pd.DataFrame({"series_id": series, "ds": pd.to_datetime(days)})


def build_entries(
    forecast: pd.DataFrame, features: pd.DataFrame | list[dict] | None,
    origins: Mapping[str, SeriesOrigin], freq: str, horizon: int,
) -> dict[str, SeriesForecast]:
    """Index the model's forecast of :func:`grid` by series and step.

    ``forecast`` has series_id, ds, yhat, yhat_lower, yhat_upper (and maybe more columns,
    kept in the MLflow record); ``features`` is row-aligned with it, or None.
    """
    iso = pd.to_datetime(forecast["ds"]).dt.strftime("%Y-%m-%d").tolist()
    records = forecast.drop(columns=["origin"], errors="ignore").to_dict(orient="records")
    feature_rows = feature_records(features, len(records))
    cells: dict[str, dict[str, TablePoint]] = {}
    for ds, record, used in zip(iso, records, feature_rows, strict=True):
        series_id = str(record["series_id"])
        origin = origins[series_id].origin.isoformat()
        cells.setdefault(series_id, {})[ds] = _table_point(series_id, ds, origin, record, used)
    entries = {}
    for series_id, origin in origins.items():
        wanted = [d.isoformat() for d in forecast_dates(origin.origin, freq, horizon)]
        got = cells.get(series_id, {})
        missing = [d for d in wanted if d not in got]
        if missing or len(got) != len(wanted):
            raise ValueError(f"the model forecast {series_id!r} at {sorted(got)}, not the "
                             f"periods {wanted} after its origin {origin.origin}")
        entries[series_id] = SeriesForecast(origin, tuple(got[d] for d in wanted))
    return entries


def _table_point(series_id: str, ds: str, origin: str, record: dict, used: dict) -> TablePoint:
    values = tuple(float(record[c]) for c in ("yhat", "yhat_lower", "yhat_upper"))
    return TablePoint(
        ds,
        *values,
        point_json=forecast_point_json(series_id, ds, origin, *values),
        mlflow_json=mlflow_record_json(record | {"origin": origin}),
        features_json=features_json(used),
        log_row=(series_id, ds, *values, None, origin),
    )


def feature_records(features: pd.DataFrame | list[dict] | None, n_rows: int) -> list[dict]:
    """Feature values per forecast row (without series_id / ds), from the model's frame or
    its per-row dicts; empty dicts when the model did not say."""
    if features is None or len(features) != n_rows:
        return [{} for _ in range(n_rows)]
    if isinstance(features, list):
        return features
    names = [str(c) for c in features.columns if c not in ("series_id", "ds")]
    at = [features.columns.get_loc(c) for c in names]
    rows = features.iloc[:, at].to_numpy(dtype=object).tolist()
    return [dict(zip(names, row, strict=True)) for row in rows]
