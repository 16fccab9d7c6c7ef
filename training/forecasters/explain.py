"""Why this number: the drivers of each forecast cell, for every family (issue 14, point 4).

The one owner of explanations. :func:`explain_rows` takes a fitted forecaster (rolled or
not), the (series_id, ds) cells asked and an optional scenario, and returns the *drivers
frame*: per cell its family, method, base and yhat, and its drivers (name, value,
contribution in units of y), largest |contribution| first, the rest summed as ``other``.
``base + sum(contribution) = yhat`` per cell (:mod:`~training.forecasters.drivers`).

What the drivers are, by family:

* ``lightgbm`` / ``regression``: features (:mod:`~training.forecasters.explain_global`:
  TreeSHAP, coefficient x standardised value; converted to units of y).
* ``time_series``: level / trend / season components of the series' model
  (:mod:`~training.forecasters.explain_statistical`) and, for ARIMA, each exogenous
  column's coefficient x value; base 0.
* ``seasonal_naive``: one driver, ``same period last season``, whose value is that
  period's date; base 0.
* ``intermittent``: one driver, the smoothed demand level of the series' method (SES,
  Croston-SBA or TSB), whose value is the series' demand class; base 0.
* ``ensemble``: one driver per member (value = the member's forecast, contribution =
  weight x forecast); base 0. Members' own drivers: ask the member model.

Explanations are computed only when asked (a model call per request, never on the
cached no-scenario path). The pyfunc model exposes this as ``SalescastModel.explain``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from features.calendar import period_numbers, period_starts
from features.pipeline import ORDER
from training.forecasters.drivers import (
    CellDrivers,
    driver_frame,
    floor_drivers,
    one_driver,
)
from training.forecasters.explain_global import global_drivers
from training.forecasters.explain_statistical import components
from training.forecasters.statistical_spec import fill_gaps

if TYPE_CHECKING:
    from training.base import Forecaster

OTHER = "other"
TOP = 5
OUTPUT_COLUMNS = ["cell", "series_id", "ds", "family", "method", "base", "yhat", "rank",
                  "name", "value", "contribution", "model_contribution", "model_base"]
INTERMITTENT_METHODS = {0: "SES level", 1: "Croston-SBA demand rate", 2: "TSB demand rate"}


def explain_rows(forecaster: Forecaster, cells: pd.DataFrame, horizon: int,
                 scenario: pd.DataFrame | None = None, top: int | None = TOP) -> pd.DataFrame:
    """The drivers frame of ``cells`` (series_id, ds: periods within each series' horizon
    from its origin), ``top`` drivers per cell plus ``other`` (None: every driver)."""
    cells = cells[ORDER].reset_index(drop=True)
    explained = explain_cells(forecaster, cells, horizon, scenario)
    drivers = top_drivers(explained.drivers, top)
    per_cell = cells.assign(
        cell=np.arange(len(cells)), family=explained.family, method=explained.method,
        base=explained.base, yhat=explained.yhat,
        model_base=np.nan if explained.model_base is None else explained.model_base)
    out = per_cell.merge(drivers, on="cell", how="left", validate="one_to_many")
    return out.sort_values(["cell", "rank"], kind="stable", ignore_index=True)[OUTPUT_COLUMNS]


def explain_cells(forecaster: Forecaster, cells: pd.DataFrame, horizon: int,
                  scenario: pd.DataFrame | None) -> CellDrivers:
    """Every driver of each cell (row of ``cells``), through the family's explainer."""
    if forecaster.family == "ensemble":
        return ensemble_drivers(forecaster, cells, horizon, scenario)
    explainer = EXPLAINERS.get(forecaster.family)
    if explainer is None:
        raise ValueError(f"no explanation for the {forecaster.family!r} family")
    series_ids = list(dict.fromkeys(cells["series_id"].tolist()))
    mean, rows = forecaster.predict_mean_with_rows(horizon, scenario, series_ids)
    pick = positions(mean, cells)
    rows = rows.iloc[pick].reset_index(drop=True)
    return explainer(forecaster, rows, mean["yhat"].to_numpy(dtype=float)[pick])


def positions(frame: pd.DataFrame, cells: pd.DataFrame) -> np.ndarray:
    """Where each (series_id, ds) of ``cells`` is in ``frame``; ValueError for a missing one."""
    keyed = frame[ORDER].assign(series_id=frame["series_id"].astype(str),
                                at=np.arange(len(frame)))
    found = cells.assign(series_id=cells["series_id"].astype(str)).merge(
        keyed, on=ORDER, how="left")["at"]
    if found.isna().any():
        first = cells.loc[found.isna().to_numpy()].iloc[0]
        raise ValueError(f"no forecast of series {first['series_id']!r} at {first['ds']}")
    return found.to_numpy(dtype=int)


def top_drivers(drivers: pd.DataFrame, top: int | None) -> pd.DataFrame:
    """Per cell its drivers by |contribution|, largest first (``rank`` 0..); with ``top``
    the first ``top`` non-zero ones and the rest summed as ``other`` (ranked last)."""
    if top is not None:
        drivers = drivers[drivers["contribution"] != 0]
    ordered = drivers.assign(size=-drivers["contribution"].abs()).sort_values(
        ["cell", "size"], kind="stable").drop(columns="size")
    ordered["rank"] = ordered.groupby("cell").cumcount()
    if top is None:
        return ordered
    rest = ordered[ordered["rank"] >= top]
    other = rest.groupby("cell", as_index=False).agg(
        contribution=("contribution", "sum"),
        model_contribution=("model_contribution", lambda v: v.sum(min_count=1)))
    other = other.assign(name=OTHER, value=None, rank=top)
    return pd.concat([ordered[ordered["rank"] < top], other], ignore_index=True)


def naive_drivers(model: Any, rows: pd.DataFrame, yhat: np.ndarray) -> CellDrivers:
    """``same period last season``: the period whose value the cell repeats."""
    freq, season = model.pipeline_.freq, int(model.season_length_)
    origins = model.origins()
    origin = period_numbers(pd.DatetimeIndex(origins[rows["series_id"]].to_numpy()), freq)
    short = np.array([len(model.last_season_[s]) < season for s in rows["series_id"]])
    source = np.where(short, origin,
                      origin - season + 1 + (rows["step"].to_numpy(dtype=int) - 1) % season)
    dates = [d.date().isoformat() for d in period_starts(source, freq)]
    names = np.where(short, "last value", "same period last season").tolist()
    method = [f"seasonal naive (season of {season})"] * len(rows)
    return CellDrivers(model.family, yhat, np.zeros(len(rows)), method,
                       one_driver(names, dates, yhat))


def intermittent_drivers(model: Any, rows: pd.DataFrame, yhat: np.ndarray) -> CellDrivers:
    """The series' smoothed demand (flat over the horizon); value: its demand class."""
    at = pd.Index(model.series_ids_).get_indexer(rows["series_id"].astype(str))
    names = [INTERMITTENT_METHODS[int(kind)] for kind in model.kind_[at]]
    classes = [str(c) for c in model.demand_class_[at]]
    method = [f"intermittent: {name} of a {c} series" for name, c in zip(names, classes,
                                                                         strict=True)]
    return CellDrivers(model.family, yhat, np.zeros(len(rows)), method,
                       one_driver(names, classes, yhat))


def time_series_drivers(model: Any, rows: pd.DataFrame, yhat: np.ndarray) -> CellDrivers:
    """Components of each series' path x its level, plus exogenous coefficient x value."""
    frames, method = [], [""] * len(rows)
    unclipped = np.zeros(len(rows))
    for series_id, index in rows.groupby("series_id", sort=False).indices.items():
        fitted, scale = model.series_[str(series_id)], float(model.scales_[series_id])
        parts = components(fitted.params, *series_history(model, str(series_id)),
                           fitted.path)
        steps = rows["step"].to_numpy(dtype=int)[index] - 1
        names = list(parts)
        matrix = np.column_stack([parts[n][steps] for n in names]) * scale
        values = np.full(matrix.shape, None, dtype=object)
        exog = exog_effects(fitted.exog_coef, rows.iloc[index], scale)
        frames += [driver_frame(index, names, values, matrix), exog[0].assign(
            cell=index[exog[0]["cell"].to_numpy(dtype=int)])]
        unclipped[index] = matrix.sum(axis=1) + exog[1]
        for i in index:
            method[i] = f"time_series: {fitted.kind}" + (f" ({fitted.error})"
                                                         if fitted.error else "")
    frames.append(floor_drivers(unclipped, bool(model.nonnegative_)))
    drivers = pd.concat(frames, ignore_index=True).sort_values("cell", kind="stable")
    return CellDrivers(model.family, yhat, np.zeros(len(rows)), method,
                       drivers.reset_index(drop=True))


def series_history(model: Any, series_id: str) -> tuple[np.ndarray, np.ndarray]:
    """The scaled y (gaps filled) and exog rows a series' current path was made from: its
    training window, then the rows posted since (as the roll computes them)."""
    fitted = model.series_[series_id]
    posted = model.extension_[model.extension_["series_id"] == series_id].sort_values(ORDER)
    y = np.concatenate([fitted.y, model._scaled_y(series_id, posted)])
    exog = (np.vstack([fitted.exog, model._exog(posted)]) if fitted.exog.shape[0]
            else np.zeros((len(y), len(model.exog_))))
    return (fill_gaps(y) if np.isfinite(y).any() else np.zeros(len(y))), exog


def exog_effects(coef: dict[str, float], rows: pd.DataFrame, scale: float
                 ) -> tuple[pd.DataFrame, np.ndarray]:
    """Drivers (cell = position in ``rows``) and total of coefficient x exog value x level."""
    names = list(coef)
    values = rows[names].astype(float).fillna(0.0).to_numpy() if names else \
        np.empty((len(rows), 0))
    effects = values * np.array([coef[n] for n in names]) * scale
    frame = driver_frame(np.arange(len(rows)), names, values.astype(object), effects)
    return frame, effects.sum(axis=1)


def ensemble_drivers(model: Any, cells: pd.DataFrame, horizon: int,
                     scenario: pd.DataFrame | None) -> CellDrivers:
    """Each member's forecast (value) and its weighted share (contribution)."""
    series_ids = list(dict.fromkeys(cells["series_id"].tolist()))
    forecasts = []
    for member in model.members_:
        mean = member.predict_mean(horizon, scenario, series_ids)
        forecasts.append(mean["yhat"].to_numpy(dtype=float)[positions(mean, cells)])
    values = np.column_stack(forecasts)
    weights = np.asarray(model.weights_, dtype=float)
    names = [member.family for member in model.members_]
    shares = ", ".join(f"{n} {w:.2f}" for n, w in zip(names, weights, strict=True))
    contributions = values * weights
    return CellDrivers(model.family, contributions.sum(axis=1), np.zeros(len(cells)),
                       [f"ensemble: weighted mean of {shares}"] * len(cells),
                       driver_frame(np.arange(len(cells)), names, values.astype(object),
                                    contributions))


Explainer = Callable[[Any, pd.DataFrame, np.ndarray], CellDrivers]
EXPLAINERS: dict[str, Explainer] = {
    "lightgbm": global_drivers,
    "regression": global_drivers,
    "time_series": time_series_drivers,
    "seasonal_naive": naive_drivers,
    "intermittent": intermittent_drivers,
}
