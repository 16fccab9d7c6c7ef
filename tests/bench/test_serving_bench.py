"""bench/serving.py's reference is one LightGBM booster: the champion it trains must be one."""

from __future__ import annotations

from pathlib import Path

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
