"""Where a data scientist lands in the MLflow UI: the link `salescast train` and `demo` print.

MLflow 3 opens an experiment on its GenAI overview (traces, tokens, an assistant panel),
which is empty for forecasting runs, and nests each family run under its parent run.
What we want open is the runs table, one row per family of one training run, best WAPE
first, with ``wape``, ``mase``, ``bias_pct`` and ``coverage`` as columns. Two things
in the UI of MLflow 3.17 (read in its JavaScript bundle) give that:

* ``workflowType=machine_learning`` in the page's query: the side bar switch between
  "GenAI" and "Model training"; the UI reads the experiment's kind from it (the
  ``mlflow.experimentKind`` experiment tag only where that switch is off, which
  :func:`mark_ml_experiment` sets anyway).
* a **shared view**: the JSON of the runs table's state (filter, sort, columns) in the
  experiment tag ``mlflow.sharedViewState.<key>`` — what the UI's "Share" button writes —
  opened by ``#/experiments/<id>/runs?viewStateShareKey=<key>``. Sorting or filtering
  makes the UI list runs flat instead of nested, so the family runs sit side by side.

The filter keeps the children of one parent run (the family runs; trials are nested one
level deeper), so the view of a training run stays what it was after later runs.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

if TYPE_CHECKING:
    from mlflow import MlflowClient

EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
ML_EXPERIMENT = "custom_model_development"  # the UI's "Machine learning" kind
SHARED_VIEW_TAG = "mlflow.sharedViewState."
VIEW_COLUMNS = ("wape", "mase", "bias_pct", "coverage")
LOCAL_UI = "http://127.0.0.1:5000"  # where `mlflow ui` listens by default
_USERINFO = re.compile(r"(?<=://)[^/@\s]+@")


def mark_ml_experiment(client: MlflowClient, experiment_id: str) -> None:
    """Tag the experiment as machine learning (not GenAI) unless it says already."""
    experiment = client.get_experiment(experiment_id)
    if experiment.tags.get(EXPERIMENT_KIND_TAG) != ML_EXPERIMENT:
        client.set_experiment_tag(experiment_id, EXPERIMENT_KIND_TAG, ML_EXPERIMENT)


def family_view(parent_run_id: str) -> dict[str, Any]:
    """The runs-table state of one training run's families: its child runs, best WAPE
    first, the shared metrics and the registered model version as columns."""
    columns = [f"metrics.`{name}`" for name in VIEW_COLUMNS]
    columns.append("attributes.`Models`")
    return {"searchFilter": f"tags.`mlflow.parentRunId` = '{parent_run_id}'",
            "orderByKey": "metrics.`wape`", "orderByAsc": True, "startTime": "ALL",
            "lifecycleFilter": "Active", "modelVersionFilter": "All Runs",
            "datasetsFilter": [], "selectedColumns": columns, "columnOrder": columns}


def view_key(parent_run_id: str) -> str:
    return f"families-{parent_run_id}"


def save_family_view(client: MlflowClient, experiment_id: str, parent_run_id: str) -> str:
    """Store the family view of ``parent_run_id`` on the experiment; returns its key."""
    key = view_key(parent_run_id)
    client.set_experiment_tag(experiment_id, SHARED_VIEW_TAG + key,
                              json.dumps(family_view(parent_run_id)))
    return key


def ui_base_url(tracking_uri: str) -> str:
    """The UI's address: an http(s) tracking server serves it (credentials left out);
    for a database or file store it is `mlflow ui` on this machine."""
    if urlparse(tracking_uri).scheme in {"http", "https"}:
        return _USERINFO.sub("", tracking_uri).rstrip("/")
    return LOCAL_UI


def runs_view_url(base_url: str, experiment_id: str, key: str) -> str:
    """The link that opens the shared view ``key`` in the runs table of the experiment."""
    return (f"{base_url.rstrip('/')}/#/experiments/{experiment_id}/runs"
            f"?viewStateShareKey={key}&workflowType=machine_learning")


def how_to_open(tracking_uri: str) -> str:
    """What to start before opening a link of :func:`ui_base_url` (empty for a server)."""
    if urlparse(tracking_uri).scheme in {"http", "https"}:
        return ""
    return f"mlflow ui --backend-store-uri {tracking_uri}"
