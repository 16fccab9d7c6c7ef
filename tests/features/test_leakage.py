"""No leakage: features at ds use only data known at the forecast origin.

1. Perturb everything after an origin T (y x 10, prices x 3, extra lines of old customers,
   brand-new customers) and rebuild: no feature at ds <= T may change, and no target- or
   covariate-derived feature up to T + H either.
2. Serving sees what training saw: ``until(T).future_frame(H, realised exog)`` equals the
   panel's rows of (T, T + H] on every feature column.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.build import build_training_set
from features.calendar import shift_periods
from features.config import FeatureConfig
from features.raw import RawData
from features.training_set import TrainingSet
from tests.features.test_pipeline import tiny_retail

CASES = {  # freq -> horizon, feature config
    "W": (4, FeatureConfig()),
    "D": (7, FeatureConfig(rolling_windows=[7, 28])),
    "M": (2, FeatureConfig(lags=[2, 3, 12], rolling_windows=[3])),
}
KEY = ["series_id", "ds"]


@pytest.fixture(scope="module")
def raw() -> RawData:
    return tiny_retail(weeks=70, seed=7)


def origin_of(training_set: TrainingSet) -> pd.Timestamp:
    """An origin with 2 horizons of data after it."""
    periods = np.sort(training_set.panel["ds"].unique())
    return pd.Timestamp(periods[-2 * training_set.horizon - 1])


def perturb_after(raw: RawData, cutoff: pd.Timestamp, seed: int = 1) -> RawData:
    """Raw data whose lines from ``cutoff`` on are changed, and new lines/customers added."""
    rng = np.random.default_rng(seed)
    sales = raw.sales.copy()
    late = sales["date"] >= cutoff
    sales.loc[late, "quantity"] *= 10
    sales.loc[late, "price"] *= 3
    extra = sales[late].sample(frac=0.5, random_state=seed).copy()
    newcomers = extra.index[: len(extra) // 2]
    extra.loc[newcomers, "customer_id"] = [f"z{i}" for i in rng.integers(0, 30, len(newcomers))]
    sales = pd.concat([sales, extra], ignore_index=True)
    sales["revenue"] = sales["quantity"] * sales["price"]
    sales["y"] = sales["revenue"]
    customers = pd.concat([raw.customers, pd.DataFrame({
        "customer_id": pd.array([f"z{i}" for i in range(30)], dtype="str"),
        "segment": pd.array(["premium", "budget", "regular"] * 10, dtype="str")})],
        ignore_index=True)
    return RawData(sales, raw.keys, customers, raw.calendar)


def derived_from_the_past(training_set: TrainingSet) -> list[str]:
    """Features computed from y or past-only covariates (everything shifted by H)."""
    horizon = training_set.horizon
    return [c for c in training_set.feature_columns
            if c.startswith(("lag_", "roll_")) or c.endswith(f"_lag{horizon}")]


@pytest.mark.parametrize("freq", list(CASES))
def test_changing_the_future_changes_no_feature_known_at_the_origin(raw: RawData,
                                                                    freq: str) -> None:
    horizon, config = CASES[freq]
    before = build_training_set(raw, config, freq, horizon)
    origin = origin_of(before)
    cutoff = periods_after(origin, 1, freq)  # the first day after the origin's period
    after = build_training_set(perturb_after(raw, cutoff), config, freq, horizon)
    columns = before.feature_columns
    joined = before.panel.merge(after.panel, on=KEY, suffixes=("", "_new"))
    assert len(joined) == len(before.panel)
    known = joined[joined["ds"] <= origin]
    pd.testing.assert_frame_equal(
        known[columns].reset_index(drop=True),
        known[[f"{c}_new" for c in columns]].set_axis(columns, axis=1).reset_index(drop=True))
    ahead = joined[joined["ds"].between(origin, periods_after(origin, horizon, freq),
                                        inclusive="right")]
    past_only = derived_from_the_past(before)
    np.testing.assert_array_equal(ahead[past_only].to_numpy(),
                                  ahead[[f"{c}_new" for c in past_only]].to_numpy())
    # price is known ahead and was changed; price_ratio's reference level must not move
    np.testing.assert_allclose(ahead["price"] / ahead["price_ratio"],
                               ahead["price_new"] / ahead["price_ratio_new"])
    later = joined[joined["ds"] > origin]  # the perturbation did reach the data
    assert (later["y_new"] > 5 * later["y"]).any()
    assert (later["cust_new"] != later["cust_new_new"]).any()


def periods_after(ds: pd.Timestamp, steps: int, freq: str) -> pd.Timestamp:
    return shift_periods(pd.DatetimeIndex([ds]), steps, freq)[0]


@pytest.mark.parametrize("freq", list(CASES))
def test_future_frame_after_until_equals_the_panel_rows_it_forecasts(raw: RawData,
                                                                     freq: str) -> None:
    horizon, config = CASES[freq]
    training_set = build_training_set(raw, config, freq, horizon)
    origin = origin_of(training_set)
    end = periods_after(origin, horizon, freq)
    window = training_set.panel["ds"].between(origin, end, inclusive="right")
    base = training_set.base
    realised = base.loc[base["ds"].between(origin, end, inclusive="right"),
                        ["series_id", "ds", *training_set.exog_columns]]
    future = training_set.until(origin).future_frame(horizon, realised)
    expected = training_set.panel.loc[window].reset_index(drop=True)
    columns = KEY + training_set.feature_columns
    pd.testing.assert_frame_equal(future[columns], expected[columns])
    assert future["y"].isna().all()


def test_without_a_scenario_the_planned_calendar_gives_promo_and_holiday(raw: RawData) -> None:
    horizon, config = CASES["W"]
    training_set = build_training_set(raw, config, "W", horizon)
    origin = origin_of(training_set)
    future = training_set.until(origin).future_frame(horizon)
    panel = training_set.panel.set_index(KEY).loc[pd.MultiIndex.from_frame(future[KEY])]
    # tiny_retail's promotions are whole planned weeks: realised share == planned share
    np.testing.assert_array_equal(future["promo"], panel["promo"])
    np.testing.assert_array_equal(future["holiday"], panel["holiday"])
    last_price = training_set.base[training_set.base["ds"] == origin].set_index("series_id")
    np.testing.assert_array_equal(future["price"],
                                  last_price.loc[future["series_id"], "price"])
