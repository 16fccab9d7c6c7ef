"""The per-series choice among the statistical models, and the per-series roll.

**Choice by holdout.** Each candidate of ``spec.candidates`` is fitted once, on the
series' history without its last ``holdout x horizon`` periods, and forecasts those
periods (ARIMA with their realised exogenous values, as a served forecast gets the planned
ones); the smallest error (``spec.criterion``: MAE or RMSE, missing periods skipped) wins.
AICc would not do: it is not comparable across a decomposition, Theta and ARIMA. The
winner is *not* refitted: its state is rolled through the held-out periods with the
fitted parameters, exactly as :meth:`update` rolls posted rows (so one fit per candidate,
the cost of the choice). A series too short for ``holdout`` horizons (the rest must be
at least twice as long) holds out fewer, down to one. A single candidate is fitted on the
whole history, no holdout; so is every candidate of a series too short to hold even one
horizon out (then the first that fits is used).

**Fallback.** A series with fewer than ``MIN_HISTORY`` periods, or whose every candidate
fails, gets the seasonal-naive path (``kind="naive"``, ``error`` says why).

Missing periods (NaN y) are filled by :func:`fill_gaps` before any fit or roll (periods
before a series' first observation are dropped: it did not exist yet); the raw y is what
is stored, so the same posted rows always give the same filled history.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import partial

import numpy as np
from threadpoolctl import threadpool_limits

from training.forecasters.arima import fit_arima
from training.forecasters.auto_arima import fit_auto_arima
from training.forecasters.ets import fit_ets
from training.forecasters.mstl import fit_mstl
from training.forecasters.naive import seasonal_naive_path
from training.forecasters.statistical_spec import (
    Combination,
    SeriesModel,
    SeriesModelSpec,
    compact,
    exog_effect,
    fill_gaps,
)
from training.forecasters.theta import fit_theta

Fitter = Callable[[np.ndarray, np.ndarray, SeriesModelSpec], SeriesModel]
FITTERS: dict[str, Fitter] = {
    "ets": fit_ets,
    "theta_standard": partial(fit_theta, variant="standard"),
    "theta_optimised": partial(fit_theta, variant="optimised"),
    "theta_dynamic": partial(fit_theta, variant="dynamic"),
    "arima": fit_arima,
    "auto_arima": fit_auto_arima,
    "mstl": fit_mstl,
}
KINDS: tuple[str, ...] = tuple(FITTERS)
MIN_HISTORY = 10


@dataclass(frozen=True)
class SeriesForecast:
    """One series: its current path for steps 1..H at exog 0, the chosen model and what a
    roll recomputes the path from (the scaled training window ``y``, raw, NaN kept; its
    ``exog`` rows when the model reads them)."""

    path: np.ndarray
    kind: str = "naive"
    exog_coef: dict[str, float] = field(default_factory=dict)
    error: str | None = None  # why the fit (or roll) failed: then ``path`` is seasonal naive
    y: np.ndarray = field(default_factory=lambda: np.empty(0))
    exog: np.ndarray = field(default_factory=lambda: np.empty((0, 0)))
    params: SeriesModel | None = None  # None: seasonal naive
    scores: dict[str, float] = field(default_factory=dict)  # holdout error (inf: failed)


@contextmanager
def quiet_single_thread() -> Iterator[None]:
    """statsmodels' warnings off, one BLAS thread: small state-space models get many times
    slower when OpenBLAS threads compete (parallelism comes from joblib across series).
    Entered once per batch, not per series: threadpoolctl finds the BLAS libraries by
    reading the process's memory map each time, 4-6 ms, 9 % of the 9-series online retail
    panel's fit when it was entered per series."""
    # imported first: its import adds "always" filters that would beat the "ignore" below
    import statsmodels.tools.sm_exceptions  # noqa: F401

    with warnings.catch_warnings(), threadpool_limits(limits=1):
        warnings.simplefilter("ignore")
        yield


def naive_path(y: np.ndarray, spec: SeriesModelSpec) -> np.ndarray:
    """Seasonal naive after ``y`` (gaps filled; nothing observed: zeros)."""
    filled = fill_gaps(y) if np.isfinite(y).any() else np.zeros(len(y))
    return seasonal_naive_path(filled, spec.season_length, spec.horizon)


def checked(path: np.ndarray) -> np.ndarray:
    """``path``, unless it holds NaN or inf (then ValueError: the series falls back)."""
    if not np.all(np.isfinite(path)):
        raise ValueError("non-finite forecast")
    return path


def holdout_error(model: SeriesModel, y: np.ndarray, exog: np.ndarray, raw: np.ndarray,
                  spec: SeriesModelSpec) -> float:
    """``model``'s error on the periods of ``raw`` after ``y`` (inf: unusable forecast)."""
    horizon = len(raw)
    forecast = model.path(y, exog, horizon) + exog_effect(model, exog[len(y):], spec.exog)
    errors = (forecast - raw)[~np.isnan(raw)]
    if not np.all(np.isfinite(forecast)) or errors.size == 0:
        return np.inf
    if spec.criterion == "rmse":
        return float(np.sqrt(np.mean(errors ** 2)))
    return float(np.mean(np.abs(errors)))


def holdout_length(n: int, spec: SeriesModelSpec) -> int:
    """The periods held out to choose: ``spec.holdout`` horizons, fewer (down to one) when
    the rest would be shorter than twice the holdout; 0 (no choice) when even one horizon
    does not fit, or there is one candidate."""
    if len(spec.candidates) == 1:
        return 0
    for horizons in range(spec.holdout, 0, -1):
        held = horizons * spec.horizon
        if n - held >= max(MIN_HISTORY, 2 * held):
            return held
    return 0


def choose(y: np.ndarray, raw: np.ndarray, exog: np.ndarray,
           spec: SeriesModelSpec) -> tuple[SeriesModel, dict[str, float]]:
    """The winning fitted model and each candidate's holdout error (module docstring)."""
    n, held = len(y), holdout_length(len(y), spec)
    models: dict[str, SeriesModel] = {}
    scores: dict[str, float] = {}
    failures: list[str] = []
    for kind in spec.candidates:
        try:
            model = FITTERS[kind](y[:n - held], exog[:n - held], spec)
            scores[kind] = holdout_error(model, y[:n - held], exog, raw[n - held:], spec) \
                if held else 0.0
            models[kind] = model
        except Exception as exc:  # a candidate that cannot fit this series is skipped
            failures.append(f"{kind}: {type(exc).__name__}: {exc}")
            scores[kind] = np.inf
        if models and not held:
            break
    if not models:
        raise ValueError("; ".join(failures))
    ranked = sorted((kind for kind in models if np.isfinite(scores[kind])),
                    key=scores.__getitem__) or list(models)
    best = [models[kind] for kind in ranked[:max(1, spec.combine)]]
    return (best[0] if len(best) == 1 else Combination(tuple(best))), scores


def fit_series(y: np.ndarray, exog: np.ndarray, spec: SeriesModelSpec) -> SeriesForecast:
    """Choose and fit one series (y scaled, NaN = missing); seasonal naive on failure.
    Call it inside :func:`quiet_single_thread` (as :func:`fit_batch` does)."""
    try:
        if np.isfinite(y).sum() < MIN_HISTORY:
            raise ValueError(f"only {np.isfinite(y).sum()} periods of history "
                             f"(< {MIN_HISTORY})")
        first = int(np.argmax(np.isfinite(y)))  # before its first observation: no series
        y, exog = y[first:], exog[first:]
        filled = fill_gaps(y)
        model, scores = choose(filled, y, exog, spec)
        path = checked(model.path(filled, exog, spec.horizon))
        kept = compact(exog) if model.exog_coef else np.empty((0, exog.shape[1]))
        return SeriesForecast(path, model.kind, model.exog_coef, y=y, exog=kept,
                              params=model, scores=scores)
    except Exception as exc:  # any failure means: fall back to seasonal naive
        return SeriesForecast(naive_path(y, spec), error=f"{type(exc).__name__}: {exc}", y=y)


def fit_batch(items: list[tuple[np.ndarray, np.ndarray]],
              spec: SeriesModelSpec) -> list[SeriesForecast]:
    """:func:`fit_series` of each (y, exog): one joblib job per batch, not per series."""
    with quiet_single_thread():
        return [fit_series(y, exog, spec) for y, exog in items]


def roll_series(items: list[tuple[SeriesForecast, np.ndarray, np.ndarray]],
                spec: SeriesModelSpec) -> list[SeriesForecast]:
    """Each (fitted, scaled new y, new exog rows) rolled: see :func:`roll_one`."""
    with quiet_single_thread():
        return [roll_one(fitted, y_new, exog_new, spec) for fitted, y_new, exog_new in items]


def roll_one(fitted: SeriesForecast, y_new: np.ndarray, exog_new: np.ndarray,
             spec: SeriesModelSpec) -> SeriesForecast:
    """``fitted`` with the path after its training y followed by ``y_new``, from the
    fitted parameters (no re-estimation)."""
    y = np.concatenate([fitted.y, y_new])
    if fitted.params is None:  # seasonal naive since the fit
        return replace(fitted, path=naive_path(y, spec))
    try:
        exog = np.vstack([fitted.exog, exog_new]) if fitted.exog.shape[0] else \
            np.zeros((len(y), len(spec.exog)))
        path = checked(fitted.params.path(fill_gaps(y), exog, spec.horizon))
        return replace(fitted, path=path, error=None)
    except Exception as exc:  # e.g. a multiplicative season meeting y <= 0
        return replace(fitted, path=naive_path(y, spec), error=f"{type(exc).__name__}: {exc}")
