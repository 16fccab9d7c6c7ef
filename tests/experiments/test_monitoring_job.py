"""Monitoring the served champion: drift and the retrain verdict appear after the
simulator's regime shift and not before; `salescast monitor --spec` writes the reports,
logs an MLflow run, exits 0 / 3 / 1, and `--retrain` trains under the promotion rule."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from experiments.cli import app
from experiments.settings import Settings
from experiments.spec import ExperimentSpec
from serving.monitoring.drift import DriftThresholds
from serving.monitoring.service import NoPredictionsError, monitor_store
from serving.store import PredictionStore
from tests.experiments._monitoring_scenario import (
    AFTER,
    BEFORE,
    SIMULATOR,
    TRAINED_UNTIL,
    serve_weeks,
)

runner = CliRunner()
NOW = datetime(2030, 1, 7, 12, tzinfo=UTC)
SHIFT_SENSITIVE = ("share_seg_budget_lag4",)  # budget shoppers come in


@dataclass(frozen=True)
class Served:
    spec: ExperimentSpec
    model: Any
    panel: Any
    version: str


def _spec(tiny_spec: Any, end: str | None, **overrides: Any) -> ExperimentSpec:
    base = tiny_spec("mon_job")
    data = base.data.model_dump() | {
        table: {"path": str(Path(base.data.sales.path).parent.parent / "shifted" /
                            f"{table}.parquet")} for table in ("sales", "customers", "calendar")
    } | {"end": end}
    # one direct model: the scenario reads its coefficients, a retrain refits the same
    # configuration
    direct = {"regression": {"trials": 1, "params": {"strategy": "direct"}}}
    models = base.models.model_dump() | direct
    return tiny_spec("mon_job", data=data, simulator=SIMULATOR, models=models, **overrides)


@pytest.fixture(scope="module")
def served(tiny_spec: Any, training_settings: Settings) -> Served:
    """The champion trained up to eight weeks before the shift, and the shifted panel."""
    import mlflow

    from experiments.pipeline import build_features
    from experiments.training_job import run_training
    from training.tracking import tracking

    outcome = run_training(_spec(tiny_spec, TRAINED_UNTIL), training_settings,
                           families=["regression"], trials=1)
    version = outcome.decision.champion_version
    assert outcome.decision.promoted and version is not None
    with tracking(training_settings.tracking_uri):
        model = mlflow.pyfunc.load_model(f"models:/mon_job_model/{version}").unwrap_python_model()
    panel = build_features(_spec(tiny_spec, None)).panel
    return Served(_spec(tiny_spec, None), model, panel, version)


def _store(tmp_path: Path, served: Served, weeks: Any, name: str) -> str:
    url = f"sqlite:///{tmp_path / name}.db"
    store = PredictionStore(url)
    serve_weeks(store, served.model, served.panel, weeks, served.version, NOW - timedelta(hours=1))
    store.dispose()
    return url


def _monitor(url: str, served: Served):
    store = PredictionStore(url)
    try:
        return monitor_store(store, served.model.reference_sample(),
                             served.model.metadata["backtest_metrics"], DriftThresholds(),
                             timedelta(days=28), now=NOW, keys=served.model.metadata["keys"])
    finally:
        store.dispose()


def test_drift_and_retrain_appear_after_the_shift_and_not_before(
    served: Served, tmp_path: Path,
) -> None:
    before = _monitor(_store(tmp_path, served, BEFORE, "before"), served)
    after = _monitor(_store(tmp_path, served, AFTER, "after"), served)
    assert before.verdict.status != "retrain"
    assert after.verdict.status == "retrain"
    assert after.verdict.decided_by.startswith("accuracy against the promise")
    for column in SHIFT_SENSITIVE:
        assert column in after.drift.drifted_columns
        assert column not in before.drift.drifted_columns
    assert after.drift.n_drifted > 2 * before.drift.n_drifted
    assert after.verdict.explanations[0].startswith("likely cause: ")
    # the whole-history view sees the prices the shift raised; it is shown, not judged
    assert "price_ratio" in after.history_drift.drifted_columns
    assert after.accuracy.overall["coverage"] < before.accuracy.overall["coverage"]
    assert set(after.accuracy.by_key) == {"store", "category"}


def test_calendar_features_are_not_judged_as_drift(served: Served, tmp_path: Path) -> None:
    result = _monitor(_store(tmp_path, served, BEFORE, "calendar"), served)
    compared = {c.column for c in result.drift.columns}
    assert {"trend", "week_of_year", "month"}.isdisjoint(compared)
    assert {"price", "lag_4", "store"} <= compared


def test_a_window_without_predictions_is_a_clear_error(served: Served, tmp_path: Path) -> None:
    url = _store(tmp_path, served, BEFORE, "old")
    store = PredictionStore(url)
    with pytest.raises(NoPredictionsError, match="no predictions logged in the last 28 days"):
        monitor_store(store, served.model.reference_sample(), {}, DriftThresholds(),
                      timedelta(days=28), now=NOW + timedelta(days=60))
    store.dispose()


def _env(monkeypatch: pytest.MonkeyPatch, settings: Settings, store_url: str,
         reports: Path) -> None:
    values = {"TRACKING_URI": settings.tracking_uri, "OPTUNA_STORAGE": settings.optuna_storage,
              "ARTIFACT_LOCATION": settings.artifact_location or "", "N_JOBS": "1",
              "STORE_URL": store_url, "REPORTS_DIR": str(reports)}
    for key, value in values.items():
        monkeypatch.setenv(f"SALESCAST_{key}", value)


def _spec_file(spec: ExperimentSpec, path: Path) -> Path:
    path.write_text(yaml.safe_dump(spec.model_dump(mode="json", exclude_none=True)))
    return path


def _served_now(served: Served, tmp_path: Path, weeks: Any, name: str) -> str:
    """A store whose traffic was logged in the last hours of the real clock."""
    store = PredictionStore(f"sqlite:///{tmp_path / name}.db")
    serve_weeks(store, served.model, served.panel, weeks, served.version, datetime.now(UTC))
    store.dispose()
    return store.url


def test_command_reports_logs_to_mlflow_and_exits_0_before_the_shift(
    served: Served, training_settings: Settings, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mlflow import MlflowClient

    _env(monkeypatch, training_settings, _served_now(served, tmp_path, BEFORE, "b"),
         tmp_path / "reports")
    spec = _spec_file(served.spec, tmp_path / "spec.yaml")
    result = runner.invoke(app, ["monitor", "--spec", str(spec)])
    assert result.exit_code == 0, result.output
    reports = tmp_path / "reports"
    dated = sorted(reports.glob("monitor-*.json"))
    assert len(dated) == 1 and (reports / "latest.html").is_file()
    document = json.loads((reports / "latest.json").read_text())
    assert document == json.loads(dated[0].read_text())
    assert f"verdict    {document['verdict']['status']}" in result.output
    client = MlflowClient(training_settings.tracking_uri)
    experiment = client.get_experiment_by_name("mon_job-monitoring")
    run = client.search_runs([experiment.experiment_id], order_by=["start_time DESC"])[0]
    assert run.data.tags["verdict"] == document["verdict"]["status"]
    assert run.data.tags["model_version"] == served.version
    assert run.data.metrics["wape"] == pytest.approx(document["accuracy"]["overall"]["wape"])
    assert {"drifted_feature_share", "bias", "coverage", "wape_vs_promise", "wape_z"} <= set(
        run.data.metrics)
    assert run.data.tags["decided_by"] == document["verdict"]["decided_by"]
    assert run.data.tags["decided_by"].startswith("accuracy against the promise")
    wape = document["accuracy"]["promise_check"]["wape"]
    assert run.data.metrics["wape_vs_promise"] == pytest.approx(wape["effect"])
    assert wape["promised"] == pytest.approx(served.model.metadata["backtest_metrics"]["wape"])
    # the forecast review by customer segment: each series' dominant CRM segment
    segments = {row["segment"] for row in document["accuracy"]["by_segment"]}
    assert segments and segments <= {"budget", "regular", "premium"}
    # accuracy by forecast lag: at the champion's frequency, reviewed at the spec's lag
    lag = document["lag_accuracy"]
    assert (lag["freq"], lag["review_lag"], lag["model_version"]) == ("W", 1, served.version)
    assert f"by lag     {lag['summary']}" in result.output
    assert "<h2>Accuracy by forecast lag</h2>" in (reports / "latest.html").read_text()


def test_retrain_verdict_exits_3_and_retrain_keeps_the_champion_under_a_strict_margin(
    served: Served, training_settings: Settings, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mlflow import MlflowClient

    _env(monkeypatch, training_settings, _served_now(served, tmp_path, AFTER, "a"),
         tmp_path / "reports")
    margin = served.spec.promotion.model_copy(  # 90 % better, and no refresh on newer data
        update={"margin": 0.9, "refresh": False})
    strict = served.spec.model_copy(update={"promotion": margin})
    spec = _spec_file(strict, tmp_path / "spec.yaml")
    result = runner.invoke(app, ["monitor", "--spec", str(spec), "--retrain"])
    assert result.exit_code == 3, result.output
    assert "verdict    retrain" in result.output
    assert f"retrain    kept v{served.version}" in result.output
    uri = training_settings.tracking_uri
    champion = MlflowClient(uri, registry_uri=uri).get_model_version_by_alias("mon_job_model",
                                                                               "champion")
    assert str(champion.version) == served.version


@pytest.mark.parametrize("case", ["empty window", "both forms", "neither form", "bad window",
                                  "no champion"])
def test_command_errors_are_one_line_and_exit_1(
    served: Served, training_settings: Settings, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, case: str,
) -> None:
    _env(monkeypatch, training_settings, f"sqlite:///{tmp_path / 'empty.db'}", tmp_path / "r")
    spec = served.spec if case != "no champion" else served.spec.model_copy(
        update={"model_name": "nobody_model"})
    args = {"empty window": ["--spec", str(_spec_file(spec, tmp_path / "s.yaml"))],
            "both forms": ["--spec", "s.yaml", "--reference", "a.csv", "--current", "b.csv"],
            "neither form": [],
            "bad window": ["--spec", str(_spec_file(spec, tmp_path / "s.yaml")), "--window", "x"],
            "no champion": ["--spec", str(_spec_file(spec, tmp_path / "s.yaml"))]}[case]
    result = runner.invoke(app, ["monitor", *args])
    assert result.exit_code == 1, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in result.output, result.output


def test_retrain_promotes_a_challenger_that_wins_and_the_alias_moves(
    served: Served, training_settings: Settings, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Last in this file: it moves the champion. The retrained model sees the data after
    the shift, which the stale champion never did; the rule (refresh on newer data, no
    worse on the same backtest) promotes it and the old one stays for rollback."""
    from mlflow import MlflowClient

    _env(monkeypatch, training_settings, _served_now(served, tmp_path, AFTER, "b"),
         tmp_path / "reports")
    spec = _spec_file(served.spec, tmp_path / "spec.yaml")
    result = runner.invoke(app, ["monitor", "--spec", str(spec), "--retrain"])
    assert result.exit_code == 3, result.output
    assert "promoted" in result.output, result.output
    uri = training_settings.tracking_uri
    client = MlflowClient(uri, registry_uri=uri)
    champion = client.get_model_version_by_alias("mon_job_model", "champion")
    previous = client.get_model_version_by_alias("mon_job_model", "previous-champion")
    assert int(champion.version) > int(served.version)
    assert str(previous.version) == served.version
    assert champion.tags["promotion_decision"] == "promoted"


# --- accuracy by forecast lag: the spec's review lag ------------------------------------


def _raw_spec(**monitoring: Any) -> dict[str, Any]:
    return {"name": "lagged", "data": {"sales": {"path": "sales.csv"}}, "horizon": 4,
            "monitoring": monitoring}


def test_review_lag_defaults_to_1_and_must_be_within_the_horizon(tmp_path: Path) -> None:
    from experiments.spec import SpecError, load_spec

    assert ExperimentSpec.model_validate(_raw_spec()).monitoring.review_lag == 1
    assert ExperimentSpec.model_validate(_raw_spec(review_lag=4)).monitoring.review_lag == 4
    path = tmp_path / "spec.yaml"
    for bad, message in ((5, r"monitoring\.review_lag \(5\) is beyond the horizon \(4\)"),
                         (0, r"monitoring\.review_lag: .*greater than or equal to 1")):
        path.write_text(yaml.safe_dump(_raw_spec(review_lag=bad)))
        with pytest.raises(SpecError, match=message):
            load_spec(path)


def test_a_review_lag_beyond_the_horizon_is_a_one_line_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SALESCAST_TRACKING_URI", f"sqlite:///{tmp_path / 'none.db'}")
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(_raw_spec()))
    result = runner.invoke(app, ["monitor", "--spec", str(path), "--review-lag", "5"])
    assert result.exit_code == 1, result.output
    assert "error: review lag 5 is outside 1..4" in result.output
    assert not (tmp_path / "none.db").exists()  # refused before looking for the champion


def test_lag_options_follow_the_champion_and_wape_by_lag_is_logged() -> None:
    import pandas as pd

    from experiments.monitoring_job import ServedChampion, result_metrics
    from serving.monitoring.lag import LagAccuracy, LagOptions
    from serving.monitoring.verdict import build_result

    spec = ExperimentSpec.model_validate(_raw_spec(review_lag=2))
    champion = ServedChampion("m", "3", {"freq": "M", "horizon": 3}, pd.DataFrame())
    assert champion.lag_options(spec, 2) == LagOptions("M", review_lag=2, horizon=3)
    legacy = ServedChampion("m", "1", {}, pd.DataFrame())  # metadata without freq / horizon
    assert legacy.lag_options(spec, 1) == LagOptions("W", review_lag=1, horizon=4)
    by_lag = pd.DataFrame({"lag": [1, 2, 3], "n": [10, 10, 0], "wape": [0.1, 0.2, float("nan")]})
    lag = LagAccuracy("W", "3", 2, 3, "WAPE rises", n_forecasts=20, by_lag=by_lag)
    result = build_result(DriftThresholds())
    metrics = result_metrics(replace(result, lag_accuracy=lag))
    assert metrics == {"wape_lag_1": 0.1, "wape_lag_2": 0.2}
    assert result_metrics(result) == {}
