"""`salescast serve` that cannot start: one `error:` line and exit code 1, never a traceback.

Exit code 3 (uvicorn's start-up failure) would read as a `retrain` verdict of
`salescast monitor`; a traceback buries the reason.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from experiments.traffic import free_port

REPO = Path(__file__).resolve().parents[2]


def _serve(workdir: Path, port: int, store_url: str) -> subprocess.CompletedProcess[str]:
    env = os.environ | {
        "PYTHONPATH": str(REPO),
        "SALESCAST_STORE_URL": store_url,
        "SALESCAST_TRACKING_URI": f"sqlite:///{workdir / 'mlflow.db'}",
        "SALESCAST_LOCAL_MODEL_DIR": str(workdir / "champion"),
        "SALESCAST_POLL_SECONDS": "0",
    }
    command = [sys.executable, "-m", "experiments.cli", "serve", "--port", str(port)]
    # a server that started instead of failing would run until the timeout: the test fails
    return subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True,
                          timeout=90)


def _assert_one_error_line(done: subprocess.CompletedProcess[str], *words: str) -> None:
    assert done.returncode == 1, done.stderr[-3000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, done.stderr[-3000:]
    for word in words:
        assert word in errors[0]


@pytest.mark.parametrize(("store_url", "says"), [
    ("postgresql://nobody@127.0.0.1:1/none", "prediction store"),  # nothing listens on port 1
    ("postgresql:/nobody@::1::/", "invalid prediction-store URL"),
], ids=["unreachable", "malformed"])
def test_serve_with_a_store_it_cannot_use_exits_1_with_one_line(
    tmp_path: Path, store_url: str, says: str
) -> None:
    _assert_one_error_line(_serve(tmp_path, free_port(), store_url), says)


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


def test_serve_on_a_port_in_use_exits_1_with_one_line(tmp_path: Path, taken_port: int) -> None:
    done = _serve(tmp_path, taken_port, f"sqlite:///{tmp_path / 'predictions.db'}")
    _assert_one_error_line(done, "address")
