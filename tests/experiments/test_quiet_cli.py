"""Quiet tools: ``salescast train`` prints its own lines only — its table, its decision,
its link to the MLflow UI and salescast's log lines — and ``--verbose`` brings the
libraries' log lines back. Run as a person runs it: the installed command in a subprocess,
on a fresh SQLite store (MLflow logs its table creation there), a tiny spec."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from experiments.cli_support import QUIET_ENV
from tests.experiments.conftest import TinySpec

pytestmark = pytest.mark.slow

OWN_LOG_LINE = re.compile(
    r"^\d\d:\d\d:\d\d (DEBUG|INFO|WARNING|ERROR)\s+(features|training|serving|experiments)"
    r"[\w.]*: ")
LIBRARY_NOISE = ("Downloading artifacts", "Warning", "alembic", "INFO mlflow", "WARNING mlflow",
                 "cloudpickle", "CloudPickle", "[I 20", "[W 20")  # the last two: Optuna's
LINK = re.compile(r"compare the families in MLflow: (http://127\.0\.0\.1:5000/#/experiments/"
                  r"(\d+)/runs\?viewStateShareKey=families-([0-9a-f]{32})"
                  r"&workflowType=machine_learning)  \(after: mlflow ui --backend-store-uri "
                  r"sqlite:///\S+/mlflow\.db\)$")


def _train(tiny_spec: TinySpec, folder: Path, *options: str) -> subprocess.CompletedProcess[str]:
    """``salescast [options] train`` on a fresh store in ``folder`` (regression, 1 trial)."""
    folder.mkdir()
    spec = folder / "tiny.yaml"
    spec.write_text(yaml.safe_dump(tiny_spec("quiet_cli").model_dump(mode="json")))
    env = {k: v for k, v in os.environ.items() if k not in QUIET_ENV} | {
        "SALESCAST_TRACKING_URI": f"sqlite:///{folder / 'mlflow.db'}",
        "SALESCAST_OPTUNA_STORAGE": f"sqlite:///{folder / 'optuna.db'}",
        "SALESCAST_ARTIFACT_LOCATION": str(folder / "artifacts"),
        "SALESCAST_N_JOBS": "1",
    }
    salescast = Path(sys.executable).with_name("salescast")
    command = [str(salescast), *options, "train", "--spec", str(spec),
               "--families", "regression", "--trials", "1"]
    done = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, f"stdout:\n{done.stdout[-3000:]}\nstderr:\n{done.stderr[-3000:]}"
    return done


def test_train_prints_its_own_lines_only(tiny_spec: TinySpec, tmp_path: Path) -> None:
    done = _train(tiny_spec, tmp_path / "quiet")
    for noise in LIBRARY_NOISE:
        assert noise not in done.stdout + done.stderr, f"{noise!r} printed:\n{done.stderr}"
    strangers = [line for line in done.stderr.splitlines()
                 if line.strip() and not OWN_LOG_LINE.match(line)]
    assert not strangers, "not salescast's log lines:\n" + "\n".join(strangers)
    lines = done.stdout.splitlines()
    assert lines[0].split()[:3] == ["family", "version", "wape"]  # the leaderboard
    assert any(line.startswith("promotion: ") for line in lines)
    assert re.search(r"^parent run 'train as of \d{4}-\d\d-\d\d' \([0-9a-f]{32}\) in "
                     r"experiment 'quiet_cli'", done.stdout, re.MULTILINE), done.stdout
    assert LINK.match(lines[-1]), lines[-1]


def test_verbose_brings_the_libraries_log_lines_back(tiny_spec: TinySpec,
                                                     tmp_path: Path) -> None:
    done = _train(tiny_spec, tmp_path / "verbose", "--verbose")
    assert "INFO mlflow" in done.stderr  # e.g. its table creation, its input-example check
    assert re.search(r"DEBUG\s+(features|training|experiments)", done.stderr)
    assert LINK.match(done.stdout.splitlines()[-1])
