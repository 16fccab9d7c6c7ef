"""End-to-end `salescast train` on a large panel, with 1 and 2 tuning workers (issue 12).

A weekly panel of ``--series`` store x category series over ``--weeks`` weeks (one row per
series and week: period-level input, as a warehouse export gives it) is written to Parquet;
a spec trains the global families on it (seasonal naive, regression and LightGBM with the
direct strategy, and their ensemble; the per-series statistical families are off: at
~0.17 s per series and fit they alone would take hours here). The whole CLI runs as a
subprocess into a fresh SQLite store, once per worker count, side by side; wall seconds
and the peak RSS of the process tree (leader and its tuning workers, polled every 0.2 s)
are printed.

    python bench/scale.py [--series 10000] [--weeks 156] [--workers 1 2] [--trials 2]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import yaml

REPO = Path(__file__).resolve().parents[1]
CATEGORIES = 8


def make_panel(n_series: int, weeks: int, seed: int = 0) -> pd.DataFrame:
    """Weekly revenue per store and category: level x yearly season x trend x noise."""
    rng = np.random.default_rng(seed)
    ds = pd.date_range("2022-01-03", periods=weeks, freq="W-MON")
    t = np.arange(weeks)
    level = rng.lognormal(7, 1, n_series)[:, None]
    phase = rng.uniform(0, 2 * np.pi, n_series)[:, None]
    season = 1 + 0.3 * np.sin(2 * np.pi * t[None, :] / 52 + phase)
    trend = 1 + rng.normal(0.1, 0.1, n_series)[:, None] * t[None, :] / weeks
    y = level * season * trend * rng.lognormal(0, 0.15, (n_series, weeks))
    stores = [f"S{i // CATEGORIES:05d}" for i in range(n_series)]
    categories = [f"C{i % CATEGORIES}" for i in range(n_series)]
    return pd.DataFrame({
        "store": np.repeat(stores, weeks), "category": np.repeat(categories, weeks),
        "week": np.tile(ds, n_series), "revenue": y.ravel().round(2),
    })


def write_spec(folder: Path, data: Path, trials: int) -> Path:
    spec = {
        "name": "scale", "model_name": "scale_forecaster",
        "description": "bench/scale.py: a large weekly panel",
        "data": {"sales": {"path": str(data)}, "sales_columns": {
            "date": "week", "target": "revenue", "quantity": None, "price": None,
            "promo": None, "customer_id": None, "channel": None,
            "keys": ["store", "category"]}, "target": "quantity"},
        "frequency": "W", "horizon": 8,
        "features": {"calendar": True, "holidays": False, "lags": [8, 9, 10, 52],
                     "rolling_windows": [4, 13], "price_promo": False, "customers": False},
        "backtest": {"n_windows": 2, "step": 8},
        "models": {"seed": 0, "seasonal_naive": {"trials": 1},
                   # one direct model per family: the recursive strategy rebuilds the
                   # features at every step, which on 10,000 series is its own benchmark
                   "regression": {"trials": trials, "params": {"strategy": "direct"}},
                   "lightgbm": {"trials": trials, "params": {"strategy": "direct"}},
                   "time_series": {"enabled": False}, "intermittent": {"enabled": False},
                   "ensemble": {"trials": 1}},
    }
    path = folder / "scale.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def tree_rss(process: psutil.Process) -> int:
    total = 0
    for member in [process, *process.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):  # a worker that just ended
            total += member.memory_info().rss
    return total


def run_train(spec: Path, workers: int, folder: Path) -> tuple[float, float, int]:
    """Wall seconds, peak tree RSS (GB) and exit code of one `salescast train`."""
    env = os.environ | {"SALESCAST_TRACKING_URI": f"sqlite:///{folder / 'mlflow.db'}",
                        "SALESCAST_OPTUNA_STORAGE": f"sqlite:///{folder / 'optuna.db'}",
                        "SALESCAST_ARTIFACT_LOCATION": str(folder / "artifacts")}
    command = [sys.executable, "-m", "experiments.cli", "train", "--spec", str(spec),
               "--workers", str(workers)]
    started, peak = time.perf_counter(), 0
    with (folder / "train.log").open("wb") as log:
        child = subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=log)
        watched = psutil.Process(child.pid)
        while child.poll() is None:
            peak = max(peak, tree_rss(watched))
            time.sleep(0.2)
    return time.perf_counter() - started, peak / 1e9, child.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=10_000)
    parser.add_argument("--weeks", type=int, default=156)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--trials", type=int, default=2)
    parser.add_argument("--workdir", type=Path, default=None,
                        help="Keep the panel, stores and logs here (default: a temp dir).")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="salescast-scale-") as scratch:
        root = args.workdir or Path(scratch)
        root.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        panel = make_panel(args.series, args.weeks)
        panel.to_parquet(root / "sales.parquet", index=False)
        print(f"panel: {args.series:,} series x {args.weeks} weeks = {len(panel):,} rows "
              f"({time.perf_counter() - started:.1f} s to generate)", flush=True)
        spec = write_spec(root, root / "sales.parquet", args.trials)
        print("| workers | wall s | peak RSS (tree) GB | exit |")
        print("| --- | --- | --- | --- |")
        for workers in args.workers:
            folder = root / f"workers-{workers}"
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            wall, peak, code = run_train(spec, workers, folder)
            print(f"| {workers} | {wall:.0f} | {peak:.2f} | {code} |", flush=True)
            if code != 0:
                print((folder / "train.log").read_text()[-3000:])


if __name__ == "__main__":
    main()
