"""Optuna tuning: the study persists in RDB storage, pruning works through the backtest's
window callback, seasonal naive is not tuned, and the best backtest is the best trial's."""

from __future__ import annotations

import optuna
import pytest

from features.training_set import TrainingSet
from training.backtest import BacktestWindow, make_windows, run_backtest
from training.config import BacktestConfig, FamilyConfig
from training.trial_groups import FIRST_TRIAL_ATTR
from training.tuning import (
    DEFAULTS_MARGIN,
    build_forecaster,
    chosen_trial,
    defaults_result,
    holds_its_gain,
    tune_family,
)

LEVEL = 0.8


class PruneAfterFirstTrial(optuna.pruners.BasePruner):
    """Prunes every trial but the first at its first reported window."""

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        return trial.number >= 1


@pytest.fixture(scope="module")
def windows(small_training_set: TrainingSet) -> list[BacktestWindow]:
    return make_windows(small_training_set, BacktestConfig(n_windows=2, step=2,
                                                           min_train_periods=26))


def test_two_trials_are_stored_in_the_sqlite_study(
    small_training_set: TrainingSet, windows: list[BacktestWindow], optuna_storage: str
) -> None:
    seen: list[optuna.trial.FrozenTrial] = []
    result = tune_family("regression", small_training_set, windows, FamilyConfig(trials=2),
                         LEVEL, optuna_storage, "persisted", seed=0,
                         on_trial=seen.append)

    stored = optuna.load_study(study_name="persisted", storage=optuna_storage)
    assert [t.state for t in stored.trials] == [optuna.trial.TrialState.COMPLETE] * 2
    assert [t.number for t in seen] == [0, 1]
    assert stored.best_value == pytest.approx(result.best_value)
    assert set(stored.best_trial.intermediate_values) == {w.index for w in windows}
    # the returned backtest is the best trial's: an independent re-run scores the same
    rerun = run_backtest(build_forecaster("regression", {}, result.best_params),
                         small_training_set, windows, LEVEL)
    assert rerun.metrics["wape"] == pytest.approx(result.best_value)
    assert result.best_backtest.metrics["wape"] == pytest.approx(result.best_value)


def test_a_trial_is_pruned_through_the_window_callback(
    small_training_set: TrainingSet, windows: list[BacktestWindow], optuna_storage: str
) -> None:
    seen: list[optuna.trial.FrozenTrial] = []
    result = tune_family("regression", small_training_set, windows, FamilyConfig(trials=3),
                         LEVEL, optuna_storage, "pruned", seed=1,
                         on_trial=seen.append, pruner=PruneAfterFirstTrial())

    states = [t.state for t in seen]
    assert states == [optuna.trial.TrialState.COMPLETE] + [optuna.trial.TrialState.PRUNED] * 2
    assert all(list(t.intermediate_values) == [windows[0].index] for t in seen[1:])
    assert result.best_params == seen[0].user_attrs["params"]
    assert result.best_value == pytest.approx(seen[0].value)


def test_seasonal_naive_runs_exactly_one_trial(
    small_training_set: TrainingSet, windows: list[BacktestWindow], optuna_storage: str
) -> None:
    result = tune_family("seasonal_naive", small_training_set, windows, FamilyConfig(trials=5),
                         LEVEL, optuna_storage, "naive", seed=0,
                         fixed={"season_length": 52})

    assert len(result.study.trials) == 1
    assert result.best_params == {}


def test_a_second_run_continues_the_study_and_keeps_its_best_backtest(
    small_training_set: TrainingSet, windows: list[BacktestWindow], optuna_storage: str
) -> None:
    args = (small_training_set, windows, FamilyConfig(trials=1), LEVEL,
            optuna_storage, "continued")
    tune_family("regression", *args, seed=2)
    second = tune_family("regression", *args, seed=3)

    assert len(second.study.trials) == 2 and second.trial_numbers == [1]
    assert second.best_value == pytest.approx(second.study.best_value)
    # whichever run found it, the returned backtest scores the study's best value
    assert second.best_backtest.metrics["wape"] == pytest.approx(second.study.best_value)


def test_every_trial_gets_the_fixed_params_under_its_tuned_ones(
    small_training_set: TrainingSet, windows: list[BacktestWindow], optuna_storage: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import training.tuning

    backtested: list[dict] = []

    def spy(forecaster, *args, **kwargs):
        backtested.append(forecaster.get_params())
        return run_backtest(forecaster, *args, **kwargs)

    monkeypatch.setattr(training.tuning, "run_backtest", spy)
    budget = FamilyConfig(trials=2, params={"max_iter": 777})
    seen: list[optuna.trial.FrozenTrial] = []
    result = tune_family("regression", small_training_set, windows, budget, LEVEL,
                         optuna_storage, "fixed", seed=0, on_trial=seen.append,
                         fixed={"season_length": 13, "max_iter": 5})

    assert len(backtested) == 2
    for params, trial in zip(backtested, seen, strict=True):
        assert params["max_iter"] == 777 and params["season_length"] == 13
        for name, value in trial.user_attrs["params"].items():
            assert params[name] == value
    # the refit gets the same: fixed, the spec's params over them, the tuned ones on top
    assert result.params == {"season_length": 13, "max_iter": 777, **result.best_params}


def test_spec_params_pin_the_search_space(
    small_training_set: TrainingSet, windows: list[BacktestWindow], optuna_storage: str
) -> None:
    """`params: {l1_ratio: 0.0}` in the spec fixes that choice: every trial is a Ridge."""
    budget = FamilyConfig(trials=3, params={"l1_ratio": 0.0})
    result = tune_family("regression", small_training_set, windows, budget, LEVEL,
                         optuna_storage, "pinned", seed=3)
    stored = optuna.load_study(study_name="pinned", storage=optuna_storage)
    assert [t.params["l1_ratio"] for t in stored.trials] == [0.0, 0.0, 0.0]
    assert all("ridge_alpha" in t.params for t in stored.trials)
    assert result.params["l1_ratio"] == 0.0


def test_a_new_study_tries_the_family_defaults_first(
    small_training_set: TrainingSet, windows: list[BacktestWindow], optuna_storage: str
) -> None:
    """Trial 0 of a new lightgbm study is its FIRST_TRIAL (the estimator's defaults); a
    pinned param stays pinned; a study that already has trials is not given it again."""
    from training.forecasters.gbm import FIRST_TRIAL

    budget = FamilyConfig(trials=2, params={"objective": "tweedie"})
    tune_family("lightgbm", small_training_set, windows, budget, LEVEL, optuna_storage,
                "defaults-first", seed=5)
    stored = optuna.load_study(study_name="defaults-first", storage=optuna_storage)
    first, second = stored.trials
    expected = {k: v for k, v in FIRST_TRIAL.items() if k != "objective"}
    assert {k: first.params[k] for k in expected} == pytest.approx(expected)
    assert first.params["objective"] == second.params["objective"] == "tweedie"
    assert second.params != first.params
    tune_family("lightgbm", small_training_set, windows, FamilyConfig(trials=1), LEVEL,
                optuna_storage, "defaults-first", seed=6)
    third = optuna.load_study(study_name="defaults-first", storage=optuna_storage).trials[2]
    assert third.params["num_leaves"] != FIRST_TRIAL["num_leaves"] or \
        third.params["learning_rate"] != FIRST_TRIAL["learning_rate"]


def _trials(values: list[float], defaults_first: bool = True) -> list[optuna.trial.FrozenTrial]:
    trials = []
    for number, value in enumerate(values):
        trial = optuna.trial.create_trial(
            value=value, system_attrs={FIRST_TRIAL_ATTR: {"a": 1}} if number == 0
            and defaults_first else {})
        trial.number = number
        trials.append(trial)
    return trials


@pytest.mark.parametrize(("gain", "kept"), [(DEFAULTS_MARGIN / 2, 0), (DEFAULTS_MARGIN * 2, 2)])
def test_the_defaults_are_kept_unless_a_trial_beats_them_by_the_margin(gain: float,
                                                                       kept: int) -> None:
    trials = _trials([0.30, 0.31, 0.30 * (1 - gain), 0.33])
    assert chosen_trial("lightgbm", trials).number == kept


def test_without_a_defaults_trial_the_best_trial_is_chosen() -> None:
    trials = _trials([0.30, 0.31, 0.30 * (1 - DEFAULTS_MARGIN / 2)], defaults_first=False)
    assert chosen_trial("lightgbm", trials).number == 2


def test_the_kept_defaults_come_with_their_own_backtest(
    small_training_set: TrainingSet, windows: list[BacktestWindow], optuna_storage: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With a margin no trial can beat, the result is trial 0's params and backtest."""
    monkeypatch.setattr("training.tuning.DEFAULTS_MARGIN", 1.0)
    result = tune_family("lightgbm", small_training_set, windows, FamilyConfig(trials=3),
                         LEVEL, optuna_storage, "defaults-kept", seed=3)
    first = optuna.load_study(study_name="defaults-kept", storage=optuna_storage).trials[0]
    assert result.best_trial == 0
    assert result.best_value == pytest.approx(first.value)
    assert result.best_backtest.metrics["wape"] == pytest.approx(first.value)
    assert result.best_params["num_leaves"] == first.params["num_leaves"]


@pytest.mark.parametrize(("tuned", "defaults", "holds"), [
    ((0.285, 0.277), (0.328, 0.217), False),  # the weekly benchmark set's LightGBM
    ((0.20, 0.20), (0.30, 0.30), True),
    ((0.20, 0.30), (0.30, 0.21), False),  # a gain on the tuning windows, lost on the outer
    ((0.29, 0.30), (0.30, 0.30), False),  # better, but by less than the margin
])
def test_a_tuned_trial_holds_its_gain_only_counting_the_outer_window(
        tuned: tuple[float, float], defaults: tuple[float, float], holds: bool) -> None:
    assert holds_its_gain(tuned, defaults) is holds


def test_the_defaults_result_is_trial_0_with_its_own_backtest_kept_or_rerun(
    small_training_set: TrainingSet, windows: list[BacktestWindow], optuna_storage: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """When the tuning chooses another trial, the defaults come back as a result of their
    own: this process's backtest of trial 0, or (a later invocation on the same study,
    which did not run it) a re-run that scores what trial 0 scored."""
    monkeypatch.setattr("training.tuning.DEFAULTS_MARGIN", -1.0)  # the best trial wins
    result = tune_family("lightgbm", small_training_set, windows, FamilyConfig(trials=4),
                         LEVEL, optuna_storage, "defaults-result", seed=0)
    first = optuna.load_study(study_name="defaults-result", storage=optuna_storage).trials[0]
    assert result.best_trial != 0 and result.best_value < first.value
    kept = defaults_result(result, small_training_set, windows, LEVEL)
    assert kept is not None and kept.best_trial == 0 and kept.defaults_trial is None
    assert kept.best_params == first.user_attrs["params"]
    assert kept.best_backtest.metrics["wape"] == pytest.approx(first.value)

    later = tune_family("lightgbm", small_training_set, windows, FamilyConfig(trials=1),
                        LEVEL, optuna_storage, "defaults-result", seed=0)
    assert later.defaults_kept is None and later.best_trial != 0
    rerun = defaults_result(later, small_training_set, windows, LEVEL)
    assert rerun is not None and rerun.best_params == kept.best_params
    assert rerun.best_backtest.metrics["wape"] == pytest.approx(first.value)
    assert defaults_result(kept, small_training_set, windows, LEVEL) is None
