"""`salescast monitor` (ad-hoc form): exit codes 0 / 3 / 1, files in, verdict and report out."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from experiments.commands_monitor import monitor, run_drift_check
from experiments.spec import MonitoringConfig
from serving.monitoring.drift import DriftThresholds

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()
app = typer.Typer(add_completion=False)
app.command()(monitor)


def _frame(n: int, seed: int, shift: float = 0.0, shifted: int = 0) -> pd.DataFrame:
    """Four numeric features and a categorical one; the first ``shifted`` numeric
    features move by ``shift`` standard deviations."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({f"x{i}": rng.normal(shift if i < shifted else 0.0, 1.0, n)
                          for i in range(4)})
    return frame.assign(channel=rng.choice(["web", "store", "phone"], n, p=[0.3, 0.6, 0.1]))


def _write(frame: pd.DataFrame, path: Path) -> Path:
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)
    return path


def _invoke(*args: str | Path) -> object:
    return runner.invoke(app, [str(a) for a in args])


def test_stable_data_is_ok_and_exits_0(tmp_path: Path) -> None:
    reference = _write(_frame(1500, 1), tmp_path / "reference.parquet")
    current = _write(_frame(2500, 2), tmp_path / "current.parquet")
    result = _invoke("--reference", reference, "--current", current, "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert "verdict    ok" in result.output
    document = json.loads((tmp_path / "out" / "report.json").read_text())
    assert document["verdict"]["status"] == "ok"
    assert {c["column"] for c in document["drift"]["columns"]} == {"x0", "x1", "x2", "x3",
                                                                   "channel"}
    assert (tmp_path / "out" / "report.html").exists()


def test_dataset_drift_means_retrain_and_exits_3(tmp_path: Path) -> None:
    reference = _write(_frame(1500, 1), tmp_path / "reference.parquet")
    current = _write(_frame(2500, 2, shift=0.5, shifted=3), tmp_path / "current.parquet")
    result = _invoke("--reference", reference, "--current", current, "--out", tmp_path / "out",
                     "--no-html")
    assert result.exit_code == 3, result.output
    assert "verdict    retrain" in result.output
    drifted = [line.split()[1] for line in result.output.splitlines()
               if line.startswith("drifted")]
    assert drifted == ["x0", "x1", "x2"]
    assert not (tmp_path / "out" / "report.html").exists()


def test_some_drift_is_watch_and_exits_0_with_csv_files(tmp_path: Path) -> None:
    reference = _write(_frame(400, 1), tmp_path / "reference.csv")
    current = _write(_frame(300, 2, shift=1.0, shifted=1), tmp_path / "current.csv")
    result = _invoke("--reference", reference, "--current", current, "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert "verdict    watch" in result.output
    assert "drifted    x0" in result.output  # small files: the KS test decided


def test_options_select_columns_and_override_thresholds(tmp_path: Path) -> None:
    reference = _write(_frame(1500, 1), tmp_path / "reference.parquet")
    current = _write(_frame(2500, 2, shift=0.5, shifted=3), tmp_path / "current.parquet")
    result = _invoke("--reference", reference, "--current", current, "--out", tmp_path / "out",
                     "--columns", "x0,x3", "--distance-threshold", "0.8", "--no-html")
    assert result.exit_code == 0, result.output  # a 0.5 sd shift is under a 0.8 threshold
    document = json.loads((tmp_path / "out" / "report.json").read_text())
    assert [c["column"] for c in document["drift"]["columns"]] == ["x0", "x3"]
    assert document["thresholds"]["distance_threshold"] == 0.8


@pytest.mark.parametrize("case", ["missing", "empty file", "no rows", "no common column",
                                  "unknown column", "bad threshold", "not parquet"])
def test_bad_input_is_one_error_line_and_exit_1(tmp_path: Path, case: str) -> None:
    reference = _write(_frame(50, 1), tmp_path / "reference.parquet")
    current = _write(_frame(50, 2), tmp_path / "current.parquet")
    extra: list[str] = []
    if case == "missing":
        current = tmp_path / "nowhere.parquet"
    elif case == "empty file":
        current = tmp_path / "empty.csv"
        current.write_text("")
    elif case == "no rows":
        current = _write(_frame(50, 2).iloc[:0], tmp_path / "none.parquet")
    elif case == "no common column":
        current = _write(_frame(50, 2).add_prefix("other_"), tmp_path / "other.parquet")
    elif case == "unknown column":
        extra = ["--columns", "x0,price"]
    elif case == "bad threshold":
        extra = ["--p-value", "2"]
    else:
        current = tmp_path / "current.parquet"
        current.write_text("this is not parquet")
    result = runner.invoke(app, ["--reference", str(reference), "--current", str(current),
                                 "--out", str(tmp_path / "out"), *extra])
    assert result.exit_code == 1
    errors = [line for line in result.output.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("error: "), result.output
    assert "Traceback" not in result.output


def test_prediction_and_target_columns_are_judged_separately() -> None:
    reference = _frame(1500, 1).assign(yhat=np.linspace(0, 1, 1500), y=np.linspace(0, 1, 1500))
    current = _frame(1500, 2).assign(yhat=np.linspace(0.5, 1.5, 1500), y=np.linspace(0, 1, 1500))
    result = run_drift_check(reference, current, DriftThresholds())
    assert "yhat" not in result.drift.drifted_columns and len(result.drift.columns) == 5
    assert result.prediction_drift is not None and result.prediction_drift.drifted
    assert result.target_drift is not None and not result.target_drift.drifted
    assert result.verdict.status == "watch"


def test_spec_monitoring_config_converts_to_the_same_thresholds() -> None:
    assert DriftThresholds.from_mapping(MonitoringConfig().model_dump()) == DriftThresholds()
    custom = MonitoringConfig(p_value=0.01, large_sample=5000)
    converted = DriftThresholds.from_mapping(custom.model_dump())
    assert (converted.p_value, converted.large_sample) == (0.01, 5000)


def test_the_command_imports_nothing_heavy(tmp_path: Path) -> None:
    reference = _write(_frame(1500, 1), tmp_path / "reference.parquet")
    current = _write(_frame(2500, 2), tmp_path / "current.parquet")
    code = (
        "import sys, typer\n"
        "import experiments.commands_monitor as m\n"
        "at_import = sorted(x for x in ('pandas', 'numpy', 'pyarrow') if x in sys.modules)\n"
        "app = typer.Typer(); app.command()(m.monitor)\n"
        "try:\n"
        f"    app(['--reference', {str(reference)!r}, '--current', {str(current)!r},\n"
        f"         '--out', {str(tmp_path / 'out')!r}])\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = ('mlflow', 'sklearn', 'matplotlib', 'scipy.stats', 'lightgbm', 'statsmodels')\n"
        "print(at_import, sorted(x for x in heavy if x in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, env={"PYTHONPATH": str(ROOT)}, check=True)
    assert done.stdout.strip().splitlines()[-1] == "[] []"


@pytest.mark.parametrize(("options", "message"), [
    (["--from", "2024-13-01"], "--from '2024-13-01' is not a date (YYYY-MM-DD)"),
    (["--to", "next week"], "--to 'next week' is not a date (YYYY-MM-DD)"),
    (["--from", "2024-10-01", "--to", "2024-09-01"], "--from 2024-10-01 is after --to 2024-09-01"),
])
def test_bad_periods_are_one_error_line_before_anything_is_read(
    tmp_path: Path, options: list[str], message: str,
) -> None:
    result = _invoke("--spec", tmp_path / "never-read.yaml", *options)
    assert result.exit_code == 1
    assert result.output.strip() == f"error: {message}"
