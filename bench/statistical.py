"""Benchmark of the statistical family (``time_series``) at the specialists' scale: ONE fit
(and predict) on 70 daily series x 1,900 days, on 2 cores, with the per-series choice
among ETS, Theta (standard, optimised, dynamic), ARIMA and MSTL.

    python bench/statistical.py [--series 70] [--days 1900] [--horizon 28] [--n-jobs 2]
                                [--compare]

Target: <= 60 s wall for the fit, no slower than statsforecast's AutoETS on the same
series (33 s, the figure issue 10 gives for this panel on these 2 cores; statsforecast
pins pandas < 3, so it is not run here). The panel is simulated with numpy, seeded: level
x trend x weekly x yearly season x promotion lift (half the series) x holiday x noise.
The fit sees the first ``days`` days; the next ``horizon`` days score it (WAPE) against
seasonal naive (weekly), so a fast fit that forecasts badly shows.

Printed: wall and CPU seconds of the fit, predict and a one-day ``update`` of every
series; the models chosen per series (counts); the WAPEs (``--compare``: also of each
model kind forced on every series).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from features.build import build_training_set
from features.config import FeatureConfig
from features.raw import RawData
from features.training_set import TrainingSet
from training.forecasters import SeasonalNaive, TimeSeriesForecaster
from training.forecasters.time_series import KINDS

START = pd.Timestamp("2019-01-07")
TARGET_SECONDS, AUTOETS_SECONDS = 60.0, 33.0
T = TypeVar("T")


def simulate_daily(n_series: int, days: int, seed: int = 0) -> pd.DataFrame:
    """Daily truth: series_id, date, store, category, y, promo, holiday (seeded)."""
    rng = np.random.default_rng(seed)
    dates = pd.date_range(START, periods=days, freq="D")
    t = np.arange(days)
    holiday = ((dates.month == 12) & (dates.day >= 24) & (dates.day <= 26)).astype(float)
    frames = []
    for i in range(n_series):
        level = np.exp(rng.uniform(np.log(50), np.log(500)))
        trend = 1 + rng.uniform(-0.05, 0.25) * t / 365
        weekly = 1 + rng.uniform(0.05, 0.4) * np.sin(2 * np.pi * (t + rng.integers(7)) / 7)
        yearly = 1 + rng.uniform(0.0, 0.4) * np.sin(2 * np.pi * t / 365.25 + rng.uniform(0, 6.3))
        promo = (rng.random(days) < 0.1).astype(float) * (i % 2)
        noise = np.exp(rng.normal(0, rng.uniform(0.03, 0.15), days))
        y = level * trend * weekly * yearly * (1 + 0.4 * promo) * (1 + 0.5 * holiday) * noise
        frames.append(pd.DataFrame({
            "date": dates, "store": f"S{i // 2:02d}", "category": f"C{i % 2}", "y": y,
            "promo": promo, "holiday": holiday}))
    return pd.concat(frames, ignore_index=True)


def training_set(truth: pd.DataFrame, days: int, horizon: int) -> TrainingSet:
    """The TrainingSet of the first ``days`` days (the calendar covers the horizon too)."""
    first = truth[truth["date"] < START + pd.Timedelta(days=days)]
    sales = first[["date", "store", "category", "y", "promo"]].assign(revenue=first["y"])
    calendar = truth.drop_duplicates("date")[["date", "holiday"]].reset_index(drop=True)
    raw = RawData(sales=sales.reset_index(drop=True), keys=("store", "category"),
                  calendar=calendar)
    return build_training_set(raw, FeatureConfig(customers=False), freq="D", horizon=horizon)


def wape(forecast: pd.DataFrame, truth: pd.DataFrame) -> float:
    actual = truth.assign(series_id=truth["store"] + "|" + truth["category"])
    joined = forecast.merge(actual.rename(columns={"date": "ds"})[["series_id", "ds", "y"]],
                            on=["series_id", "ds"])
    return float((joined["yhat"] - joined["y"]).abs().sum() / joined["y"].abs().sum())  # WAPE


def timed(step: Callable[[], T]) -> tuple[T, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    out = step()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=70)
    parser.add_argument("--days", type=int, default=1900)
    parser.add_argument("--horizon", type=int, default=28)
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--compare", action="store_true",
                        help="also fit each model kind alone (WAPE and seconds of each)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    truth = simulate_daily(args.series, args.days + args.horizon)
    data = training_set(truth, args.days, args.horizon)
    future = truth[truth["date"] >= START + pd.Timedelta(days=args.days)]
    model = TimeSeriesForecaster(n_jobs=args.n_jobs)
    _, fit_wall, fit_cpu = timed(lambda: model.fit(data))
    forecast, predict_wall, _ = timed(lambda: model.predict_mean(args.horizon))
    first_day = future[future["date"] == future["date"].min()]
    posted = first_day.assign(series_id=first_day["store"] + "|" + first_day["category"],
                              ds=first_day["date"])[["series_id", "ds", "y", "promo"]]
    _, update_wall, _ = timed(lambda: model.update(posted))
    naive = SeasonalNaive().fit(data).predict_mean(args.horizon)
    print(f"{args.series} daily series x {args.days} days, horizon {args.horizon}, "
          f"n_jobs={args.n_jobs}")
    print(f"fit: {fit_wall:.1f} s wall ({fit_cpu:.1f} s CPU in this process; target "
          f"<= {TARGET_SECONDS:.0f} s, statsforecast AutoETS {AUTOETS_SECONDS:.0f} s)")
    print(f"predict: {predict_wall:.2f} s; update (one day posted for every series, no "
          f"refit): {update_wall:.2f} s")
    print("models chosen:", model.chosen_models().value_counts().to_dict())
    print(f"WAPE next {args.horizon} days: time_series {wape(forecast, future):.4f}, "
          f"seasonal naive {wape(naive, future):.4f}")
    if args.compare:
        compare_kinds(data, future, args.horizon, args.n_jobs)


def compare_kinds(data: TrainingSet, future: pd.DataFrame, horizon: int, n_jobs: int) -> None:
    """Each kind forced on every series: what the per-series choice is measured against."""
    for kind in KINDS:
        model = TimeSeriesForecaster(model=kind, n_jobs=n_jobs)
        _, seconds, _ = timed(lambda model=model: model.fit(data))
        print(f"  {kind:16s} alone: WAPE {wape(model.predict_mean(horizon), future):.4f}, "
              f"fit {seconds:.1f} s")


if __name__ == "__main__":
    main()
