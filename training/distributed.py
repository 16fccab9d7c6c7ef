"""Where the parallel work runs: this machine (joblib's loky processes) or a Dask cluster.

Two kinds of work are parallel, both through joblib: the per-series statistical fits
(:meth:`~training.forecasters.time_series.TimeSeriesForecaster.fit`, batches of series)
and, on a cluster only, the backtest windows (:func:`training.backtest.run_backtest`).
:func:`compute_engine` chooses where they go:

* ``None`` — nothing changes: loky processes on this machine, ``n_jobs`` of them;
* ``"local"`` — a Dask ``LocalCluster`` of ``n_jobs`` worker processes, one thread each
  (the fits are Python-heavy: processes, not threads, sidestep the GIL);
* ``"tcp://host:8786"`` (any Dask address) — a ``Client`` of a running scheduler; its
  workers need the same salescast and library versions as this process. An unreachable
  scheduler, or one without workers, fails within ``connect_timeout`` seconds.

Inside, ``joblib.parallel_config(backend="dask")`` sends every joblib job to the cluster:
the forecasters' code is the same in both cases, and so are the results (each job is the
same pure function of the same inputs, wherever it runs; a remote worker with other
versions of the packages that make the forecasts is named in a warning).

Dask rather than Ray: joblib itself ships and tests its Dask backend, and a joblib call
nested in a Dask task (a backtest window's per-series fits) secedes from the worker's
thread pool instead of deadlocking; ``dask[distributed]`` is pure Python with no runtime
of its own, and a ``LocalCluster`` starts in seconds, so the tests run the real thing.
Ray (reachable from joblib too, through ``ray.util.joblib``) brings its own runtime and
object store, which these CPU-bound fits with small inputs do not need.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING

from joblib import parallel_config

if TYPE_CHECKING:
    from distributed import Client

log = logging.getLogger(__name__)
LOCAL = "local"
CONNECT_TIMEOUT = 10.0  # seconds to reach a scheduler and see a worker
RESULT_PACKAGES = ("salescast", "numpy", "pandas", "scipy", "statsmodels", "scikit-learn",
                   "lightgbm")  # a worker with other versions may forecast otherwise
_ACTIVE: ContextVar[Engine | None] = ContextVar("salescast_compute_engine", default=None)


class SchedulerUnavailable(ConnectionError):
    """The Dask scheduler cannot be reached, or has no workers."""


@dataclass(frozen=True)
class Engine:
    """A Dask cluster the joblib jobs can go to: what it is and its size when opened."""

    name: str  # "LocalCluster" or the scheduler's address
    client: Client
    workers: int
    threads: int


def active_engine() -> Engine | None:
    """The engine of the enclosing :func:`use_engine` (``None``: this machine, loky)."""
    return _ACTIVE.get()


@contextmanager
def compute_engine(scheduler: str | None, n_jobs: int,
                   connect_timeout: float = CONNECT_TIMEOUT) -> Iterator[Engine | None]:
    """Run the joblib work inside on ``scheduler`` (see the module docstring); ``n_jobs``
    sizes a ``"local"`` cluster and is ignored by a remote one (its workers are fixed)."""
    if not scheduler:
        log.info("compute engine: this machine (joblib loky, n_jobs %d)", n_jobs)
        yield None
        return
    with open_engine(scheduler, n_jobs, connect_timeout) as engine, use_engine(engine):
        yield engine


@contextmanager
def open_engine(scheduler: str, n_jobs: int,
                connect_timeout: float = CONNECT_TIMEOUT) -> Iterator[Engine]:
    """Start a ``LocalCluster`` (``"local"``) or connect to ``scheduler``; closed on exit.
    Opening does not send any work there: :func:`use_engine` does."""
    _check_address(scheduler)
    distributed = _import_distributed()
    with _quiet_distributed_logs(), ExitStack() as stack:
        target: object = scheduler
        if scheduler == LOCAL:  # loopback only; ":0": any free port for its HTTP server
            target = stack.enter_context(distributed.LocalCluster(
                n_workers=_local_workers(n_jobs), threads_per_worker=1, processes=True,
                host="127.0.0.1", dashboard_address=":0",
            ))
        client = stack.enter_context(_connect(distributed, target, scheduler,
                                              connect_timeout))
        if scheduler != LOCAL:
            _warn_version_drift(client)
        yield _describe(client, "LocalCluster" if scheduler == LOCAL else scheduler)


@contextmanager
def use_engine(engine: Engine) -> Iterator[Engine]:
    """Send the joblib jobs started inside to ``engine`` (and let the backtest run its
    windows in parallel there)."""
    token = _ACTIVE.set(engine)
    try:
        with parallel_config(backend="dask", client=engine.client):
            yield engine
    finally:
        _ACTIVE.reset(token)


def _check_address(scheduler: str) -> None:
    if scheduler != LOCAL and "://" not in scheduler:
        raise ValueError(f"dask scheduler must be {LOCAL!r} or an address such as "
                         f"tcp://host:8786, not {scheduler!r}")


def _import_distributed() -> ModuleType:
    try:
        import distributed
    except ImportError as exc:
        raise ImportError("a Dask scheduler needs dask.distributed: "
                          "pip install 'salescast[dask]'") from exc
    return distributed


def _local_workers(n_jobs: int) -> int:
    """Worker processes of a local cluster: ``n_jobs``, negatives as joblib counts them."""
    cores = os.cpu_count() or 1
    return max(1, n_jobs if n_jobs > 0 else cores + 1 + n_jobs)


@contextmanager
def _quiet_distributed_logs() -> Iterator[None]:
    """Dask's own INFO lines (each nanny, worker and connection) off while it runs."""
    logger = logging.getLogger("distributed")
    level = logger.level
    logger.setLevel(max(logger.getEffectiveLevel(), logging.WARNING))
    try:
        yield
    finally:
        logger.setLevel(level)


def _connect(distributed: ModuleType, target: object, scheduler: str,
             timeout: float) -> Client:
    """A client of ``target`` (a cluster or an address) with at least one worker."""
    try:
        client = distributed.Client(target, timeout=f"{timeout}s", set_as_default=False)
    except OSError as exc:
        raise SchedulerUnavailable(
            f"no Dask scheduler answers at {scheduler} (waited {timeout:g} s): start one "
            f"(`dask scheduler` and `dask worker {scheduler}`) or unset "
            f"SALESCAST_DASK_SCHEDULER to fit on this machine") from exc
    try:
        client.wait_for_workers(1, timeout=timeout)
    except (TimeoutError, OSError) as exc:
        client.close()
        raise SchedulerUnavailable(
            f"the Dask scheduler at {scheduler} has no worker after {timeout:g} s: start "
            f"one with `dask worker {scheduler}`") from exc
    return client


def _warn_version_drift(client: Client) -> None:
    """A warning per worker whose versions of the packages that make the forecasts differ
    from this process's: its fits may not equal a local run's."""
    versions = client.get_versions(packages=list(RESULT_PACKAGES))
    ours = versions["client"]["packages"]
    for address, worker in versions["workers"].items():
        drift = [f"{name} {version} (here {ours.get(name)})"
                 for name, version in worker["packages"].items()
                 if name in RESULT_PACKAGES and version != ours.get(name)]
        if drift:
            log.warning("Dask worker %s has other versions: %s; its fits may differ from a "
                        "local run's", address, ", ".join(drift))


def _describe(client: Client, name: str) -> Engine:
    nthreads = client.nthreads()
    engine = Engine(name=name, client=client, workers=len(nthreads),
                    threads=sum(nthreads.values()))
    log.info("compute engine: Dask %s, %d workers, %d threads (dashboard %s)", engine.name,
             engine.workers, engine.threads, client.dashboard_link)
    return engine
