"""The accuracy benchmark's data: the shipped panels load as the specs say, and the
held-out window and its scores are computed as `bench/accuracy.py` documents."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

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
