"""Several tuning workers, ONE registration and promotion per training run (issue 12).

Before: every `salescast train` sharing the Optuna storage registered its own versions
and promoted on its own, and each counted the others' trials in its `n_trials`. Now the
leader starts (or is joined by) tuning-only workers, the budget is the run's, and only the
leader registers and promotes. Real SQLite MLflow store, real SQLite Optuna storage, a
real joiner subprocess.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import yaml
from typer.testing import CliRunner

from experiments.settings import Settings
from training.trial_groups import WORKER_ATTR, group_trials, worker_identity

runner = CliRunner()
BUDGET = 4


@pytest.fixture
def settings(training_settings: Settings, tmp_path: Path) -> Settings:
    """The session's MLflow store, an Optuna storage of this test's own."""
    return training_settings.model_copy(update={"optuna_storage":
                                                f"sqlite:///{tmp_path}/optuna.db"})


def _hold_the_leader_until_another_worker_joins(storage: str,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The leader's first regression trial waits (at most 120 s) until another worker has
    claimed a trial, so the test does not depend on how fast a process starts here."""
    import training.tuning

    real = training.tuning.run_backtest

    def backtest(forecaster, *args, **kwargs):  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + 120
        while type(forecaster).__name__ == "RegressionForecaster" and time.monotonic() < \
                deadline and not _foreign_trials(storage):
            time.sleep(0.5)
        return real(forecaster, *args, **kwargs)

    monkeypatch.setattr(training.tuning, "run_backtest", backtest)


def _foreign_trials(storage: str) -> bool:
    me = worker_identity()
    for name in optuna.get_all_study_names(storage):
        study = optuna.load_study(study_name=name, storage=storage)
        if any(t.user_attrs.get(WORKER_ATTR, me) != me for t in study.trials):
            return True
    return False


@pytest.mark.timeout(300)
def test_two_workers_make_one_registration_and_one_promotion(
        tiny_spec, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow import MlflowClient

    from experiments.training_job import run_training

    _hold_the_leader_until_another_worker_joins(settings.optuna_storage, monkeypatch)
    outcome = run_training(tiny_spec("tiny_workers"), settings, families=["regression"],
                           trials=BUDGET, workers=2)

    client = MlflowClient(settings.tracking_uri, registry_uri=settings.tracking_uri)
    versions = client.search_model_versions(f"name = '{outcome.model_name}'")
    assert sorted(v.tags["family"] for v in versions) == ["regression", "seasonal_naive"]
    assert {v.run_id for v in versions} == {o.run_id for o in outcome.families.values()}
    decisions = sorted(v.tags["promotion_decision"] for v in versions)  # one, the other
    assert decisions == sorted([outcome.decision.action, "not_selected"])  # not selected
    family = client.get_run(outcome.families["regression"].run_id)
    assert family.data.metrics["n_trials"] == BUDGET  # the run's, not 2 x BUDGET
    assert family.data.metrics["n_workers"] == 2
    trial_runs = client.search_runs(
        [outcome.experiment_id], f"tags.mlflow.parentRunId = '{family.info.run_id}'")
    assert len(trial_runs) == BUDGET
    assert len({r.data.tags["worker"] for r in trial_runs}) == 2
    study = optuna.load_study(study_name=family.data.tags["study_name"],
                              storage=settings.optuna_storage)
    trials = group_trials(study, outcome.parent_run_id)
    assert len(trials) == BUDGET and len({t.user_attrs[WORKER_ATTR] for t in trials}) == 2
    assert len({tuple(sorted(t.params.items())) for t in trials}) == BUDGET


@pytest.fixture
def spec_file(tiny_spec, settings: Settings, tmp_path: Path,
              monkeypatch: pytest.MonkeyPatch) -> Path:
    """The environment the command builds its Settings from; returns the spec file."""
    monkeypatch.setenv("SALESCAST_TRACKING_URI", settings.tracking_uri)
    monkeypatch.setenv("SALESCAST_OPTUNA_STORAGE", settings.optuna_storage)
    monkeypatch.setenv("SALESCAST_ARTIFACT_LOCATION", str(settings.artifact_location))
    path = tmp_path / "tiny_join.yaml"
    path.write_text(yaml.safe_dump(tiny_spec("tiny_join").model_dump(mode="json")))
    return path


def _finished_run(settings: Settings, spec_path: Path) -> str:
    """A finished training run of the spec (tagged as the leader tags its parent run)."""
    from mlflow import MlflowClient

    from experiments.spec import load_spec

    spec = load_spec(spec_path)
    client = MlflowClient(settings.tracking_uri)
    found = client.get_experiment_by_name(spec.name)
    experiment_id = found.experiment_id if found else client.create_experiment(spec.name)
    run = client.create_run(experiment_id, tags={"spec_name": spec.name,
                                                 "spec_hash": spec.spec_hash()})
    client.set_terminated(run.info.run_id, "FINISHED")
    return run.info.run_id


@pytest.mark.parametrize(("args", "message"), [
    (["--join", "no-such-run"], "cannot join run 'no-such-run': no such run"),
    (["--join", "FINISHED"], "is FINISHED, not RUNNING"),
    (["--workers", "2", "--trials", "1"], "needs an Optuna storage every worker opens"),
])
def test_a_worker_that_cannot_join_fails_in_one_line_and_registers_nothing(
        spec_file: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch,
        args: list[str], message: str) -> None:
    from mlflow import MlflowClient

    from experiments.cli import app

    if "--workers" in args:
        monkeypatch.setenv("SALESCAST_OPTUNA_STORAGE", "sqlite:///:memory:")
    args = [_finished_run(settings, spec_file) if a == "FINISHED" else a for a in args]

    result = runner.invoke(app, ["train", "--spec", str(spec_file), *args])

    assert result.exit_code == 1
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0], result.output
    assert "Traceback" not in result.output
    client = MlflowClient(settings.tracking_uri, registry_uri=settings.tracking_uri)
    assert client.search_model_versions("name = 'tiny_join_model'") == []


def test_local_workers_are_stopped_when_the_leader_fails(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Every path stops the joiners: here the leader fails while they still run."""
    import experiments.local_workers as local

    monkeypatch.setattr(local, "joiner_command", lambda *args: [
        sys.executable, "-c", "import time; time.sleep(120)"])
    started = time.monotonic()
    with pytest.raises(RuntimeError, match="leader failed"), \
            local.local_workers(2, {}, "run", [], {}) as workers:
        processes = list(workers.processes)
        raise RuntimeError("leader failed")

    assert len(processes) == 2
    assert all(p.returncode is not None for p in processes)
    assert time.monotonic() - started < 30


def test_a_failing_joiner_is_reported_once_and_a_stopped_one_is_not(
        caplog: pytest.LogCaptureFixture) -> None:
    from experiments.local_workers import LocalWorkers

    failing = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    lingering = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    workers = LocalWorkers([failing, lingering])
    failing.wait()

    workers.stop(grace=0.5)
    workers.check()
    workers.check()

    assert lingering.returncode is not None
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == [f"local tuning worker (pid {failing.pid}) exited with code 3; going "
                        "on with the other workers' trials"]
