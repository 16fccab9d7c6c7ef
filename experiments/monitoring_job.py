"""The monitoring job of a spec: the served champion, its prediction store, a verdict.

``run_monitoring`` loads the champion (``models:/<model name>@<alias>``, tracking and
registry from Settings) for its drift reference (``reference_sample()``), its backtest
promise (``metadata["backtest_metrics"]``) and its series keys; reads the prediction
store (``Settings.store_url``) over the window (the spec's ``monitoring.window`` unless
given); runs :func:`serving.monitoring.service.monitor_store` with the spec's thresholds
and, for the accuracy by forecast lag, the champion's frequency and horizon and the
spec's ``monitoring.review_lag`` (the lag the business plans on); writes
``monitor-<UTC timestamp>.json/.html`` and ``latest.json/.html`` into the reports folder
(what the API's ``/v1/monitoring/*`` and ``/reports/latest`` serve); and logs the run to
the MLflow experiment ``<spec name>-monitoring``: one run per invocation, metrics
``drifted_feature_share``, ``wape``, ``bias``, ``coverage``, ``<metric>_vs_promise`` and
``<metric>_z`` (the comparison with the backtest's promise and its noise) and
``wape_lag_<k>`` per forecast lag (when known), tags ``verdict``, ``decided_by`` and
``model_version``, both report files as artifacts. The promise is the version's own
backtest: ``backtest/predictions.parquet`` and ``wape_w<k>`` / ``bias_pct_w<k>`` of its
MLflow run (:func:`load_promise`).

``retrain`` runs the training job of the spec; the promotion rule decides whether the
challenger replaces the champion.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from experiments.settings import Settings
from experiments.spec import ExperimentSpec

if TYPE_CHECKING:
    import pandas as pd

    from experiments.training_job import TrainingOutcome
    from serving.monitoring.lag import LagOptions
    from serving.monitoring.promise import Promise
    from serving.monitoring.service import Periods
    from serving.monitoring.verdict import MonitorResult

log = logging.getLogger(__name__)

LATEST = "latest"
REPORT_PREFIX = "monitor-"


class MonitoringError(ValueError):
    """Monitoring cannot run as asked (no champion, an unusable window...): one line."""


@dataclass(frozen=True)
class ServedChampion:
    """The champion version being monitored: its metadata and its drift reference."""

    name: str
    version: str
    metadata: dict[str, Any]
    reference: pd.DataFrame
    promise: Promise | None = None

    @property
    def expected(self) -> dict[str, float]:
        """The backtest metrics the model version was promoted with (its promise)."""
        return {k: float(v) for k, v in self.metadata.get("backtest_metrics", {}).items()}

    def lag_options(self, spec: ExperimentSpec, review_lag: int) -> LagOptions:
        """Accuracy by lag at the champion's frequency and horizon (the spec's when the
        metadata lacks them), reviewed at ``review_lag``."""
        from serving.monitoring.lag import LagOptions

        return LagOptions(freq=str(self.metadata.get("freq", spec.frequency)),
                          review_lag=review_lag,
                          horizon=int(self.metadata.get("horizon", spec.horizon)))

    @property
    def series_attributes(self) -> pd.DataFrame | None:
        """series_id -> dominant customer segment, when the training data had segments."""
        import pandas as pd

        segments = self.metadata.get("series_segments") or {}
        if not segments:
            return None
        return pd.DataFrame({"series_id": list(segments), "segment": list(segments.values())})


@dataclass(frozen=True)
class MonitoringOutcome:
    """One monitoring invocation: the result, its report files and its MLflow run."""

    result: MonitorResult
    json_path: Path
    html_path: Path
    run_id: str
    model_name: str
    model_version: str

    @property
    def verdict(self) -> str:
        return self.result.verdict.status

    @property
    def reasons(self) -> list[str]:
        return list(self.result.verdict.reasons)

    @property
    def explanations(self) -> list[str]:
        return list(self.result.verdict.explanations)

    @property
    def decided_by(self) -> str:
        return self.result.verdict.decided_by

    @property
    def drifted_features(self) -> list[str]:
        return self.result.drift.drifted_columns if self.result.drift is not None else []


def review_lag_of(spec: ExperimentSpec, review_lag: int | None = None) -> int:
    """``review_lag`` (default: the spec's ``monitoring.review_lag``), within 1..horizon."""
    lag = review_lag if review_lag is not None else spec.monitoring.review_lag
    if not 1 <= lag <= spec.horizon:
        raise MonitoringError(f"review lag {lag} is outside 1..{spec.horizon} (the spec's "
                              "horizon): no forecast is made that far ahead")
    return lag


def load_champion(spec: ExperimentSpec, settings: Settings) -> ServedChampion:
    """The version behind ``models:/<name>@<alias>``, loaded with mlflow.pyfunc."""
    import mlflow
    from mlflow.exceptions import MlflowException

    from training.registry import client_for
    from training.tracking import tracking

    name, alias = spec.registered_model_name, settings.model_alias
    with tracking(settings.tracking_uri, settings.registry_uri):
        client = client_for(settings.tracking_uri, settings.registry_uri)
        try:
            found = client.get_model_version_by_alias(name, alias)
        except MlflowException:
            raise MonitoringError(f"no model at models:/{name}@{alias} to monitor; train one "
                                  "first (salescast train --spec ...)") from None
        version = found.version
        model = mlflow.pyfunc.load_model(f"models:/{name}/{version}").unwrap_python_model()
        promise = load_promise(client, found.run_id)
    log.info("monitoring %s v%s (%s)", name, version, model.metadata.get("family", "?"))
    return ServedChampion(name, str(version), dict(model.metadata), model.reference_sample(),
                          promise)


PROMISE_ARTIFACT = "backtest/predictions.parquet"


def load_promise(client: Any, run_id: str | None) -> Promise | None:
    """The version's backtest rows and per-window metrics from its MLflow run (None, with a
    warning, when the run or its ``backtest/predictions.parquet`` cannot be read)."""
    import mlflow
    import pandas as pd

    from serving.monitoring.promise import Promise

    if not run_id:
        return None
    try:
        metrics = client.get_run(run_id).data.metrics
        path = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=PROMISE_ARTIFACT)
        return Promise.from_run(pd.read_parquet(path), metrics)
    except Exception as exc:  # an old or moved run: judge against the metrics alone
        log.warning("no backtest rows for run %s (%s): accuracy is judged against the "
                    "promised metrics without their noise", run_id, exc)
        return None


def _atomic_write(path: Path, text: str) -> None:
    """Write ``text`` so a reader never sees half a file (the API may be serving it)."""
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)


def write_reports(result: MonitorResult, out_dir: Path, when: datetime) -> tuple[Path, Path]:
    """``monitor-<UTC timestamp>.json/.html`` plus ``latest.json/.html`` in ``out_dir``."""
    import json

    from serving.monitoring.report import render_html, to_document

    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = when.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    document = json.dumps(to_document(result), indent=1, allow_nan=False)
    page = render_html(result)
    json_path, html_path = (out_dir / f"{REPORT_PREFIX}{stamp}{s}" for s in (".json", ".html"))
    for path, text in ((json_path, document), (html_path, page)):
        _atomic_write(path, text)
        _atomic_write(out_dir / f"{LATEST}{path.suffix}", text)
    return json_path, html_path


def result_metrics(result: MonitorResult) -> dict[str, float]:
    """What the monitoring run logs as MLflow metrics (only the values that are known)."""
    metrics: dict[str, float] = {}
    if result.drift is not None:
        metrics["drifted_feature_share"] = result.drift.share
        metrics["n_drifted_features"] = float(result.drift.n_drifted)
    if result.accuracy is not None:
        overall = result.accuracy.overall
        metrics.update({k: overall[k] for k in ("wape", "bias", "coverage") if k in overall})
        metrics["n_tracking_alarms"] = float(result.accuracy.n_alarms)
        metrics["chance_tracking_alarms"] = result.accuracy.chance_alarms
        check = result.accuracy.promise_check
        for comparison in (() if check is None else (check.wape, check.coverage, check.bias)):
            metrics[f"{comparison.metric}_vs_promise"] = comparison.effect
            metrics[f"{comparison.metric}_z"] = comparison.z
    if result.lag_accuracy is not None:
        by_lag = result.lag_accuracy.by_lag
        known = by_lag[by_lag["n"] > 0]
        metrics.update({f"wape_lag_{int(k)}": w for k, w in zip(known["lag"], known["wape"],
                                                                  strict=True)})
    return {k: float(v) for k, v in metrics.items() if v is not None and math.isfinite(v)}


def monitoring_run_name(periods: Periods, window: timedelta, now: datetime) -> str:
    """``monitor 2024-09-09..2024-10-28`` (the periods judged) or, without periods,
    ``monitor last 28 days to 2024-10-30`` (the logging window)."""
    from serving.monitoring.service import describe_window

    first, last = periods
    if first is not None and last is not None:
        return f"monitor {first:%Y-%m-%d}..{last:%Y-%m-%d}"
    return f"monitor last {describe_window(window)} to {now:%Y-%m-%d}"


def log_monitoring_run(spec: ExperimentSpec, settings: Settings, outcome_parts: dict[str, Any],
                       result: MonitorResult, paths: tuple[Path, Path],
                       run_name: str | None = None) -> str:
    """One run in the experiment ``<spec name>-monitoring`` (named ``run_name``, else
    after the report file); returns its run id."""
    import mlflow

    from training.tracking import ensure_experiment, tracking

    with tracking(settings.tracking_uri, settings.registry_uri):
        ensure_experiment(f"{spec.name}-monitoring", settings.artifact_location)
        tags = {"verdict": result.verdict.status, "decided_by": result.verdict.decided_by,
                "spec_name": spec.name, **outcome_parts}
        with mlflow.start_run(run_name=run_name or paths[0].stem, tags=tags) as run:
            mlflow.log_metrics(result_metrics(result))
            mlflow.log_param("window", result.context.get("window", ""))
            if result.lag_accuracy is not None:
                mlflow.log_param("review_lag", result.lag_accuracy.review_lag)
            for path in paths:
                mlflow.log_artifact(str(path), artifact_path="report")
    return run.info.run_id


def run_monitoring(spec: ExperimentSpec, settings: Settings, window: str | None = None,
                   out: Path | None = None, now: datetime | None = None,
                   review_lag: int | None = None,
                   periods: Periods = (None, None)) -> MonitoringOutcome:
    """Monitor the spec's champion over ``window`` (default: the spec's) and report it;
    the review by lag is at ``review_lag`` (default: the spec's ``monitoring.review_lag``);
    ``periods`` (first, last ``ds``) keeps only the forecasts of those periods."""
    from serving.monitoring.drift import DriftThresholds
    from serving.monitoring.service import monitor_store, parse_window
    from serving.store import PredictionStore

    thresholds = DriftThresholds.from_mapping(spec.monitoring.model_dump())
    try:
        span = parse_window(window or thresholds.window)
    except ValueError as exc:
        raise MonitoringError(str(exc)) from None
    lag_to_review = review_lag_of(spec, review_lag)
    champion = load_champion(spec, settings)
    lag = champion.lag_options(spec, lag_to_review)
    store = PredictionStore(settings.store_url)
    try:
        result = monitor_store(store, champion.reference, champion.expected, thresholds, span,
                               now=now, keys=champion.metadata.get("keys", []),
                               series_attributes=champion.series_attributes,
                               model_version=champion.version, lag=lag, periods=periods,
                               promise=champion.promise)
    finally:
        store.dispose()
    when = now or datetime.now(UTC)
    paths = write_reports(result, out or settings.reports_dir, when)
    parts = {"model_name": champion.name, "model_version": champion.version}
    run_id = log_monitoring_run(spec, settings, parts, result, paths,
                                monitoring_run_name(periods, span, when))
    return MonitoringOutcome(result, *paths, run_id, champion.name, champion.version)


def retrain(spec: ExperimentSpec, settings: Settings) -> TrainingOutcome:
    """Train the spec again; the promotion rule decides whether the challenger wins."""
    from experiments.training_job import run_training

    return run_training(spec, settings, purpose="retrain")


def describe_retrain(training: TrainingOutcome, before: str) -> str:
    """``promoted v5 (was v3): ...`` or ``kept v3: ...`` for people."""
    decision = training.decision
    if decision.promoted:
        return f"promoted v{decision.champion_version} (was v{before}): {decision.reason}"
    return (f"kept v{decision.champion_version or before} "
            f"({decision.action} challenger v{decision.challenger_version}): {decision.reason}")
