"""Ensemble family: the weighted mean of the best families of a run.

Combining forecasts from different model classes is the most reliable gain in the
forecasting competitions (M4, M5): errors of a global tree model, a per-series
statistical model and a regression are partly independent. The ensemble is built after
the other families, from their results only (:func:`choose_members`): its members and
weights are chosen on the tuning (inner) windows, so its score on the outer windows is as
honest as theirs, and its interval comes from its own combined residuals, with the same
conformal method as every family.

The fitted ensemble holds its fitted members: ``update`` rolls each one forward (no
refit), and the forecast is ``sum(w_i * yhat_i) / sum(w)`` on the same rows. Fitted from
scratch (a backtest of a registered ensemble), each member is built from its family and
params and fitted on the training set.
"""

from __future__ import annotations

import copy
import itertools
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from training.base import Forecaster

if TYPE_CHECKING:
    import optuna

    from features import TrainingSet

log = logging.getLogger(__name__)
MAX_MEMBERS = 3
DEFAULT_MEMBERS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("seasonal_naive", {}), ("regression", {}),
)


class EnsembleForecaster(Forecaster):
    """``members``: (family, params) pairs; ``weights``: one per member (empty = equal)."""

    family = "ensemble"

    def __init__(self, members: tuple[tuple[str, dict[str, Any]], ...] = DEFAULT_MEMBERS,
                 weights: tuple[float, ...] = ()) -> None:
        self.members = members
        self.weights = weights

    @classmethod
    def of_fitted(cls, fitted: dict[str, Forecaster], weights: Sequence[float]
                  ) -> EnsembleForecaster:
        """An ensemble of already fitted family models (what a training run refitted)."""
        members = tuple((name, model.get_params()) for name, model in fitted.items())
        model = cls(members, tuple(float(w) for w in weights))
        model.members_ = list(fitted.values())
        model._remember_members()
        return model

    def fit(self, training_set: TrainingSet) -> EnsembleForecaster:
        from training.forecasters import FAMILIES

        self.members_ = [FAMILIES[name]().set_params(**params).fit(training_set)
                         for name, params in self.members]
        self._remember_members()
        return self

    def _remember_members(self) -> None:
        weights = np.asarray(self.weights or [1.0] * len(self.members_), dtype=float)
        if len(weights) != len(self.members_) or not (weights > 0).all():
            raise ValueError(f"ensemble weights {self.weights} must be one positive number "
                             f"per member ({len(self.members_)})")
        self.weights_ = weights / weights.sum()
        first = self.members_[0]
        self.trained_origins_ = first.trained_origins_
        self.horizon_ = first.horizon_

    def origins(self) -> pd.Series:
        return self.members_[0].origins()

    def update(self, new_rows: pd.DataFrame) -> EnsembleForecaster:
        """A copy whose members are all rolled forward with ``new_rows`` (no refit)."""
        rolled = copy.copy(self)
        rolled.members_ = [member.update(new_rows) for member in self.members_]
        return rolled

    def predict_mean(self, horizon: int, future_exog: pd.DataFrame | None = None,
                     series_ids: Sequence[str] | None = None) -> pd.DataFrame:
        return self.predict_mean_with_rows(horizon, future_exog, series_ids)[0]

    def predict_mean_with_rows(
        self, horizon: int, future_exog: pd.DataFrame | None = None,
        series_ids: Sequence[str] | None = None,
    ) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The weighted mean of the members' forecasts; the rows of the first member that
        reads features (what drift monitoring logs), else the first member's."""
        outputs = [m.predict_mean_with_rows(horizon, future_exog, series_ids)
                   for m in self.members_]
        mean = outputs[0][0][["series_id", "ds", "step"]].copy()
        mean["yhat"] = 0.0
        for (frame, _), weight in zip(outputs, self.weights_, strict=True):
            mean["yhat"] += weight * _aligned(mean, frame)
        readers = [rows for m, (_, rows) in zip(self.members_, outputs, strict=True)
                   if getattr(m, "reads_features", False)]
        return mean, (readers or [outputs[0][1]])[0]

    def future_features(self, horizon: int, future_exog: pd.DataFrame | None = None,
                        series_ids: Sequence[str] | None = None) -> pd.DataFrame:
        """The feature rows of the first member that reads features (drift monitoring),
        else the first member's rows; no member forecasts for it."""
        readers = [m for m in self.members_ if getattr(m, "reads_features", False)]
        if readers:
            return readers[0].future_features(horizon, future_exog, series_ids)
        return self.members_[0].predict_mean_with_rows(horizon, future_exog, series_ids)[1]


def _aligned(target: pd.DataFrame, frame: pd.DataFrame) -> np.ndarray:
    """``frame``'s yhat in ``target``'s (series_id, ds) order."""
    keys = ["series_id", "ds"]
    if frame[keys].equals(target[keys]):
        return frame["yhat"].to_numpy(dtype=float)
    return target[keys].merge(frame[[*keys, "yhat"]], on=keys, how="left")["yhat"].to_numpy(
        dtype=float)


def choose_members(tuning_wape: dict[str, float], combined_wape: Any,
                   max_members: int = MAX_MEMBERS,
                   scopes: dict[str, str] | None = None) -> tuple[list[str], list[float]]:
    """The members and weights whose combination scores best on the tuning windows.

    Candidates: the best 2..``max_members`` families by tuning WAPE, each with equal and
    with inverse-WAPE weights; ``combined_wape(names, weights)`` scores one on the tuning
    windows (no refit). Ties keep the simpler (fewer members, equal weights). With
    ``scopes`` (family -> "local" or "global") naming both, every candidate holds the best
    local *and* the best global family (:func:`diverse_ranking`)."""
    ranked = diverse_ranking(tuning_wape, scopes or {})
    best: tuple[float, list[str], list[float]] | None = None
    for size, inverse in itertools.product(range(2, min(max_members, len(ranked)) + 1),
                                           (False, True)):
        names = ranked[:size]
        weights = [1.0 / tuning_wape[n] if inverse else 1.0 for n in names]
        score = float(combined_wape(names, weights))
        if best is None or score < best[0]:
            best = (score, names, weights)
    if best is None:
        raise ValueError(f"an ensemble needs two families with a tuning WAPE, got {ranked}")
    return best[1], best[2]


def diverse_ranking(tuning_wape: dict[str, float], scopes: dict[str, str]) -> list[str]:
    """Families by tuning WAPE, except that the best of each scope come first.

    A few tuning windows rank families noisily, and the two best are often two variants of
    one kind of model, whose errors move together. A per-series model and a panel-wide one
    err differently (the M4 and M5 winners combined the two). On the accuracy benchmark the
    two best by tuning WAPE were regression + LightGBM on the weekly set (2.4x the best
    peer's held-out WAPE); the ensemble with the pairing, 1.7x there, 1.01x and 1.08x on the
    other two sets."""
    ranked = sorted((name for name, wape in tuning_wape.items() if np.isfinite(wape)),
                    key=tuning_wape.__getitem__)
    leaders = list(dict.fromkeys(
        next(n for n in ranked if scopes.get(n) == scope)
        for scope in ("local", "global") if any(scopes.get(n) == scope for n in ranked)))
    if len(leaders) < 2:
        return ranked
    return [*sorted(leaders, key=tuning_wape.__getitem__),
            *(n for n in ranked if n not in leaders)]


def search_space(trial: optuna.Trial) -> dict[str, Any]:
    """Nothing to sample: members and weights come from the other families' results."""
    return {}
