"""LightGBM fits a small panel on one thread (OpenMP threads spin-wait on a busy machine:
many times slower there) and a large one on ``n_jobs`` threads."""

from __future__ import annotations

import pytest

from features.training_set import TrainingSet
from training.forecasters import gbm
from training.forecasters.gbm import LightGBMForecaster


def test_a_small_panel_is_fitted_on_one_thread_a_large_one_on_n_jobs(
        small_training_set: TrainingSet, monkeypatch: pytest.MonkeyPatch) -> None:
    small = LightGBMForecaster(n_jobs=2, n_estimators=20).fit(small_training_set)
    assert small.model_.get_params()["n_jobs"] == 1
    monkeypatch.setattr(gbm, "SMALL_FIT_ROWS", 0)
    large = LightGBMForecaster(n_jobs=2, n_estimators=20).fit(small_training_set)
    assert large.model_.get_params()["n_jobs"] == 2
