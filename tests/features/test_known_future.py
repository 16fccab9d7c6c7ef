"""Known-future covariates: a table by date and store, validated, aggregated, joined to the
panel and to future periods, and named in exog_columns (features.known_future)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.build import build_training_set
from features.config import DataConfig, FeatureConfig, KnownFutureColumns, SourceConfig
from features.known_future import known_future_periods
from features.sources import load_raw
from features.validation import DataValidationError

START = pd.Timestamp("2023-01-02")  # a Monday
WEEKS = 60
STORES = ("S1", "S2")
FEATURES = FeatureConfig(customers=False, price_promo=False, holidays=False,
                         rolling_windows=[4])


def write_sales(tmp_path: Path) -> Path:
    """Two lines a week (Monday, Sunday) per store and category, a unit each at 10."""
    rows = [(START + pd.Timedelta(weeks=w, days=d), store, "x", 1, 10.0)
            for w in range(WEEKS) for d in (0, 6) for store in STORES]
    path = tmp_path / "sales.csv"
    pd.DataFrame(rows, columns=["date", "store", "category", "quantity", "unit_price"]
                 ).to_csv(path, index=False)
    return path


def store_days(weeks: int = WEEKS + 8) -> pd.DataFrame:
    """Daily rows per store: open (S2 closed in weeks 1, 6, 11, ...), markdown (0.2 in
    weeks 0, 3, 6, ...)."""
    days = pd.date_range(START, periods=7 * weeks, freq="D")
    frames = []
    for store in STORES:
        week = (days - START).days // 7
        closed = (store == "S2") & (week % 5 == 1)
        frames.append(pd.DataFrame({"day": days.strftime("%Y-%m-%d"), "store": store,
                                    "open": np.where(closed, 0, 1),
                                    "markdown": np.where(week % 3 == 0, 0.2, 0.0)}))
    return pd.concat(frames, ignore_index=True)


def config(tmp_path: Path, table: pd.DataFrame, **options: object) -> DataConfig:
    path = tmp_path / "store_days.csv"
    table.to_csv(path, index=False)
    columns = KnownFutureColumns(date="day", keys=["store"],
                                 values={"open": "mean", "markdown": "max"})
    return DataConfig(sales=SourceConfig(path=str(write_sales(tmp_path))),
                      known_future=SourceConfig(path=str(path)),
                      known_future_columns=columns, **options)


def load_error(tmp_path: Path, table: pd.DataFrame) -> DataValidationError:
    with pytest.raises(DataValidationError) as caught:
        raw = load_raw(config(tmp_path, table))
        build_training_set(raw, FEATURES, "W", horizon=4)
    return caught.value


def test_known_future_values_become_exog_columns_of_the_panel(tmp_path: Path) -> None:
    raw = load_raw(config(tmp_path, store_days()))
    training_set = build_training_set(raw, FEATURES, "W", horizon=4)
    assert training_set.exog_columns == ["open", "markdown"]
    assert {"open", "markdown"} <= set(training_set.feature_columns)
    base = training_set.base.set_index(["series_id", "ds"])
    closed_week = START + pd.Timedelta(weeks=6)
    assert base.loc[("S2|x", closed_week), "open"] == 0.0
    assert base.loc[("S1|x", closed_week), "open"] == 1.0
    assert base.loc[("S1|x", START), "markdown"] == pytest.approx(0.2)
    assert training_set.base["ds"].max() == START + pd.Timedelta(weeks=WEEKS - 1)


def test_future_periods_take_the_tables_rows_then_the_last_known_value(
    tmp_path: Path,
) -> None:
    raw = load_raw(config(tmp_path, store_days(weeks=WEEKS + 2)))  # 2 weeks past the sales
    training_set = build_training_set(raw, FEATURES, "W", horizon=4)
    future = training_set.future_frame(4).set_index(["series_id", "ds"])
    weeks = [START + pd.Timedelta(weeks=WEEKS + k) for k in range(4)]
    s2 = future.loc["S2|x", "open"].reindex(weeks).tolist()
    assert s2 == [1.0, 0.0, 0.0, 0.0]  # the table's weeks 60, 61, then its newest value
    markdown = future.loc["S1|x", "markdown"].reindex(weeks).tolist()
    assert markdown == pytest.approx([0.2, 0.0, 0.0, 0.0])



def test_a_scenario_sets_a_known_future_value_by_name(tmp_path: Path) -> None:
    raw = load_raw(config(tmp_path, store_days()))
    training_set = build_training_set(raw, FEATURES, "W", horizon=4)
    week = START + pd.Timedelta(weeks=WEEKS + 2)
    scenario = pd.DataFrame({"series_id": ["S1|x"], "ds": [week], "open": [0.0]})
    future = training_set.future_frame(4, scenario).set_index(["series_id", "ds"])
    assert future.loc[("S1|x", week), "open"] == 0.0
    assert future.loc[("S2|x", week), "open"] == 1.0


def test_period_aggregation_follows_each_columns_rule() -> None:
    table = pd.DataFrame({"date": pd.date_range(START, periods=14, freq="D"),
                          "store": "S1", "open": [1.0] * 6 + [0.0] + [1.0] * 7,
                          "markdown": [0.0] * 10 + [0.3] + [0.0] * 3})
    periods = known_future_periods(table, {"open": "mean", "markdown": "max"}, "W")
    assert periods["open"].tolist() == pytest.approx([6 / 7, 1.0])
    assert periods["markdown"].tolist() == pytest.approx([0.0, 0.3])


def test_an_unknown_store_is_refused_with_its_rows(tmp_path: Path) -> None:
    table = store_days()
    table.loc[[3, 4], "store"] = "S9"
    err = load_error(tmp_path, table)
    assert err.rule == "known_keys" and err.column == "store"
    assert err.rows == (5, 6) and "store_days.csv" in str(err)
    assert "'S1', 'S2'" in str(err)


def test_a_repeated_day_and_store_is_refused(tmp_path: Path) -> None:
    table = store_days()
    table = pd.concat([table, table.iloc[[10]]], ignore_index=True)
    err = load_error(tmp_path, table)
    assert err.rule == "unique_rows" and "(date, store)" in str(err)


def test_a_non_numeric_value_is_refused_with_its_row(tmp_path: Path) -> None:
    table = store_days().astype({"markdown": object})
    table.loc[7, "markdown"] = "20%"
    err = load_error(tmp_path, table)
    assert err.rule == "numeric" and err.column == "markdown" and err.rows == (9,)
    assert "'20%'" in str(err)


def test_a_missing_column_is_named(tmp_path: Path) -> None:
    err = load_error(tmp_path, store_days().drop(columns="open"))
    assert err.rule == "required_columns" and "'open' (mapped as value open)" in str(err)


def test_weeks_of_the_history_without_a_row_are_refused(tmp_path: Path) -> None:
    table = store_days()
    week = (pd.to_datetime(table["day"]) - START).dt.days // 7
    table = table[~((table["store"] == "S1") & week.isin([10, 11]))]
    err = load_error(tmp_path, table)
    assert err.rule == "covers_history" and err.column == "day"
    assert "2 (store, period) of the sales history have no row" in str(err)
    assert "('S1', '2023-03-13')" in str(err)


def test_with_top_series_pooled_stores_rows_are_dropped_and_other_takes_the_mean(
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    from features.sources import standardize

    sales = pd.read_csv(write_sales(tmp_path))
    small = sales[sales["store"] == "S2"].assign(store="S3", quantity=0.1)
    sales = pd.concat([sales, small], ignore_index=True).sort_values("date", kind="stable")
    table = pd.concat([store_days(), store_days().query("store == 'S2'").assign(
        store="S3", open=0.5)], ignore_index=True)
    data = config(tmp_path, table, top_series=2)
    with caplog.at_level("WARNING"):
        raw = standardize(sales, data, known_future=table)
    assert "pooled by top_series" in caplog.text and "S3" not in set(raw.known_future["store"])
    base = build_training_set(raw, FEATURES, "W", horizon=4).base.set_index(["series_id", "ds"])
    week = START + pd.Timedelta(weeks=1)  # S2 closed, S1 open: the chain's mean is 0.5
    assert base.loc[("__other__|__other__", week), "open"] == pytest.approx(0.5)
