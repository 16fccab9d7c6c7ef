"""`salescast demo` end to end on a small chain: the outcome, not just the exit code.

The demo's own spec with a smaller simulated chain (12 series with the full demo's sales
volume, so a window holds enough evidence) and budgets of one trial; the story is the same
(train, serve through a real API process, eight quiet weeks the monitor calls ok, the
regime shift, eight weeks it calls retrain, retrain, swap): what a newcomer's `make demo`
does, in about a minute and a half.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from experiments.demo import demo_spec_path, run_demo
from experiments.stack import Stack


@pytest.fixture(scope="module")
def demo_outcome(tmp_path_factory: pytest.TempPathFactory, pg_stack: Stack) -> dict[str, Any]:
    """The demo on the session's PostgreSQL stack (mlflow server, Optuna and prediction
    store on PostgreSQL): the loop a team would run. The same stages on SQLite files are
    the calibration test's (tests/experiments/test_calibration.py)."""
    root = tmp_path_factory.mktemp("demo")
    raw = yaml.safe_load(demo_spec_path().read_text())
    raw["simulator"].update(stores=4, categories=3, customers=2000, lines_per_day=480.0)
    raw["models"].update(regression={"trials": 1}, lightgbm={"trials": 1},
                         time_series={"enabled": False})
    spec = root / "small_demo.yaml"
    spec.write_text(yaml.safe_dump(raw))
    return run_demo(root / "work", spec_path=spec, stack_dir=pg_stack.folder)


def test_a_champion_is_served_before_the_shift(demo_outcome: dict[str, Any]) -> None:
    assert demo_outcome["first_champion_version"] is not None
    for key in ("quiet", "shift"):
        traffic = demo_outcome[f"{key}_traffic"]
        assert traffic.model_versions == {demo_outcome["first_champion_version"]}
        assert traffic.actuals == 12 * 8  # 12 series x 8 weeks, all committed


def test_the_application_gets_eight_weeks_ahead_from_the_newest_week_on_one_version(
    demo_outcome: dict[str, Any],
) -> None:
    """The forecast origin follows the posted actuals: no retraining to keep forecasting."""
    for key in ("quiet", "shift"):
        traffic = demo_outcome[f"{key}_traffic"]
        weeks = [date.fromisoformat(w) for w in traffic.weeks]
        origins = [date.fromisoformat(o) for o in traffic.origins]
        assert origins == [w - timedelta(weeks=1) for w in weeks]  # each Monday: last week's
        first, last = (date.fromisoformat(d) for d in traffic.last_answer)
        assert (first, last) == (weeks[-1], weeks[-1] + timedelta(weeks=7))
    assert demo_outcome["shift_traffic"].weeks[0] == "2024-09-09"  # 16 weeks on one version


def test_the_quiet_weeks_are_not_a_retrain_and_accuracy_decided(
    demo_outcome: dict[str, Any],
) -> None:
    quiet = demo_outcome["quiet"]
    assert quiet["verdict"] in ("ok", "watch"), quiet["reasons"]
    assert quiet["decided_by"].startswith("accuracy against the promise (96 forecasts")
    page = Path(quiet["report_path"]).read_text()
    assert "<b>Decided by:</b> accuracy against the promise" in page
    assert "for periods 2024-07-15 .. 2024-09-02" in page


def test_the_shift_gives_a_retrain_verdict_and_a_report(demo_outcome: dict[str, Any]) -> None:
    shift = demo_outcome["shift"]
    assert shift["verdict"] == "retrain", shift["reasons"]
    assert shift["decided_by"].startswith("accuracy against the promise")
    report = Path(shift["report_path"])
    assert report.is_file() and report != Path(demo_outcome["quiet"]["report_path"])
    html = report.read_text()
    assert "for periods 2024-09-09 .. 2024-10-28" in html
    for feature in shift["drifted_features"][:3]:
        assert feature in html
    for cause in shift["explanations"]:
        assert cause.startswith("likely cause: ")
    document = json.loads(report.with_suffix(".json").read_text())
    assert document["verdict"]["status"] == "retrain"


def test_after_retraining_the_api_served_the_new_champion_or_said_why_not(
    demo_outcome: dict[str, Any],
) -> None:
    decision = demo_outcome["retrain_decision"]
    if decision.promoted:
        assert demo_outcome["served_version_after"] == decision.champion_version
        assert decision.champion_version != demo_outcome["first_champion_version"]
    else:
        assert demo_outcome["served_version_after"] == demo_outcome["first_champion_version"]
        assert decision.reason  # the figures of the lost comparison


def test_the_api_was_stopped_cleanly(demo_outcome: dict[str, Any]) -> None:
    assert demo_outcome["api_exit_code"] == 0
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{demo_outcome['api_url']}/healthz", timeout=1)


def test_runs_are_named_for_what_they_did_and_the_link_opens_the_families(
        demo_outcome: dict[str, Any], pg_stack: Stack) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(pg_stack.tracking_uri)
    names = {}
    for experiment in ("retail_demo", "retail_demo-monitoring"):
        found = client.get_experiment_by_name(experiment)
        assert found is not None
        runs = client.search_runs([found.experiment_id], "attributes.run_name LIKE '%'")
        names[experiment] = {r.info.run_name for r in runs
                             if "mlflow.parentRunId" not in r.data.tags}
    assert {"train as of 2024-07-14", "retrain as of 2024-11-03"} <= names["retail_demo"]
    assert names["retail_demo-monitoring"] == {"monitor 2024-07-15..2024-09-02",
                                               "monitor 2024-09-09..2024-10-28"}
    retrain = client.search_runs([client.get_experiment_by_name("retail_demo").experiment_id],
                                 "attributes.run_name = 'retrain as of 2024-11-03'")[0]
    assert demo_outcome["ui_url"].startswith(pg_stack.tracking_uri.rstrip("/") + "/#/")
    assert f"viewStateShareKey=families-{retrain.info.run_id}" in demo_outcome["ui_url"]


def test_the_review_shows_the_override_and_its_value_added(demo_outcome: dict[str, Any]
                                                           ) -> None:
    """Issue 14's "done when": the demo's review of August carries the one override."""
    review = demo_outcome["review"]
    override = demo_outcome["override"]
    assert Path(review["html"]).is_file() and Path(review["json"]).is_file()
    fva = review["doc"]["fva"]
    assert fva["n_overrides"] == 1
    scopes = {row["scope"]: row for row in fva["rows"]}
    author = scopes[f"author: {override['author']}"]
    assert author["wape_final"] != author["wape_model"]  # the +10 % changed the numbers
    assert "demo.planner" in Path(review["html"]).read_text(encoding="utf-8")


def test_the_review_explains_the_biggest_misses(demo_outcome: dict[str, Any]) -> None:
    """The drivers of the top deviation series, by the version that forecast them: each
    explained forecast adds up (base + contributions = the model's number)."""
    doc = demo_outcome["review"]["doc"]
    drivers = doc["drivers"]
    assert isinstance(drivers, list) and drivers, drivers
    assert doc["deviations"][0]["series_id"] in {d["series_id"] for d in drivers}
    cells: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in drivers:
        cells.setdefault((row["series_id"], row["ds"]), []).append(row)
    for rows in cells.values():
        total = rows[0]["base"] + sum(r["contribution"] for r in rows)
        assert total == pytest.approx(rows[0]["yhat"], rel=1e-6)
