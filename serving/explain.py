"""``"explain": true`` on /v1/forecast: each forecast row's drivers, from the served model.

Why a module of its own: an explanation is a model call (the served python model's
``explain(rows, {"top": k})``, brought by the model's own code: ``serving`` never imports
``training``), so it is made only when a request asks, after the answer is planned, and
never touches the cached no-scenario path or the prediction log.

Each explained row gains ``drivers`` (at most ``explain_top`` of them by |contribution|,
the rest summed as ``other``), ``base``, ``family`` and ``method``; the drivers explain the
model's number (``yhat_model``): ``base + sum(contribution) = yhat_model`` up to float
rounding (numbers are sent at full precision). Cells with scenario values are explained
with those values, grouped by scenario columns as they were predicted. A series the model
has not seen (a cold start) is not explained: its row says so. Limits: at most
:data:`MAX_EXPLAIN_ROWS` rows per request (413 beyond), a model logged before
explanations existed answers 422.

:func:`drivers_frame` is the same explanation as a frame, for reports.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd
from starlette.concurrency import run_in_threadpool

from serving.champion import Champion
from serving.encoding import COMPACT
from serving.errors import ApiError
from serving.forecast_table import Cell
from serving.forecasting import Answer, ForecastPlan

MAX_EXPLAIN_ROWS = 1_000
DEFAULT_TOP = 5
UNEXPLAINED = ',"drivers":null,"base":null,"family":null,"method":"cold start: not explained"'


def drivers_frame(model: Any, cells: pd.DataFrame, top: int | None = None) -> pd.DataFrame:
    """The drivers of ``cells`` (series_id, ds, optional scenario columns) by the served
    python ``model`` (a champion's state): one row per driver, ``cell`` = the row of
    ``cells``; ``top`` drivers per cell plus ``other`` (None: all). ValueError when the
    model cannot explain."""
    explain = getattr(model, "explain", None)
    if not callable(explain):
        raise ValueError("this model version was logged before explanations existed; "
                         "retrain it to explain its forecasts")
    frame = cells.reset_index(drop=True).assign(
        series_id=cells["series_id"].astype(str).to_numpy(),
        ds=pd.to_datetime(cells["ds"]).astype("datetime64[ns]").to_numpy())
    return explain(frame, {"top": int(top or 0)})


def check_explain_limit(rows: int) -> None:
    if rows > MAX_EXPLAIN_ROWS:
        raise ApiError(413, "too_many_rows_to_explain", f"{rows} rows asked with explain; "
                       f"at most {MAX_EXPLAIN_ROWS} rows per request are explained: split "
                       "the request or ask without explain", "explain")


async def explanations(plan: ForecastPlan, champion: Champion, top: int) -> dict[Cell, str]:
    """Per distinct known cell of ``plan``: its encoded drivers (off the event loop)."""
    check_explain_limit(len(plan.cells))
    return await run_in_threadpool(explain_plan, plan, champion, top)


def with_drivers(answer: Answer, plan: ForecastPlan, fragments: dict[Cell, str]) -> Answer:
    """``answer`` with each row's drivers appended (see the module docstring)."""
    points = [point[:-1] + fragments.get(cell, UNEXPLAINED) + "}"
              for point, cell in zip(answer.points_json, plan.cells, strict=True)]
    return replace(answer, points_json=points)


def explain_plan(plan: ForecastPlan, champion: Champion, top: int) -> dict[Cell, str]:
    """Per distinct known cell of ``plan``: its encoded drivers (a JSON fragment)."""
    known = [c for c in dict.fromkeys(plan.cells) if c[0] in champion.series_ids]
    groups: dict[tuple[str, ...], list[Cell]] = {}
    for cell in known:
        groups.setdefault(tuple(sorted(plan.overrides.get(cell, {}))), []).append(cell)
    fragments: dict[Cell, str] = {}
    for columns, cells in groups.items():
        frame = cells_frame(cells, columns, plan)
        try:
            drivers = drivers_frame(plan.state, frame, top)
        except ValueError as exc:
            raise ApiError(422, "model_cannot_explain", str(exc), "explain") from exc
        fragments.update(zip(cells, encode_cells(drivers, len(cells)), strict=True))
    return fragments


def cells_frame(cells: Sequence[Cell], columns: tuple[str, ...], plan: ForecastPlan
                ) -> pd.DataFrame:
    """The model input of ``cells``: series_id, ds and their scenario ``columns``."""
    dates = [plan.entries[s].points[step].ds for s, step in cells]
    return pd.DataFrame({
        "series_id": [s for s, _ in cells],
        "ds": pd.to_datetime(dates, format="%Y-%m-%d"),
        **{c: np.array([plan.overrides[cell][c] for cell in cells], dtype=float)
           for c in columns},
    })


def encode_cells(drivers: pd.DataFrame, count: int) -> list[str]:
    """One JSON fragment (``,"drivers":[...],"base":..,...``) per cell 0..count-1."""
    fragments = []
    by_cell = drivers.groupby("cell", sort=True)
    for cell in range(count):
        rows = by_cell.get_group(cell)
        first = rows.iloc[0]
        listed = [{"name": str(r.name), "value": plain(r.value),
                   "contribution": number(r.contribution)}
                  for r in rows.itertuples(index=False) if isinstance(r.name, str)]
        fragments.append(
            ',"drivers":' + json.dumps(listed, separators=COMPACT, default=str)
            + ',"base":' + json.dumps(number(first["base"]))
            + ',"family":' + json.dumps(str(first["family"]))
            + ',"method":' + json.dumps(str(first["method"])))
    return fragments


def number(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def plain(value: Any) -> Any:
    """A driver's value as a JSON value (numbers, text, dates as ISO text; NaN -> null)."""
    if value is None:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, pd.Timestamp):
        return value.date().isoformat()
    return value
