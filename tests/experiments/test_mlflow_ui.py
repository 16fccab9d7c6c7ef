"""The MLflow UI as the place models are compared: a tiny spec is trained once (seasonal
naive + regression, 2 Optuna trials), then the real ``mlflow server`` serves the session's
store. Through its REST API — what the UI's pages call — a data scientist finds the
experiment, the parent run, one run per family with the same metric names, the trials
nested under their family, the training dataset, the plots and leaderboard, and the
registered model with its ``champion``. Headless Chromium then opens the link
``salescast train`` prints (:mod:`training.mlflow_ui`) and the registered model: the
link must land on the runs table — not MLflow 3's GenAI overview — with the family runs
side by side, best WAPE first, and wape, mase, bias_pct and coverage as columns; the model
page must show the versions and the alias. (The README's screenshots are the demo's:
``bench/screenshots.py``.)"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest

from experiments.settings import Settings
from experiments.training_job import TrainingOutcome, run_training
from tests.conftest import MlflowStore
from tests.experiments._browser import (
    INSTALL_HINT,
    MlflowRest,
    MlflowServer,
    RenderedPage,
    chromium_binary,
    grey_spread,
    render_pages,
    start_mlflow_server,
    tags,
)
from training.metrics import METRIC_NAMES
from training.mlflow_ui import (
    EXPERIMENT_KIND_TAG,
    LOCAL_UI,
    ML_EXPERIMENT,
    VIEW_COLUMNS,
)

pytestmark = pytest.mark.slow

NAME = "ui_retail"
FAMILIES = ["seasonal_naive", "regression"]
N_WINDOWS = 2  # the tiny spec's backtest


@pytest.fixture(scope="module")
def server(mlflow_store: MlflowStore,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    """``mlflow server`` on the session store, started first so it boots during training."""
    running = start_mlflow_server(mlflow_store, tmp_path_factory.mktemp("mlflow_server"))
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def trained(tiny_spec, training_settings: Settings) -> TrainingOutcome:
    return run_training(tiny_spec(NAME), training_settings, families=["regression"], trials=2)


@pytest.fixture(scope="module")
def rest(server: MlflowServer, trained: TrainingOutcome) -> MlflowRest:
    server.wait_ready()
    return MlflowRest(server.api_url)


@pytest.fixture(scope="module")
def runs(rest: MlflowRest, trained: TrainingOutcome) -> list[dict[str, Any]]:
    return rest.runs(trained.experiment_id)


def _children(runs: list[dict[str, Any]], parent_id: str) -> list[dict[str, Any]]:
    return [r for r in runs if tags(r).get("mlflow.parentRunId") == parent_id]


def _family_runs(runs: list[dict[str, Any]], trained: TrainingOutcome) -> dict[str, dict]:
    return {tags(r)["family"]: r for r in _children(runs, trained.parent_run_id)}


def _metrics(run: dict[str, Any]) -> dict[str, float]:
    return {m["key"]: float(m["value"]) for m in run["data"].get("metrics", [])}


def _ranked(families: dict[str, dict]) -> list[str]:
    """Family names, best (lowest) backtest WAPE first."""
    return sorted(families, key=lambda f: _metrics(families[f])["wape"])


def test_the_experiment_is_found_by_the_spec_name(rest: MlflowRest, trained) -> None:
    experiment = rest.get("experiments/get-by-name", experiment_name=NAME)["experiment"]
    assert experiment["experiment_id"] == trained.experiment_id
    assert experiment["lifecycle_stage"] == "active"
    assert tags(experiment)[EXPERIMENT_KIND_TAG] == ML_EXPERIMENT  # not a GenAI one


def test_the_parent_run_is_named_for_what_it_did(runs, trained) -> None:
    parent = next(r for r in runs if r["info"]["run_id"] == trained.parent_run_id)
    assert parent["info"]["run_name"] == trained.run_name
    as_of = trained.run_name.removeprefix("train as of ")  # the training data's last week
    assert date.fromisoformat(as_of).isoformat() == as_of
    assert sorted(r["info"]["run_name"] for r in _family_runs(runs, trained).values()) == \
        sorted(FAMILIES)  # family runs keep the family's name


def test_a_parent_run_and_one_run_per_family_with_the_same_metric_names(runs, trained) -> None:
    parents = [r for r in runs if "mlflow.parentRunId" not in tags(r)]
    assert [p["info"]["run_id"] for p in parents] == [trained.parent_run_id]
    assert parents[0]["info"]["status"] == "FINISHED"
    families = _family_runs(runs, trained)
    assert sorted(families) == sorted(FAMILIES)
    names = [set(_metrics(run)) for run in families.values()]
    assert names[0] == names[1]  # comparable side by side in the runs table
    per_window = {f"{m}_w{k}" for m in METRIC_NAMES for k in range(N_WINDOWS)}
    assert {*METRIC_NAMES, *per_window} <= names[0]
    assert all(run["info"]["status"] == "FINISHED" for run in families.values())


def test_trials_are_nested_under_their_family_run(runs, trained) -> None:
    for family, run in _family_runs(runs, trained).items():
        trials = _children(runs, run["info"]["run_id"])
        assert len(trials) == trained.families[family].n_trials >= 1
        assert {tags(t)["family"] for t in trials} == {family}
        assert all(tags(t)["trial_state"] == "COMPLETE" for t in trials)
        assert all("wape" in _metrics(t) for t in trials)
    regression = _family_runs(runs, trained)["regression"]["info"]["run_id"]
    assert len(_children(runs, regression)) == 2  # the trials asked for


def test_family_runs_name_the_dataset_they_were_trained_on(runs, trained) -> None:
    parent = next(r for r in runs if r["info"]["run_id"] == trained.parent_run_id)
    digest = tags(parent)["data_digest"]
    for run in _family_runs(runs, trained).values():
        (entry,) = run["inputs"]["dataset_inputs"]
        dataset = entry["dataset"]
        assert dataset["name"] == f"{NAME}-training-set"
        assert digest.startswith(dataset["digest"])
        assert tags(entry)["mlflow.data.context"] == "training"
        columns = {c["name"] for c in json.loads(dataset["schema"])["mlflow_colspec"]}
        assert {"series_id", "ds", "y"} <= columns


def test_plots_and_the_leaderboard_are_listed_and_downloadable(rest, runs, trained) -> None:
    parent_files = rest.artifacts(trained.parent_run_id)
    assert {"leaderboard.json", "spec.yaml", "plots/leaderboard_wape.png"} <= parent_files
    families = _family_runs(runs, trained)
    for run in families.values():
        assert {"plots/forecast_vs_actual.png", "plots/error_by_step.png",
                "backtest/predictions.parquet"} <= rest.artifacts(run["info"]["run_id"])
    table = json.loads(rest.download(trained.parent_run_id, "leaderboard.json"))
    rows = [dict(zip(table["columns"], row, strict=True)) for row in table["data"]]
    assert [r["family"] for r in rows] == _ranked(families)
    for row in rows:
        assert row["run_id"] == families[row["family"]]["info"]["run_id"]
        assert row["wape"] == pytest.approx(_metrics(families[row["family"]])["wape"], rel=1e-6)
    png = rest.download(trained.parent_run_id, "plots/leaderboard_wape.png")
    assert png.startswith(b"\x89PNG")


def test_the_registered_model_names_the_best_family_champion(rest, runs, trained) -> None:
    name = trained.model_name
    assert trained.decision.champion_version, f"no champion: {trained.decision.reason}"
    model = rest.get("registered-models/get", name=name)["registered_model"]
    assert {"alias": "champion", "version": trained.decision.champion_version} in model["aliases"]
    versions = rest.get("model-versions/search", filter=f"name = '{name}'")["model_versions"]
    families = _family_runs(runs, trained)
    by_family = {tags(v)["family"]: v for v in versions}
    assert sorted(by_family) == sorted(FAMILIES)
    for family, version in by_family.items():
        assert version["run_id"] == families[family]["info"]["run_id"]
    champion = rest.get("registered-models/alias", name=name, alias="champion")["model_version"]
    assert champion["run_id"] == families[_ranked(families)[0]]["info"]["run_id"]


# --- the UI pages, rendered -------------------------------------------------------------


@pytest.fixture(scope="module")
def chromium() -> str:
    binary = chromium_binary()
    if binary is None:
        pytest.fail(INSTALL_HINT, pytrace=False)
    return binary


def _printed_link_on(server: MlflowServer, trained: TrainingOutcome) -> str:
    """The link ``salescast train`` printed, on the test's server instead of `mlflow ui`."""
    assert trained.ui_url.startswith(f"{LOCAL_UI}/#/experiments/{trained.experiment_id}/runs?")
    return server.ui_url + trained.ui_url.removeprefix(LOCAL_UI)


@pytest.fixture(scope="module")
def pages(chromium: str, server: MlflowServer, rest: MlflowRest, trained,
          tmp_path_factory: pytest.TempPathFactory) -> dict[str, RenderedPage]:
    mode = "workflowType=machine_learning"  # the UI's "Model training" side bar
    urls = {
        "experiment": _printed_link_on(server, trained),
        "model": f"{server.ui_url}/#/models/{trained.model_name}?{mode}",
    }
    return render_pages(chromium, urls, tmp_path_factory.mktemp("mlflow_ui_pages"))


def _assert_not_blank(page: RenderedPage) -> None:
    assert page.png.is_file(), f"no screenshot of {page.url}"
    assert page.png.stat().st_size > 20_000, f"{page.png} is tiny: a blank page?"
    size, spread = grey_spread(page.png)
    assert size == (1400, 900)
    assert spread > 8, f"{page.png} is almost one flat colour (grey std {spread:.1f})"


def test_the_printed_link_opens_the_runs_table_not_the_genai_overview(pages) -> None:
    page = pages["experiment"]
    _assert_not_blank(page)
    assert "matching runs" in page.dom, f"no runs table in {page.url}"  # its footer
    for name in VIEW_COLUMNS:  # (the grid's DOM order is not the columns' order)
        assert f">{name}<" in page.dom, f"no {name} column in {page.url}"


def test_the_printed_link_ranks_the_families_side_by_side(pages, runs, trained) -> None:
    page = pages["experiment"]
    families = _family_runs(runs, trained)
    ranked = _ranked(families)
    for family in ranked:
        assert f">{family}<" in page.dom, f"run {family!r} not rendered in {page.url}"
    assert f">{trained.run_name}<" not in page.dom  # flat: the families only, no parent row
    text = re.sub(r"<[^>]+>", "", page.dom)
    assert f"{len(families)} matching runs" in text  # and none more (no trials)
    # the UI prints a metric with JavaScript's shortest round trip, as Python's repr does
    shown = [page.dom.find(repr(_metrics(families[f])["wape"])) for f in ranked]
    assert -1 not in shown, f"WAPE values not rendered in {page.url}"
    assert shown == sorted(shown)  # best first, as the shared view sorts


def test_the_model_page_shows_the_versions_and_the_champion(pages, trained) -> None:
    page = pages["model"]
    _assert_not_blank(page)
    assert trained.model_name in page.dom
    for version in trained.versions.values():
        assert f"Version {version}" in page.dom
    assert re.search(r"@(?:&nbsp;|\s)*champion", page.dom), f"no @champion in {page.url}"
