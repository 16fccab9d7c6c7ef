"""FeaturePipeline and build_training_set on a tiny seeded retail data set."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

from features.build import build_training_set
from features.config import FeatureConfig
from features.pipeline import ORDER, is_sorted, sorted_panel
from features.raw import RawData
from features.training_set import TrainingSet
from features.validation import DataValidationError

START = pd.Timestamp("2023-01-02")  # a Monday
HOLIDAYS = pd.to_datetime(["2023-01-02", "2023-05-01", "2023-12-25", "2023-12-26",
                           "2024-01-01", "2024-05-01", "2024-12-25"])


def tiny_retail(weeks: int = 70, seed: int = 0, future_weeks: int = 8) -> RawData:
    """Daily lines of 2 stores x 2 categories, 40 customers in 3 CRM segments, week-long
    planned promotions per category (20 % off, more lines) and a few holidays."""
    rng = np.random.default_rng(seed)
    cal_days = pd.date_range(START, periods=(weeks + future_weeks) * 7, freq="D")
    promo_weeks = rng.random((weeks + future_weeks, 2)) < 0.25
    calendar = pd.DataFrame({
        "date": cal_days.repeat(2),
        "category": np.tile(["a", "b"], len(cal_days)),
        "holiday": np.isin(cal_days, HOLIDAYS).repeat(2).astype(float),
        "promo": promo_weeks[np.arange(len(cal_days)) // 7].ravel().astype(float),
    })
    cells = calendar[calendar["date"] < START + pd.Timedelta(weeks=weeks)]
    cells = cells.loc[cells.index.repeat(2)].reset_index(drop=True)
    cells["store"] = np.tile(["S1", "S2"], len(cells) // 2)
    season = 1 + 0.5 * np.sin(2 * np.pi * cells["date"].dt.dayofyear / 365.25)
    rate = 2.0 * season * (1 + cells["promo"]) * (1 + cells["holiday"])
    lines = cells.loc[cells.index.repeat(rng.poisson(rate))].reset_index(drop=True)
    return RawData(_sales(lines, rng), ("store", "category"), _customers(), calendar)


def _sales(lines: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    base_price = np.where(lines["category"] == "a", 4.0, 25.0)
    price = base_price * np.where(lines["promo"] > 0, 0.8, 1.0) * rng.uniform(0.95, 1.05,
                                                                             len(lines))
    quantity = rng.integers(1, 4, len(lines)).astype(float)
    customer = rng.integers(0, 40, len(lines))
    customer_id = pd.array(np.where(customer < 36, [f"c{i}" for i in customer], None),
                           dtype="str")  # some anonymous lines
    sales = pd.DataFrame({
        "date": lines["date"], "store": lines["store"].astype("str"),
        "category": lines["category"].astype("str"), "quantity": quantity,
        "price": price.round(2), "promo": lines["promo"], "customer_id": customer_id,
    })
    sales["revenue"] = sales["quantity"] * sales["price"]
    sales["y"] = sales["revenue"]
    return sales


def _customers() -> pd.DataFrame:
    ids = [f"c{i}" for i in range(40)]
    return pd.DataFrame({"customer_id": pd.array(ids, dtype="str"),
                         "segment": pd.array(["budget", "regular", "premium", "regular"] * 10,
                                             dtype="str")})


@pytest.fixture(scope="module")
def raw() -> RawData:
    return tiny_retail()


@pytest.fixture(scope="module")
def training_set(raw: RawData) -> TrainingSet:
    return build_training_set(raw, FeatureConfig(), "W", 4, spec_hash="abc123")


CUSTOMER_COLUMNS = [
    "cust_active", "cust_new", "cust_returning",
    *[f"share_rfm_{s}" for s in ("champions", "loyal", "promising", "new", "at_risk",
                                 "hibernating")],
    "share_seg_budget", "share_seg_premium", "share_seg_regular",
]


def test_feature_columns_are_the_contract_names(training_set: TrainingSet) -> None:
    assert training_set.feature_columns == [
        "store", "category", "month", "week_of_year", "quarter", "sin_year_1", "cos_year_1",
        "sin_year_2", "cos_year_2", "trend", "promo", "price", "holiday", "price_ratio",
        "lag_4", "lag_5", "lag_6", "lag_7", "lag_52", "roll_mean_4", "roll_std_4",
        "roll_mean_13", "roll_std_13", *[f"{c}_lag4" for c in CUSTOMER_COLUMNS],
    ]
    assert training_set.exog_columns == ["promo", "price", "holiday"]
    assert set(training_set.feature_columns) <= set(training_set.panel.columns)


def test_metadata_describe_the_panel(training_set: TrainingSet) -> None:
    meta = training_set.metadata
    panel = training_set.panel
    assert (meta.n_series, meta.n_periods, meta.n_rows) == (4, 70, 280) == (
        panel["series_id"].nunique(), panel["ds"].nunique(), len(panel))
    assert (meta.start, meta.end) == ("2023-01-02", "2024-04-29")
    assert (meta.freq, meta.horizon, meta.spec_hash, meta.keys) == ("W", 4, "abc123",
                                                                   ("store", "category"))
    assert len(meta.data_digest) == 64
    assert meta.extra["season_length"] == 52 and meta.extra["lags"] == [4, 5, 6, 7, 52]
    assert meta.to_dict()["feature_columns"] == training_set.feature_columns
    assert panel.equals(panel.sort_values(["series_id", "ds"], ignore_index=True))
    assert list(training_set.base.columns) == ["series_id", "ds", "y", "store", "category",
                                               "promo", "price", "holiday", *CUSTOMER_COLUMNS]


def test_data_digest_is_stable_and_sees_a_changed_value(raw: RawData,
                                                        training_set: TrainingSet) -> None:
    again = build_training_set(raw, FeatureConfig(), "W", 4)
    assert again.metadata.data_digest == training_set.metadata.data_digest
    sales = raw.sales.copy()
    sales.loc[100, "y"] += 0.01
    changed = build_training_set(RawData(sales, raw.keys, raw.customers, raw.calendar),
                                 FeatureConfig(), "W", 4)
    assert changed.metadata.data_digest != training_set.metadata.data_digest


def test_series_attributes_give_revenue_and_dominant_segment(raw: RawData,
                                                             training_set: TrainingSet) -> None:
    lines = raw.sales.merge(raw.customers, on="customer_id", how="left")
    lines["series_id"] = lines["store"] + "|" + lines["category"]
    by_segment = lines.groupby(["series_id", "segment"])["revenue"].sum()
    dominant = by_segment.groupby(level=0).idxmax().map(lambda pair: pair[1])
    attributes = training_set.series_attributes.set_index("series_id")
    assert attributes["segment"].to_dict() == dominant.to_dict()
    expected_revenue = lines.groupby("series_id")["revenue"].sum()
    assert attributes["revenue"].to_numpy() == pytest.approx(expected_revenue.to_numpy())


def test_too_short_history_says_how_many_periods_exist_and_are_needed() -> None:
    short = tiny_retail(weeks=30)
    with pytest.raises(DataValidationError, match="has 30 periods but 56 are needed") as err:
        build_training_set(short, FeatureConfig(), "W", 4)  # lag 52 + horizon 4
    assert err.value.rule == "enough_history"
    assert build_training_set(short, FeatureConfig(lags=[4, 8]), "W", 4).metadata.n_periods == 30


def test_a_lag_below_the_horizon_is_refused(raw: RawData) -> None:
    with pytest.raises(ValueError, match="shorter than the horizon"):
        build_training_set(raw, FeatureConfig(lags=[2, 4]), "W", 4)


@pytest.mark.parametrize(
    ("config", "absent", "present"),
    [
        (FeatureConfig(calendar=False), ["month", "trend"], ["lag_4"]),
        (FeatureConfig(price_promo=False), ["price", "promo", "price_ratio"], ["holiday"]),
        (FeatureConfig(holidays=False), ["holiday"], ["promo"]),
        (FeatureConfig(customers=False), ["cust_active_lag4", "share_seg_budget_lag4"],
         ["roll_mean_13"]),
        (FeatureConfig(lags=[4, 6], rolling_windows=[8]), ["lag_52", "roll_mean_4"],
         ["lag_6", "roll_std_8"]),
    ],
)
def test_feature_config_switches_builders(raw: RawData, config: FeatureConfig,
                                          absent: list[str], present: list[str]) -> None:
    built = build_training_set(raw, config, "W", 4)
    assert not set(absent) & set(built.panel.columns)
    assert set(present) <= set(built.feature_columns)


def test_daily_frequency_adds_day_of_week_and_of_month(raw: RawData) -> None:
    built = build_training_set(raw, FeatureConfig(customers=False), "D", 7)
    assert {"day_of_week", "day_of_month", "lag_7", "lag_10"} <= set(built.feature_columns)
    assert built.panel["day_of_week"].nunique() == 7
    assert built.panel["day_of_month"].nunique() == 31
    assert (built.panel["day_of_month"] == built.panel["ds"].dt.day).all()


def test_future_base_uses_planned_calendar_and_last_price(training_set: TrainingSet,
                                                          raw: RawData) -> None:
    pipeline, base = training_set.pipeline, training_set.base
    future = pipeline.future_base(base, 3)
    assert len(future) == 4 * 3 and list(future.columns) == list(base.columns)
    s1a = future[future["series_id"] == "S1|a"]
    assert s1a["ds"].tolist() == list(pd.date_range("2024-05-06", periods=3, freq="7D"))
    assert s1a[["y", "cust_active"]].isna().all().all()
    last = base[base["series_id"] == "S1|a"].iloc[-1]
    assert (s1a["price"] == last["price"]).all()
    planned = raw.calendar[(raw.calendar["category"] == "a")
                           & raw.calendar["date"].between("2024-05-06", "2024-05-26")]
    weekly = planned.groupby((planned["date"] - pd.Timestamp("2024-05-06")).dt.days // 7)
    assert s1a["promo"].tolist() == weekly["promo"].mean().tolist()
    assert s1a["holiday"].tolist() == weekly["holiday"].sum().tolist()


def test_future_exog_overrides_only_the_cells_it_gives(training_set: TrainingSet) -> None:
    pipeline, base = training_set.pipeline, training_set.base
    plain = pipeline.future_base(base, 2)
    scenario = pd.DataFrame({"series_id": ["S2|b"], "ds": ["2024-05-08"],  # JSON-style text
                             "promo": [0.5], "price": [np.nan], "discount": [0.3]})
    what_if = pipeline.future_base(base, 2, scenario)  # a Wednesday names its week
    changed = (what_if["promo"] != plain["promo"]).to_numpy()
    assert what_if.loc[changed, ["series_id", "ds"]].values.tolist() == [
        ["S2|b", pd.Timestamp("2024-05-06")]]
    assert what_if.loc[changed, "promo"].item() == 0.5  # planned promos are whole weeks
    pd.testing.assert_series_equal(what_if["price"], plain["price"])


def test_future_frame_needs_only_the_tail_and_survives_pickling(
    training_set: TrainingSet,
) -> None:
    pipeline, base = training_set.pipeline, training_set.base
    tail = pipeline.tail(base)
    assert tail.groupby("series_id").size().tolist() == [pipeline.history_length] * 4
    assert pipeline.history_length == 52  # lag 52 is the longest look-back
    full = pipeline.future_frame(base, 4)
    restored = pickle.loads(pickle.dumps(pipeline))
    pd.testing.assert_frame_equal(restored.future_frame(tail, 4), full)
    assert len(full) == 16 and full["y"].isna().all()
    assert full[training_set.feature_columns].notna().all().all()


def test_future_horizon_cannot_exceed_the_pipeline_horizon(training_set: TrainingSet) -> None:
    with pytest.raises(ValueError, match=r"horizon must be 1..4"):
        training_set.future_frame(5)


def test_transform_is_idempotent_on_a_panel(training_set: TrainingSet) -> None:
    again = training_set.pipeline.transform(training_set.panel)
    pd.testing.assert_frame_equal(again, training_set.panel)


def _shuffled(base: pd.DataFrame, seed: int = 1) -> pd.DataFrame:
    return base.sample(frac=1.0, random_state=seed)


@pytest.mark.parametrize("change", ["sorted", "shuffled", "a NaT", "categorical ids",
                                    "one row", "no rows"])
def test_sorted_panel_is_a_stable_sort_whether_or_not_it_skips_it(
    training_set: TrainingSet, change: str
) -> None:
    base = training_set.base.iloc[::-1] if change == "shuffled" else training_set.base
    if change == "a NaT":
        base = base.copy()
        base.loc[base.index[5], "ds"] = pd.NaT
    if change == "categorical ids":
        ids = sorted(base["series_id"].unique(), reverse=True)
        base = base.assign(series_id=pd.Categorical(base["series_id"], categories=ids))
    base = {"one row": base.iloc[:1], "no rows": base.iloc[:0]}.get(change, base)
    expected = base.sort_values(ORDER, kind="stable", ignore_index=True)
    pd.testing.assert_frame_equal(sorted_panel(base), expected)
    assert is_sorted(expected) is (change not in ("a NaT", "categorical ids"))


def test_tail_and_future_frame_of_an_unsorted_base(training_set: TrainingSet) -> None:
    """The last rows of each series, and the future rows read from them: the same as from
    the sorted base, and as a transform of the history followed by the future rows."""
    pipeline, base = training_set.pipeline, training_set.base
    shuffled = _shuffled(base)
    tail = pipeline.tail(shuffled)
    ordered = base.sort_values(ORDER, kind="stable")
    expected = ordered.groupby("series_id").tail(pipeline.history_length)
    pd.testing.assert_frame_equal(tail, expected.reset_index(drop=True))
    future = pipeline.future_base(tail, 4)
    frame = pipeline.transform(pd.concat([tail, future]), with_reference=True)
    is_future = frame["ds"] > frame["series_id"].map(tail.groupby("series_id")["ds"].max())
    pd.testing.assert_frame_equal(pipeline.future_frame(shuffled, 4),
                                  frame[is_future].reset_index(drop=True))
