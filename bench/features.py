"""Benchmark of the feature build at scale: simulate ~10M transaction lines, standardise
them, build the training set; print wall time and peak memory per stage.

    python bench/features.py [--lines 10000000] [--freq W] [--horizon 8] [--customers 50000]

Target (2 cores): the feature build under 30 s and 3 GB. CPU seconds are printed next to
wall seconds because a shared machine inflates the wall time. Peak memory is the resident-set
high-water mark of each stage, tables already in memory included (``VmHWM``, reset
before the stage through ``/proc/self/clear_refs``; where that is not allowed, the
process's lifetime peak).
"""

from __future__ import annotations

import argparse
import logging
import resource
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

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
from features.sources import standardize

log = logging.getLogger("bench.features")
T = TypeVar("T")
TARGET_SECONDS, TARGET_GB = 30.0, 3.0


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


def run(args: argparse.Namespace) -> list[StageResult]:
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


def report(results: list[StageResult], lines: int) -> None:
    """Print the figures (the bench's only output for people).

    The feature build is everything after the transactions exist: standardise them and
    build the training set (the simulation stands in for reading the files).
    """
    build = combined("feature build", [r for r in results if r.name != "simulate"])
    print(f"feature bench, {lines:,} lines")
    print(f"{'stage':<20}{'wall s':>10}{'cpu s':>10}{'peak GB':>10}")
    for result in [*results, build, combined("total", results)]:
        print(f"{result.name:<20}{result.seconds:>10.1f}{result.cpu_seconds:>10.1f}"
              f"{result.peak_gb:>10.2f}")
    verdict = "meets" if build.seconds < TARGET_SECONDS and build.peak_gb < TARGET_GB else "misses"
    print(f"feature build (standardize + build_training_set) {verdict} the target "
          f"({TARGET_SECONDS:.0f} s wall, {TARGET_GB:.0f} GB peak)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=10_000_000)
    parser.add_argument("--freq", choices=["D", "W", "M"], default="W")
    parser.add_argument("--horizon", type=int, default=8)
    parser.add_argument("--customers", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    report(run(args), args.lines)


if __name__ == "__main__":
    main()
