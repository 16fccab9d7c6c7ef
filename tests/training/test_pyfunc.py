"""The pyfunc contract: log -> register -> champion alias -> load -> predict equals the
in-memory forecaster (also under a what-if scenario), clear errors on bad rows, and a
model that loads in a process where salescast is not importable."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.training_set import TrainingSet
from training.backtest import BacktestResult
from training.base import Forecaster
from training.pyfunc import (
    SalescastModel,
    forecast_periods,
    model_metadata,
    reference_sample,
)

LEVEL = 0.8
HORIZON = 4
MODEL_NAME = "pyfunc_contract"


@pytest.fixture(scope="module")
def fitted(logged_regression) -> tuple[Forecaster, BacktestResult]:
    """A regression forecaster (it uses promo, so scenarios matter) with its backtest."""
    return logged_regression.forecaster, logged_regression.backtest


@pytest.fixture(scope="module")
def champion(mlflow_store, logged_regression):
    """The logged forecaster registered and aliased champion; loaded back by its alias."""
    import mlflow

    from training.registry import client_for, register_version
    from training.tracking import tracking

    with tracking(mlflow_store.tracking_uri):
        version = register_version(MODEL_NAME, logged_regression.model_uri,
                                   {"family": "regression"})
        client_for(mlflow_store.tracking_uri).set_registered_model_alias(
            MODEL_NAME, "champion", version)
        return mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}@champion")


def _horizon_rows(forecaster: Forecaster, seed: int = 0) -> pd.DataFrame:
    """Every (series, ds) of the horizon, shuffled so that input order matters."""
    grid = forecaster.predict(HORIZON, None, LEVEL)[["series_id", "ds"]]
    order = np.random.default_rng(seed).permutation(len(grid))
    return grid.iloc[order].reset_index(drop=True)


def _expected(forecaster: Forecaster, rows: pd.DataFrame,
              scenario: pd.DataFrame | None = None) -> pd.DataFrame:
    forecast = forecaster.predict(HORIZON, scenario, LEVEL)
    return rows[["series_id", "ds"]].merge(forecast, on=["series_id", "ds"], how="left")


def test_champion_predicts_like_the_in_memory_forecaster(champion, fitted) -> None:
    forecaster, _ = fitted
    rows = _horizon_rows(forecaster)

    served = champion.predict(rows)

    expected = _expected(forecaster, rows)
    assert served["series_id"].tolist() == rows["series_id"].tolist()  # input order
    assert (served["ds"].to_numpy() == rows["ds"].to_numpy()).all()
    for column in ("yhat", "yhat_lower", "yhat_upper"):
        np.testing.assert_allclose(served[column], expected[column], rtol=1e-9)
    assert (served["yhat_lower"] < served["yhat_upper"]).any()  # the calibration travelled


def test_a_what_if_promo_reaches_the_model(champion, fitted) -> None:
    forecaster, _ = fitted
    rows = _horizon_rows(forecaster, seed=1)
    rows["promo"] = np.where(np.arange(len(rows)) % 2 == 0, 1.0, np.nan)  # NaN = as planned
    rows["ds"] = rows["ds"].dt.strftime("%Y-%m-%d")  # ISO strings are accepted too

    served = champion.predict(rows)

    given = rows.dropna(subset=["promo"]).assign(ds=lambda f: pd.to_datetime(f["ds"]))
    expected = _expected(forecaster, rows.assign(ds=pd.to_datetime(rows["ds"])), given)
    np.testing.assert_allclose(served["yhat"], expected["yhat"], rtol=1e-9)
    plain = _expected(forecaster, rows.assign(ds=pd.to_datetime(rows["ds"])))
    promoted = rows["promo"].notna().to_numpy()
    assert not np.allclose(served["yhat"][promoted], plain["yhat"][promoted])
    np.testing.assert_allclose(served["yhat"][~promoted], plain["yhat"][~promoted], rtol=1e-9)


def test_predict_with_features_returns_the_rows_the_model_saw(
    champion, fitted, small_training_set: TrainingSet
) -> None:
    model = champion.unwrap_python_model()
    rows = _horizon_rows(fitted[0], seed=2).head(3).assign(promo=1.0)

    forecast, features = model.predict_with_features(rows)

    pd.testing.assert_frame_equal(forecast, champion.predict(rows))
    pd.testing.assert_frame_equal(features[["series_id", "ds"]], rows[["series_id", "ds"]])
    expected = rows[["series_id", "ds"]].merge(
        small_training_set.future_frame(HORIZON, rows), on=["series_id", "ds"], how="left")
    numeric = [c for c in small_training_set.feature_columns
               if pd.api.types.is_numeric_dtype(expected[c])]
    assert "promo" in numeric and (features["promo"] == 1.0).all()
    np.testing.assert_allclose(features[numeric].to_numpy(float),
                               expected[numeric].to_numpy(float), rtol=1e-9)


def test_the_model_describes_itself_for_serving(champion, small_training_set) -> None:
    model = champion.unwrap_python_model()
    meta = model.metadata
    last = small_training_set.base["ds"].max()
    assert meta["family"] == "regression" and meta["freq"] == "W" and meta["horizon"] == 4
    assert meta["last_ds"] == last.date().isoformat()
    assert meta["forecast_ds"] == [(last + pd.Timedelta(weeks=k)).date().isoformat()
                                   for k in range(1, 5)]
    assert meta["series_ids"] == small_training_set.series_ids
    assert meta["keys"] == ["store", "category"]
    assert set(meta["backtest_metrics"]) >= {"wape", "mase", "coverage"}
    reference = model.reference_sample()
    assert set(small_training_set.feature_columns) <= set(reference.columns)
    assert len(reference) == min(5000, len(small_training_set.panel))


def test_reference_sample_is_a_seeded_subset_of_the_panel(small_training_set) -> None:
    first = reference_sample(small_training_set, seed=3, rows=50)
    again = reference_sample(small_training_set, seed=3, rows=50)
    other = reference_sample(small_training_set, seed=4, rows=50)

    assert len(first) == 50
    pd.testing.assert_frame_equal(first, again)
    assert not first.equals(other)
    keyed = small_training_set.panel.set_index(["series_id", "ds"])
    picked = keyed.loc[list(zip(first["series_id"], first["ds"], strict=True)), "y"]
    np.testing.assert_allclose(picked.to_numpy(), first["y"].to_numpy())


@pytest.fixture(scope="module")
def in_memory(fitted, small_training_set) -> SalescastModel:
    forecaster, backtest = fitted
    baseline = forecaster.predict(4, None, LEVEL)
    meta = model_metadata(forecaster, small_training_set, backtest, "t", LEVEL, baseline)
    return SalescastModel(forecaster, meta)


@pytest.mark.parametrize(("change", "message"), [
    (lambda r: r.assign(series_id="S99|C9"), r"unknown series_id.*S99\|C9"),
    (lambda r: r.assign(ds=r["ds"] + pd.Timedelta(weeks=4)), "outside the forecast horizon"),
    (lambda r: r.assign(ds=r["ds"] - pd.Timedelta(weeks=1)), "outside the forecast horizon"),
    (lambda r: r.assign(ds="next tuesday"), "not dates.*next tuesday"),
    (lambda r: r.assign(promo=["yes", 1.0]), "promo: 1 scenario value.*'yes'"),
    (lambda r: r.drop(columns=["ds"]), "missing column.*ds"),
    (lambda r: r.iloc[:0], "no rows"),
])
def test_bad_rows_raise_a_clear_error(in_memory, fitted, change, message) -> None:
    rows = _horizon_rows(fitted[0]).sort_values("ds").head(2)  # the first forecast period
    with pytest.raises(ValueError, match=message):
        in_memory.predict(None, change(rows))


def test_the_loaded_model_raises_the_same_clear_error(champion, fitted) -> None:
    rows = _horizon_rows(fitted[0]).head(1).assign(series_id="nowhere")
    with pytest.raises(ValueError, match=r"unknown series_id.*nowhere"):
        champion.predict(rows)


def test_the_model_loads_where_salescast_is_not_importable(
    champion, mlflow_store, tmp_path: Path
) -> None:
    """A fresh interpreter, started outside the repository, without PYTHONPATH, loading
    the champion's files (downloaded first: the child needs no tracking store)."""
    import mlflow

    from training.tracking import tracking

    with tracking(mlflow_store.tracking_uri):
        local = mlflow.artifacts.download_artifacts(f"models:/{MODEL_NAME}@champion",
                                                    dst_path=str(tmp_path / "model"))
    script = textwrap.dedent(f"""
        import importlib.util, sys
        # `pip install -e .` (make test) adds a finder for the repo: hide it, as a
        # machine where salescast is not installed would not have it
        sys.meta_path[:] = [f for f in sys.meta_path
                            if not getattr(f, "__module__", "").startswith("__editable__")]
        assert importlib.util.find_spec("training") is None, "salescast is importable"
        import mlflow, pandas as pd
        model = mlflow.pyfunc.load_model({local!r})
        meta = model.unwrap_python_model().metadata
        rows = pd.DataFrame({{"series_id": meta["series_ids"][:1], "ds": meta["forecast_ds"][:1]}})
        print(model.predict(rows)["yhat"].iloc[0])
        print(sys.modules["training"].__file__)
    """)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    yhat, module_file = done.stdout.strip().splitlines()[-2:]
    meta = champion.unwrap_python_model().metadata
    expected = champion.predict(pd.DataFrame({"series_id": meta["series_ids"][:1],
                                              "ds": meta["forecast_ds"][:1]}))
    assert float(yhat) == pytest.approx(expected["yhat"].iloc[0], rel=1e-9)
    assert module_file.startswith(str(tmp_path / "model"))  # the model's own copy of the code


def test_the_champion_serves_under_the_mlflow_scoring_server(champion, fitted) -> None:
    """The app `mlflow models serve` runs, on the registered champion, with DESIGN's input
    schema (series_id, ds, optional exog) in `dataframe_records` form."""
    import os

    from fastapi.testclient import TestClient
    from mlflow.pyfunc import scoring_server

    forecaster, _ = fitted
    rows = _horizon_rows(forecaster).head(6)
    saved = dict(os.environ)
    app = scoring_server.init(champion)  # sets a process-wide env flag: restored below
    os.environ.clear()
    os.environ.update(saved)
    records = [{"series_id": r.series_id, "ds": r.ds.date().isoformat()}
               for r in rows.itertuples()]
    with TestClient(app) as client:
        answer = client.post("/invocations", json={"dataframe_records": records})
    assert answer.status_code == 200, answer.text
    served = pd.DataFrame(answer.json()["predictions"])
    expected = _expected(forecaster, rows)
    assert served["series_id"].tolist() == rows["series_id"].tolist()
    np.testing.assert_allclose(served["yhat"], expected["yhat"], rtol=1e-9)
    np.testing.assert_allclose(served["yhat_upper"], expected["yhat_upper"], rtol=1e-9)


def test_the_loaded_champion_rolls_like_the_forecasters_update(champion, fitted) -> None:
    """The registered model, loaded back, forecasts from posted actuals without a refit:
    its rolled forecast is the in-memory forecaster's update() on the same rows."""
    forecaster, _ = fitted
    model = champion.unwrap_python_model()
    origins = forecaster.origins()
    next_week = pd.DataFrame({"series_id": origins.index.astype(str),
                              "ds": origins.to_numpy() + np.timedelta64(7, "D"), "y": 123.0})
    rolled = model.roll(next_week)
    assert set(rolled.origins().values()) == {
        (pd.Timestamp(d) + pd.Timedelta(weeks=1)).date().isoformat() for d in origins}
    assert model.origins() == {s: pd.Timestamp(d).date().isoformat() for s, d in
                               origins.items()}  # the loaded model itself did not move
    expected = forecaster.update(next_week).predict(HORIZON, None, LEVEL)
    rows = expected[["series_id", "ds"]]
    got = rolled.predict(None, rows)
    np.testing.assert_allclose(got["yhat"], expected["yhat"])
    assert set(got["origin"]) == set(rolled.origins().values())


@pytest.mark.parametrize("family", ["regression", "seasonal_naive", "time_series"])
def test_forecast_periods_are_the_rows_predict_returns(family, fitted,
                                                       small_training_set) -> None:
    """What log_forecaster takes for the forecast's rows (no forecast computed), for a
    fitted forecaster and for one rolled a week forward on one series."""
    from training.forecasters import SeasonalNaive, TimeSeriesForecaster

    forecaster = {"regression": lambda: fitted[0],
                  "seasonal_naive": lambda: SeasonalNaive().fit(small_training_set),
                  "time_series": lambda: TimeSeriesForecaster().fit(small_training_set),
                  }[family]()
    origins = forecaster.origins()
    rolled = forecaster.update(pd.DataFrame({
        "series_id": [str(origins.index[0])],
        "ds": [origins.iloc[0] + pd.Timedelta(weeks=1)], "y": [5.0]}))
    for model in (forecaster, rolled):
        expected = model.predict(HORIZON, None, LEVEL)[["series_id", "ds"]]
        got = forecast_periods(model, small_training_set)
        key = ["series_id", "ds"]
        pd.testing.assert_frame_equal(
            got.sort_values(key, ignore_index=True),
            expected.astype({"series_id": object}).sort_values(key, ignore_index=True),
            check_dtype=False)
