"""Turning a forecast request into answer rows: plan the cells, then look up or predict.

A *cell* is (series_id, horizon step). Planning resolves series (by id or key values),
checks the horizon and the row limit, collects unknown series as per-series errors and
attaches scenario values to the cells they touch. Cells without scenario values come
from the champion's precomputed forecast table; only cells with scenario values call the
model — one call per distinct set of scenario columns, so the model never sees a
half-filled exogenous column.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import pandas as pd

from serving.champion import Champion
from serving.encoding import COMPACT, features_json, forecast_point_json
from serving.errors import ApiError
from serving.forecast_table import FREQ_NAMES, Cell
from serving.prediction_log import LogRow
from serving.schemas import ForecastRequest, ScenarioValues, SeriesRef


@dataclass(frozen=True)
class Limits:
    max_rows: int
    max_horizon: int | None = None


@dataclass
class ForecastPlan:
    """Cells to answer in order, per-series errors, scenario values per touched cell."""

    cells: list[Cell]
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


def plan_forecast(request: ForecastRequest, champion: Champion, limits: Limits) -> ForecastPlan:
    """Check ``request`` against the champion and the limits; 404 if no series is known."""
    if request.series is not None:
        plan = _plan_series(request.series, request.horizon, champion, limits)
    else:
        plan = _plan_rows(request, champion, limits)
    if not plan.cells and plan.errors:
        names = sorted({e["series_id"] for e in plan.errors})
        raise ApiError(404, "unknown_series", f"no requested series is known: {names}",
                       plan.errors[0]["field"])
    plan.overrides = _scenario_overrides(request.scenario, plan.cells, champion, limits)
    return plan


def _resolve(ref: SeriesRef | ScenarioValues, champion: Champion, where: str) -> str | None:
    if ref.keys is None:
        return ref.series_id
    try:
        return champion.series_id_for(ref.keys)
    except KeyError as exc:
        raise ApiError(422, "invalid_keys", str(exc.args[0]), f"{where}.keys") from None


def _longest_horizon(champion: Champion, limits: Limits) -> int:
    model_horizon = len(champion.dates)
    return min(model_horizon, limits.max_horizon or model_horizon)


def _plan_series(
    series: Sequence[SeriesRef], horizon: int | None, champion: Champion, limits: Limits
) -> ForecastPlan:
    longest = _longest_horizon(champion, limits)
    steps = horizon or longest
    if steps > longest:
        raise ApiError(422, "horizon_too_long",
                       f"horizon {steps} exceeds the {longest} periods this API serves", "horizon")
    if len(series) * steps > limits.max_rows:
        raise ApiError(413, "too_many_rows", f"{len(series)} series x {steps} periods exceed "
                       f"the limit of {limits.max_rows} rows per request", "series")
    plan = ForecastPlan(cells=[])
    seen: set[str] = set()
    for i, ref in enumerate(series):
        series_id = _resolve(ref, champion, f"series[{i}]") or ""
        if series_id not in champion.series_ids:
            plan.errors.append(unknown_series_error(series_id, f"series[{i}]"))
        elif series_id not in seen:
            seen.add(series_id)
            plan.cells.extend((series_id, step) for step in range(steps))
    return plan


def _step_of(ds: date, champion: Champion, limits: Limits, where: str) -> int:
    step = champion.table.step_of_date.get(ds)
    if step is None or step >= _longest_horizon(champion, limits):
        raise _outside_horizon(ds, champion, limits, where)
    return step


def _outside_horizon(ds: date, champion: Champion, limits: Limits, where: str) -> ApiError:
    dates = champion.dates[: _longest_horizon(champion, limits)]
    return ApiError(422, "ds_outside_horizon", f"{ds.isoformat()} is not a forecastable date: "
                    f"this model forecasts {FREQ_NAMES[champion.metadata.freq]} periods "
                    f"{dates[0]} .. {dates[-1]}", where)


def _plan_rows(request: ForecastRequest, champion: Champion, limits: Limits) -> ForecastPlan:
    rows = request.rows or []
    if len(rows) > limits.max_rows:
        raise ApiError(413, "too_many_rows", f"{len(rows)} rows exceed the limit of "
                       f"{limits.max_rows} rows per request", "rows")
    plan = ForecastPlan(cells=[])
    known, steps = champion.series_ids, champion.table.step_of_date
    longest = _longest_horizon(champion, limits)
    reported: set[str] = set()
    for i, row in enumerate(rows):  # the hot loop of batch requests: kept lean
        series_id = row.series_id
        if series_id not in known:
            if series_id not in reported:
                reported.add(series_id)
                plan.errors.append(unknown_series_error(series_id, f"rows[{i}].series_id"))
            continue
        step = steps.get(row.ds, longest)
        if step >= longest:
            raise _outside_horizon(row.ds, champion, limits, f"rows[{i}].ds")
        plan.cells.append((series_id, step))
    return plan


def _scenario_overrides(
    scenario: Sequence[ScenarioValues], cells: Sequence[Cell], champion: Champion, limits: Limits
) -> dict[Cell, dict[str, float]]:
    """Scenario values per touched cell, entries applied in order (later ones win)."""
    if not scenario:
        return {}
    index = _CellIndex(cells)
    budget = 10 * limits.max_rows  # a few broad entries plus one per row is plenty
    overrides: dict[Cell, dict[str, float]] = {}
    for i, item in enumerate(scenario):
        targets = index.matching(*_scenario_target(item, champion, limits, f"scenario[{i}]"))
        budget -= len(targets) + 1
        if budget < 0:
            raise ApiError(413, "scenario_too_large", "the scenario touches too many rows; "
                           "merge entries that set the same values", "scenario")
        for cell in targets:
            overrides.setdefault(cell, {}).update(item.values)
    return overrides


class _CellIndex:
    """The distinct cells of a request, found by series, by step, or by both."""

    def __init__(self, cells: Sequence[Cell]) -> None:
        self.cells = list(dict.fromkeys(cells))
        self.by_series: dict[str, list[Cell]] = {}
        self.by_step: dict[int, list[Cell]] = {}
        for cell in self.cells:
            self.by_series.setdefault(cell[0], []).append(cell)
            self.by_step.setdefault(cell[1], []).append(cell)

    def matching(self, series_id: str | None, step: int | None) -> list[Cell]:
        if series_id is None:
            return self.cells if step is None else self.by_step.get(step, [])
        in_series = self.by_series.get(series_id, [])
        return in_series if step is None else [c for c in in_series if c[1] == step]


def _scenario_target(
    item: ScenarioValues, champion: Champion, limits: Limits, where: str
) -> tuple[str | None, int | None]:
    unknown = sorted(set(item.values) - champion.exog_columns)
    if unknown:
        accepted = sorted(champion.exog_columns) or "none"
        raise ApiError(422, "unknown_scenario_column", f"this model takes no {unknown[0]!r}; "
                       f"scenario columns it accepts: {accepted}", f"{where}.values.{unknown[0]}")
    series_id = _resolve(item, champion, where)
    if series_id is not None and series_id not in champion.series_ids:
        raise ApiError(422, "unknown_series", f"scenario names unknown series {series_id!r}",
                       f"{where}.series_id")
    step = None if item.ds is None else _step_of(item.ds, champion, limits, f"{where}.ds")
    return series_id, step


def answer_from_table(plan: ForecastPlan, champion: Champion) -> Answer:
    """The no-scenario answer: precomputed rows, no model call."""
    table = champion.table
    points = [table.points[s][step].point_json for s, step in plan.cells]
    return Answer(points, table.log_rows(plan.cells))


def answer_with_scenario(plan: ForecastPlan, champion: Champion) -> Answer:
    """Predict the cells that carry scenario values; take the others from the table."""
    fresh: dict[Cell, tuple[str, LogRow]] = {}
    for columns, cells in _group_by_columns(plan.overrides).items():
        fresh.update(_predict_cells(cells, columns, plan.overrides, champion))
    table = champion.table
    points: list[str] = []
    log_rows: list[LogRow] = []
    for cell in plan.cells:
        if cell in fresh:
            point, row = fresh[cell]
            points.append(point)
            log_rows.append(row)
        else:
            points.append(table.point(cell).point_json)
            log_rows.extend(table.log_rows([cell]))
    return Answer(points, log_rows)


def _group_by_columns(overrides: dict[Cell, dict[str, float]]) -> dict[tuple[str, ...], list[Cell]]:
    groups: dict[tuple[str, ...], list[Cell]] = {}
    for cell, values in overrides.items():
        groups.setdefault(tuple(sorted(values)), []).append(cell)
    return groups


def _predict_cells(
    cells: list[Cell], columns: tuple[str, ...], overrides: dict[Cell, dict[str, float]],
    champion: Champion,
) -> dict[Cell, tuple[str, LogRow]]:
    frame = pd.DataFrame({
        "series_id": [s for s, _ in cells],
        "ds": [champion.dates[step] for _, step in cells],
        **{c: [overrides[cell][c] for cell in cells] for c in columns},
    })
    try:
        forecast, features = champion.predict(frame)
    except (ValueError, TypeError) as exc:
        raise ApiError(422, "model_rejected_scenario", str(exc), "scenario") from exc
    used = _used_values(features, frame, columns)
    out: dict[Cell, tuple[str, LogRow]] = {}
    for i, cell in enumerate(cells):
        ds = champion.dates[cell[1]]
        values = tuple(forecast.at[i, c] for c in ("yhat", "yhat_lower", "yhat_upper"))
        point = forecast_point_json(cell[0], ds, *values)
        out[cell] = (point, (cell[0], ds, *map(float, values), features_json(used[i])))
    return out


def _used_values(
    features: pd.DataFrame | None, frame: pd.DataFrame, columns: tuple[str, ...]
) -> list[dict[str, Any]]:
    """Per row: the model's features when it exposes them, else the scenario inputs."""
    if features is not None and len(features) == len(frame):
        return features.drop(columns=["series_id", "ds"], errors="ignore").to_dict("records")
    return frame[list(columns)].to_dict("records")


def forecast_body(request_id: str, champion: Champion, answer: Answer,
                  errors: list[dict[str, Any]]) -> bytes:
    """The /v1/forecast JSON document, assembled from pre-encoded rows."""
    return (
        '{"request_id":' + json.dumps(request_id)
        + ',"model":' + champion.model_json
        + ',"forecasts":[' + ",".join(answer.points_json)
        + '],"errors":' + json.dumps(errors, separators=COMPACT) + "}"
    ).encode()
