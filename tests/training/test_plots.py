"""Plot helpers: which series the forecast-vs-actual figure shows."""

from __future__ import annotations

import pandas as pd

from training.plots import sample_series


def _predictions(totals: dict[str, float]) -> pd.DataFrame:
    return pd.DataFrame({"series_id": list(totals), "y": list(totals.values())})


def test_sample_series_picks_largest_median_and_smallest() -> None:
    frame = _predictions({"a": 5.0, "b": 50.0, "c": 20.0, "d": 1.0, "e": 10.0})
    assert sample_series(frame, 3) == ["b", "e", "d"]


def test_a_single_sample_series_is_the_largest() -> None:
    frame = _predictions({"a": 5.0, "b": 50.0, "c": 20.0})
    assert sample_series(frame, 1) == ["b"]
