"""The accuracy benchmark's data: the shipped panels load as the specs say, and the
held-out window and its scores are computed as `bench/accuracy.py` documents."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pandas as pd
import pytest

from tests.bench.loader import load_bench

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def accuracy() -> ModuleType:
    return load_bench("accuracy")


# name, series, first period, last period (whole file), periods held out
SHIPPED = [
    ("tx_housing", 26, "2000-01-01", "2015-07-01", 12),
    ("chicago_l", 20, "2013-08-15", "2016-08-14", 14),
]


@pytest.mark.parametrize(("name", "n_series", "first", "last", "held_out"), SHIPPED)
def test_shipped_panel_is_complete_and_held_out_as_specified(
    accuracy: ModuleType, monkeypatch: pytest.MonkeyPatch, name: str, n_series: int,
    first: str, last: str, held_out: int,
) -> None:
    monkeypatch.chdir(REPO)  # the specs' data paths are relative to the repo
    spec = accuracy.load_spec(REPO / "bench" / "specs" / f"{name}.yaml")
    window = accuracy.held_out_window(spec)
    whole = pd.concat([window.train, window.test])
    assert whole["series_id"].nunique() == n_series
    assert (whole["ds"].min(), whole["ds"].max()) == (pd.Timestamp(first), pd.Timestamp(last))
    assert whole["y"].notna().all() and (whole["y"] >= 0).all()
    assert window.test["ds"].nunique() == held_out == spec.horizon
    assert len(window.test) == n_series * held_out
    assert window.test["ds"].min() > window.origin


def test_held_out_rows_are_the_horizon_after_the_training_panel(accuracy: ModuleType) -> None:
    ds = pd.date_range("2024-01-01", periods=10, freq="MS")
    full = pd.DataFrame({"series_id": ["a"] * 10 + ["b"] * 10, "ds": list(ds) * 2,
                         "y": range(20)})
    train = full[(full["ds"] <= ds[5]) & (full["series_id"] == "a")]
    window = accuracy.split_after(train, full, horizon=3)
    assert window.origin == ds[5]
    assert window.test["ds"].tolist() == list(ds[6:9])
    assert set(window.test["series_id"]) == {"a"}  # a series not trained on is not scored


def test_score_is_wape_and_interval_coverage(accuracy: ModuleType) -> None:
    test = pd.DataFrame({"series_id": ["a", "a"], "ds": pd.to_datetime(["2024-01-01",
                                                                        "2024-02-01"]),
                         "y": [10.0, 30.0]})
    forecast = test.assign(yhat=[12.0, 24.0], yhat_lower=[9.0, 25.0], yhat_upper=[15.0, 28.0])
    result = accuracy.score(forecast.drop(columns="y"), test)
    assert result.wape == pytest.approx((2 + 6) / 40)
    assert result.coverage == pytest.approx(0.5)


def test_hindsight_is_the_best_version_and_the_best_pair_on_the_window(
        accuracy: ModuleType) -> None:
    """Hindsight picks, on the held-out rows themselves, the version with the lowest WAPE
    (as `score` computes it) and the weighting of two that cancels their errors."""
    test = pd.DataFrame({"series_id": ["a", "a", "b", "b"],
                         "ds": pd.to_datetime(["2024-01-01", "2024-02-01"] * 2),
                         "y": [10.0, 30.0, 20.0, 40.0]})
    keys = test[["series_id", "ds"]]
    forecasts = {"over": keys.assign(yhat=test["y"] * 1.1),  # WAPE 0.1
                 "under": keys.assign(yhat=test["y"] * 0.7),  # WAPE 0.3
                 "far": keys.assign(yhat=test["y"] * 2.0)}  # WAPE 1.0
    result = accuracy.hindsight(forecasts, test)
    assert result.family == "over"
    assert result.wape == pytest.approx(0.1)
    over = forecasts["over"].assign(yhat_lower=0.0, yhat_upper=100.0)
    assert result.wape == pytest.approx(accuracy.score(over, test).wape)
    assert result.pair == "0.75 over + 0.25 under"  # 0.75 x 1.1 + 0.25 x 0.7 = 1
    assert result.pair_wape == pytest.approx(0.0, abs=1e-12)

    alone = accuracy.hindsight({"far": forecasts["far"]}, test)
    assert (alone.family, alone.pair, alone.pair_wape) == ("far", "far", pytest.approx(1.0))


def test_peers_promise_window_is_salescasts_outer_window(accuracy: ModuleType,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The peers are promised on the periods salescast's nested backtest holds out for its
    own promise (``outer_windows: 1``): same origin, same ``horizon`` periods, every series."""
    from training.backtest import plan_windows

    monkeypatch.chdir(REPO)
    spec = accuracy.load_spec(REPO / "bench" / "specs" / "tx_housing.yaml")
    training_set = accuracy.build_features(spec)
    outer = plan_windows(training_set, spec.backtest).outer
    panel = training_set.base[["series_id", "ds", "y"]].rename(columns={"series_id": "unique_id"})
    fitted, scored = load_bench("peers").last_window(panel, spec.horizon)
    assert len(outer) == 1 and fitted["ds"].max() == outer[0].origin
    assert sorted(scored["ds"].unique()) == sorted(
        training_set.base.loc[training_set.base["ds"] > outer[0].origin, "ds"].unique())
    assert scored["ds"].nunique() == spec.horizon
    assert scored.groupby("unique_id").size().eq(spec.horizon).all()
    assert len(fitted) + len(scored) == len(panel)


def test_peers_promise_window_needs_history_before_it() -> None:
    panel = pd.DataFrame({"unique_id": ["a"] * 3,
                          "ds": pd.date_range("2024-01-01", periods=3, freq="MS"), "y": 1.0})
    with pytest.raises(ValueError, match="3 training periods: no window of 3"):
        load_bench("peers").last_window(panel, 3)


@pytest.mark.parametrize("name", ["online_retail", "tx_housing", "chicago_l"])
def test_earlier_origins_hold_out_back_to_back_windows(
        accuracy: ModuleType, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, name: str) -> None:
    """Each earlier cut holds out the ``horizon`` periods just before the later cut's
    window: no gap, no overlap, the same series and the rest of the spec unchanged."""
    monkeypatch.chdir(REPO)
    spec = accuracy.load_spec(REPO / "bench" / "specs" / f"{name}.yaml")
    windows = [accuracy.held_out_window(spec)]
    for horizons in (1, 2):
        earlier = accuracy.load_spec(accuracy.earlier_spec(name, horizons, tmp_path))
        assert earlier.model_copy(update={"data": spec.data}) == spec
        windows.append(accuracy.held_out_window(earlier))
    for later, earlier_window in pairwise(windows):
        periods = sorted(earlier_window.test["ds"].unique())
        assert len(periods) == spec.horizon
        assert periods[-1] == later.origin  # ends where the later training panel ends
        assert set(earlier_window.test["series_id"]) <= set(later.train["series_id"])


def test_the_target_scale_bench_scores_the_accuracy_benchs_three_windows(
        accuracy: ModuleType, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """``bench/target_scale.py`` backtests the windows that ``--earlier-origins 2`` holds
    out: the same origins and periods, oldest first."""
    monkeypatch.chdir(REPO)
    target_scale = load_bench("target_scale")
    name = "tx_housing"
    spec = accuracy.load_spec(REPO / "bench" / "specs" / f"{name}.yaml")
    held_out = [accuracy.held_out_window(accuracy.load_spec(
        accuracy.earlier_spec(name, k, tmp_path))) for k in (2, 1)]
    held_out.append(accuracy.held_out_window(spec))
    _, windows = target_scale.windows_of(name)
    assert [w.index for w in windows] == [0, 1, 2]
    for window, expected in zip(windows, held_out, strict=True):
        periods = sorted(expected.test["ds"].unique())
        assert window.origin == expected.origin
        assert (window.origin, window.ds_end) == (expected.train["ds"].max(), periods[-1])


def _window(accuracy: ModuleType, name: str, held: float, promised: float,
            coverage: float) -> Any:
    """One window's result: the champion held out at ``held`` against ``promised``, and
    a peer whose held-out WAPE is twice what it promised."""
    champion = accuracy.Score(held, coverage, 1.0, promised)
    peer = accuracy.Score(2 * held, 0.8, 0.5, held)
    return accuracy.DatasetResult(
        name=name, spec="s.yaml", freq="W", horizon=4, n_series=2, train_periods=40,
        origin="2024-01-01", test_start="2024-01-08", test_end="2024-01-29",
        champion_family="lightgbm", champion_version="3", promoted=True, champion=champion,
        promised_wape=promised, promised_coverage=0.8, salescast_seconds=10.0,
        families={"lightgbm": champion}, peers={"AutoETS": peer},
        hindsight=accuracy.Hindsight("lightgbm", held, "lightgbm", held))


def test_results_file_reads_back_and_pools_the_windows(accuracy: ModuleType,
                                                        tmp_path: Path) -> None:
    """`--from-results` prints the tables of a saved run: the file reads back into the
    same results, and the pooled promise is summed held-out over summed promised."""
    results = [_window(accuracy, "a", 0.10, 0.20, 0.95),
               _window(accuracy, "a-1", 0.28, 0.25, 0.80)]
    args = SimpleNamespace(quick=False, salescast_workers=2, out=tmp_path / "r.json")
    accuracy.write_results(results, args, 12.0)
    assert accuracy.read_results(args.out) == results

    held, kept, cover, inside = accuracy.promise_figures([r.champion for r in results])
    assert held == pytest.approx(0.38 / 0.45)
    assert kept == 1  # 0.28 / 0.25 = 1.12 holds; 0.10 / 0.20 = 0.5 does not
    assert cover == pytest.approx(0.875) and inside == 1
    peers = accuracy.promise_figures([r.peers["AutoETS"] for r in results])
    assert peers[0] == pytest.approx(2.0) and peers[1] == 0
