"""Periods of the spec's frequency and the calendar features derived from a period's date.

A *period* is a day (``D``), a week starting on Monday (``W``) or a calendar month (``M``);
its ``ds`` is the period's first day. Internally periods are integers ("period numbers"):
days since 1970-01-01 (D), Monday-weeks since 1970-01-05 (W), months since 1970-01 (M), so
the aggregation can bucket millions of transaction lines with integer arithmetic.

Calendar features of a period depend only on its date (and the panel's fixed start for
``trend``), so they are known for any future period.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

FREQUENCIES = ("D", "W", "M")
SEASON_LENGTHS = {"D": 7, "W": 52, "M": 12}
_FIRST_MONDAY = 4  # 1970-01-05 is day 4 of the Unix epoch and a Monday
_DAYS_PER_YEAR = 365.25


def check_freq(freq: str) -> None:
    if freq not in FREQUENCIES:
        raise ValueError(f"unknown frequency {freq!r}: expected one of {FREQUENCIES}")


def day_numbers(dates: pd.Series | pd.DatetimeIndex | np.ndarray) -> np.ndarray:
    """Days since 1970-01-01 (int64) of each date; the time of day is dropped."""
    values = np.asarray(dates, dtype="datetime64[ns]").astype("datetime64[D]")
    return values.astype(np.int64)


def period_numbers_of_days(days: np.ndarray, freq: str) -> np.ndarray:
    """Period number (int64) of each day number."""
    check_freq(freq)
    days = np.asarray(days, dtype=np.int64)
    if freq == "D":
        return days
    if freq == "W":
        return (days - _FIRST_MONDAY) // 7
    return days.astype("datetime64[D]").astype("datetime64[M]").astype(np.int64)


def period_numbers(ds: pd.Series | pd.DatetimeIndex | np.ndarray, freq: str) -> np.ndarray:
    """Period number of each date (any date inside the period maps to it)."""
    return period_numbers_of_days(day_numbers(ds), freq)


def first_days(numbers: np.ndarray, freq: str) -> np.ndarray:
    """Day number of the first day of each period."""
    check_freq(freq)
    numbers = np.asarray(numbers, dtype=np.int64)
    if freq == "D":
        return numbers
    if freq == "W":
        return numbers * 7 + _FIRST_MONDAY
    return numbers.astype("datetime64[M]").astype("datetime64[D]").astype(np.int64)


def period_lengths(numbers: np.ndarray, freq: str) -> np.ndarray:
    """Number of days in each period (1, 7, or 28..31)."""
    numbers = np.asarray(numbers, dtype=np.int64)
    return first_days(numbers + 1, freq) - first_days(numbers, freq)


def period_starts(numbers: np.ndarray, freq: str) -> pd.DatetimeIndex:
    """``ds`` (first day, datetime64[ns]) of each period number."""
    days = first_days(numbers, freq).astype("datetime64[D]")
    return pd.DatetimeIndex(days.astype("datetime64[ns]"))


def shift_periods(
    ds: pd.Series | pd.DatetimeIndex, steps: np.ndarray | int, freq: str
) -> pd.DatetimeIndex:
    """The ``ds`` that lies ``steps`` periods after each ``ds``."""
    return period_starts(period_numbers(ds, freq) + np.asarray(steps, dtype=np.int64), freq)


def calendar_features(ds: pd.Series, freq: str, start: pd.Timestamp) -> pd.DataFrame:
    """Features of each period's date: month, week_of_year (ISO), quarter, day_of_week and
    day_of_month (D only), yearly Fourier terms ``sin_year_k``/``cos_year_k`` (k = 1, 2) of
    the day of the year, and ``trend`` = periods since ``start`` (the panel's first period,
    fixed at fit time so that future periods continue the count)."""
    return pd.DataFrame(calendar_columns(ds, freq, start),
                        index=ds.index if isinstance(ds, pd.Series) else None)


def calendar_columns(ds: pd.Series | pd.DatetimeIndex | np.ndarray, freq: str,
                     start: pd.Timestamp) -> dict[str, np.ndarray]:
    """:func:`calendar_features` as arrays, by integer arithmetic on day numbers: the
    pandas date accessors cost milliseconds per call, and the recursive strategy and the
    tuning backtest build feature rows hundreds of times on small panels."""
    days = day_numbers(ds)
    months = days.astype("datetime64[D]").astype("datetime64[M]").astype(np.int64)
    month = months % 12 + 1
    out = {"month": month, "week_of_year": iso_weeks(days), "quarter": (month - 1) // 3 + 1}
    if freq == "D":
        out["day_of_week"] = _weekdays(days)
        out["day_of_month"] = days - first_days(months, "M") + 1  # paydays, month-start orders
    year_fraction = (_day_of_year(days).astype(np.float64) - 1.0) / _DAYS_PER_YEAR
    for k in (1, 2):
        out[f"sin_year_{k}"] = np.sin(2 * np.pi * k * year_fraction)
        out[f"cos_year_{k}"] = np.cos(2 * np.pi * k * year_fraction)
    start_number = period_numbers(pd.DatetimeIndex([start]), freq)[0]
    out["trend"] = period_numbers_of_days(days, freq) - start_number
    return out


def _weekdays(days: np.ndarray) -> np.ndarray:
    """Day of the week of each day number, Monday = 0 (1970-01-01 was a Thursday)."""
    return (days + 3) % 7


def _day_of_year(days: np.ndarray) -> np.ndarray:
    """1-based day of the year of each day number."""
    years = days.astype("datetime64[D]").astype("datetime64[Y]")
    return days - years.astype("datetime64[D]").astype(np.int64) + 1


def iso_weeks(days: np.ndarray) -> np.ndarray:
    """ISO 8601 week number of each day number: the week of its Thursday, counted from
    the week holding its year's first Thursday."""
    thursdays = days - _weekdays(days) + 3
    return (_day_of_year(thursdays) - 1) // 7 + 1


def calendar_feature_names(freq: str) -> list[str]:
    """Names of the columns :func:`calendar_features` makes for ``freq``, in order."""
    names = ["month", "week_of_year", "quarter"]
    if freq == "D":
        names += ["day_of_week", "day_of_month"]
    names += ["sin_year_1", "cos_year_1", "sin_year_2", "cos_year_2", "trend"]
    return names
