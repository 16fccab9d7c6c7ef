"""The MLflow layout of a training invocation, as a data scientist reads it in the UI.

* Experiment = the spec's name. One **parent run** per training invocation, named for
  what it did (``train as of 2024-08-25``: the data's cut date; ``retrain as of ...``
  when the monitor asked for it), tagged with
  ``spec_name``, ``spec_hash``, ``data_digest`` and ``git_commit`` (when known); it
  carries the spec YAML (``spec.yaml``), the dataset input, the leaderboard
  (``leaderboard.json`` table + ``plots/leaderboard_wape.png``) and the best family's
  metrics under the shared names. The link that opens its families side by side in the
  UI: :mod:`training.mlflow_ui`.
* One **family run** per model family (nested; tag ``family``): its best params, the
  backtest metrics and ``train_seconds`` (the final refit on the full training set).
* One **trial run** per Optuna trial, nested under its family run: the trial's params,
  the per-window WAPEs and tags ``trial_number`` / ``trial_state`` / ``optuna_state``
  (COMPLETE, PRUNED, FAIL) and ``worker`` (``host:pid``: the leader logs every worker's
  trials of the run). Only a complete trial has ``wape`` and status FINISHED. A pruned
  one (which Optuna 5 gives its last window's WAPE as value) ends KILLED — MLflow has no
  PRUNED status — with ``pruned_at_window`` instead, so it never sorts as a best.

Metric names (the same in every run): the backtest means use ``METRIC_NAMES``
(``wape``, ``mae``, ``rmse``, ``smape``, ``mase``, ``bias_pct``, ``coverage``,
``pinball``); window k's value is ``<metric>_w<k>`` (``wape_w0`` = oldest window). We
chose suffixed names over MLflow steps because a step-logged ``wape`` would show the
last window, not the mean, as the run's ``wape`` in the UI's tables.

An ``http(s)`` tracking server is probed once (:func:`probe_tracking_server`) before a
job uses it: MLflow retries every call for minutes when the server is down.

mlflow is imported inside the functions: the CLI imports this package lazily anyway,
but keeping the import local makes that a property of this module too.
"""

from __future__ import annotations

import io
import logging
import re
import subprocess
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import pandas as pd

from training import plots
from training.metrics import METRIC_NAMES

if TYPE_CHECKING:
    import optuna
    from matplotlib.figure import Figure
    from mlflow import MlflowClient

    from features.training_set import TrainingSet
    from training.backtest import BacktestResult

log = logging.getLogger(__name__)

DATASET_DIGEST_CHARS = 36  # MLflow's limit for a dataset digest
_STATUS = {"COMPLETE": "FINISHED", "FAIL": "FAILED"}  # PRUNED (and the rest): KILLED
PROBE_TIMEOUT = 5.0  # seconds for the one request of probe_tracking_server
_GATEWAY_DOWN = frozenset({502, 503, 504})  # a proxy answering for a server that is not
_USERINFO = re.compile(r"(?<=://)[^/@\s]+@")


class TrackingUnavailable(ConnectionError):
    """The http(s) tracking server (or registry) does not answer."""


def window_metric(metric: str, window: int) -> str:
    """Name of ``metric`` for backtest window ``window`` (0 = oldest), e.g. ``wape_w0``."""
    return f"{metric}_w{window}"


def probe_tracking_server(uri: str, timeout: float = PROBE_TIMEOUT) -> None:
    """Raise TrackingUnavailable, naming ``uri``, unless an ``http(s)`` server answers
    one request (``/health``, no retries) within ``timeout``; other URIs pass. Any HTTP
    answer counts, except a gateway's 502/503/504."""
    if urlparse(uri).scheme not in {"http", "https"}:
        return
    from mlflow.utils.credentials import get_default_host_creds
    from mlflow.utils.rest_utils import http_request

    shown = _USERINFO.sub("***@", uri)
    try:
        answer = http_request(get_default_host_creds(uri), "/health", "GET", max_retries=0,
                              timeout=timeout, raise_on_status=False)
    except Exception as exc:  # MlflowException wrapping requests' connection errors
        raise TrackingUnavailable(f"MLflow tracking server {shown} is unreachable: "
                                  f"{_root_cause(exc)} (one try, {timeout:g} s timeout)"
                                  ) from exc
    if answer.status_code in _GATEWAY_DOWN:
        raise TrackingUnavailable(f"MLflow tracking server {shown} is unavailable "
                                  f"(HTTP {answer.status_code})")


def _root_cause(exc: BaseException) -> str:
    """The innermost error of a chain in a few words, e.g. ``Connection refused``."""
    while (inner := exc.__cause__ or exc.__context__) is not None:
        exc = inner
    return getattr(exc, "strerror", None) or type(exc).__name__


@contextmanager
def tracking(tracking_uri: str, registry_uri: str | None = None) -> Iterator[None]:
    """Point MLflow at ``tracking_uri`` (and the registry) explicitly; restore afterwards."""
    import mlflow

    previous = (mlflow.get_tracking_uri(), mlflow.get_registry_uri())
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(registry_uri or tracking_uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(previous[0])
        mlflow.set_registry_uri(previous[1])


@contextmanager
def mlflow_notices_follow_its_logger() -> Iterator[None]:
    """MLflow prints a few notices past its loggers, straight to ``sys.stderr``
    (``Created version '2' of model ...`` when registering): drop them while the
    ``mlflow`` logger is above INFO (the quiet CLI, :mod:`experiments.cli_support`).
    Log handlers keep the stream they were given, so log lines still show."""
    if logging.getLogger("mlflow").isEnabledFor(logging.INFO):
        yield
        return
    with redirect_stderr(io.StringIO()):
        yield


def ensure_experiment(name: str, artifact_location: str | None = None) -> str:
    """The experiment's id, creating it (with its artifact root) on first use; tagged as
    a machine-learning experiment (:mod:`training.mlflow_ui`)."""
    import mlflow

    from training.mlflow_ui import mark_ml_experiment

    found = mlflow.get_experiment_by_name(name)
    if found is not None:
        experiment_id = found.experiment_id
    else:
        experiment_id = mlflow.create_experiment(name, artifact_location=artifact_location)
    mark_ml_experiment(mlflow.MlflowClient(), experiment_id)
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


def parent_run_name(purpose: str, as_of: str) -> str:
    """A parent run named for what it did, e.g. ``train as of 2024-08-25`` (the data's
    cut date) or ``retrain as of 2024-11-03``."""
    return f"{purpose} as of {as_of}"


def git_commit() -> str | None:
    """The salescast checkout's commit, when the code runs from a git working tree."""
    here = Path(__file__).resolve().parent
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True,
                              text=True, timeout=5, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None


def parent_tags(spec_name: str, spec_hash: str, data_digest: str) -> dict[str, str]:
    tags = {"spec_name": spec_name, "spec_hash": spec_hash, "data_digest": data_digest}
    commit = git_commit()
    if commit:
        tags["git_commit"] = commit
    return tags


def log_spec(spec: dict[str, Any]) -> None:
    """The experiment spec as ``spec.yaml`` on the active run."""
    import mlflow
    import yaml

    mlflow.log_text(yaml.safe_dump(spec, sort_keys=False), "spec.yaml")


def log_training_data(training_set: TrainingSet, name: str) -> None:
    """The training panel as the run's dataset input (context ``training``), identified
    by the TrainingSet's data digest (MLflow keeps 36 characters of a dataset digest; the
    whole digest is the input's ``data_digest`` tag)."""
    import mlflow

    digest = training_set.metadata.data_digest
    with warnings.catch_warnings():  # its integer-column hint is about model signatures
        warnings.simplefilter("ignore", UserWarning)
        dataset = mlflow.data.from_pandas(training_set.panel, name=name,
                                          digest=digest[:DATASET_DIGEST_CHARS], targets="y")
        mlflow.log_input(dataset, context="training", tags={"data_digest": digest})


def log_params(params: dict[str, Any]) -> None:
    """Hyper-parameters as run params (values as text, as MLflow stores them)."""
    import mlflow

    mlflow.log_params({k: _param_text(v) for k, v in params.items()})


def _param_text(value: Any) -> str:
    return str(value)[:6000]


def backtest_metrics(backtest: BacktestResult) -> dict[str, float]:
    """Means under ``METRIC_NAMES`` plus each window's as ``<metric>_w<k>``."""
    metrics = {name: float(backtest.metrics[name]) for name in METRIC_NAMES}
    frame = backtest.window_metrics
    windows = frame["window"] if "window" in frame.columns else frame.index
    for k, (_, row) in zip(windows, frame.iterrows(), strict=True):
        for name in METRIC_NAMES:
            metrics[window_metric(name, int(k))] = float(row[name])
    return metrics


def log_backtest(backtest: BacktestResult, importances: pd.Series | None = None) -> None:
    """Metrics, tables, predictions (parquet) and plots of a family's best backtest."""
    import mlflow

    mlflow.log_metrics(backtest_metrics(backtest))
    mlflow.log_table(_json_ready(backtest.window_metrics), "backtest/window_metrics.json")
    mlflow.log_table(_json_ready(backtest.by_step), "backtest/by_step.json")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "predictions.parquet"
        backtest.predictions.to_parquet(path, index=False)
        mlflow.log_artifact(str(path), "backtest")
    _log_figure(plots.forecast_vs_actual(backtest.predictions), "plots/forecast_vs_actual.png")
    _log_figure(plots.error_by_step(backtest.by_step), "plots/error_by_step.png")
    if importances is not None and len(importances):
        _log_figure(plots.feature_importance(importances), "plots/feature_importance.png")


def _log_figure(figure: Figure, artifact_file: str) -> None:
    """``figure`` as a PNG artifact of the active run (see :mod:`training.plots`)."""
    import mlflow

    mlflow.log_figure(figure, artifact_file,
                      save_kwargs={"pil_kwargs": {"compress_level": plots.PNG_COMPRESSION}})


def _json_ready(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy whose index is a column and whose dates are ISO strings (for log_table)."""
    out = frame.reset_index(drop=isinstance(frame.index, pd.RangeIndex))
    for column in out.columns:
        if pd.api.types.is_datetime64_any_dtype(out[column]):
            out[column] = out[column].dt.strftime("%Y-%m-%d")
    return out


def log_trial_run(
    client: MlflowClient, experiment_id: str, family_run_id: str, family: str,
    trial: optuna.trial.FrozenTrial,
) -> str:
    """One finished Optuna trial as a run nested under its family run (with the trial's
    own start and end times); returns its run id. The state decides the metrics and the
    status, not ``trial.value`` (set on pruned trials too, see the module docstring)."""
    from mlflow.entities import Metric, Param

    start = _millis(trial.datetime_start)
    end = _millis(trial.datetime_complete) or start
    state = trial.state.name
    tags = {"mlflow.parentRunId": family_run_id, "family": family,
            "trial_number": str(trial.number), "trial_state": state, "optuna_state": state}
    if "worker" in trial.user_attrs:  # which tuning worker ran it (training.trial_groups)
        tags["worker"] = str(trial.user_attrs["worker"])
    run = client.create_run(experiment_id, start_time=start,
                            run_name=f"{family}-trial-{trial.number}", tags=tags)
    params = trial.user_attrs.get("params", trial.params)
    metrics = [Metric(window_metric("wape", int(k)), float(v), end or 0, 0)
               for k, v in trial.intermediate_values.items()]
    metrics += [Metric(k, v, end or 0, 0) for k, v in _outcome_metrics(trial).items()]
    client.log_batch(run.info.run_id, metrics=metrics,
                     params=[Param(k, _param_text(v)) for k, v in params.items()])
    client.set_terminated(run.info.run_id, status=_STATUS.get(state, "KILLED"), end_time=end)
    return run.info.run_id


def _outcome_metrics(trial: optuna.trial.FrozenTrial) -> dict[str, float]:
    """``wape`` of a complete trial; ``pruned_at_window`` of a pruned one."""
    if trial.state.name == "COMPLETE" and trial.value is not None:
        return {"wape": float(trial.value)}
    if trial.state.name == "PRUNED" and trial.last_step is not None:
        return {"pruned_at_window": float(trial.last_step)}
    return {}


def describe_trial(trial: optuna.trial.FrozenTrial) -> str:
    """A finished trial in a few words for the log, e.g. ``trial 4 wape 0.1901`` or
    ``trial 4 pruned after window 1`` (by state: a pruned trial's value is no mean)."""
    state = trial.state.name
    if state == "COMPLETE" and trial.value is not None:
        return f"trial {trial.number} wape {trial.value:.4f}"
    if state == "PRUNED":
        return f"trial {trial.number} pruned after window {trial.last_step}"
    return f"trial {trial.number} {state.lower()}"


def _millis(moment: Any) -> int | None:
    return int(moment.timestamp() * 1000) if moment is not None else None


def log_leaderboard(leaderboard: pd.DataFrame, best_metrics: dict[str, float]) -> None:
    """On the parent run: the leaderboard table and plot, and the best family's metrics."""
    import mlflow

    mlflow.log_table(_json_ready(leaderboard), "leaderboard.json")
    _log_figure(plots.leaderboard_wape(leaderboard), "plots/leaderboard_wape.png")
    mlflow.log_metrics({k: float(v) for k, v in best_metrics.items()})
