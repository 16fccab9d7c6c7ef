"""Benchmark of `salescast monitor`: 100k reference rows vs 1M current rows, 20 columns.

Generates (seeded) 15 numeric and 5 categorical columns (10 to 14 categories), shifts the
mean of 5 numeric columns by 0.2 standard deviations and the category shares of 2
categorical columns, writes both as Parquet to a temporary folder, and runs the monitor
command on them as a subprocess (start-up and imports included). Prints wall time, CPU
time, the child's own peak memory (ru_maxrss from wait4: RUSAGE_CHILDREN would keep the
maximum over all runs) and whether exactly the shifted columns were flagged, once
without and once with the HTML report. Other processes' load adds to wall time:
``--repeat`` shows the best of several runs.

    .venv/bin/python bench/drift.py            # targets: < 3 s and < 500 MB per run
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
N_REFERENCE, N_CURRENT = 100_000, 1_000_000
N_NUMERIC, N_CATEGORICAL = 15, 5
SHIFTED_NUMERIC = ("num_02", "num_05", "num_08", "num_11", "num_14")
SHIFTED_CATEGORICAL = ("cat_1", "cat_3")
MEAN_SHIFT_SD = 0.2
SHARE_TILT = 0.6  # category shares x exp(0.6 * z), z from -1 to 1: JS distance ~0.16
TARGET_SECONDS, TARGET_MB = 3.0, 500.0
CLI_APP = "from experiments.cli import app; app()"
TINY_APP = (
    "import typer; from experiments.commands_monitor import monitor; "
    "app = typer.Typer(add_completion=False); app.command()(monitor); app()"
)


def _numeric_column(rng: np.random.Generator, index: int, n: int, shift_sd: float) -> np.ndarray:
    """A numeric feature of one of three shapes (normal, log-normal, gamma), shifted by
    ``shift_sd`` of its standard deviation."""
    shape = index % 3
    if shape == 0:
        values, sd = rng.normal(50.0, 10.0, n), 10.0
    elif shape == 1:
        values = rng.lognormal(3.0, 0.5, n)
        sd = float(np.sqrt((np.exp(0.25) - 1) * np.exp(6.0 + 0.25)))
    else:
        values, sd = rng.gamma(2.0, 5.0, n), float(np.sqrt(2.0) * 5.0)
    return values + shift_sd * sd


def _category_shares(index: int) -> np.ndarray:
    k = 10 + index % 5
    return np.random.default_rng(100 + index).dirichlet(np.full(k, 5.0))


def _categorical_column(
    rng: np.random.Generator, index: int, n: int, tilted: bool,
) -> pd.Categorical:
    shares = _category_shares(index)
    if tilted:
        shares = shares * np.exp(SHARE_TILT * np.linspace(-1, 1, len(shares)))
        shares /= shares.sum()
    labels = np.array([f"c{index}_{j:02d}" for j in range(len(shares))])
    codes = rng.choice(len(shares), size=n, p=shares)
    return pd.Categorical.from_codes(codes, categories=labels)


def make_frame(seed: int, n: int, shifted: bool) -> pd.DataFrame:
    """One seeded frame; with ``shifted`` the listed columns move."""
    rng = np.random.default_rng(seed)
    columns: dict[str, object] = {}
    for i in range(N_NUMERIC):
        name = f"num_{i:02d}"
        shift = MEAN_SHIFT_SD if shifted and name in SHIFTED_NUMERIC else 0.0
        columns[name] = _numeric_column(rng, i, n, shift)
    for i in range(N_CATEGORICAL):
        name = f"cat_{i}"
        column = _categorical_column(rng, i, n, shifted and name in SHIFTED_CATEGORICAL)
        columns[name] = pd.Series(column).astype("str")
    return pd.DataFrame(columns)


def write_inputs(folder: Path) -> tuple[Path, Path]:
    reference, current = folder / "reference.parquet", folder / "current.parquet"
    make_frame(1, N_REFERENCE, shifted=False).to_parquet(reference, index=False)
    make_frame(2, N_CURRENT, shifted=True).to_parquet(current, index=False)
    return reference, current


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def monitor_command() -> tuple[str, list[str]]:
    """`salescast monitor` once the lead has registered it, else a tiny Typer app."""
    candidates = [("experiments.cli monitor", [sys.executable, "-c", CLI_APP, "monitor"])]
    salescast = ROOT / ".venv" / "bin" / "salescast"
    if salescast.exists():
        candidates.insert(0, ("salescast monitor", [str(salescast), "monitor"]))
    for label, command in candidates:
        probe = subprocess.run([*command, "--help"], capture_output=True, env=_env(), cwd=ROOT)
        if probe.returncode == 0:
            return label, command
    return "tiny Typer app (monitor not registered yet)", [sys.executable, "-c", TINY_APP]


@dataclass(frozen=True)
class Run:
    seconds: float
    cpu_seconds: float
    peak_mb: float
    exit_code: int
    drifted: list[str]
    output: str


def run_monitor(command: list[str], reference: Path, current: Path, out: Path, html: bool) -> Run:
    """Run the command as a child process; its own peak RSS comes from wait4."""
    args = [*command, "--reference", str(reference), "--current", str(current), "--out", str(out)]
    args.append("--html" if html else "--no-html")
    log_path = out.parent / f"{out.name}.log"
    with log_path.open("w") as log_file:
        start = time.perf_counter()
        child = subprocess.Popen(
            args, stdout=log_file, stderr=subprocess.STDOUT, env=_env(), cwd=ROOT,
        )
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    report = json.loads((out / "report.json").read_text()) if (out / "report.json").exists() else {}
    columns = report.get("drift", {}).get("columns", []) if report else []
    drifted = sorted(c["column"] for c in columns if c["drifted"])
    cpu, peak = usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024
    return Run(seconds, cpu, peak, child.returncode, drifted, log_path.read_text())


def report_run(label: str, run: Run) -> bool:
    expected = sorted(SHIFTED_NUMERIC + SHIFTED_CATEGORICAL)
    exact = run.drifted == expected
    fast = run.seconds < TARGET_SECONDS and run.peak_mb < TARGET_MB
    print(f"{label:<14} wall {run.seconds:5.2f} s   cpu {run.cpu_seconds:5.2f} s   "
          f"peak {run.peak_mb:6.1f} MB   "
          f"exit {run.exit_code}   {'within' if fast else 'OVER'} target")
    print(f"{'':<14} drifted: {', '.join(run.drifted) or '(none)'}")
    print(f"{'':<14} exactly the shifted columns: {'yes' if exact else 'NO'}")
    if run.exit_code not in (0, 3):
        print(run.output)
    return exact and fast


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1, help="Runs per variant (best shown).")
    parser.add_argument("--write", type=Path, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.write:  # the data are generated in a child, so this process stays small
        write_inputs(options.write)
        return 0
    folder = Path(tempfile.mkdtemp(prefix="salescast-bench-drift-"))
    try:
        start = time.perf_counter()
        subprocess.run([sys.executable, __file__, "--write", str(folder)], check=True)
        reference, current = folder / "reference.parquet", folder / "current.parquet"
        print(f"inputs         {N_REFERENCE:,} vs {N_CURRENT:,} rows x "
              f"{N_NUMERIC + N_CATEGORICAL} columns written in {time.perf_counter() - start:.1f} s")
        label, command = monitor_command()
        print(f"command        {label}")
        ok = True
        for label, html in (("json only", False), ("json + html", True)):
            runs = [run_monitor(command, reference, current, folder / f"out{i}", html)
                    for i in range(options.repeat)]
            ok &= report_run(label, min(runs, key=lambda r: r.seconds))
        return 0 if ok else 1
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
