"""Roll-up accuracy per level on a frame small enough to compute by hand.

    series  ds  yhat  y        store A: d1 15 vs 15, d2 15 vs 15  -> |e| 0, 0
    A|x     d1   10   12       store B: d1 20 vs 20, d2 20 vs 24  -> |e| 0, 4
    A|x     d2   10    8       category x: d1 30 vs 32, d2 30 vs 32 -> 2, 2
    A|y     d1    5    3       category y: d1 5 vs 3, d2 5 vs 7     -> 2, 2
    A|y     d2    5    7       total: d1 35 vs 35, d2 35 vs 39      -> 0, 4
    B|x     d1   20   20       series: 2 + 2 + 2 + 2 + 0 + 4 = 12
    B|x     d2   20   24       sum |y| = 74 at every level; bias = (70 - 74) / 74
"""

from __future__ import annotations

import pandas as pd
import pytest

from serving.monitoring.accuracy import evaluate_accuracy
from serving.monitoring.levels import (
    cold_start_accuracy,
    level_groups,
    level_summary,
    rolled_up,
)
from serving.monitoring.report import to_jsonable


@pytest.fixture
def frame() -> pd.DataFrame:
    series = ["A|x", "A|x", "A|y", "A|y", "B|x", "B|x"]
    return pd.DataFrame({
        "series_id": series,
        "store": [s[0] for s in series], "category": [s[2] for s in series],
        "ds": pd.to_datetime(["2024-06-10", "2024-06-17"] * 3),
        "yhat": [10.0, 10.0, 5.0, 5.0, 20.0, 20.0], "y": [12.0, 8.0, 3.0, 7.0, 20.0, 24.0],
    })


@pytest.mark.parametrize("level, abs_error, groups", [
    ("total", 4, 1), ("store", 4, 2), ("category", 8, 2), ("series_id", 12, 3),
])
def test_level_summary_by_hand(frame: pd.DataFrame, level: str, abs_error: float,
                               groups: int) -> None:
    table = level_summary(frame, ["store", "category"]).set_index("level")
    row = table.loc[level]
    assert row["wape"] == pytest.approx(abs_error / 74)
    assert row["bias"] == pytest.approx(-4 / 74)
    assert row["n_groups"] == groups
    assert row["forecast"] == 70 and row["actual"] == 74
    assert list(table.index) == ["total", "store", "category", "series_id"]


def test_level_groups_by_hand(frame: pd.DataFrame) -> None:
    stores = level_groups(frame, "store").set_index("store")
    assert stores.loc["A", "wape"] == 0.0 and stores.loc["A", "bias"] == 0.0
    assert stores.loc["B", "wape"] == pytest.approx(4 / 44)
    assert stores.loc["B", "bias"] == pytest.approx(-4 / 44)
    assert stores.loc["B", "n"] == 2


def test_rolled_up_counts_series(frame: pd.DataFrame) -> None:
    total = rolled_up(frame, [])
    assert total["yhat"].tolist() == [35.0, 35.0] and total["y"].tolist() == [35.0, 39.0]
    assert total["n_series"].tolist() == [3, 3]


def test_rows_without_actual_are_not_summed(frame: pd.DataFrame) -> None:
    frame.loc[5, "y"] = None  # B|x d2 has no actual yet: its forecast leaves the roll-up
    total = rolled_up(frame, []).set_index("ds")["yhat"].tolist()
    assert total == [35.0, 15.0]


def test_cold_start_apart(frame: pd.DataFrame) -> None:
    assert cold_start_accuracy(frame) is None
    marked = frame.assign(cold_start=[False, False, False, False, True, True])
    table = cold_start_accuracy(marked).set_index("forecasts")
    assert table.loc["cold_start", "wape"] == pytest.approx(4 / 44)
    assert table.loc["model", "wape"] == pytest.approx(8 / 30)
    assert table.loc["model", "n_series"] == 2


def test_the_accuracy_report_carries_the_levels(frame: pd.DataFrame) -> None:
    frame = frame.assign(yhat_lower=frame["yhat"] - 5, yhat_upper=frame["yhat"] + 5)
    report = evaluate_accuracy(frame, keys=["store", "category"])
    document = to_jsonable(report)
    levels = {row["level"]: row for row in document["by_level"]}
    assert levels["total"]["wape"] == pytest.approx(4 / 74)
    assert [row["store"] for row in document["by_level_group"]["store"]] == ["A", "B"]
    assert document["cold_start"] is None
