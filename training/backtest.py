"""Rolling-origin backtest: the windows (computed once, shared by every family) and the run.

Window k (0 = oldest) has its origin at position ``last - H - (n_windows - 1 - k) * step``
of the training set's period grid and tests the H periods (origin, ds_end]. In each window
the forecaster is cloned, fitted on ``training_set.until(origin)`` and asked for H periods
with the *realised* exogenous values (in a backtest the planned promotions and prices are
known), then joined with the actual y.

Intervals are cross-conformal: window k's interval is calibrated on the residuals of the
OTHER windows, so backtest coverage is an honest out-of-sample figure (each window's
scores use the levels and relative volatilities of its own origin:
:mod:`training.conformal`). With a single window there are no others: it falls back to
in-window calibration (optimistic; logged). The returned ``calibration`` pools all windows
and carries the scales of the full training set, i.e. it is the calibration of the model
refit on the whole training set.

**Nested** (:func:`plan_windows`): the newest ``outer_windows`` windows are held out. Tuning
sees only the inner windows, whose test periods all end at or before the first outer
origin; the best trial is then scored once on the outer windows (:func:`run_outer`) with
intervals calibrated on the inner residuals. The outer score chooses the champion and is
the promise written on the version: no choice was ever made on it, so it is an honest
estimate of the next H periods.

**On a cluster** (inside :func:`training.distributed.compute_engine` with a scheduler) the
windows, independent of each other, are fitted in parallel there, all submitted at once;
``on_window`` still sees them oldest first, each as soon as it and the older ones are done,
with the same values as the sequential run. So Optuna prunes at the same window as on one
machine; the newer windows already running are then cancelled or discarded (their compute
is the price of the parallelism). Without a cluster the windows run one after another.
"""

from __future__ import annotations

import logging
import warnings
import weakref
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from sklearn.base import clone

from training.conformal import ConformalCalibration, series_scales, series_volatility
from training.distributed import active_engine
from training.forecasters.common import season_length_for
from training.metrics import (
    METRIC_NAMES,
    metrics_by_group,
    naive_rmse,
    seasonal_naive_mae,
)
from training.metrics import wape as window_wape

if TYPE_CHECKING:
    from features import TrainingSet
    from training.base import Forecaster
    from training.config import BacktestConfig

log = logging.getLogger(__name__)
PREDICTION_COLUMNS = [
    "window", "origin", "step", "series_id", "ds", "y", "yhat", "yhat_lower", "yhat_upper",
]
WindowCallback = Callable[[int, float], None]


@dataclass(frozen=True)
class BacktestWindow:
    """One forecast origin: train on ds <= origin, test on (origin, ds_end]."""

    index: int
    origin: pd.Timestamp
    ds_end: pd.Timestamp


@dataclass(frozen=True)
class BacktestResult:
    """Forecasts with actuals of every window, their metrics, and the interval calibration."""

    predictions: pd.DataFrame
    window_metrics: pd.DataFrame
    metrics: dict[str, float]
    by_step: pd.DataFrame
    calibration: ConformalCalibration


@dataclass(frozen=True)
class _WindowForecast:
    frame: pd.DataFrame  # window, origin, step, series_id, ds, y, yhat
    calibration: ConformalCalibration
    mase_scale: pd.Series
    rmsse_scale: pd.Series


def period_grid(training_set: TrainingSet) -> pd.DatetimeIndex:
    """The sorted distinct periods (ds) of the training set."""
    return pd.DatetimeIndex(np.sort(training_set.base["ds"].unique()))


@dataclass(frozen=True)
class BacktestPlan:
    """The nested backtest: ``inner`` windows tune, ``outer`` windows choose and promise."""

    inner: list[BacktestWindow]
    outer: list[BacktestWindow]

    @property
    def scoring(self) -> list[BacktestWindow]:
        """The windows a family's reported metrics come from (inner when not nested)."""
        return self.outer or self.inner


def make_windows(training_set: TrainingSet, config: BacktestConfig) -> list[BacktestWindow]:
    """The ``n_windows`` windows ending at the last period, oldest first; ValueError when the
    history is too short."""
    grid = period_grid(training_set)
    return _windows_ending(grid, len(grid) - 1, config.n_windows, config, training_set.horizon)


def plan_windows(training_set: TrainingSet, config: BacktestConfig) -> BacktestPlan:
    """Outer windows ending at the last period, inner ones ending at the first outer origin
    (see the module docstring); ValueError when the history is too short for both."""
    grid, horizon = period_grid(training_set), training_set.horizon
    outer: list[BacktestWindow] = []
    end = len(grid) - 1
    if config.outer_windows:
        first_outer = end - horizon - (config.outer_windows - 1) * config.step
        outer = _windows_ending(grid, end, config.outer_windows, config, horizon,
                                first_index=config.n_windows)
        end = first_outer
    inner = _windows_ending(grid, end, config.n_windows, config, horizon)
    return BacktestPlan(inner, outer)


def _windows_ending(grid: pd.DatetimeIndex, end: int, count: int, config: BacktestConfig,
                    horizon: int, first_index: int = 0) -> list[BacktestWindow]:
    """``count`` windows, ``config.step`` apart, the newest testing up to ``grid[end]``
    (windows numbered from ``first_index``)."""
    first = end - horizon - (count - 1) * config.step
    held = len(grid) - 1 - end
    if first + 1 < config.min_train_periods:
        needed = config.min_train_periods + horizon + (count - 1) * config.step + held
        raise ValueError(
            f"not enough history for the backtest: {len(grid)} periods, need {needed} "
            f"(min_train_periods {config.min_train_periods} before the first origin + "
            f"horizon {horizon} + (n_windows - 1) x step {config.step}"
            + (f" + {held} periods held out for the outer window(s))" if held else ")")
        )
    return [
        BacktestWindow(index=first_index + k, origin=grid[position],
                       ds_end=grid[position + horizon])
        for k, position in enumerate(first + k * config.step for k in range(count))
    ]


def realised_exog(training_set: TrainingSet, window: BacktestWindow) -> pd.DataFrame:
    """The exogenous values actually seen in (origin, ds_end]: the backtest's scenario."""
    base = training_set.base
    inside = (base["ds"] > window.origin) & (base["ds"] <= window.ds_end)
    return base.loc[inside, ["series_id", "ds", *training_set.exog_columns]]


def forecast_window(
    forecaster: Forecaster, training_set: TrainingSet, window: BacktestWindow
) -> _WindowForecast:
    """Fit a clone at the window's origin, forecast H periods, join actual y."""
    history = training_set.until(window.origin)
    model = clone(forecaster).fit(history)
    forecast = model.predict_mean(training_set.horizon, realised_exog(training_set, window))
    actual = training_set.base[["series_id", "ds", "y"]]
    frame = forecast.merge(actual, on=["series_id", "ds"], how="inner")
    grid = period_grid(training_set)
    frame["step"] = grid.get_indexer(frame["ds"]) - grid.get_loc(window.origin)
    frame["window"], frame["origin"] = window.index, window.origin
    return _window_result(frame, training_set, window.origin)


def _window_result(frame: pd.DataFrame, training_set: TrainingSet,
                   origin: pd.Timestamp) -> _WindowForecast:
    """A window's forecasts with actuals, their calibration and the metrics' scales
    (those of the training set up to the window's ``origin``)."""
    scales = _scales_at(training_set, origin)
    return _WindowForecast(
        frame=frame,
        calibration=ConformalCalibration.from_predictions(
            frame, scales.level.copy(), volatility=scales.volatility.copy()),
        mase_scale=scales.mase.copy(),
        rmsse_scale=scales.rmsse.copy(),
    )


@dataclass(frozen=True)
class _Scales:
    """Per-series scales of a training set up to an origin (see :func:`_scales_at`)."""

    level: pd.Series  # conformal: recent level
    volatility: pd.Series  # conformal: relative volatility
    mase: pd.Series
    rmsse: pd.Series


_SCALES: dict[int, dict[pd.Timestamp | None, _Scales]] = {}  # id(training set) -> origin


def _scales_at(training_set: TrainingSet, origin: pd.Timestamp | None) -> _Scales:
    """The scales of ``training_set.until(origin)`` (None: of all of it), computed once per
    training set and origin: every trial of every family backtests on the same windows. A
    TrainingSet is frozen; its entries are dropped with it."""
    known = _SCALES.get(id(training_set))
    if known is None:
        known = _SCALES[id(training_set)] = {}
        weakref.finalize(training_set, _SCALES.pop, id(training_set), None)
    if origin not in known:
        history = training_set if origin is None else training_set.until(origin)
        known[origin] = _Scales(
            level=series_scales(history), volatility=series_volatility(history),
            mase=seasonal_naive_mae(history.base, season_length_for(training_set)),
            rmsse=naive_rmse(history.base))
    return known[origin]


def combine_backtests(
    results: Sequence[BacktestResult],
    weights: Sequence[float],
    training_set: TrainingSet,
    windows: list[BacktestWindow],
    level: float = 0.8,
    prior: BacktestResult | None = None,
) -> BacktestResult:
    """The backtest of the weighted mean of forecasters whose backtests on ``windows`` are
    ``results``: their forecasts combined, no refit. The combination's own residuals make
    its intervals; with ``prior`` (its backtest on the tuning windows) the windows are
    outer ones, calibrated as in :func:`run_outer`."""
    keys = ["window", "origin", "step", "series_id", "ds", "y"]
    combined = results[0].predictions[keys].assign(yhat=0.0)
    for result, weight in zip(results, weights, strict=True):
        own = combined[keys].merge(result.predictions[[*keys, "yhat"]], on=keys, how="left")
        combined["yhat"] += weight * own["yhat"].to_numpy() / sum(weights)
    by_window = {window.index: window for window in windows}
    forecasts = [_window_result(frame.reset_index(drop=True), training_set,
                                by_window[k].origin)
                 for k, frame in combined.groupby("window", sort=True)]
    return _calibrated(forecasts, training_set, level, prior)


def _calibrated(results: list[_WindowForecast], training_set: TrainingSet, level: float,
                prior: BacktestResult | None) -> BacktestResult:
    """Cross-conformal intervals and the summary; with ``prior``, outer windows."""
    if prior is None:
        return _summarise(results, _cross_conformal(results, level), training_set, level)
    predictions = _cross_conformal(results, level, prior=[prior.calibration])
    result = _summarise(results, predictions, training_set, level)
    pooled = ConformalCalibration.combine([prior.calibration, result.calibration])
    own = result.calibration
    return replace(result, calibration=pooled.with_scales(own.scales, own.nonnegative,
                                                          own.volatility))


def run_backtest(
    forecaster: Forecaster,
    training_set: TrainingSet,
    windows: list[BacktestWindow],
    level: float = 0.8,
    on_window: WindowCallback | None = None,
) -> BacktestResult:
    """Backtest ``forecaster`` on ``windows``; ``on_window(k, wape_k)`` after each window.

    ``on_window`` is how Optuna reports and prunes: an exception it raises (e.g.
    ``optuna.TrialPruned``) propagates to the caller. On a Dask cluster the windows run in
    parallel and ``on_window`` still sees them in order (see the module docstring).
    """
    results = _forecast_windows(forecaster, training_set, windows, on_window)
    return _calibrated(results, training_set, level, None)


def run_outer(
    forecaster: Forecaster,
    training_set: TrainingSet,
    windows: list[BacktestWindow],
    tuned: BacktestResult,
    level: float = 0.8,
) -> BacktestResult:
    """Score a tuned ``forecaster`` on the outer ``windows`` (nested backtest).

    Each outer window's interval is calibrated on the tuning windows' residuals
    (``tuned.calibration``) plus the other outer windows': never on its own. The result's
    metrics are the outer windows' only; its calibration pools inner and outer residuals
    (the refit model's, with the full training set's scales)."""
    results = _forecast_windows(forecaster, training_set, windows, None)
    return _calibrated(results, training_set, level, tuned)


def _forecast_windows(
    forecaster: Forecaster,
    training_set: TrainingSet,
    windows: list[BacktestWindow],
    on_window: WindowCallback | None,
) -> list[_WindowForecast]:
    if not windows:
        raise ValueError("no backtest windows")
    results: list[_WindowForecast] = []
    forecasts = _window_forecasts(forecaster, training_set, windows)
    try:
        for window, result in zip(windows, forecasts, strict=True):
            results.append(result)
            wape = window_wape(result.frame)
            log.debug("window %d (origin %s): wape %.4f", window.index, window.origin.date(),
                      wape)
            if on_window is not None:
                on_window(window.index, wape)
    finally:
        with warnings.catch_warnings():  # joblib's "tasks cancelled" when on_window raised
            warnings.simplefilter("ignore", UserWarning)
            forecasts.close()
    return results


def _window_forecasts(forecaster: Forecaster, training_set: TrainingSet,
                      windows: list[BacktestWindow]
                      ) -> Generator[_WindowForecast, None, None]:
    """Each window's forecast, oldest first: fitted lazily one after another, or all
    submitted to the active cluster at once (see the module docstring)."""
    engine = active_engine()
    if engine is None or len(windows) < 2:
        return (forecast_window(forecaster, training_set, window) for window in windows)
    log.debug("%d backtest windows in parallel on Dask %s", len(windows), engine.name)
    parallel = Parallel(n_jobs=-1, batch_size=1, pre_dispatch="all", return_as="generator")
    return parallel(delayed(forecast_window)(forecaster, training_set, window)
                    for window in windows)


def _cross_conformal(results: list[_WindowForecast], level: float,
                     prior: list[ConformalCalibration] | None = None) -> pd.DataFrame:
    """Each window's interval from the other windows' residuals and the ``prior`` ones
    (its own window's when there are no others)."""
    prior = prior or []
    if len(results) == 1 and not prior:
        log.warning("single backtest window: its interval is calibrated in-window, so "
                    "its coverage is optimistic")
    frames = []
    for k, result in enumerate(results):
        others = [*prior, *(r.calibration for j, r in enumerate(results) if j != k)]
        others = others or [result.calibration]
        own = result.calibration
        calibration = ConformalCalibration.combine(others).with_scales(
            own.scales, own.nonnegative, own.volatility
        )
        frames.append(calibration.apply(result.frame, level))
    predictions = pd.concat(frames, ignore_index=True)[PREDICTION_COLUMNS]
    return predictions.sort_values(["window", "series_id", "ds"]).reset_index(drop=True)


def _summarise(
    results: list[_WindowForecast],
    predictions: pd.DataFrame,
    training_set: TrainingSet,
    level: float,
) -> BacktestResult:
    scales = {result.frame["window"].iloc[0]: (result.mase_scale, result.rmsse_scale)
              for result in results}
    window_metrics = _metrics_by(predictions, ["window", "origin"], scales, level)
    step_window = _metrics_by(predictions, ["step", "window"], scales, level)
    by_step = step_window.groupby("step")[list(METRIC_NAMES)].mean().reset_index()
    nonnegative = bool((training_set.base["y"].dropna() >= 0).all())
    full = _scales_at(training_set, None)  # the refit model's
    calibration = ConformalCalibration.combine([r.calibration for r in results]).with_scales(
        full.level.copy(), nonnegative, full.volatility.copy()
    )
    return BacktestResult(
        predictions=predictions,
        window_metrics=window_metrics,
        metrics={name: float(window_metrics[name].mean()) for name in METRIC_NAMES},
        by_step=by_step,
        calibration=calibration,
    )


def _metrics_by(
    predictions: pd.DataFrame,
    by: list[str],
    mase_scales: dict[int, tuple[pd.Series, pd.Series]],
    level: float,
) -> pd.DataFrame:
    """One row of metrics per group of ``by`` (which includes ``window``), all groups at
    once (:func:`training.metrics.metrics_by_group`)."""
    grouped = predictions.groupby(by, sort=True)
    codes = grouped.ngroup().fillna(-1).to_numpy(dtype=np.int64)
    labels = grouped.size().index.to_frame(index=False)
    mase_row, rmsse_row = _row_scales(predictions, mase_scales)
    metrics = metrics_by_group(predictions, codes, len(labels), level, mase_row, rmsse_row)
    return pd.concat([labels, metrics], axis=1)


def _row_scales(predictions: pd.DataFrame, scales: dict[int, tuple[pd.Series, pd.Series]]
                ) -> tuple[np.ndarray, np.ndarray]:
    """Each row's MASE and RMSSE scale: its window's scale of its series (NaN: none)."""
    series, ids = pd.factorize(predictions["series_id"])
    windows = predictions["window"].to_numpy()
    out = np.full((2, len(predictions)), np.nan)
    for window, pair in scales.items():
        rows = windows == window
        for k, scale in enumerate(pair):
            out[k, rows] = _lookup(scale, ids)[series[rows]]
    return out[0], out[1]


def _lookup(scale: pd.Series, ids: pd.Index) -> np.ndarray:
    """``scale.reindex(ids)`` as floats (NaN for a series it lacks)."""
    where = scale.index.get_indexer(ids)
    return np.where(where >= 0, scale.to_numpy(dtype=float)[where], np.nan)
