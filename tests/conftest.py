"""Session-wide fixtures: ONE real SQLite MLflow store per test process, and ONE shared
stack (PostgreSQL + `mlflow server` on it, `salescast stack up`) for the tests that run
against PostgreSQL as well. `make test` runs two processes (pytest-xdist, `--dist
loadfile`): each has its own store and stack, in folders and on ports of its own.

Creating a SQLite MLflow database runs its migrations (seconds here), so every package's
tests share this one; each test uses its own experiment / registered-model names. The
stack takes ~15 s to come up (initdb, then mlflow server's migrations); tests on it use
their own names too, and `pg_stack.new_database(name)` for a database of their own.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from experiments.stack import Stack


@dataclass(frozen=True)
class MlflowStore:
    """Where a test session's MLflow runs, models and Optuna studies live."""

    root: Path
    tracking_uri: str
    optuna_storage: str
    artifact_location: str


@pytest.fixture(scope="session")
def mlflow_store(tmp_path_factory: pytest.TempPathFactory) -> MlflowStore:
    from mlflow import MlflowClient

    root = tmp_path_factory.mktemp("mlflow_store")
    store = MlflowStore(root, f"sqlite:///{root}/mlflow.db", f"sqlite:///{root}/optuna.db",
                        str(root / "artifacts"))
    MlflowClient(store.tracking_uri).search_experiments()  # run the migrations once
    return store


@pytest.fixture(scope="session")
def pg_stack() -> Iterator[Stack]:
    """The session's stack, in a short folder under /tmp (PostgreSQL's socket path is
    bounded, and as root its `postgres` user must reach the folder: pytest's own tmp
    folders are closed to others). Fails, never skips, without PostgreSQL: `make test`
    installs it. Its teardown checks that `down` stopped both servers."""
    from experiments.stack import StackError, down, up

    folder = Path(tempfile.mkdtemp(prefix="salescast-stack-"))
    try:
        stack = up(folder, workers=1, durable=False)
    except StackError as exc:
        _abandon(folder)
        pytest.fail(f"the PostgreSQL stack did not come up: {exc}", pytrace=False)
    yield stack
    stopped = down(folder, purge=True)
    assert stopped == ["mlflow server", "postgres"], f"down stopped only {stopped}"
    for port in (stack.config.pg_port, stack.config.mlflow_port):
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", port)) != 0, f"port {port} still open"


def _abandon(folder: Path) -> None:
    """Stop whatever a failed `up` started, and remove its folder."""
    from experiments.stack import StackError, down

    with contextlib.suppress(StackError):
        down(folder)
    shutil.rmtree(folder, ignore_errors=True)
