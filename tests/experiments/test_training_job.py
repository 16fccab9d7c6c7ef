"""The training job end to end on a tiny simulated spec (2 families, 1 trial): the MLflow
layout, the registry and the promotion; a failure marks the runs FAILED and registers
nothing; the train / compare / promote / rollback commands."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

import tests.training.test_intermittent as sparse_data
from experiments.settings import Settings
from experiments.training_job import (
    TrainingOutcome,
    _combinable,
    _Fitted,
    run_training,
    select_families,
)
from training.forecasters.intermittent import IntermittentForecaster
from training.forecasters.naive import SeasonalNaive
from training.metrics import METRIC_NAMES

runner = CliRunner()


@pytest.fixture(scope="module")
def client(training_settings: Settings):
    from mlflow import MlflowClient

    return MlflowClient(training_settings.tracking_uri, registry_uri=training_settings.tracking_uri)


@pytest.fixture(scope="module")
def trained(tiny_spec, training_settings: Settings) -> TrainingOutcome:
    return run_training(tiny_spec("tiny_train"), training_settings, families=["regression"],
                        trials=1)


def _children(client, experiment_id: str, parent_id: str) -> list:
    return client.search_runs([experiment_id],
                              filter_string=f"tags.mlflow.parentRunId = '{parent_id}'")


def _artifacts(client, run_id: str, path: str = "") -> set[str]:
    found = set()
    for item in client.list_artifacts(run_id, path):
        found |= _artifacts(client, run_id, item.path) if item.is_dir else {item.path}
    return found


def test_seasonal_naive_always_runs_first_and_unknown_families_are_refused(tiny_spec) -> None:
    spec = tiny_spec("families")
    assert select_families(spec, ["lightgbm", "seasonal_naive"]) == ["seasonal_naive",
                                                                      "lightgbm"]
    assert select_families(spec, None) == ["seasonal_naive", "regression", "ensemble"]
    with pytest.raises(ValueError, match=r"unknown model family.*prophet"):
        select_families(spec, ["prophet"])


def test_the_parent_run_tells_what_was_trained_on_what(trained, client) -> None:
    parent = client.get_run(trained.parent_run_id)
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["spec_name"] == "tiny_train"
    assert len(parent.data.tags["data_digest"]) >= 12
    assert parent.data.tags["promotion_decision"] == trained.decision.action
    assert set(METRIC_NAMES) <= set(parent.data.metrics)
    best = trained.leaderboard.iloc[0]
    assert parent.data.metrics["wape"] == pytest.approx(best["wape"])
    assert {"spec.yaml", "leaderboard.json", "plots/leaderboard_wape.png"} <= _artifacts(
        client, parent.info.run_id)


def test_each_family_run_logs_the_shared_metrics_data_and_plots(trained, client) -> None:
    parent = client.get_run(trained.parent_run_id)
    children = _children(client, trained.experiment_id, trained.parent_run_id)
    assert sorted(r.data.tags["family"] for r in children) == ["regression", "seasonal_naive"]
    for run in children:
        expected = {*METRIC_NAMES, "wape_w0", "wape_w1", "mase_w1", "wape_w2", "tuning_wape",
                    "train_seconds"}
        assert expected <= set(run.data.metrics)
        # nested: the promise is the held-out window's (w2), never the tuning windows'
        assert run.data.metrics["wape"] == pytest.approx(run.data.metrics["wape_w2"])
        tuning = (run.data.metrics["wape_w0"] + run.data.metrics["wape_w1"]) / 2
        assert run.data.metrics["tuning_wape"] == pytest.approx(tuning)
        dataset = run.inputs.dataset_inputs[0]
        tags = {t.key: t.value for t in dataset.tags}
        assert tags["mlflow.data.context"] == "training"
        assert tags["data_digest"] == parent.data.tags["data_digest"]
        assert parent.data.tags["data_digest"].startswith(dataset.dataset.digest)
        files = _artifacts(client, run.info.run_id)
        assert {"backtest/predictions.parquet", "plots/forecast_vs_actual.png",
                "plots/error_by_step.png"} <= files


def test_trials_are_nested_under_their_family_run(trained, client) -> None:
    for run in _children(client, trained.experiment_id, trained.parent_run_id):
        trials = _children(client, trained.experiment_id, run.info.run_id)
        assert len(trials) == 1  # one trial each: the budget of this test
        trial = trials[0]
        assert trial.data.tags["trial_state"] == "COMPLETE"
        # the family's best trial is the only one: its WAPE is the tuning (inner) one
        assert trial.data.metrics["wape"] == pytest.approx(run.data.metrics["tuning_wape"])
        assert {"wape_w0", "wape_w1"} <= set(trial.data.metrics)


def test_every_family_is_registered_and_the_winner_is_champion(trained, client) -> None:
    name = trained.model_name
    versions = client.search_model_versions(f"name = '{name}'")
    assert sorted(v.tags["family"] for v in versions) == ["regression", "seasonal_naive"]
    board = trained.leaderboard.set_index("family")
    # on this seeded data the regression beats seasonal naive, so it must be promoted
    assert board.loc["regression", "wape"] < board.loc["seasonal_naive", "wape"]
    champion = client.get_model_version_by_alias(name, "champion")
    assert champion.tags["family"] == "regression"
    assert str(champion.version) == trained.decision.champion_version
    assert trained.decision.champion_version == trained.versions["regression"]
    assert champion.tags["promotion_decision"] == "promoted"
    assert float(champion.tags["wape"]) == pytest.approx(board.loc["regression", "wape"],
                                                         rel=1e-5)
    assert champion.run_id == board.loc["regression", "run_id"]


def test_the_ensemble_is_registered_and_serves_the_weighted_mean_of_its_members(
        tiny_spec, training_settings: Settings) -> None:
    import mlflow

    from training.tracking import tracking

    outcome = run_training(tiny_spec("tiny_ensemble"), training_settings,
                           families=["regression", "ensemble"], trials=1)
    assert set(outcome.leaderboard["family"]) == {"seasonal_naive", "regression", "ensemble"}
    run = mlflow.MlflowClient(training_settings.tracking_uri).get_run(
        outcome.families["ensemble"].run_id)
    members = run.data.params["members"].split(",")
    weights = [float(w) for w in run.data.params["weights"].split(",")]
    assert sorted(members) == ["regression", "seasonal_naive"]
    assert sum(weights) == pytest.approx(1.0, abs=1e-3)
    assert "tuning_wape" in run.data.metrics  # chosen on the inner windows, scored outer
    with tracking(training_settings.tracking_uri):
        def served(family: str) -> pd.DataFrame:
            uri = f"models:/{outcome.model_name}/{outcome.versions[family]}"
            model = mlflow.pyfunc.load_model(uri).unwrap_python_model()
            return model.forecaster.predict_mean(4)

        expected = sum(w * served(m)["yhat"].to_numpy() for m, w in zip(members, weights,
                                                                        strict=True))
        np.testing.assert_allclose(served("ensemble")["yhat"].to_numpy(), expected, rtol=1e-3)


def test_compare_lists_the_versions_with_their_aliases(trained, tiny_spec,
                                                        training_settings) -> None:
    from experiments.training_job import compare_models

    board = compare_models(tiny_spec("tiny_train"), training_settings)
    assert sorted(board["family"]) == ["regression", "seasonal_naive"]
    row = board.set_index("family").loc["regression"]
    assert row["alias"] == "champion"
    assert row["wape"] == pytest.approx(trained.leaderboard.set_index("family").loc[
        "regression", "wape"])


def test_a_failing_family_fails_the_runs_and_registers_nothing(
    tiny_spec, training_settings: Settings, client, monkeypatch: pytest.MonkeyPatch
) -> None:
    from training.forecasters import FAMILIES, SeasonalNaive, regression

    class Exploding(SeasonalNaive):
        family = "regression"

        def fit(self, training_set):  # type: ignore[no-untyped-def]
            raise RuntimeError("boom: singular design matrix")

    monkeypatch.setitem(FAMILIES, "regression", Exploding)
    monkeypatch.setattr(regression, "search_space", lambda trial: {})
    spec = tiny_spec("tiny_failing")

    with pytest.raises(RuntimeError, match="boom"):
        run_training(spec, training_settings, families=["regression"], trials=1)

    experiment = client.get_experiment_by_name("tiny_failing")
    runs = client.search_runs([experiment.experiment_id])
    parent = next(r for r in runs if "mlflow.parentRunId" not in r.data.tags)
    assert parent.info.status == "FAILED" and "boom" in parent.data.tags["error"]
    family_runs = {r.data.tags.get("family"): r.info.status for r in runs
                   if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id}
    assert family_runs == {"seasonal_naive": "FINISHED", "regression": "FAILED"}
    assert client.search_model_versions("name = 'tiny_failing_model'") == []


def test_a_failing_promotion_undoes_the_registration(
    tiny_spec, training_settings: Settings, client, monkeypatch: pytest.MonkeyPatch
) -> None:
    import training.registry

    registered: list = []

    def refuse(client, name, candidates, *args: object) -> None:
        registered.extend(candidates)
        raise ConnectionError("registry went away")

    monkeypatch.setattr(training.registry, "promote_challenger", refuse)
    with pytest.raises(ConnectionError):
        run_training(tiny_spec("tiny_undo"), training_settings, families=["seasonal_naive"])

    assert [c.version for c in registered] == ["1"]  # it had been registered...
    assert client.search_registered_models("name = 'tiny_undo_model'") == []
    assert client.search_model_versions("name = 'tiny_undo_model'") == []
    experiment = client.get_experiment_by_name("tiny_undo")
    runs = client.search_runs([experiment.experiment_id])
    parent = next(r for r in runs if "mlflow.parentRunId" not in r.data.tags)
    assert parent.info.status == "FAILED" and "registry went away" in parent.data.tags["error"]


@pytest.fixture
def cli_env(tiny_spec, training_settings: Settings, tmp_path: Path,
            monkeypatch: pytest.MonkeyPatch) -> Path:
    """The environment the commands build their Settings from; returns the spec file."""
    monkeypatch.setenv("SALESCAST_TRACKING_URI", training_settings.tracking_uri)
    monkeypatch.setenv("SALESCAST_OPTUNA_STORAGE", training_settings.optuna_storage)
    monkeypatch.setenv("SALESCAST_ARTIFACT_LOCATION", str(training_settings.artifact_location))
    path = tmp_path / "tiny_train.yaml"
    path.write_text(yaml.safe_dump(tiny_spec("tiny_train").model_dump(mode="json")))
    return path


def test_commands_compare_promote_and_rollback(trained, cli_env: Path, client) -> None:
    from experiments.cli import app

    naive = trained.versions["seasonal_naive"]
    compared = runner.invoke(app, ["compare", "--spec", str(cli_env)])
    assert compared.exit_code == 0, compared.output
    assert "champion" in compared.output and "seasonal_naive" in compared.output

    promoted = runner.invoke(app, ["promote", "--spec", str(cli_env), "--version", naive])
    assert promoted.exit_code == 0, promoted.output
    aliases = client.get_registered_model(trained.model_name).aliases
    assert str(aliases["champion"]) == naive
    assert str(aliases["previous-champion"]) == trained.versions["regression"]

    rolled = runner.invoke(app, ["rollback", "--spec", str(cli_env)])
    assert rolled.exit_code == 0, rolled.output
    aliases = client.get_registered_model(trained.model_name).aliases
    assert str(aliases["champion"]) == trained.versions["regression"]


@pytest.mark.parametrize(("args", "message"), [
    (["promote", "--version", "999"], "has no version 999"),
    (["train", "--families", "prophet"], "unknown model family"),
])
def test_command_errors_are_one_line_and_exit_1(trained, cli_env: Path, args: list[str],
                                                message: str) -> None:
    from experiments.cli import app

    result = runner.invoke(app, [args[0], "--spec", str(cli_env), *args[1:]])
    assert result.exit_code == 1
    assert message in result.output
    assert "Traceback" not in result.output


def _free_port() -> int:
    """A local TCP port nobody listens on (bound, read, released)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.timeout(60)  # MLflow's own retries took over 150 s before the probe
def test_train_fails_fast_in_one_line_when_the_tracking_server_is_down(
        tiny_spec, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from experiments.cli import app

    uri = f"http://127.0.0.1:{_free_port()}"
    monkeypatch.setenv("SALESCAST_TRACKING_URI", uri)
    monkeypatch.setenv("SALESCAST_OPTUNA_STORAGE", f"sqlite:///{tmp_path}/optuna.db")
    spec = tmp_path / "tiny_down.yaml"
    spec.write_text(yaml.safe_dump(tiny_spec("tiny_down").model_dump(mode="json")))

    result = runner.invoke(app, ["train", "--spec", str(spec)])

    assert result.exit_code == 1
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and uri in errors[0], result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(("status", "up"), [(200, True), (404, True), (503, False)])
def test_the_probe_counts_any_answer_but_a_gateway_error_as_up(status: int, up: bool) -> None:
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    from training.tracking import TrackingUnavailable, probe_tracking_server

    class Answer(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(status)
            self.end_headers()

        def log_message(self, *args: object) -> None:  # keep the test output quiet
            pass

    with HTTPServer(("127.0.0.1", 0), Answer) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        uri = f"http://127.0.0.1:{server.server_address[1]}"
        try:
            if up:
                probe_tracking_server(uri, timeout=5)
            else:
                with pytest.raises(TrackingUnavailable, match=f"{uri} is unavailable"):
                    probe_tracking_server(uri, timeout=5)
        finally:
            server.shutdown()


@pytest.mark.parametrize(("demand", "joins"), [(sparse_data.SPARSE[:3], True),
                                               (((1.0, 20.0),) * 3, False)])
def test_the_sparse_family_joins_the_ensemble_only_where_it_finds_intermittent_series(
        demand: tuple[tuple[float, float], ...], joins: bool) -> None:
    panel = sparse_data.sparse_panel(demand)

    def fitted(model) -> _Fitted:
        return _Fitted(model.fit(panel), {}, None, None, 0.0, 1)  # type: ignore[arg-type]

    done = {"lightgbm": fitted(SeasonalNaive()), "time_series": fitted(SeasonalNaive()),
            "intermittent": fitted(IntermittentForecaster())}
    assert set(_combinable(done)) == {"lightgbm", "time_series"} | ({"intermittent"} if joins
                                                                     else set())
