"""A fair reference for feature drift: comparable periods, and features relative to level.

The drift reference is a seeded sample of the champion's training feature rows, spread
over its whole history. A growing, seasonal business never looks like its multi-year
average: lags and rolling means of this quarter are above those of three years ago, and
summer rows differ from winter rows, with nothing wrong. Two views make the comparison
fair:

* :func:`matched_reference` keeps the reference rows of comparable periods: the last L
  periods up to the reference's newest ``ds`` (the model's origin; L = the periods in the
  current window, at least ``MIN_RECENT_PERIODS``) and the same season a year earlier
  (the current window's ``ds`` range minus one year, widened by ``SEASON_SLACK`` on each
  side so weekly grids that moved by a weekday still match). With fewer than
  ``MIN_MATCHED_ROWS`` such rows it falls back to the whole reference and says so.
* :func:`level_relative` divides the target-derived features (``lag_<k>``,
  ``roll_mean_<w>``, ``roll_std_<w>``: :mod:`features.lags`) by the row's series level,
  its rolling mean over the longest window, so growth is not drift while a change in
  the series' shape (a lag far from its recent level, more volatility) still is.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

MIN_MATCHED_ROWS = 50
MIN_RECENT_PERIODS = 4
SEASON_SLACK = pd.Timedelta(days=3)
YEAR = pd.DateOffset(years=1)
TARGET_DERIVED = re.compile(r"^(lag|roll_mean|roll_std)_(\d+)$")

View = Literal["matched", "whole history"]


@dataclass(frozen=True)
class Reference:
    """The reference rows a drift check compares with, and which view they are."""

    frame: pd.DataFrame
    view: View
    description: str


def _whole(reference: pd.DataFrame, why: str) -> Reference:
    return Reference(reference, "whole history",
                     f"whole history ({len(reference):,} rows): {why}")


def _recent(ds: pd.Series, origin: pd.Timestamp, count: int) -> tuple[pd.Series, int]:
    """Rows whose ``ds`` is one of the last ``count`` distinct periods up to ``origin``."""
    periods = np.sort(ds[ds <= origin].drop_duplicates().to_numpy())[-count:]
    return ds.isin(periods), len(periods)


def matched_reference(
    reference: pd.DataFrame, current: pd.DataFrame, origin: pd.Timestamp | None = None,
) -> Reference:
    """The reference rows of the periods comparable with ``current``'s.

    Rows of the last L distinct periods up to ``origin`` (default: the reference's newest
    ``ds``; L = distinct ``ds`` of ``current``, at least ``MIN_RECENT_PERIODS``), and rows
    with ``ds`` in current's range shifted back one year +- ``SEASON_SLACK``. The whole
    reference when either frame has no ``ds`` or fewer than ``MIN_MATCHED_ROWS`` match.
    """
    if "ds" not in reference.columns or "ds" not in current.columns:
        return _whole(reference, "no periods to match")
    if reference["ds"].isna().all() or current["ds"].isna().all():
        return _whole(reference, "no periods to match")
    ds, current_ds = pd.to_datetime(reference["ds"]), pd.to_datetime(current["ds"])
    origin = ds.max() if origin is None else pd.Timestamp(origin)
    recent, n_periods = _recent(ds, origin, max(MIN_RECENT_PERIODS, current_ds.nunique()))
    first = current_ds.min() - YEAR - SEASON_SLACK
    last = current_ds.max() - YEAR + SEASON_SLACK
    season = ds.between(first, last)
    chosen = (recent | season).to_numpy()
    n_rows = int(chosen.sum())
    if n_rows < MIN_MATCHED_ROWS:
        return _whole(reference, f"only {n_rows} rows from comparable periods "
                                 f"(< {MIN_MATCHED_ROWS})")
    description = (f"last {n_periods} periods up to {origin:%Y-%m-%d} ({int(recent.sum()):,} "
                   f"rows) and {first:%Y-%m-%d} .. {last:%Y-%m-%d} a year earlier "
                   f"({int(season.sum()):,} rows)")
    return Reference(reference[chosen], "matched", description)


def target_derived(columns: Sequence[str]) -> list[str]:
    """The columns computed from the target: ``lag_<k>``, ``roll_mean_<w>``, ``roll_std_<w>``."""
    return [c for c in columns if TARGET_DERIVED.match(c)]


def level_column(columns: Sequence[str]) -> str | None:
    """The ``roll_mean_<w>`` with the largest window, None without any."""
    windows = {int(m.group(2)): c for c in columns
               if (m := TARGET_DERIVED.match(c)) and m.group(1) == "roll_mean"}
    return windows[max(windows)] if windows else None


def _level(frame: pd.DataFrame, column: str | None, lags: Sequence[str]) -> np.ndarray:
    """Each row's series level (NaN where not positive): the ``column``, else the row mean
    of the ``lags``."""
    values = frame[column] if column is not None else frame[list(lags)].mean(axis=1)
    level = values.to_numpy(dtype=np.float64, na_value=np.nan)
    return np.where(level > 0, level, np.nan)


def level_relative(
    frame: pd.DataFrame, columns: Sequence[str],
) -> tuple[pd.DataFrame, list[str]]:
    """``frame`` with each target-derived column of ``columns`` divided by the row's level,
    and the columns to compare.

    The level is the row's ``roll_mean`` with the largest window among ``columns``; it
    is dropped (from the frame and the compared columns: its growth is not drift). Without
    a ``roll_mean`` column the level is the row mean of the ``lag_<k>`` columns (NaN
    lags skipped), and nothing is dropped. A level that is missing, zero or negative
    gives NaN (missing) relative values. Other columns pass unchanged; without any level
    the frame is returned as is.
    """
    derived = target_derived(columns)
    level_name = level_column(columns)
    lags = [c for c in derived if c.startswith("lag_")]
    if not derived or (level_name is None and not lags):
        return frame, list(columns)
    level = _level(frame, level_name, lags)
    relative = {c: frame[c].to_numpy(dtype=np.float64, na_value=np.nan) / level
                for c in derived if c != level_name}
    dropped = [] if level_name is None else [level_name]
    out = frame.drop(columns=dropped).assign(**relative)
    return out, [c for c in columns if c not in dropped]
