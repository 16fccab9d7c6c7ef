"""The verdict rule and the report: JSON that round-trips, HTML that stands alone."""

from __future__ import annotations

import dataclasses
import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from serving.monitoring.accuracy import AccuracyReport, evaluate_accuracy
from serving.monitoring.drift import DriftThresholds, column_drift, dataset_drift
from serving.monitoring.report import nice_ticks, render_html, to_document, write_report
from serving.monitoring.verdict import MonitorResult, VerdictRule, build_result, decide

THRESHOLDS = DriftThresholds()


def _features(n: int, seed: int, shift: dict[str, float] | None = None) -> pd.DataFrame:
    """Four numeric features and one categorical; ``shift`` moves a feature's mean."""
    rng, shift = np.random.default_rng(seed), shift or {}
    frame = pd.DataFrame({name: rng.normal(shift.get(name, 0.0), 1.0, n)
                          for name in ("price", "promo", "lag_4", "rolling_4")})
    return frame.assign(channel=rng.choice(["web", "store"], n, p=[0.3, 0.7]))


def _forecasts(n_series: int, biased: int, seed: int = 0) -> pd.DataFrame:
    """8 weeks of forecasts and actuals; the first ``biased`` series over-forecast by 30 %."""
    rng = np.random.default_rng(seed)
    weeks = pd.date_range("2024-01-01", periods=8, freq="W-MON")
    frames = []
    for s in range(n_series):
        y = 100 + rng.normal(0, 5, len(weeks))
        yhat = y * (1.3 if s < biased else 1.0) + rng.normal(0, 5, len(weeks))
        frames.append(pd.DataFrame({
            "series_id": f"S{s:02d}", "ds": weeks, "y": y, "yhat": yhat,
            "yhat_lower": yhat - 10, "yhat_upper": yhat + 10, "store": f"st{s % 3}",
            "segment": ["retail", "wholesale"][s % 2],
        }))
    return pd.concat(frames, ignore_index=True)


# --- verdict ----------------------------------------------------------------------------


def test_dataset_drift_means_retrain_and_names_the_columns() -> None:
    shift = {"price": 1.0, "promo": 1.0, "lag_4": 1.0}
    drift = dataset_drift(_features(2000, 1), _features(2000, 2, shift), THRESHOLDS)
    verdict = decide(drift)
    assert verdict.status == "retrain"
    assert verdict.reasons == [
        "dataset drift: 3 of 5 features drifted (share 0.60 >= 0.50): price, promo, lag_4"
    ]


def test_some_drift_means_watch_and_none_means_ok() -> None:
    some = dataset_drift(_features(2000, 1), _features(2000, 2, {"price": 1.0}), THRESHOLDS)
    assert decide(some).status == "watch"
    assert decide(some).reasons == [
        "1 of 5 features drifted (share 0.20 < 0.50): price"
    ]
    none = dataset_drift(_features(2000, 1), _features(2000, 2), THRESHOLDS)
    assert decide(none).status == "ok"
    assert decide(none).reasons == ["no feature drifted (0 of 5 compared)"]


def test_a_type_change_means_watch() -> None:
    reference = _features(2000, 1)
    current = _features(2000, 2).assign(promo=lambda f: (f["promo"] > 0).map({True: "y",
                                                                               False: "n"}))
    verdict = decide(dataset_drift(reference, current, THRESHOLDS))
    assert verdict.status == "watch"
    assert verdict.reasons == ["type changed, not compared: promo"]


def test_prediction_and_target_drift_mean_watch() -> None:
    stable = dataset_drift(_features(2000, 1), _features(2000, 2), THRESHOLDS)
    moved = column_drift(pd.Series(np.zeros(2000) + np.arange(2000) % 7, name="yhat"),
                         pd.Series(np.arange(2000) % 7 + 3.0, name="yhat"), THRESHOLDS)
    verdict = decide(stable, prediction_drift=moved)
    assert verdict.status == "watch"
    assert verdict.reasons[0].startswith("prediction drift: yhat distribution moved (wasserstein")


def _accuracy(n_series: int, biased: int, promised_wape: float | None) -> AccuracyReport:
    expected = {} if promised_wape is None else {"wape": promised_wape, "coverage": 0.8}
    return evaluate_accuracy(_forecasts(n_series, biased), expected)


def test_accuracy_much_worse_than_promised_means_retrain() -> None:
    accuracy = _accuracy(10, 0, promised_wape=0.02)
    observed = accuracy.overall["wape"]
    verdict = decide(accuracy=accuracy)
    assert verdict.status == "retrain"
    assert verdict.reasons[0].startswith(f"WAPE {observed:.3g} is {observed / 0.02:.2f}x the "
                                         "promised 0.02 (z = ")
    assert verdict.decided_by.startswith("accuracy against the promise (80 forecasts")


def test_mild_degradation_means_watch() -> None:
    observed = _accuracy(10, 0, promised_wape=0.02).overall["wape"]
    mild = _accuracy(10, 0, promised_wape=observed / 1.2)  # observed is 1.2x the promise
    assert decide(accuracy=mild).status == "watch"
    assert decide(accuracy=mild, rule=VerdictRule(wape_watch_ratio=1.3)).status == "ok"


def test_many_tracking_signal_alarms_beyond_chance_mean_retrain() -> None:
    accuracy = _accuracy(40, 20, promised_wape=None)  # 20 of 40 series keep over-forecasting
    verdict = decide(accuracy=accuracy)
    # after 8 periods about 27.5 % of unbiased series pass +-4 by chance: 40 x 0.275 = 11
    assert accuracy.chance_alarms == pytest.approx(11.0, abs=1.0)
    assert accuracy.n_alarms >= 20
    assert verdict.status == "retrain"
    assert f"tracking signal beyond ±4 for {accuracy.n_alarms} of 40 series (by chance: about " \
           "11, unbiased forecasts over the periods observed)" in verdict.reasons
    lenient = VerdictRule(alarm_retrain_share=0.5)
    assert decide(accuracy=accuracy, rule=lenient).status == "watch"


def test_chance_tracking_signal_alarms_of_unbiased_forecasts_are_ok() -> None:
    accuracy = _accuracy(40, 0, promised_wape=None)
    assert accuracy.n_alarms > 0  # the cumulative signal random-walks past +-4 on some series
    assert decide(accuracy=accuracy).status == "ok"


# --- JSON -------------------------------------------------------------------------------


def _result() -> MonitorResult:
    shift = {"price": 1.0, "promo": 1.0, "lag_4": 1.0}
    drift = dataset_drift(_features(2000, 1), _features(2000, 2, shift), THRESHOLDS)
    accuracy = _accuracy(6, 1, promised_wape=0.01)  # about 4x worse than promised
    return build_result(THRESHOLDS, drift=drift, accuracy=accuracy,
                        context={"reference": "train.parquet", "current": "last 28 days"},
                        served=True)


def test_json_document_is_strict_json_with_nulls_for_nan() -> None:
    result = _result()
    frame = result.accuracy.by_series.copy()
    frame.loc[0, "bias"] = np.nan
    result = dataclasses.replace(result, accuracy=dataclasses.replace(result.accuracy,
                                                                      by_series=frame))
    document = json.loads(json.dumps(to_document(result), allow_nan=False))
    assert document["schema"] == "salescast.monitoring/1"
    assert document["verdict"]["status"] == "retrain"
    assert document["drift"]["drifted_columns"] == result.drift.drifted_columns
    assert document["accuracy"]["by_series"][0]["bias"] is None
    assert len(document["accuracy"]["by_series"]) == 6
    assert document["thresholds"]["p_value"] == 0.05


def test_write_report_writes_both_files(tmp_path: Path) -> None:
    json_path, html_path = write_report(_result(), tmp_path / "report")
    assert json.loads(json_path.read_text())["verdict"]["status"] == "retrain"
    assert html_path is not None and html_path.read_text().startswith("<!DOCTYPE html>")
    only_json = write_report(_result(), tmp_path / "json-only", include_html=False)
    assert only_json[1] is None and not (tmp_path / "json-only" / "report.html").exists()


# --- HTML -------------------------------------------------------------------------------


def test_html_loads_nothing_from_outside() -> None:
    page = render_html(_result())
    lowered = page.lower()
    for needle in ("http", 'src="//', "<script", "@import", "url(", "<link", "<iframe"):
        assert needle not in lowered, needle
    assert re.findall(r'\b(?:src|href)\s*=', lowered) == []


def test_html_shows_verdict_drift_table_distributions_and_accuracy() -> None:
    result = _result()
    page = render_html(result)
    assert '<div class="status">retrain</div>' in page
    assert "<b>Decided by:</b> accuracy against the promise (48 forecasts" in page
    start = page.index("<b>Explained by:</b>")
    explained = page[start:page.index("</div>", start)]
    assert "likely cause: dataset drift: 3 of 5 features drifted" in explained
    for column in result.drift.drifted_columns:
        assert f"{column}: wasserstein" in page  # a distribution chart per drifted column
    assert page.count("<svg") == len(result.drift.drifted_columns) + 3  # + time x2, bias
    assert "Bias by segment" in page and "Worst series" in page
    assert page.count('<tr class="flag">') >= len(result.drift.drifted_columns) + 1  # + alarm


def test_html_escapes_column_names() -> None:
    reference = pd.DataFrame({"<b>x</b>": np.arange(50.0)})
    current = pd.DataFrame({"<b>x</b>": np.arange(50.0) + 40})
    drift = dataset_drift(reference, current, THRESHOLDS)
    page = render_html(build_result(THRESHOLDS, drift=drift))
    assert "<b>x</b>" not in page and "&lt;b&gt;x&lt;/b&gt;" in page


@pytest.mark.parametrize(("low", "high"), [(0.0, 0.137), (-3.2, 41.0), (5.0, 5.0),
                                           (1e6, 1.3e6)])
def test_axis_ticks_are_round_and_cover_the_range(low: float, high: float) -> None:
    ticks = nice_ticks(low, high)
    assert ticks[0] <= low and ticks[-1] >= high and len(ticks) >= 2
    steps = np.diff(ticks)
    assert np.allclose(steps, steps[0])
    mantissa = steps[0] / 10 ** math.floor(math.log10(steps[0]))
    assert any(math.isclose(mantissa, m) for m in (1, 2, 2.5, 5))
