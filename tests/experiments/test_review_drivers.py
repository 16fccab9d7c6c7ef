"""The review's drivers section: which version, which forecasts, and clear reasons when
there is nothing to explain. (The demo test explains a real model's misses end to end.)"""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from experiments.review_drivers import cells_in_reach, drivers_section, made_by, rolled_to

WEEKS = list(pd.date_range("2024-08-05", periods=4, freq="7D"))


def test_the_version_that_made_most_forecasts_is_chosen() -> None:
    logged = pd.DataFrame({"model_version": ["4", "4", "8", None]})
    assert made_by(logged) == "4"
    assert made_by(pd.DataFrame({"model_version": [None]})) is None


def test_only_dates_within_the_horizon_after_each_origin_are_explained() -> None:
    origins = {"A": "2024-07-29", "B": "2024-08-12"}
    cells = cells_in_reach(origins, ["A", "B", "unknown"], WEEKS, horizon=2, freq="W")
    assert list(zip(cells["series_id"], cells["ds"].dt.strftime("%m-%d"), strict=True)) == [
        ("A", "08-05"), ("A", "08-12"), ("B", "08-19"), ("B", "08-26")]


class _Rolling:
    def __init__(self) -> None:
        self.rolled_with: pd.DataFrame | None = None

    def roll(self, actuals: pd.DataFrame) -> str:
        self.rolled_with = actuals
        return "rolled"


def test_the_model_is_rolled_with_the_series_actuals_before_the_period_only() -> None:
    actuals = pd.DataFrame({"series_id": ["A", "A", "B", "C"], "y": [1.0, 2.0, 3.0, 4.0],
                            "ds": pd.to_datetime(["2024-07-29", "2024-08-05", "2024-07-29",
                                                  "2024-07-29"])})
    model = _Rolling()
    assert rolled_to(model, actuals, ["A", "B"], WEEKS[0]) == "rolled"
    assert model.rolled_with is not None
    assert sorted(model.rolled_with["y"]) == [1.0, 3.0]  # not A's August week, not C
    assert rolled_to(model, actuals.iloc[:0], ["A"], WEEKS[0]) is model


class _Store:
    def read_predictions(self) -> pd.DataFrame:
        return pd.DataFrame({"series_id": ["A"], "ds": [WEEKS[0]], "model_version": [None]})


@pytest.mark.parametrize("model_name, deviations, expected", [
    (None, [{"series_id": "A"}], "give --spec"),
    ("m", [], "no deviation"),
    ("m", [{"series_id": "A"}], "no logged forecast names its model version"),
])
def test_no_drivers_says_why(model_name: str | None, deviations: list[dict[str, Any]],
                             expected: str) -> None:
    doc = {"deviations": deviations, "period": {"first": "2024-08-01", "last": "2024-08-31"}}
    said = drivers_section(_Store(), doc, model_name, "sqlite:///unused.db", None)
    assert isinstance(said, str) and expected in said
