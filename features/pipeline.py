"""The FeaturePipeline: base panel -> model features, for training and for future periods.

It is a small, picklable, frozen object: the served model carries it together with a tail
of the base panel (:meth:`FeaturePipeline.tail`) so it can build the feature rows of future
periods without the training code or the full history.

Features (names are a contract with the forecasters):

* key columns (str) — a global model uses them as categoricals;
* calendar: ``month``, ``week_of_year``, ``quarter``, ``day_of_week``, ``day_of_month`` (D only),
  ``sin_year_1``, ``cos_year_1``, ``sin_year_2``, ``cos_year_2``, ``trend`` (periods since
  the panel's first period, fixed at fit time);
* future-known exogenous columns at ds itself: ``promo``, ``price``, ``holiday``, the
  known-future values of the spec's table (``open``, ``markdown``, ...:
  :mod:`features.known_future`), and ``price_ratio`` = price / mean price over
  ``price_window`` periods ending at ds - H;
* ``lag_<k>`` (k >= H), ``roll_mean_<w>`` / ``roll_std_<w>`` of y over the w periods ending
  at ds - H;
* past-only covariates (customer statistics) lagged by H: ``<column>_lag<H>``.

Every target- or covariate-derived value at ds uses data up to ds - H only, so the feature
rows of the H periods after an origin are computable at the origin (direct forecasting).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from features.aggregate import join_planned
from features.calendar import (
    calendar_columns,
    calendar_feature_names,
    period_numbers,
    shift_periods,
)
from features.known_future import join_future_values
from features.lags import (
    lag_features,
    price_reference,
    ratio_to_reference,
    rolling_features,
    rows_to_end,
    series_runs,
    shift_within_series,
)

log = logging.getLogger(__name__)

ORDER = ["series_id", "ds"]
PRICE_REFERENCE = "price_reference"  # future rows only: the denominator of price_ratio


def sorted_panel(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` sorted by series_id, ds (stable), with a fresh index. Panels usually come
    sorted: checking costs a fraction of a sort of the string keys."""
    if is_sorted(frame):
        return frame.reset_index(drop=True)
    return frame.sort_values(ORDER, kind="stable", ignore_index=True)


def is_sorted(frame: pd.DataFrame) -> bool:
    """Whether the rows are in (series_id, ds) order (ties allowed: a stable sort keeps
    them). Only for text series ids and naive dates (what a base panel holds); anything
    else, or a missing value, says no: the caller sorts."""
    ids, ds = frame["series_id"], frame["ds"]
    if not (isinstance(ids.dtype, pd.StringDtype) and ds.dtype.kind == "M"):
        return False
    if len(frame) < 2 or ids.isna().any():
        return len(frame) < 2
    names, dates = ids.to_numpy(), ds.to_numpy()
    same_series = names[1:] == names[:-1]
    later = dates[1:] >= dates[:-1]  # False next to NaT
    return bool(((names[1:] > names[:-1]) | (same_series & later)).all())


def append_future(history: pd.DataFrame, future: pd.DataFrame) -> pd.DataFrame:
    """``history`` (sorted) with each series' ``future`` rows (:meth:`~FeaturePipeline.
    next_rows` of it: same series, same order, later periods) after its own, in one sorted
    panel without a sort of the string keys (:meth:`FeaturePipeline.transform` still sorts
    whatever is not)."""
    joined = pd.concat([history, future], ignore_index=True)
    runs = np.concatenate([series_runs(frame["series_id"].to_numpy())[0]
                           for frame in (history, future)])
    return joined.take(np.argsort(runs, kind="stable")).reset_index(drop=True)


def last_rows(ordered: pd.DataFrame, count: int) -> np.ndarray:
    """Mask of the last ``count`` rows of each series (``ordered`` by series_id, ds)."""
    return rows_to_end(*series_runs(ordered["series_id"].to_numpy())) <= count


@dataclass(frozen=True, eq=False)
class FeaturePipeline:
    """How the model features of a base panel are made (see the module docstring).

    ``start`` is the panel's first ``ds`` (origin of ``trend``); ``planned`` is the calendar
    aggregated to ``freq`` (ds [+ key columns] -> ``holiday``, ``promo``), extending past the
    data: the planned holidays and promotions of future periods. ``holiday`` is a feature
    when it is one of ``exog_columns``. ``known_future`` is the known-future table at
    ``freq`` (ds [+ key columns] -> one column per value, each also in ``exog_columns``).
    """

    freq: str
    horizon: int
    keys: tuple[str, ...]
    start: pd.Timestamp
    lags: tuple[int, ...] = ()
    rolling_windows: tuple[int, ...] = ()
    calendar: bool = True
    exog_columns: tuple[str, ...] = ()
    covariate_columns: tuple[str, ...] = ()
    planned: pd.DataFrame | None = None
    price_window: int = 13
    shift: int = 0  # periods between a row and the newest y it reads; 0 = horizon (direct)
    min_history: int = 0  # keep at least this many periods in tail() (other shifts' needs)
    known_future: pd.DataFrame | None = None

    @property
    def min_lag(self) -> int:
        """Periods between a feature row's ds and the newest y (or covariate) it reads: the
        horizon for the direct design, less for a model of the first steps only
        (:meth:`with_shift`)."""
        return self.shift or self.horizon

    def with_shift(self, min_lag: int, lags: tuple[int, ...]) -> FeaturePipeline:
        """The same features read ``min_lag`` periods back instead of H (lags from it):
        what a model of steps 1..min_lag (or a recursive one, min_lag 1) is trained on."""
        if not 1 <= min_lag <= self.horizon or min(lags, default=min_lag) < min_lag:
            raise ValueError(f"shift {min_lag} must be 1..{self.horizon} and <= every lag "
                             f"{lags}")
        return replace(self, shift=min_lag, lags=tuple(sorted(set(lags))))

    @property
    def lagged_covariates(self) -> list[str]:
        return [f"{column}_lag{self.min_lag}" for column in self.covariate_columns]

    @property
    def feature_columns(self) -> list[str]:
        """Model inputs: keys (str) first, then numeric features."""
        names = list(self.keys)
        if self.calendar:
            names += calendar_feature_names(self.freq)
        names += list(self.exog_columns)
        if "price" in self.exog_columns:
            names.append("price_ratio")
        names += [f"lag_{k}" for k in self.lags]
        for window in self.rolling_windows:
            names += [f"roll_mean_{window}", f"roll_std_{window}"]
        return names + self.lagged_covariates

    @property
    def history_length(self) -> int:
        """Periods of history per series that the features of the next H periods read."""
        needed = [1, max(self.lags, default=0), self.min_history]
        needed += [self.min_lag + window - 1 for window in self.rolling_windows]
        if "price" in self.exog_columns:
            needed.append(self.min_lag + self.price_window - 1)
        if self.covariate_columns:
            needed.append(self.min_lag)
        return max(needed)

    def transform(self, base: pd.DataFrame, with_reference: bool = False) -> pd.DataFrame:
        """``base`` (complete grid, any row order) plus every derived feature, sorted.

        ``with_reference`` also keeps ``price_reference`` (what a scenario's price is
        divided by: see :meth:`apply_scenario`)."""
        derived = [c for c in (*self.feature_columns, PRICE_REFERENCE)
                   if c in base.columns and c not in (*self.keys, *self.exog_columns)]
        panel = sorted_panel(base.drop(columns=derived))
        runs, positions = series_runs(panel["series_id"].to_numpy())
        y = panel["y"].to_numpy(dtype=np.float64, na_value=np.nan)
        parts: dict[str, np.ndarray] = {}
        if self.calendar:
            parts.update(calendar_columns(panel["ds"], self.freq, self.start))
        if "price" in self.exog_columns:
            price = panel["price"].to_numpy(dtype=np.float64, na_value=np.nan)
            reference = price_reference(price, runs, positions, self.min_lag, self.price_window)
            parts["price_ratio"] = ratio_to_reference(price, reference)
            if with_reference:
                parts[PRICE_REFERENCE] = reference
        parts.update(self.target_features(y, runs, positions))
        for column, name in zip(self.covariate_columns, self.lagged_covariates, strict=True):
            values = panel[column].to_numpy(dtype=np.float64, na_value=np.nan)
            parts[name] = shift_within_series(values, positions, self.min_lag)
        return pd.concat([panel, pd.DataFrame(parts, index=panel.index)], axis=1)

    def target_features(self, y: np.ndarray, runs: np.ndarray, positions: np.ndarray
                        ) -> dict[str, np.ndarray]:
        """The features read from y (``lag_<k>``, ``roll_mean_<w>``, ``roll_std_<w>``) of a
        panel sorted by series_id, ds (``runs``, ``positions``: :func:`series_runs`); all
        that changes when forecasts are fed back as y (the recursive strategy)."""
        parts = lag_features(y, positions, self.lags)
        parts.update(rolling_features(y, runs, positions, self.min_lag, self.rolling_windows))
        return parts

    def tail(self, base: pd.DataFrame) -> pd.DataFrame:
        """The last :attr:`history_length` rows of each series: enough for future_frame."""
        ordered = sorted_panel(base)
        return ordered.loc[last_rows(ordered, self.history_length)].reset_index(drop=True)

    def future_base(self, base: pd.DataFrame, horizon: int,
                    future_exog: pd.DataFrame | None = None) -> pd.DataFrame:
        """Base-shaped rows of the ``horizon`` periods after each series' last ds.

        Exogenous values come from ``future_exog`` (series_id, ds, any exog column by name;
        ds may be any day of the period), else the planned calendar and the known-future
        table (past its end: its newest value), else the last known value (price: last
        observed; promo, holiday: 0). ``y`` and covariates are NaN.
        """
        if not 1 <= horizon <= self.horizon:
            raise ValueError(f"horizon must be 1..{self.horizon} (the pipeline's horizon: "
                             f"lags shorter than the horizon do not exist), got {horizon}")
        rows = self.next_rows(base, horizon)
        if future_exog is not None:
            rows = self._given_exog(rows, future_exog)
        return rows

    def next_rows(self, base: pd.DataFrame, periods: int) -> pd.DataFrame:
        """Base-shaped rows of the ``periods`` periods after each series' last ds, with the
        planned exogenous values (else price: last observed; promo, holiday: 0), y and
        covariates NaN. What a future period, or a realised one posted with its y only,
        is known to look like."""
        ordered = sorted_panel(base)
        last = ordered.loc[last_rows(ordered, 1)]
        rows = last.iloc[np.repeat(np.arange(len(last)), periods)].reset_index(drop=True)
        steps = np.tile(np.arange(1, periods + 1), len(last))
        rows["ds"] = shift_periods(rows["ds"], steps, self.freq)
        rows["y"] = np.nan
        for column in self.covariate_columns:
            rows[column] = np.nan
        for column in ("promo", "holiday"):
            if column in self.exog_columns:
                rows[column] = 0.0
        return self._planned_exog(rows)

    def _planned_exog(self, rows: pd.DataFrame) -> pd.DataFrame:
        rows = self._known_future_exog(rows)
        if self.planned is None:
            return rows
        flags = [c for c in ("holiday", "promo") if c in self.exog_columns and c in self.planned]
        on = ["ds", *[key for key in self.keys if key in self.planned.columns]]
        if not flags:
            return rows
        return join_planned(rows, self.planned[on + flags], overwrite=True)

    def _known_future_exog(self, rows: pd.DataFrame) -> pd.DataFrame:
        """The known-future table's values of each row's period, where it has them."""
        table = getattr(self, "known_future", None)  # None in pipelines pickled before it
        if table is None:
            return rows
        values = [c for c in table.columns if c in self.exog_columns]
        return join_future_values(rows, table, values)

    def _given_exog(self, rows: pd.DataFrame, future_exog: pd.DataFrame) -> pd.DataFrame:
        """Overwrite exogenous values with the scenario's (where it gives a value).

        The join is on (series_id, period number) through a dict: scenarios are small and
        a pandas merge costs milliseconds on the serving path."""
        columns = [c for c in self.exog_columns if c in future_exog.columns]
        ignored = sorted(set(future_exog.columns) - {*columns, *ORDER})
        if ignored:
            log.info("future_exog columns %s are not exogenous features; ignored", ignored)
        keys = list(zip(future_exog["series_id"].astype(str).tolist(),
                        period_numbers(pd.to_datetime(future_exog["ds"]), self.freq).tolist(),
                        strict=True))
        if len(set(keys)) < len(keys):
            raise ValueError("future_exog has several rows for one (series_id, period)")
        where = dict(zip(keys, range(len(keys)), strict=True))
        targets = zip(rows["series_id"].astype(str).tolist(),
                      period_numbers(rows["ds"], self.freq).tolist(), strict=True)
        found = [(i, where[key]) for i, key in enumerate(targets) if key in where]
        out = rows.copy()
        if not found:
            return out
        at_rows, at_given = (np.array(index) for index in zip(*found, strict=True))
        for column in columns:
            values = pd.to_numeric(future_exog[column]).to_numpy(dtype=np.float64)[at_given]
            current = out[column].to_numpy(dtype=np.float64, na_value=np.nan).copy()
            current[at_rows] = np.where(np.isnan(values), current[at_rows], values)
            out[column] = current
        return out

    def future_frame(self, base: pd.DataFrame, horizon: int,
                     future_exog: pd.DataFrame | None = None) -> pd.DataFrame:
        """Feature rows of the ``horizon`` periods after each series' last ds (y NaN), with
        ``price_reference`` when price is a feature (for :meth:`apply_scenario`)."""
        history = self.tail(base)
        future = self.future_base(history, horizon, future_exog)
        frame = self.transform(append_future(history, future), with_reference=True)
        return frame.loc[last_rows(frame, horizon)].reset_index(drop=True)

    def apply_scenario(self, frame: pd.DataFrame, future_exog: pd.DataFrame) -> pd.DataFrame:
        """Future feature rows (from :meth:`future_frame`) with a scenario's exogenous values.

        The same rows ``future_frame(base, h, future_exog)`` makes, without rebuilding them:
        a scenario changes only the exogenous columns and ``price_ratio`` (a lag or rolling
        value at a future period reads y up to the origin, never a future exog value).
        """
        out = self._given_exog(frame, future_exog)
        if "price" in self.exog_columns and PRICE_REFERENCE in out.columns:
            out["price_ratio"] = ratio_to_reference(out["price"].to_numpy(dtype=np.float64),
                                                    out[PRICE_REFERENCE].to_numpy())
        return out
