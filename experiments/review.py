"""The periodic forecast review (`salescast review --period 2024-09`): one document.

Why it exists: the monitor judges the served champion for a scheduler; the review is
what a sales team reads once a month or quarter: forecast against actual at each level
it plans on, the biggest misses and where they sit, who biased the numbers, whether
people's overrides added value, and what was decided.

**Which rows.** Every forecast in the prediction store whose ``ds`` falls in the period
(a month ``2024-09`` or a quarter ``2024-Q3``, first to last day) and whose actual has
arrived; per (series_id, ds) the latest forecast logged stands for it (whatever the
model version). **The forecast is the final number** - the model's after people's
overrides (:mod:`serving.overrides`), the number the business planned on; the model's
own number appears in the forecast value added. Errors are ``forecast - actual``:
positive bias = over-forecast.

**What it holds** (the pieces come from :mod:`serving.monitoring`):

* ``levels``: forecast, actual, WAPE and bias of the roll-ups at each level (total, each
  key column, series; :func:`serving.monitoring.levels.level_summary`), and the
  cold-start series apart;
* ``deviations``: the 10 series with the largest absolute error over the period, and the
  key groups they belong to (:func:`serving.monitoring.levels.level_groups`);
* ``bias_by_segment`` (each value of each key column) and ``bias_by_author`` (the
  overridden forecasts of each author, model vs final);
* ``fva``: naive vs model vs final (:mod:`serving.monitoring.fva`);
* ``actions``: the decisions given on the command line.

Pure functions on frames, except :func:`read_period`, which reads the store.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from experiments.review_html import fva_sentence
from features.calendar import SEASON_LENGTHS
from serving.monitoring.fva import FvaReport, forecast_value_added, fva_frame
from serving.monitoring.levels import cold_start_accuracy, level_groups, level_summary
from serving.monitoring.service import latest_forecasts, mark_cold_start, with_keys
from serving.overrides import read_overrides
from serving.store import PredictionStore, join_actuals

log = logging.getLogger(__name__)

TOP_DEVIATIONS = 10
NO_ACTIONS = "none recorded"
_MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
_QUARTER = re.compile(r"^(\d{4})-Q([1-4])$", re.IGNORECASE)


class ReviewError(ValueError):
    """The review cannot be made as asked (bad period, no actuals): one line, exit 1."""


@dataclass(frozen=True)
class Period:
    """A calendar month or quarter: its label and first / last day."""

    label: str
    first: pd.Timestamp
    last: pd.Timestamp

    def contains(self, ds: pd.Series) -> pd.Series:
        days = pd.to_datetime(ds).dt.normalize()
        return (days >= self.first) & (days <= self.last)


def parse_period(text: str) -> Period:
    """``2024-09`` (a month) or ``2024-Q3`` (a quarter) -> :class:`Period`."""
    month, quarter = _MONTH.match(text.strip()), _QUARTER.match(text.strip())
    if month:
        first = pd.Timestamp(int(month[1]), int(month[2]), 1)
        return Period(f"{first:%Y-%m}", first, first + pd.offsets.MonthEnd(0))
    if quarter:
        first = pd.Timestamp(int(quarter[1]), 3 * int(quarter[2]) - 2, 1)
        return Period(f"{first.year}-Q{quarter[2]}", first, first + pd.offsets.QuarterEnd(0))
    raise ReviewError(f"period {text!r} is neither a month (YYYY-MM) nor a quarter (YYYY-Qn)")


def infer_freq(ds: pd.Series) -> str | None:
    """D / W / M from the spacing of the distinct periods (None when it cannot tell)."""
    days = pd.Series(sorted(pd.to_datetime(ds).unique())).diff().dt.days.dropna()
    if days.empty:
        return None
    step = float(days.median())
    return "D" if step == 1 else "W" if step == 7 else "M" if 28 <= step <= 31 else None


def read_period(store: PredictionStore, period: Period, keys: Sequence[str],
                freq: str | None) -> tuple[pd.DataFrame, str | None]:
    """The period's forecasts with actuals as a :func:`fva_frame` frame (``final``,
    ``model``, ``naive``, ``author``...) with the key columns and ``cold_start``, and
    the frequency used for the naive (``freq``, else inferred from the actuals);
    raises :class:`ReviewError` when none has an actual."""
    predictions = store.read_predictions()
    predictions = mark_cold_start(predictions, store.read_cold_start())
    predictions = latest_forecasts(predictions[period.contains(predictions["ds"])]
                                   .assign(model_version="any"))
    actuals = store.read_actuals()
    joined = join_actuals(predictions, actuals, latest_only=False)
    if joined.empty:
        raise ReviewError(f"no actuals for period {period.label} ({period.first:%Y-%m-%d} .. "
                          f"{period.last:%Y-%m-%d}) in the prediction store: nothing to review")
    freq = freq or infer_freq(actuals["ds"])
    frame = fva_frame(with_keys(joined, keys), actuals, read_overrides(store), freq)
    log.debug("review %s: %d forecasts with actuals (freq %s)", period.label, len(frame), freq)
    return frame, freq


def final_view(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with ``yhat`` = the final number (what the level tables compare)."""
    return frame.assign(yhat=frame["final"].astype(float))


def top_deviations(frame: pd.DataFrame, keys: Sequence[str],
                   n: int = TOP_DEVIATIONS) -> pd.DataFrame:
    """The ``n`` series with the largest sum |final - y| over the period, with their keys,
    signed error and share of the period's total absolute error."""
    data = frame.assign(error=frame["final"] - frame["y"],
                        abs_error=(frame["final"] - frame["y"]).abs())
    present = [k for k in keys if k in data.columns]
    table = data.groupby(["series_id", *present], sort=False, dropna=False).agg(
        forecast=("final", "sum"), actual=("y", "sum"), error=("error", "sum"),
        abs_error=("abs_error", "sum")).reset_index()
    total = float(data["abs_error"].sum())
    table = table.assign(share=table["abs_error"] / total if total else math.nan)
    return table.sort_values(["abs_error", "series_id"], ascending=[False, True]).head(n)


def groups_behind(frame: pd.DataFrame, top: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    """For each key column, the groups holding top-deviation series: their roll-up
    forecast, actual, WAPE, bias and how many of the top series they hold."""
    parts = []
    for key in (k for k in keys if k in top.columns):
        groups = level_groups(frame, key).rename(columns={key: "group"})
        counts = top[key].astype(str).value_counts().rename("top_series")
        groups = groups.assign(group=groups["group"].astype(str)).merge(
            counts, left_on="group", right_index=True)
        parts.append(groups.assign(level=key))
    if not parts:
        return pd.DataFrame(columns=["level", "group", "top_series", "forecast", "actual",
                                     "wape", "bias"])
    table = pd.concat(parts, ignore_index=True)
    return table[["level", "group", "top_series", "forecast", "actual", "wape", "bias"]]


def bias_by_segment(frame: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    """Forecast, actual, WAPE and bias per value of each key column (and of ``segment``)."""
    columns = [k for k in (*keys, "segment") if k in frame.columns]
    parts = [level_groups(frame, k).rename(columns={k: "group"}).assign(level=k)
             for k in columns]
    if not parts:
        return pd.DataFrame(columns=["level", "group", "forecast", "actual", "wape", "bias"])
    table = pd.concat(parts, ignore_index=True).astype({"group": str})
    return table[["level", "group", "forecast", "actual", "wape", "bias"]]


def bias_by_author(fva: FvaReport) -> pd.DataFrame:
    """Per override author: forecasts overridden, actual, bias of the model and of the
    final number on them, and the WAPE their overrides removed."""
    columns = ["author", "n_overridden", "actual", "bias_model", "bias_final", "fva_override"]
    if fva.by_author.empty:
        return pd.DataFrame(columns=columns)
    return fva.by_author[columns]


def _records(table: pd.DataFrame | None) -> list[dict[str, Any]]:
    if table is None or table.empty:
        return []
    return [{k: _plain(v) for k, v in row.items()} for row in table.to_dict("records")]


def _plain(value: Any) -> Any:
    """A JSON value: numpy scalars as Python ones, NaN as None."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def fva_tables(fva: FvaReport) -> list[dict[str, Any]]:
    """The FVA rows for people: overall, the overridden forecasts, each author, reason."""
    rows = [{"scope": "all forecasts", **fva.overall}]
    if fva.overridden is not None:
        rows.append({"scope": "overridden forecasts", **fva.overridden})
    for by, table in (("author", fva.by_author), ("reason", fva.by_reason)):
        rows += [{"scope": f"{by}: {row[by]}", **row} for row in table.to_dict("records")]
    return [{k: _plain(v) for k, v in row.items() if k not in ("author", "reason")}
            for row in rows]


def _fva_document(fva: FvaReport) -> dict[str, Any]:
    document = {"naive_basis": fva.naive_basis, "n_overrides": fva.n_overrides,
                "rows": fva_tables(fva)}
    return {"summary": fva_sentence(document), **document}


def build_review(frame: pd.DataFrame, period: Period, keys: Sequence[str],
                 actions: Sequence[str], freq: str | None = None,
                 source: str = "") -> dict[str, Any]:
    """The review document (JSON-ready) of one period's :func:`read_period` frame
    (``freq``: the frequency its seasonal naive was taken at)."""
    final = final_view(frame)
    fva = forecast_value_added(frame, [k for k in keys if k in frame.columns],
                               SEASON_LENGTHS.get(freq) if freq else None)
    top = top_deviations(frame, keys)
    cold = cold_start_accuracy(final)
    return {
        "period": {"label": period.label, "first": f"{period.first:%Y-%m-%d}",
                   "last": f"{period.last:%Y-%m-%d}"},
        "generated": datetime.now(UTC).isoformat(timespec="seconds"),
        "source": source, "keys": list(keys), "freq": freq,
        "n_forecasts": len(frame), "n_series": int(frame["series_id"].nunique()),
        "levels": _records(level_summary(final, keys)),
        "cold_start": _records(cold) if cold is not None and cold["n"].iloc[1] else [],
        "deviations": _records(top),
        "groups_behind": _records(groups_behind(final, top, keys)),
        "bias_by_segment": _records(bias_by_segment(final, keys)),
        "bias_by_author": _records(bias_by_author(fva)),
        "fva": _fva_document(fva),
        "drivers": "not computed: the review reads the store only (the champion is not "
                   "loaded); ask /v1/forecast with explain: true for a series' drivers",
        "actions": list(actions) or [NO_ACTIONS],
    }
