"""Regression family: one global Ridge / ElasticNet model across all series.

y and its lag / rolling features are divided by a level — by default each row's level at
its origin (its longest rolling mean, ``target_scale="row"``), else the series' recent level
(mean |y| over its last season) — so a large and a small store share one model and a
growing series stays in range: coefficients then describe relative effects (a promotion's
lift, the weight of last year's sales). Key columns are one-hot encoded; numeric features are
median-imputed and standardised. The ``strategy`` (tuned) says how the H steps are made:
one direct model (y up to ds - H), one per bucket of steps, or one recursive model
(:mod:`training.forecasters.strategy`).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import ElasticNet, Ridge
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from training.forecasters.common import (
    TARGET_SCALES,
    GlobalForecaster,
    target_derived_columns,
)
from training.forecasters.strategy import STRATEGIES

if TYPE_CHECKING:
    import optuna

    from features import TrainingSet

log = logging.getLogger(__name__)


def split_feature_columns(panel: pd.DataFrame, features: list[str]) -> tuple[list[str], list[str]]:
    """(categorical, numeric) feature columns: text columns (the keys) are categorical."""
    categorical = [
        c for c in features
        if not (pd.api.types.is_numeric_dtype(panel[c]) or pd.api.types.is_bool_dtype(panel[c]))
    ]
    return categorical, [c for c in features if c not in categorical]


def complete_training_rows(panel: pd.DataFrame, derived: list[str]) -> pd.DataFrame:
    """Rows with a known y; rows missing a lag are dropped when at least half remain."""
    known = panel[panel["y"].notna()]
    complete = known.dropna(subset=derived) if derived else known
    return complete if len(complete) >= 0.5 * len(known) else known


class RegressionForecaster(GlobalForecaster):
    """Ridge (``l1_ratio=0``) or ElasticNet (``l1_ratio>0``) on the pipeline's features."""

    family = "regression"

    def __init__(
        self,
        alpha: float = 1.0,
        l1_ratio: float = 0.0,
        scale_target: bool = True,
        max_iter: int = 5000,
        season_length: int | None = None,
        strategy: str = "direct",
        target_transform: str = "asinh",
        target_scale: str = "row",
    ) -> None:
        self.alpha = alpha
        self.l1_ratio = l1_ratio
        self.scale_target = scale_target
        self.max_iter = max_iter
        self.season_length = season_length
        self.strategy = strategy
        self.target_transform = target_transform
        self.target_scale = target_scale

    def _fit_direct(self, training_set: TrainingSet) -> RegressionForecaster:
        self._remember(training_set)
        features = training_set.feature_columns
        self.categorical_, self.numeric_ = split_feature_columns(training_set.panel, features)
        self.derived_: list[str] = target_derived_columns(self.numeric_)
        self.scales_: pd.Series = self._fit_scales(training_set)
        rows = complete_training_rows(training_set.panel, self.derived_)
        design, scale = self._design(rows)
        target = self._encode(rows["y"].to_numpy() / scale)
        self.model_: Pipeline = self._make_model().fit(design, target)
        log.debug("regression fitted on %d rows, %d features", len(rows), len(features))
        return self

    def _predict_direct(self, rows: pd.DataFrame) -> np.ndarray:
        design, scale = self._design(rows)
        return self._decode(self.model_.predict(design), scale)

    def _design(self, rows: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
        """Feature matrix with target-derived columns divided by each row's series scale."""
        design, scale = self._scaled(rows, self.categorical_ + self.numeric_)
        for column in self.categorical_:
            design[column] = design[column].astype(object)
        return design, scale

    def _make_model(self) -> Pipeline:
        numeric = make_pipeline(SimpleImputer(strategy="median"), StandardScaler())
        encode = ColumnTransformer([
            ("keys", OneHotEncoder(handle_unknown="ignore"), self.categorical_),
            ("numeric", numeric, self.numeric_),
        ])
        if self.l1_ratio > 0:
            linear = ElasticNet(alpha=self.alpha, l1_ratio=self.l1_ratio, max_iter=self.max_iter)
        else:
            linear = Ridge(alpha=self.alpha)
        return make_pipeline(encode, linear)


FIRST_TRIAL: dict[str, Any] = {  # the defaults: Ridge, alpha 1, one direct model, row level
    "l1_ratio": 0.0, "ridge_alpha": 1.0, "strategy": "direct", "target_scale": "row",
}


def search_space(trial: optuna.Trial) -> dict[str, Any]:
    """The L1 share (0 = Ridge, > 0 = ElasticNet), the regularisation strength, the
    multi-step strategy (:mod:`training.forecasters.strategy`) and what y is scaled by.

    The two penalties live on different scales (ElasticNet divides the squared error by
    2n), so each has its own alpha range: Ridge 0.01..100, ElasticNet 1e-4..0.1.
    """
    l1_ratio = trial.suggest_categorical("l1_ratio", [0.0, 0.1, 0.5, 0.9])
    if l1_ratio == 0.0:
        alpha = trial.suggest_float("ridge_alpha", 1e-2, 100.0, log=True)
    else:
        alpha = trial.suggest_float("enet_alpha", 1e-4, 1e-1, log=True)
    strategy = trial.suggest_categorical("strategy", list(STRATEGIES))
    scale = trial.suggest_categorical("target_scale", list(TARGET_SCALES))
    return {"alpha": alpha, "l1_ratio": l1_ratio, "strategy": strategy, "target_scale": scale}
