"""A tuning-only worker of a training run: ``salescast train --spec S --join RUN_ID``.

It adds trials to a run that a leader (plain ``salescast train``) is running: the same
training set and backtest windows, the same family list and order, the same Optuna
studies (:func:`experiments.training_job.study_name`), each family's trials counted in
the run's budget (:mod:`training.trial_groups`). It never opens an MLflow run, refits,
registers or promotes: the leader logs this worker's trials under its family runs and
alone registers and promotes.

What it checks first, each failure one line: ``RUN_ID`` is a RUNNING parent run of this
spec (its tags ``spec_name`` / ``spec_hash``) in the tracking store, and the training set
has the leader's data digest (else the studies would differ). The leader's family list
and budgets (its params ``families`` and ``trials.<family>``) win over this process's
``--families`` / ``--trials``, with a warning; ``--timeout`` stays this process's. It
stops when every family's budget is used, or when the leader's run has ended.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from experiments.local_workers import WorkersError, require_shared_storage
from experiments.settings import Settings
from experiments.spec import ExperimentSpec
from experiments.training_job import family_budget, fixed_params, select_families, study_name
from training import families as families_table
from training.config import FamilyConfig
from training.trial_groups import TrialGroup

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Run

    from features.training_set import TrainingSet
    from training.backtest import BacktestPlan

log = logging.getLogger(__name__)


@dataclass
class JoinOutcome:
    """What a joining worker did: its trials per family."""

    run_id: str
    worker: str
    trials: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        """One line for people."""
        counts = ", ".join(f"{family} {n}" for family, n in self.trials.items()) or "none"
        return (f"worker {self.worker} ran {sum(self.trials.values())} trials for run "
                f"{self.run_id}: {counts}")


@dataclass
class _Joiner:
    """What every family of this worker shares."""

    spec: ExperimentSpec
    settings: Settings
    client: MlflowClient
    parent: Run
    training_set: TrainingSet
    plan: BacktestPlan
    group: TrialGroup


def join_training(spec: ExperimentSpec, settings: Settings, run_id: str,
                  families: list[str] | None = None, trials: int | None = None,
                  timeout: float | None = None, n_jobs: int | None = None) -> JoinOutcome:
    """Contribute trials to the leader's run ``run_id`` (see the module docstring)."""
    from experiments.pipeline import build_features
    from training.backtest import plan_windows
    from training.registry import client_for
    from training.tracking import probe_tracking_server, tracking

    require_shared_storage(settings.optuna_storage, "--join")
    probe_tracking_server(settings.tracking_uri)
    with tracking(settings.tracking_uri, settings.registry_uri):
        client = client_for(settings.tracking_uri, settings.registry_uri)
        parent = joinable_run(client, run_id, spec, settings.tracking_uri)
        training_set = build_features(spec)
        _check_same_data(parent, training_set)
        joiner = _Joiner(spec, settings, client, parent, training_set,
                         plan_windows(training_set, spec.backtest), TrialGroup(run_id))
        outcome = JoinOutcome(run_id, joiner.group.worker)
        for family in _leader_families(parent, spec, families):
            if not _leader_running(joiner):
                break
            budget = _leader_budget(parent, spec, family, trials, timeout)
            outcome.trials[family] = _contribute(joiner, family, budget, n_jobs)
    return outcome


def joinable_run(client: MlflowClient, run_id: str, spec: ExperimentSpec,
                 tracking_uri: str) -> Run:
    """The leader's parent run, or WorkersError saying why it cannot be joined."""
    from mlflow.exceptions import MlflowException

    try:
        run = client.get_run(run_id)
    except MlflowException:
        raise WorkersError(f"cannot join run {run_id!r}: no such run in the tracking store "
                           f"{tracking_uri}") from None
    tags, status = run.data.tags, run.info.status
    if "mlflow.parentRunId" in tags:
        raise WorkersError(f"cannot join run {run_id}: it is a family or trial run; join "
                           f"its training run {tags['mlflow.parentRunId']}")
    if (tags.get("spec_name"), tags.get("spec_hash")) != (spec.name, spec.spec_hash()):
        raise WorkersError(
            f"cannot join run {run_id}: it trains spec {tags.get('spec_name')!r} (hash "
            f"{tags.get('spec_hash')}), not {spec.name!r} (hash {spec.spec_hash()}); use the "
            "leader's spec file")
    if status != "RUNNING":
        raise WorkersError(f"cannot join run {run_id}: it is {status}, not RUNNING (only "
                           "a training run in progress takes more workers)")
    return run


def _check_same_data(parent: Run, training_set: TrainingSet) -> None:
    leader = parent.data.tags.get("data_digest")
    ours = training_set.metadata.data_digest
    if leader and leader != ours:
        raise WorkersError(f"cannot join run {parent.info.run_id}: its training data differ "
                           f"from this machine's (data digest {leader[:12]} vs {ours[:12]})")


def _leader_families(parent: Run, spec: ExperimentSpec, families: list[str] | None
                     ) -> list[str]:
    """The tuned families of the leader, in its order (its ``families`` param)."""
    ours = select_families(spec, families)
    logged = parent.data.params.get("families")
    leader = logged.split(",") if logged else ours
    if families and leader != ours:
        log.warning("--families %s ignored: run %s trains %s", ",".join(families),
                    parent.info.run_id, ",".join(leader))
    return [f for f in leader if not families_table.BY_NAME[f].combines]


def _leader_budget(parent: Run, spec: ExperimentSpec, family: str, trials: int | None,
                   timeout: float | None) -> FamilyConfig:
    """The family's budget with the leader's trials (param ``trials.<family>``)."""
    logged = parent.data.params.get(f"trials.{family}")
    if logged and trials and int(logged) != trials:
        log.warning("%s: --trials %d ignored: the run's budget is %s trials", family, trials,
                    logged)
    return family_budget(spec, family, int(logged) if logged else trials, timeout)


def _leader_running(joiner: _Joiner) -> bool:
    """Whether the leader's run is still RUNNING; an ended one stops this worker (one
    that FAILED or was KILLED with an error)."""
    status = joiner.client.get_run(joiner.group.run_id).info.status
    if status == "RUNNING":
        return True
    if status != "FINISHED":
        raise WorkersError(f"run {joiner.group.run_id} ended {status}: stopping this worker")
    log.info("run %s has finished: nothing left to tune", joiner.group.run_id)
    return False


def _contribute(joiner: _Joiner, family: str, budget: FamilyConfig, n_jobs: int | None) -> int:
    """This worker's trials of ``family`` until the run's budget is used."""
    from training.tracking import describe_trial
    from training.tuning import contribute_trials

    spec, digest = joiner.spec, joiner.training_set.metadata.data_digest

    def told(trial: Any) -> None:
        log.info("%s: %s (worker %s)", family, describe_trial(trial), joiner.group.worker)

    numbers = contribute_trials(
        family, joiner.training_set, joiner.plan.inner, budget, spec.models.interval_level,
        joiner.settings.optuna_storage, study_name(spec, digest, family), spec.models.seed,
        joiner.group, told,
        fixed=fixed_params(family, spec, n_jobs or joiner.settings.n_jobs))
    log.info("%s: %d trials by this worker", family, len(numbers))
    return len(numbers)
