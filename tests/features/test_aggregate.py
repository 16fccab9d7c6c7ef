"""Aggregation of transaction lines to the base panel (hand-built lines, answers by hand)."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from features.aggregate import aggregate_sales, encode_lines, planned_calendar
from features.raw import RawData

# 2024-01-01 is a Monday and 2024-03-31 a Sunday: 13 whole weeks, 3 whole months, 91 days.
LINES = [  # date, store, category, quantity, price, promo
    ("2024-01-01", "S1", "x", 1, 10.0, 1),
    ("2024-01-03", "S1", "x", 1, 5.0, 0),
    ("2024-01-20", "S1", "x", 1, 7.0, 0),
    ("2024-02-29", "S1", "x", 3, 1.0, 1),
    ("2024-01-16", "S2", "x", 2, 2.0, 0),
    ("2024-03-31", "S2", "x", 2, 3.0, 0),
]


def make_raw(lines: list[tuple], calendar: pd.DataFrame | None = None) -> RawData:
    frame = pd.DataFrame(lines, columns=["date", "store", "category", "quantity", "price",
                                         "promo"])
    frame["date"] = pd.to_datetime(frame["date"])
    frame["quantity"] = frame["quantity"].astype(float)
    frame["promo"] = frame["promo"].astype(float)
    frame["revenue"] = frame["quantity"] * frame["price"]
    frame["y"] = frame["revenue"]
    return RawData(frame, ("store", "category"), calendar=calendar)


# freq -> (y of the non-empty periods, rows per series): every other row has y = 0.
CASES = {
    "D": ({("S1|x", "2024-01-01"): 10, ("S1|x", "2024-01-03"): 5, ("S1|x", "2024-01-20"): 7,
           ("S1|x", "2024-02-29"): 3, ("S2|x", "2024-01-16"): 4, ("S2|x", "2024-03-31"): 6},
          {"S1|x": 91, "S2|x": 76}),
    "W": ({("S1|x", "2024-01-01"): 15, ("S1|x", "2024-01-15"): 7, ("S1|x", "2024-02-26"): 3,
           ("S2|x", "2024-01-15"): 4, ("S2|x", "2024-03-25"): 6},
          {"S1|x": 13, "S2|x": 11}),
    "M": ({("S1|x", "2024-01-01"): 22, ("S1|x", "2024-02-01"): 3, ("S2|x", "2024-01-01"): 4,
           ("S2|x", "2024-03-01"): 6},
          {"S1|x": 3, "S2|x": 3}),
}


@pytest.mark.parametrize("freq", ["D", "W", "M"])
def test_sums_y_per_period_and_fills_the_grid_with_zeros(freq: str) -> None:
    expected_y, expected_rows = CASES[freq]
    base = aggregate_sales(make_raw(LINES), freq)
    assert base.groupby("series_id").size().to_dict() == expected_rows
    got = {(s, d.strftime("%Y-%m-%d")): y for s, d, y in base[["series_id", "ds", "y"]]
           .itertuples(index=False) if y != 0}
    assert got == pytest.approx(expected_y)
    assert base["ds"].max() == base.loc[base["series_id"] == "S2|x", "ds"].max()


@pytest.mark.parametrize("freq", ["D", "W", "M"])
def test_each_series_runs_from_its_first_sale_without_gaps(freq: str) -> None:
    base = aggregate_sales(make_raw(LINES), freq)
    step = {"D": pd.Timedelta(days=1), "W": pd.Timedelta(weeks=1)}.get(freq)
    for _, rows in base.groupby("series_id"):
        ds = pd.DatetimeIndex(rows["ds"])
        if step is None:
            assert (ds[1:] == ds[:-1] + pd.offsets.MonthBegin(1)).all()
        else:
            assert (np.diff(ds.asi8) == step.value).all()
    first = base.groupby("series_id")["ds"].min()
    assert first["S2|x"] == {"D": pd.Timestamp("2024-01-16"), "W": pd.Timestamp("2024-01-15"),
                             "M": pd.Timestamp("2024-01-01")}[freq]


def test_panel_is_sorted_with_str_keys_and_series_id_joined_by_bar() -> None:
    base = aggregate_sales(make_raw(LINES), "W")
    assert list(base.columns[:5]) == ["series_id", "ds", "store", "category", "y"]
    assert base.equals(base.sort_values(["series_id", "ds"], ignore_index=True))
    assert pd.api.types.is_string_dtype(base["store"])
    assert set(base["series_id"]) == {"S1|x", "S2|x"}
    assert (base["series_id"] == base["store"] + "|" + base["category"]).all()


def test_promo_is_the_share_of_lines_and_price_revenue_weighted_then_carried() -> None:
    base = aggregate_sales(make_raw(LINES), "W").set_index(["series_id", "ds"])
    first_week = base.loc[("S1|x", pd.Timestamp("2024-01-01"))]
    # lines 10 x 1 (promo) and 5 x 1: promo share 1/2; price (10*10 + 5*5) / (10 + 5)
    assert first_week["promo"] == pytest.approx(0.5)
    assert first_week["price"] == pytest.approx(125 / 15)
    empty_week = base.loc[("S1|x", pd.Timestamp("2024-01-08"))]
    assert empty_week["y"] == 0 and empty_week["promo"] == 0
    assert empty_week["price"] == pytest.approx(125 / 15)  # the last observed price
    assert base.loc[("S1|x", pd.Timestamp("2024-02-26")), "promo"] == 1.0


def test_holiday_counts_holiday_days_of_the_period_from_the_calendar() -> None:
    calendar = pd.DataFrame({"date": pd.to_datetime(["2024-01-01", "2024-01-06", "2024-03-29",
                                                     "2024-03-29"]),
                             "holiday": [1.0, 1.0, 1.0, 1.0]})  # a duplicated date counts once
    base = aggregate_sales(make_raw(LINES, calendar), "W").set_index(["series_id", "ds"])
    assert base.loc[("S1|x", pd.Timestamp("2024-01-01")), "holiday"] == 2
    assert base.loc[("S2|x", pd.Timestamp("2024-03-25")), "holiday"] == 1
    assert base["holiday"].sum() == 2 + 1 + 1  # S1 weeks 1 and 13, S2 week 13


def test_planned_calendar_per_key_gives_promo_share_of_days_beyond_the_data() -> None:
    days = pd.date_range("2024-04-01", periods=14, freq="D")  # after the last sale
    calendar = pd.DataFrame({
        "date": days.repeat(2), "category": ["x", "y"] * 14,
        "holiday": 0.0, "promo": 0.0,
    })
    calendar.loc[(calendar["category"] == "x") & (calendar["date"] <= "2024-04-03"), "promo"] = 1
    planned = planned_calendar(calendar, "W", ("store", "category"))
    assert list(planned.columns) == ["ds", "category", "holiday", "promo"]
    x = planned[planned["category"] == "x"].set_index("ds")["promo"]
    assert x[pd.Timestamp("2024-04-01")] == pytest.approx(3 / 7)
    assert x[pd.Timestamp("2024-04-08")] == 0
    assert planned.loc[planned["category"] == "y", "promo"].sum() == 0


def test_promo_comes_from_the_planned_calendar_when_sales_have_no_flag() -> None:
    raw = make_raw(LINES)
    sales = raw.sales.drop(columns="promo")
    calendar = pd.DataFrame({"date": pd.date_range("2024-01-01", "2024-01-07"),
                             "category": "x", "promo": [1.0, 1, 0, 0, 0, 0, 0]})
    base = aggregate_sales(RawData(sales, raw.keys, calendar=calendar), "W")
    s1 = base[base["series_id"] == "S1|x"].set_index("ds")["promo"]
    assert s1[pd.Timestamp("2024-01-01")] == pytest.approx(2 / 7)
    assert s1.iloc[1:].sum() == 0


def test_partial_first_and_last_weeks_are_dropped_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    lines = [*LINES, ("2023-12-29", "S1", "x", 1, 100.0, 0), ("2024-04-02", "S2", "x", 1, 50.0, 0)]
    with caplog.at_level(logging.WARNING):
        base = aggregate_sales(make_raw(lines), "W")
    assert base["ds"].min() == pd.Timestamp("2024-01-01")
    assert base["ds"].max() == pd.Timestamp("2024-03-25")
    assert base["y"].sum() == pytest.approx(15 + 7 + 3 + 4 + 6)  # the partial weeks' lines out
    assert "dropping the first period 2023-12-25" in caplog.text
    assert "dropping the last period 2024-04-01" in caplog.text


@pytest.mark.parametrize(("freq", "dates", "first", "last"), [
    ("W", pd.date_range("2024-01-05", periods=10, freq="7D"), "2024-01-01", "2024-03-04"),
    ("M", pd.date_range("2024-01-01", periods=6, freq="MS") + pd.Timedelta(days=14),
     "2024-01-01", "2024-06-01"),
])
def test_period_totals_keep_their_first_and_last_period(
    freq: str, dates: pd.DatetimeIndex, first: str, last: str, caplog: pytest.LogCaptureFixture,
) -> None:
    """One row per store and period (weekly totals dated each Friday, monthly totals dated
    the 15th): no period is partial, the newest one reaches training."""
    lines = [(d.date().isoformat(), store, "x", 1, 10.0 + i, 0)
             for i, d in enumerate(dates) for store in ("S1", "S2")]
    with caplog.at_level(logging.WARNING):
        base = aggregate_sales(make_raw(lines), freq)
    assert base["ds"].min() == pd.Timestamp(first)
    assert base["ds"].max() == pd.Timestamp(last)
    assert base["y"].sum() == pytest.approx(sum(2 * (10.0 + i) for i in range(len(dates))))
    assert "dropping" not in caplog.text


def test_daily_data_never_drop_periods_and_monthly_drop_a_partial_month() -> None:
    lines = [*LINES, ("2024-04-10", "S1", "x", 1, 1.0, 0)]
    assert aggregate_sales(make_raw(lines), "D")["ds"].max() == pd.Timestamp("2024-04-10")
    assert aggregate_sales(make_raw(lines), "M")["ds"].max() == pd.Timestamp("2024-03-01")


@pytest.mark.parametrize("dtype", ["category", "object"])
def test_categorical_or_object_keys_give_the_same_panel_as_text_keys(dtype: str) -> None:
    raw = make_raw(LINES)
    sales = raw.sales.astype({"store": dtype, "category": dtype})
    expected = aggregate_sales(raw, "W")
    got = aggregate_sales(RawData(sales, raw.keys), "W")
    pd.testing.assert_frame_equal(got, expected)


def test_a_line_without_its_key_is_refused() -> None:
    raw = make_raw(LINES)
    sales = raw.sales.copy()
    sales.loc[2, "store"] = None
    with pytest.raises(ValueError, match="'store' has missing values"):
        encode_lines(RawData(sales, raw.keys), "W")
