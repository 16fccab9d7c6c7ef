"""The statistical family (``time_series``): per series, the model that forecasts it best.

Candidates (one module each, plain-array parameters, see
:mod:`~training.forecasters.statistical_spec`):

* ``ets`` — Holt-Winters exponential smoothing, season of ``season_length``
  (:mod:`~training.forecasters.ets`);
* ``theta_standard``, ``theta_optimised``, ``theta_dynamic`` — the Theta method on the
  classically deseasonalised series (:mod:`~training.forecasters.theta`);
* ``arima`` — regression with ARIMA errors on the pipeline's exogenous columns plus
  Fourier terms (:mod:`~training.forecasters.arima`), order fixed by ``order``;
* ``auto_arima`` — the same regression, its ARIMA order chosen per series (stepwise AICc,
  seasonal differencing, seasonal AR / MA for seasons up to 24 periods;
  :mod:`~training.forecasters.auto_arima`); the ARIMA kinds are the ones a scenario moves;
* ``mstl`` — multiple-seasonal decomposition (daily: week and year) + ETS on the rest
  (:mod:`~training.forecasters.mstl`).

``model="auto"`` chooses per series by a holdout of the last ``holdout`` horizons
(:mod:`~training.forecasters.statistical_select`) — or, with ``combine`` = k > 1, averages
the k best candidates (:class:`~training.forecasters.statistical_spec.Combination`); a
kind name (or ``"sarimax"``, the former name of ``"arima"``) forces that model for every
series. Each series is fitted on its last ``history_years`` of data (the window also
bounds the state a roll re-runs), divided by its recent level ``scales_`` (numerical
stability; fixed afterwards), in parallel with joblib (``n_jobs``) in batches of series.

Stored per series (:class:`~training.forecasters.statistical_select.SeriesForecast`), as
plain arrays and floats, never a statsmodels results object: the path for steps 1..H at
exog 0, the exog coefficients (a what-if adds ``coef x value x level``), the raw scaled
window ``y`` (NaN = missing), the exog rows when the model reads them, the fitted
``params`` (``None``: seasonal naive, logged) and the candidates' holdout errors.

**Rolling the origin** (:meth:`TimeSeriesForecaster.update`, no refit): a series' path is
recomputed from its training window followed by *all* its posted rows, gaps filled, with
the stored parameters (``params.path``). Always from the training window, never
incrementally: the same rows give bit-identical forecasts however they arrived.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from joblib import Parallel, delayed, effective_n_jobs

from training.distributed import active_engine
from training.forecasters.auto_arima import MAX_SEASON
from training.forecasters.common import ORDER, PanelForecaster, recent_level, season_length_for
from training.forecasters.statistical_select import (
    KINDS,
    SeriesForecast,
    fit_batch,
    roll_series,
)
from training.forecasters.statistical_spec import SeriesModelSpec

if TYPE_CHECKING:
    import optuna

    from features import TrainingSet

__all__ = ["KINDS", "SeriesForecast", "TimeSeriesForecaster", "search_space"]

log = logging.getLogger(__name__)
PERIODS_PER_YEAR = {"D": 365, "W": 52, "M": 12}
ALIASES = {"sarimax": "arima"}  # the name specs used before the family chose per series
MIN_WINDOW = 120  # periods: monthly series get 10 years (daily and weekly: history_years)
BATCHES_PER_WORKER = 4  # joblib jobs per worker: balances long and short series
# Panels of fewer periods (all series' fitted windows together) are fitted in this process,
# unless a cluster is in use: on the 9 x 48-week bench panel, on a busy machine, starting
# joblib's workers (each imports statsmodels and scipy) made the first fit 5.5 s, and a warm
# pool's fits took 1.6-1.9 s against 0.9-1.6 s in-process.
SMALL_PANEL = 2_000


class TimeSeriesForecaster(PanelForecaster):
    """Per-series ETS, Theta, ARIMA (fixed or automatic order) or MSTL, chosen by holdout;
    see the module docstring."""

    family = "time_series"

    def __init__(
        self,
        model: str = "auto",
        trend: str | None = "add",
        damped: bool = True,
        seasonal: str | None = "add",
        order: tuple[int, int, int] = (1, 1, 1),
        fourier_k: int = 2,
        history_years: float = 3.0,
        holdout: int = 2,
        criterion: str = "mae",
        combine: int = 3,
        season_length: int | None = None,
        n_jobs: int = 1,
    ) -> None:
        self.model = model
        self.trend = trend
        self.damped = damped
        self.seasonal = seasonal
        self.order = order
        self.fourier_k = fourier_k
        self.history_years = history_years
        self.holdout = holdout
        self.criterion = criterion
        self.combine = combine
        self.season_length = season_length
        self.n_jobs = n_jobs

    def fit(self, training_set: TrainingSet) -> TimeSeriesForecaster:
        self._remember(training_set)
        spec = self.spec_ = self._spec(training_set)
        self.exog_: list[str] = list(spec.exog)
        self.window_: int = history_window(self.history_years, training_set.freq)
        self.scales_: pd.Series = recent_level(training_set.base, spec.season_length)
        groups = training_set.base.sort_values("ds").groupby("series_id", sort=True)
        ids = [str(series_id) for series_id, _ in groups]
        items = [(self._scaled_y(sid, g)[-self.window_:], self._exog(g)[-self.window_:])
                 for sid, (_, g) in zip(ids, groups, strict=True)]
        fitted = self._in_batches(fit_batch, items, sum(len(y) for y, _ in items))
        self.series_: dict[str, SeriesForecast] = dict(zip(ids, fitted, strict=True))
        self._log_choices()
        return self

    def chosen_models(self) -> pd.Series:
        """series_id -> the model kind forecasting it ("naive": the fit fell back)."""
        return pd.Series({sid: f.kind for sid, f in self.series_.items()}, name="model")

    def _rolled(self, series_ids: list[str]) -> None:
        """Each series' path recomputed from its training window + its whole extension."""
        self.series_ = dict(self.series_)
        extension = self.extension_[self.extension_["series_id"].isin(series_ids)]
        groups = extension.sort_values(ORDER, kind="stable").groupby("series_id", sort=True)
        ids = [str(series_id) for series_id, _ in groups]
        items = [(self.series_[sid], self._scaled_y(sid, g), self._exog(g))
                 for sid, (_, g) in zip(ids, groups, strict=True)]
        periods = sum(len(fitted.y) + len(y) for fitted, y, _ in items)
        for series_id, new in zip(ids, self._in_batches(roll_series, items, periods),
                                  strict=True):
            if new.error is not None and new.params is not None:
                log.warning("%s roll failed for series %s (%s): seasonal naive used instead",
                            new.kind, series_id, new.error)
            self.series_[series_id] = new

    def _in_batches(self, job: Any, items: list[Any], periods: int) -> list[Any]:
        """``job(batch, spec)`` over batches of ``items``, in parallel unless the panel is
        small (``periods`` < ``SMALL_PANEL``) and no cluster is in use; results in order.
        Batches, not one job per series: a job's setup (BLAS thread limit) costs ms."""
        workers = effective_n_jobs(self.n_jobs)
        if workers == 1 or (periods < SMALL_PANEL and active_engine() is None):
            return list(job(items, self.spec_))
        count = min(len(items), workers * BATCHES_PER_WORKER)
        batches = [c for c in np.array_split(np.arange(len(items)), max(count, 1)) if len(c)]
        jobs = [delayed(job)([items[i] for i in batch], self.spec_) for batch in batches]
        return [out for result in Parallel(n_jobs=self.n_jobs)(jobs) for out in result]

    def _scaled_y(self, series_id: str, rows: pd.DataFrame) -> np.ndarray:
        return rows["y"].to_numpy(dtype=float, na_value=np.nan) / self.scales_[series_id]

    def _exog(self, rows: pd.DataFrame) -> np.ndarray:
        """The exogenous columns of ``rows`` as a float matrix (missing values: 0)."""
        values = rows[self.exog_].to_numpy(dtype=float, na_value=np.nan)
        return np.nan_to_num(values, nan=0.0).reshape(len(rows), len(self.exog_))

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
        season = season_length_for(training_set, self.season_length)
        year = _per_year(training_set.freq)
        return SeriesModelSpec(
            candidates=self._candidates(season), season_length=season,
            seasons=tuple(sorted({season, year} - {1})), horizon=training_set.horizon,
            exog=tuple(training_set.exog_columns), trend=self.trend, damped=bool(self.damped),
            seasonal=self.seasonal, order=tuple(int(v) for v in self.order),  # type: ignore[arg-type]
            fourier_k=int(self.fourier_k),
            holdout=int(self.holdout), criterion=self.criterion, combine=int(self.combine),
        )

    def _candidates(self, season: int) -> tuple[str, ...]:
        """The kinds to choose among: all of them for ``model="auto"``, except
        ``auto_arima`` when the season is too long for its seasonal orders (it is then
        ``arima`` with an order search: on the demo's weekly panel, season 52, it made the
        backtest 2.7x slower and its WAPE 0.232 instead of 0.225)."""
        if self.criterion not in {"mae", "rmse"}:
            raise ValueError(f"criterion must be 'mae' or 'rmse', not {self.criterion!r}")
        if self.model == "auto":
            return tuple(k for k in KINDS if k != "auto_arima" or season <= MAX_SEASON)
        kind = ALIASES.get(self.model, self.model)
        if kind not in KINDS:
            raise ValueError(f"model must be 'auto' or one of {KINDS}, not {self.model!r}")
        return (kind,)

    def _log_choices(self) -> None:
        failed = {sid: f.error for sid, f in self.series_.items() if f.error is not None}
        for series_id, error in failed.items():
            log.warning("time_series fit failed for series %s (%s): seasonal naive used "
                        "instead", series_id, error)
        if failed:
            log.warning("%d of %d series fell back to seasonal naive", len(failed),
                        len(self.series_))
        chosen = self.chosen_models()
        members = chosen.str.split("+").explode().value_counts()
        log.info("time_series: series combining each model (of %d): %s", len(chosen),
                 ", ".join(f"{name} {count}" for name, count in members.items()))
        log.debug("time_series combinations chosen: %s", chosen.value_counts().to_dict())


def _per_year(freq: str) -> int:
    return PERIODS_PER_YEAR.get(freq, 1)


def history_window(history_years: float, freq: str) -> int:
    """The periods each series is fitted on: ``history_years``, but never fewer than
    :data:`MIN_WINDOW` (3 years of months are too few to hold two horizons out and still
    fit a seasonal model: the choice then never happened)."""
    return max(MIN_WINDOW, round(history_years * _per_year(freq)))


FIRST_TRIAL: dict[str, Any] = {  # the defaults, tried first by a new study
    "model": "auto", "damped": True, "seasonal": "add", "history_years": 3.0,
    "criterion": "mae", "p": 1, "d": 1, "q": 1, "fourier_k": 2,
}


def search_space(trial: optuna.Trial) -> dict[str, Any]:
    """What the per-series ranking does not settle: the damping of the trend (ETS, MSTL),
    Holt-Winters' season type, the history window, the holdout error, ARIMA's order and
    Fourier terms; and whether the per-series choice is made at all, or every series gets
    the automatic seasonal ARIMA (on the daily rail panel the choice on one 28-day holdout
    per series scored 0.087 held-out WAPE, the ARIMA alone 0.061; on the weekly and monthly
    sets the choice was better). Fixed, not tuned: the candidate set, the holdout (2
    horizons) and the mean of the 3 best — a few tuning windows judge them too noisily."""
    p = trial.suggest_int("p", 0, 2)
    d = trial.suggest_int("d", 0, 1)
    q = trial.suggest_int("q", 0, 1)
    return {
        "model": trial.suggest_categorical("model", ["auto", "auto_arima"]),
        "damped": trial.suggest_categorical("damped", [True, False]),
        "seasonal": trial.suggest_categorical("seasonal", ["add", "mul"]),
        "history_years": trial.suggest_categorical("history_years", [3.0, 5.0]),
        "criterion": trial.suggest_categorical("criterion", ["mae", "rmse"]),
        "order": (p, d, q),
        "fourier_k": trial.suggest_int("fourier_k", 1, 3),
    }
