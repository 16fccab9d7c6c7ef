"""The demo's application side: run the API as a real process and talk to it over HTTP.

`ApiProcess` starts `salescast serve` on a free loopback port with the settings passed
through the ``SALESCAST_*`` environment, waits for `/readyz`, and stops it with SIGINT
(uvicorn's clean shutdown, which flushes the prediction log). `simulate_application`
plays a sales-planning application for some weeks: every Monday it asks for the next
``horizon`` weeks of every series (with the week's planned price and promotion as the
scenario), and at the end of the week it posts the realised sales back, with the price and
promotion the week really had — which moves each series' forecast origin to that week, so
next Monday's forecast starts from it.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pandas as pd

log = logging.getLogger(__name__)


def wait_for_http(
    url: str, process: subprocess.Popen[bytes], timeout: float,
    describe_exit: Callable[[], str] = lambda: "",
) -> None:
    """Poll ``url`` until it answers 200; raise RuntimeError if ``process`` exits first
    (with ``describe_exit()``, e.g. the tail of its log) or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args} exited with {process.returncode}. "
                               f"{describe_exit()}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s. {describe_exit()}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ApiProcess:
    """`salescast serve` as a child process on 127.0.0.1."""

    env: dict[str, str]
    cwd: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 90.0) -> None:
        command = [sys.executable, "-m", "experiments.cli", "serve", "--port", str(self.port)]
        with (self.cwd / "api.log").open("ab") as log_file:  # the child keeps its own copy
            self.process = subprocess.Popen(
                command, cwd=self.cwd, env={**os.environ, **self.env},
                stdout=log_file, stderr=subprocess.STDOUT,
            )
        wait_for_http(f"{self.url}/readyz", self.process, timeout,
                      lambda: f"See {self.cwd / 'api.log'}.")

    def stop(self) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        self.process.send_signal(signal.SIGINT)
        try:
            return self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()


@dataclass
class TrafficSummary:
    weeks: list[str]
    forecasts: int
    actuals: int
    model_versions: set[str]
    origins: list[str] = field(default_factory=list)  # the origin each week's answer named
    last_answer: tuple[str, str] = ("", "")  # first and last ds of the last week's forecast


def simulate_application(
    client: httpx.Client, realised: pd.DataFrame, weeks: list[pd.Timestamp],
    exog_columns: list[str], horizon: int, roll_timeout: float = 30.0,
) -> TrafficSummary:
    """Each week: ask ``horizon`` weeks ahead (the planned exog of the week as scenario),
    then post the week's actuals and wait until every series' origin has moved to it."""
    summary = TrafficSummary([w.date().isoformat() for w in weeks], 0, 0, set())
    for week in weeks:
        rows = realised[realised["ds"] == week]
        answer = _forecast_ahead(client, rows, week, exog_columns, horizon)
        summary.forecasts += len(answer["forecasts"])
        summary.model_versions.add(answer["model"]["version"])
        summary.origins.append(min(o["origin"] for o in answer["origins"]))
        summary.last_answer = (answer["forecasts"][0]["ds"], answer["forecasts"][-1]["ds"])
        summary.actuals += _post_actuals(client, rows, exog_columns)
        wait_for_origins(client, week, roll_timeout)
    return summary


def _forecast_ahead(
    client: httpx.Client, rows: pd.DataFrame, week: pd.Timestamp, exog_columns: list[str],
    horizon: int,
) -> dict:
    day = week.date().isoformat()
    scenario = [
        {"series_id": row.series_id, "ds": day,
         "values": {c: float(getattr(row, c)) for c in exog_columns}}
        for row in rows.itertuples()
    ]
    body = {"series": [{"series_id": sid} for sid in rows["series_id"]], "horizon": horizon,
            "scenario": scenario}
    response = client.post("/v1/forecast", json=body)
    response.raise_for_status()
    answer = response.json()
    if answer["forecasts"][0]["ds"] != day:
        raise RuntimeError(f"the forecast asked on {day} starts on "
                           f"{answer['forecasts'][0]['ds']}: the origin did not move")
    return answer


def wait_for_origins(client: httpx.Client, week: pd.Timestamp, timeout: float) -> None:
    """Until every series forecasts from ``week`` (the API rolls off the request path)."""
    deadline, day = time.monotonic() + timeout, week.date().isoformat()
    while time.monotonic() < deadline:
        origins = client.get("/v1/origins").json()["series"]
        if all(o["origin"] >= day for o in origins):
            return
        time.sleep(0.05)
    raise RuntimeError(f"the API did not roll every series to {day} within {timeout:.0f} s")


def _post_actuals(client: httpx.Client, rows: pd.DataFrame, exog_columns: list[str]) -> int:
    """The week's sales, with the promotion and price it really had."""
    body = {"actuals": [
        {"series_id": r.series_id, "ds": r.ds.date().isoformat(), "y": float(r.y),
         "values": {c: float(getattr(r, c)) for c in exog_columns}}
        for r in rows.itertuples()]}
    response = client.post("/v1/actuals", json=body)
    response.raise_for_status()
    return int(response.json()["stored"])
