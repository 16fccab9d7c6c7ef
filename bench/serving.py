"""Benchmark: `salescast serve` against `mlflow models serve`, side by side in one run.

    python bench/serving.py [--duration 10] [--connections 1 8] [--weeks 3]

Trains the retail demo spec (LightGBM, one Optuna trial) into a temporary MLflow store and
serves the version it registers with `salescast serve` (one worker, prediction logging
on). The reference is what a team would otherwise deploy: the same fitted LightGBM booster
logged as a plain `mlflow.lightgbm` model and served by `mlflow models serve` — twice: with
the signature `mlflow.lightgbm.autolog` would give it (MLflow checks every request against
it) and without one (no checks, the fastest way to serve it) — asked for the same number of
feature rows (it computes no features, intervals or origins). All answer the same model's
numbers (checked before timing). Measured:

1. the cached path: 1 series x 8 weeks, and a 1,000-row batch, on /v1/forecast;
2. the model path: a one-series what-if (a promotion in week 2), which calls the model;
3. roll-forward: a week of actuals for every series posted to /v1/actuals, timed until
   /v1/origins shows every series at the new week (``--weeks`` times);
4. memory: the resident set (RSS, its peak, and its private part) of each serving process
   after the runs — and of a second salescast worker that reaches the registry through
   `mlflow server` (HTTP) instead of opening the SQLite store in-process.

Targets (issue 9): at 8 connections the cached path >= 10x a reference's requests/s and
the one-series scenario >= 1x; every forecast rolled forward <= 2 s after the post;
<= 300 MB RSS per salescast worker. wrk drives the load when installed (`apt-get install
wrk`), else an asyncio httpx client. The machine is shared: the load average is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
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
from typing import TYPE_CHECKING, Any

import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from experiments.traffic import free_port, wait_for_http  # noqa: E402

if TYPE_CHECKING:
    from experiments.spec import ExperimentSpec

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
    theirs: bytes  # body for POST /invocations (the reference's feature rows)
    target: float  # our requests/s over the references', at 8 connections


@dataclass(frozen=True)
class Measurement:
    requests: int
    rps: float
    p50_ms: float
    p99_ms: float
    non2xx: int


@dataclass(frozen=True)
class Reference:
    """The plain `mlflow.lightgbm` models, and what they need to answer like the champion:
    one logged with the signature autolog gives it (MLflow checks every request against
    it), one without (no checks: the fastest way to serve it)."""

    model_uris: dict[str, str]  # label -> model URI
    forecaster: Any  # the champion's LightGBM forecaster (to build feature rows)
    series_ids: list[str]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0, help="Seconds per run.")
    parser.add_argument("--connections", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--weeks", type=int, default=3, help="Weeks of actuals to roll in.")
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
    spec = one_booster(load_spec(REPO / "experiments" / "retail_demo.yaml"))
    outcome = run_training(spec, settings, families=["lightgbm"], trials=1)
    version = outcome.versions["lightgbm"]
    _point_champion_at(settings.tracking_uri, spec.registered_model_name, version)
    return Champion(settings.tracking_uri, spec.registered_model_name, version)


def one_booster(spec: ExperimentSpec) -> ExperimentSpec:
    """``spec`` with LightGBM pinned to one direct booster on the row-level target (the
    defaults today): the reference serves exactly one booster, a per-step, recursive or
    hedged (two-model) LightGBM has several."""
    lightgbm = spec.models.lightgbm
    pinned = {**lightgbm.params, "strategy": "direct", "target_scale": "row"}
    models = spec.models.model_copy(
        update={"lightgbm": lightgbm.model_copy(update={"params": pinned})})
    return spec.model_copy(update={"models": models})


def _point_champion_at(tracking_uri: str, name: str, version: str) -> None:
    """Serve the LightGBM version even if the promotion rule kept another champion."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri, registry_uri=tracking_uri)
    current = client.get_registered_model(name).aliases.get("champion")
    if str(current) != version:
        log.info("pointing @champion at v%s (the promotion rule chose %s)", version, current)
        client.set_registered_model_alias(name, "champion", version)


def register_reference(champion: Champion) -> Reference:
    """Log the champion's fitted LightGBM booster as a plain `mlflow.lightgbm` model."""
    import mlflow
    import mlflow.lightgbm
    import mlflow.pyfunc
    import pandas as pd
    from mlflow.models import infer_signature

    mlflow.set_tracking_uri(champion.tracking_uri)
    loaded = mlflow.pyfunc.load_model(f"models:/{champion.name}/{champion.version}")
    forecaster = loaded.unwrap_python_model().forecaster
    booster = forecaster.model_.booster_
    booster.pandas_categorical = None  # it takes the float matrix: keys as category codes
    frame = forecaster.future_features(8)
    matrix, _ = forecaster._matrix(frame, forecaster.features_, forecaster.categories_)
    example = pd.DataFrame(matrix, columns=forecaster.features_)
    signature = infer_signature(example, booster.predict(matrix))  # as autolog logs it
    mlflow.set_experiment("bench-reference")
    uris = {}
    for label, given in (("signature", signature), ("no signature", None)):
        with mlflow.start_run():
            uris[label] = mlflow.lightgbm.log_model(booster, name="model",
                                                    signature=given).model_uri
    series_ids = sorted(str(s) for s in forecaster.origins().index)
    return Reference(uris, forecaster, series_ids)


def reference_rows(reference: Reference, cells: list[tuple[str, int]]) -> tuple[bytes, list]:
    """The reference's request for these (series, step) cells (its feature matrix), and
    the series scale that turns its answers into sales."""
    forecaster = reference.forecaster
    frame = forecaster.future_features(8, series_ids=sorted({s for s, _ in cells}))
    index = {(s, k): i for i, (s, k) in enumerate(zip(frame["series_id"], frame["step"],
                                                       strict=True))}
    picked = frame.iloc[[index[(s, k + 1)] for s, k in cells]]
    matrix, scale = forecaster._matrix(picked, forecaster.features_, forecaster.categories_)
    body = {"dataframe_split": {"columns": list(forecaster.features_), "data": matrix.tolist()}}
    return json.dumps(body).encode(), scale.tolist()


def subprocess_env(champion: Champion, workdir: Path, repo: Path = REPO) -> dict[str, str]:
    """The servers' environment; ``repo``: the source tree they import (another one, e.g. a
    `git worktree` of an older commit, to compare code in the same time window)."""
    venv_bin = str(Path(sys.executable).parent)  # mlflow starts `uvicorn` by name
    return os.environ | {
        "PATH": f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": str(repo),
        "MLFLOW_TRACKING_URI": champion.tracking_uri,
        "UVICORN_ACCESS_LOG": "false",  # mlflow's uvicorn: no access log, like ours
        "SALESCAST_TRACKING_URI": champion.tracking_uri,
        "SALESCAST_STORE_URL": f"sqlite:///{workdir / 'predictions.db'}",
        "SALESCAST_LOCAL_MODEL_DIR": str(workdir / "champion"),
        "SALESCAST_POLL_SECONDS": "0",
    }


def start_salescast(champion: Champion, workdir: Path, port: int,
                    repo: Path = REPO) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "experiments.commands_serve", "--port", str(port),
               "--model-name", champion.name, "--workers", "1"]
    return _spawn(command, champion, workdir, "salescast.log", repo)


def start_mlflow(champion: Champion, model_uri: str, workdir: Path,
                 port: int) -> subprocess.Popen[bytes]:
    mlflow = str(Path(sys.executable).parent / "mlflow")
    command = [mlflow, "models", "serve", "-m", model_uri, "--env-manager", "local",
               "-p", str(port), "-h", "127.0.0.1"]
    return _spawn(command, champion, workdir, "mlflow.log")


def _spawn(command: list[str], champion: Champion, workdir: Path,
           log_name: str, repo: Path = REPO) -> subprocess.Popen[bytes]:
    logfile = (workdir / log_name).open("wb")
    return subprocess.Popen(command, cwd=workdir, env=subprocess_env(champion, workdir, repo),
                            stdout=logfile, stderr=subprocess.STDOUT, start_new_session=True)


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server's process group (mlflow runs uvicorn as a child)."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def build_cases(reference: Reference, origin: str) -> list[Case]:
    """1 series x 8 (cached), a 1,000-row batch (cached), 1 series with a promotion."""
    series = reference.series_ids
    single = [(series[0], k) for k in range(8)]
    cells = [(s, k) for s in series for k in range(8)]
    batch = [cells[i % len(cells)] for i in range(BATCH_ROWS)]
    week = dt.date.fromisoformat(origin)
    ds = {k: (week + dt.timedelta(weeks=k + 1)).isoformat() for k in range(8)}
    scenario = {"series": [{"series_id": series[0]}], "horizon": 8,
                "scenario": [{"ds": ds[1], "values": {"promo": 1}}]}
    return [
        Case("cached: 1 series x 8",
             json.dumps({"series": [{"series_id": series[0]}], "horizon": 8}).encode(),
             reference_rows(reference, single)[0], 10.0),
        Case(f"cached: {BATCH_ROWS:,}-row batch",
             json.dumps({"rows": [{"series_id": s, "ds": ds[k]} for s, k in batch]}).encode(),
             reference_rows(reference, batch)[0], 10.0),
        Case("scenario: 1 series x 8", json.dumps(scenario).encode(),
             reference_rows(reference, single)[0], 1.0),
    ]


def memory_behind_tracking_server(champion: Champion, workdir: Path, cases: list[Case],
                                  args: argparse.Namespace) -> tuple[float, float, float]:
    """RSS of a second salescast worker that reaches the registry through `mlflow server`
    (HTTP, as several workers would share it) instead of opening the SQLite store itself,
    after the same cached and what-if load (figures discarded: memory only)."""
    server_port, api_port = free_port(), free_port()
    mlflow = str(Path(sys.executable).parent / "mlflow")
    tracking = _spawn([mlflow, "server", "--backend-store-uri", champion.tracking_uri,
                       "--host", "127.0.0.1", "--port", str(server_port)],
                      champion, workdir, "mlflow-server.log")
    remote = Champion(f"http://127.0.0.1:{server_port}", champion.name, champion.version)
    (workdir / "http").mkdir(exist_ok=True)
    base, api = f"http://127.0.0.1:{api_port}", None
    try:
        wait_for_http(f"http://127.0.0.1:{server_port}/health", tracking, 120)
        api = start_salescast(remote, workdir / "http", api_port)
        wait_for_http(f"{base}/readyz", api, 180)
        for case in cases:
            measure(f"{base}/v1/forecast", case.ours, 8, args.duration, workdir)
        return resident_mb(api.pid)
    finally:
        if api is not None:
            stop(api)
        stop(tracking)


def reference_in_sales(forecaster: Any, predictions: list[float], scale: list[float]
                       ) -> list[float]:
    """The reference booster's answers in units of sales: it predicts y / the row scale,
    encoded (asinh by default), so they are decoded (and floored at 0 for a panel of
    non-negative sales) as the champion does."""
    decoded = forecaster._decode(np.asarray(predictions, dtype=float), np.asarray(scale))
    return forecaster._floored(decoded).tolist()


def check_same_model(reference: Reference, ours_base: str, theirs_base: str) -> None:
    """The reference answers the champion's numbers (decoded, x the row scale) before
    timing."""
    series = reference.series_ids[0]
    body, scale = reference_rows(reference, [(series, k) for k in range(8)])
    ours = httpx.post(f"{ours_base}/v1/forecast", json={"series": [{"series_id": series}],
                                                        "horizon": 8}, timeout=60).json()
    theirs = httpx.post(f"{theirs_base}/invocations", content=body, timeout=60,
                        headers={"content-type": "application/json"}).json()["predictions"]
    expected = reference_in_sales(reference.forecaster, theirs, scale)
    got = [row["yhat"] for row in ours["forecasts"]]
    if any(abs(a - b) > 1e-6 * max(1.0, abs(b)) for a, b in zip(got, expected, strict=True)):
        raise RuntimeError(f"the reference disagrees with salescast: {got} vs {expected}")


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


def roll_forward(ours_base: str, weeks: int) -> list[tuple[float, float]]:
    """Post a week of actuals for every series, ``weeks`` times: (post s, all rolled s)."""
    timings = []
    with httpx.Client(base_url=ours_base, timeout=60) as client:
        for _ in range(weeks):
            origins = client.get("/v1/origins").json()
            week = (dt.date.fromisoformat(origins["newest_origin"])
                    + dt.timedelta(weeks=1)).isoformat()
            body = {"actuals": [{"series_id": s["series_id"], "ds": week, "y": 1000.0}
                                for s in origins["series"]]}
            started = time.perf_counter()
            client.post("/v1/actuals", json=body).raise_for_status()
            answered = time.perf_counter()
            while any(s["origin"] != week for s in client.get("/v1/origins").json()["series"]):
                time.sleep(0.01)
            timings.append((answered - started, time.perf_counter() - started))
    return timings


def resident_mb(pid: int, own: bool = False) -> tuple[float, float, float]:
    """(RSS, peak RSS, private RSS) in MB of the serving process: ``pid`` itself, or with
    ``own`` its uvicorn child (`mlflow models serve` runs the server in a child process)."""
    process = (_children(pid) or [pid])[-1] if own else pid
    status = Path(f"/proc/{process}/status").read_text()
    found = [re.search(rf"^{field}:\s+(\d+) kB", status, re.MULTILINE)
             for field in ("VmRSS", "VmHWM", "RssAnon")]
    return tuple(int(m[1]) / 1024 if m else 0.0 for m in found)  # type: ignore[return-value]


def _children(pid: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    kids = [int(p) for p in found.stdout.split()]
    return kids + [g for k in kids for g in _children(k)]


Row = tuple[Case, int, Measurement, float, dict[str, Measurement]]


def print_table(rows: list[Row]) -> None:
    """Side by side; 'logged' = share of salescast's answered rows in the prediction log."""
    labels = list(rows[0][4])
    print(f"{'request':<24}{'conns':>5} | {'salescast rps':>13}{'p50/p99 ms':>13}{'logged':>7}"
          + "".join(f" | {'mlflow (' + label + ') rps':>27}{'p50/p99 ms':>13}{'x':>6}"
                    for label in labels) + f" | {'target':>9}")
    for case, connections, ours, logged, theirs in rows:
        line = (f"{case.name:<24}{connections:>5} | {ours.rps:>13.0f}"
                f"{ours.p50_ms:>6.1f}/{ours.p99_ms:<6.0f}{logged:>7.0%}")
        for label in labels:
            ref = theirs[label]
            line += (f" | {ref.rps:>27.0f}{ref.p50_ms:>6.1f}/{ref.p99_ms:<6.0f}"
                     f"{ours.rps / ref.rps:>6.1f}")
        if connections == 8:
            met = ["ok" if ours.rps / theirs[label].rps >= case.target else "missed"
                   for label in labels]
            line += f" | >={case.target:g}x " + "/".join(met)
        print(line)


def run_cases(cases: list[Case], ours_base: str, references: dict[str, str], workdir: Path,
              args: argparse.Namespace) -> list[Row]:
    rows = []
    for case in cases:
        for connections in args.connections:
            ours, logged = measure_ours(ours_base, case, connections, args, workdir)
            theirs = {label: measure(f"{base}/invocations", case.theirs, connections,
                                     args.duration, workdir)
                      for label, base in references.items()}
            rows.append((case, connections, ours, logged, theirs))
    return rows


def benchmark(champion: Champion, reference: Reference, workdir: Path,
              args: argparse.Namespace) -> None:
    ours_base = f"http://127.0.0.1:{free_port()}"
    servers = [start_salescast(champion, workdir, int(ours_base.rsplit(":", 1)[1]))]
    references = {}
    for label, uri in reference.model_uris.items():
        port = free_port()
        references[label] = f"http://127.0.0.1:{port}"
        servers.append(start_mlflow(champion, uri, workdir, port))
    try:
        wait_for_http(f"{ours_base}/readyz", servers[0], 180)
        for server, base in zip(servers[1:], references.values(), strict=True):
            wait_for_http(f"{base}/ping", server, 180)
            check_same_model(reference, ours_base, base)
        origin = httpx.get(f"{ours_base}/v1/model").json()["newest_origin"]
        cases = build_cases(reference, origin)
        rows = run_cases(cases, ours_base, references, workdir, args)
        rolls = roll_forward(ours_base, args.weeks)
        memory = [resident_mb(server.pid, own=i > 0) for i, server in enumerate(servers)]
    finally:
        for server in servers:
            stop(server)
    remote = memory_behind_tracking_server(champion, workdir, cases, args)
    report(rows, rolls, memory, remote)


def report(rows: list[Row], rolls: list[tuple[float, float]],
           memory: list[tuple[float, float, float]], remote: tuple[float, float, float]) -> None:
    print_table(rows)
    failed = sum(m.non2xx for _, _, ours, _, theirs in rows for m in (ours, *theirs.values()))
    print(f"non-2xx responses: {failed}")
    worst = max(total for _, total in rolls)
    print("roll-forward of every series after a week of actuals: " + ", ".join(
        f"{total:.2f} s (post answered in {post * 1000:.0f} ms)" for post, total in rolls)
          + f"; target <= 2 s: {'ok' if worst <= 2.0 else 'MISSED'}")
    (rss, peak, anon), *theirs = memory
    print(f"memory: salescast worker {rss:.0f} MB RSS (peak {peak:.0f}; {anon:.0f} MB private, "
          f"the rest shared library pages), target <= 300 MB: "
          f"{'ok' if peak <= 300 else 'MISSED'}; mlflow models serve workers: "
          + ", ".join(f"{r:.0f} MB RSS ({a:.0f} MB private)" for r, _, a in theirs))
    rss, peak, anon = remote
    print(f"memory, registry through `mlflow server` (HTTP): salescast worker {rss:.0f} MB RSS "
          f"(peak {peak:.0f}; {anon:.0f} MB private), target <= 300 MB: "
          f"{'ok' if peak <= 300 else 'MISSED'}")


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    for noisy in ("mlflow", "alembic", "optuna", "httpx", "lightgbm"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    args = parse_args()
    workdir = (args.workdir or Path(tempfile.mkdtemp(prefix="bench-serving-"))).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    champion = register_demo_champion(workdir)
    reference = register_reference(champion)
    log.info("champion %s v%s and its reference registered in %.0fs", champion.name,
             champion.version, time.perf_counter() - started)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"champion {champion.name} v{champion.version} ({len(reference.series_ids)} series); "
          f"references {reference.model_uris}; {os.cpu_count()} cores, load average {load}; "
          f"driver: {'wrk' if shutil.which('wrk') else 'httpx'}")
    benchmark(champion, reference, workdir, args)


if __name__ == "__main__":
    main()
