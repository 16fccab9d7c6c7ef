"""What every per-series statistical model shares: its spec, its protocol, gap filling.

Exists so the model modules (:mod:`~training.forecasters.ets`, ``theta``, ``arima``,
``mstl``) and the per-series choice (:mod:`~training.forecasters.statistical_select`)
read one definition without importing each other.

A fitted model (:class:`SeriesModel`) is a frozen dataclass of plain floats and arrays
(it is pickled into MLflow and served, never a statsmodels results object) with one
method, ``path(y, exog, horizon)``: the mean forecast of the ``horizon`` periods after
``y`` with its fitted parameters and *no* re-estimation, future exogenous values at 0.
``y`` is the series' whole history (training window + posted rows, gaps filled), so the
same rows always give the same path: that is how a forecast rolls forward without a refit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class SeriesModelSpec:
    """What a per-series fit needs (one object, picklable to joblib workers)."""

    candidates: tuple[str, ...]  # model kinds to choose among (one: no choice)
    season_length: int  # the primary season (7 daily, 52 weekly, 12 monthly)
    seasons: tuple[int, ...]  # every season MSTL takes out (daily: 7 and 365)
    horizon: int
    exog: tuple[str, ...] = ()  # the forecaster's exogenous columns, in matrix order
    trend: str | None = "add"
    damped: bool = True
    seasonal: str | None = "add"
    order: tuple[int, int, int] = (1, 1, 1)
    fourier_k: int = 2
    holdout: int = 1  # horizons held out to choose the model
    criterion: str = "mae"  # holdout error: "mae" or "rmse"
    combine: int = 1  # the best `combine` candidates by holdout are averaged (1: choose)


class SeriesModel(Protocol):
    """A fitted per-series model (see the module docstring)."""

    @property
    def kind(self) -> str: ...

    @property
    def exog_coef(self) -> dict[str, float]: ...

    def path(self, y: np.ndarray, exog: np.ndarray, horizon: int) -> np.ndarray: ...


def fill_gaps(y: np.ndarray) -> np.ndarray:
    """``y`` with missing periods (NaN) filled: linear between observed neighbours, the
    first observed value before the first, the last one after the last."""
    y = np.asarray(y, dtype=float)
    missing = np.isnan(y)
    if not missing.any():
        return y
    if missing.all():
        raise ValueError("no observed y")
    at = np.flatnonzero(~missing)
    filled = y.copy()
    filled[missing] = np.interp(np.flatnonzero(missing), at, y[at])
    return filled


def exog_effect(model: SeriesModel, exog: np.ndarray, names: tuple[str, ...]) -> np.ndarray:
    """What ``model``'s exogenous coefficients add to a path over rows ``exog``."""
    effect = np.zeros(len(exog))
    for name, coef in model.exog_coef.items():
        effect += coef * exog[:, names.index(name)]
    return effect


def compact(values: np.ndarray) -> np.ndarray:
    """``values`` as int8 when that is exact (0/1 flags: an 8x smaller pickle), else as is."""
    fits = values.size == 0 or (np.isfinite(values).all() and np.abs(values).max() <= 127)
    if not fits:
        return values
    small = values.astype(np.int8)
    return small if np.array_equal(small, values) else values


@dataclass(frozen=True)
class Combination:
    """The mean of several fitted models of one series (each rolls with its own state):
    the forecast of the best few candidates by holdout, which is steadier than the single
    best on a short holdout (the M4 competition's lesson: combinations beat selection)."""

    members: tuple[SeriesModel, ...]

    @property
    def kind(self) -> str:
        return "+".join(member.kind for member in self.members)

    @property
    def exog_coef(self) -> dict[str, float]:
        names = {name for member in self.members for name in member.exog_coef}
        share = 1.0 / len(self.members)
        return {name: share * sum(m.exog_coef.get(name, 0.0) for m in self.members)
                for name in sorted(names)}

    def path(self, y: np.ndarray, exog: np.ndarray, horizon: int) -> np.ndarray:
        paths = [member.path(y, exog, horizon) for member in self.members]
        return np.mean(paths, axis=0)
