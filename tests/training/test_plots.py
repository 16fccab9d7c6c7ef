"""Plot helpers: which series the forecast-vs-actual figure shows; every figure renders
at the logged size."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from training import plots
from training.plots import sample_series


def _predictions(totals: dict[str, float]) -> pd.DataFrame:
    return pd.DataFrame({"series_id": list(totals), "y": list(totals.values())})


def test_sample_series_picks_largest_median_and_smallest() -> None:
    frame = _predictions({"a": 5.0, "b": 50.0, "c": 20.0, "d": 1.0, "e": 10.0})
    assert sample_series(frame, 3) == ["b", "e", "d"]


def test_a_single_sample_series_is_the_largest() -> None:
    frame = _predictions({"a": 5.0, "b": 50.0, "c": 20.0})
    assert sample_series(frame, 1) == ["b"]


def _backtest_predictions() -> pd.DataFrame:
    ds = pd.date_range("2024-01-01", periods=8, freq="W-MON")
    rows = [{"window": w, "series_id": s, "ds": d, "y": 10.0 * (k + 1) + i,
             "yhat": 10.0 * (k + 1), "yhat_lower": 5.0, "yhat_upper": 40.0}
            for k, s in enumerate("abcd") for w in (0, 1)
            for i, d in enumerate(ds[4 * w:4 * w + 4])]
    return pd.DataFrame(rows)


@pytest.mark.parametrize("name", ["forecast_vs_actual", "error_by_step",
                                  "feature_importance", "leaderboard_wape"])
def test_every_figure_saves_as_a_png_of_its_size_at_the_plots_dpi(name: str) -> None:
    figure = {
        "forecast_vs_actual": lambda: plots.forecast_vs_actual(_backtest_predictions()),
        "error_by_step": lambda: plots.error_by_step(
            pd.DataFrame({"step": [1, 2, 3, 4], "wape": [0.1, 0.2, 0.25, 0.3]})),
        "feature_importance": lambda: plots.feature_importance(
            pd.Series(np.arange(5.0), index=[f"f{i}" for i in range(5)])),
        "leaderboard_wape": lambda: plots.leaderboard_wape(
            pd.DataFrame({"family": ["naive", "gbm"], "wape": [0.3, 0.2]})),
    }[name]()
    out = io.BytesIO()
    figure.savefig(out, format="png", pil_kwargs={"compress_level": plots.PNG_COMPRESSION})
    width, height = figure.get_size_inches() * plots.DPI
    assert Image.open(out).size == (round(width), round(height))
