"""The monitor's calibration, quick version: one seed of a small chain, both arms.

The same loop as ``bench/monitor_calibration.py`` (the demo's spec, trained once, a real
API process serving the demo's application for 16 weeks with and without the regime
shift, then ``salescast monitor``'s job on each stretch of 8 weeks) with a smaller chain
and one trial per family; the bench runs 20 seeds of the full demo. The 12 series sell
ten times as many lines each as the demo's 120, so the window holds as much evidence.
"""

from __future__ import annotations

import pytest

from experiments.calibration import Judgement, calibrate, rates

SMALL = {"simulator": {"stores": 4, "categories": 3, "customers": 2000, "lines_per_day": 480.0},
         "models": {"regression": {"trials": 1}, "lightgbm": {"trials": 1},
                    "time_series": {"enabled": False}}}


@pytest.fixture(scope="module")
def judged(tmp_path_factory: pytest.TempPathFactory) -> list[Judgement]:
    return calibrate([3], tmp_path_factory.mktemp("calibration"), SMALL)


def test_without_a_shift_the_monitor_does_not_say_retrain(judged: list[Judgement]) -> None:
    quiet = [j for j in judged if not j.shifted]
    assert [(j.arm, j.weeks) for j in quiet] == [("quiet", "1-8"), ("quiet", "9-16")]
    for judgement in quiet:
        assert judgement.verdict != "retrain", judgement.reasons
        assert judgement.wape_ratio < 1.25


def test_after_the_shift_the_monitor_says_retrain_on_accuracy(judged: list[Judgement]) -> None:
    (shifted,) = [j for j in judged if j.shifted]
    assert shifted.verdict == "retrain", shifted.reasons
    assert shifted.decided_by.startswith("accuracy against the promise")
    assert shifted.wape_ratio > 1.25


def test_the_rates_table_counts_each_arm(judged: list[Judgement]) -> None:
    table = rates(judged)
    assert table.loc[("shift", "9-16"), "retrain"] == 1.0
    assert table.loc[("quiet", "1-8"), "retrain"] == 0.0
    assert table.loc[("quiet", "9-16")].sum() == pytest.approx(1.0)
