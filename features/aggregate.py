"""Aggregation of transaction lines to the base panel: the one place where lines become periods.

The base panel has one row per (``series_id``, ``ds``): ``series_id`` is the key values
joined by ``|`` (``"S01|C1"``), ``ds`` the period's first day (a Monday for ``W``, the 1st
for ``M``), ``y`` the sum of the lines' ``y``, the key columns (str) and the exogenous
columns the data supports:

* ``promo``: share of the period's lines sold on promotion (0..1), from the sales' promo
  flag; from the calendar's planned promotions (share of the period's days) if the sales
  have no flag;
* ``price``: revenue-weighted mean unit price (weights = |revenue|, so returns count by
  size); a period without sales keeps the last observed price;
* ``holiday``: number of holiday days in the period, from the calendar.

The grid is complete: every series has every period from its first sale to the last
period of the data, with ``y`` = 0 and ``promo`` = 0 where nothing was sold — except in
*gaps*, stretches without rows that mean missing data (an export gap, a store closed for
months): there ``y`` is NaN unless the spec says ``data.gaps: zero`` (the rule:
:mod:`features.gaps`). A leading or
trailing period that the data covers only partly (data starting on a Wednesday, or ending
on a Friday, for ``W``) is dropped with a warning: a partial period looks like a collapse
of sales exactly where backtests and forecasts start. Period-level input — at most one row
per (series, period), such as weekly totals dated each Friday or monthly totals dated the
15th — has no partial periods: every period is kept.

Lines are bucketed with integer codes (:class:`LineCodes`) and ``numpy.bincount`` on a dense
series x period grid, so ten million lines aggregate in seconds.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.calendar import (
    day_numbers,
    first_days,
    period_lengths,
    period_numbers_of_days,
    period_starts,
)
from features.gaps import GapReport, find_gaps
from features.raw import RawData

log = logging.getLogger(__name__)

_DENSE_KEY_LIMIT = 50_000_000  # largest key-combination space encoded with a lookup table


@dataclass(frozen=True)
class LineCodes:
    """Where every transaction line falls: its series, its period and its day.

    ``series`` indexes ``series_table`` (series_id + key columns, sorted by series_id);
    ``period`` indexes ``numbers`` (the period numbers from the first to the last line);
    ``day`` is the line's day number; ``first_period`` is each series' first period with a
    sale; ``keep`` the periods of the panel (partial leading/trailing periods excluded);
    ``customer`` indexes ``customer_ids`` (-1: no customer id), when the sales have them;
    ``period_level``: at most one line per (series, period) — period totals.
    """

    freq: str
    series: np.ndarray
    period: np.ndarray
    day: np.ndarray
    numbers: np.ndarray
    series_table: pd.DataFrame
    first_period: np.ndarray
    keep: slice
    customer: np.ndarray | None = None
    customer_ids: np.ndarray | None = None
    period_level: bool = False

    @property
    def n_series(self) -> int:
        return len(self.series_table)

    @property
    def n_periods(self) -> int:
        return len(self.numbers)

    def cells(self) -> np.ndarray:
        """Flat index of each line's (series, period) cell in the dense grid."""
        return self.series.astype(np.int64) * self.n_periods + self.period

    def grid_mask(self) -> np.ndarray:
        """(series x period) booleans: the cells that are rows of the panel."""
        index = np.arange(self.n_periods)
        in_keep = (index >= self.keep.start) & (index < self.keep.stop)
        return (index[None, :] >= self.first_period[:, None]) & in_keep[None, :]


def encode_lines(raw: RawData, freq: str) -> LineCodes:
    """Integer codes of the sales lines for ``freq`` (computed once, shared by builders)."""
    sales = raw.sales
    if sales.empty:
        raise ValueError("no sales lines to aggregate")
    series, table = _encode_series(sales, list(raw.keys))
    day = day_numbers(sales["date"])
    line_numbers = period_numbers_of_days(day, freq)
    first_number, last_number = int(line_numbers.min()), int(line_numbers.max())
    period = (line_numbers - first_number).astype(np.int32)
    n_periods = last_number - first_number + 1
    seen = np.bincount(series.astype(np.int64) * n_periods + period,
                       minlength=len(table) * n_periods)
    first_period = np.argmax(seen.reshape(len(table), n_periods) > 0, axis=1)
    all_numbers = np.arange(first_number, last_number + 1, dtype=np.int64)
    period_level = bool(seen.max() <= 1)  # e.g. weekly totals dated each Friday
    if period_level:
        log.info("every (series, period) has at most one row: period totals, none partial")
        keep = slice(0, len(all_numbers))
    else:
        keep = _complete_periods(int(day.min()), int(day.max()), all_numbers, freq)
    customer, customer_ids = _encode_customers(sales)
    return LineCodes(freq, series, period, day.astype(np.int32), all_numbers, table,
                     first_period, keep, customer, customer_ids, period_level)


def _encode_customers(sales: pd.DataFrame) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Customer code per line (-1 where the id is missing) and the ids (str)."""
    if "customer_id" not in sales.columns:
        return None, None
    codes, ids = _factorize(sales["customer_id"])
    return codes.astype(np.int32), ids


def _factorize(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Integer codes (-1: missing) and unique values (as str) of a text column."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        codes = values.cat.codes.to_numpy()
        uniques = values.cat.categories.astype(str).to_numpy()
    elif isinstance(values.array, pd.arrays.ArrowStringArray):
        codes, uniques = _arrow_factorize(values.array)
    else:
        codes, index = pd.factorize(values)
        uniques = pd.Index(index).astype(str).to_numpy()
    return codes.astype(np.int64), uniques


def _arrow_factorize(values: pd.arrays.ArrowStringArray) -> tuple[np.ndarray, np.ndarray]:
    """Dictionary-encode Arrow-backed text in Arrow (about 3x faster than pd.factorize)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    array = pa.array(values)
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    encoded = pc.dictionary_encode(array)
    codes = encoded.indices.fill_null(-1).to_numpy()
    return codes, encoded.dictionary.to_numpy(zero_copy_only=False).astype(str)


def _encode_series(sales: pd.DataFrame, keys: list[str]) -> tuple[np.ndarray, pd.DataFrame]:
    """Series code per line and the series table (series_id + keys) sorted by series_id."""
    combined = np.zeros(len(sales), dtype=np.int64)
    uniques: list[np.ndarray] = []
    for key in keys:
        codes, values = _factorize(sales[key])
        if (codes < 0).any():
            raise ValueError(f"sales column {key!r} has missing values; every line needs its keys")
        combined = combined * len(values) + codes
        uniques.append(values)
    space = int(np.prod([len(u) for u in uniques])) if uniques else 1
    if space <= _DENSE_KEY_LIMIT:
        present = np.flatnonzero(np.bincount(combined, minlength=space))
        lookup = np.zeros(space, dtype=np.int64)
        lookup[present] = np.arange(len(present))
        inverse = lookup[combined]
    else:
        inverse, present = pd.factorize(combined)
    table = _series_table(np.asarray(present, dtype=np.int64), uniques, keys)
    order = np.argsort(table["series_id"].to_numpy(), kind="stable")
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    table = table.iloc[order].reset_index(drop=True)
    return rank[inverse].astype(np.int32), table


def _series_table(combined: np.ndarray, uniques: list[np.ndarray], keys: list[str]) -> pd.DataFrame:
    """Decode combined key codes into key values and the ``series_id``."""
    columns: dict[str, np.ndarray] = {}
    rest = combined.copy()
    for key, values in zip(reversed(keys), reversed(uniques), strict=True):
        rest, code = np.divmod(rest, len(values))
        columns[key] = values[code]
    key_frame = pd.DataFrame({key: pd.array(columns[key], dtype="str") for key in keys})
    if keys:
        series_id = key_frame[keys[0]].str.cat([key_frame[k] for k in keys[1:]], sep="|")
    else:
        series_id = pd.Series(["total"] * len(combined), dtype="str")
    return pd.concat([series_id.rename("series_id"), key_frame], axis=1)


def _complete_periods(first_day: int, last_day: int, numbers: np.ndarray, freq: str) -> slice:
    """Slice of ``numbers`` without a partial first or last period (never empty)."""
    start, stop = 0, len(numbers)
    period_first = first_days(numbers, freq)
    if first_day > period_first[0] and stop - start > 1:
        log.warning("dropping the first period %s: the data start %d day(s) into it",
                    period_starts(numbers[:1], freq)[0].date(), first_day - period_first[0])
        start += 1
    if last_day < first_days(numbers[-1:] + 1, freq)[0] - 1 and stop - start > 1:
        log.warning("dropping the last period %s: the data end on %s, before its last day",
                    period_starts(numbers[-1:], freq)[0].date(),
                    np.datetime64(last_day, "D"))
        stop -= 1
    return slice(start, stop)


def grid_frame(codes: LineCodes, columns: dict[str, np.ndarray]) -> pd.DataFrame:
    """Panel rows (series_id, ds, keys, columns) of the grid cells, sorted by series_id, ds.

    Each value in ``columns`` is a flat array over the dense series x period grid.
    """
    mask = codes.grid_mask()
    series_index, period_index = np.nonzero(mask)
    table = codes.series_table
    frame = table.iloc[series_index].reset_index(drop=True)
    frame.insert(1, "ds", period_starts(codes.numbers[period_index], codes.freq))
    for name, values in columns.items():
        frame[name] = values.reshape(mask.shape)[mask]
    return frame


def aggregate_sales(raw: RawData, freq: str, codes: LineCodes | None = None) -> pd.DataFrame:
    """The base panel of ``raw`` at ``freq`` (see the module docstring for its columns)."""
    return aggregate_with_gaps(raw, freq, codes)[0]


def aggregate_with_gaps(raw: RawData, freq: str, codes: LineCodes | None = None
                        ) -> tuple[pd.DataFrame, GapReport]:
    """The base panel (y NaN in gaps unless ``raw.gaps`` is 'zero') and its gap report."""
    from features.validation import check_unique

    codes = codes if codes is not None else encode_lines(raw, freq)
    sales = raw.sales
    cells = codes.cells()
    size = codes.n_series * codes.n_periods
    lines = np.bincount(cells, minlength=size)
    columns = {"y": np.bincount(cells, weights=_floats(sales["y"]), minlength=size)}
    gaps = find_gaps(codes, lines, raw.gaps, raw.gap_periods)
    if raw.gaps == "missing":
        columns["y"][gaps.mask.ravel()] = np.nan
    if "promo" in sales.columns:
        on_promo = np.bincount(cells, weights=_floats(sales["promo"]), minlength=size)
        columns["promo"] = np.divide(on_promo, lines, out=np.zeros(size), where=lines > 0)
    if "price" in sales.columns:
        columns["price"] = _period_prices(sales, cells, codes)
    base = grid_frame(codes, columns)
    planned = planned_calendar(raw.calendar, freq, raw.keys)
    if planned is not None:
        base = join_planned(base, planned, overwrite=False)
    check_unique(base, ["series_id", "ds"], raw.labels.get("sales", "sales"))
    log.info("aggregated %d lines into %d series x %d periods (%d rows)", len(sales),
             codes.n_series, codes.keep.stop - codes.keep.start, len(base))
    return base, gaps


def _floats(values: pd.Series) -> np.ndarray:
    return values.to_numpy(dtype=np.float64, na_value=0.0)


def _period_prices(sales: pd.DataFrame, cells: np.ndarray, codes: LineCodes) -> np.ndarray:
    """Revenue-weighted mean unit price per cell; cells without sales keep the last price."""
    price = sales["price"].to_numpy(dtype=np.float64, na_value=np.nan)
    if "revenue" in sales.columns:
        weight = np.abs(_floats(sales["revenue"]))
    else:
        weight = np.ones(len(price))
    weight = np.where(np.isnan(price), 0.0, weight)
    size = codes.n_series * codes.n_periods
    total = np.bincount(cells, weights=weight, minlength=size)
    weighted = np.bincount(cells, weights=np.nan_to_num(price) * weight, minlength=size)
    mean = np.divide(weighted, total, out=np.full(size, np.nan), where=total > 0)
    return forward_fill(mean.reshape(codes.n_series, codes.n_periods)).ravel()


def forward_fill(matrix: np.ndarray) -> np.ndarray:
    """Replace NaN by the last non-NaN value to its left, row by row."""
    index = np.where(np.isnan(matrix), 0, np.arange(matrix.shape[1])[None, :])
    np.maximum.accumulate(index, axis=1, out=index)
    return np.take_along_axis(matrix, index, axis=1)


def planned_calendar(calendar: pd.DataFrame | None, freq: str, keys: tuple[str, ...] | list[str]
                     ) -> pd.DataFrame | None:
    """The calendar aggregated to ``freq``: ds [+ the key columns it has] -> ``holiday``
    (number of holiday days in the period) and ``promo`` (share of the period's days with a
    planned promotion). It covers future periods too: that is what a planner knows ahead."""
    if calendar is None or calendar.empty:
        return None
    flags = [name for name in ("holiday", "promo") if name in calendar.columns]
    if not flags:
        return None
    calendar_keys = [key for key in keys if key in calendar.columns]
    daily = pd.DataFrame({"day": day_numbers(calendar["date"])})
    for key in calendar_keys:
        daily[key] = calendar[key].astype("str").to_numpy()
    for name in flags:
        daily[name] = (calendar[name].to_numpy(dtype=np.float64, na_value=0.0) > 0).astype(float)
    daily = daily.groupby(["day", *calendar_keys], sort=False, as_index=False)[flags].max()
    daily["number"] = period_numbers_of_days(daily["day"].to_numpy(), freq)
    planned = daily.groupby(["number", *calendar_keys], as_index=False)[flags].sum()
    if "promo" in flags:
        planned["promo"] = planned["promo"] / period_lengths(planned["number"].to_numpy(), freq)
    planned.insert(0, "ds", period_starts(planned["number"].to_numpy(), freq))
    return planned.drop(columns="number").sort_values(["ds", *calendar_keys], ignore_index=True)


def join_planned(frame: pd.DataFrame, planned: pd.DataFrame, overwrite: bool) -> pd.DataFrame:
    """Add the planned ``holiday``/``promo`` of each row's period (0 where not planned).

    A column already in ``frame`` is kept unless ``overwrite`` (then planned values replace
    it where the calendar has the period)."""
    flags = [c for c in ("holiday", "promo") if c in planned.columns]
    return join_period_values(frame, planned, flags, overwrite, fill=0.0)


def join_period_values(frame: pd.DataFrame, periods: pd.DataFrame, values: list[str],
                       overwrite: bool, fill: float = np.nan) -> pd.DataFrame:
    """``frame`` with the ``values`` of a period table (ds [+ key columns] -> values) joined
    on its other columns. A new column takes ``fill`` where the table has no row; one
    already in ``frame`` is kept, or with ``overwrite`` replaced where the table has a
    value. The one join of the planned calendar and the known-future table."""
    on = [c for c in periods.columns if c not in values]
    names = [c for c in values if overwrite or c not in frame.columns]
    if not names:
        return frame
    joined = frame[on].merge(periods[[*on, *names]], on=on, how="left")
    out = frame.copy()
    for name in names:
        given = joined[name].to_numpy(dtype=np.float64, na_value=np.nan)
        if name in out.columns:
            current = out[name].to_numpy(dtype=np.float64, na_value=np.nan)
            out[name] = np.where(np.isnan(given), current, given)
        else:
            out[name] = np.where(np.isnan(given), fill, given)
    return out
