"""The per-series choice happens on short monthly histories too: the fit window is at least
``MIN_WINDOW`` periods, and a series too short for the holdout of two horizons holds out one
instead of skipping the choice (which used to hand every monthly series to the first
candidate, ETS)."""

from __future__ import annotations

import numpy as np

from features.training_set import TrainingSet
from training.forecasters.statistical_select import choose, holdout_length
from training.forecasters.statistical_spec import SeriesModelSpec
from training.forecasters.time_series import MIN_WINDOW, TimeSeriesForecaster, history_window

CANDIDATES = ("ets", "theta_standard", "arima")


def _spec(**changes: object) -> SeriesModelSpec:
    base = {"candidates": CANDIDATES, "season_length": 12, "seasons": (12,), "horizon": 12,
            "holdout": 2}
    return SeriesModelSpec(**{**base, **changes})  # type: ignore[arg-type]


def test_monthly_series_keep_ten_years_daily_ones_their_years() -> None:
    assert history_window(3.0, "M") == MIN_WINDOW == 120
    assert history_window(3.0, "D") == 1095
    assert history_window(5.0, "W") == 260


def test_the_holdout_shrinks_to_one_horizon_before_the_choice_is_skipped() -> None:
    spec = _spec()
    assert holdout_length(200, spec) == 24  # two horizons fit
    assert holdout_length(50, spec) == 12   # 50 - 24 < 48, but 50 - 12 >= 24
    assert holdout_length(30, spec) == 0    # not even one horizon: no choice
    assert holdout_length(200, _spec(candidates=("ets",))) == 0  # nothing to choose


def test_a_three_year_monthly_series_is_chosen_for_by_holdout() -> None:
    """36 months: every candidate is scored on the last 12, and the lowest error wins."""
    rng = np.random.default_rng(3)
    t = np.arange(36)
    y = 10 + 0.2 * t + 2 * np.sin(2 * np.pi * t / 12) + rng.normal(0, 0.3, 36)
    exog = np.zeros((36, 0))
    _, scores = choose(y, y, exog, _spec())
    assert set(scores) == set(CANDIDATES)
    assert all(np.isfinite(v) and v > 0 for v in scores.values())


def test_auto_arima_is_a_candidate_only_for_seasons_it_can_model(
        small_training_set: TrainingSet) -> None:
    """A 52-week season leaves auto_arima an order search around Fourier terms (slower and
    no better than ``arima``): model="auto" leaves it out there, keeps it for short seasons,
    and it can still be forced."""
    long_season = TimeSeriesForecaster(season_length=52).fit(small_training_set)
    short_season = TimeSeriesForecaster(season_length=4).fit(small_training_set)
    assert "auto_arima" not in long_season.spec_.candidates
    assert "arima" in long_season.spec_.candidates
    assert "auto_arima" in short_season.spec_.candidates
    forced = TimeSeriesForecaster(model="auto_arima", season_length=52).fit(small_training_set)
    assert forced.spec_.candidates == ("auto_arima",)
