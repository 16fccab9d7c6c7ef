"""Tiny seeded retail panels for the training tests.

``simulate_weeks`` draws weekly series with a level, a trend, a yearly season, a promotion
lift, holidays and noise (multiplicative): the signal every family should find. Prices
wobble independently of promotions, so the promo flag alone carries the promo lift.
``simulate_raw`` writes them as RawData (two sales lines per series and week, Monday and
Sunday, and a daily holiday calendar that runs past the sales), and ``make_training_set``
builds the TrainingSet with the real ``features.build.build_training_set``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd

from features.build import build_training_set
from features.config import FeatureConfig
from features.raw import RawData
from features.training_set import TrainingSet

START = pd.Timestamp("2021-01-04")  # a Monday: weekly ds are Mondays
KEYS = ("store", "category")


def is_holiday_week(ds: pd.DatetimeIndex) -> np.ndarray:
    """Weeks (by their Monday) that hold the Christmas holiday."""
    return np.asarray((ds.month == 12) & (ds.day >= 19) & (ds.day <= 25))


@dataclass(frozen=True)
class PanelShape:
    """What a simulated panel looks like."""

    n_series: int = 6
    periods: int = 156
    seed: int = 0
    promo_rate: float = 0.15
    promo_lift: float = 0.5
    season_amplitude: float = 0.35
    noise: float = 0.05
    level_range: tuple[float, float] = (50.0, 500.0)


def simulate_weeks(shape: PanelShape = PanelShape()) -> pd.DataFrame:
    """Weekly truth: series_id, ds (Monday), y, store, category, promo, price, holiday."""
    rng = np.random.default_rng(shape.seed)
    t = np.arange(shape.periods)
    ds = pd.date_range(START, periods=shape.periods, freq="7D")
    holiday = is_holiday_week(ds).astype(float)
    frames = []
    for i in range(shape.n_series):
        level = np.exp(rng.uniform(*np.log(shape.level_range)))
        growth = rng.uniform(0.05, 0.3) * t / 52
        season = shape.season_amplitude * np.sin(2 * np.pi * t / 52 + rng.uniform(-0.3, 0.3))
        promo = (rng.random(shape.periods) < shape.promo_rate).astype(float)
        noise = np.exp(rng.normal(0, shape.noise, shape.periods))
        y = level * (1 + growth) * (1 + season) * (1 + shape.promo_lift * promo)
        y = y * (1 + 0.2 * holiday) * noise
        price = rng.uniform(5, 20) * np.exp(rng.normal(0, 0.03, shape.periods))
        store, category = f"S{i // 2:02d}", f"C{i % 2}"
        frames.append(pd.DataFrame({
            "series_id": f"{store}|{category}", "ds": ds, "y": y, "store": store,
            "category": category, "promo": promo, "price": price, "holiday": holiday,
        }))
    return pd.concat(frames, ignore_index=True).astype({"series_id": "str", "store": "str",
                                                        "category": "str"})


def simulate_raw(shape: PanelShape = PanelShape()) -> RawData:
    """The weekly truth as transaction lines + a holiday calendar (26 weeks past the sales)."""
    weeks = simulate_weeks(shape)
    lines = []
    for day_offset in (0, 6):  # Monday and Sunday: every week is complete
        half = weeks.assign(date=weeks["ds"] + pd.Timedelta(days=day_offset), y=weeks["y"] / 2)
        lines.append(half)
    sales = pd.concat(lines, ignore_index=True)
    sales = sales.assign(revenue=sales["y"], quantity=sales["y"] / sales["price"])
    sales = sales[["date", *KEYS, "y", "revenue", "quantity", "price", "promo"]]
    mondays = pd.date_range(START, periods=shape.periods + 26, freq="7D")
    calendar = pd.DataFrame({"date": mondays, "holiday": is_holiday_week(mondays).astype(float)})
    return RawData(sales=sales, keys=KEYS, calendar=calendar)


def with_factor(raw: RawData, factor: Callable[[str, int], float]) -> RawData:
    """``raw`` with the sales of series s in week k (0 = the first) times ``factor(s, k)``."""
    week = ((raw.sales["date"] - START).dt.days // 7).to_numpy()
    series = (raw.sales["store"] + "|" + raw.sales["category"]).to_numpy()
    times = np.array([factor(s, int(k)) for s, k in zip(series, week, strict=True)])
    sales = raw.sales.assign(revenue=raw.sales["revenue"] * times, y=raw.sales["y"] * times,
                             quantity=raw.sales["quantity"] * times)
    return RawData(sales=sales, keys=raw.keys, calendar=raw.calendar)


@lru_cache(maxsize=16)
def make_training_set(shape: PanelShape = PanelShape(), horizon: int = 8) -> TrainingSet:
    """The TrainingSet of a simulated panel (default features: lags H..H+3 and 52).

    Cached: tests share one object per shape and must not modify its frames.
    """
    config = FeatureConfig(customers=False)
    return build_training_set(simulate_raw(shape), config, freq="W", horizon=horizon)
