"""How the series' forecast errors move together: what a roll-up's interval needs.

Why it exists: the interval of a sum of series is not the sum of their intervals (that
assumes every series misses by its full width in the same direction at once) nor the
root of the sum of squares (that assumes they never move together). Between the two is
the errors' correlation, which only the champion's backtest shows.

Where it comes from. The served model artifact carries the conformal *scores*
(|y - yhat| / scale per horizon step, pooled over series: no sign, no series), which
cannot give a correlation. The champion's MLflow run carries the signed backtest rows
(``backtest/predictions.parquet``: window, series_id, ds, y, yhat — the same file the
monitor reads as the promise). :func:`load_backtest_rows` downloads it once per champion
version (off the request path, kept beside the local copy of the model so a restart
without MLflow still has it); :func:`correlation_from_backtest` turns it into the
pairwise Pearson correlation of the errors y - yhat over the (window, ds) cells two
series share, NaN for pairs with fewer than ``MIN_SHARED`` of them.

Why a correlation and not the empirical quantile of the summed backtest errors: a
backtest has a handful of windows (3 to 5), so a group's summed error has only that many
values per horizon step; its 80 % quantile would be the largest of three numbers. The
per-series conformal widths are calibrated on every series' residuals pooled, and the
correlation pools all steps and windows (``windows x horizon`` cells per pair), so the
combination is far steadier. Without the file (a model logged elsewhere, an old run, a
toy) there is no correlation: :mod:`serving.hierarchy` then assumes independence and says
so in the answer.
"""

from __future__ import annotations

import logging
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from serving.champion import Champion

log = logging.getLogger(__name__)

BACKTEST_ARTIFACT = "backtest/predictions.parquet"
CACHE_FILE = "salescast_backtest_errors.parquet"  # beside MLmodel in the local copy
MIN_SHARED = 6  # (window, ds) cells two series must share for their correlation


@dataclass(frozen=True)
class ErrorCorrelation:
    """Pairwise correlation of the backtest errors (NaN: too few shared cells)."""

    position: dict[str, int]
    matrix: np.ndarray
    n_cells: int  # distinct (window, ds) cells of the backtest

    def among(self, series_ids: list[str]) -> np.ndarray:
        """The correlation matrix of ``series_ids`` (NaN rows/columns for unknown ones)."""
        at = np.array([self.position.get(s, -1) for s in series_ids])
        out = np.full((len(at), len(at)), np.nan)
        known = at >= 0
        out[np.ix_(known, known)] = self.matrix[np.ix_(at[known], at[known])]
        np.fill_diagonal(out, 1.0)
        return out


def correlation_from_backtest(rows: pd.DataFrame) -> ErrorCorrelation:
    """Correlation of y - yhat between series over their shared (window, ds) cells."""
    missing = [c for c in ("series_id", "ds", "y", "yhat") if c not in rows.columns]
    if missing:
        raise ValueError(f"backtest rows lack column(s) {missing}")
    window = "window" if "window" in rows.columns else "origin"
    cell = [window, "ds"] if window in rows.columns else ["ds"]
    errors = rows.assign(error=rows["y"].astype(float) - rows["yhat"].astype(float),
                         series_id=rows["series_id"].astype(str))
    wide = errors.pivot_table(index=cell, columns="series_id", values="error", aggfunc="mean")
    matrix = wide.corr(min_periods=MIN_SHARED).to_numpy(dtype=float)
    series = [str(c) for c in wide.columns]
    return ErrorCorrelation({s: i for i, s in enumerate(series)}, matrix, len(wide))


def load_backtest_rows(champion: Champion, tracking_uri: str) -> pd.DataFrame | None:
    """The champion's signed backtest rows: the cached copy, else its MLflow run's file;
    None (logged) when neither can be read."""
    cached = Path(champion.ref.path) / CACHE_FILE
    if cached.is_file():
        return pd.read_parquet(cached)
    if not champion.ref.run_id:
        return None
    try:
        rows = _download(champion.ref.run_id, tracking_uri)
    except Exception as exc:  # no run, no file, no server: the roll-up says "assumed"
        log.warning("no backtest rows for run %s (%s): roll-up intervals assume "
                    "independent errors", champion.ref.run_id, exc)
        return None
    try:
        rows.to_parquet(cached, index=False)
    except OSError as exc:
        log.info("could not keep the backtest rows beside the model: %s", exc)
    return rows


def _download(run_id: str, tracking_uri: str) -> pd.DataFrame:
    import mlflow.artifacts

    with tempfile.TemporaryDirectory() as tmp:
        path = mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path=BACKTEST_ARTIFACT, dst_path=tmp,
            tracking_uri=tracking_uri)
        return pd.read_parquet(path)


class CorrelationCache:
    """One :class:`ErrorCorrelation` (or None) per champion version, computed once."""

    def __init__(self, tracking_uri: str) -> None:
        self.tracking_uri = tracking_uri
        self._lock = threading.Lock()
        self._by_version: dict[tuple[str, str], ErrorCorrelation | None] = {}

    def get(self, champion: Champion) -> ErrorCorrelation | None:
        """The champion's correlation (blocking on first use: call it off the event loop)."""
        key = (champion.ref.name, champion.ref.version)
        with self._lock:
            if key not in self._by_version:
                self._by_version = {key: self._compute(champion)}  # keep the current only
            return self._by_version[key]

    def _compute(self, champion: Champion) -> ErrorCorrelation | None:
        rows = load_backtest_rows(champion, self.tracking_uri)
        if rows is None or rows.empty:
            return None
        try:
            return correlation_from_backtest(rows)
        except (ValueError, KeyError) as exc:
            log.warning("unusable backtest rows of %s v%s: %s", champion.ref.name,
                        champion.ref.version, exc)
            return None
