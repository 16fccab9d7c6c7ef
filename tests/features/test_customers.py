"""Customer covariates and RFM, on hand-built tables whose answers are derived by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.customers import (
    RFM_SEGMENTS,
    customer_covariates,
    quantile_scores,
    rfm_segments,
    rfm_table,
)
from features.raw import RawData

# Three whole weeks: W0 = 2024-01-01 (Mon) .. 01-07, W1 = 01-08 .., W2 = 01-15 .. 01-21 (Sun).
LINES = [  # date, store, customer, revenue
    ("2024-01-01", "A", "c1", 10.0),
    ("2024-01-03", "A", "c1", 20.0),
    ("2024-01-02", "A", "c2", 10.0),
    ("2024-01-08", "A", "c1", 10.0),
    ("2024-01-09", "A", "c3", 30.0),
    ("2024-01-10", "B", "c2", 20.0),
    ("2024-01-15", "B", "c3", 10.0),
    ("2024-01-16", "B", "c4", 30.0),
    ("2024-01-21", "B", None, 10.0),  # an anonymous line
]
CRM = pd.DataFrame({"customer_id": ["c1", "c2", "c3"], "segment": ["Gold", "Silver", "Gold"]})
W0, W1, W2 = (pd.Timestamp(d) for d in ("2024-01-01", "2024-01-08", "2024-01-15"))


def sales_frame(lines: list[tuple] = LINES) -> pd.DataFrame:
    frame = pd.DataFrame(lines, columns=["date", "store", "customer_id", "revenue"])
    frame["date"] = pd.to_datetime(frame["date"])
    frame["customer_id"] = frame["customer_id"].astype("str")
    frame["y"] = frame["revenue"]
    return frame


@pytest.fixture(scope="module")
def covariates() -> pd.DataFrame:
    raw = RawData(sales_frame(), ("store",), customers=CRM)
    return customer_covariates(raw, "W").set_index(["series_id", "ds"])


@pytest.mark.parametrize(
    ("series", "ds", "active", "new", "returning"),
    [
        ("A", W0, 2, 2, 0),  # c1 (two lines), c2: both first purchases
        ("A", W1, 2, 1, 1),  # c1 back, c3 new
        ("A", W2, 0, 0, 0),  # no sales: the grid is complete
        ("B", W1, 1, 0, 1),  # c2 first bought in A, so B sees a returning customer
        ("B", W2, 2, 1, 1),  # c3 returning, c4 new; the anonymous line counts nobody
    ],
)
def test_active_new_returning_counts(covariates: pd.DataFrame, series: str, ds: pd.Timestamp,
                                     active: int, new: int, returning: int) -> None:
    row = covariates.loc[(series, ds)]
    assert (row["cust_active"], row["cust_new"], row["cust_returning"]) == (active, new,
                                                                            returning)


@pytest.mark.parametrize(
    ("series", "ds", "gold", "silver"),
    [("A", W0, 30 / 40, 10 / 40), ("A", W1, 1.0, 0.0), ("B", W1, 0.0, 1.0),
     ("B", W2, 10 / 50, 0.0), ("A", W2, 0.0, 0.0)],  # c4 is not in the CRM table
)
def test_crm_segment_shares_of_revenue(covariates: pd.DataFrame, series: str,
                                       ds: pd.Timestamp, gold: float, silver: float) -> None:
    row = covariates.loc[(series, ds)]
    assert row["share_seg_gold"] == pytest.approx(gold)
    assert row["share_seg_silver"] == pytest.approx(silver)


def test_rfm_shares_use_segments_as_of_the_period_start(covariates: pd.DataFrame) -> None:
    rfm = [f"share_rfm_{name}" for name in RFM_SEGMENTS]
    assert (covariates.loc[("A", W0), rfm] == 0).all()  # nobody has a history yet
    # at W1's start: c1 bought on 2 days (last 01-03, recency 5), c2 on 1 day (recency 6);
    # with n = 2, q = 4: c1 r = f = 3 -> champions; c2 r = f = 1 -> hibernating.
    a1 = covariates.loc[("A", W1), rfm]
    assert a1["share_rfm_champions"] == pytest.approx(10 / 40)  # c3 is a first-time buyer
    assert a1.sum() == pytest.approx(10 / 40)
    assert covariates.loc[("B", W1), "share_rfm_hibernating"] == pytest.approx(1.0)
    # at W2's start c3 (one day, recency 6 of 5/6/7 -> r = 2) is hibernating: 10 of 50
    b2 = covariates.loc[("B", W2), rfm]
    assert b2["share_rfm_hibernating"] == pytest.approx(10 / 50)
    assert b2.sum() == pytest.approx(10 / 50)


def test_rfm_table_as_of_w2_by_hand() -> None:
    sales = sales_frame()
    table = rfm_table(sales, W2, quantiles=4)
    expected = pd.DataFrame({
        "customer_id": ["c1", "c2", "c3"],
        "recency_days": [7, 5, 6],  # last purchases 01-08, 01-10, 01-09
        "frequency": [3, 2, 1],
        "monetary": [40.0, 30.0, 30.0],
        "r_score": [1, 3, 2],  # 1 + floor(4 * worse / 3), worse = 0, 2, 1
        "f_score": [3, 2, 1],
        "m_score": [3, 1, 1],  # c2 and c3 tie: nobody is strictly below them
        "rfm_segment": ["at_risk", "promising", "hibernating"],
    })
    pd.testing.assert_frame_equal(table, expected, check_dtype=False)


def test_rfm_table_uses_only_transactions_strictly_before_as_of() -> None:
    days = ["2024-01-25", "2024-01-27", "2024-01-28", "2024-01-30", "2024-01-31"]
    lines = (
        [(day, "A", "d5", 40.0) for day in days]
        + [("2024-01-30", "A", "d1", 50.0), ("2024-01-31", "A", "d1", 50.0)]
        + [("2024-01-29", "A", "d2", 50.0)]
        + [(f"2024-01-{d}", "A", "d3", 20.0) for d in (10, 11, 12)]
        + [(f"2024-01-0{d}", "A", "d4", 2.5) for d in (1, 2, 3, 4)]
        + [("2024-02-01", "A", "d4", 999.0), ("2024-02-03", "A", "d9", 1.0)]  # as_of and after
    )
    table = rfm_table(sales_frame(lines), pd.Timestamp("2024-02-01"), quantiles=4).set_index(
        "customer_id")
    assert list(table.index) == ["d1", "d2", "d3", "d4", "d5"]
    # recency 1, 3, 20, 28, 1 -> worse 3, 2, 1, 0, 3 of n = 5 -> r = 1 + floor(4 * worse / 5)
    assert table["recency_days"].tolist() == [1, 3, 20, 28, 1]
    assert table["r_score"].tolist() == [3, 2, 1, 1, 3]
    # frequency 2, 1, 3, 4, 5 -> worse 1, 0, 2, 3, 4
    assert table["f_score"].tolist() == [1, 1, 2, 3, 4]
    assert table["monetary"].tolist() == [100.0, 50.0, 60.0, 10.0, 200.0]
    assert table["m_score"].tolist() == [3, 1, 2, 1, 4]  # worse 3, 1, 2, 0, 4
    assert table["rfm_segment"].tolist() == ["promising", "hibernating", "hibernating",
                                             "at_risk", "champions"]


@pytest.mark.parametrize(
    ("r", "f", "frequency", "q", "segment"),
    [
        (4, 1, 1, 4, "new"),  # one purchase, recent
        (3, 4, 1, 4, "new"),  # one purchase beats a high frequency score (all tied at 1)
        (4, 3, 5, 4, "champions"),
        (3, 2, 2, 4, "promising"),
        (2, 4, 9, 4, "loyal"),  # frequent, slowing down
        (1, 4, 9, 4, "at_risk"),  # frequent, stopped
        (2, 2, 3, 4, "hibernating"),
        (1, 1, 1, 4, "hibernating"),  # one purchase long ago is not "new"
        (2, 2, 4, 2, "champions"),  # q = 2: high means score 2
        (1, 2, 4, 2, "at_risk"),
    ],
)
def test_segment_rule_table(r: int, f: int, frequency: int, q: int, segment: str) -> None:
    code = rfm_segments(np.array([r]), np.array([f]), np.array([frequency]), q)[0]
    assert RFM_SEGMENTS[code] == segment


def test_no_history_means_no_segment() -> None:
    assert rfm_segments(np.array([0]), np.array([0]), np.array([np.nan]), 4)[0] == -1


def test_quantile_scores_tie_and_skip_missing_values() -> None:
    values = np.array([[5.0, 5.0, 5.0, np.nan], [1.0, 2.0, 3.0, 4.0]])
    scores = quantile_scores(values, quantiles=4, higher_is_better=True)
    assert scores.tolist() == [[1, 1, 1, 0], [1, 2, 3, 4]]
    reverse = quantile_scores(values, quantiles=2, higher_is_better=False)
    assert reverse.tolist() == [[1, 1, 1, 0], [2, 2, 1, 1]]


def test_period_rfm_agrees_with_rfm_table_at_each_period_start() -> None:
    rng = np.random.default_rng(3)
    days = pd.date_range("2024-01-01", "2024-03-31")
    n = 400
    lines = pd.DataFrame({
        "date": days[rng.integers(0, len(days), n)],
        "store": "A",
        "customer_id": pd.array([f"c{i}" for i in rng.integers(0, 40, n)], dtype="str"),
        "revenue": rng.gamma(2.0, 10.0, n).round(2),
    })
    lines["y"] = lines["revenue"]
    covariates = customer_covariates(RawData(lines, ("store",)), "M", quantiles=3)
    for ds in covariates["ds"]:
        table = rfm_table(lines, ds, quantiles=3)
        segment = dict(zip(table["customer_id"], table["rfm_segment"], strict=True))
        now = lines[(lines["date"] >= ds) & (lines["date"] < ds + pd.offsets.MonthBegin(1))]
        revenue = now.groupby(now["customer_id"].map(segment))["revenue"].sum()
        row = covariates[covariates["ds"] == ds].iloc[0]
        for name in RFM_SEGMENTS:
            expected = revenue.get(name, 0.0) / now["revenue"].sum()
            assert row[f"share_rfm_{name}"] == pytest.approx(expected)
