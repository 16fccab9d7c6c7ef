"""Optuna tuning on the stack's PostgreSQL storage (`SALESCAST_OPTUNA_STORAGE` of
`salescast stack up`): trials persist there, and a second run continues the study."""

from __future__ import annotations

import optuna
import pytest

from experiments.stack import Stack
from features.training_set import TrainingSet
from training.backtest import BacktestWindow, make_windows
from training.config import BacktestConfig, FamilyConfig
from training.tuning import tune_family

LEVEL = 0.8


@pytest.fixture(scope="module")
def windows(small_training_set: TrainingSet) -> list[BacktestWindow]:
    return make_windows(small_training_set, BacktestConfig(n_windows=2, step=2,
                                                           min_train_periods=26))


def test_trials_persist_in_the_postgresql_study_and_a_second_run_continues_it(
    small_training_set: TrainingSet, windows: list[BacktestWindow], pg_stack: Stack,
) -> None:
    storage = pg_stack.optuna_storage
    assert storage.startswith("postgresql://")
    first = tune_family("regression", small_training_set, windows, FamilyConfig(trials=2),
                        LEVEL, storage, "stack-tests.regression", seed=0)
    again = tune_family("regression", small_training_set, windows, FamilyConfig(trials=1),
                        LEVEL, storage, "stack-tests.regression", seed=0)

    stored = optuna.load_study(study_name="stack-tests.regression", storage=storage)
    assert [t.number for t in stored.trials] == [0, 1, 2]
    assert [t.state for t in stored.trials] == [optuna.trial.TrialState.COMPLETE] * 3
    assert (first.trial_numbers, again.trial_numbers) == ([0, 1], [2])
    assert set(stored.best_trial.intermediate_values) == {w.index for w in windows}
    assert stored.best_value == pytest.approx(min(first.best_value, again.best_value))
