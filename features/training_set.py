"""The TrainingSet: the long panel every forecaster fits on, plus what travels with it.

Contract (used by `training` and, through the logged model, by `serving`):

* ``base`` is the aggregated panel *before* derived features: one row per
  (``series_id``, ``ds``) with ``y``, the key columns, the future-known exogenous columns
  (``exog_columns``: e.g. ``promo``, ``price``, ``holiday`` and the known-future columns
  of the spec's table) and the past-only covariates (``covariate_columns``: customer
  statistics and anything else measured from transactions). Periods without rows are
  filled (``y`` = 0: no transactions means no sales), except gaps — stretches that mean
  missing data (:mod:`features.gaps`) — where ``y`` and the covariates are NaN unless the
  spec says ``data.gaps: zero``; ``metadata.extra["gaps"]`` lists them.
* ``panel`` is ``pipeline.transform(base)``: ``base`` plus the derived features
  (calendar, lags, rolling statistics, lagged covariates). Sorted by series_id, ds.
* ``pipeline`` is the picklable :class:`features.pipeline.FeaturePipeline` that made
  ``panel`` from ``base``; the served model carries it with a tail of ``base`` so it can
  build the feature rows of future periods without `training`.
* Leakage: every derived feature at ``ds`` uses ``y`` and covariates only up to
  ``ds - horizon`` periods, exogenous values only at ``ds`` itself (they are known in
  advance: planned promotions, list prices, holidays). So ``until(origin)`` then
  ``future_frame(horizon)`` gives exactly the features a forecast made at ``origin`` sees.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from features.pipeline import FeaturePipeline


@dataclass(frozen=True)
class TrainingSetMetadata:
    """What a run needs to say which data trained it (logged to MLflow)."""

    spec_hash: str
    data_digest: str
    start: str
    end: str
    freq: str
    horizon: int
    n_series: int
    n_periods: int
    n_rows: int
    keys: tuple[str, ...]
    feature_columns: tuple[str, ...]
    exog_columns: tuple[str, ...]
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for name in ("keys", "feature_columns", "exog_columns"):
            out[name] = list(out[name])
        return out


@dataclass(frozen=True)
class TrainingSet:
    """Panel + base + pipeline + metadata; see the module docstring for the contract."""

    panel: pd.DataFrame
    base: pd.DataFrame
    pipeline: FeaturePipeline
    metadata: TrainingSetMetadata
    series_attributes: pd.DataFrame | None = None  # series_id -> keys, dominant segment

    @property
    def keys(self) -> list[str]:
        return list(self.metadata.keys)

    @property
    def feature_columns(self) -> list[str]:
        return list(self.metadata.feature_columns)

    @property
    def exog_columns(self) -> list[str]:
        return list(self.metadata.exog_columns)

    @property
    def freq(self) -> str:
        return self.metadata.freq

    @property
    def horizon(self) -> int:
        return self.metadata.horizon

    @property
    def series_ids(self) -> list[str]:
        return sorted(self.panel["series_id"].unique().tolist())

    def until(self, origin: pd.Timestamp) -> TrainingSet:
        """The training set as it was known at ``origin`` (rows with ds <= origin)."""
        panel = self.panel[self.panel["ds"] <= origin].reset_index(drop=True)
        base = self.base[self.base["ds"] <= origin].reset_index(drop=True)
        return replace(self, panel=panel, base=base)

    def future_frame(
        self, horizon: int | None = None, future_exog: pd.DataFrame | None = None
    ) -> pd.DataFrame:
        """Feature rows for the ``horizon`` periods after each series' last ``ds``.

        ``future_exog`` (series_id, ds, and any of ``exog_columns``) overrides the
        planned / last-known exogenous values: the what-if scenario. Rows carry
        series_id, ds, keys, exog and every feature column; ``y`` is NaN.
        """
        return self.pipeline.future_frame(self.base, horizon or self.horizon, future_exog)
