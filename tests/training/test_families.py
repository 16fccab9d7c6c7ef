"""The family table (training.families) is the one list of families: every row works."""

from __future__ import annotations

import optuna
import pytest

from experiments.spec import ExperimentSpec
from training.base import Forecaster
from training.families import BASELINE, BY_NAME, TABLE, requirements
from training.forecasters import FAMILIES
from training.tuning import UNTUNED_FAMILIES


@pytest.mark.parametrize("family", TABLE, ids=lambda f: f.name)
def test_every_row_names_an_estimator_and_a_search_space_that_fit_together(family) -> None:
    estimator = family.estimator
    assert issubclass(estimator, Forecaster) and estimator.family == family.name
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    params = family.search_space(study.ask())
    assert set(params) <= set(estimator().get_params())
    assert bool(params) == family.tuned  # an untuned family has nothing to sample


def test_specs_tuning_and_serving_take_their_families_from_the_table() -> None:
    spec = ExperimentSpec.model_validate({"name": "t", "data": {"sales": {"path": "x.csv"}}})
    for family in TABLE:
        assert spec.models.family(family.name).trials == family.trials
    assert set(FAMILIES) == set(BY_NAME)
    assert UNTUNED_FAMILIES == {f.name for f in TABLE if not f.tuned} == {BASELINE, "ensemble"}
    assert [f.name for f in TABLE if f.combines] == [TABLE[-1].name]  # runs after the rest
    assert {"lightgbm", "statsmodels", "mlflow"} <= set(requirements())
    with pytest.raises(ValueError, match=r"models\.prophet"):
        ExperimentSpec.model_validate({"name": "t", "data": {"sales": {"path": "x.csv"}},
                                       "models": {"prophet": {"trials": 3}}})


@pytest.mark.parametrize("family", [f for f in TABLE if f.first_trial()], ids=lambda f: f.name)
def test_a_first_trial_samples_the_estimator_defaults(family) -> None:
    """FIRST_TRIAL restates the estimator's defaults in search-space names: through the
    search space it must give them back (lightgbm's L2 at its range's floor, documented)."""
    params = family.search_space(optuna.trial.FixedTrial(family.first_trial()))
    defaults = family.estimator().get_params()
    floor = {"lambda_l2": 1e-3} if family.name == "lightgbm" else {}
    assert params == {name: floor.get(name, defaults[name]) for name in params}


@pytest.mark.parametrize("family", [f for f in TABLE if f.tuned], ids=lambda f: f.name)
def test_the_search_spaces_draws_pass_the_params_check_and_a_wrong_name_does_not(
        family) -> None:
    """What the tuner can draw is what a spec may pin: every drawn value passes
    ``check_params`` (the early refusal of a spec's params), a name the estimator lacks
    does not."""
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(20):
        family.check_params(family.search_space(study.ask()))
    with pytest.raises(ValueError, match="Invalid parameter 'no_such_param'"):
        family.check_params({"no_such_param": 1})


@pytest.mark.parametrize(("family", "params"), [
    ("regression", {"target_transform": "log"}),  # read as "none" before: silently linear
    ("lightgbm", {"target_scale": "both", "strategy": "sideways"}),
])
def test_a_global_family_refuses_a_value_it_does_not_know(family: str, params: dict) -> None:
    with pytest.raises(ValueError, match="must be one of"):
        BY_NAME[family].check_params(params)
