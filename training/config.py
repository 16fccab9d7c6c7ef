"""Configuration objects of the training package (composed into the experiment spec)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, create_model

from features.config import StrictModel
from training.families import NAMES, TABLE

FamilyName = str  # one of ``FAMILIES`` (training.families.TABLE)
FAMILIES: tuple[str, ...] = NAMES


class BacktestConfig(StrictModel):
    """Nested rolling-origin backtest: ``outer_windows`` newest origins held out from tuning,
    and ``n_windows`` tuning origins before them, all ``step`` periods apart.

    The horizon is the spec's top-level ``horizon``. The newest outer window tests the last
    H periods; the inner windows' test periods end at or before the first outer origin
    (:func:`training.backtest.plan_windows`). ``outer_windows: 0`` tunes, chooses and
    reports on the same windows (the promise is then optimistic).
    """

    n_windows: int = Field(3, ge=1, description="Tuning (inner) windows.")
    outer_windows: int = Field(
        1, ge=0, description="Held-out windows that choose the champion and give its promise."
    )
    step: int = Field(4, ge=1)
    min_train_periods: int = Field(26, ge=2)


class FamilyConfig(StrictModel):
    """Tuning budget of one model family: ``trials`` and/or ``timeout`` seconds."""

    enabled: bool = True
    trials: int = Field(10, ge=1)
    timeout: float | None = Field(None, gt=0)
    params: dict[str, float | int | str | bool] = Field(
        default_factory=dict, description="Fixed params, not tuned."
    )


class _ModelsBase(StrictModel):
    """What every family shares; :data:`ModelsConfig` adds one field per family."""

    season_length: int | None = Field(
        None, description="Periods per season; default 52 (W), 7 (D), 12 (M)."
    )
    interval_level: float = Field(0.8, gt=0, lt=1)
    seed: int = 0

    def family(self, name: FamilyName) -> FamilyConfig:
        return getattr(self, name)


# One ``<family>: {enabled, trials, timeout, params}`` section per row of the family table.
ModelsConfig = create_model(  # type: ignore[call-overload]
    "ModelsConfig", __base__=_ModelsBase,
    **{family.name: (FamilyConfig, FamilyConfig(trials=family.trials)) for family in TABLE},
)


class PromotionConfig(StrictModel):
    """When a challenger becomes the champion.

    It must beat seasonal naive (when ``must_beat_naive``) and beat the current champion's
    WAPE by ``margin`` (relative: 0.02 = 2 % lower) on the same, latest backtest. With
    ``refresh`` on, a challenger trained on NEWER data than the champion needs only to be
    within ``margin`` of it on that backtest (at most 2 % higher): the champion's score
    there is its configuration *refitted* on the new windows, not the stale model that
    serves, so a fresh challenger as good as that, within noise, replaces it (what a
    `retrain` verdict asks for); when every such challenger is clearly worse, that
    configuration itself is refitted on the newer data and judged the same way.
    """

    metric: Literal["wape"] = "wape"
    margin: float = Field(0.02, ge=0, lt=1)
    must_beat_naive: bool = True
    refresh: bool = True
    auto: bool = True
