"""`salescast serve` that cannot start: one `error:` line and exit code 1, never a traceback.

Exit code 3 (uvicorn's start-up failure) would read as a `retrain` verdict of
`salescast monitor`; a traceback buries the reason.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
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


def test_serve_with_a_blank_api_key_exits_1_instead_of_serving_writes_unguarded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SALESCAST_API_KEY", "   ")
    done = _serve(tmp_path, free_port(), f"sqlite:///{tmp_path / 'predictions.db'}")
    _assert_one_error_line(done, "api_key is set but blank")


def _start_serve(workdir: Path, tracking_uri: str) -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    env = os.environ | {
        "PYTHONPATH": str(REPO), "SALESCAST_TRACKING_URI": tracking_uri,
        "SALESCAST_STORE_URL": f"sqlite:///{workdir / 'predictions.db'}",
        "SALESCAST_LOCAL_MODEL_DIR": str(workdir / "champion"), "SALESCAST_POLL_SECONDS": "0",
        "SALESCAST_CONNECT_TIMEOUT": "1",
    }
    command = [sys.executable, "-m", "experiments.cli", "serve", "--port", str(port)]
    process = subprocess.Popen(command, cwd=workdir, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    return process, f"http://127.0.0.1:{port}"


def _live_and_not_ready(process: subprocess.Popen[str], url: str, within: float) -> str:
    """Wait until the server answers /healthz; return /readyz's reason; SIGTERM stops it."""
    import httpx

    deadline = time.monotonic() + within
    try:
        while time.monotonic() < deadline and process.poll() is None:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    ready = httpx.get(f"{url}/readyz", timeout=5)
                    assert ready.status_code == 503
                    return ready.text
            except httpx.TransportError:
                time.sleep(0.3)
        raise AssertionError(f"no /healthz within {within} s (exit {process.poll()})")
    finally:
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=20)[0]
        assert process.returncode in (0, -signal.SIGTERM), output[-2000:]  # uvicorn re-raises


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port that accepts TCP connections (the kernel's backlog) and never answers."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(16)
        yield holder.getsockname()[1]


def test_a_tracking_server_that_never_answers_does_not_hang_start_up(
    tmp_path: Path, silent_server: int
) -> None:
    process, url = _start_serve(tmp_path, f"http://127.0.0.1:{silent_server}")
    reason = _live_and_not_ready(process, url, within=60)
    assert "not answering within 1 s" in reason


def test_serving_never_turns_an_empty_file_into_an_mlflow_database(tmp_path: Path) -> None:
    empty = tmp_path / "mlflow.db"
    empty.touch()
    process, url = _start_serve(tmp_path, f"sqlite:///{empty}")
    reason = _live_and_not_ready(process, url, within=60)
    assert "holds no MLflow registry" in reason
    assert empty.stat().st_size == 0
