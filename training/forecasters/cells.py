"""The fast path for a few forecast cells: a what-if on a handful of (series, step).

A scenario request asks for one or a few series with some exogenous values changed. The
general path (``predict_with_rows``) rebuilds frames with pandas for every call, which
costs milliseconds of fixed overhead per request. Here the no-scenario future rows of the
current state are turned once into a float matrix (:class:`CellMatrix`, cached with the
state's future rows); a request copies its rows, overwrites the exogenous columns (and
``price_ratio``, the only derived feature a future exog value reaches — see
:meth:`features.FeaturePipeline.apply_scenario`), calls the model on the matrix and adds
the conformal interval, without pandas. A family offers it by implementing
``_predict_matrix``; a test holds it equal to the general path.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from features.lags import ratio_to_reference
from features.pipeline import PRICE_REFERENCE

if TYPE_CHECKING:
    from training.forecasters.common import GlobalForecaster


@dataclass(frozen=True)
class CellMatrix:
    """The future rows of every series as each model's float matrix, and how to read it:
    one model, or the two halves of a hedged one (``target_scale="both"``: their scales,
    hence their target-derived columns, differ)."""

    models: list[GlobalForecaster]  # the models that read the matrices
    matrices: list[np.ndarray]  # per model: rows x features, lags in units of its scale
    scales: list[np.ndarray]  # per model, per row: its scale (row or series level)
    reference: np.ndarray  # per row: price_reference (NaN when price is no feature)
    row_of: dict[tuple[str, int], int]  # (series_id, step) -> row
    column_of: dict[str, int]  # feature -> column

    @classmethod
    def of(cls, forecaster: GlobalForecaster) -> CellMatrix:
        frame = forecaster.future_features(forecaster.horizon_)
        models = forecaster.halves_ or [forecaster]
        built = [m._matrix(frame, m.features_, m.categories_) for m in models]
        reference = (frame[PRICE_REFERENCE].to_numpy(dtype=float)
                     if PRICE_REFERENCE in frame.columns else np.full(len(frame), np.nan))
        rows = zip(frame["series_id"].tolist(), frame["step"].tolist(), strict=True)
        return cls(models, [b[0] for b in built], [b[1] for b in built], reference,
                   {key: i for i, key in enumerate(rows)},
                   {c: j for j, c in enumerate(models[0].features_)})


@dataclass(frozen=True)
class CellForecast:
    """yhat and interval per requested cell, and the feature values the model read."""

    yhat: np.ndarray
    yhat_lower: np.ndarray
    yhat_upper: np.ndarray
    features: list[dict[str, Any]]


def predict_cells(forecaster: GlobalForecaster, series_ids: Sequence[str],
                  steps: Sequence[int], exog: dict[str, np.ndarray],
                  level: float) -> CellForecast:
    """The forecast of (series_ids[i], steps[i]) with ``exog`` values where not NaN."""
    cells = cell_matrix(forecaster)
    rows = np.array([cells.row_of[key] for key in zip(series_ids, steps, strict=True)])
    matrices = [_with_exog(cells, matrix[rows], rows, exog) for matrix in cells.matrices]
    yhat = np.mean([model._decode(model._predict_matrix(matrix), scale[rows])
                    for model, matrix, scale in zip(cells.models, matrices, cells.scales,
                                                    strict=True)], axis=0)
    yhat = forecaster._floored(yhat)
    lower, upper = _interval(forecaster, series_ids, steps, yhat, level)
    features = _feature_values(cells.models[0], matrices[0], cells.scales[0][rows])
    return CellForecast(yhat, lower, upper, features)


def _with_exog(cells: CellMatrix, matrix: np.ndarray, rows: np.ndarray,
               exog: dict[str, np.ndarray]) -> np.ndarray:
    """The cells' rows of one model's matrix (a copy) with ``exog``'s known values."""
    for column, values in exog.items():
        if column in cells.column_of:
            at = cells.column_of[column]
            matrix[:, at] = np.where(np.isnan(values), matrix[:, at], values)
    if "price" in exog and "price_ratio" in cells.column_of:
        price = matrix[:, cells.column_of["price"]]
        matrix[:, cells.column_of["price_ratio"]] = ratio_to_reference(price,
                                                                       cells.reference[rows])
    return matrix


def cell_matrix(forecaster: GlobalForecaster) -> CellMatrix:
    """The state's matrix, built on first use and kept with its future rows."""
    derived = forecaster._feature_cache().derived
    if "cells" not in derived:
        derived["cells"] = CellMatrix.of(forecaster)
    return derived["cells"]


def _interval(forecaster: GlobalForecaster, series_ids: Sequence[str], steps: Sequence[int],
              yhat: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    calibration = forecaster.conformal_
    if calibration is None:
        return yhat.copy(), yhat.copy()
    return calibration.bounds(list(series_ids), list(steps), yhat, level)


def _feature_values(forecaster: GlobalForecaster, matrix: np.ndarray,
                    scale: np.ndarray) -> list[dict[str, Any]]:
    """Per row, the features as the pipeline makes them (keys by name, lags unscaled)."""
    values = matrix.copy()
    columns = forecaster.features_
    for column in forecaster.derived_:
        at = columns.index(column)
        values[:, at] = forecaster._decode(values[:, at], scale)
    records = [dict(zip(columns, row, strict=True)) for row in values.tolist()]
    for column, names in forecaster.categories_.items():
        for record in records:
            code = record[column]
            record[column] = None if code != code else names[int(code)]  # NaN: unseen key
    return records
