"""RawData: the standardised raw tables every feature builder reads.

Loaders (`features.sources`) and the simulator (`features.simulator`) produce it; the
builders never see the original column names.

* ``sales``: one row per transaction line. Columns: ``date`` (datetime64), the key
  columns (str, or categorical of str when the input was categorical), ``y`` (float:
  the value to forecast per line — the mapped target, or
  revenue = quantity x price, or quantity), ``revenue`` (float, when computable),
  ``quantity`` and ``price`` (float, when mapped), ``promo`` (0/1 float, when mapped),
  ``customer_id`` (str, may be missing), ``channel`` (str, when mapped).
* ``customers``: ``customer_id`` (str), ``segment``, ``region`` (str, optional),
  ``signup_date`` (datetime64, optional).
* ``calendar``: ``date`` (datetime64), optionally some of the key columns (a promotion
  planned per category, say), ``holiday`` (0/1) and ``promo`` (0/1 planned) when present.
  It may extend past the last sale: planned promotions and holidays of future dates.
* ``known_future``: ``date`` (datetime64), the key columns it is given by (str), and one
  float column per known-future value (``known_future_columns``: the spec's mapping, with
  how days combine into a period). It may extend past the last sale too.

Two reading rules travel with the tables, as the export defines them: ``gaps`` (what a
stretch of periods without rows means, :mod:`features.gaps`) and ``gap_periods``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import pandas as pd

from features.config import GapFill, KnownFutureColumns


@dataclass(frozen=True)
class RawData:
    sales: pd.DataFrame
    keys: tuple[str, ...]
    customers: pd.DataFrame | None = None
    calendar: pd.DataFrame | None = None
    labels: dict[str, str] = field(default_factory=dict)  # table -> file/table name
    known_future: pd.DataFrame | None = None
    known_future_columns: KnownFutureColumns | None = None
    gaps: GapFill = "missing"
    gap_periods: int | None = None

    def until(self, end: pd.Timestamp | str) -> RawData:
        """The sales as known on ``end`` (lines dated on or before it: a date without a
        time keeps that whole day, lines at 17:30 included); customers, the calendar and
        the known-future table (future dates included) stay whole."""
        cut = pd.Timestamp(end)
        if cut == cut.normalize():  # a day, not an instant
            cut = cut + pd.Timedelta(days=1) - pd.Timedelta(1, "ns")
        sales = self.sales[self.sales["date"] <= cut].reset_index(drop=True)
        return replace(self, sales=sales)
