"""Gaps: periods without rows that mean missing data, not zero sales (features.gaps)."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from features.aggregate import aggregate_with_gaps
from features.build import build_training_set
from features.config import DataConfig, FeatureConfig, SourceConfig
from features.raw import RawData
from features.sources import standardize

FRIDAYS = pd.date_range("2021-01-08", periods=156, freq="7D")  # weekly totals, dated Fridays
HOLE = slice(60, 86)  # 26 weeks (six months) without a row for store S2


def weekly_totals(hole: slice | None = HOLE) -> pd.DataFrame:
    """Three stores' weekly totals, one row per store and week; S2 closed for ``hole``."""
    rng = np.random.default_rng(0)
    frames = []
    for store, level in (("S1", 100.0), ("S2", 60.0), ("S3", 30.0)):
        y = level * np.exp(rng.normal(0, 0.1, len(FRIDAYS)))
        frame = pd.DataFrame({"date": FRIDAYS, "store": store, "sales": y})
        if store == "S2" and hole is not None:
            frame = frame.drop(index=frame.index[hole])
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def totals_config(**options: object) -> DataConfig:
    from features.config import SalesColumns

    columns = SalesColumns(date="date", target="sales", quantity=None, price=None, promo=None,
                           customer_id=None, channel=None, keys=["store"])
    return DataConfig(sales=SourceConfig(path="totals.csv"), sales_columns=columns, **options)


def hole_rows(base: pd.DataFrame) -> pd.DataFrame:
    hole_ds = pd.DatetimeIndex(FRIDAYS[HOLE]).to_period("W-SUN").start_time
    return base[(base["series_id"] == "S2") & base["ds"].isin(hole_ds)]


def test_a_six_month_hole_in_weekly_totals_is_missing_not_zero(
    caplog: pytest.LogCaptureFixture,
) -> None:
    raw = standardize(weekly_totals(), totals_config())
    with caplog.at_level(logging.WARNING, logger="features.gaps"):
        base, gaps = aggregate_with_gaps(raw, "W")
    hole = hole_rows(base)
    assert len(hole) == 26 and hole["y"].isna().all()
    assert base["y"].isna().sum() == 26  # nothing else is missing
    assert [gap.to_dict() for gap in gaps.gaps] == [
        {"series_id": "S2", "start": "2022-02-28", "end": "2022-08-22", "periods": 26}]
    assert "series S2, 2022-02-28 .. 2022-08-22 (26 periods)" in caplog.text


def test_gaps_zero_keeps_todays_zero_sales_and_still_reports() -> None:
    raw = standardize(weekly_totals(), totals_config(gaps="zero"))
    base, gaps = aggregate_with_gaps(raw, "W")
    assert (hole_rows(base)["y"] == 0).all()
    assert gaps.n_cells == 26 and gaps.fill == "zero"


def test_the_gap_is_recorded_in_the_training_set_metadata() -> None:
    raw = standardize(weekly_totals(), totals_config())
    features = FeatureConfig(customers=False, price_promo=False, holidays=False)
    training_set = build_training_set(raw, features, "W", horizon=4)
    recorded = training_set.metadata.extra["gaps"]
    assert recorded["n_gaps"] == 1 and recorded["n_cells"] == 26
    assert recorded["fill"] == "missing" and "period totals" in recorded["rule"]
    assert recorded["gaps"][0]["series_id"] == "S2"
    panel = training_set.panel
    after = panel[(panel["series_id"] == "S2") & (panel["ds"] == pd.Timestamp("2022-08-29"))]
    assert after["lag_4"].isna().all()  # a lag into the gap is missing, not 0


def _lines(store: str, weeks: np.ndarray, per_week: int = 2) -> list[tuple]:
    monday = pd.Timestamp("2022-01-03")
    return [(monday + pd.Timedelta(weeks=int(w), days=d), store, 5.0)
            for w in weeks for d in range(per_week)]


def transaction_raw(lines: list[tuple], **options: object) -> RawData:
    sales = pd.DataFrame(lines, columns=["date", "store", "y"])
    sales["date"] = pd.to_datetime(sales["date"])
    return RawData(sales.sort_values("date", ignore_index=True), ("store",), **options)


def test_a_sparse_intermittent_series_in_transaction_lines_keeps_its_zeros() -> None:
    rng = np.random.default_rng(3)
    sparse = np.sort(rng.choice(104, size=14, replace=False))  # sells ~1 week in 7
    lines = _lines("S1", np.arange(104)) + _lines("S9", sparse, per_week=1)
    base, gaps = aggregate_with_gaps(transaction_raw(lines), "W")
    longest = int(np.diff(sparse).max()) - 1
    assert longest >= 8  # an empty run longer than the default minimum ...
    assert gaps.n_cells == 0  # ... but likely at that sales rate: zeros, not a gap
    assert not base["y"].isna().any()


def test_a_long_closure_of_a_regular_series_in_transaction_lines_is_a_gap() -> None:
    weeks = np.setdiff1d(np.arange(104), np.arange(40, 66))
    lines = _lines("S1", np.arange(104)) + _lines("S2", weeks)
    base, gaps = aggregate_with_gaps(transaction_raw(lines), "W")
    assert [(g.series_id, g.periods) for g in gaps.gaps] == [("S2", 26)]
    assert base["y"].isna().sum() == 26
    short = transaction_raw(lines, gap_periods=30)  # the spec's minimum is longer
    assert aggregate_with_gaps(short, "W")[1].n_cells == 0


def test_a_period_no_series_has_is_an_export_gap_of_every_series() -> None:
    weeks = np.setdiff1d(np.arange(104), [50, 51, 52])  # the export skipped three weeks
    lines = _lines("S1", weeks) + _lines("S2", weeks) + _lines("S3", weeks[weeks > 20])
    base, gaps = aggregate_with_gaps(transaction_raw(lines), "W")
    assert [g.to_dict() for g in gaps.gaps] == [
        {"series_id": "*", "start": "2022-12-19", "end": "2023-01-02", "periods": 3}]
    missing = base[base["y"].isna()]
    assert sorted(missing["series_id"].unique()) == ["S1", "S2", "S3"]
    assert len(missing) == 9


def test_a_chain_closed_on_sundays_keeps_its_sundays_at_zero() -> None:
    days = pd.date_range("2023-01-02", periods=364, freq="D")
    open_days = days[days.dayofweek < 6]
    lines = [(d, store, 3.0) for d in open_days for store in ("S1", "S2") for _ in range(2)]
    base, gaps = aggregate_with_gaps(transaction_raw(lines), "D")
    assert gaps.n_cells == 0
    sundays = base[base["ds"].dt.dayofweek == 6]
    assert len(sundays) > 0 and (sundays["y"] == 0).all()


def test_customer_statistics_are_missing_in_a_gap_too() -> None:
    weeks = np.setdiff1d(np.arange(104), np.arange(40, 66))
    lines = _lines("S1", np.arange(104)) + _lines("S2", weeks)
    raw = transaction_raw(lines)
    sales = raw.sales.assign(customer_id=[f"c{i % 7}" for i in range(len(raw.sales))])
    features = FeatureConfig(price_promo=False, holidays=False, rfm_quantiles=2)
    training_set = build_training_set(RawData(sales, ("store",)), features, "W", horizon=4)
    base = training_set.base
    gap = base["y"].isna()
    assert gap.sum() == 26
    assert base.loc[gap, "cust_active"].isna().all()
    assert base.loc[~gap, "cust_active"].notna().all()
