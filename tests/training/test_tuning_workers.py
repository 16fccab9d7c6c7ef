"""Tuning seen from outside one trial: a pruned trial never looks like a finished one (log
line, MLflow run, best trial), and workers sharing one RDB study propose distinct
parameters while a single process with the same seed repeats its trials."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import optuna
import pytest

from features.training_set import TrainingSet
from tests.conftest import MlflowStore
from training.backtest import make_windows
from training.config import BacktestConfig, FamilyConfig
from training.families import BY_NAME
from training.metrics import METRIC_NAMES
from training.tuning import open_study, tune_family

SEED = 42
TRIALS_PER_WORKER = 4


class PruneAfterFirstTrial(optuna.pruners.BasePruner):
    """Prunes every trial but the first at its first reported window."""

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        return trial.number >= 1


def test_a_pruned_trial_is_logged_and_tracked_as_pruned(
    small_training_set: TrainingSet, mlflow_store: MlflowStore, tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Optuna 5 gives a pruned trial its last window's WAPE as value: that must not read
    as a backtest WAPE (log line), nor as a FINISHED run with ``wape`` (MLflow UI)."""
    from mlflow import MlflowClient

    from experiments.training_job import _record_trial

    client = MlflowClient(mlflow_store.tracking_uri)
    experiment_id = client.create_experiment(f"pruned-{tmp_path.name}",
                                             artifact_location=mlflow_store.artifact_location)
    family_run = client.create_run(experiment_id, run_name="regression").info.run_id
    job = SimpleNamespace(client=client, experiment_id=experiment_id)
    windows = make_windows(small_training_set, BacktestConfig(n_windows=2, step=2,
                                                              min_train_periods=26))
    seen: list[optuna.trial.FrozenTrial] = []

    def on_trial(trial: optuna.trial.FrozenTrial) -> None:
        seen.append(trial)
        _record_trial(job, family_run, "regression", trial)  # type: ignore[arg-type]

    with caplog.at_level(logging.INFO, logger="experiments.training_job"):
        result = tune_family("regression", small_training_set, windows, FamilyConfig(trials=2),
                             0.8, f"sqlite:///{tmp_path}/optuna.db", "pruned-log", seed=1,
                             on_trial=on_trial, pruner=PruneAfterFirstTrial())

    pruned = seen[1]
    assert pruned.state == optuna.trial.TrialState.PRUNED and pruned.value is not None
    lines = [r.getMessage() for r in caplog.records]
    assert f"regression: trial 1 pruned after window {windows[0].index}" in lines
    assert not any(line.startswith("regression: trial 1 wape") for line in lines)
    runs = {r.data.tags["trial_number"]: r for r in client.search_runs(
        [experiment_id], filter_string=f"tags.mlflow.parentRunId = '{family_run}'")}
    assert runs["0"].info.status == "FINISHED" and "wape" in runs["0"].data.metrics
    run = runs["1"]
    assert run.info.status == "KILLED"
    assert run.data.tags["optuna_state"] == "PRUNED"
    assert not set(METRIC_NAMES) & set(run.data.metrics)  # no backtest-mean names
    assert run.data.metrics["pruned_at_window"] == windows[0].index
    assert result.best_trial == 0


def _propose(trial: optuna.Trial) -> float:
    """The LightGBM family's real search space, scored by a cheap stand-in."""
    params = BY_NAME["lightgbm"].search_space(trial)
    return params["learning_rate"] * params["num_leaves"]


def _proposals(study: optuna.Study) -> list[tuple[Any, ...]]:
    return [tuple(sorted(t.params.items())) for t in study.trials]


def test_two_workers_on_one_sqlite_study_propose_distinct_params(tmp_path: Path) -> None:
    """Each worker (own process in production: own study object and sampler, same
    seed) on one SQLite study; before the fix both drew the same parameter sets."""
    storage = f"sqlite:///{tmp_path}/shared.db"
    open_study(storage, "shared", SEED)  # create it once, as the first worker would
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            open_study(storage, "shared", SEED).optimize(_propose, n_trials=TRIALS_PER_WORKER)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert not errors
    proposals = _proposals(optuna.load_study(study_name="shared", storage=storage))
    assert len(proposals) == 2 * TRIALS_PER_WORKER
    assert len(set(proposals)) == len(proposals)


def test_one_process_with_the_same_seed_repeats_its_trials(tmp_path: Path) -> None:
    """Reproducible single-process runs, past TPE's random start-up trials; the first
    trial is the one a plain ``TPESampler(seed)`` proposed before per-trial seeding."""
    runs = []
    for name in ("first", "second"):
        study = open_study(f"sqlite:///{tmp_path}/{name}.db", name, SEED)
        study.optimize(_propose, n_trials=12)
        runs.append(_proposals(study))
    assert runs[0] == runs[1]
    assert len(set(runs[0])) == len(runs[0])

    plain = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=SEED))
    plain.optimize(_propose, n_trials=1)
    assert _proposals(plain)[0] == runs[0][0]
