"""Tuning seen from outside one trial: a pruned trial never looks like a finished one (log
line, MLflow run, best trial), and workers sharing one RDB study propose distinct
parameters while a single process with the same seed repeats its trials. Workers of one
run share its trial budget (not one budget each, earlier runs' trials not counted), and
the leader waits for the others' running trials."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
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
from training.trial_groups import (
    RELEASED_ATTR,
    Objective,
    TrialGroup,
    group_trials,
    optimize_group,
    wait_for_group,
)
from training.tuning import make_storage, open_study, tune_family

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


BUDGET = 4


def _slow_propose(trial: optuna.Trial) -> float:
    """A trial long enough for the other workers to claim theirs meanwhile."""
    time.sleep(0.2)
    return _propose(trial)


def _work(storage_url: str, name: str, group: TrialGroup, objective: Objective,
          n_trials: int) -> list[int]:
    """One worker: its own storage, study and sampler (its own process in production)."""
    storage = make_storage(storage_url)
    return optimize_group(open_study(storage, name, SEED), storage, objective, group, n_trials)


def _in_threads(*workers: Callable[[], Any]) -> None:
    errors: list[BaseException] = []

    def run(worker: Callable[[], Any]) -> None:
        try:
            worker()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(w,)) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors


def test_two_workers_share_the_run_budget_and_an_earlier_run_does_not_count(
        tmp_path: Path) -> None:
    """Budget N per run, not per process: before, each worker ran N trials (2N in all);
    and re-running a spec continues the study, whose earlier trials are not this run's."""
    storage = f"sqlite:///{tmp_path}/budget.db"
    _work(storage, "budget", TrialGroup("earlier-run"), _propose, 3)
    ran: dict[str, list[int]] = {}
    workers = [lambda name=name: ran.setdefault(name, _work(
        storage, "budget", TrialGroup("new-run", worker=name), _slow_propose, BUDGET))
        for name in ("leader", "joiner")]

    _in_threads(*workers)

    study = optuna.load_study(study_name="budget", storage=storage)
    run = group_trials(study, "new-run")
    assert len(run) == BUDGET  # not 2 x BUDGET, and not BUDGET - 3
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in run)
    assert {t.user_attrs["worker"] for t in run} == {"leader", "joiner"}
    assert sorted(ran["leader"] + ran["joiner"]) == [t.number for t in run]
    assert len(group_trials(study, "earlier-run")) == 3
    assert len(set(_proposals(study))) == len(study.trials)


def test_workers_claiming_at_once_never_overshoot_the_budget(tmp_path: Path) -> None:
    """Four workers race for the last claims: a claim past the budget is released (FAIL,
    ``over_budget``), never run, never counted."""
    storage = f"sqlite:///{tmp_path}/race.db"
    group = TrialGroup("racing-run")
    open_study(storage, "race", SEED)  # create it once, as the leader would
    _in_threads(*[lambda: _work(storage, "race", group, _propose, 5) for _ in range(4)])

    study = optuna.load_study(study_name="race", storage=storage)
    run = group_trials(study, "racing-run")
    assert len(run) == 5
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in run)
    released = [t for t in study.trials if t not in run]
    assert all(t.state == optuna.trial.TrialState.FAIL and t.user_attrs[RELEASED_ATTR]
               and not t.params for t in released)


def test_the_leader_waits_for_a_joiners_running_trial_before_choosing(
    small_training_set: TrainingSet, tmp_path: Path,
) -> None:
    """The joiner's trial is still running when the leader's own loop ends (the budget is
    used): the leader waits for it, counts it and can choose among both."""
    storage = f"sqlite:///{tmp_path}/wait.db"
    windows = make_windows(small_training_set, BacktestConfig(n_windows=2, step=2,
                                                              min_train_periods=26))
    claimed, leader_done = threading.Event(), threading.Event()

    def slow_joiner_trial(trial: optuna.Trial) -> float:
        BY_NAME["regression"].search_space(trial)
        claimed.set()
        leader_done.wait(60)
        time.sleep(0.5)
        return 10.0  # worse than any real WAPE here

    joiner = threading.Thread(target=_work, args=(
        storage, "wait", TrialGroup("run-1", worker="joiner"), slow_joiner_trial, 2))
    joiner.start()
    assert claimed.wait(30)
    result = tune_family("regression", small_training_set, windows, FamilyConfig(trials=2),
                         0.8, storage, "wait", SEED, on_trial=lambda t: leader_done.set(),
                         group=TrialGroup("run-1", worker="leader"))
    joiner.join()

    assert [t.state.name for t in result.group_trials] == ["COMPLETE", "COMPLETE"]
    assert result.workers == ["joiner", "leader"]
    assert result.trial_numbers == [1] and result.best_trial == 1


def _claim_and_hang(storage_url: str, started: Any) -> None:
    """A worker process that claims a trial of run-k and never finishes it."""
    study = open_study(storage_url, "killed", SEED)

    def hang(trial: optuna.Trial) -> float:
        started.set()
        time.sleep(600)
        return 1.0

    optimize_group(study, make_storage(storage_url), hang, TrialGroup("run-k", worker="doomed"),
                   n_trials=3)


def _wait_for_a_heartbeat(database: Path, timeout: float = 60) -> None:
    import sqlite3

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with sqlite3.connect(database) as db:
            if db.execute("SELECT COUNT(*) FROM trial_heartbeats").fetchone()[0]:
                return
        time.sleep(0.1)
    raise AssertionError("the worker's trial never beat")


def test_a_worker_killed_mid_trial_leaves_the_study_consistent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """kill -9 of a worker in a trial: its heartbeat stops, the trial is FAILed by the
    next worker that looks, and the others finish the run's budget."""
    import multiprocessing
    import os
    import signal

    from training import tuning

    monkeypatch.setattr(tuning, "HEARTBEAT_SECONDS", 1)
    monkeypatch.setattr(tuning, "HEARTBEAT_GRACE_SECONDS", 3)
    url = f"sqlite:///{tmp_path}/killed.db"
    context = multiprocessing.get_context("fork")  # inherits the short heartbeat
    started = context.Event()
    doomed = context.Process(target=_claim_and_hang, args=(url, started))
    doomed.start()
    assert started.wait(60)
    _wait_for_a_heartbeat(tmp_path / "killed.db")
    os.kill(doomed.pid, signal.SIGKILL)
    doomed.join(10)
    study = open_study(url, "killed", SEED)
    ran = optimize_group(study, make_storage(url), lambda trial: 0.5,
                         TrialGroup("run-k", worker="survivor"), n_trials=3)
    assert len(ran) == 2  # the killed worker's RUNNING trial holds its slot
    trials = wait_for_group(study, "run-k", limit=60, poll=0.5)  # the leader's wait
    states = sorted(t.state.name for t in trials)
    assert states == ["COMPLETE", "COMPLETE", "FAIL"]  # failed once its heartbeat went silent
