"""Fits on a Dask cluster: the same forecasts and backtest as on this machine, the work
really done by the cluster's workers (its task stream), pruning at the same window, and an
unreachable scheduler refused within seconds.

One ``LocalCluster`` (2 worker processes, 1 thread each) serves the whole module: starting
one takes seconds. Each test sends work to it with ``use_engine``; outside, the same code
runs here, which is the reference.
"""

from __future__ import annotations

import logging
import re
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager

import optuna
import pandas as pd
import pytest

from features import TrainingSet
from tests.training._panels import PanelShape, make_training_set
from training.backtest import BacktestWindow, make_windows, run_backtest
from training.config import BacktestConfig
from training.distributed import (
    Engine,
    SchedulerUnavailable,
    active_engine,
    compute_engine,
    open_engine,
    use_engine,
)
from training.forecasters import SeasonalNaive, TimeSeriesForecaster
from training.forecasters.time_series import BATCHES_PER_WORKER

pytest.importorskip("distributed")  # the dask extra
H = 4
N_SERIES = 8


@pytest.fixture(scope="module")
def engine() -> Iterator[Engine]:
    with open_engine("local", 2) as opened:
        yield opened


@pytest.fixture(scope="module")
def panel() -> TrainingSet:
    return make_training_set(PanelShape(n_series=N_SERIES, seed=5, periods=110), horizon=H)


@pytest.fixture(scope="module")
def windows(panel: TrainingSet) -> list[BacktestWindow]:
    return make_windows(panel, BacktestConfig(n_windows=3, step=H, min_train_periods=80))


@contextmanager
def tasks_done(engine: Engine) -> Iterator[list[dict]]:
    """The cluster's task records (key, worker, ...) of the tasks finished inside. Task keys
    are unique: new keys, not a start time (the workers' clocks are corrected by estimated
    offsets, so a time boundary can drop tasks)."""
    before = {task["key"] for task in engine.client.get_task_stream()}
    done: list[dict] = []
    yield done
    done += [task for task in engine.client.get_task_stream() if task["key"] not in before]


def calls(tasks: list[dict], function: str) -> tuple[int, set[str]]:
    """How many times ``tasks`` called ``function``, and on which workers. A joblib task's
    key is ``batch_of_<function>_<n>_calls-<uuid>``: joblib may group calls in one task."""
    pattern = re.compile(rf"batch_of_{function}_(\d+)_calls-")
    found = [(pattern.match(str(task["key"])), task["worker"]) for task in tasks]
    return (sum(int(match.group(1)) for match, _ in found if match),
            {worker for match, worker in found if match})


def test_the_time_series_family_fits_on_the_cluster_with_the_local_forecasts(
    engine: Engine, panel: TrainingSet
) -> None:
    local = TimeSeriesForecaster(n_jobs=1).fit(panel)
    with use_engine(engine), tasks_done(engine) as tasks:
        remote = TimeSeriesForecaster(n_jobs=-1).fit(panel)
    pd.testing.assert_frame_equal(remote.predict_mean(H), local.predict_mean(H),
                                  check_exact=True)
    pd.testing.assert_series_equal(remote.chosen_models(), local.chosen_models())
    count, workers = calls(tasks, "fit_batch")
    assert count == min(N_SERIES, BATCHES_PER_WORKER * engine.threads)
    assert workers and workers <= set(engine.client.nthreads())


def test_backtest_windows_run_on_the_cluster_with_the_sequential_results(
    engine: Engine, panel: TrainingSet, windows: list[BacktestWindow]
) -> None:
    forecaster = TimeSeriesForecaster(model="ets", n_jobs=1)
    local_reports: list[tuple[int, float]] = []
    local = run_backtest(forecaster, panel, windows, on_window=lambda *r: local_reports.append(r))
    reports: list[tuple[int, float]] = []
    with use_engine(engine), tasks_done(engine) as tasks:
        remote = run_backtest(forecaster, panel, windows, on_window=lambda *r: reports.append(r))
    assert remote.metrics == local.metrics
    assert reports == local_reports  # same windows, in order, same values
    pd.testing.assert_frame_equal(remote.predictions, local.predictions, check_exact=True)
    pd.testing.assert_frame_equal(remote.window_metrics, local.window_metrics, check_exact=True)
    assert calls(tasks, "forecast_window")[0] == len(windows)
    assert calls(tasks, "fit_batch")[0] == 0  # n_jobs 1: each window fits inside its own task


def test_pruning_on_the_cluster_stops_at_the_same_window(
    engine: Engine, panel: TrainingSet, windows: list[BacktestWindow]
) -> None:
    def pruned_runs() -> list[int]:
        reported: list[int] = []

        def prune_at_second(k: int, wape: float) -> None:
            reported.append(k)
            if len(reported) == 2:
                raise optuna.TrialPruned(f"window {k}")

        with pytest.raises(optuna.TrialPruned, match=f"window {windows[1].index}"):
            run_backtest(SeasonalNaive(), panel, windows, on_window=prune_at_second)
        return reported

    with use_engine(engine), tasks_done(engine) as tasks:
        on_the_cluster = pruned_runs()
    assert on_the_cluster == pruned_runs() == [windows[0].index, windows[1].index]
    assert calls(tasks, "forecast_window")[0] >= 2  # the reported ones ran there


def test_a_running_scheduler_is_reached_by_its_address(
    engine: Engine, panel: TrainingSet, caplog: pytest.LogCaptureFixture
) -> None:
    address = engine.client.scheduler.address  # the module's cluster, as a remote one
    local = TimeSeriesForecaster(model="theta_standard", n_jobs=1).fit(panel)
    with caplog.at_level(logging.INFO, "training.distributed"), \
            compute_engine(address, 1) as remote, tasks_done(engine) as tasks:
        fitted = TimeSeriesForecaster(model="theta_standard", n_jobs=-1).fit(panel)
    assert remote is not None and (remote.name, remote.workers) == (address, 2)
    assert f"compute engine: Dask {address}, 2 workers" in caplog.text
    assert "other versions" not in caplog.text
    assert calls(tasks, "fit_batch")[0] > 1
    pd.testing.assert_frame_equal(fitted.predict_mean(H), local.predict_mean(H),
                                  check_exact=True)


def test_a_worker_with_other_versions_is_named(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from distributed import Client

    real = Client.get_versions

    def drifted(self: Client, *args: object, **kwargs: object) -> dict:
        versions = real(self, *args, **kwargs)
        next(iter(versions["workers"].values()))["packages"]["statsmodels"] = "0.0.1"
        return versions

    monkeypatch.setattr(Client, "get_versions", drifted)
    with caplog.at_level(logging.WARNING, "training.distributed"), \
            compute_engine(engine.client.scheduler.address, 1):
        pass
    assert "has other versions: statsmodels 0.0.1 (here " in caplog.text


def test_without_a_scheduler_nothing_changes() -> None:
    with compute_engine(None, 2) as engine:
        assert engine is None and active_engine() is None


@pytest.mark.parametrize("address", ["localhost:8786", "dask"])
def test_an_address_without_a_scheme_is_refused(address: str) -> None:
    with pytest.raises(ValueError, match="'local' or an address such as tcp://"), \
            compute_engine(address, 2):
        pass


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_an_unreachable_scheduler_fails_fast_with_a_clear_error() -> None:
    address = f"tcp://127.0.0.1:{closed_port()}"
    started = time.perf_counter()
    with pytest.raises(SchedulerUnavailable,
                       match=re.escape(f"no Dask scheduler answers at {address}")), \
            compute_engine(address, 2, connect_timeout=1.0):
        pass
    assert time.perf_counter() - started < 5
    assert active_engine() is None


def test_a_scheduler_without_workers_fails_fast_with_a_clear_error() -> None:
    from distributed import LocalCluster

    bare = LocalCluster(n_workers=0, processes=False, protocol="tcp://", host="127.0.0.1",
                        dashboard_address=":0")
    with bare, pytest.raises(SchedulerUnavailable, match="has no worker after 1 s"), \
            compute_engine(bare.scheduler_address, 2, connect_timeout=1.0):
        pass

