"""Forecasts at any key level: the roll-up of the series below it, with its own interval.

Why it exists: people plan on stores, categories and the total, not on store x category
series. ``POST /v1/forecast`` with ``"level": {"store": "S01"}`` (``{}`` for the total)
answers the sum of the forecasts of every series the model knows under that level.

* **Coherent, bottom-up.** The point forecast of a level at ``ds`` is exactly the sum of
  its series' point forecasts at ``ds`` (the served ones, from each series' origin), so
  every level adds up to the levels below it. Only the dates every member forecasts are
  answered (members whose actuals moved their origins differently share fewer dates).
  No reconciliation (MinT) is built: bottom-up is the only method.
* **The interval of the sum.** Each series' interval is its conformal half-width
  ``w_i = yhat_upper - yhat`` (symmetric before the lower bound is clipped at 0). For the
  sum, ``W^2 = sum_ij rho_ij w_i w_j`` with ``rho_ij`` the correlation of the two series'
  backtest errors (:mod:`serving.error_correlation`): the variance of a sum, with the
  calibrated widths standing for the standard deviations. It is applied as one
  effective correlation ``rho = (W^2 - sum w_i^2) / ((sum w_i)^2 - sum w_i^2)`` clamped
  to [0, 1] (pairs with too few shared backtest cells count as 0), so the interval lies
  between independence (``sqrt(sum w_i^2)``, rho = 0) and the summed bounds (rho = 1).
  Without backtest rows, independence is assumed and the answer says so
  (``interval.method = "independent (assumed)"``): narrower than the truth when the
  series share shocks. The lower bound is clipped at 0 when every member's lower bound
  is >= 0 (a non-negative target).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from serving.champion import Champion
from serving.encoding import COMPACT, finite_or_none
from serving.error_correlation import ErrorCorrelation
from serving.errors import ApiError
from serving.forecast_table import Cell, SeriesForecast
from serving.key_index import KeyIndex

INDEPENDENT = "independent (assumed: no backtest errors to estimate a correlation)"
CORRELATED = "correlated (backtest error correlation)"


def level_members(level: Mapping[str, str], index: KeyIndex) -> list[str]:
    """The known series under ``level``: 422 for an unknown key name, 404 for a value no
    series has or a combination no series has."""
    unknown = sorted(set(level) - set(index.keys))
    if unknown:
        raise ApiError(422, "unknown_level_key", f"unknown key(s) {unknown} in level: this "
                       f"model's keys are {list(index.keys)}", f"level.{unknown[0]}")
    for key, value in level.items():
        if value not in index.known[key]:
            shown = sorted(index.known[key])
            raise ApiError(404, "unknown_level", f"no series has {key}={value!r} (known "
                           f"values: {shown[:10]}{' ...' if len(shown) > 10 else ''})",
                           f"level.{key}")
    members = index.members(level)
    if not members:
        raise ApiError(404, "unknown_level", f"no series has all of {dict(level)}", "level")
    return members


def aggregate_half_width(widths: np.ndarray, correlation: np.ndarray | None
                         ) -> tuple[float, float]:
    """Half-width of the sum of series with half-widths ``widths`` and error
    ``correlation`` (None: independent), and the effective correlation used."""
    squares = float(np.sum(widths**2))
    cross = float(np.sum(widths)) ** 2 - squares  # sum over i != j of w_i w_j
    if correlation is None or cross <= 0:
        return float(np.sqrt(squares)), 0.0
    filled = np.nan_to_num(correlation, nan=0.0)
    rho = (float(widths @ filled @ widths) - squares) / cross
    rho = min(max(rho, 0.0), 1.0)
    return float(np.sqrt(squares + rho * cross)), rho


@dataclass(frozen=True)
class LevelPoint:
    ds: str
    yhat: float
    yhat_lower: float
    yhat_upper: float
    correlation: float


def common_dates(entries: Mapping[str, SeriesForecast], members: list[str],
                 horizon: int) -> list[str]:
    """The first ``horizon`` dates every member forecasts (422 when there are none)."""
    shared = set(entries[members[0]].dates)
    for series_id in members[1:]:
        shared &= set(entries[series_id].dates)
    if not shared:
        raise ApiError(422, "no_common_periods", "the series under this level forecast no "
                       "period in common (their origins are too far apart): ask them by "
                       "series", "level")
    return sorted(shared)[:horizon]


def roll_up(entries: Mapping[str, SeriesForecast], members: list[str], dates: list[str],
            correlation: ErrorCorrelation | None,
            overrides: Mapping[str, Mapping[str, Any]] | None = None) -> list[LevelPoint]:
    """Sum of the members' final forecasts per date (a person's override, when one applies
    to the cell, replaces the model's number as in a series answer), with the interval of
    the sum."""
    matrix = correlation.among(members) if correlation is not None else None
    points = []
    for ds in dates:
        rows = [_final(entries[s].points[entries[s].step_of_iso[ds]],
                       (overrides or {}).get(s, {}).get(ds)) for s in members]
        yhat = float(sum(row[0] for row in rows))
        widths = np.array([max(upper - point, 0.0) for point, _, upper in rows])
        width, rho = aggregate_half_width(widths, matrix)
        lower = yhat - width
        if all(low >= 0 for _, low, _ in rows):
            lower = max(lower, 0.0)
        points.append(LevelPoint(ds, yhat, lower, yhat + width, rho))
    return points


def _final(point: Any, override: Any | None) -> tuple[float, float, float]:
    """(yhat, lower, upper) of one member cell, after its override (``Override.adjust``)."""
    if override is None:
        return point.yhat, point.yhat_lower, point.yhat_upper
    return override.adjust(point.yhat, point.yhat_lower, point.yhat_upper)


def level_cells(entries: Mapping[str, SeriesForecast], members: list[str],
                dates: list[str]) -> list[Cell]:
    """The member cells a level answer is made of (what the prediction log keeps)."""
    return [(s, entries[s].step_of_iso[ds]) for s in members for ds in dates]


def level_json(level: Mapping[str, str], members: list[str], points: list[LevelPoint],
               correlation: ErrorCorrelation | None, nominal: float | None) -> dict[str, Any]:
    """The level-specific part of the /v1/forecast answer."""
    rhos = [p.correlation for p in points]
    interval = {
        "method": CORRELATED if correlation is not None else INDEPENDENT,
        "nominal_level": nominal,
        "correlation": round(float(np.mean(rhos)), 4) if rhos else None,
    }
    forecasts = [{"ds": p.ds, "yhat": finite_or_none(p.yhat),
                  "yhat_lower": finite_or_none(p.yhat_lower),
                  "yhat_upper": finite_or_none(p.yhat_upper),
                  "correlation": round(p.correlation, 4)} for p in points]
    return {"level": dict(level), "n_series": len(members), "series_ids": members,
            "interval": interval, "forecasts": forecasts}


def level_body(request_id: str, champion: Champion, part: dict[str, Any], origins: str) -> bytes:
    """The whole /v1/forecast answer of a level request."""
    head = '{"request_id":' + json.dumps(request_id) + ',"model":' + champion.model_json
    rest = json.dumps(part, separators=COMPACT)[1:-1]
    return (head + "," + rest + ',"origins":' + origins + ',"errors":[]}').encode()
