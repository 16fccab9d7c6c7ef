"""Turning a forecast request into answer rows: plan the cells, then look up or predict.

A *cell* is (series_id, horizon step). Planning resolves series (by id or key values),
takes each series' current forecast entry (its origin and precomputed rows) together with
the champion's state that made them, checks the horizon and the row limit, collects
unknown series as per-series errors and attaches scenario values to the cells they touch.
Cells without scenario values come from the entries; only cells with scenario values call
the model — one call per distinct set of scenario columns, so the model never sees a
half-filled exogenous column. An ``as_of`` request plans on the entries of that earlier
origin instead (``serving.living``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from operator import itemgetter
from typing import Any

import numpy as np
import pandas as pd

from serving.champion import Champion
from serving.encoding import COMPACT, features_json, forecast_point_json
from serving.errors import ApiError
from serving.forecast_table import (
    FREQ_NAMES,
    Cell,
    SeriesForecast,
    feature_records,
    log_rows,
)
from serving.living import LivingForecasts
from serving.prediction_log import LogRow
from serving.schemas import ForecastRequest, ScenarioValues, SeriesRef

MEMO_KEYS = 4  # encoded origins items an entry keeps (one per clock it was asked with)


@dataclass(frozen=True)
class Limits:
    max_rows: int
    max_horizon: int | None = None


@dataclass
class ForecastPlan:
    """Cells to answer in order, the entries and state they come from, per-series errors,
    scenario values per touched cell."""

    cells: list[Cell]
    entries: dict[str, SeriesForecast]
    state: Any
    errors: list[dict[str, Any]] = field(default_factory=list)
    overrides: dict[Cell, dict[str, float]] = field(default_factory=dict)


@dataclass(frozen=True)
class Answer:
    """Encoded forecast rows (in request order) and their prediction-log rows."""

    points_json: list[str]
    log_rows: Iterable[LogRow]


def unknown_series_error(series_id: str, where: str) -> dict[str, Any]:
    return {
        "code": "unknown_series", "field": where, "series_id": series_id,
        "message": f"unknown series {series_id!r}: the model was not trained on it",
    }


def requested_series(request: ForecastRequest, champion: Champion) -> list[str]:
    """The known series a request names (for taking their entries), in request order."""
    if request.series is not None:
        named = [_resolve(ref, champion, f"series[{i}]") or ""
                 for i, ref in enumerate(request.series)]
    else:
        named = [row.series_id for row in request.rows or []]
    return [s for s in dict.fromkeys(named) if s in champion.series_ids]


def take_entries(champion: Champion, living: LivingForecasts, series_ids: list[str],
                 as_of: date | None) -> tuple[Any, dict[str, SeriesForecast], date | None]:
    """The state, these series' entries and the clock a request answers from: the
    current ones, or those made at ``as_of`` (computed: call it off the event loop)."""
    if as_of is None:
        state, entries = champion.take(series_ids)
        return state, entries, champion.clock
    if not series_ids:
        return champion.state, {}, None
    try:
        state, entries = living.as_of(champion, series_ids, as_of)
    except ValueError as exc:
        raise ApiError(422, "as_of_before_training", str(exc), "as_of") from exc
    return state, entries, None


def plan_forecast(request: ForecastRequest, champion: Champion, limits: Limits,
                  entries: dict[str, SeriesForecast], state: Any) -> ForecastPlan:
    """Check ``request`` against the champion, the series' ``entries`` and the limits;
    404 if no series is known."""
    plan = ForecastPlan(cells=[], entries=entries, state=state)
    if request.series is not None:
        _plan_series(plan, request.series, request.horizon, champion, limits)
    else:
        _plan_rows(plan, request, champion, limits)
    if not plan.cells and plan.errors:
        names = sorted({e["series_id"] for e in plan.errors})
        raise ApiError(404, "unknown_series", f"no requested series is known: {names}",
                       plan.errors[0]["field"])
    plan.overrides = _scenario_overrides(request.scenario, plan, champion, limits)
    return plan


def _resolve(ref: SeriesRef | ScenarioValues, champion: Champion, where: str) -> str | None:
    if ref.keys is None:
        return ref.series_id
    try:
        return champion.series_id_for(ref.keys)
    except KeyError as exc:
        raise ApiError(422, "invalid_keys", str(exc.args[0]), f"{where}.keys") from None


def longest_horizon(champion: Champion, limits: Limits) -> int:
    """The most periods ahead this API serves: the model's horizon, capped by the limit."""
    model_horizon = champion.metadata.horizon
    return min(model_horizon, limits.max_horizon or model_horizon)


def requested_steps(horizon: int | None, champion: Champion, limits: Limits) -> int:
    """The periods a request asks for (default: the longest served); 422 beyond that."""
    longest = longest_horizon(champion, limits)
    steps = horizon or longest
    if steps > longest:
        raise ApiError(422, "horizon_too_long",
                       f"horizon {steps} exceeds the {longest} periods this API serves", "horizon")
    return steps


def _plan_series(
    plan: ForecastPlan, series: Sequence[SeriesRef], horizon: int | None, champion: Champion,
    limits: Limits,
) -> None:
    steps = requested_steps(horizon, champion, limits)
    if len(series) * steps > limits.max_rows:
        raise ApiError(413, "too_many_rows", f"{len(series)} series x {steps} periods exceed "
                       f"the limit of {limits.max_rows} rows per request", "series")
    seen: set[str] = set()
    for i, ref in enumerate(series):
        series_id = _resolve(ref, champion, f"series[{i}]") or ""
        if series_id not in plan.entries:
            plan.errors.append(unknown_series_error(series_id, f"series[{i}]"))
        elif series_id not in seen:
            seen.add(series_id)
            plan.cells.extend((series_id, step) for step in range(steps))


def _outside_horizon(ds: date, entry: SeriesForecast, series_id: str, champion: Champion,
                     limits: Limits, where: str) -> ApiError:
    dates = entry.dates[: longest_horizon(champion, limits)]
    return ApiError(422, "ds_outside_horizon", f"{ds.isoformat()} is not a forecastable date "
                    f"of {series_id!r}: from its origin {entry.origin_iso} this model "
                    f"forecasts {FREQ_NAMES[champion.metadata.freq]} periods "
                    f"{dates[0]} .. {dates[-1]}", where)


def _plan_rows(plan: ForecastPlan, request: ForecastRequest, champion: Champion,
               limits: Limits) -> None:
    rows = request.rows or []
    if len(rows) > limits.max_rows:
        raise ApiError(413, "too_many_rows", f"{len(rows)} rows exceed the limit of "
                       f"{limits.max_rows} rows per request", "rows")
    entries, longest = plan.entries, longest_horizon(champion, limits)
    reported: set[str] = set()
    for i, row in enumerate(rows):  # the hot loop of batch requests: kept lean
        series_id = row.series_id
        entry = entries.get(series_id)
        if entry is None:
            if series_id not in reported:
                reported.add(series_id)
                plan.errors.append(unknown_series_error(series_id, f"rows[{i}].series_id"))
            continue
        step = entry.step_of_date.get(row.ds, longest)
        if step >= longest:
            raise _outside_horizon(row.ds, entry, series_id, champion, limits, f"rows[{i}].ds")
        plan.cells.append((series_id, step))


def _scenario_overrides(
    scenario: Sequence[ScenarioValues], plan: ForecastPlan, champion: Champion, limits: Limits
) -> dict[Cell, dict[str, float]]:
    """Scenario values per touched cell, entries applied in order (later ones win)."""
    if not scenario:
        return {}
    index = _CellIndex(plan.cells, plan.entries)
    budget = 10 * limits.max_rows  # a few broad entries plus one per row is plenty
    overrides: dict[Cell, dict[str, float]] = {}
    for i, item in enumerate(scenario):
        targets = _scenario_targets(item, index, champion, f"scenario[{i}]")
        budget -= len(targets) + 1
        if budget < 0:
            raise ApiError(413, "scenario_too_large", "the scenario touches too many rows; "
                           "merge entries that set the same values", "scenario")
        for cell in targets:
            overrides.setdefault(cell, {}).update(item.values)
    return overrides


class _CellIndex:
    """The distinct cells of a request, found by series, by date, or by both."""

    def __init__(self, cells: Sequence[Cell], entries: dict[str, SeriesForecast]) -> None:
        self.cells = list(dict.fromkeys(cells))
        self.by_series: dict[str, list[Cell]] = {}
        self.by_date: dict[date, list[Cell]] = {}
        for cell in self.cells:
            ds = date.fromisoformat(entries[cell[0]].points[cell[1]].ds)
            self.by_series.setdefault(cell[0], []).append(cell)
            self.by_date.setdefault(ds, []).append(cell)

    def matching(self, series_id: str | None, ds: date | None) -> list[Cell]:
        if series_id is None:
            return self.cells if ds is None else self.by_date.get(ds, [])
        in_series = self.by_series.get(series_id, [])
        if ds is None:
            return in_series
        on_date = set(self.by_date.get(ds, ()))
        return [c for c in in_series if c in on_date]


def _scenario_targets(
    item: ScenarioValues, index: _CellIndex, champion: Champion, where: str
) -> list[Cell]:
    unknown = sorted(set(item.values) - champion.exog_columns)
    if unknown:
        accepted = sorted(champion.exog_columns) or "none"
        raise ApiError(422, "unknown_scenario_column", f"this model takes no {unknown[0]!r}; "
                       f"scenario columns it accepts: {accepted}", f"{where}.values.{unknown[0]}")
    series_id = _resolve(item, champion, where)
    if series_id is not None and series_id not in champion.series_ids:
        raise ApiError(422, "unknown_series", f"scenario names unknown series {series_id!r}",
                       f"{where}.series_id")
    targets = index.matching(series_id, item.ds)
    if not targets:  # a what-if that changes nothing is a mistake, never ignored silently
        if item.ds is not None:
            raise ApiError(422, "scenario_outside_request", f"scenario date {item.ds} is not "
                           "one of the forecast rows asked for (each series forecasts the "
                           "periods after its origin)", f"{where}.ds")
        raise ApiError(422, "scenario_outside_request", f"scenario series {series_id!r} is "
                       "not one of the series asked for", f"{where}.series_id")
    return targets


def answer_from_table(plan: ForecastPlan) -> Answer:
    """The no-scenario answer: precomputed rows, no model call, a slice per run of steps."""
    logged = log_rows(plan.entries, plan.cells)
    points: list[str] = []
    for entry, first, steps in logged.runs:
        points += entry.points_json[first:first + steps]
    return Answer(points, logged)


def answer_with_scenario(plan: ForecastPlan, champion: Champion) -> Answer:
    """Predict the cells that carry scenario values; take the others from the entries."""
    fresh: dict[Cell, tuple[str, LogRow]] = {}
    for columns, cells in _group_by_columns(plan.overrides).items():
        fresh.update(_predict_cells(cells, columns, plan, champion))
    points: list[str] = []
    rows: list[LogRow] = []
    for cell in plan.cells:
        if cell in fresh:
            point, row = fresh[cell]
            points.append(point)
            rows.append(row)
        else:
            points.append(plan.entries[cell[0]].points[cell[1]].point_json)
            rows.extend(log_rows(plan.entries, [cell]))
    return Answer(points, rows)


def _group_by_columns(overrides: dict[Cell, dict[str, float]]) -> dict[tuple[str, ...], list[Cell]]:
    groups: dict[tuple[str, ...], list[Cell]] = {}
    for cell, values in overrides.items():
        groups.setdefault(tuple(sorted(values)), []).append(cell)
    return groups


def _predict_cells(
    cells: list[Cell], columns: tuple[str, ...], plan: ForecastPlan, champion: Champion,
) -> dict[Cell, tuple[str, LogRow]]:
    entries, overrides = plan.entries, plan.overrides
    dates = [entries[s].points[step].ds for s, step in cells]
    frame = pd.DataFrame({
        "series_id": [s for s, _ in cells],
        "ds": pd.to_datetime(dates, format="%Y-%m-%d"),
        **{c: np.array([overrides[cell][c] for cell in cells], dtype=float) for c in columns},
    })
    try:
        forecast, features = champion.predict(frame, state=plan.state)
    except (ValueError, TypeError) as exc:
        raise ApiError(422, "model_rejected_scenario", str(exc), "scenario") from exc
    used = _used_values(features, frame, columns)
    numbers = forecast[["yhat", "yhat_lower", "yhat_upper"]].to_numpy(dtype=float).tolist()
    out: dict[Cell, tuple[str, LogRow]] = {}
    for i, cell in enumerate(cells):
        origin = entries[cell[0]].origin_iso
        point = forecast_point_json(cell[0], dates[i], origin, *numbers[i])
        out[cell] = (point, (cell[0], dates[i], *numbers[i], features_json(used[i]), origin))
    return out


def _used_values(
    features: pd.DataFrame | list[dict] | None, frame: pd.DataFrame, columns: tuple[str, ...]
) -> list[dict[str, Any]]:
    """Per row: the model's features when it exposes them, else the scenario inputs."""
    if features is None or len(features) != len(frame):
        features = frame[list(columns)]
    return feature_records(features, len(frame))


def origins_json(plan: ForecastPlan, champion: Champion, clock: date | None) -> str:
    """Per answered series: its origin and status (current, incomplete, gap, stale)."""
    series = dict.fromkeys(map(itemgetter(0), plan.cells))
    return "[" + ",".join(_origin_item(s, plan.entries[s], champion, clock) for s in series) + "]"


def _origin_item(series_id: str, entry: SeriesForecast, champion: Champion,
                 clock: date | None) -> str:
    """One series' ``origins`` item, encoded once per entry and clock (the entry keeps it)."""
    cold = series_id not in champion.series_ids  # a new series (serving.cold_start)
    key = (series_id, clock, champion.metadata.freq, champion.metadata.horizon, cold)
    encoded = entry.origin_items.get(key)
    if encoded is None:
        status = champion.status(entry, clock)
        item = {"series_id": series_id, "origin": status.origin.isoformat(),
                "status": status.status}
        if status.detail:
            item["detail"] = status.detail
        if cold:
            item["cold_start"] = True
        encoded = json.dumps(item, separators=COMPACT)
        if len(entry.origin_items) >= MEMO_KEYS:  # bounded: the clock rarely changes
            entry.origin_items.clear()
        entry.origin_items[key] = encoded
    return encoded


def forecast_body(request_id: str, champion: Champion, answer: Answer, plan: ForecastPlan,
                  clock: date | None) -> bytes:
    """The /v1/forecast JSON document, assembled from pre-encoded rows."""
    return (
        '{"request_id":' + json.dumps(request_id)
        + ',"model":' + champion.model_json
        + ',"forecasts":[' + ",".join(answer.points_json)
        + '],"origins":' + origins_json(plan, champion, clock)
        + ',"errors":' + json.dumps(plan.errors, separators=COMPACT) + "}"
    ).encode()
