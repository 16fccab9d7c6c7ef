"""The joiner processes `salescast train --workers N` starts on this machine.

The leader of a training run (plain ``salescast train``) can tune with N-1 more processes
on this machine: each is ``salescast train --spec <the leader's spec> --join <parent run
id>`` (:mod:`experiments.join_job`), a tuning-only worker sharing the run's trial budget
through the Optuna storage (:mod:`training.trial_groups`). This module only starts,
watches and stops them: the spec they get is the leader's validated spec written to a
temporary file (the same spec hash, even if the file changed since), their settings the
leader's (as ``SALESCAST_*`` variables over its environment), their output goes to the
leader's stderr (its stdout stays the leaderboard).

Every path stops them: when the leader succeeds they have normally exited already (each
exits once every family's budget is used), the rest get ``grace`` seconds, then SIGINT
(their running trial is told FAIL), then SIGKILL; when it fails or is interrupted they get
SIGINT at once. A joiner that fails is logged as a warning; the leader goes on with its
own trials.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

log = logging.getLogger(__name__)

SUCCESS_GRACE = 30.0  # seconds a joiner gets to exit by itself once the leader is done
STOP_GRACE = 10.0  # seconds between SIGINT and SIGKILL
SETTINGS_ENV = ("tracking_uri", "registry_uri", "optuna_storage", "artifact_location",
                "n_jobs")  # what a joiner needs of the leader's settings


class WorkersError(ValueError):
    """Several workers cannot share this run (settings, run id): the message says why."""


def is_shared_storage(storage_url: str | None) -> bool:
    """Whether other processes can open this Optuna storage (not none, not in-memory)."""
    return bool(storage_url) and not _in_memory(str(storage_url))


def require_shared_storage(storage_url: str | None, option: str) -> None:
    """Refuse an Optuna storage other processes cannot open: none, or in-memory SQLite."""
    if is_shared_storage(storage_url):
        return
    raise WorkersError(
        f"{option} needs an Optuna storage every worker opens (SALESCAST_OPTUNA_STORAGE="
        f"sqlite:///optuna.db on one machine, postgresql://... across machines); got "
        f"{storage_url or 'none'!r}, which lives in one process only")


def _in_memory(storage_url: str) -> bool:
    from sqlalchemy.engine import make_url

    url = make_url(storage_url)
    if url.get_backend_name() != "sqlite":
        return False
    return url.database in (None, "", ":memory:") or url.query.get("mode") == "memory"


def settings_env(settings: Any) -> dict[str, str]:
    """The ``SALESCAST_*`` variables that give a joiner the leader's settings."""
    values = {name: getattr(settings, name, None) for name in SETTINGS_ENV}
    return {f"SALESCAST_{k.upper()}": str(v) for k, v in values.items() if v is not None}


@dataclass
class LocalWorkers:
    """The joiner processes of one run; :meth:`check` warns about those that failed."""

    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    interrupted: set[int] = field(default_factory=set)  # pids stopped by us, not failed
    reported: set[int] = field(default_factory=set)

    def check(self) -> None:
        """A warning (once each) for every joiner that exited with an error."""
        for process in self.processes:
            code = process.poll()
            if code in (None, 0) or process.pid in self.interrupted | self.reported:
                continue
            self.reported.add(process.pid)
            log.warning("local tuning worker (pid %d) exited with code %s; going on with the "
                        "other workers' trials", process.pid, code)

    def stop(self, grace: float) -> None:
        """Wait ``grace`` s for each to exit, then SIGINT, then SIGKILL after STOP_GRACE."""
        try:
            for process in self.processes:
                _wait(process, grace)
            running = [p for p in self.processes if p.poll() is None]
            for process in running:
                self.interrupted.add(process.pid)
                process.send_signal(signal.SIGINT)
            for process in running:
                _wait(process, STOP_GRACE)
        finally:
            for process in self.processes:
                if process.poll() is None:
                    process.kill()
                    process.wait()
        if self.interrupted:
            log.info("stopped %d local tuning worker(s) still running", len(self.interrupted))


def _wait(process: subprocess.Popen[bytes], seconds: float) -> None:
    with suppress(subprocess.TimeoutExpired):
        process.wait(timeout=seconds)


def joiner_command(spec_file: Path, run_id: str, options: list[str]) -> list[str]:
    """``salescast train --spec F --join RUN_ID [options]`` with this interpreter."""
    verbose = ["-v"] if logging.getLogger().isEnabledFor(logging.DEBUG) else []
    return [sys.executable, "-m", "experiments.cli", *verbose, "train", "--spec",
            str(spec_file), "--join", run_id, *options]


def joiner_options(families: list[str], trials: int | None, timeout: float | None,
                   n_jobs: int | None) -> list[str]:
    """The leader's command-line options, as its local joiners repeat them."""
    options = ["--families", ",".join(families)]
    for flag, value in (("--trials", trials), ("--timeout", timeout), ("--n-jobs", n_jobs)):
        if value is not None:
            options += [flag, str(value)]
    return options


@contextmanager
def local_workers(count: int, spec: dict[str, Any], run_id: str, options: list[str],
                  env: dict[str, str]) -> Iterator[LocalWorkers]:
    """``count`` joiners of ``run_id`` running while the block runs, stopped after it;
    ``env`` (e.g. :func:`settings_env`) overrides this process's environment for them."""
    workers = LocalWorkers()
    if count < 1:
        yield workers
        return
    with tempfile.TemporaryDirectory(prefix="salescast-join-") as folder:
        spec_file = Path(folder) / "spec.yaml"
        spec_file.write_text(yaml.safe_dump(spec, sort_keys=False))
        command, environment = joiner_command(spec_file, run_id, options), {**os.environ, **env}
        succeeded = False
        try:
            for _ in range(count):
                workers.processes.append(subprocess.Popen(command, env=environment,
                                                           stdout=2))
            log.info("started %d local tuning worker(s): pids %s", count,
                     ", ".join(str(p.pid) for p in workers.processes))
            yield workers
            succeeded = True
        finally:
            workers.stop(SUCCESS_GRACE if succeeded else 0.0)
            workers.check()
