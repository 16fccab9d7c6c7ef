"""Customer covariates per series and period, and the RFM segmentation of customers.

Per (series_id, ds), from the transaction lines that carry a customer id:

* ``cust_active``: distinct customers who bought in the series in the period;
* ``cust_new``: those of them whose first purchase ever (in any series) falls in the period;
* ``cust_returning`` = active - new;
* ``share_seg_<segment>``: share of the period's revenue bought by customers of each CRM
  segment (when the customers table has ``segment``);
* ``share_rfm_<segment>``: share of the period's revenue bought by customers of each RFM
  segment, the segment taken *as of the period start* (transactions strictly before it).

Shares are of the cell's positive revenue (returns excluded; lines without a customer id
count in the denominator, so shares sum to 1 minus the anonymous share; a first-time buyer
has no RFM segment yet). These are *past-only* covariates: the feature pipeline lags them
by the horizon.

RFM rule (:func:`rfm_table`, :func:`quantile_scores`, :func:`rfm_segments`): among the
customers with at least one transaction before ``as_of``, ``recency_days`` = days from the
last purchase day to ``as_of``'s day, ``frequency`` = distinct purchase days, ``monetary`` =
revenue. A score with ``q`` quantiles is ``1 + floor(q * worse / n)``, ``worse`` = how many of
the ``n`` customers are strictly worse (longer recency, fewer days, less revenue), so ties
share a score, the best get ``q`` (or close), the worst 1. With ``high`` meaning score > q/2,
the segment is the first that matches:

1. ``new``: one purchase day, high recency;
2. ``champions``: high recency and high frequency;
3. ``promising``: high recency (bought lately, not often);
4. ``loyal``: high frequency, recency score above 1 (frequent buyers, slowing down);
5. ``at_risk``: high frequency, recency score 1 (frequent buyers who stopped);
6. ``hibernating``: everyone else (neither recent nor frequent).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.aggregate import LineCodes, encode_lines, grid_frame
from features.calendar import day_numbers, first_days, period_numbers_of_days
from features.raw import RawData

RFM_SEGMENTS = ("champions", "loyal", "promising", "new", "at_risk", "hibernating")
_BLOCK_CELLS = 4_000_000  # customer x period cells scored at a time (bounds memory)


def quantile_scores(values: np.ndarray, quantiles: int, higher_is_better: bool) -> np.ndarray:
    """Score 1..q of each value among the non-NaN values of its row (0 where NaN).

    ``values`` is (as_of dates x customers); score = 1 + floor(q * worse / n), where
    ``worse`` counts the row's values strictly worse than this one.
    """
    signed = np.asarray(values, dtype=np.float64) * (1.0 if higher_is_better else -1.0)
    if signed.size == 0:
        return np.zeros(signed.shape, dtype=np.int8)
    ordered = np.sort(signed, axis=1)  # NaN last
    n = np.sum(~np.isnan(signed), axis=1)
    scores = np.ones(signed.shape, dtype=np.int8)
    rows = np.arange(len(signed))
    for step in range(1, quantiles):
        needed = -(-step * n // quantiles)  # ceil(step * n / q): count of worse values
        threshold = ordered[rows, np.maximum(needed - 1, 0)]
        np.add(scores, signed > threshold[:, None], out=scores, casting="unsafe")
    scores[np.isnan(signed)] = 0
    return scores


def rfm_segments(r_score: np.ndarray, f_score: np.ndarray, frequency: np.ndarray,
                 quantiles: int) -> np.ndarray:
    """Index into :data:`RFM_SEGMENTS` of each customer (-1 where r_score is 0: no history)."""
    recent, frequent = r_score * 2 > quantiles, f_score * 2 > quantiles
    conditions = [
        (frequency == 1) & recent,
        recent & frequent,
        recent,
        frequent & (r_score > 1),
        frequent,
    ]
    names = ["new", "champions", "promising", "loyal", "at_risk"]
    choices = [RFM_SEGMENTS.index(name) for name in names]
    segment = np.select(conditions, choices, default=RFM_SEGMENTS.index("hibernating"))
    return np.where(r_score > 0, segment, -1).astype(np.int8)


def rfm_table(sales: pd.DataFrame, as_of: pd.Timestamp, quantiles: int = 4) -> pd.DataFrame:
    """RFM of every customer with a transaction strictly before ``as_of`` (see module doc).

    Columns: customer_id, recency_days, frequency, monetary, r_score, f_score, m_score,
    rfm_segment; sorted by customer_id.
    """
    before = sales[(sales["date"] < as_of) & sales["customer_id"].notna()]
    lines = pd.DataFrame({
        "customer_id": before["customer_id"].astype("str").to_numpy(),
        "day": day_numbers(before["date"]),
        "revenue": _line_revenue(before),
    })
    table = lines.groupby("customer_id", sort=True).agg(
        last_day=("day", "max"), frequency=("day", "nunique"), monetary=("revenue", "sum"))
    as_of_day = day_numbers(pd.DatetimeIndex([as_of]))[0]
    table["recency_days"] = as_of_day - table.pop("last_day")
    scores = _score(table["recency_days"].to_numpy()[None, :],
                    table["frequency"].to_numpy()[None, :],
                    table["monetary"].to_numpy()[None, :], quantiles)
    for name, values in zip(("r_score", "f_score", "m_score"), scores[:3], strict=True):
        table[name] = values[0]
    table["rfm_segment"] = pd.array(np.asarray(RFM_SEGMENTS)[scores[3][0]], dtype="str")
    columns = ["recency_days", "frequency", "monetary", "r_score", "f_score", "m_score",
               "rfm_segment"]
    return table.reset_index()[["customer_id", *columns]]


def _score(recency: np.ndarray, frequency: np.ndarray, monetary: np.ndarray,
           quantiles: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """r, f, m scores and segment codes of (as_of x customer) arrays (NaN: no history)."""
    r = quantile_scores(recency, quantiles, higher_is_better=False)
    f = quantile_scores(frequency, quantiles, higher_is_better=True)
    m = quantile_scores(monetary, quantiles, higher_is_better=True)
    return r, f, m, rfm_segments(r, f, frequency, quantiles)


def _line_revenue(sales: pd.DataFrame) -> np.ndarray:
    """Revenue of each line (``y`` when the data have no revenue column)."""
    column = "revenue" if "revenue" in sales.columns else "y"
    return sales[column].to_numpy(dtype=np.float64, na_value=0.0)


def customer_covariates(raw: RawData, freq: str, quantiles: int = 4,
                        codes: LineCodes | None = None) -> pd.DataFrame:
    """Customer covariates per (series_id, ds) on the base panel's grid (module doc)."""
    codes = codes if codes is not None else encode_lines(raw, freq)
    if codes.customer is None or codes.customer_ids is None:
        raise ValueError("the sales have no customer_id column: no customer covariates")
    revenue = _line_revenue(raw.sales)
    known = codes.customer >= 0
    purchases = _purchases(codes, known, revenue)
    columns = _customer_counts(codes, known, purchases)
    rfm = _rfm_by_period(codes, purchases, quantiles)
    line_rfm = np.full(len(revenue), -1, dtype=np.int8)
    line_rfm[known] = rfm[codes.period[known], codes.customer[known]]
    columns.update(_revenue_shares(codes, line_rfm, RFM_SEGMENTS, revenue, "share_rfm_"))
    crm = crm_segment_codes(raw.customers, codes.customer_ids)
    if crm is not None:
        codes_per_customer, names = crm
        line_crm = np.where(known, codes_per_customer[np.maximum(codes.customer, 0)], -1)
        columns.update(_revenue_shares(codes, line_crm, names, revenue, "share_seg_"))
    frame = grid_frame(codes, columns)
    return frame[["series_id", "ds", *columns]]


@dataclass(frozen=True)
class _Purchases:
    """Distinct (customer, day) purchases, sorted by customer then day, with their revenue."""

    customer: np.ndarray
    day: np.ndarray
    revenue: np.ndarray


def _purchases(codes: LineCodes, known: np.ndarray, revenue: np.ndarray) -> _Purchases:
    day0 = int(codes.day.min())
    span = int(codes.day.max()) - day0 + 1
    keys = codes.customer[known].astype(np.int64) * span + (codes.day[known] - day0)
    order = np.argsort(keys)
    keys = keys[order]
    first = _first_of_runs(keys)
    day_revenue = np.add.reduceat(revenue[known][order], np.flatnonzero(first))
    keys = keys[first]
    return _Purchases(keys // span, keys % span + day0, day_revenue)


def _first_of_runs(sorted_values: np.ndarray) -> np.ndarray:
    """Mask of the first element of each run of equal values."""
    mask = np.ones(len(sorted_values), dtype=bool)
    mask[1:] = sorted_values[1:] != sorted_values[:-1]
    return mask


def _customer_counts(codes: LineCodes, known: np.ndarray,
                     purchases: _Purchases) -> dict[str, np.ndarray]:
    """cust_active / cust_new / cust_returning per grid cell (flat arrays)."""
    n_customers, n_periods = len(codes.customer_ids), codes.n_periods
    size = codes.n_series * n_periods
    keys = np.sort(codes.cells()[known] * n_customers + codes.customer[known])
    keys = keys[_first_of_runs(keys)]
    cell, customer = keys // n_customers, keys % n_customers
    active = np.bincount(cell, minlength=size)
    first = _first_of_runs(purchases.customer)  # each customer's first purchase day
    first_period = np.full(n_customers, -1, dtype=np.int64)
    first_period[purchases.customer[first]] = _period_index(codes, purchases.day[first])
    new = np.bincount(cell[cell % n_periods == first_period[customer]], minlength=size)
    return {"cust_active": active.astype(float), "cust_new": new.astype(float),
            "cust_returning": (active - new).astype(float)}


def _period_index(codes: LineCodes, days: np.ndarray) -> np.ndarray:
    """Index into ``codes.numbers`` of the period of each day number."""
    return period_numbers_of_days(days, codes.freq) - codes.numbers[0]


@dataclass(frozen=True)
class _PeriodTotals:
    """Per (customer, period) with a purchase: purchase days, latest purchase day, revenue."""

    period: np.ndarray
    customer: np.ndarray
    days: np.ndarray
    last_day: np.ndarray
    revenue: np.ndarray


def _period_totals(codes: LineCodes, purchases: _Purchases) -> _PeriodTotals:
    """Purchases are sorted by customer then day, so each (customer, period) is one run."""
    period = _period_index(codes, purchases.day)
    first = _first_of_runs(purchases.customer * codes.n_periods + period)
    starts = np.flatnonzero(first)
    return _PeriodTotals(
        period=period[first], customer=purchases.customer[first],
        days=np.diff(np.append(starts, len(period))),
        last_day=np.maximum.reduceat(purchases.day, starts),
        revenue=np.add.reduceat(purchases.revenue, starts),
    )


def _rfm_by_period(codes: LineCodes, purchases: _Purchases, quantiles: int) -> np.ndarray:
    """RFM segment code (period x customer) as of each period start (-1: no history),
    computed a block of periods at a time so memory stays bounded."""
    totals = _period_totals(codes, purchases)
    n_periods, n_customers = codes.n_periods, len(codes.customer_ids)
    starts = first_days(codes.numbers, codes.freq)
    block = max(1, _BLOCK_CELLS // max(n_customers, 1))
    carry = (np.zeros(n_customers), np.zeros(n_customers, dtype=np.int64),
             np.full(n_customers, -1, dtype=np.int64))
    segments = np.empty((n_periods, n_customers), dtype=np.int8)
    for lo in range(0, n_periods, block):
        hi = min(lo + block, n_periods)
        money, count, last = _dense_block(totals, lo, hi, n_customers)
        monetary, money_carry = _exclusive(np.cumsum, money, carry[0])
        frequency, count_carry = _exclusive(np.cumsum, count, carry[1])
        latest, last_carry = _exclusive(np.maximum.accumulate, last, carry[2])
        carry = (money_carry, count_carry, last_carry)
        history = frequency > 0
        recency = np.where(history, starts[lo:hi, None] - latest, np.nan)
        scores = _score(recency, np.where(history, frequency, np.nan),
                        np.where(history, monetary, np.nan), quantiles)
        segments[lo:hi] = scores[3]
    return segments


def _dense_block(totals: _PeriodTotals, lo: int, hi: int, n_customers: int
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(periods lo..hi x customers) arrays of revenue, purchase days and latest day."""
    inside = np.flatnonzero((totals.period >= lo) & (totals.period < hi))
    rows, cols = totals.period[inside] - lo, totals.customer[inside]
    money = np.zeros((hi - lo, n_customers))
    count = np.zeros((hi - lo, n_customers), dtype=np.int64)
    last = np.full((hi - lo, n_customers), -1, dtype=np.int64)
    money[rows, cols] = totals.revenue[inside]
    count[rows, cols] = totals.days[inside]
    last[rows, cols] = totals.last_day[inside]
    return money, count, last


def _exclusive(accumulate: Callable[..., np.ndarray], block: np.ndarray, carry: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray]:
    """Accumulation over the periods *before* each row of ``block``, and the new carry."""
    accumulated = accumulate(np.concatenate([carry[None, :], block], axis=0), axis=0,
                             dtype=block.dtype)
    return accumulated[:-1], accumulated[-1]


def _revenue_shares(codes: LineCodes, line_segment: np.ndarray, names: tuple[str, ...] | list[str],
                    revenue: np.ndarray, prefix: str) -> dict[str, np.ndarray]:
    """Share of each cell's positive revenue bought by each segment (lines coded -1 skip)."""
    size = codes.n_series * codes.n_periods
    cells = codes.cells()
    positive = np.clip(revenue, 0.0, None)
    total = np.bincount(cells, weights=positive, minlength=size)
    coded = line_segment >= 0
    by_segment = np.bincount(cells[coded] * len(names) + line_segment[coded],
                             weights=positive[coded], minlength=size * len(names))
    # float even when no line is coded (numpy's bincount of nothing is int64)
    by_segment = by_segment.astype(np.float64).reshape(size, len(names))
    shares = np.divide(by_segment, total[:, None], out=np.zeros_like(by_segment),
                       where=total[:, None] > 0)
    return {f"{prefix}{_column_name(name)}": shares[:, k] for k, name in enumerate(names)}


def _column_name(segment: str) -> str:
    """A segment name as a column-name suffix: lower case, [a-z0-9_]."""
    return re.sub(r"[^a-z0-9]+", "_", str(segment).lower()).strip("_") or "unknown"


def crm_segment_codes(customers: pd.DataFrame | None, customer_ids: np.ndarray
                      ) -> tuple[np.ndarray, list[str]] | None:
    """CRM segment code of each customer id (-1: not in the CRM table) and segment names."""
    if customers is None or "segment" not in customers.columns:
        return None
    segment = customers["segment"].astype("str")
    names = sorted(segment.dropna().unique().tolist())
    if not names:
        return None
    position = pd.Index(customers["customer_id"].astype("str")).get_indexer(customer_ids)
    segment_code = pd.Categorical(segment, categories=names).codes
    codes = np.where(position >= 0, segment_code[np.maximum(position, 0)], -1)
    return codes.astype(np.int64), names
