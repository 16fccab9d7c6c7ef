"""`salescast stack`: the shared stack on one machine — a real PostgreSQL server and an
`mlflow server` on it — and the settings that point salescast at them.

Why it exists: the embedded default (SQLite files, `make demo`) holds one person's
experiments. A team shares a tracking server whose backend store is PostgreSQL, Optuna
studies that several workers optimise at once, and a prediction store that several API
workers write. This module brings exactly that up locally, in one folder, so the same
code paths run (and are tested) before anything is deployed::

    <folder>/stack.env      the SALESCAST_* settings (mode 0600: it holds the password)
    <folder>/pgdata/        the PostgreSQL cluster (initdb), <folder>/run/ its unix socket
    <folder>/postgres.log
    <folder>/artifacts/     mlflow server's --artifacts-destination (clients upload to it)
    <folder>/mlflow.log, <folder>/mlflow.pid

PostgreSQL (Debian's ``postgresql`` package) listens on 127.0.0.1 only and asks every
connection, TCP or socket, for the generated password (scram-sha-256); its superuser is
``salescast``; databases ``mlflow``, ``optuna`` and ``salescast``. PostgreSQL refuses to
run as root: as root the cluster is run by the ``postgres`` user the package creates.
`mlflow server` gets its backend-store URI through its environment (not its command line,
which ``ps`` shows everyone) and runs in its own session, so `down` stops its whole
process group. `up` on a folder whose stack runs reuses it; after a reboot it starts the
same cluster and server again on the same ports.
"""

from __future__ import annotations

import logging
import os
import pwd
import re
import secrets
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

DEFAULT_DIR = Path(".salescast-stack")
USER = "salescast"
DATABASES = ("mlflow", "optuna", "salescast")
HOST = "127.0.0.1"
INSTALL_HINT = ("install Debian's postgresql package: `apt-get install postgresql` "
                "(as root), or `make postgres`")
SERVER_ENV = {
    "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",  # no huey job runners (GenAI jobs only)
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
}
SOCKET_PATH_MAX = 107  # sun_path holds 108 bytes, NUL included
_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_children: dict[int, subprocess.Popen[bytes]] = {}  # servers this process started


class StackError(RuntimeError):
    """The stack cannot be brought up or down as asked: one line that says why."""


@dataclass(frozen=True)
class StackConfig:
    """What `stack.env` records: the password and the two ports."""

    password: str
    pg_port: int
    mlflow_port: int

    def database_url(self, database: str, driver: str = "postgresql") -> str:
        return f"{driver}://{USER}:{self.password}@{HOST}:{self.pg_port}/{database}"

    @property
    def tracking_uri(self) -> str:
        return f"http://{HOST}:{self.mlflow_port}"

    def settings_env(self) -> dict[str, str]:
        """The SALESCAST_* variables that point salescast at this stack."""
        return {"SALESCAST_TRACKING_URI": self.tracking_uri,
                "SALESCAST_OPTUNA_STORAGE": self.database_url("optuna"),
                "SALESCAST_STORE_URL": self.database_url("salescast")}


@dataclass
class Stack:
    """A running stack: its folder, its settings and what this call started."""

    folder: Path
    config: StackConfig
    started: list[str] = field(default_factory=list)

    @property
    def tracking_uri(self) -> str:
        return self.config.tracking_uri

    @property
    def optuna_storage(self) -> str:
        return self.config.database_url("optuna")

    @property
    def store_url(self) -> str:
        return self.config.database_url("salescast")

    def new_database(self, name: str) -> str:
        """The URL of a new, empty database ``name`` on the stack's server (for a test
        of its own); a StackError if ``name`` exists already."""
        if not _create_databases(self.config, [name]):
            raise StackError(f"database {name!r} exists already on {self.config.pg_port}")
        return self.config.database_url(name)


# ---- where PostgreSQL is and who runs it -------------------------------------------

def _has_server(bindir: Path) -> bool:
    return all((bindir / name).is_file() for name in ("initdb", "pg_ctl", "postgres"))


def _pg_config_bindir() -> list[Path]:
    if not (pg_config := shutil.which("pg_config")):
        return []
    done = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True)
    return [Path(done.stdout.strip())] if done.returncode == 0 and done.stdout.strip() else []


def _debian_bindirs() -> list[Path]:
    """/usr/lib/postgresql/<major>/bin, the highest version first."""
    found = Path("/usr/lib/postgresql").glob("*/bin")
    versions = [(int(p.parent.name), p) for p in found if p.parent.name.isdigit()]
    return [p for _, p in sorted(versions, reverse=True)]


def find_pg_bindir() -> Path:
    """The folder of initdb, pg_ctl and postgres: ``pg_config --bindir`` (libpq-dev's
    pg_config may name a folder without the server), else the highest Debian version,
    else PATH."""
    on_path = [Path(p).resolve().parent for p in [shutil.which("initdb")] if p]
    for bindir in [*_pg_config_bindir(), *_debian_bindirs(), *on_path]:
        if _has_server(bindir):
            return bindir
    raise StackError(f"PostgreSQL server binaries (initdb, pg_ctl, postgres) not found: "
                     f"{INSTALL_HINT}")


def _server_user() -> str | None:
    """Who runs initdb / pg_ctl: the ``postgres`` user when we are root, else us."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise StackError("PostgreSQL refuses to run as root and there is no `postgres` "
                         f"user to run it: {INSTALL_HINT}") from None
    return "postgres"


def _give(path: Path, user: str | None) -> None:
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(path, entry.pw_uid, entry.pw_gid)


def _require_traversable(folder: Path, user: str | None) -> None:
    """Every parent of ``folder`` must let the server user in (``x`` for others)."""
    if user is None:
        return
    for parent in folder.parents:
        if not parent.stat().st_mode & stat.S_IXOTH:
            raise StackError(f"{parent} is closed to the `{user}` user that runs PostgreSQL "
                             f"(no x permission for others): use a --dir elsewhere or "
                             f"`chmod o+x {parent}`")


def _pg(bindir: Path, user: str | None, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(bindir / args[0]), *args[1:]], user=user, cwd=cwd,
                          capture_output=True, text=True, stdin=subprocess.DEVNULL)


def _tail(path: Path, lines: int = 5) -> str:
    text = path.read_text(errors="replace") if path.exists() else ""
    return " | ".join(line.strip() for line in text.splitlines()[-lines:])


# ---- stack.env ----------------------------------------------------------------------

def _env_file(folder: Path) -> Path:
    return folder / "stack.env"


def _write_env(folder: Path, config: StackConfig) -> None:
    """``export`` lines, written 0600 from the start (atomically replaced)."""
    lines = [f"# salescast stack in {folder}: `source` this file; stop it with "
             f"`salescast stack down --dir {shlex.quote(str(folder))}`"]
    lines += [f"export {k}={shlex.quote(v)}" for k, v in config.settings_env().items()]
    partial = folder / "stack.env.partial"
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as out:
        out.write("\n".join(lines) + "\n")
    os.replace(partial, _env_file(folder))


def settings_env(folder: Path) -> dict[str, str]:
    """The variables ``<folder>/stack.env`` exports."""
    path = _env_file(folder)
    if not path.is_file():
        raise StackError(f"no stack in {folder} (no stack.env): `salescast stack up --dir "
                         f"{folder}` first")
    found: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if line.startswith("export ") and "=" in line:
            name, value = line.removeprefix("export ").split("=", 1)
            found[name] = shlex.split(value)[0] if value else ""
    return found


def read_config(folder: Path) -> StackConfig:
    env = settings_env(folder)
    try:
        store = urlsplit(env["SALESCAST_OPTUNA_STORAGE"])
        tracking = urlsplit(env["SALESCAST_TRACKING_URI"])
        return StackConfig(str(store.password), int(store.port or 0), int(tracking.port or 0))
    except (KeyError, ValueError) as exc:
        raise StackError(f"{_env_file(folder)} is not a salescast stack.env ({exc})") from None


def _config(folder: Path, pg_port: int, mlflow_port: int) -> StackConfig:
    """The folder's recorded settings, or new ones (a fresh password, free ports)."""
    if _env_file(folder).exists():
        config = read_config(folder)
        if (pg_port, mlflow_port) != (0, 0) and (pg_port, mlflow_port) != (
                config.pg_port, config.mlflow_port):
            log.warning("the stack in %s keeps its ports %d and %d", folder, config.pg_port,
                        config.mlflow_port)
        return config
    from experiments.traffic import free_port

    pg_port = pg_port or free_port()
    mlflow_port = mlflow_port or free_port()
    while mlflow_port == pg_port:
        mlflow_port = free_port()
    config = StackConfig(secrets.token_urlsafe(24), pg_port, mlflow_port)
    _write_env(folder, config)
    return config


# ---- PostgreSQL ---------------------------------------------------------------------

def _prepare_folder(folder: Path, user: str | None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    _require_traversable(folder, user)
    folder.chmod(0o711 if user else 0o700)  # the server user may pass, not list
    for name in ("pgdata", "run"):
        (folder / name).mkdir(mode=0o700, exist_ok=True)
        _give(folder / name, user)
    (folder / "postgres.log").touch(mode=0o600)
    _give(folder / "postgres.log", user)
    (folder / "artifacts").mkdir(exist_ok=True)


def _initdb(folder: Path, config: StackConfig, bindir: Path, user: str | None,
            durable: bool) -> None:
    """A new cluster: superuser ``salescast`` with the password, scram-sha-256 everywhere,
    then listening on 127.0.0.1:<port> and a socket inside the folder. Not ``durable``
    (the tests' throw-away stacks): no fsync at all (initdb and every commit)."""
    socket = folder / "run" / f".s.PGSQL.{config.pg_port}"
    if len(str(socket)) > SOCKET_PATH_MAX:
        raise StackError(f"{folder} is too deep for PostgreSQL's unix socket ({socket}): "
                         "use a shorter --dir")
    pwfile = folder / "pwfile"
    descriptor = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as out:
        out.write(config.password + "\n")
    _give(pwfile, user)
    try:
        done = _pg(bindir, user, "initdb", "-D", str(folder / "pgdata"), "-U", USER,
                   f"--pwfile={pwfile}", "--auth-local=scram-sha-256",
                   "--auth-host=scram-sha-256", "-E", "UTF8", "--no-locale",
                   *([] if durable else ["--no-sync"]), cwd=folder)
    finally:
        pwfile.unlink(missing_ok=True)
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
        raise StackError(f"initdb failed in {folder / 'pgdata'}: {reason}")
    lines = [f"listen_addresses = '{HOST}'", f"port = {config.pg_port}",
             f"unix_socket_directories = '{folder / 'run'}'"]
    if not durable:
        lines += ["fsync = off", "synchronous_commit = off", "full_page_writes = off"]
    with (folder / "pgdata" / "postgresql.conf").open("a") as conf:
        conf.write("\n# salescast stack\n" + "\n".join(lines) + "\n")


def _postgres_running(folder: Path, bindir: Path, user: str | None) -> bool:
    if not (folder / "pgdata" / "PG_VERSION").exists():
        return False
    return _pg(bindir, user, "pg_ctl", "status", "-D", str(folder / "pgdata"),
               cwd=folder).returncode == 0


def _start_postgres(folder: Path, bindir: Path, user: str | None) -> None:
    done = _pg(bindir, user, "pg_ctl", "-D", str(folder / "pgdata"), "-w", "-t", "60",
               "-l", str(folder / "postgres.log"), "start", cwd=folder)
    if done.returncode != 0:
        raise StackError(f"PostgreSQL did not start: {_tail(folder / 'postgres.log')} "
                         f"(see {folder / 'postgres.log'})")


def _create_databases(config: StackConfig, names: list[str] | tuple[str, ...]) -> list[str]:
    """Create the databases that do not exist yet; the names created."""
    import psycopg
    from psycopg import sql

    for name in names:
        if not _NAME.match(name):
            raise StackError(f"database name {name!r}: use lower-case letters, digits and _")
    try:
        with psycopg.connect(config.database_url("postgres"), autocommit=True,
                             connect_timeout=10) as conn:
            present = {row[0] for row in conn.execute("SELECT datname FROM pg_database")}
            missing = [n for n in names if n not in present]
            for name in missing:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    except psycopg.Error as exc:
        raise StackError(f"cannot create databases on {HOST}:{config.pg_port}: "
                         f"{str(exc).strip().splitlines()[0]}") from exc
    return missing


# ---- mlflow server ------------------------------------------------------------------

def _read_pid(folder: Path) -> int | None:
    try:
        return int((folder / "mlflow.pid").read_text().strip())
    except (OSError, ValueError):
        return None


def _is_mlflow(pid: int) -> bool:
    """The pid runs `mlflow server` (not a process that reused the number), and lives."""
    child = _children.get(pid)
    if child is not None and child.poll() is not None:
        return False
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"mlflow" in command and b"server" in command


def _start_mlflow(folder: Path, config: StackConfig, workers: int) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "mlflow", "server",
               "--artifacts-destination", str(folder / "artifacts"),
               "--host", HOST, "--port", str(config.mlflow_port), "--workers", str(workers)]
    env = os.environ | SERVER_ENV | {
        "MLFLOW_BACKEND_STORE_URI": config.database_url("mlflow", "postgresql+psycopg")}
    with (folder / "mlflow.log").open("ab") as log_file:
        process = subprocess.Popen(command, cwd=folder, env=env, stdin=subprocess.DEVNULL,
                                   stdout=log_file, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    _children[process.pid] = process
    (folder / "mlflow.pid").write_text(f"{process.pid}\n")
    return process


def _wait_for_mlflow(folder: Path, config: StackConfig, process: subprocess.Popen[bytes],
                     timeout: float) -> None:
    """Until /health answers (a fresh database's migrations take a while)."""
    from experiments.traffic import wait_for_http

    log_path = folder / "mlflow.log"
    try:
        wait_for_http(f"{config.tracking_uri}/health", process, timeout,
                      lambda: f"Last lines of {log_path}: {_tail(log_path)}")
    except RuntimeError as exc:
        _stop_mlflow(folder)
        raise StackError(f"mlflow server did not come up: {exc}") from None


def _group_alive(pgid: int) -> bool:
    child = _children.get(pgid)
    if child is not None:
        child.poll()  # reap our own child, or its zombie keeps the group "alive"
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _signal_group(pgid: int, signum: int, timeout: float) -> bool:
    """Send ``signum`` to the process group; True when it is gone within ``timeout``."""
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        return True
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _group_alive(pgid):
            return True
        time.sleep(0.1)
    return False


def _stop_mlflow(folder: Path, timeout: float = 20.0) -> bool:
    """SIGTERM to the server's process group, SIGKILL after ``timeout``; True if it ran."""
    pid = _read_pid(folder)
    running = pid is not None and _is_mlflow(pid)
    if pid is not None and running and not _signal_group(pid, signal.SIGTERM, timeout):
        log.warning("mlflow server (process group %d) ignored SIGTERM: killing it", pid)
        _signal_group(pid, signal.SIGKILL, 10)
    if pid is not None:
        _children.pop(pid, None)
    (folder / "mlflow.pid").unlink(missing_ok=True)
    return running


# ---- the commands -------------------------------------------------------------------

def up(folder: Path = DEFAULT_DIR, pg_port: int = 0, mlflow_port: int = 0, workers: int = 2,
       timeout: float = 120.0, durable: bool = True) -> Stack:
    """Bring the stack in ``folder`` up (or find it running); ports 0 = free ones;
    ``durable=False`` for a throw-away cluster without fsync (tests)."""
    stack = up_postgres(folder, pg_port, mlflow_port, durable)
    pid = _read_pid(stack.folder)
    if pid is None or not _is_mlflow(pid):
        process = _start_mlflow(stack.folder, stack.config, workers)
        _wait_for_mlflow(stack.folder, stack.config, process, timeout)
        stack.started.append(f"mlflow server on {stack.tracking_uri}")
    return stack


def up_postgres(folder: Path = DEFAULT_DIR, pg_port: int = 0, mlflow_port: int = 0,
                durable: bool = True) -> Stack:
    """The PostgreSQL half of :func:`up` (its databases created): what a test of the
    database alone needs, without mlflow server's start-up time."""
    folder = folder.resolve()
    bindir, user = find_pg_bindir(), _server_user()
    _prepare_folder(folder, user)
    stack = Stack(folder, _config(folder, pg_port, mlflow_port))
    if not _postgres_running(folder, bindir, user):
        if not (folder / "pgdata" / "PG_VERSION").exists():
            _initdb(folder, stack.config, bindir, user, durable)
        _start_postgres(folder, bindir, user)
        stack.started.append(f"postgres on {HOST}:{stack.config.pg_port}")
    _create_databases(stack.config, DATABASES)
    return stack


def down(folder: Path = DEFAULT_DIR, purge: bool = False) -> list[str]:
    """Stop what ``up`` started in ``folder``; what was stopped (empty: nothing ran).
    ``purge`` then removes the folder (only a stack's folder)."""
    folder = folder.resolve()
    if not folder.is_dir():
        return []
    stopped = ["mlflow server"] if _stop_mlflow(folder) else []
    if (folder / "pgdata" / "PG_VERSION").exists() and _stop_postgres(folder):
        stopped.append("postgres")
    if purge:
        _purge(folder)
    return stopped


def _stop_postgres(folder: Path, timeout: float = 30.0) -> bool:
    """``pg_ctl -m fast stop``, then until the postmaster has exited; True if it ran."""
    bindir, user = find_pg_bindir(), _server_user()
    if not _postgres_running(folder, bindir, user):
        return False
    pid = int((folder / "pgdata" / "postmaster.pid").read_text().split()[0])
    done = _pg(bindir, user, "pg_ctl", "-D", str(folder / "pgdata"), "-m", "fast", "-w",
               "-t", str(int(timeout)), "stop", cwd=folder)
    if done.returncode != 0:
        raise StackError(f"pg_ctl stop failed: {done.stderr.strip()}")
    deadline = time.monotonic() + timeout  # pg_ctl returns once postmaster.pid is gone
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return True


def _purge(folder: Path) -> None:
    if not (_env_file(folder).exists() or (folder / "pgdata").exists()):
        raise StackError(f"{folder} does not look like a stack folder (no stack.env, no "
                         "pgdata): not removing it")
    shutil.rmtree(folder)


def env_text(folder: Path = DEFAULT_DIR) -> str:
    """The ``export`` lines of the stack's settings (what `stack env` prints)."""
    settings_env(folder.resolve())  # a clear error when there is no stack
    return "\n".join(line for line in _env_file(folder.resolve()).read_text().splitlines()
                     if line.startswith("export "))
