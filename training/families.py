"""The model families in one table: everything else that lists families derives from it.

A row says what a family is called (in specs, MLflow tags and the registry), which module
holds it — its estimator class and its Optuna ``search_space(trial)`` function, mlforecast
style — its default trial budget, whether it is tuned at all (the baseline runs once) and
the pip packages its fitted model needs where it is served, beyond the base ones, and
whether it ``combines`` the others (the ensemble: built from their results, after them), and
its ``scope``: a *local* family fits each series on its own history, a *global* one fits one
model on the whole panel (the ensemble combines one of each: their errors differ most); a
*sparse* one is built for intermittent series (Croston/TSB): it is never the local half of
that pair (on the weekly retail set it led the tuning windows and then scored 0.46 held-out
WAPE, worse than seasonal naive), and joins an ensemble only on a panel with intermittent
or lumpy series (``experiments.training_job._combinable``). A new
family is its module plus one row here; ``tests/training/test_families.py`` runs every row
through the contract.

Rows name their module, imported on first use (``Family.estimator``,
``Family.search_space``): the spec's config (``training.config``) and the forecasters'
package both read this table, and neither has to import the other.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import optuna

    from training.base import Forecaster

BASE_REQUIREMENTS = ("mlflow", "pandas", "numpy", "scipy", "scikit-learn", "joblib", "pyarrow")


@dataclass(frozen=True)
class Family:
    """One model family (see the module docstring)."""

    name: str
    module: str
    estimator_name: str
    trials: int
    tuned: bool = True
    requirements: tuple[str, ...] = ()
    combines: bool = False  # built from the other families' results, after them
    scope: str = "local"  # "local": per series; "global": one model of the panel; "sparse"

    def load(self) -> ModuleType:
        return importlib.import_module(self.module)

    @property
    def estimator(self) -> type[Forecaster]:
        return getattr(self.load(), self.estimator_name)

    def search_space(self, trial: optuna.Trial) -> dict[str, Any]:
        """Keyword arguments for the estimator's ``set_params``, sampled by ``trial``."""
        return self.load().search_space(trial)

    def check_params(self, params: dict[str, Any]) -> None:
        """Refuse fixed ``params`` (a spec's ``models.<family>.params``) that the estimator
        does not have or would refuse at fit — a ValueError, before anything runs: its
        ``set_params``, then its ``check_params()`` where it has one."""
        estimator = self.estimator().set_params(**params)
        check = getattr(estimator, "check_params", None)
        if check is not None:
            check()

    def first_trial(self) -> dict[str, Any]:
        """The search-space values a new study tries first (the module's ``FIRST_TRIAL``:
        the estimator's defaults), so tuning never ends worse than them on the tuning
        windows; empty when the module names none."""
        return dict(getattr(self.load(), "FIRST_TRIAL", {}))


TABLE: tuple[Family, ...] = (
    Family("seasonal_naive", "training.forecasters.naive", "SeasonalNaive", trials=1,
           tuned=False),
    Family("regression", "training.forecasters.regression", "RegressionForecaster", trials=10,
           scope="global"),
    Family("time_series", "training.forecasters.time_series", "TimeSeriesForecaster", trials=4,
           requirements=("statsmodels",)),
    Family("lightgbm", "training.forecasters.gbm", "LightGBMForecaster", trials=10,
           requirements=("lightgbm",), scope="global"),
    Family("intermittent", "training.forecasters.intermittent", "IntermittentForecaster",
           trials=4, scope="sparse"),
    Family("ensemble", "training.forecasters.ensemble", "EnsembleForecaster", trials=1,
           tuned=False, combines=True),
)
BY_NAME: dict[str, Family] = {family.name: family for family in TABLE}
NAMES: tuple[str, ...] = tuple(BY_NAME)
BASELINE = "seasonal_naive"


def requirements() -> tuple[str, ...]:
    """What any logged model needs where it is loaded: the base packages and every family's
    (the pickled forecaster's package imports all families)."""
    extra = [r for family in TABLE for r in family.requirements]
    return tuple(dict.fromkeys([*BASE_REQUIREMENTS, *extra]))
