"""Forecast value added (FVA): did each step of the forecast process make it better?

The review compares, on the forecasts whose actuals arrived, three versions of each
forecast: the **naive** one (what you get for free), the **model**'s and the **final** one
(the model's number after people's overrides, :mod:`serving.overrides`). For each:
WAPE = sum |f - y| / sum |y| and bias = sum (f - y) / sum y (positive = over-forecast),
as in :mod:`serving.monitoring.accuracy`. The value added by a step is the WAPE it
removed, so **positive means the step helped**:

* ``fva_model``    = WAPE_naive - WAPE_model  (the model vs the seasonal naive)
* ``fva_override`` = WAPE_model - WAPE_final  (people's overrides vs the model)
* ``fva_total``    = WAPE_naive - WAPE_final

Tables: overall, the overridden forecasts alone, by author and by reason (overridden
forecasts: whose adjustments added value or noise), and by segment (every forecast of
each value of a series key column, and of ``segment`` when the series have one).

**The naive forecast is computed from the actuals in the store**, not read from the
log: the API serves the champion only, so no naive forecast is logged. It is the
seasonal naive at the forecast's own origin: the actual of the same series
``season_length`` periods before ``ds`` (52 weeks, 7 days, 12 months:
``features.calendar.SEASON_LENGTHS``). For forecasts up to a season ahead that value was
known at the origin, so it is exactly what a seasonal-naive forecaster would have said.
The store only holds actuals posted after the model's training, so during the first
season most forecasts have no naive value: naive figures (and ``fva_model``,
``fva_total``) are computed on the ``n_naive`` forecasts that have one - the model's
WAPE is recomputed on those same rows for the difference - and are null when none has.

Pure functions: frames in, frames and dicts out; no store, no MLflow.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from features.calendar import SEASON_LENGTHS, period_numbers

NO_OVERRIDE = "(no override)"
STAGES = ("naive", "model", "final")
TABLE_COLUMNS = ["n", "n_overridden", "n_naive", "actual", "wape_naive", "wape_model",
                 "wape_final", "bias_naive", "bias_model", "bias_final", "fva_model",
                 "fva_override", "fva_total"]
_SUMS = ["n", "n_overridden", "n_naive", "y", "abs_y", "abs_model", "err_model",
         "abs_final", "err_final", "y_n", "abs_y_n", "abs_naive", "err_naive",
         "abs_model_n", "abs_final_n"]


def seasonal_naive(forecasts: pd.DataFrame, actuals: pd.DataFrame, freq: str,
                   season_length: int | None = None) -> pd.Series:
    """Per forecast row (series_id, ds): the actual ``season_length`` periods earlier
    (NaN when the store has none), aligned with ``forecasts``' index."""
    season = season_length or SEASON_LENGTHS[freq]
    if actuals.empty or forecasts.empty:
        return pd.Series(np.nan, index=forecasts.index, dtype=float)
    known = pd.Series(actuals["y"].to_numpy(dtype=float), index=pd.MultiIndex.from_arrays(
        [actuals["series_id"].astype(str), period_numbers(pd.to_datetime(actuals["ds"]), freq)]))
    known = known[~known.index.duplicated(keep="last")]
    wanted = pd.MultiIndex.from_arrays([forecasts["series_id"].astype(str),
                                        period_numbers(pd.to_datetime(forecasts["ds"]), freq)
                                        - season])
    return pd.Series(known.reindex(wanted).to_numpy(), index=forecasts.index, dtype=float)


def fva_frame(joined: pd.DataFrame, actuals: pd.DataFrame, overrides: pd.DataFrame,
              freq: str | None, season_length: int | None = None) -> pd.DataFrame:
    """One row per forecast with its actual: the columns of ``joined`` (series_id, ds,
    y, yhat = the model's, optional yhat_final / override_id, key columns) plus
    ``model``, ``final``, ``naive`` (NaN without ``freq``), ``author`` and ``reason``
    (:data:`NO_OVERRIDE` where none applied)."""
    frame = joined.reset_index(drop=True)
    model = frame["yhat"].astype(float)
    final = pd.to_numeric(frame.get("yhat_final"), errors="coerce") if "yhat_final" in frame \
        else pd.Series(np.nan, index=frame.index)
    ids = pd.to_numeric(frame.get("override_id"), errors="coerce") if "override_id" in frame \
        else pd.Series(np.nan, index=frame.index)
    overridden = final.notna() & ids.notna()
    naive = (seasonal_naive(frame, actuals, freq, season_length) if freq is not None
             else pd.Series(np.nan, index=frame.index))
    who = _authorship(ids.where(overridden), overrides)
    return frame.assign(model=model, final=final.where(overridden, model),
                        override_id=ids.where(overridden), naive=naive, **who)


def _authorship(ids: pd.Series, overrides: pd.DataFrame) -> dict[str, pd.Series]:
    """``author`` and ``reason`` of each row's override id (NO_OVERRIDE where NaN)."""
    out = {}
    table = overrides.astype({"id": float}).set_index("id") if not overrides.empty else None
    for column in ("author", "reason"):
        found = ids.map(table[column]) if table is not None else pd.Series(np.nan, index=ids.index)
        unknown = ids.notna() & found.isna()
        out[column] = found.where(~unknown, "(unknown)").fillna(NO_OVERRIDE).astype(str)
    return out


def _row_terms(frame: pd.DataFrame) -> pd.DataFrame:
    """Per row, the sums' terms (naive ones zero where the row has no naive value)."""
    y, model, final, naive = (frame[c].astype(float) for c in ("y", "model", "final", "naive"))
    has_naive = naive.notna()
    only = has_naive.astype(float)
    return pd.DataFrame({
        "n": 1.0, "n_overridden": frame["override_id"].notna().astype(float),
        "n_naive": only, "y": y, "abs_y": y.abs(), "abs_model": (model - y).abs(),
        "err_model": model - y, "abs_final": (final - y).abs(), "err_final": final - y,
        "y_n": y * only, "abs_y_n": y.abs() * only,
        "abs_naive": (naive - y).abs().fillna(0.0), "err_naive": (naive - y).fillna(0.0),
        "abs_model_n": (model - y).abs() * only, "abs_final_n": (final - y).abs() * only,
    }, index=frame.index)


def _ratio(top: pd.Series, bottom: pd.Series) -> pd.Series:
    return top / bottom.where(bottom != 0)


def _metrics(sums: pd.DataFrame) -> pd.DataFrame:
    """WAPE, bias and FVA of each stage from per-group sums (see the module docstring)."""
    wape_model_n = _ratio(sums["abs_model_n"], sums["abs_y_n"])
    wape_final_n = _ratio(sums["abs_final_n"], sums["abs_y_n"])
    table = pd.DataFrame({
        "n": sums["n"], "n_overridden": sums["n_overridden"], "n_naive": sums["n_naive"],
        "actual": sums["y"], "wape_naive": _ratio(sums["abs_naive"], sums["abs_y_n"]),
        "wape_model": _ratio(sums["abs_model"], sums["abs_y"]),
        "wape_final": _ratio(sums["abs_final"], sums["abs_y"]),
        "bias_naive": _ratio(sums["err_naive"], sums["y_n"]),
        "bias_model": _ratio(sums["err_model"], sums["y"]),
        "bias_final": _ratio(sums["err_final"], sums["y"]),
    })
    return table.assign(fva_model=table["wape_naive"] - wape_model_n,
                        fva_override=table["wape_model"] - table["wape_final"],
                        fva_total=table["wape_naive"] - wape_final_n)


def fva_table(frame: pd.DataFrame, by: str | None = None) -> pd.DataFrame:
    """:data:`TABLE_COLUMNS` of a :func:`fva_frame` frame: one row (``by`` None) or one
    per value of ``by``; counts as int."""
    terms = _row_terms(frame)
    if by is None:
        table = _metrics(terms.sum().to_frame().T)
    else:
        table = _metrics(terms.groupby(frame[by].astype(str), sort=True).sum())
        table = table.rename_axis(by).reset_index()
    counts = {c: table[c].astype(int) for c in ("n", "n_overridden", "n_naive")}
    return table.assign(**counts).reset_index(drop=True)


@dataclass(frozen=True)
class FvaReport:
    """The forecast value added of one review (see the module docstring)."""

    summary: str
    season_length: int | None
    naive_basis: str
    n_overrides: int  # distinct overrides among the forecasts with actuals
    overall: dict[str, float]
    overridden: dict[str, float] | None
    by_author: pd.DataFrame = field(default_factory=pd.DataFrame)
    by_reason: pd.DataFrame = field(default_factory=pd.DataFrame)
    by_key: dict[str, pd.DataFrame] = field(default_factory=dict)
    by_segment: pd.DataFrame | None = None


def _as_dict(table: pd.DataFrame) -> dict[str, float]:
    return {k: float(v) for k, v in table.iloc[0].items()}


def _pct(value: float) -> str:
    return "n/a" if pd.isna(value) else f"{value:.3f}"


def describe(overall: dict[str, float], overridden: dict[str, float] | None) -> str:
    """Two sentences for people: what overrides did, what the model did over naive."""
    if overridden is None:
        people = "No served forecast with an actual was overridden."
    else:
        verdict = "added value" if overridden["fva_override"] > 0 else (
            "added noise" if overridden["fva_override"] < 0 else "changed nothing")
        people = (f"Overrides changed {int(overridden['n']):,} of {int(overall['n']):,} "
                  f"forecasts with actuals: on them WAPE went from "
                  f"{_pct(overridden['wape_model'])} (model) to "
                  f"{_pct(overridden['wape_final'])} (final), they {verdict}.")
    if not overall["n_naive"]:
        return people + " No forecast has a seasonal-naive value yet (no actual a season " \
                        "before): no comparison with naive."
    return people + (f" On the {int(overall['n_naive']):,} forecasts with a seasonal-naive "
                     f"value, the model's value added over naive is "
                     f"{overall['fva_model']:+.3f} WAPE.")


def forecast_value_added(frame: pd.DataFrame, keys: Sequence[str] = (),
                         season_length: int | None = None) -> FvaReport:
    """Every FVA table of a :func:`fva_frame` frame (which must not be empty)."""
    overall = _as_dict(fva_table(frame))
    touched = frame[frame["override_id"].notna()]
    overridden = _as_dict(fva_table(touched)) if not touched.empty else None
    basis = (f"y of the same series {season_length} periods before ds (store actuals)"
             if season_length else "none: the frequency is unknown")
    return FvaReport(
        summary=describe(overall, overridden), season_length=season_length,
        naive_basis=basis, n_overrides=int(touched["override_id"].nunique()),
        overall=overall, overridden=overridden,
        by_author=fva_table(touched, "author"), by_reason=fva_table(touched, "reason"),
        by_key={k: fva_table(frame, k) for k in keys if k in frame.columns},
        by_segment=fva_table(frame, "segment") if "segment" in frame.columns else None,
    )
