"""Accuracy at every key level (total, each key column, the series), and of new series apart.

Why it exists: a planner judges the store total, not each store x category series, and a
roll-up is more accurate than its parts (their errors partly cancel). The per-key tables
of :mod:`serving.monitoring.accuracy` sum the *absolute* series errors of a key value;
here forecasts and actuals are **summed to the level first** (per level value and
``ds``), then compared:

    Y_g,ds = sum_{i in g} y_i,  F_g,ds = sum_{i in g} yhat_i
    WAPE_level = sum_{g, ds} |F_g,ds - Y_g,ds| / sum_{g, ds} |Y_g,ds|
    bias_level = sum (yhat - y) / sum y   (the same at every level: sums commute)

Levels: ``total`` (one group), each key column (``store``, ``category``: its values), and
``series_id``. Only rows with an actual are summed, so a roll-up compares the forecast
and the actual of the same series. Pure functions on the joined forecast/actual frame
(``series_id``, ``ds``, ``yhat``, ``y`` and the key columns), reused by the review report.

New series (cold start, :mod:`serving.cold_start`) are forecast from their siblings, not
by the model: :func:`cold_start_accuracy` reports them apart from the model's series (a
``cold_start`` column marks them), so they neither hide nor inflate the model's accuracy.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

TOTAL = "total"
SERIES = "series_id"
LEVEL_COLUMNS = ["level", "n_groups", "n", "forecast", "actual", "wape", "bias"]


def _with_actuals(frame: pd.DataFrame) -> pd.DataFrame:
    data = frame.dropna(subset=["yhat", "y"])
    return data.assign(ds=pd.to_datetime(data["ds"]))


def rolled_up(frame: pd.DataFrame, by: Sequence[str]) -> pd.DataFrame:
    """Forecast and actual summed per level value (``by``; none = the total) and ds, with
    the number of series summed."""
    data = _with_actuals(frame)
    groups = data.groupby([*by, "ds"], observed=True, sort=True)
    sums = groups[["yhat", "y"]].sum()
    return sums.assign(n_series=groups["series_id"].nunique()).reset_index()


def _scores(rolled: pd.DataFrame) -> dict[str, float]:
    actual = float(rolled["y"].sum())
    absolute = float(rolled["y"].abs().sum())
    error = rolled["yhat"] - rolled["y"]
    return {
        "n": len(rolled), "forecast": float(rolled["yhat"].sum()), "actual": actual,
        "wape": float(error.abs().sum()) / absolute if absolute else np.nan,
        "bias": float(error.sum()) / actual if actual else np.nan,
    }


def level_summary(frame: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    """One row per level (total, each key in ``keys`` present in ``frame``, series_id):
    groups, rolled-up rows, forecast, actual, WAPE and bias of the roll-ups."""
    rows = []
    for name, by in _levels(frame, keys):
        rolled = rolled_up(frame, by)
        groups = rolled[by].drop_duplicates().shape[0] if by else 1
        rows.append({"level": name, "n_groups": groups, **_scores(rolled)})
    return pd.DataFrame(rows, columns=LEVEL_COLUMNS)


def level_groups(frame: pd.DataFrame, key: str) -> pd.DataFrame:
    """Per value of ``key``: the WAPE and bias of its roll-up over the periods."""
    rolled = rolled_up(frame, [key])
    rows = [{key: value, **_scores(part)} for value, part in rolled.groupby(key, sort=True)]
    return pd.DataFrame(rows, columns=[key, "n", "forecast", "actual", "wape", "bias"])


def _levels(frame: pd.DataFrame, keys: Sequence[str]) -> list[tuple[str, list[str]]]:
    present = [k for k in keys if k in frame.columns and k != SERIES]
    return [(TOTAL, []), *((k, [k]) for k in present), (SERIES, [SERIES])]


def cold_start_accuracy(frame: pd.DataFrame) -> pd.DataFrame | None:
    """WAPE and bias of the model's series and of the cold-start series, apart (rows
    ``model`` and ``cold_start``); None when the frame has no ``cold_start`` column."""
    if "cold_start" not in frame.columns:
        return None
    data = _with_actuals(frame)
    flag = data["cold_start"].fillna(False).astype(bool)
    rows = []
    for name, part in (("model", data[~flag]), ("cold_start", data[flag])):
        rows.append({"forecasts": name, "n_series": part["series_id"].nunique(),
                     **_scores(part)})
    return pd.DataFrame(rows)
