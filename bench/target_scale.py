"""What LightGBM's target scale does on the benchmark's real data: the family at its
defaults with y relative to each row's level (``row``), to the series' level (``series``)
and the mean of both models (``both``), per multi-step strategy, on the three back-to-back
held-out windows of each data set that ``bench/accuracy.py --earlier-origins 2`` scores
(the newest is the spec's own held-out window).

    python bench/target_scale.py [--datasets tx_housing,online_retail,chicago_l]
                                 [--strategies recursive,direct]

No tuning and no MLflow: one backtest of three windows per (strategy, scale), so the
figures show the scales themselves, not a tuning run's draws. Printed: WAPE per window
(oldest first) and their mean.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import pandas as pd
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.accuracy import SPECS, whole_file
from experiments.pipeline import build_features
from experiments.spec import load_spec
from features import TrainingSet
from training.backtest import BacktestWindow, period_grid, run_backtest
from training.forecasters.common import TARGET_SCALES
from training.forecasters.gbm import LightGBMForecaster

WINDOWS = 3  # the spec's held-out window and the two before it


def windows_of(name: str) -> tuple[TrainingSet, list[BacktestWindow]]:
    """The whole file's training set and its three windows ending at the spec's held-out
    window (origins ``data.end``, one and two horizons before)."""
    spec = load_spec(SPECS / f"{name}.yaml")
    full = build_features(whole_file(spec))
    grid = period_grid(full)
    last = int(grid.searchsorted(pd.Timestamp(spec.data.end), side="right")) - 1
    origins = [last - k * spec.horizon for k in range(WINDOWS - 1, -1, -1)]
    return full, [BacktestWindow(i, grid[o], grid[o + spec.horizon])
                  for i, o in enumerate(origins)]


def per_window(predictions: pd.DataFrame) -> list[float]:
    """WAPE of each window, oldest first."""
    groups = predictions.groupby("window")
    error = groups.apply(lambda g: (g["y"] - g["yhat"]).abs().sum() / g["y"].abs().sum())
    return [float(v) for v in error.sort_index()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="tx_housing,online_retail,chicago_l")
    parser.add_argument("--strategies", default="recursive,direct")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    runs = [(d, s, scale) for d in args.datasets.split(",")
            for s in args.strategies.split(",") for scale in TARGET_SCALES]
    built: dict[str, tuple[TrainingSet, list[BacktestWindow]]] = {}
    lines = ["| data | strategy | scale | WAPE per window (oldest first) | mean |",
             "| --- | --- | --- | --- | --- |"]
    for name, strategy, scale in tqdm(runs, desc="backtests"):
        if name not in built:
            built[name] = windows_of(name)
        full, windows = built[name]
        model = LightGBMForecaster(strategy=strategy, target_scale=scale, n_jobs=1)
        wape = per_window(run_backtest(model, full, windows).predictions)
        lines.append(f"| {name} | {strategy} | {scale} | "
                     f"{' / '.join(f'{w:.3f}' for w in wape)} | {sum(wape) / len(wape):.4f} |")
    print("\n".join(lines))  # the figures are this benchmark's output


if __name__ == "__main__":
    main()
