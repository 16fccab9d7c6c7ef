"""The `salescast` CLI: data generate -> features build, and clean failures on bad input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from experiments.cli import app

runner = CliRunner()


def _tiny_spec(tmp_path: Path, data_dir: Path, **extra: object) -> Path:
    spec = {
        "name": "tiny",
        "data": {
            "sales": {"path": str(data_dir / "sales.parquet")},
            "customers": {"path": str(data_dir / "customers.parquet")},
            "calendar": {"path": str(data_dir / "calendar.parquet")},
        },
        "frequency": "W",
        "horizon": 4,
        "features": {"lags": [4, 5, 8], "rolling_windows": [4]},
        "backtest": {"n_windows": 2, "step": 2, "min_train_periods": 12},
    } | extra
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("data")
    result = runner.invoke(
        app,
        ["data", "generate", "--out", str(out), "--stores", "2", "--categories", "2",
         "--customers", "60", "--periods", "40", "--seed", "7"],
    )
    assert result.exit_code == 0, result.output
    return out


def test_help_is_instant_and_lists_every_stage() -> None:
    code = "import sys; import experiments.cli; print('mlflow' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"  # mlflow is imported lazily, by the commands
    result = runner.invoke(app, ["--help"])
    for command in ("data", "features", "demo"):
        assert command in result.output


def test_generate_writes_the_three_tables(tiny_data: Path) -> None:
    for table in ("sales", "customers", "calendar"):
        frame = pd.read_parquet(tiny_data / f"{table}.parquet")
        assert len(frame) > 0


def test_features_build_writes_a_training_set(tiny_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "ts.parquet"
    spec = _tiny_spec(tmp_path, tiny_data)
    result = runner.invoke(app, ["features", "build", "--spec", str(spec), "--out", str(out)])
    assert result.exit_code == 0, result.output
    panel = pd.read_parquet(out)
    assert {"series_id", "ds", "y"} <= set(panel.columns)
    assert panel["series_id"].nunique() == 4  # 2 stores x 2 categories
    assert "series     4" in result.output


def test_bad_spec_exits_1_with_a_message_not_a_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nhorizon: -1\ndata: {sales: {path: s.csv}}\n")
    result = runner.invoke(app, ["features", "build", "--spec", str(bad)])
    assert result.exit_code == 1
    assert "horizon" in result.output
    assert "Traceback" not in result.output


def test_wrong_column_mapping_names_the_column(tiny_data: Path, tmp_path: Path) -> None:
    spec = _tiny_spec(tmp_path, tiny_data)
    raw = yaml.safe_load(spec.read_text())
    raw["data"]["sales_columns"] = {"date": "Order Date", "keys": ["store", "category"]}
    spec.write_text(yaml.safe_dump(raw))
    result = runner.invoke(app, ["features", "build", "--spec", str(spec)])
    assert result.exit_code == 1
    assert "Order Date" in result.output
    assert "Traceback" not in result.output


def test_missing_data_file_exits_1(tmp_path: Path) -> None:
    spec = _tiny_spec(tmp_path, tmp_path / "nowhere")
    result = runner.invoke(app, ["features", "build", "--spec", str(spec)])
    assert result.exit_code == 1
    assert "nowhere" in result.output


def test_train_on_an_unreachable_dask_scheduler_fails_in_one_line_before_any_run(
    tiny_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracking = tmp_path / "mlflow.db"
    monkeypatch.setenv("SALESCAST_TRACKING_URI", f"sqlite:///{tracking}")
    monkeypatch.setenv("SALESCAST_OPTUNA_STORAGE", f"sqlite:///{tmp_path / 'optuna.db'}")
    spec = _tiny_spec(tmp_path, tiny_data)
    result = runner.invoke(app, ["train", "--spec", str(spec), "--dask", "tcp://127.0.0.1:1"])
    assert result.exit_code == 1
    errors = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "127.0.0.1:1" in errors[0], result.output
    assert not tracking.exists()  # nothing was started in MLflow


@pytest.mark.parametrize(("params", "says"), [
    ({"target_scale": "sideways"}, "target_scale must be one of row, series, both; got 'sideways'"),
    ({"target_scal": "row"}, "Invalid parameter 'target_scal'"),
    ({"strategy": "backwards"}, "strategy must be one of direct, buckets, recursive"),
])
def test_a_wrong_family_param_fails_in_one_line_before_any_run(
    tiny_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, params: dict,
    says: str,
) -> None:
    """A typo in ``models.<family>.params`` used to fail the run after the features and
    the baseline's tuning, leaving failed runs behind."""
    tracking = tmp_path / "mlflow.db"
    monkeypatch.setenv("SALESCAST_TRACKING_URI", f"sqlite:///{tracking}")
    monkeypatch.setenv("SALESCAST_OPTUNA_STORAGE", f"sqlite:///{tmp_path / 'optuna.db'}")
    spec = _tiny_spec(tmp_path, tiny_data, models={"lightgbm": {"params": params}})
    result = runner.invoke(app, ["train", "--spec", str(spec), "--families", "lightgbm"])
    assert result.exit_code == 1
    errors = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "models.lightgbm.params" in errors[0], result.output
    assert says in errors[0]
    assert not tracking.exists() and not (tmp_path / "optuna.db").exists()


@pytest.mark.parametrize("shape", ["three-lines", "one-date"])
def test_a_file_too_short_to_train_on_is_one_clear_error(tiny_data: Path, tmp_path: Path,
                                                         shape: str) -> None:
    """Before: a casting traceback in the customer features (no line had a segment)."""
    import pandas as pd

    sales = pd.read_parquet(tiny_data / "sales.parquet")
    sales = sales.head(3) if shape == "three-lines" else sales.assign(date=sales["date"].min())
    sales.to_parquet(tmp_path / "short.parquet")
    spec = _tiny_spec(tmp_path, tiny_data)
    raw = yaml.safe_load(spec.read_text())
    raw["data"]["sales"]["path"] = str(tmp_path / "short.parquet")
    spec.write_text(yaml.safe_dump(raw))
    result = runner.invoke(app, ["features", "build", "--spec", str(spec)])
    assert result.exit_code == 1
    assert "the history has 1 period but" in result.output and "enough_history" in result.output
    assert "Traceback" not in result.output
