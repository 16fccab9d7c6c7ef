"""Drivers of the global families (LightGBM, regression): each feature's contribution.

**On the model's scale** the explanation is exact and the model's own:

* LightGBM: ``booster.predict(X, pred_contrib=True)`` — TreeSHAP values, one per feature,
  and the expected value (last column) as the base; base + contributions = the booster's
  raw score (with a ``tweedie`` objective that is the log of its prediction).
* Regression: coefficient x the value the linear model saw (numeric features median-
  imputed and standardised, so a contribution is relative to the training mean); a key
  (store, category) contributes its one-hot coefficient minus the mean coefficient of its
  categories, and the intercept plus those means is the base.

**In units of y.** Both families learn ``asinh(y / series level)`` (or ``y / level``, see
:meth:`GlobalForecaster._encode`), so a raw score ``r`` is the forecast ``g(r)`` =
``sinh(r) x level`` (``exp`` first for a log link). That is not additive, so each cell's
contributions are multiplied by one common factor, ``(g(r) - g(base)) / (r - base)``:
the base becomes ``g(base)`` (the forecast of the average row at this series' level),
contributions sum to ``g(r) - g(base)`` and keep their ranking and signs. A driver's number
in y is therefore its share of the cell's distance from the base, not what removing the
feature alone would change. A strategy with several members (buckets, recursive) explains
each cell with the member that forecast it; a hedged model (``target_scale="both"``) with
the mean of its two halves' contributions, bases and forecasts, as its forecast is their
mean. A negative forecast of sales lifted to 0 shows as the driver ``floor at zero``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from training.forecasters.drivers import CellDrivers, driver_frame, floor_drivers

if TYPE_CHECKING:
    from training.forecasters.common import GlobalForecaster

LOG_LINK_OBJECTIVES = frozenset({"tweedie", "poisson", "gamma"})
_STEP = 1e-6  # for the derivative when a cell sits exactly on the base


@dataclass(frozen=True)
class ModelScale:
    """Contributions of some rows on one member's own scale."""

    names: list[str]
    values: np.ndarray  # rows x names: the values read (y units for lags, keys as text)
    raw: np.ndarray  # rows x names
    base: np.ndarray  # rows
    log_link: bool
    scale: np.ndarray  # rows: the series level


def lightgbm_scale(member: GlobalForecaster, rows: pd.DataFrame) -> ModelScale:
    """TreeSHAP contributions of one fitted LightGBM member on ``rows``."""
    model = member.model_  # type: ignore[attr-defined]
    names = list(member.features_)  # type: ignore[attr-defined]
    matrix, scale = member._matrix(rows, names, member.categories_)  # type: ignore[attr-defined]
    shap = np.asarray(model.booster_.predict(matrix, pred_contrib=True), dtype=float)
    log_link = str(model.objective_) in LOG_LINK_OBJECTIVES
    return ModelScale(names, read_values(rows, names), shap[:, :-1], shap[:, -1], log_link,
                      scale)


def regression_scale(member: GlobalForecaster, rows: pd.DataFrame) -> ModelScale:
    """Coefficient x transformed value of one fitted regression member on ``rows``."""
    design, scale = member._design(rows)  # type: ignore[attr-defined]
    encode, linear = member.model_[0], member.model_[-1]  # type: ignore[attr-defined]
    matrix = encode.transform(design)
    matrix = np.asarray(matrix.toarray() if hasattr(matrix, "toarray") else matrix, float)
    coef = np.asarray(linear.coef_, dtype=float).ravel()
    terms, out = matrix * coef, list(encode.get_feature_names_out())
    base = np.full(len(rows), float(np.ravel(linear.intercept_)[0]))
    names, columns = [], []
    for key, block in key_blocks(encode, member.categorical_):  # type: ignore[attr-defined]
        centre = float(coef[block].mean())
        names.append(key)
        columns.append(terms[:, block].sum(axis=1) - centre)
        base += centre
    for column in member.numeric_:  # type: ignore[attr-defined]
        if f"numeric__{column}" in out:  # an all-missing feature was dropped at fit
            names.append(column)
            columns.append(terms[:, out.index(f"numeric__{column}")])
    raw = np.column_stack(columns) if columns else np.empty((len(rows), 0))
    return ModelScale(names, read_values(rows, names), raw, base, False, scale)


def key_blocks(encode: object, categorical: list[str]) -> list[tuple[str, np.ndarray]]:
    """Each key column and the one-hot columns it became in the transformed matrix."""
    if not categorical:
        return []
    start = encode.output_indices_["keys"].start  # type: ignore[attr-defined]
    encoder = encode.named_transformers_["keys"]  # type: ignore[attr-defined]
    blocks = []
    for key, categories in zip(categorical, encoder.categories_, strict=True):
        blocks.append((key, np.arange(start, start + len(categories))))
        start += len(categories)
    return blocks


def read_values(rows: pd.DataFrame, names: list[str]) -> np.ndarray:
    """The values of ``names`` in ``rows`` as plain Python objects (missing -> None)."""
    values = rows[names].astype(object)
    return values.where(values.notna(), None).to_numpy(dtype=object)


def in_units_of_y(member: GlobalForecaster, scaled: ModelScale
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(contributions, base, forecast) in y: one common factor per row (module docstring)."""
    def forecast(raw: np.ndarray) -> np.ndarray:
        encoded = np.exp(raw) if scaled.log_link else raw
        return member._decode(encoded, scaled.scale)

    total = scaled.base + scaled.raw.sum(axis=1)
    at_base, at_total = forecast(scaled.base), forecast(total)
    distance = total - scaled.base
    slope = (forecast(total + _STEP) - forecast(total - _STEP)) / (2 * _STEP)
    moved = np.abs(distance) > 1e-12
    factor = np.where(moved, (at_total - at_base) / np.where(moved, distance, 1.0), slope)
    return scaled.raw * factor[:, None], at_base, at_total


def explained(member: GlobalForecaster, rows: pd.DataFrame,
              scale_of: Callable[[GlobalForecaster, pd.DataFrame], ModelScale]
              ) -> tuple[ModelScale, np.ndarray, np.ndarray, np.ndarray]:
    """One member's contributions on its scale and (contributions, base, forecast) in y:
    a hedged member's are the means over its halves (same features, same rows)."""
    parts = []
    for half in member.halves_ or [member]:
        scaled = scale_of(half, rows)
        parts.append((scaled, *in_units_of_y(half, scaled)))
    if len(parts) == 1:
        return parts[0]
    first = parts[0][0]
    raw, model_base, scale = (np.mean([getattr(p[0], a) for p in parts], axis=0)
                              for a in ("raw", "base", "scale"))
    mean = ModelScale(first.names, first.values, raw, model_base, first.log_link, scale)
    in_y = (np.mean([p[k] for p in parts], axis=0) for k in (1, 2, 3))
    return (mean, *in_y)


def global_drivers(model: GlobalForecaster, rows: pd.DataFrame, yhat: np.ndarray
                   ) -> CellDrivers:
    """The drivers of ``rows`` (the feature rows the forecast ``yhat`` was made from)."""
    scale_of = lightgbm_scale if model.family == "lightgbm" else regression_scale
    members = model.members_ or [model]
    member_of = (rows["member"].to_numpy(dtype=int) if model.members_
                 else np.zeros(len(rows), dtype=int))
    base, model_base = np.zeros(len(rows)), np.zeros(len(rows))
    unclipped, frames = np.zeros(len(rows)), []
    for index, member in enumerate(members):
        at = np.flatnonzero(member_of == index)
        if len(at):
            scaled, contributions, base[at], unclipped[at] = explained(member, rows.iloc[at],
                                                                       scale_of)
            model_base[at] = scaled.base
            frames.append(driver_frame(at, scaled.names, scaled.values, contributions,
                                       scaled.raw))
    frames.append(floor_drivers(unclipped, bool(model.nonnegative_)))
    method = [global_method(model)] * len(rows)
    drivers = pd.concat(frames, ignore_index=True).sort_values("cell", kind="stable")
    return CellDrivers(model.family, np.asarray(yhat, dtype=float), base, method,
                       drivers.reset_index(drop=True), model_base)


def global_method(model: GlobalForecaster) -> str:
    """How a global model's contributions were computed, in words."""
    level = (" / row and series level (mean of two models)" if model.target_scale == "both"
             else " / row level" if model.level_column_ else " / series level")
    target = "y" + (level if model.scale_target else "")
    if model.target_transform == "asinh":
        target = f"asinh({target})"
    how = ("TreeSHAP (LightGBM pred_contrib)" if model.family == "lightgbm"
           else "coefficient x standardised value")
    if getattr(model, "objective", None) in LOG_LINK_OBJECTIVES:
        target = f"log of {target}"
    return (f"{model.family} ({model.strategy}): {how} on {target}, scaled to units of y "
            f"per cell")
