"""`salescast demo`: the whole loop on the embedded retail data, one line per stage.

The story: a retail chain trains its forecasters in mid-July, puts the champion behind the
API, and its planning application asks for the next eight weeks' forecasts and posts
realised sales every week. Eight quiet weeks later the monitor judges them: the business
grew and moved with the season, but the forecasts kept their promise, so it says `ok`
(or `watch` with its reason). From September demand shifts (prices up, deeper
promotions, a different customer mix: the simulator's regime shift); after eight more
weeks the monitor sees the accuracy loss, names the drifted inputs as the likely cause
and says `retrain`. Training on the data up to November produces a challenger that is
promoted only if it beats the champion on the same backtest, and the running API swaps it
in without a restart.

Everything lives in ``--workdir``; each run starts from a clean store there (the previous
demo's MLflow, Optuna and prediction databases are removed first), so re-running is safe.
With ``--stack DIR`` (`salescast stack up`) MLflow, Optuna and the prediction store are the
stack's instead (mlflow server on PostgreSQL, artifacts through the server); their state
outlives the demo, so the demo refuses a stack that holds an earlier run of it rather than
mix two stories: `salescast stack down --dir DIR --purge` and `up` again give a fresh one.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd
import typer

from experiments.settings import Settings
from experiments.spec import ExperimentSpec, load_spec

log = logging.getLogger(__name__)
DEMO_SPEC = "retail_demo.yaml"
TRAINED_AS_OF = "2024-07-14"  # a Sunday: the champion's last full week is 2024-07-08
SHIFT_AT = "2024-09-09"  # the regime shift: eight quiet weeks after training
RETRAIN_AS_OF = "2024-11-03"  # eight weeks after the shift
QUIET_WEEKS = list(pd.date_range("2024-07-15", periods=8, freq="7D"))
SHIFT_WEEKS = list(pd.date_range(SHIFT_AT, periods=8, freq="7D"))
OVERRIDE_WEEKS = ["2024-08-05", "2024-08-12"]  # one person's adjustment, inside the review
REVIEW_MONTH = "2024-08"  # a month of the quiet weeks: the demo's forecast review
CURL_EXAMPLE = (
    "curl -s localhost:8000/v1/forecast -H 'content-type: application/json' -d "
    """'{"series": [{"keys": {"store": "S01", "category": "grocery"}}], "horizon": 8}'"""
)
STATE = ("mlflow.db", "mlartifacts", "mlruns", "optuna.db", "predictions.db", "reports",
         ".salescast", "artifacts", "api.log")


@dataclass
class StageClock:
    """Prints `[k/n] name ...` per stage and keeps the timings for the summary."""

    total: int
    timings: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        index = len(self.timings) + 1
        typer.echo(f"[{index}/{self.total}] {name} ...")
        started = time.perf_counter()
        yield
        self.timings[name] = time.perf_counter() - started
        typer.echo(f"[{index}/{self.total}] {name}: done in {self.timings[name]:.1f} s")


def demo_spec_path() -> Path:
    """The demo spec shipped inside the `experiments` package."""
    return Path(str(resources.files("experiments").joinpath(DEMO_SPEC)))


@contextmanager
def working_directory(path: Path) -> Iterator[None]:
    previous = Path.cwd()
    path.mkdir(parents=True, exist_ok=True)
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(previous)


def demo_settings(workdir: Path, stack_env: dict[str, str] | None = None) -> Settings:
    """Absolute locations inside the work directory, so the API process agrees with us;
    with ``stack_env`` (a stack's ``SALESCAST_*`` variables) MLflow, Optuna and the
    prediction store are the stack's, and artifacts go through its mlflow server."""
    local = {"reports_dir": workdir / "reports",
             "local_model_dir": workdir / ".salescast" / "champion"}
    if stack_env is not None:
        return Settings(tracking_uri=stack_env["SALESCAST_TRACKING_URI"],
                        optuna_storage=stack_env["SALESCAST_OPTUNA_STORAGE"],
                        store_url=stack_env["SALESCAST_STORE_URL"], artifact_location=None,
                        **local)
    return Settings(
        tracking_uri=f"sqlite:///{workdir / 'mlflow.db'}",
        optuna_storage=f"sqlite:///{workdir / 'optuna.db'}",
        artifact_location=str(workdir / "mlartifacts"),
        store_url=f"sqlite:///{workdir / 'predictions.db'}",
        **local,
    )


def stack_settings(workdir: Path, stack_dir: Path, spec: ExperimentSpec) -> Settings:
    """The demo's settings on the stack in ``stack_dir``, which must answer and hold no
    earlier run of this spec (StackError otherwise)."""
    from experiments.stack import StackError, settings_env
    from training.tracking import TrackingUnavailable, probe_tracking_server

    settings = demo_settings(workdir, settings_env(stack_dir))
    try:
        probe_tracking_server(settings.tracking_uri)
    except TrackingUnavailable as exc:
        raise StackError(f"{exc}: `salescast stack up --dir {stack_dir}` first") from None
    held = _earlier_demo(settings, spec)
    if held:
        raise StackError(f"the stack in {stack_dir} already holds a demo run ({held}); the "
                         f"demo starts from empty stores: `salescast stack down --dir "
                         f"{stack_dir} --purge && salescast stack up --dir {stack_dir}`")
    return settings


def _earlier_demo(settings: Settings, spec: ExperimentSpec) -> str:
    """What the stores hold of an earlier run of ``spec`` (empty: nothing)."""
    import optuna

    from serving.store import PredictionStore
    from training.registry import client_for, model_exists

    client = client_for(settings.tracking_uri)
    held = [f"MLflow experiment {spec.name!r}"] if client.get_experiment_by_name(
        spec.name) else []
    if model_exists(client, spec.registered_model_name):
        held.append(f"registered model {spec.registered_model_name!r}")
    studies = optuna.study.get_all_study_names(storage=settings.optuna_storage)
    if any(name.startswith(f"{spec.name}.") for name in studies):
        held.append(f"Optuna studies {spec.name}.*")
    store = PredictionStore(settings.store_url)
    if not (store.read_actuals().empty and store.read_predictions().empty):
        held.append("predictions and actuals")
    store.dispose()
    return ", ".join(held)


def api_env(settings: Settings, model_name: str, api_key: str) -> dict[str, str]:
    """The ``SALESCAST_*`` environment of the demo's API process (polls every 2 s, flushes
    the prediction log every 0.2 s)."""
    return {
        "SALESCAST_TRACKING_URI": settings.tracking_uri, "SALESCAST_STORE_URL": settings.store_url,
        "SALESCAST_MODEL_NAME": model_name, "SALESCAST_API_KEY": api_key,
        "SALESCAST_POLL_SECONDS": "2", "SALESCAST_LOCAL_MODEL_DIR": str(settings.local_model_dir),
        "SALESCAST_REPORTS_DIR": str(settings.reports_dir),
        "SALESCAST_LOG_FLUSH_SECONDS": "0.2",
    }


def api_client(api_url: str, api_key: str) -> Any:
    """An HTTP client of the API with its key."""
    import httpx

    return httpx.Client(base_url=api_url, headers={"X-API-Key": api_key}, timeout=60)


def run_demo(workdir: Path, spec_path: Path | None = None,
             stack_dir: Path | None = None) -> dict[str, Any]:
    """Run every stage; return what the summary shows (the tests assert on it). With
    ``stack_dir``, on that stack (`salescast stack up`), which must hold no earlier demo."""
    workdir, stack_dir = workdir.resolve(), stack_dir.resolve() if stack_dir else None
    spec = load_spec((spec_path or demo_spec_path()).resolve())
    settings = stack_settings(workdir, stack_dir, spec) if stack_dir else demo_settings(workdir)
    with working_directory(workdir):
        _clean(workdir)
        clock = StageClock(total=9)
        outcome = DemoRun(spec, settings, clock, workdir).run()
    _print_summary(outcome, clock, workdir, settings, stack_dir)
    return outcome


def _clean(workdir: Path) -> None:
    removed = [name for name in STATE if (workdir / name).exists()]
    for name in removed:
        target = workdir / name
        shutil.rmtree(target) if target.is_dir() else target.unlink()
    if removed:
        typer.echo(f"fresh start: removed the previous demo's {', '.join(removed)} in {workdir}")


@dataclass
class DemoRun:
    """The stages, in order; each adds what it learnt to ``outcome``."""

    spec: ExperimentSpec
    settings: Settings
    clock: StageClock
    workdir: Path
    outcome: dict[str, Any] = field(default_factory=dict)

    def run(self) -> dict[str, Any]:
        from experiments.traffic import ApiProcess

        realised = self.generate_and_build()
        self.train("train", TRAINED_AS_OF, key="first")
        api = ApiProcess(env=self._api_env(), cwd=self.workdir)
        try:
            with self.clock.stage("start the API; an application asks and posts for 8 weeks"):
                api.start()
                self.outcome["api_url"] = api.url
                typer.echo(f"API: {api.url} (docs {api.url}/docs), model "
                           f"{self.spec.registered_model_name}@champion; log {api.cwd / 'api.log'}")
                self.override(api, realised)
                self.traffic(api, realised, QUIET_WEEKS, "quiet")
            with self.clock.stage("monitor the quiet weeks"):
                self.monitor(QUIET_WEEKS, "quiet")
            with self.clock.stage(f"review {REVIEW_MONTH}: levels, deviations, value added"):
                self.review(REVIEW_MONTH)
            with self.clock.stage(f"the market shifts on {SHIFT_AT}: 8 more weeks of traffic"):
                self.traffic(api, realised, SHIFT_WEEKS, "shift")
            with self.clock.stage("monitor the weeks after the shift"):
                self.monitor(SHIFT_WEEKS, "shift")
            self.retrain_and_swap(api)
        finally:
            self.outcome["api_exit_code"] = api.stop()
        return self.outcome

    def generate_and_build(self) -> pd.DataFrame:
        from experiments.pipeline import build_features, generate_data, summarize_training_set

        simulator = self.spec.simulator.model_copy(update={"shift_at": SHIFT_AT})
        sales_path = self.spec.data.sales.path
        assert simulator is not None and sales_path is not None
        with self.clock.stage(f"generate data (regime shift on {SHIFT_AT})"):
            generate_data(simulator, Path(sales_path).parent)
        with self.clock.stage("build features"):
            training_set = build_features(self.spec)
            typer.echo(summarize_training_set(training_set))
            self.outcome["n_series"] = training_set.metadata.n_series
            self.outcome["exog_columns"] = training_set.exog_columns
        return training_set.base

    def _spec_as_of(self, end: str) -> ExperimentSpec:
        data = self.spec.data.model_copy(update={"end": end})
        return self.spec.model_copy(update={"data": data})

    def train(self, purpose: str, end: str, key: str) -> None:
        """Train on the data up to ``end``: the parent run ``<purpose> as of <end>``."""
        from experiments.training_job import run_training
        from training.tracking import parent_run_name

        with self.clock.stage(f"{parent_run_name(purpose, end)}: tune every family, compare, "
                              "promote"):
            result = run_training(self._spec_as_of(end), self.settings, purpose=purpose)
            typer.echo(result.leaderboard_text())
            typer.echo(f"promotion: {result.decision.summary()}")
        self.outcome["ui_url"] = result.ui_url  # the latest training's families
        self.outcome[f"{key}_leaderboard"] = result.leaderboard.to_dict(orient="records")
        self.outcome[f"{key}_decision"] = result.decision
        self.outcome[f"{key}_champion_version"] = result.decision.champion_version

    def _api_env(self) -> dict[str, str]:
        self.api_key = secrets.token_hex(24)
        return api_env(self.settings, self.spec.registered_model_name, self.api_key)

    def _client(self, api_url: str) -> Any:
        return api_client(api_url, self.api_key)

    def traffic(self, api: Any, realised: pd.DataFrame, weeks: list[pd.Timestamp],
                key: str) -> None:
        from experiments.traffic import simulate_application

        with self._client(api.url) as client:
            summary = simulate_application(client, realised, weeks, self.outcome["exog_columns"],
                                           self.spec.horizon)
        typer.echo(f"application: each week {summary.weeks[0]} .. {summary.weeks[-1]} asked "
                   f"{self.spec.horizon} weeks ahead from the newest actuals (origins "
                   f"{summary.origins[0]} .. {summary.origins[-1]}) and posted the week's "
                   f"actuals: {summary.forecasts} forecasts, {summary.actuals} actuals, model "
                   f"version {', '.join(sorted(summary.model_versions))}")
        typer.echo(f"application: after {len(weeks)} weeks the forecast covers "
                   f"{summary.last_answer[0]} .. {summary.last_answer[1]}, no retraining "
                   "needed for that")
        self.outcome[f"{key}_traffic"] = summary
        time.sleep(1.0)  # let the background writer flush the last batch of the log

    def override(self, api: Any, realised: pd.DataFrame) -> None:
        """A sales manager raises one series by 10 % in two August weeks (an order)."""
        series_id = str(sorted(realised["series_id"].unique())[0])
        body = {"series_id": series_id, "ds": OVERRIDE_WEEKS, "pct_change": 10,
                "author": "demo.planner", "reason": "customer_order",
                "note": "a customer announced a larger order"}
        with self._client(api.url) as client:
            response = client.post("/v1/overrides", json=body)
            response.raise_for_status()
        typer.echo(f"override #{response.json()['id']}: {series_id} +10 % in "
                   f"{' and '.join(OVERRIDE_WEEKS)} (demo.planner, customer_order)")
        self.outcome["override"] = response.json()

    def review(self, month: str) -> None:
        """The month's forecast review, as `salescast review --period` writes it."""
        from experiments.commands_review import ModelRef, build_document, write_review
        from experiments.review import parse_period
        from experiments.review_html import summary_lines

        period = parse_period(month)
        doc = build_document(period, list(self.spec.data.sales_columns.keys), self.spec.frequency,
                             ["keep the model; check the overridden series next month"],
                             self.settings.store_url,
                             ModelRef(self.spec.registered_model_name, self.settings.tracking_uri,
                                      self.settings.registry_uri))
        json_path, html_path = write_review(doc, self.workdir / "reviews", period)
        for line in summary_lines(doc):
            typer.echo(f"  {line}")
        typer.echo(f"  review: {html_path}")
        self.outcome["review"] = {"json": str(json_path), "html": str(html_path), "doc": doc}

    def monitor(self, weeks: list[pd.Timestamp], key: str) -> None:
        from experiments.monitoring_job import run_monitoring

        # the forecasts of these weeks (the traffic was logged just now, well within the
        # spec's 28-day window of logging time)
        periods = (weeks[0], weeks[-1])
        result = run_monitoring(self._spec_as_of(RETRAIN_AS_OF), self.settings,
                                periods=periods)
        typer.echo(f"monitor ({weeks[0]:%Y-%m-%d} .. {weeks[-1]:%Y-%m-%d}): verdict "
                   f"{result.verdict.upper()}")
        typer.echo(f"  decided by {result.decided_by}")
        for reason in [*result.reasons, *result.explanations]:
            typer.echo(f"  - {reason}")
        typer.echo(f"  report: {result.html_path}")
        self.outcome[key] = {"verdict": result.verdict, "reasons": result.reasons,
                             "decided_by": result.decided_by,
                             "explanations": result.explanations,
                             "report_path": str(result.html_path),
                             "drifted_features": result.drifted_features}

    def retrain_and_swap(self, api: Any) -> None:
        if self.outcome["shift"]["verdict"] != "retrain":
            typer.echo("no retraining needed: the verdict is not `retrain`")
            return
        self.train("retrain", RETRAIN_AS_OF, key="retrain")
        wanted = self.outcome["retrain_champion_version"]
        self.outcome["served_version_after"] = self._wait_for_version(api.url, wanted)
        if self.outcome["served_version_after"] != wanted:
            typer.echo(f"warning: the API still serves v{self.outcome['served_version_after']}"
                       f", not the champion v{wanted}")

    def _wait_for_version(self, api_url: str, wanted: str | None, timeout: float = 30) -> str:
        with self._client(api_url) as client:
            deadline = time.monotonic() + timeout
            version = ""
            while time.monotonic() < deadline:
                version = str(client.get("/v1/model").json()["version"])
                if version == wanted:
                    break
                time.sleep(0.5)
        typer.echo(f"API: now serving version {version} (the alias was polled; no restart)")
        return version


def _print_summary(
    outcome: dict[str, Any], clock: StageClock, workdir: Path, settings: Settings,
    stack_dir: Path | None = None,
) -> None:
    total = sum(clock.timings.values())
    typer.echo("")
    typer.echo(f"salescast demo finished in {total:.0f} s (working directory {workdir})")
    for name, seconds in clock.timings.items():
        typer.echo(f"  {seconds:6.1f} s  {name}")
    before, after = outcome.get("first_champion_version"), outcome.get("served_version_after")
    typer.echo(f"champion: version {before} before the shift, version {after or before} after")
    if "retrain_decision" in outcome:
        typer.echo(f"retraining: {outcome['retrain_decision'].summary()}")
    for key, label in (("quiet", "quiet weeks"), ("shift", "after the shift")):
        if key in outcome:
            typer.echo(f"monitor, {label}: {outcome[key]['verdict']}; report "
                       f"{outcome[key]['report_path']}")
    _print_where_to_look(workdir, settings, stack_dir, outcome.get("ui_url", ""))


def _print_where_to_look(workdir: Path, settings: Settings, stack_dir: Path | None,
                         ui_url: str) -> None:
    """The commands and links to look at what the demo did (``ui_url``: the runs table
    of the latest training's families)."""
    typer.echo("look at it:")
    serve = f"cd {workdir} && SALESCAST_MODEL_NAME=retail_demo_forecaster salescast serve"
    if stack_dir is not None:  # the stack's mlflow server runs; its settings are in a file
        env_file = stack_dir / "stack.env"
        typer.echo(f"  open {ui_url}  # the families in the stack's mlflow server")
        typer.echo(f"  source {env_file} && optuna-dashboard \"$SALESCAST_OPTUNA_STORAGE\""
                   "  # pip install optuna-dashboard")
        serve = f"source {env_file} && {serve}"
    else:
        typer.echo(f"  mlflow ui --backend-store-uri {settings.tracking_uri}  # then open:")
        typer.echo(f"  {ui_url}")
        typer.echo(f"  optuna-dashboard {settings.optuna_storage}  # pip install "
                   "optuna-dashboard")
    typer.echo(f"  {serve}  # then http://127.0.0.1:8000/docs")
    typer.echo(f"  {CURL_EXAMPLE}")
