"""Warehouse pushdown: sales lines too many for memory are aggregated where they are stored.

Why this exists: the in-memory path reads every transaction line into pandas — ten
million lines take 1.6 GB, a hundred million do not fit a 4 GB worker. When the sales are
a Parquet folder (or glob) or a DuckDB database, DuckDB reads them in place and only
aggregates come back; the rest of the feature build (grid, gaps, calendar, lags, rolling
windows, known-future, metadata) runs unchanged on them.

When: ``engine: duckdb`` on the sales source, or ``engine: auto`` (the default) for a
Parquet folder or glob and a ``duckdb:///`` URL — the shapes a warehouse export takes. A
single Parquet file or a CSV stays on pandas unless the spec says ``engine: duckdb``.

What is pushed down, and how it stays the pandas path's result (tests/features/
test_pushdown.py compares both on the simulator's data):

* **Loading** (:func:`load_sales`, at ``load_raw``): one pass groups the lines by their
  stored keys and *day* (plus the drop flags and a text promo value) with every sum the
  panel needs, and counts each rule's bad cells. pandas then cleans each distinct key and
  flag value with the functions the in-memory path uses, raises the same
  ``DataValidationError`` (an example query fetches the first rows), logs the same drops,
  and pools small series (``top_series``). Daily cells make the load independent of the
  frequency the build asks for, and ``until(end)`` a filter on them.
* **Aggregation** (:func:`aggregate_in_warehouse`, in ``build_training_set``): daily cells
  become (series, period) cells; each cell is handed to
  :func:`features.aggregate.aggregate_with_gaps` as one line carrying its sums — for lines
  that are one per cell that function is the identity on their values, so the grid, the
  gaps, the price forward fill and the planned calendar are the in-memory path's own code.
* **Customer covariates** need distinct customers per cell and each customer's history:
  :mod:`features.pushdown_customers` reads the lines in time slices (integer codes only)
  and carries the RFM history from slice to slice.

Not pushed down (the in-memory path reads these, with a logged reason, or fails for a
folder it cannot hold): CSV files, a text date column without ``date_format`` (pandas
guesses the format), a timezone-aware or non-date column as the date, other SQL databases.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from features.aggregate import (
    LineCodes,
    _complete_periods,
    _encode_series,
    aggregate_with_gaps,
)
from features.calendar import first_days, period_numbers_of_days, period_starts
from features.config import FeatureConfig
from features.gaps import GapReport
from features.pushdown_customers import customer_pass
from features.pushdown_load import (
    SUMS,
    WarehouseSales,
    _Checks,
    daily_cells,
    load_sales,
    open_sales,
)
from features.pushdown_sql import PushdownUnsupported, Warehouse, open_source
from features.raw import RawData

log = logging.getLogger(__name__)

__all__ = ["AggregatedSales", "PushdownUnsupported", "WarehouseRawData", "WarehouseSales",
           "aggregate_in_warehouse", "load_sales", "open_sales"]


@dataclass(frozen=True)
class WarehouseRawData(RawData):
    """RawData whose lines stay in the warehouse: ``sales`` is empty (its columns only),
    ``warehouse`` says where they are; ``build_training_set`` aggregates them there."""

    warehouse: WarehouseSales | None = None

    def until(self, end: pd.Timestamp | str) -> WarehouseRawData:
        cut = pd.Timestamp(end)
        if cut == cut.normalize():  # a day, not an instant: as RawData.until
            cut = cut + pd.Timedelta(days=1) - pd.Timedelta(1, "ns")
        assert self.warehouse is not None
        known = self.warehouse.end
        cut = cut if known is None else min(cut, known)
        return replace(self, warehouse=replace(self.warehouse, end=cut))


@dataclass(frozen=True)
class AggregatedSales:
    """What the lines give the training set: the base panel and its gaps, the customer
    covariates per (series_id, ds) and the series attributes (see features.build)."""

    base: pd.DataFrame
    gaps: GapReport
    covariates: pd.DataFrame | None
    attributes: pd.DataFrame


# --- building ------------------------------------------------------------------------


def aggregate_in_warehouse(raw: WarehouseRawData, freq: str, features: FeatureConfig
                           ) -> AggregatedSales:
    """The base panel, gaps, customer covariates and series attributes of the lines in
    the warehouse (the module docstring says how each matches the in-memory path)."""
    sales = raw.warehouse
    assert sales is not None
    with open_source(sales.source) as warehouse:
        sales.view.create(warehouse)
        daily = _daily_until(warehouse, sales)
        cells = _period_cells(daily, freq)
        codes, lines = _cell_lines(cells, freq, list(raw.keys), sales.series_keys)
        log.info("warehouse: %d lines in %d (series, period) cells", int(cells["lines"].sum()),
                 len(cells))
        base, gaps = aggregate_with_gaps(
            RawData(lines, raw.keys, raw.customers, raw.calendar, raw.labels,
                    gaps=raw.gaps, gap_periods=raw.gap_periods), freq, codes)
        positive = _dense(cells, codes, "positive")
        customers = customer_pass(warehouse, sales, codes, raw.customers, positive,
                                  features.rfm_quantiles if features.customers else None)
    attributes = codes.series_table.copy()
    attributes["revenue"] = _dense(cells, codes, "revenue").reshape(codes.n_series, -1).sum(1)
    if customers.segment is not None:
        attributes["segment"] = customers.segment
    return AggregatedSales(base, gaps, customers.covariates, attributes)


def _daily_until(warehouse: Warehouse, sales: WarehouseSales) -> pd.DataFrame:
    """The daily cells up to the ``until`` cut; a cut inside a day re-reads that day."""
    daily, end = sales.daily, sales.end
    if end is None:
        return daily
    day = int(np.datetime64(end.normalize().date(), "D").astype(np.int64))
    if end == end.normalize() + pd.Timedelta(days=1) - pd.Timedelta(1, "ns"):
        return daily[daily["day"] <= day]
    time = sales.view.time_literal
    where = (f"_sc_day = {day} AND _sc_time <= {time(end)} AND {sales.view.kept()}")
    cells = daily_cells(warehouse, sales.view, where)
    if sales.view.text_promo:
        _Checks(warehouse, sales.view, sales.source.label)._check_flags(cells)
    names = sales.series_keys.set_index("key_hash")["series"]
    cells = cells.assign(series=cells["_sc_key_hash"].map(names), day=day)
    sums = [name for name in SUMS if name in daily.columns]
    partial = cells.groupby(["series", "day"], as_index=False)[sums].sum()
    return pd.concat([daily[daily["day"] < day], partial], ignore_index=True)


def _period_cells(daily: pd.DataFrame, freq: str) -> pd.DataFrame:
    """(series, period) cells: sums, and the first and last day with a line."""
    daily = daily.assign(number=period_numbers_of_days(daily["day"].to_numpy(), freq))
    sums = [name for name in SUMS if name in daily.columns]
    grouped = daily.groupby(["series", "number"], as_index=False)
    cells = grouped[sums].sum()
    cells["first_day"] = grouped["day"].min()["day"].to_numpy()
    cells["last_day"] = grouped["day"].max()["day"].to_numpy()
    return cells


def _cell_lines(cells: pd.DataFrame, freq: str, keys: list[str], series_keys: pd.DataFrame
                ) -> tuple[LineCodes, pd.DataFrame]:
    """LineCodes of the cells (one 'line' per cell) and those lines: the cell's y, its
    promo share and mean price (so aggregating them again changes nothing)."""
    names = series_keys.drop_duplicates("series").set_index("series")[keys]
    lines = names.loc[cells["series"].to_numpy()].reset_index(drop=True)
    series, table = _encode_series(lines, keys)
    first, last = int(cells["number"].min()), int(cells["number"].max())
    numbers = np.arange(first, last + 1, dtype=np.int64)
    period = (cells["number"].to_numpy() - first).astype(np.int32)
    seen = np.zeros((len(table), len(numbers)), dtype=bool)
    seen[series, period] = True
    period_level = bool(cells["lines"].max() <= 1)
    if period_level:
        log.info("every (series, period) has at most one row: period totals, none partial")
        keep = slice(0, len(numbers))
    else:
        keep = _complete_periods(int(cells["first_day"].min()), int(cells["last_day"].max()),
                                 numbers, freq)
    codes = LineCodes(freq, series, period, first_days(cells["number"].to_numpy(), freq)
                      .astype(np.int32), numbers, table, np.argmax(seen, axis=1), keep,
                      period_level=period_level)
    lines.insert(0, "date", period_starts(cells["number"].to_numpy(), freq))
    lines["y"] = cells["y"].to_numpy(dtype=np.float64)
    if "promo_on" in cells.columns:
        lines["promo"] = cells["promo_on"].to_numpy(dtype=np.float64) / cells["lines"].to_numpy()
    if "price_w" in cells.columns:
        weight = cells["price_w"].to_numpy(dtype=np.float64)
        lines["price"] = np.divide(cells["price_wx"].to_numpy(dtype=np.float64), weight,
                                   out=np.full(len(cells), np.nan), where=weight > 0)
    return codes, lines


def _dense(cells: pd.DataFrame, codes: LineCodes, column: str) -> np.ndarray:
    """A cell column as a flat (series x period) array (0 where no cell)."""
    out = np.zeros(codes.n_series * codes.n_periods)
    out[codes.cells()] = cells[column].to_numpy(dtype=np.float64)
    return out
