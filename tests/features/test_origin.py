"""The origin rule (features.origin): what moves a series' origin and what holds it."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from features.origin import (
    advance,
    consecutive_actuals,
    data_clock,
    flag_stale,
    forecast_dates,
    is_period_start,
    periods_between,
)

TRAINED = date(2024, 6, 3)  # a Monday
TODAY = date(2026, 1, 1)


def _weeks(*offsets: int) -> list[date]:
    return [date.fromordinal(TRAINED.toordinal() + 7 * k) for k in offsets]


@pytest.mark.parametrize(("origin", "freq", "expected"), [
    ("2024-06-03", "W", ["2024-06-10", "2024-06-17", "2024-06-24"]),
    ("2024-02-27", "D", ["2024-02-28", "2024-02-29", "2024-03-01"]),
    ("2024-01-01", "M", ["2024-02-01", "2024-03-01", "2024-04-01"]),
    ("2023-12-01", "M", ["2024-01-01", "2024-02-01", "2024-03-01"]),
])
def test_forecast_dates_are_the_periods_after_the_origin(origin: str, freq: str,
                                                         expected: list[str]) -> None:
    dates = forecast_dates(date.fromisoformat(origin), freq, 3)
    assert [d.isoformat() for d in dates] == expected
    assert [periods_between(date.fromisoformat(origin), d, freq) for d in dates] == [1, 2, 3]


def test_only_first_days_of_periods_are_periods() -> None:
    assert is_period_start(date(2024, 6, 3), "W")
    assert not is_period_start(date(2024, 6, 5), "W")  # a Wednesday
    assert is_period_start(date(2024, 6, 1), "M") and not is_period_start(date(2024, 6, 2), "M")
    assert is_period_start(date(2024, 6, 5), "D")


def test_consecutive_complete_actuals_move_the_origin_in_any_order() -> None:
    moved = advance("A", TRAINED, _weeks(2, 1, 3), "W", TODAY)
    assert (moved.origin, moved.status, moved.newest_actual) == (_weeks(3)[0], "current",
                                                                   _weeks(3)[0])
    assert advance("A", TRAINED, [], "W", TODAY).origin == TRAINED


def test_a_missing_period_holds_the_origin_and_says_which() -> None:
    held = advance("A", TRAINED, _weeks(1, 3, 4), "W", TODAY)
    assert held.origin == _weeks(1)[0] and held.status == "gap"
    assert _weeks(2)[0].isoformat() in held.detail
    assert held.newest_actual == _weeks(4)[0]


def test_a_period_not_over_yet_is_incomplete() -> None:
    week_two = _weeks(2)[0]
    during = date.fromordinal(week_two.toordinal() + 3)  # Thursday of week 2
    held = advance("A", TRAINED, _weeks(1, 2), "W", today=during)
    assert held.origin == _weeks(1)[0] and held.status == "incomplete"
    assert week_two.isoformat() in held.detail
    after = date.fromordinal(week_two.toordinal() + 7)  # the Monday after: week 2 is over
    assert advance("A", TRAINED, _weeks(1, 2), "W", today=after).origin == week_two


def test_a_series_more_than_the_horizon_behind_the_newest_origin_is_stale() -> None:
    ahead = advance("A", TRAINED, _weeks(*range(1, 10)), "W", TODAY)
    behind = advance("B", TRAINED, _weeks(1), "W", TODAY)
    clock = data_clock([ahead, behind])
    assert clock == _weeks(9)[0]
    assert flag_stale(behind, clock, "W", horizon=8).status == "current"  # 8 behind: covered
    stale = flag_stale(behind, clock, "W", horizon=7)
    assert stale.status == "stale" and stale.origin == behind.origin and "8 periods" in stale.detail
    assert flag_stale(ahead, clock, "W", horizon=1).status == "current"


def test_the_state_is_built_from_the_actuals_after_training_up_to_the_origin() -> None:
    actuals = pd.DataFrame({"series_id": ["A"] * 4 + ["B"],
                            "ds": pd.to_datetime([TRAINED, *_weeks(1, 2, 4), _weeks(1)[0]]),
                            "y": [1.0, 2.0, 3.0, 4.0, 5.0]})
    rows = consecutive_actuals(actuals, {"A": _weeks(2)[0], "B": TRAINED},
                               {"A": TRAINED, "B": TRAINED})
    assert rows["y"].tolist() == [2.0, 3.0]  # not the trained week, not past the gap, no B
