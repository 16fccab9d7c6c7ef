"""Trial groups: several tuning workers, one budget per training run.

The trials of one training run form a group (:class:`TrialGroup`: the leader's MLflow
parent run id, and each worker's ``host:pid``), whichever worker runs them, tagged on
every trial as the user attrs ``group`` and ``worker``. ``trials: N`` means N trials of
the group per family, its COMPLETE, PRUNED, FAIL and RUNNING trials all counting as used
(RUNNING too, so that workers do not overshoot). Re-running a spec continues the same
study, so only the group's trials count, never an earlier run's.

A worker checks the count before each trial, then *claims* one: the trial is created with
the group's user attrs inside the storage's own transaction, the one that numbers trials
in order, so "is my trial among the group's first N?" has an exact answer even when two
workers claim at the same moment. A claim past the budget is released at once (state
FAIL, user attr ``over_budget``) and never counted. ``Study.optimize`` cannot do this
(``ask`` creates a bare trial, and a user attr set after it races with the other
workers' counts), hence :func:`optimize_group`'s own loop; Optuna's ``MaxTrialsCallback``
counts the whole study. Timeouts stay per process. The leader waits for the group's
running trials (:func:`wait_for_group`) before it picks the study's best trial.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import optuna
from optuna.storages import fail_stale_trials
from optuna.storages._heartbeat import get_heartbeat_thread  # what Study.optimize uses
from optuna.trial import FrozenTrial, TrialState

log = logging.getLogger(__name__)

Objective = Callable[[optuna.Trial], float]
TrialCallback = Callable[[FrozenTrial], None]
GROUP_ATTR = "group"  # trial user attr: the run it belongs to (the leader's parent run id)
WORKER_ATTR = "worker"  # trial user attr: host:pid of the process that ran it
FIRST_TRIAL_ATTR = "fixed_params"  # Optuna's own: the values an enqueued trial takes
RELEASED_ATTR = "over_budget"  # trial user attr: a claim made once the budget was used
WAIT_LIMIT = 600.0  # seconds the leader waits at most for other workers' running trials


def worker_identity() -> str:
    """This process as a tuning worker: ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True)
class TrialGroup:
    """The trials of one training run: ``run_id`` (the leader's MLflow parent run id)
    and the ``worker`` (``host:pid``) this process tags its trials with."""

    run_id: str
    worker: str = field(default_factory=worker_identity)

    @classmethod
    def private(cls) -> TrialGroup:
        """A group of one call alone: its budget is that call's, as ``optimize``'s."""
        return cls(f"local-{uuid.uuid4().hex}")


def group_trials(study: optuna.Study, run_id: str,
                 states: Sequence[TrialState] | None = None) -> list[FrozenTrial]:
    """The trials of group ``run_id`` in ``study`` (released claims excluded)."""
    return [t for t in study.get_trials(deepcopy=False, states=states)
            if t.user_attrs.get(GROUP_ATTR) == run_id and not t.user_attrs.get(RELEASED_ATTR)]


def _claim(study: optuna.Study, storage: optuna.storages.BaseStorage, group: TrialGroup,
           n_trials: int, first: dict[str, Any] | None = None) -> optuna.Trial | None:
    """A new RUNNING trial tagged with ``group`` from its creation, or None (the claim
    released) when the group's first ``n_trials`` trials are numbered before it. The
    study's trial 0 takes ``first`` as fixed values (what ``enqueue_trial`` would do; a
    waiting trial would never be claimed here), whichever worker creates it."""
    template = FrozenTrial(
        number=-1, state=TrialState.RUNNING, value=None, datetime_start=datetime.now(),
        datetime_complete=None, params={}, distributions={}, system_attrs={},
        user_attrs={GROUP_ATTR: group.run_id, WORKER_ATTR: group.worker},
        intermediate_values={}, trial_id=-1)
    trial_id = storage.create_new_trial(storage.get_study_id_from_name(study.study_name),
                                        template)
    number = storage.get_trial(trial_id).number
    earlier = [t for t in group_trials(study, group.run_id) if t.number < number]
    if len(earlier) < n_trials:
        if number == 0 and first:
            storage.set_trial_system_attr(trial_id, FIRST_TRIAL_ATTR, first)
        return optuna.Trial(study, trial_id)
    storage.set_trial_user_attr(trial_id, RELEASED_ATTR, True)
    storage.set_trial_state_values(trial_id, TrialState.FAIL)
    log.debug("trial %d released: the group's %d trials were claimed first", number, n_trials)
    return None


def _run_trial(study: optuna.Study, storage: optuna.storages.BaseStorage, trial: optuna.Trial,
               objective: Objective) -> FrozenTrial:
    """Run one claimed trial and tell the study (PRUNED, FAIL and re-raise, or COMPLETE)."""
    try:
        with get_heartbeat_thread(trial._trial_id, storage):  # as Study.optimize beats
            value = objective(trial)
    except optuna.TrialPruned:
        return study.tell(trial, state=TrialState.PRUNED)
    except BaseException:
        study.tell(trial, state=TrialState.FAIL)
        raise
    return study.tell(trial, value)


def optimize_group(study: optuna.Study, storage: optuna.storages.BaseStorage,
                   objective: Objective, group: TrialGroup, n_trials: int,
                   timeout: float | None = None, on_trial: TrialCallback | None = None,
                   first: dict[str, Any] | None = None) -> list[int]:
    """Run trials until ``group`` has ``n_trials`` in ``study`` (every worker's) or this
    process has spent ``timeout`` seconds; returns the numbers of the trials run here.
    ``first``: the values of a new study's first trial (see :func:`_claim`)."""
    started, numbers = time.monotonic(), []
    while timeout is None or time.monotonic() - started < timeout:
        _fail_stale(study)
        if len(group_trials(study, group.run_id)) >= n_trials:
            break
        trial = _claim(study, storage, group, n_trials, first)
        if trial is None:
            break
        frozen = _run_trial(study, storage, trial, objective)
        numbers.append(frozen.number)
        if on_trial is not None:
            on_trial(frozen)
    return numbers


def _fail_stale(study: optuna.Study) -> None:
    with warnings.catch_warnings():  # stable since Optuna 2.9, still flagged experimental
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        fail_stale_trials(study)


def wait_for_group(study: optuna.Study, run_id: str, limit: float = WAIT_LIMIT,
                   poll: float = 1.0) -> list[FrozenTrial]:
    """The group's trials once none is RUNNING any more (other workers' last trials), or
    after ``limit`` seconds (a warning: those still running are left out of the best)."""
    deadline, told = time.monotonic() + limit, False
    while True:
        _fail_stale(study)  # a killed worker's trial: FAIL once its heartbeat stops
        trials = group_trials(study, run_id)
        running = [t.number for t in trials if t.state == TrialState.RUNNING]
        if not running:
            return trials
        if time.monotonic() >= deadline:
            log.warning("%s: trials %s of other workers still running after %.0f s; going "
                        "on without them", study.study_name, running, limit)
            return trials
        if not told:
            log.info("%s: waiting for %d running trial(s) of other workers",
                     study.study_name, len(running))
            told = True
        time.sleep(poll)
