"""Optuna search spaces, one plain function per family (mlforecast style).

Each takes a trial and returns keyword arguments for the family's ``set_params``. The
time-series space stays cheap: ETS variants, or SARIMAX with small (p, d, q) and 1-3
Fourier pairs for the yearly season (no 52-period seasonal ARIMA).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import optuna


def seasonal_naive_space(trial: optuna.Trial) -> dict[str, Any]:
    """Nothing to tune: the baseline runs once as it is."""
    return {}


def regression_space(trial: optuna.Trial) -> dict[str, Any]:
    """The L1 share (0 = Ridge, > 0 = ElasticNet) and the regularisation strength.

    The two penalties live on different scales (ElasticNet divides the squared error by
    2n), so each has its own alpha range: Ridge 0.01..100, ElasticNet 1e-4..0.1.
    """
    l1_ratio = trial.suggest_categorical("l1_ratio", [0.0, 0.1, 0.5, 0.9])
    if l1_ratio == 0.0:
        alpha = trial.suggest_float("ridge_alpha", 1e-2, 100.0, log=True)
    else:
        alpha = trial.suggest_float("enet_alpha", 1e-4, 1e-1, log=True)
    return {"alpha": alpha, "l1_ratio": l1_ratio}


def time_series_space(trial: optuna.Trial) -> dict[str, Any]:
    """ETS (trend / damping / season type) or SARIMAX ((p, d, q) <= (2, 1, 1), Fourier k)."""
    model = trial.suggest_categorical("model", ["ets", "sarimax"])
    if model == "ets":
        return {
            "model": "ets",
            "trend": trial.suggest_categorical("trend", ["add", None]),
            "damped": trial.suggest_categorical("damped", [True, False]),
            "seasonal": trial.suggest_categorical("seasonal", ["add", "mul"]),
        }
    p = trial.suggest_int("p", 0, 2)
    d = trial.suggest_int("d", 0, 1)
    q = trial.suggest_int("q", 0, 1)
    return {
        "model": "sarimax",
        "order": (p, d, q),
        "fourier_k": trial.suggest_int("fourier_k", 1, 3),
        "trend": trial.suggest_categorical("sarimax_drift", ["add", None]),
    }


def lightgbm_space(trial: optuna.Trial) -> dict[str, Any]:
    """Tree size, learning rate x rounds, leaf size, column sampling, L2, objective."""
    return {
        "num_leaves": trial.suggest_int("num_leaves", 7, 63, log=True),
        "learning_rate": trial.suggest_float("learning_rate", 0.02, 0.2, log=True),
        "n_estimators": trial.suggest_int("n_estimators", 100, 500, step=50),
        "min_child_samples": trial.suggest_int("min_child_samples", 5, 50, log=True),
        "feature_fraction": trial.suggest_float("feature_fraction", 0.5, 1.0),
        "lambda_l2": trial.suggest_float("lambda_l2", 1e-3, 10.0, log=True),
        "objective": trial.suggest_categorical("objective", ["l2", "tweedie"]),
    }


SEARCH_SPACES: dict[str, Callable[[optuna.Trial], dict[str, Any]]] = {
    "seasonal_naive": seasonal_naive_space,
    "regression": regression_space,
    "time_series": time_series_space,
    "lightgbm": lightgbm_space,
}
