"""Session fixtures of the MLflow-facing training tests (the session's one MLflow store is
`mlflow_store` in tests/conftest.py): one small seeded training set built by the real feature
pipeline (the pyfunc model must load in another process, so its pickled pipeline must
come from `features`, not from a test helper)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from features.config import DataConfig, FeatureConfig, SimulatorConfig, SourceConfig
from features.training_set import TrainingSet
from tests.conftest import MlflowStore


@pytest.fixture(scope="session")
def optuna_storage(tmp_path_factory: pytest.TempPathFactory) -> str:
    """An Optuna RDB storage URL (SQLite) for the tuning tests; no MLflow needed."""
    return f"sqlite:///{tmp_path_factory.mktemp('optuna')}/optuna.db"


@pytest.fixture(scope="session")
def small_training_set() -> TrainingSet:
    """4 series (2 stores x 2 categories), 90 weeks, horizon 4: seeded and fast."""
    from features.build import build_training_set
    from features.simulator import simulate_retail
    from features.sources import standardize

    config = SimulatorConfig(seed=11, stores=2, categories=2, customers=80, periods=90)
    data = simulate_retail(config)
    raw = standardize(data.sales, DataConfig(sales=SourceConfig(path="sales.parquet")),
                      data.customers, data.calendar)
    features = FeatureConfig(lags=[4, 5, 6, 52], rolling_windows=[4, 13])
    return build_training_set(raw, features, freq="W", horizon=4, spec_hash="test-spec",
                              season_length=52)


@dataclass(frozen=True)
class LoggedForecaster:
    """A fitted regression forecaster, its backtest and windows, and its logged model."""

    forecaster: object
    backtest: object
    windows: list
    model_uri: str


@pytest.fixture(scope="session")
def logged_regression(mlflow_store: MlflowStore, small_training_set: TrainingSet
                      ) -> LoggedForecaster:
    """Logged once per session (logging a pyfunc model takes a second or two)."""
    import mlflow

    from training.backtest import make_windows, run_backtest
    from training.config import BacktestConfig
    from training.forecasters import RegressionForecaster
    from training.pyfunc import log_forecaster
    from training.tracking import ensure_experiment, tracking

    windows = make_windows(small_training_set, BacktestConfig(n_windows=2, step=2,
                                                              min_train_periods=26))
    backtest = run_backtest(RegressionForecaster(), small_training_set, windows, 0.8)
    forecaster = RegressionForecaster().fit(small_training_set)
    forecaster.set_conformal(backtest.calibration)
    with tracking(mlflow_store.tracking_uri):
        ensure_experiment("training-tests", mlflow_store.artifact_location)
        with mlflow.start_run():
            info = log_forecaster(forecaster, small_training_set, backtest,
                                  spec_name="training-tests", level=0.8)
    return LoggedForecaster(forecaster, backtest, windows, info.model_uri)
