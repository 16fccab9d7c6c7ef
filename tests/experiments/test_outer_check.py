"""A tuned trial replaces the family's defaults only if it holds its gain once the outer
window, which the tuning never saw, is counted (``training.tuning.holds_its_gain``): when it
does not, the run logs, registers and promises the defaults. Real MLflow store, registry and
Optuna storage (the session's), a tiny simulated spec; the rule itself is forced each way
(its table is tested in tests/training/test_tuning.py)."""

from __future__ import annotations

import re

import optuna
import pytest

from experiments.settings import Settings
from experiments.training_job import run_training


def _lightgbm_run(tiny_spec, settings: Settings, name: str, holds: bool,
                  monkeypatch: pytest.MonkeyPatch):
    from mlflow import MlflowClient

    monkeypatch.setattr("training.tuning.DEFAULTS_MARGIN", -1.0)  # the best trial is chosen
    monkeypatch.setattr("training.tuning.holds_its_gain", lambda tuned, defaults: holds)
    outcome = run_training(tiny_spec(name), settings, families=["lightgbm"], trials=5)
    client = MlflowClient(settings.tracking_uri, registry_uri=settings.tracking_uri)
    version = client.get_model_version(f"{name}_model", outcome.versions["lightgbm"])
    run = client.get_run(version.run_id)
    study = optuna.load_study(study_name=run.data.tags["study_name"],
                              storage=settings.optuna_storage)
    return run, study


def _check(run) -> tuple[int, str, list[float]]:
    """The tuned trial, the verdict and the four WAPEs of the run's ``outer_check`` tag."""
    match = re.fullmatch(r"trial #(\d+) (kept|dropped): tuning \+ outer wape (\S+) \+ (\S+), "
                         r"defaults (\S+) \+ (\S+)", run.data.tags["outer_check"])
    assert match, run.data.tags["outer_check"]
    return int(match[1]), match[2], [float(v) for v in match.groups()[2:]]


def test_a_tuned_trial_that_does_not_hold_its_gain_gives_way_to_the_defaults(
    tiny_spec, training_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    run, study = _lightgbm_run(tiny_spec, training_settings, "tiny_outer_dropped", False,
                               monkeypatch)
    assert "outer_check" in run.data.tags, [t.value for t in study.trials]
    tuned, verdict, (_, _, defaults_tuning, defaults_outer) = _check(run)
    assert verdict == "dropped" and tuned != 0
    assert study.trials[tuned].value < study.trials[0].value  # the tuning preferred it
    assert run.data.tags["best_trial"] == "0"
    for name, value in study.trials[0].user_attrs["params"].items():
        assert run.data.params[name] == str(value)
    assert run.data.metrics["tuning_wape"] == pytest.approx(defaults_tuning, abs=1e-4)
    assert run.data.metrics["wape"] == pytest.approx(defaults_outer, abs=1e-4)


def test_a_tuned_trial_that_holds_its_gain_is_kept(
    tiny_spec, training_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    run, study = _lightgbm_run(tiny_spec, training_settings, "tiny_outer_kept", True,
                               monkeypatch)
    tuned, verdict, (tuned_tuning, tuned_outer, _, _) = _check(run)
    assert verdict == "kept" and run.data.tags["best_trial"] == str(tuned) != "0"
    for name, value in study.trials[tuned].user_attrs["params"].items():
        assert run.data.params[name] == str(value)
    assert run.data.metrics["tuning_wape"] == pytest.approx(tuned_tuning, abs=1e-4)
    assert run.data.metrics["wape"] == pytest.approx(tuned_outer, abs=1e-4)
