"""Validation rules for the raw sales, customer, calendar and known-future tables.

Every rule is a small vectorised function. A failure raises :class:`DataValidationError`,
which names the table (file or SQL table), the column, the rule and up to five example
rows with their values, so a person can open the file and fix it.

Row numbers are the frame's index labels: :func:`features.sources.standardize` indexes
each table by the row number a person sees — for CSV the spreadsheet row (the header is
row 1, the first data row is row 2), for Parquet and SQL the 1-based data row. The message
always says which convention it uses (``row_note``); when a frame's index means nothing
to a person (an aggregated panel), pass ``row_note=None`` and only the values are shown.

Rules (ids as they appear in messages): ``file_exists``, ``readable_format``,
``not_empty``, ``required_columns``, ``parseable_date``, ``numeric``, ``key_present``,
``unique_rows``, ``enough_history``; for the known-future table also ``known_keys`` (a
key value no series has) and ``covers_history`` (a period of the history without a row),
see :mod:`features.known_future`; and two that drop rows instead of failing, always
with a logged count: ``price_positive`` (see :func:`drop_rows`) and ``returns``.
"""

from __future__ import annotations

import difflib
import logging
import re
import warnings
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from pandas.tseries.api import guess_datetime_format

log = logging.getLogger(__name__)

MAX_EXAMPLES = 5
CSV_ROWS = "spreadsheet rows: the header is row 1"
DATA_ROWS = "data rows, 1-based"
_TRUE = {"true", "yes", "y", "t"}
_FALSE = {"false", "no", "n", "f"}
_WHOLE_FLOAT = r"-?\d+\.0+"


class DataValidationError(ValueError):
    """Raw data that breaks a rule: which table, column, rule, and example rows/values.

    ``str(err)`` is one paragraph, e.g. ``sales.csv: column 'Order Date': 3 rows have a
    date that cannot be parsed (rule: parseable_date), e.g. rows 5, 9, 12 (spreadsheet
    rows: the header is row 1): '2021-13-01', 'yesterday', ''``.
    """

    def __init__(
        self,
        source: str,
        rule: str,
        problem: str,
        *,
        column: str | None = None,
        rows: Sequence[int] = (),
        values: Sequence[object] = (),
        row_note: str | None = None,
        hint: str = "",
    ) -> None:
        self.source, self.rule, self.problem, self.column = source, rule, problem, column
        self.rows = tuple(int(r) for r in rows)[:MAX_EXAMPLES]
        self.values = tuple(values)[:MAX_EXAMPLES]
        self.row_note, self.hint = row_note, hint
        self.message = _compose(self)
        super().__init__(self.message)

    def __reduce__(self) -> tuple[object, ...]:
        kwargs = {"column": self.column, "rows": self.rows, "values": self.values,
                  "row_note": self.row_note, "hint": self.hint}
        return (_rebuild_error, (self.source, self.rule, self.problem, kwargs))


def _rebuild_error(
    source: str, rule: str, problem: str, kwargs: dict[str, object]
) -> DataValidationError:
    return DataValidationError(source, rule, problem, **kwargs)  # type: ignore[arg-type]


def _compose(err: DataValidationError) -> str:
    where = f"{err.source}: column '{err.column}'" if err.column else err.source
    text = f"{where}: {err.problem} (rule: {err.rule})"
    shown = ", ".join(_show(v) for v in err.values)
    if err.rows and err.row_note:
        rows = ", ".join(str(r) for r in err.rows)
        text += f", e.g. rows {rows} ({err.row_note})" + (f": {shown}" if shown else "")
    elif shown:
        text += f", e.g. {shown}"
    return text + (f"; {err.hint}" if err.hint else "")


def _show(value: object) -> str:
    """A cell as a person would recognise it: text quoted, empty cells as ''."""
    if isinstance(value, tuple):
        return "(" + ", ".join(_show(v) for v in value) + ")"
    if value is None or (not isinstance(value, str) and pd.isna(value)):  # type: ignore[arg-type]
        return "''"
    return repr(value) if isinstance(value, str) else str(value)


def _rows(count: int, what: str) -> str:
    return f"1 row {what[0]}" if count == 1 else f"{count} rows {what[1]}"


def fail_rows(
    values: pd.Series, bad: pd.Series, source: str, rule: str, what: tuple[str, str],
    *, row_note: str | None, hint: str = "",
) -> None:
    """Raise for the rows where ``bad`` is true; ``what`` = (singular, plural) verb phrase.

    E.g. ``what=("has a date that cannot be parsed", "have a date that cannot be parsed")``.
    """
    if not bad.any():
        return
    examples = values[bad].head(MAX_EXAMPLES)
    raise DataValidationError(
        source, rule, _rows(int(bad.sum()), what), column=str(values.name),
        rows=[int(r) for r in examples.index], values=examples.tolist(),
        row_note=row_note, hint=hint,
    )


def require_columns(frame: pd.DataFrame, required: Mapping[str, str], source: str) -> None:
    """Fail when a mapped column is absent; ``required`` maps role (e.g. 'date') -> column.

    The message lists the missing columns with their role, the columns the table does
    have, and the closest existing name (a typo in the spec's mapping is the usual cause).
    """
    present = [str(c) for c in frame.columns]
    missing = {role: col for role, col in required.items() if col not in present}
    if not missing:
        return
    named = ", ".join(f"'{col}' (mapped as {role})" for role, col in missing.items())
    guesses = [
        f"'{col}' -> '{close[0]}'"
        for col in missing.values()
        if (close := difflib.get_close_matches(col, present, n=1, cutoff=0.6))
    ]
    hint = "the table has columns: " + ", ".join(f"'{c}'" for c in present)
    if guesses:
        hint += "; did you mean " + ", ".join(guesses) + "?"
    raise DataValidationError(source, "required_columns", f"missing column(s) {named}", hint=hint)


def require_rows(frame: pd.DataFrame, source: str, *, after: str = "") -> None:
    """Fail on a table with no data rows (``after`` says what removed them, if anything)."""
    if len(frame) == 0:
        problem = "has no data rows" + (f" after {after}" if after else "")
        raise DataValidationError(source, "not_empty", problem)


# pandas' nanosecond timestamps span 1677-09-21 .. 2262-04-11: whole years inside
FIRST_DATE, LAST_DATE = pd.Timestamp("1678-01-01"), pd.Timestamp("2261-12-31")
MAX_ABS_NUMBER = 1e15  # as the API's actuals: sums of millions of such values stay finite


def parse_dates(
    values: pd.Series, source: str, *, date_format: str | None, row_note: str | None
) -> pd.Series:
    """Dates as naive ``datetime64[ns]``; every empty or unparseable cell is reported.

    With no ``date_format``, the format is inferred from the first cells that match a
    known pattern and then applied strictly to all rows (so a mixed-up file fails loudly
    instead of silently swapping day and month).
    """
    if pd.api.types.is_datetime64_any_dtype(values):
        parsed = values
    else:
        text = values.astype("str")
        fmt = date_format or _guess_format(text)
        parsed = pd.to_datetime(text, format=fmt or "mixed", errors="coerce")
    if getattr(parsed.dt, "tz", None) is not None:
        parsed = parsed.dt.tz_localize(None)
    fmt_note = f"expected format '{date_format}'" if date_format else (
        "set sales_columns.date_format if the dates use another format")
    fail_rows(values, parsed.isna(), source, "parseable_date",
              ("has a date that cannot be parsed", "have a date that cannot be parsed"),
              row_note=row_note, hint=fmt_note)
    outside = (parsed < FIRST_DATE) | (parsed > LAST_DATE)
    fail_rows(values, outside, source, "date_in_range",
              ("has a date outside 1678-2261", "have a date outside 1678-2261"),
              row_note=row_note, hint="a typo in the year?")
    return parsed.astype("datetime64[ns]")


def _guess_format(text: pd.Series) -> str | None:
    """The strftime format most of the first 50 distinct non-empty cells agree on."""
    sample = text.dropna().drop_duplicates().head(50)
    with warnings.catch_warnings():  # a day-first guess warns; the vote settles it
        warnings.simplefilter("ignore", UserWarning)
        guesses = [g for g in map(guess_datetime_format, sample) if g]
    return max(set(guesses), key=guesses.count) if guesses else None


def parse_numbers(values: pd.Series, source: str, *, row_note: str | None) -> pd.Series:
    """Finite floats; empty, non-numeric ('abc', '12,5') and infinite cells are reported."""
    if _is_real(values):  # numbers already: no parsing (no copy of float64 cells)
        numbers = values.astype("float64")
    else:
        numbers = pd.to_numeric(values, errors="coerce").astype("float64")
    bad = ~np.isfinite(numbers.to_numpy())
    fail_rows(values, pd.Series(bad, index=values.index, copy=False), source, "numeric",
              ("is empty or not a finite number", "are empty or not a finite number"),
              row_note=row_note)
    huge = np.abs(numbers.to_numpy()) > MAX_ABS_NUMBER
    fail_rows(values, pd.Series(huge, index=values.index, copy=False), source,
              "plausible_number", (f"is larger than {MAX_ABS_NUMBER:.0e} in magnitude",
                                   f"are larger than {MAX_ABS_NUMBER:.0e} in magnitude"),
              row_note=row_note, hint="a typo, or a value that would overflow the sums")
    return numbers


def parse_flags(values: pd.Series, source: str, *, row_note: str | None) -> pd.Series:
    """0/1 floats from 0/1, booleans or yes/no/true/false text; empty means 0 (no event).

    Any non-zero number counts as 1 (a discount rate of 0.2 means "on promotion"). Text is
    parsed once per distinct value (a promo column has a handful), not once per line.
    """
    if values.dtype == bool:
        return values.astype("float64")
    if _is_real(values):  # numbers already: no cell can be bad
        numbers = _real_array(values)
    else:
        codes, uniques = pd.factorize(values)  # missing cells get code -1
        numbers = np.append(_flag_numbers(pd.Series(uniques)), np.nan)[codes]
        bad = pd.Series(np.isnan(numbers), index=values.index, copy=False) & values.notna()
        fail_rows(values, bad, source, "numeric",
                  ("is not a 0/1 flag", "are not 0/1 flags"), row_note=row_note)
    on = numbers != 0
    if numbers.dtype.kind == "f":
        on &= ~np.isnan(numbers)  # empty means 0 (no event)
    return pd.Series(on.astype("float64"), index=values.index, name=values.name,
                     copy=False)


def _flag_numbers(values: pd.Series) -> np.ndarray:
    """The number each cell means as a flag (NaN: not a flag); words count as 1/0."""
    text = values.astype("str").str.strip().str.lower()
    words = text.map(lambda v: 1.0 if v in _TRUE else 0.0 if v in _FALSE else np.nan)
    numbers = pd.to_numeric(text.where(words.isna()), errors="coerce").fillna(words)
    return numbers.to_numpy(dtype=np.float64, na_value=np.nan)


def _real_array(values: pd.Series) -> np.ndarray:
    """The cells of an integer or float column as a read-only numpy array, NaN where empty.

    A numpy column's own cells (no copy); a nullable or Arrow one as float64.
    """
    if isinstance(values.dtype, np.dtype):
        return values.to_numpy()
    return values.to_numpy(dtype=np.float64, na_value=np.nan)


def _is_real(values: pd.Series) -> bool:
    """Integer or float cells (numpy or nullable), not booleans: no text to parse."""
    types = pd.api.types
    return types.is_integer_dtype(values) or types.is_float_dtype(values)


def as_text(values: pd.Series) -> pd.Series:
    """Ids and key values as trimmed text; missing stays missing.

    Integer-valued numbers lose their float form (17850.0 -> '17850'), also when a CSV
    wrote them as text, so the same customer matches across CSV, Parquet and SQL. A
    categorical column stays categorical (its categories become that text): at ten
    million lines that is a small integer per line instead of a string.
    """
    if isinstance(values.dtype, pd.CategoricalDtype):
        return _categorical_text(values)
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        whole = values.dropna()
        if np.isfinite(whole).all() and (whole == whole.round()).all():
            values = values.astype("Int64")
    return _trimmed(values.astype("str"))


def _trimmed(text: pd.Series) -> pd.Series:
    """Text cells stripped, empty as missing, '17850.0' as '17850' when all cells are so."""
    text = text.str.strip()
    text = text.where(text != "")
    if _all_whole_floats(text.dropna()):
        text = text.str.replace(r"\.0+$", "", regex=True)
    return text


def _all_whole_floats(present: pd.Series) -> bool:
    """Whether there are cells and each is a whole number written as a float ('17850.0').

    The first cell decides most columns ('S01', 'CU00017') without scanning them all.
    """
    if present.empty or not re.fullmatch(_WHOLE_FLOAT, present.iloc[0]):
        return False
    return bool(present.str.fullmatch(_WHOLE_FLOAT).all())


def _categorical_text(values: pd.Series) -> pd.Series:
    """:func:`as_text` of a categorical column, computed once per category in use.

    The result is categorical again, its categories the distinct texts of the categories
    in use (two categories that trim to the same text merge; an empty one is missing).
    """
    codes = values.cat.codes.to_numpy()
    categories = values.cat.categories
    present = codes if codes.min(initial=0) >= 0 else codes[codes >= 0]
    used = np.flatnonzero(np.bincount(present, minlength=len(categories)))
    once = pd.Categorical.from_codes(np.arange(len(used)), categories=categories[used])
    new_codes, texts = pd.factorize(_trimmed(pd.Series(once).astype("str")))
    if len(texts) == len(categories) and categories.dtype == "str" and texts.equals(categories):
        return values  # already clean text, every category in use: nothing to convert
    lookup = np.full(len(categories) + 1, -1, dtype=codes.dtype)  # last slot: missing
    lookup[used] = new_codes
    text = pd.Categorical.from_codes(lookup[codes], categories=texts, validate=False)
    return pd.Series(text, index=values.index, name=values.name, copy=False)


def require_values(
    values: pd.Series, source: str, *, what: str, row_note: str | None
) -> None:
    """Fail on empty cells of a column every row needs (``what``: e.g. 'series key')."""
    fail_rows(values, values.isna(), source, "key_present",
              (f"has no {what}", f"have no {what}"), row_note=row_note)


def check_unique(
    frame: pd.DataFrame, cols: Sequence[str], source: str, *, row_note: str | None = None
) -> None:
    """Fail when several rows share the same values of ``cols`` (rule ``unique_rows``).

    E.g. a customer id listed twice in the CRM table, or two panel rows for one
    (series, period) after aggregation. Rows are the frame's index labels and are shown
    only with a ``row_note`` saying what they are; the duplicated values always are.
    """
    cols = list(cols)
    dup = frame.duplicated(subset=cols, keep=False)
    if not dup.any():
        return
    examples = frame.loc[dup, cols].head(MAX_EXAMPLES)
    values = [row[0] if len(cols) == 1 else tuple(row)
              for row in examples.itertuples(index=False)]
    names = ", ".join(cols)
    raise DataValidationError(
        source, "unique_rows", _rows(int(dup.sum()), (
            f"repeats a ({names}) seen in another row", f"share the same ({names}) values")),
        column=cols[0] if len(cols) == 1 else None,
        rows=[int(r) for r in examples.index] if row_note else (),
        values=values, row_note=row_note,
    )


FUTURE_HINT = ("sales lines are realised sales: a typo in the year? (data.end trains on an "
               "earlier cut of a file)")


def latest_sales_date(today: pd.Timestamp | None = None) -> pd.Timestamp:
    """The last date a realised sale can carry: tomorrow (today in any time zone)."""
    return (today or pd.Timestamp.now().normalize()) + pd.Timedelta(days=1)


def future_what(latest: pd.Timestamp) -> tuple[str, str]:
    return f"is dated after {latest.date()}", f"are dated after {latest.date()}"


def check_not_future(dates: pd.Series, source: str, *, row_note: str | None,
                     today: pd.Timestamp | None = None) -> None:
    """Sales are realised: a line dated after today (a typo in the year, a planning file
    mixed in) would append empty periods to every series. ``today`` for tests."""
    latest = latest_sales_date(today)
    fail_rows(dates, dates > latest, source, "not_in_future", future_what(latest),
              row_note=row_note, hint=FUTURE_HINT)


def check_not_all_zero(values: pd.Series, source: str, column: str | None = None) -> None:
    """A target that is zero on every line is a column mapping mistake, not a business."""
    if len(values) and not values.to_numpy().any():
        raise DataValidationError(source, "not_all_zero", "every line's sales value is zero",
                                  column=column or str(values.name),
                                  hint="check data.sales_columns (target, quantity, price)")


def warn_duplicate_lines(frame: pd.DataFrame, source: str, *, row_note: str | None) -> int:
    """Lines identical in every column are kept (two equal purchases happen) but said:
    an export that repeats lines doubles the sales. Returns how many repeat another."""
    # one 64-bit hash per line, then duplicates of that: 2-3x faster than comparing every
    # column at ten million lines (a collision could only add a line to a warning)
    repeated = pd.util.hash_pandas_object(frame, index=False).duplicated(keep="first")
    count = int(repeated.sum())
    if count:
        rows = [int(r) for r in frame.index[repeated][:MAX_EXAMPLES]]
        log.warning("%s: %d line%s repeat%s an earlier line in every column (e.g. rows %s%s); "
                    "they are kept and add to the sales: remove them if the export repeated "
                    "lines", source, count, "" if count == 1 else "s",
                    "s" if count == 1 else "", ", ".join(map(str, rows)),
                    f", {row_note}" if row_note else "")
    return count


def check_history(n_periods: int, needed: int, source: str, *, reason: str = "") -> None:
    """Fail when the data span fewer periods than the lags, windows and backtest need.

    ``reason`` says where ``needed`` comes from, e.g. 'lag 8 + 3 backtest windows of 4'.
    """
    if n_periods >= needed:
        return
    problem = (f"the history has {n_periods} period{'' if n_periods == 1 else 's'} but "
               f"{needed} are needed")
    hint = (f"needed for {reason}; " if reason else "") + (
        "use fewer or shorter lags, fewer backtest windows or a shorter horizon")
    raise DataValidationError(source, "enough_history", problem, hint=hint)


def drop_rows(
    frame: pd.DataFrame, drop: pd.Series, source: str, rule: str, reason: str,
    *, row_note: str | None = None, level: int = logging.WARNING,
) -> pd.DataFrame:
    """``frame`` without the rows where ``drop`` is true, logging how many and which.

    Used where a rule removes rows rather than failing: never silently. ``reason`` says
    what the rows are, e.g. 'with price <= 0 (free items, stock adjustments)'.
    """
    count = int(drop.sum())
    if not count:
        return frame  # nothing to drop: no copy of a ten-million-line frame
    rows = ", ".join(str(r) for r in frame.index[drop.to_numpy()][:MAX_EXAMPLES])
    note = f" ({row_note})" if row_note else ""
    log.log(level, "%s: dropped %d of %d rows %s (rule: %s), e.g. rows %s%s",
            source, count, len(frame), reason, rule, rows, note)
    return frame.loc[~drop]
