"""The champion's no-scenario forecast of every series, computed once and served from memory.

Without scenario values a forecast depends only on the model and its origin (the last
period it was trained on), so the champion predicts every (series, forecastable period)
once when it loads; requests without a scenario are answered by looking rows up here,
already JSON-encoded, with no pandas and no model call on the request path.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import NamedTuple

import pandas as pd

from serving.encoding import features_json, forecast_point_json, mlflow_record_json
from serving.prediction_log import LogRow

FREQ_NAMES = {"W": "weekly", "D": "daily", "M": "monthly"}


def horizon_dates(last_ds: date, freq: str, horizon: int) -> list[pd.Timestamp]:
    """The ``horizon`` periods after the origin ``last_ds``: the forecastable ``ds``.

    W adds whole weeks and D whole days to the origin (the weekday of the origin is kept);
    M adds months, staying on month ends when the origin is a month end.
    """
    origin = pd.Timestamp(last_ds)
    steps = range(1, horizon + 1)
    if freq == "W":
        return [origin + pd.Timedelta(weeks=k) for k in steps]
    if freq == "D":
        return [origin + pd.Timedelta(days=k) for k in steps]
    if freq == "M" and origin.is_month_end:
        return [origin + pd.offsets.MonthEnd(k) for k in steps]
    if freq == "M":
        return [origin + pd.DateOffset(months=k) for k in steps]
    raise ValueError(f"unknown frequency {freq!r}; expected W, D or M")


class TablePoint(NamedTuple):
    """One precomputed forecast row and its encodings."""

    ds: str  # ISO date
    yhat: float
    yhat_lower: float
    yhat_upper: float
    point_json: str  # as in /v1/forecast
    mlflow_json: str  # as in /invocations (MLflow scoring-server record)
    features_json: str | None  # what the model used (stored once per model version)
    log_row: LogRow  # the prediction-log row, features left to the baseline table


# (series_id, step index 0..horizon-1): one cell of the forecast grid
Cell = tuple[str, int]


@dataclass(frozen=True)
class ForecastTable:
    """Series id -> its forecast for each forecastable date (index = horizon step - 1)."""

    dates: tuple[str, ...]
    points: dict[str, tuple[TablePoint, ...]]
    date_index: dict[str, int] = field(init=False)  # ISO date -> step index
    step_of_date: dict[date, int] = field(init=False)  # date -> step index

    def __post_init__(self) -> None:
        object.__setattr__(self, "date_index", {ds: i for i, ds in enumerate(self.dates)})
        steps = {date.fromisoformat(ds): i for i, ds in enumerate(self.dates)}
        object.__setattr__(self, "step_of_date", steps)

    def point(self, cell: Cell) -> TablePoint:
        return self.points[cell[0]][cell[1]]

    def log_rows(self, cells: Iterable[Cell]) -> Iterator[LogRow]:
        """Prediction-log rows of ``cells`` (lazy: expanded by the log's writer thread).

        Their features are not repeated on every row: they are the baseline features the
        store keeps once per model version (see :meth:`baseline_features`).
        """
        points = self.points
        for series_id, step in cells:
            yield points[series_id][step].log_row

    def baseline_features(self) -> Iterator[tuple[str, str, str | None]]:
        """(series_id, ISO ds, features JSON) of every cell, for the prediction store."""
        for series_id, points in self.points.items():
            for p in points:
                yield series_id, p.ds, p.features_json


def build_forecast_table(
    forecast: pd.DataFrame, features: pd.DataFrame | None, dates: Sequence[str]
) -> ForecastTable:
    """Index the model's forecast of the full grid by series and step.

    ``forecast`` has series_id, ds, yhat, yhat_lower, yhat_upper (and maybe more columns,
    kept in the MLflow record); ``features`` is row-aligned with it, or None.
    """
    iso = pd.to_datetime(forecast["ds"]).dt.strftime("%Y-%m-%d").tolist()
    records = forecast.to_dict(orient="records")
    feature_rows = _feature_records(features, len(records))
    step_of = {ds: i for i, ds in enumerate(dates)}
    grid: dict[str, list[TablePoint | None]] = {}
    for ds, record, used in zip(iso, records, feature_rows, strict=True):
        series_id = str(record["series_id"])
        if ds not in step_of:
            raise ValueError(f"the model forecast {series_id!r} at {ds}, not a horizon date")
        row = grid.setdefault(series_id, [None] * len(dates))
        row[step_of[ds]] = _table_point(series_id, ds, record, used)
    missing = [(s, dates[i]) for s, row in grid.items() for i, p in enumerate(row) if p is None]
    if missing:
        raise ValueError(f"the model did not forecast {missing[:5]} (and {len(missing)} in all)")
    points = {s: tuple(p for p in row if p is not None) for s, row in grid.items()}
    return ForecastTable(dates=tuple(dates), points=points)


def _table_point(series_id: str, ds: str, record: dict, used: dict) -> TablePoint:
    values = tuple(float(record[c]) for c in ("yhat", "yhat_lower", "yhat_upper"))
    return TablePoint(
        ds,
        *values,
        point_json=forecast_point_json(series_id, ds, *values),
        mlflow_json=mlflow_record_json(record),
        features_json=features_json(used),
        log_row=(series_id, ds, *values, None),
    )


def _feature_records(features: pd.DataFrame | None, n_rows: int) -> list[dict]:
    """Feature values per forecast row (without series_id / ds); empty dicts if unknown."""
    if features is None or len(features) != n_rows:
        return [{} for _ in range(n_rows)]
    return features.drop(columns=["series_id", "ds"], errors="ignore").to_dict(orient="records")
