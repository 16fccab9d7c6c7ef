"""The experiment spec: one YAML file that says what to train, on what, and how to judge it.

Validated by pydantic; every section has defaults so a spec can be short. Monitoring
thresholds live here too, so one file describes an experiment's whole life.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import yaml
from pydantic import Field, ValidationError, model_validator

from features.config import DataConfig, FeatureConfig, Frequency, SimulatorConfig, StrictModel
from training.config import BacktestConfig, ModelsConfig, PromotionConfig


class MonitoringConfig(StrictModel):
    """Drift and accuracy thresholds (defaults: p < 0.05, distance > 0.1, PSI > 0.2), and
    the forecast lag of the periodic review (at most the spec's horizon)."""

    p_value: float = Field(0.05, gt=0, lt=1)
    distance_threshold: float = Field(0.1, gt=0)
    psi_threshold: float = Field(0.2, gt=0)
    drift_share: float = Field(0.5, gt=0, le=1)
    large_sample: int = Field(1000, ge=10, description="Above this size use distances, not tests.")
    tracking_signal_limit: float = Field(4.0, gt=0)
    window: str = "28D"
    review_lag: int = Field(
        1, ge=1, description="The monthly / quarterly review judges the forecasts made this "
        "many periods ahead: the lag the business plans on (1..horizon).")


class ExperimentSpec(StrictModel):
    name: str = Field(..., pattern=r"^[A-Za-z0-9_.-]+$")
    description: str = ""
    model_name: str | None = Field(None, description="Registered model; default '<name>'.")
    data: DataConfig
    simulator: SimulatorConfig | None = Field(
        None, description="If set and the sales file is missing, generate it with these."
    )
    frequency: Frequency = "W"
    horizon: int = Field(8, ge=1)
    features: FeatureConfig = FeatureConfig()
    backtest: BacktestConfig = BacktestConfig()
    models: ModelsConfig = ModelsConfig()
    promotion: PromotionConfig = PromotionConfig()
    monitoring: MonitoringConfig = MonitoringConfig()

    @model_validator(mode="after")
    def _lags_cover_horizon(self) -> ExperimentSpec:
        short = [lag for lag in (self.features.lags or []) if lag < self.horizon]
        if short:
            raise ValueError(
                f"features.lags {short} are shorter than the horizon ({self.horizon}): "
                "a forecast made at the origin cannot know them"
            )
        return self

    @model_validator(mode="after")
    def _review_lag_within_horizon(self) -> ExperimentSpec:
        if self.monitoring.review_lag > self.horizon:
            raise ValueError(
                f"monitoring.review_lag ({self.monitoring.review_lag}) is beyond the horizon "
                f"({self.horizon}): no forecast is made that far ahead"
            )
        return self

    @property
    def registered_model_name(self) -> str:
        return self.model_name or self.name

    @property
    def season_length(self) -> int:
        default = {"D": 7, "W": 52, "M": 12}[self.frequency]
        return self.models.season_length or default

    def spec_hash(self) -> str:
        """Stable short hash of the spec's content (not of its file's formatting)."""
        payload = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:12]


class SpecError(ValueError):
    """A spec file that cannot be read or does not validate; the message says where."""


def load_spec(path: str | Path) -> ExperimentSpec:
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"spec file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise SpecError(f"{path}: expected a mapping at the top level")
    try:
        return ExperimentSpec.model_validate(raw)
    except ValidationError as exc:
        lines = [f"{path}: invalid spec"]
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"]) or "(top level)"
            lines.append(f"  {where}: {err['msg']}")
        raise SpecError("\n".join(lines)) from exc
