"""What an explanation of a forecast is: the drivers of each forecast cell, in units of y.

Exists so every family's explainer (:mod:`~training.forecasters.explain_global`,
:mod:`~training.forecasters.explain_statistical`, :mod:`~training.forecasters.explain`)
returns one shape, and the reconciliation rule is written once:

    yhat = base + sum(contribution of every driver)

for each cell, in units of y, up to floating-point summation (about 1e-9 of yhat). A
driver is a feature (LightGBM, regression), a component (level, trend, season of the
statistical family), a member (ensemble) or the period read (seasonal naive); its
``value`` is what the model read (a feature value, a key, a date), or None for a
component. ``model_contribution`` / ``model_base`` keep the global families' numbers on
the model's own scale (SHAP values, coefficient x standardised value), NaN elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

DRIVER_COLUMNS = ["cell", "name", "value", "contribution", "model_contribution"]
FLOOR = "floor at zero"  # the driver that lifts a negative forecast of sales to 0


@dataclass(frozen=True)
class CellDrivers:
    """The drivers of ``n`` forecast cells (cell = position 0..n-1 in the cells asked)."""

    family: str
    yhat: np.ndarray  # (n,) the model's forecast of each cell
    base: np.ndarray  # (n,) what the drivers start from (0 when they are the whole forecast)
    method: list[str]  # (n,) how the cell was forecast, in words
    drivers: pd.DataFrame  # DRIVER_COLUMNS, every driver of every cell
    model_base: np.ndarray | None = None  # (n,) the base on the model's scale

    def __post_init__(self) -> None:
        missing = set(DRIVER_COLUMNS) - set(self.drivers.columns)
        if missing:
            raise ValueError(f"drivers frame lacks {sorted(missing)}")


def driver_frame(cells: np.ndarray, names: list[str], values: np.ndarray,
                 contributions: np.ndarray, model: np.ndarray | None = None) -> pd.DataFrame:
    """Long drivers of ``len(cells)`` cells x ``len(names)`` drivers (matrices cells x
    names: ``values`` the values read, ``contributions`` in y, ``model`` on model scale)."""
    count = len(names)
    flat_model = (np.full(len(cells) * count, np.nan) if model is None
                  else np.asarray(model, dtype=float).ravel())
    return pd.DataFrame({
        "cell": np.repeat(np.asarray(cells, dtype=int), count),
        "name": np.tile(np.asarray(names, dtype=object), len(cells)),
        "value": np.asarray(values, dtype=object).reshape(-1),
        "contribution": np.asarray(contributions, dtype=float).ravel(),
        "model_contribution": flat_model,
    })


def one_driver(name: str | list[str], values: list[object], yhat: np.ndarray) -> pd.DataFrame:
    """The drivers of cells whose whole forecast is one driver (naive, a flat level)."""
    names = [name] * len(yhat) if isinstance(name, str) else name
    return pd.DataFrame({
        "cell": np.arange(len(yhat)), "name": pd.Series(names, dtype=object),
        "value": pd.Series(values, dtype=object), "contribution": np.asarray(yhat, float),
        "model_contribution": np.nan})


def floor_drivers(unclipped: np.ndarray, nonnegative: bool) -> pd.DataFrame:
    """The driver that lifts a negative forecast to 0 (a family forecasting sales >= 0)."""
    lifted = np.flatnonzero(nonnegative & (unclipped < 0)) if nonnegative else np.array([], int)
    return pd.DataFrame({
        "cell": lifted, "name": pd.Series([FLOOR] * len(lifted), dtype=object),
        "value": pd.Series([None] * len(lifted), dtype=object),
        "contribution": -unclipped[lifted], "model_contribution": np.nan})


def reconciliation_gap(explained: CellDrivers) -> np.ndarray:
    """Per cell: yhat - (base + sum of contributions); ~0 when the explanation is exact."""
    total = explained.drivers.groupby("cell")["contribution"].sum()
    summed = np.zeros(len(explained.yhat))
    summed[total.index.to_numpy(dtype=int)] = total.to_numpy()
    return explained.yhat - explained.base - summed
