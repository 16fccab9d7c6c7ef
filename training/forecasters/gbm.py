"""Gradient boosting family: one global LightGBM model across all series.

Key columns are pandas categoricals (categories fixed at fit, an unseen key is missing).
With ``scale_target`` y and its lag / rolling features are divided by a level — by default
each row's level at its origin (``target_scale="row"``), else the series' recent level — so
the trees learn relative patterns shared by large and small series. The
``strategy`` (tuned) says how the H steps are made: one direct model (y up to ds - H), one
per bucket of steps, or one recursive model (:mod:`training.forecasters.strategy`).
``objective="tweedie"`` suits sales with many zeros (y must be >= 0; otherwise it falls
back to "l2").
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from training.forecasters.common import (
    TARGET_SCALES,
    GlobalForecaster,
    target_derived_columns,
)
from training.forecasters.regression import split_feature_columns
from training.forecasters.strategy import STRATEGIES

if TYPE_CHECKING:
    import optuna

    from features import TrainingSet

log = logging.getLogger(__name__)
_SAID: set[str] = set()  # warnings already given in this process (then at DEBUG)


def _say_once(message: str) -> None:
    """A warning that would repeat for every window and trial: WARNING once, then DEBUG."""
    log.log(logging.DEBUG if message in _SAID else logging.WARNING, message)
    _SAID.add(message)



class LightGBMForecaster(GlobalForecaster):
    """LightGBM regressor on the pipeline's features (params as in LightGBM's docs)."""

    family = "lightgbm"

    def __init__(
        self,
        num_leaves: int = 31,
        learning_rate: float = 0.05,
        n_estimators: int = 300,
        min_child_samples: int = 20,
        feature_fraction: float = 0.9,
        lambda_l2: float = 0.0,
        objective: str = "l2",
        scale_target: bool = True,
        season_length: int | None = None,
        seed: int = 0,
        n_jobs: int = 1,
        strategy: str = "direct",
        target_transform: str = "asinh",
        target_scale: str = "row",
    ) -> None:
        self.num_leaves = num_leaves
        self.learning_rate = learning_rate
        self.n_estimators = n_estimators
        self.min_child_samples = min_child_samples
        self.feature_fraction = feature_fraction
        self.lambda_l2 = lambda_l2
        self.objective = objective
        self.scale_target = scale_target
        self.season_length = season_length
        self.seed = seed
        self.n_jobs = n_jobs
        self.strategy = strategy
        self.target_transform = target_transform
        self.target_scale = target_scale

    def _fit_direct(self, training_set: TrainingSet) -> LightGBMForecaster:
        self._remember(training_set)
        panel = training_set.panel
        categorical, numeric = split_feature_columns(panel, training_set.feature_columns)
        self.features_: list[str] = categorical + numeric
        self.derived_: list[str] = target_derived_columns(numeric)
        self.categories_: dict[str, list[str]] = {
            c: sorted(panel[c].dropna().astype(str).unique().tolist()) for c in categorical
        }
        self.scales_: pd.Series = self._fit_scales(training_set)
        rows = panel[panel["y"].notna()]
        design, scale = self._design(rows)
        self.model_: lgb.LGBMRegressor = self._make_model(rows["y"]).fit(
            design, self._encode(rows["y"].to_numpy() / scale)
        )
        return self

    def _predict_direct(self, rows: pd.DataFrame) -> np.ndarray:
        matrix, scale = self._matrix(rows, self.features_, self.categories_)
        return self._decode(self._predict_matrix(matrix), scale)

    def _predict_matrix(self, matrix: np.ndarray) -> np.ndarray:
        """The booster on a float matrix of ``features_`` (keys as category codes)."""
        return self.model_.booster_.predict(matrix)

    def feature_importances(self) -> pd.Series:
        """Total split gain per feature, largest first (what the trees rely on); summed
        over the members of a bucketed or recursive strategy and the halves of a hedge."""
        parts = self.members_ or self.halves_
        if parts:
            gains = pd.concat([m.feature_importances() for m in parts])
            return gains.groupby(level=0).sum().sort_values(ascending=False)
        gain = self.model_.booster_.feature_importance(importance_type="gain")
        importances = pd.Series(gain, index=self.features_, name="gain", dtype=float)
        return importances.sort_values(ascending=False)

    def _design(self, rows: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
        """Features with fixed categories and target-derived columns in series-scale units."""
        design, scale = self._scaled(rows, self.features_)
        for column, categories in self.categories_.items():
            values = design[column].astype("str")
            known = values.where(values.isin(categories))
            design[column] = pd.Categorical(known, categories=categories)
        return design, scale

    def _make_model(self, y: pd.Series) -> lgb.LGBMRegressor:
        objective = self.objective
        if objective == "tweedie" and (y < 0).any():
            _say_once("negative y in the training data: tweedie objective replaced by l2")
            objective = "l2"
        return lgb.LGBMRegressor(
            objective=objective,
            num_leaves=self.num_leaves,
            learning_rate=self.learning_rate,
            n_estimators=self.n_estimators,
            min_child_samples=self.min_child_samples,
            colsample_bytree=self.feature_fraction,
            reg_lambda=self.lambda_l2,
            random_state=self.seed,
            n_jobs=lightgbm_threads(self.n_jobs, len(y)),
            verbose=-1,
        )


SMALL_FIT_ROWS = 100_000  # rows of a fit from which LightGBM gets n_jobs threads


def lightgbm_threads(n_jobs: int, rows: int) -> int:
    """LightGBM's threads for a fit on ``rows``: one below :data:`SMALL_FIT_ROWS`. OpenMP
    threads spin-wait for each other; on a busy 2-core machine a fit of 432 rows took 11-33 s
    with every core's thread and 0.5 s with one, and of 21,640 rows 17-35 s against 2.4-4.7 s
    (`n_jobs` counts from that size up)."""
    return 1 if rows < SMALL_FIT_ROWS else n_jobs


FIRST_TRIAL: dict[str, Any] = {  # the defaults (lambda_l2 at its range's floor)
    "num_leaves": 31, "learning_rate": 0.05, "n_estimators": 300, "min_child_samples": 20,
    "feature_fraction": 0.9, "lambda_l2": 1e-3, "objective": "l2", "strategy": "direct",
    "target_scale": "row",
}


def search_space(trial: optuna.Trial) -> dict[str, Any]:
    """Tree size, learning rate x rounds, leaf size, column sampling, L2, objective, the
    multi-step strategy (:mod:`training.forecasters.strategy`) and what y is scaled by
    (``target_scale``: each row's level at its origin, or the series' level)."""
    return {
        "num_leaves": trial.suggest_int("num_leaves", 7, 63, log=True),
        "learning_rate": trial.suggest_float("learning_rate", 0.02, 0.2, log=True),
        "n_estimators": trial.suggest_int("n_estimators", 100, 500, step=50),
        "min_child_samples": trial.suggest_int("min_child_samples", 5, 50, log=True),
        "feature_fraction": trial.suggest_float("feature_fraction", 0.5, 1.0),
        "lambda_l2": trial.suggest_float("lambda_l2", 1e-3, 10.0, log=True),
        "objective": trial.suggest_categorical("objective", ["l2", "tweedie"]),
        "strategy": trial.suggest_categorical("strategy", list(STRATEGIES)),
        "target_scale": trial.suggest_categorical("target_scale", list(TARGET_SCALES)),
    }
