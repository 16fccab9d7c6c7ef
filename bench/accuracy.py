"""Benchmark: salescast's champion against statsforecast and mlforecast, on real data.

    python bench/accuracy.py [--datasets online_retail tx_housing chicago_l] [--quick]

One run, side by side, on each data set of ``DATASETS`` (public, openly licensed, shipped in
``data/``; ``data/README.md`` says where each comes from):

1. **Held-out window.** The spec (``bench/specs/<name>.yaml``) trains as of ``data.end``;
   the ``horizon`` periods after it, up to the end of the file, are held out. Both sides see
   the same aggregated panel: salescast's own features code builds it
   (:func:`experiments.pipeline.build_features`), once as of ``data.end`` (what is trained
   on) and once on the whole file (the held-out actuals).
2. **salescast**: the whole CLI, timed — ``salescast train --spec --workers N`` (features,
   Optuna on the nested rolling-origin backtest for every family, MLflow runs, registry,
   promotion; ``--workers``: one tuning process per core, ``--salescast-workers``, as the
   peers' statsforecast runs one process per core, ``n_jobs=-1``) into
   a temporary MLflow / Optuna store (SQLite in a temp dir: the repo is left as it was).
   Then ``models:/<name>@champion`` is loaded with ``mlflow.pyfunc`` and asked for the
   held-out (series_id, ds) rows, as an application would; every other family's registered
   version is scored the same way, to see whether the promotion chose well.
3. **Peers**: ``bench/peers.py`` in its own environment ``.venv-peers`` (statsforecast and
   mlforecast pin pandas < 3): AutoETS, AutoTheta, AutoARIMA and a recursive LightGBM with
   lags and date features, each timed (fit + forecast + interval).

Scored alike (``training/metrics.py``): WAPE = sum|y - yhat| / sum|y| over every (series,
period) of the window, coverage = share of actuals inside the 80 % interval. Also read:
the champion's **promised** WAPE (its registered version's ``wape`` tag: the nested
backtest's outer window, which tuning never saw). Issue 10, point 0 asks
|held-out WAPE / promised - 1| <= 0.2; the table says whether each data set keeps it.
Each peer gets a promise too: its score on the same outer window (``bench/peers.py``).
One held-out window per data set is one draw: a miss on one set is evidence, not proof.
``--earlier-origins K`` also cuts each data set 1..K horizons earlier (back-to-back
held-out windows, :func:`earlier_spec`) and rolls the targets up per data set.
**Hindsight** (:func:`hindsight`): the best the run's registered versions could have
scored on the held-out window if it had been seen before choosing — one version, or any
weighting of two in steps of 0.05. No rule could choose it; it bounds what a better
champion rule alone could gain, and says when a miss is a modelling gap (no version, nor
any mix of two, reaches the target) rather than a choice gap.

Prints one table (and a detail table of every model) and writes ``--out``
(``bench/results/accuracy.json``). ``--quick``: one Optuna trial per family and a capped
AutoARIMA search, for a smoke run. The machine is shared: the load average is printed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field, fields
from itertools import combinations
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from mlflow.pyfunc import PyFuncModel

    from features import TrainingSet

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from experiments.pipeline import build_features  # noqa: E402
from experiments.spec import ExperimentSpec, load_spec  # noqa: E402
from training.metrics import compute_metrics  # noqa: E402

log = logging.getLogger("bench.accuracy")
DATASETS = ("online_retail", "tx_housing", "chicago_l")
SPECS = REPO / "bench" / "specs"
PEERS_PYTHON = REPO / ".venv-peers" / "bin" / "python"
TOLERANCE = 0.2  # issue 10, point 0: |held-out WAPE / promised - 1| <= 0.2
TARGET_RATIO = 0.95  # issue 10: champion WAPE <= 0.95 x the best peer's
PAIR_WEIGHTS = np.linspace(0.0, 1.0, 21)  # hindsight: the first version's weight in a pair


@dataclass(frozen=True)
class Window:
    """The panel salescast trains on and the held-out actuals after it (series_id, ds, y)."""

    train: pd.DataFrame
    test: pd.DataFrame

    @property
    def origin(self) -> pd.Timestamp:
        return pd.Timestamp(self.train["ds"].max())


@dataclass
class Score:
    """One model on the held-out window."""

    wape: float
    coverage: float | None
    seconds: float | None = None
    promised: float | None = None  # its WAPE on the outer backtest window

    @property
    def promise_ratio(self) -> float | None:
        return None if not self.promised else self.wape / self.promised


@dataclass
class Hindsight:
    """The best of the registered versions on the held-out window, chosen after seeing it
    (:func:`hindsight`): not a forecast anyone could have made."""

    family: str
    wape: float
    pair: str  # "0.30 time_series + 0.70 seasonal_naive"
    pair_wape: float


@dataclass
class DatasetResult:
    name: str
    spec: str
    freq: str
    horizon: int
    n_series: int
    train_periods: int
    origin: str
    test_start: str
    test_end: str
    champion_family: str
    champion_version: str
    promoted: bool  # False: no @champion (nothing beat seasonal naive); the best version
    champion: Score
    promised_wape: float
    promised_coverage: float
    salescast_seconds: float
    families: dict[str, Score] = field(default_factory=dict)  # every registered version
    peers: dict[str, Score] = field(default_factory=dict)
    peers_seconds: float = 0.0
    peers_process_seconds: float = 0.0
    hindsight: Hindsight | None = None

    @property
    def promise_ratio(self) -> float:
        return self.champion.wape / self.promised_wape

    @property
    def best_peer(self) -> tuple[str, Score]:
        return min(self.peers.items(), key=lambda item: item[1].wape)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", choices=DATASETS, default=list(DATASETS))
    parser.add_argument("--quick", action="store_true", help="One Optuna trial per family.")
    parser.add_argument("--peers-python", type=Path, default=PEERS_PYTHON)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "accuracy.json")
    parser.add_argument("--workdir", type=Path, default=None, help="Default: a temp dir.")
    parser.add_argument("--salescast-workers", type=int, default=os.cpu_count() or 1,
                        help="salescast train --workers (default: one per core)")
    parser.add_argument("--earlier-origins", type=int, default=0, metavar="K",
                        help="Also run each data set cut 1..K horizons earlier (default 0).")
    parser.add_argument("--from-results", type=Path, default=None, metavar="JSON",
                        help="Print the tables of a results file written before; run nothing.")
    return parser.parse_args()


def whole_file(spec: ExperimentSpec) -> ExperimentSpec:
    """The same spec without ``data.end``: every period of the file."""
    return spec.model_copy(update={"data": spec.data.model_copy(update={"end": None})})


def held_out_window(spec: ExperimentSpec) -> Window:
    """The base panel as of ``data.end`` and the ``horizon`` periods after it."""
    if spec.data.end is None:
        raise ValueError(f"{spec.name}: the benchmark spec needs data.end (the cut date)")
    columns = ["series_id", "ds", "y"]
    train = build_features(spec).base[columns]
    full = build_features(whole_file(spec)).base[columns]
    return split_after(train, full, spec.horizon)


def split_after(train: pd.DataFrame, full: pd.DataFrame, horizon: int) -> Window:
    """Held out: the rows of ``full`` in the first ``horizon`` periods after ``train``'s
    last period, for the series ``train`` has."""
    origin = train["ds"].max()
    periods = sorted(full.loc[full["ds"] > origin, "ds"].unique())[:horizon]
    if len(periods) < horizon:
        log.warning("only %d of %d periods after %s in the file", len(periods), horizon,
                    pd.Timestamp(origin).date())
    known = full["series_id"].isin(train["series_id"].unique())
    test = full[known & full["ds"].isin(periods)].reset_index(drop=True)
    return Window(train.reset_index(drop=True), test)


def scored_rows(forecast: pd.DataFrame, test: pd.DataFrame) -> pd.DataFrame:
    """The held-out actuals joined with ``forecast`` (rows without an actual dropped)."""
    joined = test.merge(forecast, on=["series_id", "ds"], how="left").dropna(subset=["y"])
    if joined["yhat"].isna().any():
        raise RuntimeError(f"no forecast for {int(joined['yhat'].isna().sum())} held-out rows")
    return joined


def score(forecast: pd.DataFrame, test: pd.DataFrame) -> Score:
    """WAPE and 80 % interval coverage of ``forecast`` (series_id, ds, yhat, yhat_lower,
    yhat_upper) on the held-out actuals (rows without an actual are not scored)."""
    metrics = compute_metrics(scored_rows(forecast, test), 0.8, 1.0)  # salescast's own
    return Score(metrics["wape"], metrics["coverage"])


def hindsight(forecasts: dict[str, pd.DataFrame], test: pd.DataFrame) -> Hindsight:
    """The version with the lowest held-out WAPE, and the best weighting of any two
    (:data:`PAIR_WEIGHTS`), chosen on the held-out window itself (module docstring)."""
    rows = {name: scored_rows(fc[["series_id", "ds", "yhat"]], test)
            for name, fc in forecasts.items()}
    yhat = {name: joined["yhat"].to_numpy() for name, joined in rows.items()}
    actual = next(iter(rows.values()))["y"].to_numpy(dtype=float)  # the same rows in each
    scale = float(np.abs(actual).sum())

    def wape(values: np.ndarray) -> float:
        return float(np.abs(values - actual).sum() / scale)

    best = min(yhat, key=lambda name: wape(yhat[name]))
    pairs = [(best, wape(yhat[best]))]  # a weight of 0 or 1: one version
    pairs += [(f"{w:.2f} {a} + {1 - w:.2f} {b}", wape(w * yhat[a] + (1 - w) * yhat[b]))
              for a, b in combinations(sorted(yhat), 2) for w in PAIR_WEIGHTS[1:-1]]
    pair, pair_wape = min(pairs, key=lambda item: item[1])
    return Hindsight(best, pairs[0][1], pair, pair_wape)


def run_salescast(spec_path: Path, store: Path, quick: bool, workers: int) -> float:
    """`salescast train --spec --workers` into the temporary store; its wall seconds."""
    command = [str(Path(sys.executable).parent / "salescast"), "train", "--spec", str(spec_path),
               "--workers", str(workers)]
    command += ["--trials", "1"] if quick else []
    env = os.environ | {
        "PYTHONPATH": str(REPO),  # this checkout's code, whichever one salescast is installed from
        "SALESCAST_TRACKING_URI": f"sqlite:///{store / 'mlflow.db'}",
        "SALESCAST_OPTUNA_STORAGE": f"sqlite:///{store / 'optuna.db'}",
        "SALESCAST_ARTIFACT_LOCATION": (store / "mlartifacts").as_uri(),
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    }
    logfile = store / f"train-{spec_path.stem}.log"
    started = time.perf_counter()
    with logfile.open("wb") as out:
        done = subprocess.run(command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"salescast train failed ({done.returncode}); see {logfile}:\n"
                           + logfile.read_text()[-3000:])
    log.info("salescast train %s: %.0f s\n%s", spec_path.name, seconds,
             logfile.read_text().strip()[-2500:])
    return seconds


def registered_versions(store: Path, name: str) -> tuple[str | None, dict[str, dict[str, str]]]:
    """The @champion version and every version's tags (version -> tags)."""
    from mlflow import MlflowClient

    uri = f"sqlite:///{store / 'mlflow.db'}"
    client = MlflowClient(uri, registry_uri=uri)
    champion = client.get_registered_model(name).aliases.get("champion")
    tags = {str(version.version): dict(version.tags)
            for version in client.search_model_versions(f"name='{name}'")}
    return (str(champion) if champion is not None else None), tags


def load_version(store: Path, name: str, version: str) -> PyFuncModel:
    """The registered version as an application loads it (``mlflow.pyfunc``)."""
    import mlflow.pyfunc

    uri = f"sqlite:///{store / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return mlflow.pyfunc.load_model(f"models:/{name}/{version}")


def refit_seconds(model: PyFuncModel, training_set: TrainingSet) -> float:
    """Wall seconds of one fit of the version's family with its params on the training set,
    in this process, as the peers are timed: the best of two fits (the first may start
    joblib's worker processes, which a training run starts once)."""
    from sklearn.base import clone

    forecaster = model.unwrap_python_model().forecaster
    times = []
    for _ in range(2):
        started = time.perf_counter()
        clone(forecaster).fit(training_set)
        times.append(time.perf_counter() - started)
    return min(times)


def forecast_version(model: PyFuncModel, test: pd.DataFrame) -> pd.DataFrame:
    """The registered version's forecast of the held-out rows, through its pyfunc."""
    rows = test[["series_id", "ds"]].drop_duplicates().reset_index(drop=True)
    forecast = model.predict(rows)
    forecast["ds"] = pd.to_datetime(forecast["ds"])
    return forecast


@dataclass(frozen=True)
class PeerRun:
    """What bench/peers.py measured: each peer held out (with its promise: its WAPE on
    the outer window), their summed seconds, and the whole subprocess's (imports included)."""

    scores: dict[str, Score]
    seconds: float
    wall: float


def run_peers(window: Window, spec: ExperimentSpec, workdir: Path, python: Path,
              quick: bool) -> PeerRun:
    """bench/peers.py in .venv-peers (:class:`PeerRun`)."""
    if not python.exists():
        raise FileNotFoundError(f"{python} is missing: `make bench-accuracy` creates it")
    paths = {}
    for part, frame in (("train", window.train), ("test", window.test)):
        paths[part] = workdir / f"{spec.name}-{part}.parquet"
        frame.rename(columns={"series_id": "unique_id"}).to_parquet(paths[part], index=False)
    out = workdir / f"{spec.name}-peers.json"
    command = [str(python), str(REPO / "bench" / "peers.py"), "--train", str(paths["train"]),
               "--test", str(paths["test"]), "--freq", spec.frequency, "--horizon",
               str(spec.horizon), "--season-length", str(spec.season_length), "--out", str(out)]
    command += ["--quick"] if quick else []
    started = time.perf_counter()
    subprocess.run(command, check=True)
    wall = time.perf_counter() - started
    document = json.loads(out.read_text())
    scores = {name: Score(**values) for name, values in document["models"].items()}
    for name, values in document["promised"].items():
        scores[name].promised = values["wape"]
    return PeerRun(scores, sum(s.seconds or 0.0 for s in scores.values()), wall)


def earlier_spec(name: str, horizons: int, workdir: Path) -> Path:
    """``bench/specs/<name>.yaml`` with ``data.end`` moved ``horizons`` x ``horizon``
    periods earlier, written to ``workdir``: its held-out window is the one just before
    the window of the spec ``horizons - 1`` earlier (back to back, never overlapping)."""
    import yaml

    document = yaml.safe_load((SPECS / f"{name}.yaml").read_text())
    spec = load_spec(SPECS / f"{name}.yaml")
    if spec.data.end is None:
        raise ValueError(f"{name}: the benchmark spec needs data.end (the cut date)")
    periods = horizons * spec.horizon
    step = {"D": pd.DateOffset(days=periods), "W": pd.DateOffset(weeks=periods),
            "M": pd.DateOffset(months=periods)}[spec.frequency]
    end = pd.Timestamp(spec.data.end) - step
    document["data"]["end"] = str(end.date())
    path = workdir / f"{name}-minus{horizons}.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def run_origins(name: str, workdir: Path, args: argparse.Namespace) -> list[DatasetResult]:
    """The data set as its spec cuts it, then ``--earlier-origins`` earlier cuts."""
    results = [run_dataset(name, SPECS / f"{name}.yaml", workdir, args)]
    for horizons in range(1, args.earlier_origins + 1):
        results.append(run_dataset(f"{name}-{horizons}", earlier_spec(name, horizons, workdir),
                                   workdir, args))
    return results


def run_dataset(name: str, spec_path: Path, workdir: Path,
                args: argparse.Namespace) -> DatasetResult:
    spec = load_spec(spec_path)
    os.chdir(REPO)  # the specs' data paths are relative to the repo
    window = held_out_window(spec)
    log.info("%s: %d series, trained to %s, held out %s .. %s (%d rows)", name,
             window.train["series_id"].nunique(), window.origin.date(),
             window.test["ds"].min().date(), window.test["ds"].max().date(), len(window.test))
    store = workdir / name
    store.mkdir(parents=True, exist_ok=True)
    seconds = run_salescast(spec_path, store, args.quick, args.salescast_workers)
    champion, tags = registered_versions(store, spec.registered_model_name)
    promoted = champion is not None
    if champion is None:  # nothing promoted: judge the best version on the backtest
        champion = min(tags, key=lambda v: float(tags[v]["wape"]))
        log.warning("%s: no @champion; scoring the best version v%s", name, champion)
    families, forecasts = {}, {}
    training_set = build_features(spec)
    for version, meta in tags.items():
        model = load_version(store, spec.registered_model_name, version)
        forecasts[meta["family"]] = forecast_version(model, window.test)
        families[meta["family"]] = score(forecasts[meta["family"]], window.test)
        families[meta["family"]].seconds = refit_seconds(model, training_set)
        families[meta["family"]].promised = float(meta["wape"])
    peers = run_peers(window, spec, store, args.peers_python, args.quick)
    meta = tags[champion]
    return DatasetResult(
        name=name, freq=spec.frequency,
        spec=str(spec_path.relative_to(REPO) if spec_path.is_relative_to(REPO) else spec_path),
        horizon=spec.horizon, n_series=int(window.train["series_id"].nunique()),
        train_periods=int(window.train["ds"].nunique()), origin=str(window.origin.date()),
        test_start=str(window.test["ds"].min().date()),
        test_end=str(window.test["ds"].max().date()), champion_family=meta["family"],
        champion_version=champion, promoted=promoted, champion=families[meta["family"]],
        promised_wape=float(meta["wape"]), promised_coverage=float(meta["coverage"]),
        salescast_seconds=seconds, families=families, peers=peers.scores,
        peers_seconds=peers.seconds,
        peers_process_seconds=peers.wall, hindsight=hindsight(forecasts, window.test))


def print_summary(results: list[DatasetResult]) -> None:
    """The one table: salescast's champion next to the best peer."""
    print(f"{'data set':<15}| {'champion (family)':<20}{'held-out':>9}{'promised':>9}"
          f"{'held/prom':>10}{'cover':>7} | {'best peer':<10}{'WAPE':>7}{'ratio':>7} | "
          f"{'salescast s':>11}{'peers s':>9}")
    for r in results:
        peer, best = r.best_peer
        verdict = "ok" if keeps_promise(r.promise_ratio) else "MISS"
        family = r.champion_family + ("" if r.promoted else " *")
        print(f"{r.name:<15}| {family:<20}{r.champion.wape:>9.3f}"
              f"{r.promised_wape:>9.3f}{r.promise_ratio:>6.2f} {verdict:<4}"
              f"{r.champion.coverage or 0:>6.2f} | {peer:<10}{best.wape:>7.3f}"
              f"{r.champion.wape / best.wape:>7.2f} | {r.salescast_seconds:>11.0f}"
              f"{r.peers_seconds:>9.0f}")
    print(f"ratio = salescast champion's held-out WAPE / best peer's (< 1: salescast better); "
          f"held/prom: point 0 asks within ±{TOLERANCE:.0%}; cover: 80 % interval coverage; "
          "* no @champion (nothing beat seasonal naive): the version with the best backtest")


def print_origins(results: list[DatasetResult]) -> None:
    """Per data set, over its held-out windows (the spec's and the earlier ones): the
    champion's and the best peer's mean WAPE, and how many windows met each target."""
    print(f"\n{'data set':<15}{'windows':>8}{'champion':>10}{'best peer':>10}{'ratio':>7}"
          f"{'ratio met':>10}{'promise ok':>11}{'cover ok':>9}{'held/prom':>10}{'cover':>7}")
    by_set: dict[str, list[DatasetResult]] = {}
    for r in results:  # "tx_housing-2": the set cut two horizons earlier
        by_set.setdefault(r.name.split("-")[0], []).append(r)
    for name, rows in [*by_set.items(), ("all", results)]:
        ours = float(np.mean([r.champion.wape for r in rows]))
        best = float(np.mean([r.best_peer[1].wape for r in rows]))
        met = sum(r.champion.wape <= TARGET_RATIO * r.best_peer[1].wape for r in rows)
        held, kept, cover, inside = promise_figures([r.champion for r in rows])
        print(f"{name:<15}{len(rows):>8}{ours:>10.3f}{best:>10.3f}{ours / best:>7.2f}"
              f"{met:>7}/{len(rows):<2}{kept:>8}/{len(rows):<2}{inside:>6}/{len(rows):<2}"
              f"{held:>10.2f}{cover:>7.2f}")
    print("best peer: the best peer of each window (mean of their WAPEs); ratio met: "
          "champion <= 0.95 x best peer; promise ok: held/prom within ±20 %; cover ok: "
          "coverage within 0.75-0.85; held/prom: the windows' held-out WAPEs summed over "
          "their promises summed (how far the promise is off across windows); cover: the "
          "windows' mean coverage (the interval's calibration across windows)")
    print_pooled(results)


def print_pooled(results: list[DatasetResult]) -> None:
    """salescast's champion and each peer over every window: the same promise and
    coverage figures, so the champion's can be read against theirs."""
    models = {"salescast champion": [r.champion for r in results]}
    for peer in sorted({p for r in results for p in r.peers}):
        models[f"peer {peer}"] = [r.peers[peer] for r in results if peer in r.peers]
    print(f"\n{'model, over every window':<28}{'windows':>8}{'held/prom':>10}"
          f"{'promise ok':>11}{'cover':>7}{'cover ok':>9}")
    for label, scores in models.items():
        held, kept, cover, inside = promise_figures(scores)
        count = len(scores)
        print(f"{label:<28}{count:>8}{held:>10.2f}{kept:>8}/{count:<2}"
              f"{cover:>7.2f}{inside:>6}/{count:<2}")


def keeps_promise(ratio: float) -> bool:
    """Point 0's verdict on held-out WAPE / promised WAPE: within ±:data:`TOLERANCE`."""
    return abs(ratio - 1) <= TOLERANCE


def promise_figures(scores: list[Score]) -> tuple[float, int, float, int]:
    """Over windows (one score each): held-out over promised WAPE, each summed (how far
    the promise is off across them); the windows whose promise held within ±20 %; the
    mean coverage; the windows whose coverage is within 0.75-0.85."""
    pairs = [(s.wape, s.promised) for s in scores if s.promised]
    held = sum(w for w, _ in pairs) / sum(p for _, p in pairs) if pairs else float("nan")
    kept = sum(keeps_promise(w / p) for w, p in pairs)
    cover = [s.coverage or 0.0 for s in scores]
    inside = sum(0.75 <= c <= 0.85 for c in cover)
    return held, kept, float(np.mean(cover)) if cover else float("nan"), inside


def print_details(results: list[DatasetResult]) -> None:
    """Every model on every data set: held-out WAPE, coverage, seconds, promise."""
    print(f"\n{'data set':<15}{'model':<40}{'WAPE':>7}{'cover':>7}{'seconds':>9}"
          f"{'promised':>9}{'held/prom':>10}")
    for r in results:
        chosen = " (champion)" if r.promoted else " (best backtest *)"
        rows = [(f"salescast {f}" + (chosen if f == r.champion_family else ""), s)
                for f, s in sorted(r.families.items(), key=lambda item: item[1].wape)]
        rows += [(f"peer {p}", s) for p, s in sorted(r.peers.items(),
                                                     key=lambda item: item[1].wape)]
        for label, s in rows:
            seconds = f"{s.seconds:>9.1f}" if s.seconds is not None else f"{'-':>9}"
            coverage = f"{s.coverage:>7.2f}" if s.coverage is not None else f"{'-':>7}"
            print(f"{r.name:<15}{label:<40}{s.wape:>7.3f}{coverage}{seconds}"
                  f"{promise_text(s)}")
    print("salescast families: every registered version of the one train run asked for the "
          "held-out rows; seconds = one fit of its family with its params on the training set, "
          "in this process, best of two (tuning and backtests are in the train seconds "
          "above); peers: fit + forecast + interval; promised: WAPE on the outer backtest "
          "window (a peer: fitted without the training panel's last horizon, scored on it)")


def print_hindsight(results: list[DatasetResult]) -> None:
    """Per window: the champion's ratio to the best peer next to what the run's versions
    could have scored with hindsight (:func:`hindsight`)."""
    rows = [(r, r.hindsight) for r in results if r.hindsight is not None]
    if not rows:
        return
    print(f"\n{'data set':<17}{'best peer':>10}{'champion':>9}{'best version, hindsight':>38}"
          f"{'best pair of versions, hindsight':>58}")
    for r, h in rows:
        best = r.best_peer[1].wape
        print(f"{r.name:<17}{best:>10.3f}{r.champion.wape / best:>9.2f}"
              f"{h.family:>24} {h.wape:.3f} {h.wape / best:>5.2f}"
              f"{h.pair:>44} {h.pair_wape:.3f} {h.pair_wape / best:>5.2f}")
    print(f"ratios: WAPE / the window's best peer; issue 10 asks <= {TARGET_RATIO}. Hindsight "
          "chooses on the held-out window itself (no rule could): where even the best pair "
          "misses, no choice among this run's versions would have met the target")


def promise_text(score: Score) -> str:
    """The promised WAPE and held-out / promised, with point 0's verdict."""
    ratio = score.promise_ratio
    if ratio is None or score.promised is None:
        return f"{'-':>9}{'-':>10}"
    verdict = "ok" if keeps_promise(ratio) else "MISS"
    return f"{score.promised:>9.3f}{ratio:>6.2f} {verdict:<4}"


def write_results(results: list[DatasetResult], args: argparse.Namespace,
                  seconds: float) -> None:
    document: dict[str, Any] = {
        "measured": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "quick": args.quick, "cores": os.cpu_count(), "salescast_workers": args.salescast_workers,
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "bench_seconds": round(seconds, 1),
        "datasets": [asdict(r) | {"promise_ratio": r.promise_ratio,
                                  "best_peer": r.best_peer[0]} for r in results],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=2) + "\n")
    log.info("results written to %s", args.out)


def read_results(path: Path) -> list[DatasetResult]:
    """The data sets of a results file (:func:`write_results`'s document)."""
    def scores(values: dict[str, dict[str, Any]]) -> dict[str, Score]:
        return {name: Score(**value) for name, value in values.items()}

    names = {f.name for f in fields(DatasetResult)}
    rows = json.loads(path.read_text())["datasets"]
    return [DatasetResult(**({k: v for k, v in row.items() if k in names}
                             | {"champion": Score(**row["champion"]),
                                "families": scores(row["families"]),
                                "peers": scores(row["peers"]),
                                "hindsight": Hindsight(**row["hindsight"])
                                if row.get("hindsight") else None})) for row in rows]


def print_tables(results: list[DatasetResult]) -> None:
    """Every table of a run: the summary, each model, and the windows when there are
    earlier ones (their names end in -1, -2, ...)."""
    print_summary(results)
    print_details(results)
    print_hindsight(results)
    if any("-" in r.name for r in results):  # earlier origins were run
        print_origins(results)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    for noisy in ("mlflow", "alembic", "optuna", "features", "experiments"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    args = parse_args()
    if args.from_results:
        print_tables(read_results(args.from_results))
        return
    args.out = args.out.resolve()
    workdir = (args.workdir or Path(tempfile.mkdtemp(prefix="bench-accuracy-"))).resolve()
    started = time.perf_counter()
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    log.info("workdir %s; %s cores, load average %s", workdir, os.cpu_count(), load)
    results = [r for name in args.datasets for r in run_origins(name, workdir, args)]
    seconds = time.perf_counter() - started
    print(f"accuracy benchmark{' (--quick)' if args.quick else ''}: {len(results)} data sets "
          f"in {seconds:.0f} s; {os.cpu_count()} cores, load average at the start {load}")
    print_tables(results)
    write_results(results, args, seconds)


if __name__ == "__main__":
    main()
