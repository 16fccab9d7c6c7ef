"""bench/serving.py's reference is one LightGBM booster: the champion it trains must be one."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from experiments.spec import load_spec
from experiments.training_job import check_family_params
from tests.bench.loader import load_bench
from training.families import BY_NAME

REPO = Path(__file__).resolve().parents[2]


def test_the_served_lightgbm_is_pinned_to_one_booster() -> None:
    """Pinned whatever the defaults become: a recursive, per-bucket or hedged LightGBM
    would be several boosters, which the plain `mlflow.lightgbm` reference cannot be."""
    demo = load_spec(REPO / "experiments" / "retail_demo.yaml")
    spec = load_bench("serving").one_booster(demo)
    params = spec.models.lightgbm.params
    assert params["strategy"] == "direct" and params["target_scale"] == "row"
    assert {k: v for k, v in params.items() if k not in {"strategy", "target_scale"}} == {
        k: v for k, v in demo.models.lightgbm.params.items()
        if k not in {"strategy", "target_scale"}}
    check_family_params(spec, ["lightgbm"])  # the pins are params the family accepts
    forecaster = BY_NAME["lightgbm"].estimator(**params)
    assert forecaster.strategy == "direct" and forecaster.target_scale == "row"
    assert spec.models.family("regression") == demo.models.family("regression")


def test_the_reference_booster_answers_the_forecasters_numbers() -> None:
    """The bench's check before timing, in process: the booster on the reference's request
    rows, put back in sales, is the forecaster's own forecast (it stopped every run when
    LightGBM's target moved to the asinh scale and the check still multiplied raw output)."""
    from tests.training._panels import make_training_set
    from training.forecasters.gbm import FIRST_TRIAL, LightGBMForecaster

    training_set = make_training_set(horizon=8)  # the bench asks the reference for 8 weeks
    forecaster = LightGBMForecaster(**FIRST_TRIAL).fit(training_set)
    assert forecaster.target_transform == "asinh"  # the case the check once got wrong
    bench = load_bench("serving")
    series = sorted(training_set.base["series_id"].unique())[0]
    reference = SimpleNamespace(forecaster=forecaster)
    body, scale = bench.reference_rows(reference, [(series, k) for k in range(8)])
    matrix = np.array(json.loads(body)["dataframe_split"]["data"], dtype=float)
    answers = forecaster.model_.booster_.predict(matrix).tolist()
    ours = forecaster.predict(8, series_ids=[series])["yhat"].to_numpy()
    assert bench.reference_in_sales(forecaster, answers, scale) == pytest.approx(ours, rel=1e-9)
    raw_times_scale = np.asarray(answers) * np.asarray(scale)
    assert not np.allclose(raw_times_scale, ours, rtol=1e-3)
