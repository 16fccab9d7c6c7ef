"""Accuracy against the promise, with its noise: the tests that decide a served verdict."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from serving.monitoring.accuracy import evaluate_accuracy
from serving.monitoring.drift import DriftThresholds, dataset_drift
from serving.monitoring.promise import Promise, check_promise, ratio_and_variance
from serving.monitoring.verdict import decide

WEEKS = 8


def _rows(n_series: int, noise: float, seed: int, bias: float = 0.0, weeks: int = WEEKS,
          start: str = "2024-01-01", series_bias: np.ndarray | None = None) -> pd.DataFrame:
    """Forecasts with actuals: levels 50..150, errors N(bias * y, noise * y), interval
    +-1.28 noise * y (80 % when the errors keep their promise)."""
    rng = np.random.default_rng(seed)
    level = np.linspace(50, 150, n_series)
    ds = pd.date_range(start, periods=weeks, freq="7D")
    y = np.repeat(level, weeks) * rng.uniform(0.9, 1.1, n_series * weeks)
    shift = np.repeat(series_bias, weeks) if series_bias is not None else bias
    yhat = y * (1 + shift) + rng.normal(0, noise, y.size) * y
    half = 1.28 * noise * y
    return pd.DataFrame({
        "series_id": np.repeat([f"S{i:03d}" for i in range(n_series)], weeks),
        "ds": np.tile(ds, n_series), "y": y, "yhat": yhat,
        "yhat_lower": yhat - half, "yhat_upper": yhat + half,
    })


def _promise(n_series: int, seed: int = 1, **kw: object) -> Promise:
    return Promise(rows=_rows(n_series, 0.10, seed, start="2023-10-01", **kw))  # type: ignore[arg-type]


def test_the_clustered_variance_matches_a_bootstrap_over_series() -> None:
    rows = _rows(60, 0.1, seed=3)
    error = (rows["yhat"] - rows["y"]).abs().groupby(rows["series_id"]).sum()
    actual = rows["y"].abs().groupby(rows["series_id"]).sum()
    _, variance = ratio_and_variance(error, actual)
    rng = np.random.default_rng(0)
    draws = rng.integers(0, 60, (4000, 60))
    boot = error.to_numpy()[draws].sum(1) / actual.to_numpy()[draws].sum(1)
    assert variance == pytest.approx(boot.var(), rel=0.15)


def _worse(promise: Promise, factor: float) -> pd.DataFrame:
    """The promise's own forecasts with every error ``factor`` times larger."""
    rows = promise.rows
    yhat = rows["y"] + factor * (rows["yhat"] - rows["y"])
    half = (rows["yhat_upper"] - rows["yhat_lower"]) / 2
    return rows.assign(yhat=yhat, yhat_lower=yhat - half, yhat_upper=yhat + half)


def test_the_same_loss_is_a_retrain_on_many_series_and_noise_on_few() -> None:
    promises = {n: Promise(rows=_rows(n, 0.10, seed=2, weeks=w)) for n, w in ((120, 8), (3, 3))}
    many, few = (evaluate_accuracy(_worse(p, 1.4), promise=p) for p in promises.values())
    for report in (many, few):  # exactly 1.4x the promised WAPE either way
        assert report.promise_check is not None
        assert report.promise_check.wape.effect == pytest.approx(1.4)
    assert many.promise_check.wape.z >= 3 and decide(accuracy=many).status == "retrain"
    assert few.promise_check.wape.z < 3 and decide(accuracy=few).status != "retrain"


def test_a_window_that_keeps_the_promise_is_ok() -> None:
    kept = evaluate_accuracy(_rows(120, 0.10, seed=5), promise=_promise(120))
    verdict = decide(accuracy=kept)
    assert verdict.status == "ok", verdict.reasons
    assert verdict.decided_by == "accuracy against the promise (960 forecasts with their actuals)"


def test_a_bias_that_moved_towards_zero_is_no_loss_and_one_away_from_it_is() -> None:
    promise = _promise(120, bias=-0.06)
    better = check_promise(_rows(120, 0.10, seed=6, bias=0.0), promise)
    worse = check_promise(_rows(120, 0.10, seed=6, bias=-0.25), promise)
    assert better.bias.effect < 0 and worse.bias.effect > 0.15
    assert decide(accuracy=evaluate_accuracy(_rows(120, 0.10, seed=6), promise=promise)
                  ).status == "ok"
    worse_report = evaluate_accuracy(_rows(120, 0.10, seed=6, bias=-0.25), promise=promise)
    assert any(r.startswith("bias -2") for r in decide(accuracy=worse_report).reasons)


def test_tracking_signal_chance_is_the_backtests_own_alarm_rate() -> None:
    """A model whose series each keep a small bias alarms often; in the backtest as now."""
    rng = np.random.default_rng(7)
    per_series = rng.choice([-0.12, 0.12], 120)
    current = _rows(120, 0.10, seed=8, series_bias=per_series)
    with_backtest = evaluate_accuracy(current, promise=_promise(120, series_bias=per_series))
    gaussian = evaluate_accuracy(current, {"wape": with_backtest.promise_check.wape.promised})
    assert with_backtest.n_alarms > 0.4 * 120  # the model's usual alarms
    assert with_backtest.chance_alarms > 0.4 * 120
    assert "the backtest's own rate over its first 8 periods" in with_backtest.chance_basis
    assert decide(accuracy=with_backtest).status == "ok"
    assert gaussian.chance_alarms < 0.35 * 120  # unbiased iid errors would raise fewer
    assert decide(accuracy=gaussian).status == "retrain"


def test_promise_from_run_reads_the_windows_and_refuses_missing_columns() -> None:
    rows = _rows(4, 0.1, seed=0)
    metrics = {"wape_w0": 0.2, "wape_w1": 0.3, "wape": 0.25, "bias_pct_w0": -5.0,
               "wape_w10": 0.4}
    promise = Promise.from_run(rows, metrics)
    assert promise.window_wape == [0.2, 0.3, 0.4] and promise.window_bias == [-0.05]
    with pytest.raises(ValueError, match="yhat_lower"):
        Promise.from_run(rows.drop(columns="yhat_lower"), metrics)


def _drifted() -> object:
    rng = np.random.default_rng(0)
    reference = pd.DataFrame({c: rng.normal(0, 1, 2000) for c in "abc"})
    current = pd.DataFrame({c: rng.normal(1.0, 1, 2000) for c in "abc"})
    return dataset_drift(reference, current, DriftThresholds())


def test_without_actuals_drift_is_an_early_warning_never_a_retrain() -> None:
    drift = _drifted()
    assert decide(drift).status == "retrain"  # two files: drift is all there is
    served = decide(drift, served=True)
    assert served.status == "watch"
    assert served.decided_by.startswith("drift only: an early warning")
    assert served.reasons[0].startswith("dataset drift: 3 of 3 features drifted")


def test_with_actuals_accuracy_decides_and_drift_explains() -> None:
    drift = _drifted()
    kept = evaluate_accuracy(_rows(120, 0.10, seed=5), promise=_promise(120))
    lost = evaluate_accuracy(_rows(120, 0.2, seed=5), promise=_promise(120))
    holds = decide(drift, accuracy=kept, served=True)
    assert holds.status == "ok"
    assert holds.explanations == ["moved, but the forecasts keep their promise: dataset "
                                  "drift: 3 of 3 features drifted (share 1.00 >= 0.50): a, b, c"]
    retrain = decide(drift, accuracy=lost, served=True)
    assert retrain.status == "retrain"
    assert retrain.reasons[0].startswith("WAPE ")
    assert retrain.explanations == ["likely cause: dataset drift: 3 of 3 features drifted "
                                    "(share 1.00 >= 0.50): a, b, c"]
