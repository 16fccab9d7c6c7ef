"""Time-series family: one statsmodels model per series, fitted in parallel with joblib.

* ``model="ets"``: Holt-Winters exponential smoothing (additive or damped trend, additive
  or multiplicative season of ``season_length`` when the series has two full seasons).
* ``model="sarimax"``: regression with ARIMA(p, d, q) errors on the exogenous ``promo`` /
  ``holiday`` columns plus ``fourier_k`` sine/cosine pairs for the yearly season (a
  52-period seasonal ARIMA is far too slow to fit per series and per trial).

Each series is fitted on y divided by its recent level (numerical stability). What is
stored per series is only what prediction needs: the forecast path for steps 1..H with
the exogenous flags at 0 (Fourier terms included) and the exogenous coefficients. The
SARIMAX mean forecast is linear in future exog (y = x'beta + ARIMA errors), so a what-if
promotion adds ``beta_promo x level`` to that step. A series whose fit fails falls back to
seasonal naive (logged).
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from threadpoolctl import threadpool_limits

from training.forecasters.common import PanelForecaster, recent_level, season_length_for
from training.forecasters.naive import seasonal_naive_path

if TYPE_CHECKING:
    from features import TrainingSet

log = logging.getLogger(__name__)
SARIMAX_EXOG: tuple[str, ...] = ("promo", "holiday")
_MIN_HISTORY = 10


@dataclass(frozen=True)
class SeriesModelSpec:
    """The per-series model to fit (what a joblib worker needs, nothing else)."""

    model: str
    trend: str | None
    damped: bool
    seasonal: str | None
    order: tuple[int, int, int]
    fourier_k: int
    season_length: int
    horizon: int


@dataclass(frozen=True)
class SeriesForecast:
    """One series' fitted forecast: path for steps 1..H at exog 0, exog coefficients."""

    path: np.ndarray
    exog_coef: dict[str, float] = field(default_factory=dict)
    error: str | None = None  # why the fit failed (then ``path`` is seasonal naive)


def fourier_terms(t: np.ndarray, period: int, k: int) -> np.ndarray:
    """sin/cos pairs 1..k of the season ``period`` at time indices ``t`` (rows x 2k)."""
    k = min(k, period // 2)
    angles = [2.0 * np.pi * j * t / period for j in range(1, k + 1)]
    columns = [f(a) for a in angles for f in (np.sin, np.cos)]
    return np.column_stack(columns) if columns else np.empty((len(t), 0))


def _ets_path(y: np.ndarray, spec: SeriesModelSpec) -> np.ndarray:
    from statsmodels.tsa.holtwinters import ExponentialSmoothing

    seasonal = spec.seasonal if len(y) >= 2 * spec.season_length > 2 else None
    if seasonal == "mul" and (y <= 0).any():
        seasonal = "add"
    model = ExponentialSmoothing(
        y,
        trend=spec.trend,
        damped_trend=spec.damped and spec.trend is not None,
        seasonal=seasonal,
        seasonal_periods=spec.season_length if seasonal else None,
        initialization_method="heuristic" if seasonal else "estimated",
    )
    # use_brute=False: no grid search for starting values (5x faster, same accuracy here)
    return np.asarray(model.fit(use_brute=False).forecast(spec.horizon), dtype=float)


def _sarimax_fit(
    y: np.ndarray, exog: pd.DataFrame, spec: SeriesModelSpec
) -> tuple[np.ndarray, dict[str, float]]:
    from statsmodels.tsa.statespace.sarimax import SARIMAX

    n = len(y)
    flags = exog.loc[:, exog.std() > 0]
    fourier = fourier_terms(np.arange(n + spec.horizon), spec.season_length, spec.fourier_k)
    names = [f"fourier_{j}" for j in range(fourier.shape[1])]
    design = pd.concat([flags, pd.DataFrame(fourier[:n], columns=names)], axis=1)
    future = pd.DataFrame(0.0, index=range(spec.horizon), columns=flags.columns)
    future = pd.concat([future, pd.DataFrame(fourier[n:], columns=names)], axis=1)
    trend = "c" if spec.order[1] == 0 or spec.trend is not None else None
    result = SARIMAX(y, exog=design.to_numpy(), order=spec.order, trend=trend).fit(disp=False)
    params = np.asarray(result.params)
    start = 1 if trend else 0
    coef = {c: float(params[start + i]) for i, c in enumerate(flags.columns)}
    return np.asarray(result.forecast(spec.horizon, exog=future.to_numpy()), dtype=float), coef


def fit_series(y: np.ndarray, exog: pd.DataFrame, spec: SeriesModelSpec) -> SeriesForecast:
    """Fit one series (y in level units); on failure return the seasonal-naive path."""
    try:
        if len(y) < _MIN_HISTORY:
            raise ValueError(f"only {len(y)} periods of history (< {_MIN_HISTORY})")
        # One BLAS thread per fit: small state-space models get many times slower when
        # OpenBLAS threads compete (parallelism comes from joblib across series instead).
        with warnings.catch_warnings(), threadpool_limits(limits=1):
            warnings.simplefilter("ignore")
            if spec.model == "ets":
                path, coef = _ets_path(y, spec), {}
            else:
                path, coef = _sarimax_fit(y, exog.reset_index(drop=True), spec)
        if not np.all(np.isfinite(path)):
            raise ValueError("non-finite forecast")
        return SeriesForecast(path, coef)
    except Exception as exc:  # any statsmodels failure means: fall back to naive
        naive = seasonal_naive_path(y, spec.season_length, spec.horizon)
        return SeriesForecast(naive, {}, error=f"{type(exc).__name__}: {exc}")


class TimeSeriesForecaster(PanelForecaster):
    """Per-series ETS or SARIMAX (+ Fourier exog); see the module docstring."""

    family = "time_series"

    def __init__(
        self,
        model: str = "ets",
        trend: str | None = "add",
        damped: bool = True,
        seasonal: str | None = "add",
        order: tuple[int, int, int] = (1, 1, 1),
        fourier_k: int = 2,
        season_length: int | None = None,
        n_jobs: int = 1,
    ) -> None:
        self.model = model
        self.trend = trend
        self.damped = damped
        self.seasonal = seasonal
        self.order = order
        self.fourier_k = fourier_k
        self.season_length = season_length
        self.n_jobs = n_jobs

    def fit(self, training_set: TrainingSet) -> TimeSeriesForecaster:
        if self.model not in {"ets", "sarimax"}:
            raise ValueError(f"model must be 'ets' or 'sarimax', not {self.model!r}")
        self._remember(training_set)
        spec = self._spec(training_set)
        sarimax = self.model == "sarimax"
        self.exog_: list[str] = [
            c for c in SARIMAX_EXOG if sarimax and c in training_set.exog_columns
        ]
        self.scales_: pd.Series = recent_level(training_set.base, spec.season_length)
        groups = training_set.base.sort_values("ds").groupby("series_id", sort=True)
        jobs = [
            delayed(fit_series)(g["y"].to_numpy(float) / self.scales_[sid], g[self.exog_], spec)
            for sid, g in groups
        ]
        fitted = Parallel(n_jobs=self.n_jobs)(jobs)
        self.series_: dict[str, SeriesForecast] = dict(
            zip((str(sid) for sid, _ in groups), fitted, strict=True)
        )
        self._log_fallbacks()
        return self

    def predict_mean(
        self, horizon: int, future_exog: pd.DataFrame | None = None
    ) -> pd.DataFrame:
        """Stored path per series plus exog coefficient x future exog (the what-if)."""
        rows = self._future_rows(horizon, future_exog, features=False)
        step = rows.groupby("series_id", sort=False).cumcount().to_numpy()
        yhat = np.empty(len(rows))
        for series_id, index in rows.groupby("series_id", sort=False).indices.items():
            fitted = self.series_[str(series_id)]
            values = fitted.path[step[index]].copy()
            for column, coef in fitted.exog_coef.items():
                values += coef * rows[column].iloc[index].fillna(0.0).to_numpy(float)
            yhat[index] = values * self.scales_[series_id]
        return self._finish(rows, yhat)

    def _spec(self, training_set: TrainingSet) -> SeriesModelSpec:
        return SeriesModelSpec(
            model=self.model,
            trend=self.trend,
            damped=bool(self.damped),
            seasonal=self.seasonal,
            order=tuple(int(v) for v in self.order),  # type: ignore[arg-type]
            fourier_k=int(self.fourier_k),
            season_length=season_length_for(training_set, self.season_length),
            horizon=training_set.horizon,
        )

    def _log_fallbacks(self) -> None:
        failed = {sid: f.error for sid, f in self.series_.items() if f.error is not None}
        for series_id, error in failed.items():
            log.warning("%s fit failed for series %s (%s): seasonal naive used instead",
                        self.model, series_id, error)
        if failed:
            log.warning("%d of %d series fell back to seasonal naive", len(failed),
                        len(self.series_))
