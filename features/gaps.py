"""Gaps: stretches of periods with no rows at all inside a series — missing data, not sales.

Why this exists: the aggregation fills the series x period grid, and an empty cell becomes
y = 0. For most empty cells that is right (no transaction line: nothing sold). But an export
gap (a month the extract skipped) or a store closed for refurbishment for six months are
not periods that sold nothing; as zeros they teach every model a collapse that will not
come back. So the empty cells that mean *no data* are found here, reported (logged, and
listed in the training set's metadata), and with ``data.gaps: missing`` (the default)
their ``y`` is NaN: lags and rolling statistics read them as missing, the global families
do not train on them, the seasonal naive skips them, metrics ignore them.

The rule: a run of ``L`` consecutive periods without a row inside a series' span (its first
to its last row; periods dropped as partial are outside every span) is a gap when

* it is long enough: ``L >= gap_periods`` — by default 1 for **period-level input** (at most
  one row per series and period, e.g. weekly totals; recognised by
  :func:`features.aggregate.encode_lines`) and for **transaction lines**, where an empty
  period is often genuine zero sales, 28 days, 8 weeks or 3 months; and
* it is implausible at the series' own rate: with ``p`` the share of the span's periods
  that have a row, ``(1 - p) ** L < 1 %``. A slow mover selling one week in five, or a
  totals export that leaves out zero weeks of a small series, keeps its empty runs as
  zeros; a store with rows nearly every week and six months without any has a gap.

The same rule, on the whole panel, finds **export gaps**: a run of periods in which no
series has a row (at least 7 days for ``D`` — a chain closes for a holiday, not a week —,
one week or month otherwise, and implausible at the panel's rate, so a chain closed every
Sunday keeps its Sundays) is a gap of every series that exists by then.

A series' runs are counted without the export gaps (they explain themselves). Periods
after a series' last row are not gaps: a series that stopped is discontinued
(zeros, as before). ``data.gaps: zero`` keeps every empty period at y = 0 and still reports
the gaps.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from features.calendar import period_starts

if TYPE_CHECKING:
    from features.aggregate import LineCodes

log = logging.getLogger(__name__)

DEFAULT_GAP_PERIODS = {"D": 28, "W": 8, "M": 3}  # transaction lines; period totals: 1
PANEL_GAP_PERIODS = {"D": 7, "W": 1, "M": 1}
GAP_CHANCE = 0.01  # a run of empty periods this unlikely at the series' sales rate is a gap
WHOLE_PANEL = "*"  # series_id of a gap every series has (an export gap)
MAX_LISTED = 100  # gaps listed in the metadata (all are counted)
MAX_LOGGED = 10


@dataclass(frozen=True)
class Gap:
    """One stretch of missing periods of one series (``series_id`` '*': every series)."""

    series_id: str
    start: pd.Timestamp
    end: pd.Timestamp
    periods: int

    def to_dict(self) -> dict[str, Any]:
        return {"series_id": self.series_id, "start": self.start.date().isoformat(),
                "end": self.end.date().isoformat(), "periods": self.periods}


@dataclass(frozen=True)
class GapReport:
    """The gap cells of the dense series x period grid (``mask``) and the stretches."""

    mask: np.ndarray
    gaps: tuple[Gap, ...]
    rule: str
    fill: str

    @property
    def n_cells(self) -> int:
        return int(self.mask.sum())

    def to_dict(self) -> dict[str, Any]:
        """What the training set's metadata records (and a run logs)."""
        return {"fill": self.fill, "rule": self.rule, "n_gaps": len(self.gaps),
                "n_cells": self.n_cells,
                "gaps": [gap.to_dict() for gap in self.gaps[:MAX_LISTED]]}


def find_gaps(codes: LineCodes, lines: np.ndarray, fill: str = "missing",
              gap_periods: int | None = None) -> GapReport:
    """The gaps of the grid (see the module docstring); ``lines`` = rows per grid cell."""
    counts = lines.reshape(codes.n_series, codes.n_periods)
    grid = codes.grid_mask()
    inside = grid & _before_last_row(counts)
    minimum = gap_periods or (1 if codes.period_level else DEFAULT_GAP_PERIODS[codes.freq])
    in_keep = np.zeros((1, codes.n_periods), dtype=bool)
    in_keep[0, codes.keep] = True
    panel_counts = counts.sum(axis=0, keepdims=True)
    panel = _gap_runs(panel_counts, in_keep, PANEL_GAP_PERIODS[codes.freq])[0]
    series_mask = _gap_runs(counts, inside & ~panel[None, :], minimum)
    mask = (series_mask | panel[None, :]) & grid
    gaps = _panel_stretches(panel, codes) + _series_stretches(series_mask, codes)
    kind = "period totals" if codes.period_level else "transaction lines"
    rule = (f"{kind}: {minimum}+ consecutive periods without a row, unlikely "
            f"(< {GAP_CHANCE:.0%}) at the series' rate; or no series has a row")
    report = GapReport(mask, tuple(gaps), rule, fill)
    _log_report(report)
    return report


def _gap_runs(counts: np.ndarray, inside: np.ndarray, minimum: int) -> np.ndarray:
    """The cells of the empty runs inside the spans that are gaps (rows: series)."""
    empty = inside & (counts == 0)
    return _long_runs(empty, _run_thresholds(counts, inside, minimum))


def _before_last_row(counts: np.ndarray) -> np.ndarray:
    """Cells at or before each series' last row (a series without rows has none)."""
    has_row = counts > 0
    last = counts.shape[1] - 1 - np.argmax(has_row[:, ::-1], axis=1)
    last = np.where(has_row.any(axis=1), last, -1)
    return np.arange(counts.shape[1])[None, :] <= last[:, None]


def _run_thresholds(counts: np.ndarray, inside: np.ndarray, minimum: int) -> np.ndarray:
    """Per series: the shortest empty run that is a gap (``minimum``, or longer for a
    series whose empty periods are common enough to make such a run likely)."""
    span = inside.sum(axis=1)
    with_rows = ((counts > 0) & inside).sum(axis=1)
    rate = np.divide(with_rows, span, out=np.ones(len(span)), where=span > 0)
    thresholds = np.full(len(span), minimum, dtype=np.int64)
    sparse = (rate > 0.0) & (rate < 1.0)
    likely = np.log(GAP_CHANCE) / np.log1p(-rate[sparse])
    thresholds[sparse] = np.maximum(minimum, np.ceil(likely)).astype(np.int64)
    return thresholds


def _runs(cells: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row, first column, length) of every run of True cells, row by row."""
    padded = np.zeros((cells.shape[0], cells.shape[1] + 2), dtype=np.int8)
    padded[:, 1:-1] = cells
    steps = np.diff(padded, axis=1)
    rows, starts = np.nonzero(steps == 1)
    _, stops = np.nonzero(steps == -1)  # row-major: pairs with the starts
    return rows, starts, stops - starts


def _long_runs(empty: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """The cells of the runs of ``empty`` at least as long as their row's threshold."""
    rows, starts, lengths = _runs(empty)
    long = lengths >= thresholds[rows]
    mask = np.zeros_like(empty)
    for row, start, length in zip(rows[long], starts[long], lengths[long], strict=True):
        mask[row, start:start + length] = True
    return mask


def _stretch(series_id: str, start: int, length: int, codes: LineCodes) -> Gap:
    first, last = period_starts(codes.numbers[[start, start + length - 1]], codes.freq)
    return Gap(series_id, first, last, int(length))


def _panel_stretches(panel: np.ndarray, codes: LineCodes) -> list[Gap]:
    _, starts, lengths = _runs(panel[None, :])
    return [_stretch(WHOLE_PANEL, s, n, codes) for s, n in zip(starts, lengths, strict=True)]


def _series_stretches(mask: np.ndarray, codes: LineCodes) -> list[Gap]:
    rows, starts, lengths = _runs(mask)
    ids = codes.series_table["series_id"].to_numpy()
    return [_stretch(str(ids[r]), s, n, codes)
            for r, s, n in zip(rows, starts, lengths, strict=True)]


def _log_report(report: GapReport) -> None:
    if not report.gaps:
        return
    treated = "y is missing (NaN) there" if report.fill == "missing" else (
        "kept as zero sales (data.gaps: zero)")
    log.warning("%d gap(s) without rows inside series, %d series x periods: %s (rule: %s)",
                len(report.gaps), report.n_cells, treated, report.rule)
    for gap in report.gaps[:MAX_LOGGED]:
        who = "every series" if gap.series_id == WHOLE_PANEL else f"series {gap.series_id}"
        log.warning("gap: %s, %s .. %s (%d periods)", who, gap.start.date(), gap.end.date(),
                    gap.periods)
    if len(report.gaps) > MAX_LOGGED:
        log.warning("... and %d more gaps (all listed in the training set's metadata, up "
                    "to %d)", len(report.gaps) - MAX_LOGGED, MAX_LISTED)
