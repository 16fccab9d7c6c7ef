"""Benchmark: salescast's /v1/forecast against `mlflow models serve` on the same champion.

    python bench/serving.py [--model demo|toy] [--duration 10] [--connections 1 8]

``demo`` trains the retail demo spec (LightGBM, one Optuna trial) into a temporary MLflow
store and serves the version it registers; ``toy`` reuses the serving tests' tiny model
(seconds instead of minutes). Both servers run one uvicorn worker without access log and
answer the same requests: one series x 8 periods, and a 1,000-row batch. wrk drives them
when installed (`apt-get install wrk`), else an asyncio httpx client. Prediction logging
stays on for salescast; the rows it wrote and dropped are printed at the end.

Target: at 8 connections /v1/forecast serves >= 3x the requests/s of `mlflow models
serve` with <= 1/3 of its p99 latency. The machine is shared: the load average is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from experiments.traffic import free_port, wait_for_http  # noqa: E402

log = logging.getLogger("bench.serving")
BATCH_ROWS = 1000
WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = io.open("{body}", "rb"); wrk.body = f:read("*all"); f:close()
done = function(summary, latency, requests)
  io.write(string.format('RESULT {{"requests": %d, "seconds": %f, "p50_us": %d, "p99_us": %d, '
    .. '"non2xx": %d}}\\n', summary.requests, summary.duration / 1e6, latency:percentile(50),
    latency:percentile(99), summary.errors.status))
end
"""


@dataclass(frozen=True)
class Champion:
    tracking_uri: str
    name: str
    version: str


@dataclass(frozen=True)
class Case:
    """The same forecast asked of both servers."""

    name: str
    ours: bytes  # body for POST /v1/forecast
    theirs: bytes  # body for POST /invocations


@dataclass(frozen=True)
class Measurement:
    requests: int
    rps: float
    p50_ms: float
    p99_ms: float
    non2xx: int


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=["demo", "toy"], default="demo")
    parser.add_argument("--duration", type=float, default=10.0, help="Seconds per run.")
    parser.add_argument("--connections", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--workdir", type=Path, default=None, help="Default: a temp dir.")
    return parser.parse_args()


def register_demo_champion(workdir: Path) -> Champion:
    """Train the retail demo spec (LightGBM, 1 trial) and return the version to serve."""
    from experiments.settings import Settings
    from experiments.spec import load_spec
    from experiments.training_job import run_training

    os.chdir(workdir)  # the spec's data paths are relative: the simulator writes them here
    settings = Settings(tracking_uri=f"sqlite:///{workdir / 'mlflow.db'}",
                        optuna_storage=f"sqlite:///{workdir / 'optuna.db'}",
                        artifact_location=(workdir / "mlartifacts").as_uri())
    spec = load_spec(REPO / "experiments" / "retail_demo.yaml")
    outcome = run_training(spec, settings, families=["lightgbm"], trials=1)
    version = outcome.versions["lightgbm"]
    _point_champion_at(settings.tracking_uri, spec.registered_model_name, version)
    return Champion(settings.tracking_uri, spec.registered_model_name, version)


def _point_champion_at(tracking_uri: str, name: str, version: str) -> None:
    """Serve the LightGBM version even if the promotion rule kept another champion."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri, registry_uri=tracking_uri)
    current = client.get_registered_model(name).aliases.get("champion")
    if str(current) != version:
        log.info("pointing @champion at v%s (the promotion rule chose %s)", version, current)
        client.set_registered_model_alias(name, "champion", version)


def register_toy_champion(workdir: Path) -> Champion:
    """The serving tests' toy model (4 series, horizon 4), registered as @champion."""
    from mlflow import MlflowClient

    from tests.serving.conftest import MlflowStore, register_toy

    uri = f"sqlite:///{workdir / 'mlflow.db'}"
    experiment = MlflowClient(uri, registry_uri=uri).create_experiment(
        "bench", artifact_location=(workdir / "mlartifacts").as_uri())
    registered = register_toy(MlflowStore(uri, experiment), "toy", offset=0.0)
    return Champion(uri, registered.name, registered.version)


def subprocess_env(champion: Champion, workdir: Path) -> dict[str, str]:
    venv_bin = str(Path(sys.executable).parent)  # mlflow starts `uvicorn` by name
    return os.environ | {
        "PATH": f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": str(REPO),
        "MLFLOW_TRACKING_URI": champion.tracking_uri,
        "UVICORN_ACCESS_LOG": "false",  # mlflow's uvicorn: no access log, like ours
        "SALESCAST_TRACKING_URI": champion.tracking_uri,
        "SALESCAST_STORE_URL": f"sqlite:///{workdir / 'predictions.db'}",
        "SALESCAST_LOCAL_MODEL_DIR": str(workdir / "champion"),
        "SALESCAST_POLL_SECONDS": "0",
    }


def start_salescast(champion: Champion, workdir: Path, port: int) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "experiments.commands_serve", "--port", str(port),
               "--model-name", champion.name, "--workers", "1"]
    return _spawn(command, champion, workdir, "salescast.log")


def start_mlflow(champion: Champion, workdir: Path, port: int) -> subprocess.Popen[bytes]:
    mlflow = str(Path(sys.executable).parent / "mlflow")
    command = [mlflow, "models", "serve", "-m", f"models:/{champion.name}@champion",
               "--env-manager", "local", "-p", str(port), "-h", "127.0.0.1"]
    return _spawn(command, champion, workdir, "mlflow.log")


def _spawn(command: list[str], champion: Champion, workdir: Path,
           log_name: str) -> subprocess.Popen[bytes]:
    logfile = (workdir / log_name).open("wb")
    return subprocess.Popen(command, cwd=workdir, env=subprocess_env(champion, workdir),
                            stdout=logfile, stderr=subprocess.STDOUT, start_new_session=True)


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server's process group (mlflow runs uvicorn as a child)."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def build_cases(model: dict[str, Any]) -> list[Case]:
    """One series x 8 periods (or the model's horizon), and a 1,000-row batch."""
    dates, series = model["forecastable_dates"], model["series_ids"]
    single = [(series[0], d) for d in dates[:8]]
    cells = [(s, d) for s in series for d in dates]
    batch = [cells[i % len(cells)] for i in range(BATCH_ROWS)]
    return [
        Case(f"1 series x {len(single)}",
             json.dumps({"series": [{"series_id": series[0]}], "horizon": len(single)}).encode(),
             _split(single)),
        Case(f"{BATCH_ROWS}-row batch",
             json.dumps({"rows": [{"series_id": s, "ds": d} for s, d in batch]}).encode(),
             _split(batch)),
    ]


def _split(rows: list[tuple[str, str]]) -> bytes:
    payload = {"dataframe_split": {"columns": ["series_id", "ds"], "data": rows}}
    return json.dumps(payload).encode()


def check_same_answers(case: Case, ours_url: str, mlflow_url: str) -> None:
    """Both servers must give the same numbers before their speed means anything."""
    headers = {"content-type": "application/json"}
    ours = httpx.post(ours_url, content=case.ours, headers=headers, timeout=60).json()
    theirs = httpx.post(mlflow_url, content=case.theirs, headers=headers, timeout=60).json()
    ours_yhat = [row["yhat"] for row in ours["forecasts"]]
    theirs_yhat = [row["yhat"] for row in theirs["predictions"]]
    if ours_yhat != theirs_yhat:
        raise RuntimeError(f"{case.name}: the two servers disagree")


def run_wrk(url: str, body: bytes, connections: int, seconds: float, workdir: Path) -> Measurement:
    body_file = workdir / f"body-{abs(hash(body))}.json"
    body_file.write_bytes(body)
    script = workdir / "post.lua"
    script.write_text(WRK_SCRIPT.format(body=body_file))
    threads = str(min(connections, os.cpu_count() or 1))
    command = ["wrk", "-t", threads, "-c", str(connections), "-d", f"{max(1, round(seconds))}s",
               "--timeout", "30s", "-s", str(script), url]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed: {done.stderr or done.stdout}")
    output = done.stdout
    match = re.search(r"^RESULT (.*)$", output, re.MULTILINE)
    if match is None:
        raise RuntimeError(f"unexpected wrk output:\n{output}")
    result = json.loads(match[1])
    return Measurement(result["requests"], result["requests"] / result["seconds"],
                       result["p50_us"] / 1000, result["p99_us"] / 1000, result["non2xx"])


async def _client_loop(client: httpx.AsyncClient, url: str, body: bytes, until: float,
                       latencies: list[float], failures: list[int]) -> None:
    headers = {"content-type": "application/json"}
    while time.perf_counter() < until:
        started = time.perf_counter()
        response = await client.post(url, content=body, headers=headers)
        latencies.append(time.perf_counter() - started)
        failures.append(int(response.status_code != 200))


async def _run_httpx(url: str, body: bytes, connections: int, seconds: float) -> Measurement:
    latencies: list[float] = []
    failures: list[int] = []
    limits = httpx.Limits(max_connections=connections)
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:
        started = time.perf_counter()
        until = started + seconds
        await asyncio.gather(*(_client_loop(client, url, body, until, latencies, failures)
                               for _ in range(connections)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    p50, p99 = (latencies[int(q * (len(latencies) - 1))] * 1000 for q in (0.5, 0.99))
    return Measurement(len(latencies), len(latencies) / elapsed, p50, p99, sum(failures))


def measure(url: str, body: bytes, connections: int, seconds: float, workdir: Path) -> Measurement:
    """Warm up for 2 s, then measure for ``seconds``."""
    if shutil.which("wrk"):
        run_wrk(url, body, connections, 2.0, workdir)
        return run_wrk(url, body, connections, seconds, workdir)
    asyncio.run(_run_httpx(url, body, connections, 2.0))
    return asyncio.run(_run_httpx(url, body, connections, seconds))


def print_table(rows: list[tuple[Case, int, Measurement, Measurement, float]]) -> None:
    """Side by side; 'logged' = share of salescast's answered rows in the prediction log."""
    print(f"{'request':<18}{'conns':>6} | {'salescast rps':>13}{'p50 ms':>8}{'p99 ms':>8}"
          f"{'logged':>8} | {'mlflow rps':>10}{'p50 ms':>8}{'p99 ms':>8} | {'rps x':>6}"
          f"{'p99 /':>7}")
    for case, connections, ours, theirs, logged in rows:
        print(f"{case.name:<18}{connections:>6} | {ours.rps:>13.0f}{ours.p50_ms:>8.1f}"
              f"{ours.p99_ms:>8.1f}{logged:>8.0%} | {theirs.rps:>10.0f}{theirs.p50_ms:>8.1f}"
              f"{theirs.p99_ms:>8.1f} | {ours.rps / theirs.rps:>6.1f}"
              f"{ours.p99_ms / theirs.p99_ms:>7.2f}")


def log_counts(ours_base: str) -> tuple[float, float]:
    """Prediction-log rows written and dropped so far (from /metrics)."""
    text = httpx.get(f"{ours_base}/metrics").text
    found = [re.search(rf"^{name} (\S+)$", text, re.MULTILINE) for name in
             ("salescast_predictions_logged_total", "salescast_prediction_log_dropped")]
    return tuple(float(m[1]) if m else 0.0 for m in found)  # type: ignore[return-value]


def logged_share(ours_base: str, before: tuple[float, float], timeout: float = 120) -> float:
    """Wait until the log's writer has caught up, then the share of rows it wrote."""
    deadline, last = time.monotonic() + timeout, before
    while time.monotonic() < deadline:
        time.sleep(1.0)
        now = log_counts(ours_base)
        if now == last:
            break
        last = now
    written, dropped = last[0] - before[0], last[1] - before[1]
    return written / max(written + dropped, 1.0)


def measure_ours(ours_base: str, case: Case, connections: int, args: argparse.Namespace,
                 workdir: Path) -> tuple[Measurement, float]:
    """salescast's figures for one run, and the share of its rows the log kept."""
    before = log_counts(ours_base)
    ours = measure(f"{ours_base}/v1/forecast", case.ours, connections, args.duration, workdir)
    return ours, logged_share(ours_base, before)


def benchmark(champion: Champion, workdir: Path, args: argparse.Namespace) -> None:
    ours_port, theirs_port = free_port(), free_port()
    ours_base, theirs_base = f"http://127.0.0.1:{ours_port}", f"http://127.0.0.1:{theirs_port}"
    servers = [start_salescast(champion, workdir, ours_port),
               start_mlflow(champion, workdir, theirs_port)]
    try:
        wait_for_http(f"{ours_base}/readyz", servers[0], 180)
        wait_for_http(f"{theirs_base}/ping", servers[1], 180)
        cases = build_cases(httpx.get(f"{ours_base}/v1/model").json())
        rows = []
        for case in cases:
            check_same_answers(case, f"{ours_base}/v1/forecast", f"{theirs_base}/invocations")
            for connections in args.connections:
                ours, logged = measure_ours(ours_base, case, connections, args, workdir)
                theirs = measure(f"{theirs_base}/invocations", case.theirs, connections,
                                 args.duration, workdir)
                rows.append((case, connections, ours, theirs, logged))
        print_table(rows)
        failed = sum(m.non2xx for _, _, a, b, _ in rows for m in (a, b))
        print(f"non-2xx responses: {failed}")
    finally:
        for server in servers:
            stop(server)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    for noisy in ("mlflow", "alembic", "optuna", "httpx", "lightgbm"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    args = parse_args()
    workdir = (args.workdir or Path(tempfile.mkdtemp(prefix="bench-serving-"))).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    register = register_demo_champion if args.model == "demo" else register_toy_champion
    champion = register(workdir)
    log.info("champion %s v%s registered in %.0fs", champion.name, champion.version,
             time.perf_counter() - started)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"model {args.model}: {champion.name} v{champion.version}; {os.cpu_count()} cores, "
          f"load average {load}; driver: {'wrk' if shutil.which('wrk') else 'httpx'}")
    benchmark(champion, workdir, args)


if __name__ == "__main__":
    main()
