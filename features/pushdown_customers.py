"""Customer covariates of lines that stay in the warehouse, read in time slices.

The definitions are :mod:`features.customers`' (its module docstring). What needs care at a
hundred million lines is that ``cust_active`` counts *distinct* customers per (series,
period) and the RFM segment of a period depends on every purchase before it: neither sums
up from cells. A GROUP BY (series, period, customer) in DuckDB has nearly as many groups as
lines (measured: ~55 CPU-s and 5.6 GB at 100 M lines). So the lines come back instead, as
four numbers each (series row, day, the stored customer id's hash, positive revenue), a
slice of whole periods at a time (``SLICE_LINES`` lines), and numpy does per slice what
:mod:`features.customers` does for all lines: a (day x customer) mark gives each customer's
purchase days per period, sorted (cell, customer) keys the distinct customers per cell, and
the RFM history — purchase days and last purchase before the slice — is carried from one
slice to the next. A slice's WHERE is a range of the date column, so DuckDB reads only the
row groups of those periods when the export is in date order (as exports are); the next
slice is read in a second thread while this one is counted. Money is counted in integer
micro-units, so its float sums do not depend on the order the lines come in.

Customers are coded by a dictionary pass: each distinct stored id is cleaned as in memory
(:func:`features.validation.as_text`) and gets a code; pandas' hash index maps each line's
id hash to it (a DuckDB join of the same table cost more CPU, on the same two cores). The
series come from the table ``sc_series`` joined in DuckDB. The monetary score is not
computed: it does not enter the segments.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import pairwise
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from features.aggregate import LineCodes, grid_frame
from features.calendar import first_days, period_numbers_of_days
from features.customers import (
    RFM_SEGMENTS,
    _column_name,
    _exclusive,
    _first_of_runs,
    crm_segment_codes,
    quantile_scores,
    rfm_segments,
)
from features.pushdown_sql import VIEW, Warehouse
from features.validation import as_text

if TYPE_CHECKING:
    import duckdb

    from features.pushdown_load import WarehouseSales

log = logging.getLogger(__name__)

SLICE_LINES = 4_000_000  # lines read and counted at a time (~0.2 GB of numpy arrays)
MICRO = 1e6  # money units per revenue unit in the slices


@dataclass(frozen=True)
class CustomerResult:
    """Covariates per (series_id, ds) (None: not asked or no ids) and each series' dominant
    CRM segment (None without CRM segments)."""

    covariates: pd.DataFrame | None = None
    segment: pd.Series | None = None


def customer_pass(warehouse: Warehouse, sales: WarehouseSales, codes: LineCodes,
                  customers: pd.DataFrame | None, positive: np.ndarray,
                  quantiles: int | None) -> CustomerResult:
    """Covariates (``quantiles`` given: the spec's RFM quantiles) and dominant segments.

    ``positive``: each grid cell's positive revenue over all its lines (the shares'
    denominator, anonymous lines included)."""
    if not sales.view.has("customer_id"):
        return CustomerResult()
    stored, ids = _distinct_ids(warehouse)
    crm = crm_segment_codes(customers, ids)
    if not len(ids):
        if quantiles is not None:
            log.info("no customer ids in the sales: customer features skipped")
        none = pd.Series([None] * codes.n_series, dtype="str")
        return CustomerResult(segment=none if crm is not None else None)
    if quantiles is None and crm is None:
        return CustomerResult()
    _store_series(warehouse, sales, codes)
    counter = _Counter(codes, _Customers.of(stored, len(ids), crm), quantiles)
    for lines in _slices(warehouse, sales, codes):
        counter.add(lines)
    segment = counter.dominant_segment() if crm is not None else None
    covariates = counter.covariates(positive) if quantiles is not None else None
    return CustomerResult(covariates, segment)


def _distinct_ids(warehouse: Warehouse) -> tuple[pd.DataFrame, np.ndarray]:
    """Stored id's hash -> customer code (ids that clean to nothing left out), and the
    cleaned ids by code. One pass over the lines: their distinct stored ids."""
    stored = warehouse.frame(
        f"SELECT id, hash(id) AS h FROM (SELECT DISTINCT _sc_customer AS id FROM {VIEW} "
        "WHERE _sc_customer IS NOT NULL) ORDER BY h")
    if not stored["h"].is_unique:
        raise RuntimeError("two stored customer ids share a hash; use engine: pandas")
    code, ids = pd.factorize(as_text(stored["id"]).to_numpy())
    table = pd.DataFrame({"h": stored["h"].to_numpy(dtype=np.uint64),
                          "code": code.astype(np.int32)})
    return table[code >= 0], np.asarray(ids, dtype=object).astype(str)


def _store_series(warehouse: Warehouse, sales: WarehouseSales, codes: LineCodes) -> None:
    """The table ``sc_series``: stored keys' hash -> row of ``codes.series_table``."""
    keys = list(sales.view.keys)
    table = sales.series_keys
    ids = table[keys[0]].str.cat([table[key] for key in keys[1:]], sep="|")
    position = pd.Index(codes.series_table["series_id"]).get_indexer(ids)
    _store(warehouse, "sc_series", pd.DataFrame({
        "h": table["key_hash"].to_numpy(dtype=np.uint64), "series": position.astype(np.int32)
    })[position >= 0])


def _store(warehouse: Warehouse, name: str, frame: pd.DataFrame) -> None:
    """A small table in the warehouse's own database (every cursor sees it)."""
    connection = warehouse.connection
    connection.register("sc_frame", frame)
    connection.execute(f"CREATE OR REPLACE TABLE memory.main.{name} AS SELECT * FROM sc_frame")
    connection.unregister("sc_frame")


# --- reading slices ------------------------------------------------------------------


@dataclass(frozen=True)
class _Customers:
    """Stored id's hash -> customer code (ids that clean to nothing are not in it) and
    each code's CRM segment (-1: none). pandas' hash index maps a slice's 4 M hashes in
    a tenth of a second, less than the same join costs in DuckDB."""

    hashes: pd.Index
    code: np.ndarray
    crm: np.ndarray
    crm_names: list[str]

    @classmethod
    def of(cls, stored: pd.DataFrame, n_customers: int,
           crm: tuple[np.ndarray, list[str]] | None) -> _Customers:
        crm_codes = crm[0] if crm is not None else np.full(n_customers, -1, dtype=np.int64)
        return cls(pd.Index(stored["h"].to_numpy(dtype=np.uint64)),
                   stored["code"].to_numpy(dtype=np.int64), crm_codes,
                   crm[1] if crm is not None else [])

    def __len__(self) -> int:
        return len(self.crm)


@dataclass(frozen=True)
class _Slice:
    """The lines with a customer id of periods ``lo``..``hi`` (indices of
    ``codes.numbers``; ``first_day`` and ``span`` days): series row, day - first_day,
    stored customer id's hash, positive revenue in micro-units (integers: float sums of
    them are exact, so they do not depend on the order the lines come in)."""

    lo: int
    hi: int
    first_day: int
    span: int
    series: np.ndarray
    day: np.ndarray
    customer: np.ndarray
    positive: np.ndarray

    @property
    def n_periods(self) -> int:
        return self.hi - self.lo


def slice_plan(lines_per_period: np.ndarray, limit: int = SLICE_LINES) -> list[tuple[int, int]]:
    """Consecutive period ranges [lo, hi) of at most ``limit`` lines (one period at least)."""
    plan, lo, total = [], 0, 0
    for period, lines in enumerate(lines_per_period.tolist()):
        if total and total + lines > limit:
            plan.append((lo, period))
            lo, total = period, 0
        total += lines
    return [*plan, (lo, len(lines_per_period))]


def _slices(warehouse: Warehouse, sales: WarehouseSales, codes: LineCodes) -> Iterator[_Slice]:
    """The slices in time order; the next one is read while the caller counts this one."""
    lines = sales.daily.assign(number=period_numbers_of_days(sales.daily["day"].to_numpy(),
                                                             codes.freq))
    per_period = lines.groupby("number")["lines"].sum().reindex(codes.numbers, fill_value=0)
    plan = slice_plan(per_period.to_numpy())
    cursor = warehouse.cursor()
    try:
        with ThreadPoolExecutor(max_workers=1) as reader:
            pending = reader.submit(_read_slice, cursor, sales, codes, *plan[0])
            for lo, hi in plan[1:]:
                ready = pending.result()
                pending = reader.submit(_read_slice, cursor, sales, codes, lo, hi)
                yield ready
            yield pending.result()
    finally:
        cursor.close()


def _read_slice(cursor: duckdb.DuckDBPyConnection, sales: WarehouseSales, codes: LineCodes,
                lo: int, hi: int) -> _Slice:
    """One slice's lines: a range of the date column (row groups outside it are skipped)."""
    view = sales.view
    first, stop = (int(day) for day in first_days(codes.numbers[[lo, hi - 1]] + [0, 1],
                                                  codes.freq))
    when = [pd.Timestamp(np.datetime64(day, "D")) for day in (first, stop)]
    where = [view.kept(), "_sc_customer IS NOT NULL",
             f"_sc_time >= {view.time_literal(when[0])}",
             f"_sc_time < {view.time_literal(when[1])}"]
    if sales.end is not None:
        where.append(f"_sc_time <= {view.time_literal(sales.end)}")
    found = cursor.execute(
        f"SELECT s.series, CAST(_sc_day - {first} AS SMALLINT) AS day, "
        f"hash(_sc_customer) AS customer, round(greatest({view.revenue}, 0) * {MICRO}) "
        f"AS positive FROM {VIEW} JOIN memory.main.sc_series s ON s.h = _sc_key_hash "
        f"WHERE {' AND '.join(where)}").fetchnumpy()
    return _Slice(lo, hi, first, stop - first, *(np.asarray(found[name]) for name in
                                                 ("series", "day", "customer", "positive")))


# --- counting ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Coded:
    """A slice's lines as codes: series row, period and day in the slice, customer code,
    and their positive revenue (micro-units)."""

    series: np.ndarray
    period: np.ndarray
    day: np.ndarray
    customer: np.ndarray
    positive: np.ndarray


class _Counter:
    """Accumulates, slice by slice, what the covariates need.

    ``money``: positive revenue in micro-units per (series, period, RFM segment + 1, CRM
    segment + 1) (index 0: none) — exact below 9e9 a group; ``active``, ``new``: distinct
    customers per (series, period)."""

    def __init__(self, codes: LineCodes, customers: _Customers, quantiles: int | None
                 ) -> None:
        self.codes, self.customers, self.quantiles = codes, customers, quantiles
        shape = (codes.n_series, codes.n_periods)
        self.groups = (len(RFM_SEGMENTS) + 1, len(customers.crm_names) + 1)
        self.money = np.zeros((*shape, *self.groups))
        self.active, self.new = np.zeros(shape), np.zeros(shape)
        self.days_before = np.zeros(len(customers), dtype=np.int64)  # purchase days so far
        self.last_before = np.full(len(customers), -1, dtype=np.int64)  # last purchase day
        self.starts = first_days(np.append(codes.numbers, codes.numbers[-1] + 1), codes.freq)

    def add(self, lines: _Slice) -> None:
        coded = self._coded(lines)
        rfm, crm = self.groups
        cell = coded.series * lines.n_periods + coded.period
        group = cell * (rfm * crm) + self.customers.crm[coded.customer] + 1
        if self.quantiles is not None:
            segments = self._segments(lines, coded)  # (slice period x customer)
            segment = segments.ravel()[coded.period * len(self.customers) + coded.customer]
            self._distinct(lines, coded.customer, cell, segment < 0)
            group += (segment.astype(np.int64) + 1) * crm
        money = np.bincount(group, weights=coded.positive,
                            minlength=self.codes.n_series * lines.n_periods * rfm * crm)
        self.money[:, lines.lo:lines.hi] += money.reshape(-1, lines.n_periods, rfm, crm)

    def _coded(self, lines: _Slice) -> _Coded:
        position = self.customers.hashes.get_indexer(lines.customer)
        known = position >= 0  # not: an id that cleans to nothing (no customer)
        series, day, positive = lines.series, lines.day, lines.positive
        if not known.all():
            series, day, positive, position = (a[known] for a in
                                               (series, day, positive, position))
        lengths = np.diff(self.starts[lines.lo:lines.hi + 1])
        period_of_day = np.repeat(np.arange(lines.n_periods), lengths)
        return _Coded(series.astype(np.int64), period_of_day[day], day.astype(np.int64),
                      self.customers.code[position], positive)

    def _segments(self, lines: _Slice, coded: _Coded) -> np.ndarray:
        """RFM segment (slice period x customer) as of each period start; the carried
        history (purchase days, last purchase day) moves to the end of the slice."""
        count, last = self._purchase_days(lines, coded)
        frequency, self.days_before = _exclusive(np.cumsum, count, self.days_before)
        latest, self.last_before = _exclusive(np.maximum.accumulate, last, self.last_before)
        return self._score(frequency, latest, lines.lo, lines.hi)

    def _purchase_days(self, lines: _Slice, coded: _Coded) -> tuple[np.ndarray, np.ndarray]:
        """Per (slice period, customer): days with a purchase and the last of them (-1)."""
        n_customers = len(self.customers)
        bought = np.zeros(lines.span * n_customers, dtype=bool)  # (day x customer)
        bought[coded.day * n_customers + coded.customer] = True
        bought = bought.reshape(lines.span, n_customers)
        bounds = self.starts[lines.lo:lines.hi + 1] - lines.first_day
        count = np.add.reduceat(bought, bounds[:-1], axis=0, dtype=np.int64)
        last = np.full(count.shape, -1, dtype=np.int64)
        for i, (start, stop) in enumerate(pairwise(bounds)):
            latest = stop - 1 - np.argmax(bought[start:stop][::-1], axis=0)
            last[i] = np.where(count[i] > 0, lines.first_day + latest, -1)
        return count, last

    def _score(self, frequency: np.ndarray, latest: np.ndarray, lo: int, hi: int
               ) -> np.ndarray:
        """features.customers._score without the monetary score (it sets no segment)."""
        assert self.quantiles is not None
        history = frequency > 0
        recency = np.where(history, self.starts[lo:hi, None] - latest, np.nan)
        frequency = np.where(history, frequency, np.nan)
        r = quantile_scores(recency, self.quantiles, higher_is_better=False)
        f = quantile_scores(frequency, self.quantiles, higher_is_better=True)
        return rfm_segments(r, f, frequency, self.quantiles)

    def _distinct(self, lines: _Slice, customer: np.ndarray, cell: np.ndarray,
                  first_time: np.ndarray) -> None:
        """cust_active and cust_new (no purchase before the period) of the slice's cells.

        Each line is one sortable integer: cell, customer and its first-time bit (the same
        for every line of a (cell, customer)); equal runs are one customer of the cell."""
        shift = max(1, (len(self.customers) - 1).bit_length()) + 1
        size = self.codes.n_series * lines.n_periods
        kind = np.int32 if size << shift < 2**31 else np.int64  # 32-bit sorts twice as fast
        visits = (cell.astype(kind) << kind(shift)) | (customer.astype(kind) << kind(1))
        visits = np.sort(visits | first_time.astype(kind))
        visits = visits[_first_of_runs(visits)]
        cell_of = visits >> kind(shift)
        active = np.bincount(cell_of, minlength=size).reshape(-1, lines.n_periods)
        new = np.bincount(cell_of, weights=visits & kind(1), minlength=size)
        self.active[:, lines.lo:lines.hi] += active
        self.new[:, lines.lo:lines.hi] += new.reshape(-1, lines.n_periods)

    def dominant_segment(self) -> pd.Series:
        """build._dominant_segment: the CRM segment with most positive revenue."""
        totals = self.money.sum(axis=(1, 2))[:, 1:]
        names = np.asarray(self.customers.crm_names, dtype=object)
        return pd.Series(np.where(totals.max(axis=1) > 0, names[np.argmax(totals, axis=1)],
                                  None), dtype="str")

    def covariates(self, positive: np.ndarray) -> pd.DataFrame:
        size = self.codes.n_series * self.codes.n_periods
        columns = {"cust_active": self.active.ravel(), "cust_new": self.new.ravel(),
                   "cust_returning": (self.active - self.new).ravel()}
        by_rfm = self.money.sum(axis=3)[:, :, 1:].reshape(size, -1) / MICRO
        columns.update(_shares(by_rfm, positive, RFM_SEGMENTS, "share_rfm_"))
        if self.customers.crm_names:
            by_crm = self.money.sum(axis=2)[:, :, 1:].reshape(size, -1) / MICRO
            columns.update(_shares(by_crm, positive, self.customers.crm_names, "share_seg_"))
        frame = grid_frame(self.codes, columns)
        return frame[["series_id", "ds", *columns]]


def _shares(by_segment: np.ndarray, positive: np.ndarray, names: tuple[str, ...] | list[str],
            prefix: str) -> dict[str, np.ndarray]:
    """features.customers._revenue_shares from the summed positive revenue."""
    shares = np.divide(by_segment, positive[:, None], out=np.zeros_like(by_segment),
                       where=positive[:, None] > 0)
    return {f"{prefix}{_column_name(name)}": shares[:, k] for k, name in enumerate(names)}
