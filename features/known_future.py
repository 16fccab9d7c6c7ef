"""Known-future covariates: values by date (and some series keys) known ahead of time.

Why this exists: besides the planned promotions and holidays of the calendar, a business
knows other things about coming periods — a store's open/closed flag, school holidays,
markdowns, a weather forecast. The spec names a table of them (``data.known_future``, any
CSV / Parquet / SQL source) and its columns (``data.known_future_columns``: ``date``, the
``keys`` it is given by — any subset of the series keys, none for chain-wide values — and
``values: {name: mean | sum | max | min}``, how the days of a period combine).

Each value becomes an exogenous column of the panel, of that name: a feature at ``ds`` for
the global families, an input the statistical family reads from
``pipeline.exog_columns``, and a scenario value of that name in the API. Future periods
take the table's rows (it may run past the sales); a period past the table's end takes the
table's newest value for the series' keys; a series the table does not cover keeps its last
value from the history.

Validation (:func:`standardize_known_future`, :func:`add_known_future`) names the file, the
column and rows: missing columns, unparseable dates, empty or non-numeric values
(``numeric``), key values no series has (``known_keys``; with ``top_series`` those rows
belong to pooled series and are dropped with a warning), repeated (date, keys) rows
(``unique_rows``) and periods of a series' history without a value (``covers_history``).
The pooled ``'__other__'`` series takes each period's mean over the table.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from features.aggregate import join_period_values
from features.calendar import day_numbers, period_numbers_of_days, period_starts
from features.config import KnownFutureColumns
from features.raw import RawData
from features.validation import (
    DataValidationError,
    as_text,
    check_unique,
    drop_rows,
    fail_rows,
    parse_dates,
    parse_numbers,
    require_columns,
    require_values,
)

log = logging.getLogger(__name__)

OTHER = "__other__"
TABLE = "known_future"


def standardize_known_future(
    frame: pd.DataFrame, columns: KnownFutureColumns, sales_keys: Mapping[str, set[str]],
    label: str, *, row_note: str, pooled: bool = False,
) -> pd.DataFrame:
    """date, the table's keys (str) and its values (float); one row per (date, keys).

    ``frame`` is indexed by the row numbers a person sees (``row_note``); ``sales_keys``
    are the key values of the sales; ``pooled``: the sales pooled small series
    (``top_series``), so an unknown key value may be a pooled one."""
    require_columns(frame, {"date": columns.date,
                            **{f"key {k}": k for k in columns.keys},
                            **{f"value {v}": v for v in columns.values}}, label)
    out = pd.DataFrame(index=frame.index)
    out["date"] = parse_dates(frame[columns.date], label, date_format=None, row_note=row_note)
    for key in columns.keys:
        text = as_text(frame[key])
        require_values(text, label, what="series key value", row_note=row_note)
        out[key] = text.astype("str")  # plain text, also from a categorical Parquet column
    for name in columns.values:
        out[name] = _numbers(frame[name], label, row_note)
    out = _known_keys(out, frame, columns.keys, sales_keys, label, row_note, pooled)
    check_unique(out, ["date", *columns.keys], label, row_note=row_note)
    return out.sort_values(["date", *columns.keys]).reset_index(drop=True)


def _numbers(values: pd.Series, label: str, row_note: str) -> pd.Series:
    """A value column as floats (booleans as 0/1); empty or text cells are an error."""
    if pd.api.types.is_bool_dtype(values):
        return values.astype("float64")
    return parse_numbers(values, label, row_note=row_note)


def _known_keys(
    out: pd.DataFrame, frame: pd.DataFrame, keys: Sequence[str],
    sales_keys: Mapping[str, set[str]], label: str, row_note: str, pooled: bool,
) -> pd.DataFrame:
    """Rows whose key values some series has: others fail (``known_keys``), or are dropped
    with a warning when small series were pooled (they may be pooled values)."""
    for key in keys:
        unknown = ~out[key].isin(sales_keys[key])
        if not unknown.any():
            continue
        if pooled:
            out = drop_rows(out, unknown, label, "known_keys", f"with a {key} no kept series "
                            "has (pooled by top_series)", row_note=row_note)
            continue
        known = ", ".join(repr(v) for v in sorted(sales_keys[key])[:8])
        fail_rows(frame[key], unknown, label, "known_keys",
                  (f"has a {key} no series has", f"have a {key} no series has"),
                  row_note=row_note, hint=f"the sales have {key} {known}")
    return out


def known_future_periods(table: pd.DataFrame, aggregates: Mapping[str, str], freq: str
                         ) -> pd.DataFrame:
    """The table at ``freq``: ds [+ keys] -> each value combined over the period's rows."""
    keys = [c for c in table.columns if c != "date" and c not in aggregates]
    numbered = table.assign(number=period_numbers_of_days(day_numbers(table["date"]), freq))
    periods = numbered.groupby(["number", *keys], as_index=False).agg(dict(aggregates))
    periods.insert(0, "ds", period_starts(periods["number"].to_numpy(), freq))
    return periods.drop(columns="number").sort_values(["ds", *keys], ignore_index=True)


def join_future_values(rows: pd.DataFrame, periods: pd.DataFrame, values: Sequence[str]
                       ) -> pd.DataFrame:
    """Future ``rows`` with the table's values of their period; a period past the table's
    end (for the row's keys) takes the table's last row, the newest value known."""
    out = join_period_values(rows, periods, list(values), overwrite=True)
    keys = [c for c in periods.columns if c not in values and c != "ds"]
    ordered = periods.sort_values("ds", kind="stable")
    last = (ordered.groupby(keys, sort=False).tail(1) if keys else ordered.tail(1))
    last = last.rename(columns={"ds": "last_ds"})
    on = rows[keys].merge(last, on=keys, how="left") if keys else \
        rows[["ds"]].merge(last, how="cross")
    past = (rows["ds"].to_numpy() > on["last_ds"].to_numpy())
    for name in values:
        newest = on[name].to_numpy(dtype=np.float64, na_value=np.nan)
        current = out[name].to_numpy(dtype=np.float64, na_value=np.nan)
        out[name] = np.where(past & ~np.isnan(newest), newest, current)
    return out


def add_known_future(base: pd.DataFrame, raw: RawData, freq: str
                     ) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """The base panel with the known-future columns, and the table at ``freq`` (None
    without a table).

    Every row of the panel needs a value (rule ``covers_history``), except those of the
    pooled ``'__other__'`` series, which take the period's mean over the table."""
    columns = raw.known_future_columns
    if raw.known_future is None or columns is None:
        return base, None
    periods = known_future_periods(raw.known_future, columns.values, freq)
    values = list(columns.values)
    out = _fill_pooled(join_period_values(base, periods, list(values), overwrite=False), periods,
                       values)
    _check_coverage(out, columns, raw.labels.get(TABLE, TABLE))
    return out, periods


def _fill_pooled(panel: pd.DataFrame, periods: pd.DataFrame, values: list[str]
                 ) -> pd.DataFrame:
    """The pooled series' missing values: each period's mean over the table."""
    pooled = panel["series_id"].astype(str).str.contains(OTHER, regex=False).to_numpy()
    if not pooled.any():
        return panel
    chain = periods.groupby("ds", as_index=False)[values].mean()
    filled = join_period_values(panel.loc[pooled, ["ds"]], chain, list(values), overwrite=False)
    for name in values:
        current = panel[name].to_numpy(dtype=np.float64, na_value=np.nan).copy()
        given = filled[name].to_numpy(dtype=np.float64)
        current[pooled] = np.where(np.isnan(current[pooled]), given, current[pooled])
        panel[name] = current
    return panel


def _check_coverage(panel: pd.DataFrame, columns: KnownFutureColumns, label: str) -> None:
    """Fail when a (series, period) of the history has no known-future value."""
    missing = panel[list(columns.values)].isna().any(axis=1)
    if not missing.any():
        return
    keys = list(columns.keys)
    rows = panel.loc[missing, [*keys, "ds"]].drop_duplicates()
    examples = [(*row[:-1], row[-1].date().isoformat()) if keys else row[-1].date().isoformat()
                for row in rows.head(5).itertuples(index=False)]
    what = f"({', '.join(keys)}, period)" if keys else "period"
    raise DataValidationError(
        label, "covers_history", f"{len(rows)} {what} of the sales history have no row",
        column=columns.date, values=examples,
        hint=f"the table needs a row in every period of each series from its first sale "
             f"(the history runs {panel['ds'].min().date()} .. {panel['ds'].max().date()})")
