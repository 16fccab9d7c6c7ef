"""Time-series family: one statsmodels model per series, fitted in parallel with joblib.

* ``model="ets"``: Holt-Winters exponential smoothing (additive or damped trend, additive
  or multiplicative season of ``season_length`` when the series has two full seasons).
* ``model="sarimax"``: regression with ARIMA(p, d, q) errors on the exogenous ``promo`` /
  ``holiday`` columns plus ``fourier_k`` sine/cosine pairs for the yearly season (a
  52-period seasonal ARIMA is far too slow to fit per series and per trial).

Each series is fitted on y divided by its recent level ``scales_`` (numerical stability;
the scale stays fixed afterwards). Stored per series (:class:`SeriesForecast`), as plain
arrays and floats, never a statsmodels results object:

* ``path``: the forecast for steps 1..H after the series' current origin, with the
  exogenous flags at 0 (Fourier terms included), and ``exog_coef``. The SARIMAX mean
  forecast is linear in future exog (y = x'beta + ARIMA errors), so a what-if promotion
  adds ``beta_promo x level`` to that step;
* ``y``: the scaled training y, and ``params``: the fitted model — :class:`EtsParams`
  (form, smoothing / damping parameters, initial level / trend / seasons: the fit's
  ``result.params``) or :class:`SarimaxParams` (``result.params``, order, trend, the exog
  flags and their training values). ``None`` when the fit failed: that series is seasonal
  naive (logged).

**Rolling the origin** (:meth:`TimeSeriesForecaster.update`, no refit): a series' path is
recomputed from its training y followed by *all* its posted rows (``extension_``), with
the stored parameters — ETS re-runs the Holt-Winters recursion from the known initial
states; SARIMAX re-runs the Kalman filter over the extended y and design (flags + Fourier
terms continuing the time index) and reads the H-step forecasts with future flags at 0; a
seasonal-naive series repeats the last season of the extended y. Always from the training
history, never incrementally: the same rows give bit-identical forecasts however they
arrived.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from joblib import Parallel, delayed, effective_n_jobs
from threadpoolctl import threadpool_limits

from training.forecasters.common import (
    ORDER,
    PanelForecaster,
    recent_level,
    season_length_for,
)
from training.forecasters.naive import seasonal_naive_path

if TYPE_CHECKING:
    import optuna
    from statsmodels.tsa.holtwinters import ExponentialSmoothing

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
class EtsParams:
    """A fitted Holt-Winters model: its form and its ``result.params``."""

    trend: str | None
    damped: bool
    seasonal: str | None  # the season actually used (None: too short; "add": y <= 0)
    season_length: int
    smoothing: dict[str, float]  # smoothing_level[, _trend, _seasonal], damping_trend
    initial_level: float
    initial_trend: float | None
    initial_seasons: np.ndarray | None

    @classmethod
    def of(cls, model: ExponentialSmoothing, params: dict[str, Any]) -> EtsParams:
        """The parameters of a fit of ``model`` (``params``: the result's ``params``)."""
        has = {"smoothing_level": True, "smoothing_trend": model.has_trend,
               "smoothing_seasonal": model.has_seasonal, "damping_trend": model.damped_trend}
        return cls(
            trend=model.trend, damped=model.damped_trend, seasonal=model.seasonal,
            season_length=int(model.seasonal_periods or 0),
            smoothing={name: float(params[name]) for name, used in has.items() if used},
            initial_level=float(params["initial_level"]),
            initial_trend=float(params["initial_trend"]) if model.has_trend else None,
            initial_seasons=(np.asarray(params["initial_seasons"], dtype=float).copy()
                             if model.has_seasonal else None),
        )

    def forecast(self, y: np.ndarray, horizon: int) -> np.ndarray:
        """The next ``horizon`` values after ``y`` from these fixed parameters (no fit):
        the Holt-Winters recursion over ``y`` from the known initial states."""
        from statsmodels.tsa.holtwinters import ExponentialSmoothing

        model = ExponentialSmoothing(
            y, trend=self.trend, damped_trend=self.damped, seasonal=self.seasonal,
            seasonal_periods=self.season_length if self.seasonal else None,
            initialization_method="known", initial_level=self.initial_level,
            initial_trend=self.initial_trend, initial_seasonal=self.initial_seasons,
        )
        path = model.predict(self._result_params(), start=len(y), end=len(y) + horizon - 1)
        return np.asarray(path, dtype=float)

    def _result_params(self) -> dict[str, Any]:
        """The ``params`` dict of a statsmodels Holt-Winters result (no Box-Cox, no bias
        removal: the fit's defaults)."""
        smoothing = {name: self.smoothing.get(name) for name in
                     ("smoothing_level", "smoothing_trend", "smoothing_seasonal",
                      "damping_trend")}
        seasons = np.empty(0) if self.initial_seasons is None else self.initial_seasons
        return {**smoothing, "initial_level": self.initial_level,
                "initial_trend": self.initial_trend, "initial_seasons": seasons,
                "use_boxcox": False, "lamda": None, "remove_bias": False}


@dataclass(frozen=True)
class SarimaxParams:
    """A fitted regression with ARIMA errors: ``result.params`` and what the design needs."""

    params: np.ndarray
    order: tuple[int, int, int]
    trend: str | None
    flags: tuple[str, ...]  # exog columns in the design (those that varied in training)
    exog: np.ndarray  # their training values (periods x flags; int8 when exact)


@dataclass(frozen=True)
class SeriesForecast:
    """One series: its current path for steps 1..H at exog 0, exog coefficients, and what a
    roll recomputes the path from (scaled training ``y``, fitted ``params``)."""

    path: np.ndarray
    exog_coef: dict[str, float] = field(default_factory=dict)
    error: str | None = None  # why the fit (or roll) failed: then ``path`` is seasonal naive
    y: np.ndarray = field(default_factory=lambda: np.empty(0))
    params: EtsParams | SarimaxParams | None = None  # None: seasonal naive


def fourier_terms(t: np.ndarray, period: int, k: int) -> np.ndarray:
    """sin/cos pairs 1..k of the season ``period`` at time indices ``t`` (rows x 2k)."""
    k = min(k, period // 2)
    angles = [2.0 * np.pi * j * t / period for j in range(1, k + 1)]
    columns = [f(a) for a in angles for f in (np.sin, np.cos)]
    return np.column_stack(columns) if columns else np.empty((len(t), 0))


def sarimax_design(flags: np.ndarray, start: int, spec: SeriesModelSpec) -> np.ndarray:
    """The SARIMAX exog of consecutive periods from time index ``start`` (0 = the series'
    first training period): the flags' values, then the Fourier terms."""
    t = np.arange(start, start + len(flags))
    return np.column_stack([flags, fourier_terms(t, spec.season_length, spec.fourier_k)])


def _compact(values: np.ndarray) -> np.ndarray:
    """``values`` as int8 when that is exact (0/1 flags: an 8x smaller pickle), else as is."""
    fits = values.size == 0 or (np.isfinite(values).all() and np.abs(values).max() <= 127)
    if not fits:
        return values
    small = values.astype(np.int8)
    return small if np.array_equal(small, values) else values


def sarimax_trend(spec: SeriesModelSpec) -> str | None:
    """A constant unless the errors are differenced without a drift asked for."""
    return "c" if spec.order[1] == 0 or spec.trend is not None else None


def _ets_fit(y: np.ndarray, spec: SeriesModelSpec) -> tuple[np.ndarray, EtsParams]:
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
    result = model.fit(use_brute=False)
    path = np.asarray(result.forecast(spec.horizon), dtype=float)
    return path, EtsParams.of(model, result.params)


def _sarimax_fit(
    y: np.ndarray, exog: pd.DataFrame, spec: SeriesModelSpec
) -> tuple[np.ndarray, dict[str, float], SarimaxParams]:
    from statsmodels.tsa.statespace.sarimax import SARIMAX

    n = len(y)
    flags = exog.loc[:, exog.std() > 0]
    values = flags.to_numpy(dtype=float)
    future = sarimax_design(np.zeros((spec.horizon, flags.shape[1])), n, spec)
    trend = sarimax_trend(spec)
    model = SARIMAX(y, exog=sarimax_design(values, 0, spec), order=spec.order, trend=trend)
    result = model.fit(disp=False)
    params = np.asarray(result.params, dtype=float)
    start = 1 if trend else 0
    coef = {c: float(params[start + i]) for i, c in enumerate(flags.columns)}
    fitted = SarimaxParams(params, spec.order, trend, tuple(flags.columns), _compact(values))
    return np.asarray(result.forecast(spec.horizon, exog=future), dtype=float), coef, fitted


def _sarimax_path(y: np.ndarray, flags: np.ndarray, fitted: SarimaxParams,
                  spec: SeriesModelSpec) -> np.ndarray:
    """The H-step forecasts after ``y`` (flags: its exog, periods x flags) with the fitted
    parameters: the Kalman filter over y followed by H missing periods at flags 0."""
    from statsmodels.tsa.statespace.sarimax import SARIMAX

    n, horizon = len(y), spec.horizon
    future = np.zeros((horizon, len(fitted.flags)))
    exog = sarimax_design(np.vstack([flags, future]), 0, spec)
    endog = np.concatenate([y, np.full(horizon, np.nan)])
    model = SARIMAX(endog, exog=exog, order=fitted.order, trend=fitted.trend)
    return np.asarray(model.filter(fitted.params, return_ssm=True).forecasts[0, n:], dtype=float)


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
                (path, params), coef = _ets_fit(y, spec), {}
            else:
                path, coef, params = _sarimax_fit(y, exog.reset_index(drop=True), spec)
        if not np.all(np.isfinite(path)):
            raise ValueError("non-finite forecast")
        return SeriesForecast(path, coef, y=y, params=params)
    except Exception as exc:  # any statsmodels failure means: fall back to naive
        naive = seasonal_naive_path(y, spec.season_length, spec.horizon)
        return SeriesForecast(naive, {}, error=f"{type(exc).__name__}: {exc}", y=y)


def roll_series(items: list[tuple[SeriesForecast, np.ndarray, pd.DataFrame]],
                spec: SeriesModelSpec) -> list[SeriesForecast]:
    """Each (fitted, scaled new y, new exog) rolled: see :func:`_roll_one` (a joblib job)."""
    with warnings.catch_warnings(), threadpool_limits(limits=1):
        warnings.simplefilter("ignore")
        return [_roll_one(fitted, y_new, exog_new, spec) for fitted, y_new, exog_new in items]


def _roll_one(fitted: SeriesForecast, y_new: np.ndarray, exog_new: pd.DataFrame,
              spec: SeriesModelSpec) -> SeriesForecast:
    """``fitted`` with the path after its training y followed by ``y_new`` (scaled; exog:
    the new periods' exogenous columns), from the fitted parameters (no re-estimation)."""
    y = np.concatenate([fitted.y, y_new])
    if fitted.params is None:  # seasonal naive since the fit
        return replace(fitted, path=seasonal_naive_path(y, spec.season_length, spec.horizon))
    try:
        path = _rolled_path(y, exog_new, fitted.params, spec)
        if not np.all(np.isfinite(path)):
            raise ValueError("non-finite forecast")
        return replace(fitted, path=path, error=None)
    except Exception as exc:  # e.g. a multiplicative season meeting y <= 0
        naive = seasonal_naive_path(y, spec.season_length, spec.horizon)
        return replace(fitted, path=naive, error=f"{type(exc).__name__}: {exc}")


def _rolled_path(y: np.ndarray, exog_new: pd.DataFrame, params: EtsParams | SarimaxParams,
                 spec: SeriesModelSpec) -> np.ndarray:
    if isinstance(params, EtsParams):
        return params.forecast(y, spec.horizon)
    new = exog_new[list(params.flags)].fillna(0.0).to_numpy(dtype=float)
    return _sarimax_path(y, np.vstack([params.exog, new]), params, spec)


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
        spec = self.spec_ = self._spec(training_set)
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

    def _rolled(self, series_ids: list[str]) -> None:
        """Each series' path recomputed from its training y + its whole extension."""
        self.series_ = dict(self.series_)
        extension = self.extension_[self.extension_["series_id"].isin(series_ids)]
        extension = extension.sort_values(ORDER, kind="stable")
        groups = extension.groupby("series_id", sort=True)
        ids = [str(series_id) for series_id, _ in groups]
        items = [
            (self.series_[sid], g["y"].to_numpy(float) / self.scales_[sid], g[self.exog_])
            for sid, (_, g) in zip(ids, groups, strict=True)
        ]
        # One job per worker, not per series: a job's setup (BLAS thread limit) costs ms.
        chunks = np.array_split(np.arange(len(items)), effective_n_jobs(self.n_jobs))
        jobs = [delayed(roll_series)([items[i] for i in chunk], self.spec_)
                for chunk in chunks if len(chunk)]
        rolled = [new for batch in Parallel(n_jobs=self.n_jobs)(jobs) for new in batch]
        for series_id, new in zip(ids, rolled, strict=True):
            if new.error is not None and new.params is not None:
                log.warning("%s roll failed for series %s (%s): seasonal naive used instead",
                            self.model, series_id, new.error)
            self.series_[series_id] = new

    reads_features = False

    def _predict_rows(self, rows: pd.DataFrame) -> np.ndarray:
        """Stored path per series plus exog coefficient x future exog (the what-if)."""
        step = rows["step"].to_numpy() - 1
        yhat = np.empty(len(rows))
        for series_id, index in rows.groupby("series_id", sort=False).indices.items():
            fitted = self.series_[str(series_id)]
            values = fitted.path[step[index]].copy()
            for column, coef in fitted.exog_coef.items():
                values += coef * rows[column].iloc[index].fillna(0.0).to_numpy(float)
            yhat[index] = values * self.scales_[series_id]
        return yhat

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


def search_space(trial: optuna.Trial) -> dict[str, Any]:
    """ETS (trend / damping / season type) or SARIMAX ((p, d, q) <= (2, 1, 1), Fourier k)."""
    model = trial.suggest_categorical("model", ["ets", "sarimax"])
    if model == "ets":
        return {
            "model": "ets",
            "trend": trial.suggest_categorical("trend", ["add", None]),
            "damped": trial.suggest_categorical("damped", [True, False]),
            "seasonal": trial.suggest_categorical("seasonal", ["add", "mul"]),
        }
    p = trial.suggest_int("p", 0, 2)
    d = trial.suggest_int("d", 0, 1)
    q = trial.suggest_int("q", 0, 1)
    return {
        "model": "sarimax",
        "order": (p, d, q),
        "fourier_k": trial.suggest_int("fourier_k", 1, 3),
        "trend": trial.suggest_categorical("sarimax_drift", ["add", None]),
    }
