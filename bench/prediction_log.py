"""Benchmark: does the prediction log keep up with a saturating batch load (issue 13)?

    python bench/prediction_log.py [--duration 10] [--connections 4] [--modes compact per-cell]

Trains the retail demo spec (LightGBM, one Optuna trial; kept in ``--workdir`` for the next
run) and serves it with `salescast serve` (one worker, prediction logging on, SQLite WAL).
wrk (else an asyncio httpx client) posts the same 960-row `/v1/forecast` batch — every
demo series x 8 weeks from its origin: the cached path — at ``--connections`` for
``--duration`` seconds after a 2 s warm-up. Per logging mode (``SALESCAST_LOG_COMPACT``:
``compact`` = one row per cached answer, expanded on read; ``per-cell`` = one row per
answered cell, as before) it prints requests/s, answered and logged rows/s, rows dropped
(``salescast_prediction_log_dropped``), database growth in MB per minute (after a WAL
checkpoint), the server's peak RSS, then how long reading the log back
(``PredictionStore.read_predictions``) and purging it (``purge_predictions``) take, and
how many rows per second the log's writer stores alone, in process, in each mode.

``--baseline TREE`` serves the same champion from another source tree too (e.g. ``git
worktree add /tmp/base HEAD`` before a change), alternating with this one ``--rounds``
times, so both are measured in the same time window of the shared machine; each run
prints the 1-minute load average at its start.

Target (issue 13): no forecast row dropped at ~100,000 logged rows/s, bounded memory.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.serving import (  # noqa: E402
    Champion,
    Measurement,
    _run_httpx,
    log_counts,
    register_demo_champion,
    resident_mb,
    run_wrk,
    start_salescast,
    stop,
)
from experiments.traffic import free_port, wait_for_http  # noqa: E402

log = logging.getLogger("bench.prediction_log")
HORIZON = 8
MODES = {"compact": "true", "per-cell": "false"}  # SALESCAST_LOG_COMPACT


@dataclass(frozen=True)
class LogRun:
    code: str  # "this" tree or "baseline"
    load: float  # 1-minute load average when the run started
    mode: str
    rps: float
    p99_ms: float
    answered: int  # forecast rows answered in the timed run
    written: int  # of them, rows the log wrote
    dropped: int
    seconds: float
    growth_mb_per_min: float
    peak_rss_mb: float
    read_rows: int
    read_seconds: float
    purged: int
    purge_seconds: float


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0, help="Seconds of load.")
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--modes", nargs="+", choices=list(MODES), default=list(MODES))
    parser.add_argument("--workdir", type=Path, default=None,
                        help="Default: a temp dir; an earlier run's champion there is reused.")
    parser.add_argument("--baseline", type=Path, default=None,
                        help="Another source tree to serve too, alternating (same champion).")
    parser.add_argument("--rounds", type=int, default=1, help="Runs per tree and mode.")
    return parser.parse_args()


def demo_champion(workdir: Path) -> Champion:
    """The demo champion registered in ``workdir`` (trained on the first run only)."""
    saved = workdir / "champion.json"
    if saved.exists():
        return Champion(**json.loads(saved.read_text()))
    champion = register_demo_champion(workdir)
    saved.write_text(json.dumps(champion.__dict__))
    return champion


def batch_body(base: str) -> tuple[bytes, int]:
    """Every series x ``HORIZON`` weeks after its own origin, as explicit rows."""
    series = httpx.get(f"{base}/v1/origins", timeout=60).json()["series"]
    rows = [{"series_id": s["series_id"],
             "ds": (date.fromisoformat(s["origin"]) + timedelta(weeks=k + 1)).isoformat()}
            for s in series for k in range(HORIZON)]
    return json.dumps({"rows": rows}).encode(), len(rows)


def drive(url: str, body: bytes, connections: int, seconds: float, workdir: Path
          ) -> Measurement:
    """POST ``body`` at ``connections`` for ``seconds`` (wrk when installed, else httpx)."""
    if shutil.which("wrk"):
        return run_wrk(url, body, connections, seconds, workdir)
    return asyncio.run(_run_httpx(url, body, connections, seconds))


def caught_up(base: str, timeout: float = 180.0) -> tuple[float, float]:
    """(written, dropped) once the log's writer has stopped moving (1 s apart)."""
    deadline, last = time.monotonic() + timeout, log_counts(base)
    while time.monotonic() < deadline:
        time.sleep(1.0)
        now = log_counts(base)
        if now == last:
            return now
        last = now
    return last


def database_mb(db: Path) -> float:
    """Size of the SQLite file after moving the WAL into it (what stays on disk)."""
    import sqlite3

    with sqlite3.connect(db, timeout=30) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return sum(p.stat().st_size for p in db.parent.glob(db.name + "*")) / 1e6


def read_back(url: str) -> tuple[int, float, int, float]:
    """Rows and seconds of reading the whole log back, then of purging all of it."""
    from serving.store import PredictionStore, utc_now

    store = PredictionStore(url)
    try:
        started = time.perf_counter()
        rows = len(store.read_predictions())
        read_seconds = time.perf_counter() - started
        purge = getattr(store, "purge_predictions", None)
        if purge is None:  # a store from before retention
            return rows, read_seconds, 0, 0.0
        started = time.perf_counter()
        purged = purge(utc_now() + timedelta(minutes=1))
        return rows, read_seconds, purged.total, time.perf_counter() - started
    finally:
        store.dispose()


def run_mode(champion: Champion, mode: str, workdir: Path, args: argparse.Namespace,
             code: str = "this", tree: Path = REPO) -> LogRun:
    """One timed run of ``mode`` against a server importing ``tree``."""
    modedir = workdir / mode
    shutil.rmtree(modedir, ignore_errors=True)
    modedir.mkdir(parents=True)
    db = modedir / "predictions.db"
    os.environ["SALESCAST_LOG_COMPACT"] = MODES[mode]  # start_salescast passes os.environ
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    load = os.getloadavg()[0]
    server = start_salescast(champion, modedir, port, tree)
    try:
        wait_for_http(f"{base}/readyz", server, 180)
        body, cells = batch_body(base)
        url = f"{base}/v1/forecast"
        drive(url, body, args.connections, 2.0, modedir)  # warm-up
        before, size_before = caught_up(base), database_mb(db)
        result = drive(url, body, args.connections, args.duration, modedir)
        seconds = result.requests / max(result.rps, 1e-9)
        after = caught_up(base)
        size_after = database_mb(db)
        peak = resident_mb(server.pid)[1]
    finally:
        stop(server)
    answered = result.requests * cells
    growth = (size_after - size_before) / max(seconds, 1e-9) * 60
    read_rows, read_seconds, purged, purge_seconds = read_back(f"sqlite:///{db}")
    return LogRun(code, load, mode, result.rps, result.p99_ms, answered, int(after[0] - before[0]),
                  int(after[1] - before[1]), seconds, growth, peak, read_rows, read_seconds,
                  purged, purge_seconds)


def writer_capacity(compact: bool, requests: int, workdir: Path) -> float:
    """Rows per second the log's writer alone stores (no HTTP, nothing else running):
    ``requests`` 960-row cached answers queued at once, then written to a new SQLite file."""
    import pandas as pd

    from features.origin import SeriesOrigin, forecast_dates
    from serving.forecast_table import build_entries, log_rows
    from serving.prediction_log import LogEntry, PredictionLog
    from serving.store import PredictionStore, utc_now

    series, origin = [f"S{i:03d}" for i in range(120)], date(2024, 6, 3)
    dates = forecast_dates(origin, "W", HORIZON)
    forecast = pd.DataFrame([{"series_id": s, "ds": pd.Timestamp(d), "yhat": float(i + k),
                              "yhat_lower": i + k - 1.0, "yhat_upper": i + k + 1.0}
                             for i, s in enumerate(series) for k, d in enumerate(dates)])
    origins = {s: SeriesOrigin(s, origin, origin, None, "current") for s in series}
    entries = build_entries(forecast, None, origins, "W", HORIZON)
    cells = [(s, k) for s in series for k in range(HORIZON)]
    db = workdir / f"writer-{'compact' if compact else 'per-cell'}.db"
    db.unlink(missing_ok=True)
    store = PredictionStore(f"sqlite:///{db}")
    prediction_log = PredictionLog(store, compact=compact, max_pending=10**9)
    for i in range(requests):
        prediction_log.submit(LogEntry(f"r{i}", utc_now(), "demo", "1",
                                       log_rows(entries, cells), len(cells)))
    started = time.perf_counter()
    prediction_log.start()
    prediction_log.close(timeout=600)
    seconds = time.perf_counter() - started
    store.dispose()
    return prediction_log.written / seconds


def report(runs: list[LogRun], connections: int) -> None:
    print(f"{'code':<10}{'load':>6}{'log mode':>10}{'req/s':>7}{'p99 ms':>8}"
          f"{'answered rows/s':>17}{'logged rows/s':>15}{'dropped':>9}{'DB MB/min':>11}"
          f"{'peak RSS MB':>13}  (960-row batches, {connections} connections)")
    for run in runs:
        print(f"{run.code:<10}{run.load:>6.1f}{run.mode:>10}{run.rps:>7.0f}{run.p99_ms:>8.0f}"
              f"{run.answered / run.seconds:>17,.0f}{run.written / run.seconds:>15,.0f}"
              f"{run.dropped:>9,}{run.growth_mb_per_min:>11.1f}{run.peak_rss_mb:>13.0f}")
    for run in runs:  # the server's own count: wrk leaves out requests still in flight
        kept = run.written / max(run.written + run.dropped, 1)
        print(f"{run.code} {run.mode}: kept {kept:.1%} of {run.written + run.dropped:,} "
              f"answered rows; read back {run.read_rows:,} rows (warm-up included) in "
              f"{run.read_seconds:.1f} s; "
              f"purged {run.purged:,} stored rows in {run.purge_seconds:.1f} s; target (no row "
              f"dropped): {'ok' if run.dropped == 0 else 'MISSED'}")


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    for noisy in ("mlflow", "alembic", "optuna", "httpx", "lightgbm"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    args = parse_args()
    workdir = (args.workdir or Path(tempfile.mkdtemp(prefix="bench-log-"))).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    champion = demo_champion(workdir)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"champion {champion.name} v{champion.version}; {os.cpu_count()} cores, load "
          f"average {load}; driver: {'wrk' if shutil.which('wrk') else 'httpx'}")
    trees = {"this": REPO} | ({"baseline": args.baseline.resolve()} if args.baseline else {})
    runs = [run_mode(champion, mode, workdir, args, code, tree)
            for _ in range(args.rounds) for code, tree in trees.items() for mode in args.modes]
    report(runs, args.connections)
    compact = writer_capacity(True, 2000, workdir)
    per_cell = writer_capacity(False, 200, workdir)
    print(f"the writer alone (in process, 960-row answers queued at once): compact "
          f"{compact:,.0f} rows/s, per-cell {per_cell:,.0f} rows/s")


if __name__ == "__main__":
    main()
