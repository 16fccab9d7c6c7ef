"""`salescast stack`: a real PostgreSQL on loopback with a password, `mlflow server` on it,
the settings in a private `stack.env`, and `down` stopping both.

The checks run on the session's `pg_stack` (whose teardown checks that `down` stopped its
real mlflow server and PostgreSQL). `down` is tested here on a stack of its own: a real
PostgreSQL, and in mlflow server's place a stand-in process group (started, as by an
earlier `salescast stack up`, from another process) — a second real mlflow server would
add its ~15 s start-up for nothing `down` treats differently.
"""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import psycopg
import pytest
from typer.testing import CliRunner

from experiments import stack as stack_module
from experiments.cli import app
from experiments.demo import demo_spec_path, stack_settings
from experiments.spec import load_spec
from experiments.stack import Stack, StackError, down, up, up_postgres
from training.config import PromotionConfig
from training.registry import (
    Candidate,
    aliases,
    client_for,
    promote_challenger,
    register_version,
    rollback,
)
from training.tracking import ensure_experiment, tracking

runner = CliRunner()
TOY_MODEL = Path(__file__).resolve().parents[1] / "serving" / "_model.py"


# Started by a short-lived launcher, so that it is nobody's child here (as after `stack up`):
# a session whose leader says "mlflow server" and which has a child.
STAND_IN = """
import subprocess
server = subprocess.Popen(["sh", "-c", "sleep 600 & wait", "mlflow", "server"],
                          start_new_session=True, stdin=subprocess.DEVNULL,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
print(server.pid)
"""


@pytest.fixture
def small_stack() -> Iterator[Stack]:
    """Real PostgreSQL and a stand-in mlflow server (see the module docstring)."""
    folder = Path(tempfile.mkdtemp(prefix="salescast-small-"))
    try:
        stack = up_postgres(folder, durable=False)
        launched = subprocess.run([sys.executable, "-c", STAND_IN], capture_output=True,
                                  text=True, check=True)
        (folder / "mlflow.pid").write_text(launched.stdout)
        yield stack
    finally:
        down(folder, purge=True)


def _listening(port: int) -> set[str]:
    """The local addresses with a TCP socket listening on ``port`` (from /proc/net)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A = LISTEN
                found.add(socket.inet_ntoa(bytes.fromhex(address)[::-1])
                          if len(address) == 8 else f"ipv6:{address}")
    return found


def _refused(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_postgres_listens_on_loopback_only_and_asks_every_connection_for_the_password(
    pg_stack: Stack,
) -> None:
    config = pg_stack.config
    assert _listening(config.pg_port) == {"127.0.0.1"}
    with psycopg.connect(pg_stack.store_url) as conn:
        assert conn.execute("SHOW listen_addresses").fetchone() == ("127.0.0.1",)
        databases = {r[0] for r in conn.execute("SELECT datname FROM pg_database")}
    assert {"mlflow", "optuna", "salescast"} <= databases
    socket_dir = str(pg_stack.folder / "run")
    for host in ("127.0.0.1", socket_dir):
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(host=host, port=config.pg_port, user="salescast",
                            password="not-the-password", dbname="salescast")


def test_mlflow_server_answers_health_and_keeps_the_password_off_its_command_line(
    pg_stack: Stack,
) -> None:
    assert httpx.get(f"{pg_stack.tracking_uri}/health", timeout=10).text == "OK"
    pid = int((pg_stack.folder / "mlflow.pid").read_text())
    command = Path(f"/proc/{pid}/cmdline").read_bytes()
    assert b"mlflow" in command and b"server" in command
    assert pg_stack.config.password.encode() not in command


def test_stack_env_is_private_and_sourcing_it_gives_the_three_settings(pg_stack: Stack) -> None:
    env_file = pg_stack.folder / "stack.env"
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    names = ["SALESCAST_TRACKING_URI", "SALESCAST_OPTUNA_STORAGE", "SALESCAST_STORE_URL"]
    script = f"source {env_file} && " + " && ".join(f'echo "${name}"' for name in names)
    shown = subprocess.run(["bash", "-c", script], capture_output=True, text=True,
                           env={"PATH": os.environ["PATH"]}, check=True).stdout.split()
    assert shown == [pg_stack.tracking_uri, pg_stack.optuna_storage, pg_stack.store_url]
    assert pg_stack.store_url.startswith("postgresql://salescast:")
    printed = runner.invoke(app, ["stack", "env", "--dir", str(pg_stack.folder)])
    assert printed.exit_code == 0
    assert printed.output.splitlines() == [f"export {n}={v}" for n, v in zip(names, shown,
                                                                             strict=True)]


def test_up_on_a_running_stack_reuses_it(pg_stack: Stack) -> None:
    pid = (pg_stack.folder / "mlflow.pid").read_text()
    again = up(pg_stack.folder)
    assert again.started == []
    assert again.config == pg_stack.config
    assert (pg_stack.folder / "mlflow.pid").read_text() == pid


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def test_down_stops_both_processes_and_closes_their_ports(small_stack: Stack) -> None:
    folder, config = small_stack.folder, small_stack.config
    mlflow_pid = int((folder / "mlflow.pid").read_text())
    postgres_pid = int((folder / "pgdata" / "postmaster.pid").read_text().split()[0])
    assert _group_alive(mlflow_pid) and _alive(postgres_pid)
    result = runner.invoke(app, ["stack", "down", "--dir", str(folder)])
    assert result.exit_code == 0, result.output
    assert "stopped mlflow server and postgres" in result.output
    assert not _group_alive(mlflow_pid) and not _alive(postgres_pid)
    assert _refused(config.pg_port)
    assert not (folder / "mlflow.pid").exists()
    assert down(folder) == []  # nothing runs: fine
    assert up_postgres(folder).started == [f"postgres on 127.0.0.1:{config.pg_port}"]


def test_without_postgres_up_fails_with_one_line_saying_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(stack_module, "_pg_config_bindir", list)
    monkeypatch.setattr(stack_module, "_debian_bindirs", list)
    monkeypatch.setattr(stack_module.shutil, "which", lambda name: None)
    result = runner.invoke(app, ["stack", "up", "--dir", str(tmp_path / "stack")])
    assert result.exit_code == 1
    assert "error: PostgreSQL server binaries" in result.output
    assert "apt-get install postgresql" in result.output and "make postgres" in result.output
    assert "Traceback" not in result.output


def test_env_and_purge_refuse_a_folder_without_a_stack(tmp_path: Path) -> None:
    result = runner.invoke(app, ["stack", "env", "--dir", str(tmp_path)])
    assert result.exit_code == 1
    assert f"error: no stack in {tmp_path}" in result.output
    (tmp_path / "precious.txt").write_text("keep me")
    with pytest.raises(StackError, match="does not look like a stack folder"):
        down(tmp_path, purge=True)
    assert (tmp_path / "precious.txt").exists()


def _log_toy(offset: float) -> str:
    """Log the serving tests' toy forecaster (its artifacts go through the server)."""
    import mlflow

    with mlflow.start_run():
        mlflow.log_params({"offset": offset})
        mlflow.log_metric("wape", 0.2 - offset / 10_000)
        info = mlflow.pyfunc.log_model(name="model", python_model=str(TOY_MODEL),
                                       model_config={"offset": offset},
                                       pip_requirements=["mlflow", "pandas"])
    return info.model_uri


def test_tracking_and_registry_through_mlflow_server_on_postgresql(pg_stack: Stack) -> None:
    """Runs, artifacts (proxied into the stack's folder), versions and aliases; the
    champion loads by alias and its answer says which version it is."""
    import mlflow

    name, client = "stack_toy", client_for(pg_stack.tracking_uri)
    with tracking(pg_stack.tracking_uri):
        ensure_experiment("stack-tests")
        versions = [register_version(name, _log_toy(offset), {"family": "toy"})
                    for offset in (0.0, 1000.0)]
        first = promote_challenger(client, name, [Candidate("toy", versions[0], 0.2),
                                                  Candidate("seasonal_naive", versions[0], 0.3)],
                                   None, PromotionConfig())
        second = promote_challenger(client, name, [Candidate("toy", versions[1], 0.1)],
                                    Candidate("toy", versions[0], 0.2),
                                    PromotionConfig(must_beat_naive=False))
        champion = mlflow.pyfunc.load_model(f"models:/{name}@champion")
    assert (first.action, second.action) == ("promoted", "promoted")
    assert aliases(client, name) == {"champion": versions[1], "previous-champion": versions[0]}
    assert client.get_model_version(name, versions[1]).tags["promotion_decision"] == "promoted"
    answer = champion.predict(pd.DataFrame({"series_id": ["S01|C1"],
                                            "ds": pd.to_datetime(["2024-06-10"])}))
    assert answer["yhat"].tolist() == [1102.0]  # level 100 + offset 1000 + 2 x step 1
    assert rollback(name, client).champion_version == versions[0]
    assert any((pg_stack.folder / "artifacts").rglob("MLmodel"))


def test_the_demo_takes_a_stack_s_settings_only_while_it_holds_no_earlier_run(
    pg_stack: Stack, tmp_path: Path,
) -> None:
    """`salescast demo --stack DIR`: the stack's URLs (artifacts through its server); a
    stack that already has the spec's experiment or model is refused, saying how to get
    a fresh one. (The stack.env here names a database of its own as prediction store, so
    that what other tests post to the session stack's store does not count.)"""
    folder = tmp_path / "stack"
    folder.mkdir()
    env = pg_stack.config.settings_env() | {
        "SALESCAST_STORE_URL": pg_stack.new_database("demo_check_store")}
    (folder / "stack.env").write_text("".join(f"export {k}={v}\n" for k, v in env.items()))
    spec = load_spec(demo_spec_path())
    fresh = spec.model_copy(update={"name": "stack_demo_fresh", "model_name": None})
    settings = stack_settings(tmp_path / "work", folder, fresh)
    assert (settings.tracking_uri, settings.optuna_storage, settings.store_url) == (
        env["SALESCAST_TRACKING_URI"], env["SALESCAST_OPTUNA_STORAGE"],
        env["SALESCAST_STORE_URL"])
    assert settings.artifact_location is None  # the server's mlflow-artifacts:/ root
    client_for(pg_stack.tracking_uri).create_experiment("stack_demo_used")
    used = spec.model_copy(update={"name": "stack_demo_used", "model_name": None})
    with pytest.raises(StackError) as refused:
        stack_settings(tmp_path / "work", folder, used)
    assert "already holds a demo run (MLflow experiment 'stack_demo_used')" in str(refused.value)
    assert f"salescast stack down --dir {folder} --purge" in str(refused.value)
