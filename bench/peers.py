"""The accuracy benchmark's peers: statsforecast and mlforecast on one held-out window.

    .venv-peers/bin/python bench/peers.py --train T.parquet --test H.parquet \
        --freq W --horizon 4 --season-length 4 --out peers.json

Runs in its own environment, ``.venv-peers`` (``bench/requirements-peers.txt``;
`make bench-accuracy` creates it): statsforecast and mlforecast pin pandas < 3, salescast
runs on pandas 3, so the peers never become runtime dependencies. It imports nothing from
salescast: ``bench/accuracy.py`` hands it the same aggregated panel salescast trained on
(``unique_id, ds, y``, Nixtla's names) and the held-out actuals of the ``horizon`` periods
after it, and reads back one JSON document.

Each model is fitted on the whole training panel and forecasts ``horizon`` periods ahead,
timed on its own (wall seconds, fit + forecast + its 80 % interval; statsforecast's numba
compilation on a cold cache is inside the first model's time, as a user would wait for it):

* statsforecast ``AutoETS``, ``AutoTheta``, ``AutoARIMA`` per series, ``season_length`` of
  the spec, intervals from the models' own distributions;
* mlforecast ``LightGBM``: one global model, lags 1..season, rolling means of the last one
  and two seasons, date features of the frequency, each series standardised
  (``LocalStandardScaler``), forecast recursively; conformal intervals from 2 windows.

**Their promise.** Each model is also scored, the same way, on salescast's outer backtest
window: fitted on the training panel without its last ``horizon`` periods and scored on
them (not timed). That is what a user of the peer would quote before the held-out periods
come: ``bench/accuracy.py`` sets each peer's held-out WAPE against it, as it does
salescast's promise (issue 10, point 0).

Scored like salescast (``training/metrics.py``): WAPE = sum|y - yhat| / sum|y| over every
(series, period) of the window with an actual, coverage = share of actuals inside the
80 % interval. Missing ``y`` in training (a gap) is filled with 0 for the peers, which
refuse NaN; the count is reported.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd

log = logging.getLogger("bench.peers")
LEVEL = 80  # nominal interval coverage, percent (salescast's spec: interval_level 0.8)
# salescast's periods start on Monday (W) and on the 1st (M): the same grid in pandas.
PANDAS_FREQ = {"D": "D", "W": "W-MON", "M": "MS"}


@dataclass(frozen=True)
class PeerScore:
    """One peer model on the held-out window."""

    wape: float
    coverage: float | None
    seconds: float


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=Path, required=True, help="unique_id, ds, y")
    parser.add_argument("--test", type=Path, required=True, help="unique_id, ds, y (held out)")
    parser.add_argument("--freq", choices=sorted(PANDAS_FREQ), required=True)
    parser.add_argument("--horizon", type=int, required=True)
    parser.add_argument("--season-length", type=int, required=True)
    parser.add_argument("--n-jobs", type=int, default=-1, help="statsforecast processes")
    parser.add_argument("--quick", action="store_true", help="Smaller AutoARIMA search.")
    parser.add_argument("--out", type=Path, required=True, help="JSON results")
    return parser.parse_args()


def read_panel(path: Path) -> pd.DataFrame:
    frame = pd.read_parquet(path, columns=["unique_id", "ds", "y"])
    frame["unique_id"] = frame["unique_id"].astype(str)
    frame["ds"] = pd.to_datetime(frame["ds"]).astype("datetime64[ns]")
    return frame.sort_values(["unique_id", "ds"]).reset_index(drop=True)


def score(forecast: pd.DataFrame, test: pd.DataFrame, column: str, seconds: float,
          interval: bool) -> PeerScore:
    """WAPE (and interval coverage) of ``column`` against the held-out actuals."""
    joined = test.merge(forecast, on=["unique_id", "ds"], how="left").dropna(subset=["y"])
    if joined[column].isna().any():
        raise RuntimeError(f"{column}: no forecast for {int(joined[column].isna().sum())} "
                           "held-out rows")
    y, yhat = joined["y"].to_numpy(float), joined[column].to_numpy(float)
    wape = float(np.abs(y - yhat).sum() / np.abs(y).sum())
    coverage = None
    if interval:
        lower = joined[f"{column}-lo-{LEVEL}"].to_numpy(float)
        upper = joined[f"{column}-hi-{LEVEL}"].to_numpy(float)
        coverage = float(np.mean((y >= lower) & (y <= upper)))
    return PeerScore(wape, coverage, seconds)


def statsforecast_models(season_length: int, quick: bool) -> dict[str, Callable[[], object]]:
    """The statistical peers; ``quick`` caps AutoARIMA's stepwise search at 5 models (a
    smoke run: the full search takes minutes on a few thousand daily points)."""
    from statsforecast.models import AutoARIMA, AutoETS, AutoTheta

    arima = {"nmodels": 5} if quick else {}
    return {
        "AutoETS": lambda: AutoETS(season_length=season_length),
        "AutoTheta": lambda: AutoTheta(season_length=season_length),
        "AutoARIMA": lambda: AutoARIMA(season_length=season_length, **arima),
    }


def last_window(train: pd.DataFrame, horizon: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The training panel without its last ``horizon`` periods, and those periods: the
    outer backtest window of salescast's nested backtest (``outer_windows: 1``)."""
    periods = np.sort(train["ds"].unique())
    if len(periods) <= horizon:
        raise ValueError(f"{len(periods)} training periods: no window of {horizon} before them")
    cut = periods[-horizon - 1]
    return (train[train["ds"] <= cut].reset_index(drop=True),
            train[train["ds"] > cut].reset_index(drop=True))


def run_peers(train: pd.DataFrame, test: pd.DataFrame,
              args: argparse.Namespace) -> dict[str, PeerScore]:
    """Every peer fitted on ``train`` and scored on ``test``."""
    return run_statsforecast(train, test, args) | run_mlforecast(train, test, args)


def run_statsforecast(train: pd.DataFrame, test: pd.DataFrame,
                      args: argparse.Namespace) -> dict[str, PeerScore]:
    """Each statistical model on its own, so each has its own wall time."""
    from statsforecast import StatsForecast

    scores = {}
    for name, make in statsforecast_models(args.season_length, args.quick).items():
        started = time.perf_counter()
        engine = StatsForecast(models=[make()], freq=PANDAS_FREQ[args.freq],
                               n_jobs=args.n_jobs)
        forecast = engine.forecast(df=train, h=args.horizon, level=[LEVEL])
        seconds = time.perf_counter() - started
        if "unique_id" not in forecast.columns:  # statsforecast < 1.7 indexed by it
            forecast = forecast.reset_index()
        scores[name] = score(forecast, test, name, seconds, interval=True)
        log.info("%s: WAPE %.4f in %.1f s", name, scores[name].wape, seconds)
    return scores


def date_features(freq: str) -> list[str | Callable[[pd.DatetimeIndex], np.ndarray]]:
    """Calendar features of the period: what a forecaster of that frequency would add."""

    def week_of_year(dates: pd.DatetimeIndex) -> np.ndarray:
        return dates.isocalendar().week.to_numpy(dtype=np.int64)

    return {"D": ["dayofweek", "month", "day"], "W": ["month", week_of_year],
            "M": ["month", "quarter"]}[freq]


def run_mlforecast(train: pd.DataFrame, test: pd.DataFrame,
                   args: argparse.Namespace) -> dict[str, PeerScore]:
    """One global LightGBM over every series, recursive, as mlforecast's docs set it up."""
    from lightgbm import LGBMRegressor
    from mlforecast import MLForecast
    from mlforecast.lag_transforms import RollingMean
    from mlforecast.target_transforms import LocalStandardScaler
    from mlforecast.utils import PredictionIntervals

    season = args.season_length
    started = time.perf_counter()
    engine = MLForecast(
        models={"LightGBM": LGBMRegressor(random_state=0, verbosity=-1, n_jobs=1)},
        freq=PANDAS_FREQ[args.freq],
        lags=list(range(1, season + 1)),
        lag_transforms={1: [RollingMean(window_size=season),
                            RollingMean(window_size=2 * season)]},
        date_features=date_features(args.freq),
        target_transforms=[LocalStandardScaler()],
    )
    engine.fit(train, prediction_intervals=PredictionIntervals(n_windows=2, h=args.horizon))
    forecast = engine.predict(args.horizon, level=[LEVEL])
    seconds = time.perf_counter() - started
    result = score(forecast, test, "LightGBM", seconds, interval=True)
    log.info("LightGBM: WAPE %.4f in %.1f s", result.wape, seconds)
    return {"LightGBM": result}


def versions() -> dict[str, str]:
    names = ("statsforecast", "mlforecast", "lightgbm", "pandas", "numpy")
    return {name: metadata.version(name) for name in names}


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    args = parse_args()
    started = time.perf_counter()
    train, test = read_panel(args.train), read_panel(args.test)
    gaps = int(train["y"].isna().sum())
    train["y"] = train["y"].fillna(0.0)
    scores = run_peers(train, test, args)
    log.info("the peers' promise: their scores on the outer window (the last %d periods)",
             args.horizon)
    promised = run_peers(*last_window(train, args.horizon), args)
    document = {
        "models": {name: asdict(result) for name, result in scores.items()},
        "promised": {name: asdict(result) for name, result in promised.items()},
        "n_series": int(train["unique_id"].nunique()),
        "train_rows": len(train), "test_rows": len(test), "gaps_filled": gaps,
        "horizon": args.horizon, "season_length": args.season_length, "freq": args.freq,
        "quick": args.quick, "cores": os.cpu_count(), "versions": versions(),
        "process_seconds": time.perf_counter() - started,
    }
    args.out.write_text(json.dumps(document, indent=2))


if __name__ == "__main__":
    main()
