"""Benchmark of the feature build at scale: simulate ~10M transaction lines, standardise
them, build the training set; print wall time and peak memory per stage.

    python bench/features.py [--lines 10000000] [--freq W] [--horizon 8] [--customers 50000]
    python bench/features.py --engine duckdb --lines 100000000 [--data-dir DIR]

Target (2 cores): the feature build under 30 s and 3 GB in memory (``--engine pandas``);
with ``--engine duckdb`` (the warehouse pushdown, features.pushdown) 100 M lines under 60 s
and 4 GB. CPU seconds are printed next to wall seconds because a shared machine inflates the
wall time. Peak memory is the resident-set high-water mark of each stage, tables already in
memory included (``VmHWM``, reset before the stage through ``/proc/self/clear_refs``; where
that is not allowed, the process's lifetime peak).

``--engine duckdb`` first writes the lines to a Parquet folder (``--data-dir``, reused when
it is complete; not part of the target): the simulator in chunks of whole weeks, each chunk
a simulation of its weeks with the same seed (same stores, categories, customers), so
memory stays near one chunk's. It then times ``load_raw`` (validation and daily cells in
DuckDB) and ``build_training_set`` on the folder.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from features.build import build_training_set
from features.config import (
    DataConfig,
    FeatureConfig,
    SimulatorConfig,
    SourceConfig,
)
from features.raw import RawData
from features.simulator import lines_per_day_for, simulate_retail
from features.sources import load_raw, standardize

log = logging.getLogger("bench.features")
T = TypeVar("T")
TARGET_SECONDS, TARGET_GB = 30.0, 3.0
WAREHOUSE_TARGET_SECONDS, WAREHOUSE_TARGET_GB = 60.0, 4.0
CHUNK_LINES = 10_000_000  # lines simulated at a time when writing the Parquet folder
COMPLETE = "_COMPLETE"  # marker file of a fully written folder


@dataclass(frozen=True)
class StageResult:
    name: str
    seconds: float
    cpu_seconds: float
    peak_gb: float


def _reset_peak() -> bool:
    """Reset the kernel's resident-set high-water mark (VmHWM) of this process."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _peak_gb() -> float:
    """VmHWM of this process in GB (ru_maxrss if /proc is unavailable)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024**2
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def timed(name: str, stage: Callable[[], T], results: list[StageResult]) -> T:
    """Run ``stage``, record its wall time and peak memory."""
    if not _reset_peak():
        log.warning("cannot reset the peak RSS: figures are lifetime peaks")
    log.info("stage %s ...", name)
    start, cpu_start = time.perf_counter(), time.process_time()
    value = stage()
    results.append(StageResult(name, time.perf_counter() - start,
                               time.process_time() - cpu_start, _peak_gb()))
    log.info("stage %s: %.1f s, peak %.2f GB", name, results[-1].seconds, results[-1].peak_gb)
    return value


def simulated_raw(args: argparse.Namespace, results: list[StageResult]) -> RawData:
    """Simulate ~``args.lines`` lines and standardise them (the simulated frames are freed)."""
    simulator = SimulatorConfig(seed=args.seed, customers=args.customers)
    lines_per_day = lines_per_day_for(simulator, args.lines)
    data_config = DataConfig(sales=SourceConfig(path="sales.parquet"),
                             customers=SourceConfig(path="customers.parquet"),
                             calendar=SourceConfig(path="calendar.parquet"))
    data = timed("simulate", lambda: simulate_retail(simulator, lines_per_day), results)
    return timed("standardize", lambda: standardize(data.sales, data_config, data.customers,
                                                    data.calendar), results)


def write_parquet_lines(folder: Path, lines: int, seed: int, customers: int) -> None:
    """The simulated chain's lines as ``folder/sales/part-NNN.parquet`` (in date order),
    plus customers.parquet and calendar.parquet; chunks of whole weeks (module doc)."""
    total = SimulatorConfig(seed=seed, customers=customers)
    weeks = max(1, min(total.periods, total.periods * CHUNK_LINES // max(lines, 1)))
    (folder / "sales").mkdir(parents=True, exist_ok=True)
    calendars, start = [], pd.Timestamp(total.start)
    for index, first in enumerate(range(0, total.periods, weeks)):
        n_weeks = min(weeks, total.periods - first)
        last = first + n_weeks >= total.periods
        config = total.model_copy(update={
            "start": str((start + pd.Timedelta(weeks=first)).date()), "periods": n_weeks,
            "future_periods": total.future_periods if last else 0})
        data = simulate_retail(config, lines * n_weeks / total.periods / (7 * n_weeks))
        data.sales.to_parquet(folder / "sales" / f"part-{index:03d}.parquet", index=False,
                              row_group_size=1_000_000)
        calendars.append(data.calendar)
        if index == 0:
            data.customers.to_parquet(folder / "customers.parquet", index=False)
    pd.concat(calendars, ignore_index=True).to_parquet(folder / "calendar.parquet",
                                                        index=False)
    (folder / COMPLETE).touch()


def generated(args: argparse.Namespace) -> tuple[Path, StageResult | None]:
    """The Parquet folder of ``args.lines`` lines, written by a child process when missing
    (so the timed stages start from a clean process); its figures are the child's."""
    folder = Path(args.data_dir or Path(tempfile.gettempdir()) /
                  f"salescast-bench-{args.lines}-{args.seed}-{args.customers}")
    if (folder / COMPLETE).exists():
        log.info("reusing the Parquet folder %s", folder)
        return folder, None
    start = time.perf_counter()
    child = multiprocessing.get_context("spawn").Process(
        target=write_parquet_lines, args=(folder, args.lines, args.seed, args.customers))
    child.start()
    child.join()
    if child.exitcode:
        raise SystemExit(f"writing {folder} failed (exit code {child.exitcode})")
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return folder, StageResult("generate (parquet)", time.perf_counter() - start,
                               usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024**2)


def run_warehouse(args: argparse.Namespace) -> list[StageResult]:
    """The pushdown path on a Parquet folder: load_raw, then build_training_set."""
    folder, written = generated(args)
    results = [written] if written else []
    config = DataConfig(sales=SourceConfig(path=str(folder / "sales"), engine="duckdb"),
                        customers=SourceConfig(path=str(folder / "customers.parquet")),
                        calendar=SourceConfig(path=str(folder / "calendar.parquet")))
    raw = timed("load_raw (duckdb)", lambda: load_raw(config), results)
    training_set = timed("build_training_set", lambda: build_training_set(
        raw, FeatureConfig(), args.freq, args.horizon), results)
    meta = training_set.metadata
    log.info("panel: %d series x %d periods, %d features, digest %s", meta.n_series,
             meta.n_periods, len(meta.feature_columns), meta.data_digest[:12])
    return results


def run(args: argparse.Namespace) -> list[StageResult]:
    if args.engine == "duckdb":
        return run_warehouse(args)
    results: list[StageResult] = []
    raw = simulated_raw(args, results)
    log.info("%d standardised lines", len(raw.sales))
    training_set = timed("build_training_set", lambda: build_training_set(
        raw, FeatureConfig(), args.freq, args.horizon), results)
    meta = training_set.metadata
    log.info("panel: %d series x %d periods, %d features", meta.n_series, meta.n_periods,
             len(meta.feature_columns))
    return results


def combined(name: str, results: list[StageResult]) -> StageResult:
    """The stages run one after the other: summed times, the highest peak."""
    return StageResult(name, sum(r.seconds for r in results),
                       sum(r.cpu_seconds for r in results), max(r.peak_gb for r in results))


def report(results: list[StageResult], lines: int, engine: str = "pandas") -> None:
    """Print the figures (the bench's only output for people).

    The feature build is everything after the transactions exist: standardise them and
    build the training set (the simulation stands in for reading the files); with DuckDB,
    read and validate them where they are, and build the training set.
    """
    made = ("simulate", "generate (parquet)")
    build = combined("feature build", [r for r in results if r.name not in made])
    print(f"feature bench, {lines:,} lines, engine {engine}")
    print(f"{'stage':<20}{'wall s':>10}{'cpu s':>10}{'peak GB':>10}")
    for result in [*results, build, combined("total", results)]:
        print(f"{result.name:<20}{result.seconds:>10.1f}{result.cpu_seconds:>10.1f}"
              f"{result.peak_gb:>10.2f}")
    seconds, gb = (WAREHOUSE_TARGET_SECONDS, WAREHOUSE_TARGET_GB) if engine == "duckdb" \
        else (TARGET_SECONDS, TARGET_GB)
    verdict = "meets" if build.seconds < seconds and build.peak_gb < gb else "misses"
    stages = "load_raw" if engine == "duckdb" else "standardize"
    print(f"feature build ({stages} + build_training_set) {verdict} the target "
          f"({seconds:.0f} s wall, {gb:.0f} GB peak)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=10_000_000)
    parser.add_argument("--freq", choices=["D", "W", "M"], default="W")
    parser.add_argument("--horizon", type=int, default=8)
    parser.add_argument("--customers", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--engine", choices=["pandas", "duckdb"], default="pandas",
                        help="duckdb: write the lines to a Parquet folder, push down")
    parser.add_argument("--data-dir", help="the Parquet folder (--engine duckdb; reused)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    report(run(args), args.lines, args.engine)


if __name__ == "__main__":
    main()
