"""Behaviour of the embedded retail simulator: determinism, each promised signal, the shift.

Every signal is measured on tiny seeded chains (3 stores x 2 categories, two years of
daily lines); thresholds are effects the simulator must produce, well clear of noise.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from features.config import SimulatorConfig
from features.simulator import (
    SimulatedRetail,
    lines_per_day_for,
    sales_day_count,
    simulate_retail,
    write_retail_data,
)

SEED = 7
SHIFT_AT = "2023-07-03"
TINY = SimulatorConfig(seed=SEED, stores=3, categories=2, customers=300, periods=104,
                       future_periods=8)


@pytest.fixture(scope="module")
def retail() -> SimulatedRetail:
    return simulate_retail(TINY)


@pytest.fixture(scope="module")
def shifted() -> SimulatedRetail:
    return simulate_retail(TINY.model_copy(update={"shift_at": SHIFT_AT}))


@pytest.fixture(scope="module")
def sales(retail: SimulatedRetail) -> pd.DataFrame:
    """Sales lines with revenue and the buyer's segment."""
    frame = retail.sales.merge(retail.customers[["customer_id", "segment"]], on="customer_id")
    return frame.assign(revenue=frame["quantity"] * frame["unit_price"])


def daily(sales: pd.DataFrame) -> pd.DataFrame:
    """Per (date, category): lines, units, revenue and the promotion flag."""
    return sales.groupby(["date", "category"], observed=True).agg(
        lines=("quantity", "size"), units=("quantity", "sum"),
        revenue=("revenue", "sum"), promo=("promo", "max"), price=("unit_price", "mean"),
    ).reset_index()


def assert_identical(left: pd.DataFrame, right: pd.DataFrame) -> None:
    """Same columns, dtypes and values, bit for bit."""
    pd.testing.assert_frame_equal(left, right, check_exact=True)


# -- determinism and shape -----------------------------------------------------------


def test_same_seed_gives_identical_frames(retail: SimulatedRetail) -> None:
    again = simulate_retail(TINY)
    for table in ("sales", "customers", "calendar"):
        assert_identical(getattr(retail, table), getattr(again, table))


def test_different_seed_gives_different_data(retail: SimulatedRetail) -> None:
    other = simulate_retail(TINY.model_copy(update={"seed": SEED + 1}))
    assert not retail.sales.equals(other.sales)
    assert not retail.calendar["promo"].equals(other.calendar["promo"])


def test_sales_columns_and_dtypes(retail: SimulatedRetail) -> None:
    sales = retail.sales
    assert list(sales.columns) == ["date", "store", "category", "customer_id", "quantity",
                                   "unit_price", "promo", "channel"]
    assert pd.api.types.is_datetime64_any_dtype(sales["date"])
    assert (sales["date"] == sales["date"].dt.normalize()).all()
    assert sales["date"].is_monotonic_increasing
    assert pd.api.types.is_integer_dtype(sales["quantity"])
    assert pd.api.types.is_float_dtype(sales["unit_price"])
    assert (sales["unit_price"] > 0).all()
    assert set(sales["promo"].unique()) == {0, 1}
    assert set(sales["store"].astype(str)) == {"S01", "S02", "S03"}
    assert set(sales["category"].astype(str)) == {"grocery", "electronics"}
    assert set(sales["channel"].astype(str)) == {"store", "online"}


def test_sales_span_the_configured_periods(retail: SimulatedRetail) -> None:
    days = pd.date_range(TINY.start, periods=TINY.periods * 7, freq="D")
    assert retail.sales["date"].min() == days[0]
    assert retail.sales["date"].max() == days[-1]
    daily_config = TINY.model_copy(update={"freq": "D", "periods": 30})
    assert simulate_retail(daily_config).sales["date"].nunique() == 30
    assert sales_day_count(daily_config) == 30


def test_volume_follows_lines_per_day() -> None:
    config = TINY.model_copy(update={"periods": 20})
    small = simulate_retail(config, lines_per_day=50)
    large = simulate_retail(config, lines_per_day=lines_per_day_for(config, 20_000))
    assert len(small.sales) == pytest.approx(50 * 140, rel=0.05)
    assert len(large.sales) == pytest.approx(20_000, rel=0.05)
    default = simulate_retail(config)  # 4 lines per store x category and day
    assert len(default.sales) == pytest.approx(4 * 3 * 2 * 140, rel=0.05)


def test_returns_are_a_small_share_of_negative_quantities(retail: SimulatedRetail) -> None:
    quantity = retail.sales["quantity"]
    assert (quantity != 0).all()
    assert 0.004 < (quantity < 0).mean() < 0.02


# -- customers -----------------------------------------------------------------------


def test_every_line_has_a_customer_signed_up_by_then(retail: SimulatedRetail) -> None:
    lines = retail.sales.merge(retail.customers, on="customer_id", how="left")
    assert lines["signup_date"].notna().all()
    assert (lines["signup_date"] <= lines["date"]).all()


def test_tiny_customer_base_still_covers_every_line() -> None:
    data = simulate_retail(TINY.model_copy(update={"customers": 10, "stores": 6,
                                                   "periods": 10}))
    lines = data.sales.merge(data.customers, on="customer_id")
    assert len(lines) == len(data.sales)
    assert (lines["signup_date"] <= lines["date"]).all()


def test_new_customers_appear_during_the_range(retail: SimulatedRetail) -> None:
    start = pd.Timestamp(TINY.start)
    signup = retail.customers["signup_date"]
    assert 0.15 < (signup >= start).mean() < 0.5
    first_purchase = retail.sales.groupby("customer_id", observed=True)["date"].min()
    assert (first_purchase > start + pd.Timedelta(days=365)).sum() >= 20


def test_store_customers_come_from_the_store_region(retail: SimulatedRetail) -> None:
    in_store = retail.sales[retail.sales["channel"] == "store"]
    lines = in_store.merge(retail.customers[["customer_id", "region"]], on="customer_id")
    regions_per_store = lines.groupby("store", observed=True)["region"].nunique()
    assert (regions_per_store == 1).all()


# -- demand signals ------------------------------------------------------------------


def test_promotion_days_sell_more_units_at_lower_prices(sales: pd.DataFrame) -> None:
    by_day = daily(sales)
    for category, days in by_day.groupby("category", observed=True):
        promo, normal = days[days["promo"] == 1], days[days["promo"] == 0]
        assert promo["units"].mean() > 1.15 * normal["units"].mean(), category
        assert promo["price"].mean() < 0.95 * normal["price"].mean(), category


def test_sales_promo_flag_matches_the_planned_calendar(retail: SimulatedRetail) -> None:
    planned = retail.calendar[["date", "category", "promo"]].rename(columns={"promo": "plan"})
    lines = retail.sales.astype({"category": "str"}).merge(planned, on=["date", "category"])
    assert len(lines) == len(retail.sales)
    assert (lines["promo"] == lines["plan"]).all()


def test_december_sells_above_the_average(sales: pd.DataFrame) -> None:
    revenue = sales.groupby("date")["revenue"].sum()
    assert revenue[revenue.index.month == 12].mean() > 1.2 * revenue.mean()


def test_holidays_lift_sales(retail: SimulatedRetail) -> None:
    holiday_days = retail.calendar.loc[retail.calendar["holiday"] == 1, "date"].unique()
    lines = retail.sales.groupby("date").size()
    on_holiday = lines.index.isin(holiday_days)
    assert on_holiday.sum() >= 10
    assert lines[on_holiday].mean() > 1.2 * lines[~on_holiday].mean()


def test_weekends_sell_more_than_weekdays(retail: SimulatedRetail) -> None:
    lines = retail.sales.groupby("date").size()
    weekend = lines.index.day_of_week >= 5
    assert lines[weekend].mean() > 1.15 * lines[~weekend].mean()


def test_second_year_sells_more_than_the_first() -> None:
    """Growth is per store and category, blurred by slow level noise: average 24 series."""
    sales = simulate_retail(TINY.model_copy(update={"stores": 12})).sales
    second_year = sales["date"] >= pd.Timestamp(TINY.start) + pd.Timedelta(weeks=52)
    revenue = sales["quantity"] * sales["unit_price"]
    assert second_year.sum() > 1.04 * (~second_year).sum()
    assert revenue[second_year].sum() > 1.04 * revenue[~second_year].sum()


# -- segments ------------------------------------------------------------------------


def test_segments_differ_in_basket_and_price(sales: pd.DataFrame) -> None:
    by_segment = sales[sales["quantity"] > 0].groupby("segment")
    basket = by_segment["quantity"].mean()
    assert basket["budget"] > 1.2 * basket["regular"] > 1.2 * basket["premium"]
    price = sales.groupby(["segment", "category"], observed=True)["unit_price"].mean()
    for category in ("grocery", "electronics"):
        assert price["premium", category] > 1.2 * price["budget", category]


def test_budget_customers_respond_more_to_promotions(sales: pd.DataFrame) -> None:
    basket = sales.groupby(["segment", "promo"])["quantity"].mean()
    lift = basket.xs(1, level="promo") / basket.xs(0, level="promo")
    assert lift["budget"] > lift["regular"] > lift["premium"]
    assert lift["budget"] > 1.2


def test_segments_differ_in_frequency_and_category_mix(
    retail: SimulatedRetail, sales: pd.DataFrame
) -> None:
    customers = retail.customers["segment"].value_counts()
    lines_per_customer = sales["segment"].value_counts() / customers
    assert lines_per_customer["premium"] > 1.5 * lines_per_customer["budget"]
    mix = pd.crosstab(sales["category"], sales["segment"], normalize="index")
    assert mix.loc["electronics", "premium"] > 2 * mix.loc["grocery", "premium"]
    online = sales.groupby("segment")["channel"].apply(lambda c: (c == "online").mean())
    assert online["premium"] > 2 * online["budget"]


# -- calendar ------------------------------------------------------------------------


def test_calendar_covers_the_future_with_planned_promotions(retail: SimulatedRetail) -> None:
    calendar = retail.calendar
    last_sale = retail.sales["date"].max()
    expected_days = pd.date_range(TINY.start, last_sale + pd.Timedelta(weeks=8), freq="D")
    assert (calendar.groupby("date").size() == 2).all()
    assert pd.DatetimeIndex(calendar["date"].unique()).equals(expected_days)
    future = calendar[calendar["date"] > last_sale]
    assert future["promo"].sum() > 0


def test_calendar_discounts_and_holiday_names(retail: SimulatedRetail) -> None:
    calendar = retail.calendar
    promo = calendar["promo"] == 1
    assert (calendar.loc[~promo, "discount"] == 0).all()
    assert calendar.loc[promo, "discount"].between(0.05, 0.5).all()
    assert (calendar["holiday_name"].notna() == (calendar["holiday"] == 1)).all()
    christmas_eve = calendar[calendar["date"] == pd.Timestamp("2022-12-24")]
    assert (christmas_eve["holiday_name"] == "Christmas Eve").all()


def test_promotion_weeks_run_monday_to_sunday(retail: SimulatedRetail) -> None:
    plan = retail.calendar.assign(week=retail.calendar["date"].dt.to_period("W-SUN"))
    per_week = plan.groupby(["week", "category"])["promo"].nunique()
    assert (per_week == 1).all()


# -- regime shift --------------------------------------------------------------------


def test_shift_leaves_everything_before_it_unchanged(
    retail: SimulatedRetail, shifted: SimulatedRetail
) -> None:
    cut = pd.Timestamp(SHIFT_AT)
    for table in ("sales", "calendar"):
        before = getattr(retail, table)
        after = getattr(shifted, table)
        assert_identical(before[before["date"] < cut].reset_index(drop=True),
                         after[after["date"] < cut].reset_index(drop=True))
    assert_identical(retail.customers, shifted.customers)


def test_shift_changes_prices_promotions_segments_and_levels(
    retail: SimulatedRetail, shifted: SimulatedRetail
) -> None:
    cut = pd.Timestamp(SHIFT_AT)

    def after(data: SimulatedRetail) -> pd.DataFrame:
        lines = data.sales[data.sales["date"] >= cut]
        return lines.merge(data.customers[["customer_id", "segment"]], on="customer_id")

    base, new = after(retail), after(shifted)
    keys = ["segment", "category"]
    regular_price = [d[d["promo"] == 0].groupby(keys, observed=True)["unit_price"].mean()
                     for d in (base, new)]
    assert (regular_price[1] > 1.1 * regular_price[0]).all()
    budget_share = [(d["segment"] == "budget").groupby(d["category"], observed=True).mean()
                    for d in (base, new)]
    assert (budget_share[1] > budget_share[0] + 0.04).all()
    planned = [d.calendar.loc[d.calendar["date"] >= cut, "promo"].to_numpy()
               for d in (retail, shifted)]
    assert (planned[1] >= planned[0]).all() and planned[1].sum() > planned[0].sum()
    units = [d.groupby("category", observed=True)["quantity"].sum() for d in (base, new)]
    assert units[1]["electronics"] > 1.2 * units[0]["electronics"]


def test_shift_drops_the_first_category(
    retail: SimulatedRetail, shifted: SimulatedRetail
) -> None:
    cut = pd.Timestamp(SHIFT_AT)
    lines = [d.sales[(d.sales["date"] >= cut) & (d.sales["promo"] == 0)
                     & (d.sales["category"] == "grocery")] for d in (retail, shifted)]
    counts = [len(frame) for frame in lines]
    assert counts[1] < 0.85 * counts[0]


# -- files ---------------------------------------------------------------------------


def test_write_retail_data_round_trips_through_parquet(
    retail: SimulatedRetail, tmp_path: Path
) -> None:
    paths = write_retail_data(retail, tmp_path / "retail")
    assert set(paths) == {"sales", "customers", "calendar"}
    for table, path in paths.items():
        assert path.name == f"{table}.parquet"
        assert_identical(pd.read_parquet(path), getattr(retail, table))
