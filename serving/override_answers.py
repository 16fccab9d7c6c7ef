"""Putting people's overrides into a /v1/forecast answer and its prediction-log rows.

Why a module of its own: the forecast path (:mod:`serving.forecasting`) stays as it was
for the cells no override touches - the precomputed, already encoded rows and the compact
log. Only the cells with an active override (:class:`serving.overrides.OverrideBook`)
are re-encoded here: ``yhat`` becomes the final number, ``yhat_model`` keeps the model's
and ``override_id`` names the override; the interval moves with it
(:meth:`serving.overrides.Override.adjust`). Those cells are logged per cell with the
model's numbers in ``yhat``/bounds plus ``yhat_final`` and ``override_id``; the other
cells keep their usual log form (compact for cached answers).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from serving.compact_log import CachedAnswer, LogRow
from serving.encoding import forecast_point_json
from serving.forecast_table import log_rows
from serving.forecasting import Answer, ForecastPlan
from serving.overrides import Cells, Override

# LogRow + (yhat_final, override_id): the prediction-log row of an overridden cell
OverriddenLogRow = tuple[Any, ...]


@dataclass(frozen=True)
class FinalAnswer:
    """The answer with overrides applied, and the per-cell log rows of overridden cells."""

    answer: Answer
    overridden: list[OverriddenLogRow]
    n_rest: int  # cells in ``answer.log_rows`` (the ones no override touched)


def _hits(plan: ForecastPlan, cells: Cells) -> dict[int, Override]:
    """Position in the answer -> the override of that cell."""
    hits: dict[int, Override] = {}
    entries = plan.entries
    for i, (series_id, step) in enumerate(plan.cells):
        by_ds = cells.get(series_id)
        if by_ds:
            override = by_ds.get(entries[series_id].points[step].ds)
            if override is not None:
                hits[i] = override
    return hits


def _final_point(point_json: str, override: Override) -> tuple[str, Any]:
    """The re-encoded row and its final yhat."""
    point = json.loads(point_json)
    model = point["yhat"]
    final, lower, upper = override.adjust(model, point["yhat_lower"], point["yhat_upper"])
    encoded = forecast_point_json(point["series_id"], point["ds"], point["origin"], final,
                                  lower, upper, yhat_model=model, override_id=override.id)
    return encoded, final


def _model_rows(answer: Answer) -> list[LogRow]:
    """The log rows of every cell, in answer order (a cached answer expanded)."""
    rows = answer.log_rows
    return list(rows) if not isinstance(rows, list) else rows


def apply_overrides(answer: Answer, plan: ForecastPlan, cells: Cells) -> FinalAnswer:
    """``answer`` with the overrides of ``cells`` applied (unchanged when none hits)."""
    hits = _hits(plan, cells) if cells else {}
    if not hits:
        return FinalAnswer(answer, [], len(plan.cells))
    points = list(answer.points_json)
    compact = isinstance(answer.log_rows, CachedAnswer)
    model_rows = [] if compact else _model_rows(answer)
    overridden: list[OverriddenLogRow] = []
    for i, override in hits.items():
        points[i], final = _final_point(points[i], override)
        series_id, step = plan.cells[i]
        row = plan.entries[series_id].points[step].log_row if compact else model_rows[i]
        overridden.append((*row, final, override.id))
    others = [c for i, c in enumerate(plan.cells) if i not in hits]
    if compact:
        rest: Any = log_rows(plan.entries, others)
    else:
        rest = [row for i, row in enumerate(model_rows) if i not in hits]
    return FinalAnswer(Answer(points, rest), overridden, len(others))
