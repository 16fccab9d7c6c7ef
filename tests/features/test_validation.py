"""Validation rules: each failure names the table, column, rule, rows and values."""

from __future__ import annotations

import logging
import pickle

import pandas as pd
import pytest

from features.validation import (
    CSV_ROWS,
    DATA_ROWS,
    DataValidationError,
    as_text,
    check_history,
    check_not_all_zero,
    check_not_future,
    check_unique,
    drop_rows,
    parse_dates,
    parse_flags,
    parse_numbers,
    require_columns,
    require_rows,
    warn_duplicate_lines,
)


def _cells(values: list[object], first_row: int = 2, name: str = "col") -> pd.Series:
    """A column as standardize sees it: indexed by the row number a person sees."""
    return pd.Series(values, index=range(first_row, first_row + len(values)), name=name)


def test_message_is_one_paragraph_with_rule_rows_and_values() -> None:
    err = DataValidationError(
        "sales.csv", "parseable_date", "3 rows have a date that cannot be parsed",
        column="Order Date", rows=[5, 9, 12], values=["2021-13-01", "yesterday", None],
        row_note=CSV_ROWS,
    )
    assert str(err) == (
        "sales.csv: column 'Order Date': 3 rows have a date that cannot be parsed "
        "(rule: parseable_date), e.g. rows 5, 9, 12 (spreadsheet rows: the header is "
        "row 1): '2021-13-01', 'yesterday', ''"
    )
    assert "\n" not in str(err)
    assert (err.source, err.column, err.rule, err.rows) == (
        "sales.csv", "Order Date", "parseable_date", (5, 9, 12))


def test_error_survives_pickling() -> None:
    err = DataValidationError("s.csv", "numeric", "1 row is bad", column="x", rows=[3],
                              values=["abc"], row_note=DATA_ROWS)
    back = pickle.loads(pickle.dumps(err))
    assert str(back) == str(err)
    assert back.rows == (3,) and back.rule == "numeric"


def test_unparseable_dates_report_count_first_five_rows_and_values() -> None:
    cells = ["2021-01-04", "2021-13-01", "yesterday", None, "2021-01-11",
             "x1", "x2", "x3", "2021-01-18"]
    with pytest.raises(DataValidationError) as info:
        parse_dates(_cells(cells, name="Order Date"), "sales.csv", date_format=None,
                    row_note=CSV_ROWS)
    err = info.value
    assert err.rule == "parseable_date" and err.column == "Order Date"
    assert err.rows == (3, 4, 5, 7, 8)  # data positions 1, 2, 3, 5, 6 + header offset 2
    assert str(err).startswith("sales.csv: column 'Order Date': 6 rows have a date")
    assert "'2021-13-01', 'yesterday', ''" in str(err)


def test_explicit_date_format_is_applied_strictly() -> None:
    cells = _cells(["13/01/2021", "01/02/2021"])
    parsed = parse_dates(cells, "s", date_format="%d/%m/%Y", row_note=DATA_ROWS)
    assert parsed.tolist() == [pd.Timestamp("2021-01-13"), pd.Timestamp("2021-02-01")]
    with pytest.raises(DataValidationError, match="expected format '%d/%m/%Y'") as info:
        parse_dates(_cells(["13/01/2021", "2021-01-13"]), "s", date_format="%d/%m/%Y",
                    row_note=DATA_ROWS)
    assert info.value.rows == (3,)


def test_inferred_format_does_not_mix_day_first_and_month_first() -> None:
    cells = _cells(["1/4/2011 10:23", "1/13/2011 9:00", "13/1/2011 9:00"])
    with pytest.raises(DataValidationError) as info:
        parse_dates(cells, "s", date_format=None, row_note=CSV_ROWS)
    assert info.value.rows == (4,) and info.value.values == ("13/1/2011 9:00",)


def test_timezone_aware_dates_become_naive_wall_times() -> None:
    cells = _cells(pd.to_datetime(["2021-01-04 10:00"]).tz_localize("Europe/London").tolist())
    parsed = parse_dates(cells, "s", date_format=None, row_note=DATA_ROWS)
    assert parsed.dt.tz is None and parsed.iloc[0] == pd.Timestamp("2021-01-04 10:00")


def test_numbers_reject_text_empty_and_infinite_cells() -> None:
    cells = _cells(["1.5", "abc", "", "inf", "2"], name="Sales")
    with pytest.raises(DataValidationError) as info:
        parse_numbers(cells.replace("", None), "s.csv", row_note=CSV_ROWS)
    assert info.value.rule == "numeric"
    assert info.value.rows == (3, 4, 5)
    assert "3 rows are empty or not a finite number" in str(info.value)
    assert parse_numbers(_cells(["1.5", "-2"]), "s", row_note=None).tolist() == [1.5, -2.0]


def test_flags_accept_words_numbers_and_empty_but_not_other_text() -> None:
    cells = _cells(["yes", "No", "1", "0", None, "TRUE", "0.2"])
    assert parse_flags(cells, "s", row_note=None).tolist() == [1, 0, 1, 0, 0, 1, 1]
    with pytest.raises(DataValidationError, match="is not a 0/1 flag") as info:
        parse_flags(_cells(["1", "maybe"]), "s", row_note=DATA_ROWS)
    assert info.value.rows == (3,)


@pytest.mark.parametrize(
    ("cells", "expected"),
    [
        ([17850.0, None, 12.0], ["17850", None, "12"]),
        (["17850.0", "12.0", None], ["17850", "12", None]),
        ([" 007", "S1 ", ""], ["007", "S1", None]),
        (["1.5", "2.0"], ["1.5", "2.0"]),
        ([1.5, 2.0], ["1.5", "2.0"]),
    ],
)
def test_ids_as_text(cells: list[object], expected: list[str | None]) -> None:
    result = as_text(pd.Series(cells))
    assert [None if pd.isna(v) else v for v in result] == expected


@pytest.mark.parametrize(
    ("categories", "codes", "expected", "expected_categories"),
    [
        # an unused category ('abc') neither shows up nor stops '.0' from being dropped
        (["17850.0", "12.0", "abc"], [0, -1, 1, 0], ["17850", None, "12", "17850"],
         ["17850", "12"]),
        # categories that trim to the same text merge; an empty one is missing
        ([" S1", "S1", "", "007 "], [0, 1, 2, 3], ["S1", "S1", None, "007"], ["S1", "007"]),
        ([17850.0, 12.0], [0, 1], ["17850", "12"], ["17850", "12"]),
    ],
)
def test_categorical_ids_stay_categorical_with_clean_text(
    categories: list[object], codes: list[int], expected: list[str | None],
    expected_categories: list[str],
) -> None:
    cells = pd.Series(pd.Categorical.from_codes(codes, categories=categories),
                      index=range(2, 2 + len(codes)), name="Customer")
    result = as_text(cells)
    assert isinstance(result.dtype, pd.CategoricalDtype)
    assert [None if pd.isna(v) else v for v in result] == expected
    assert result.cat.categories.tolist() == expected_categories
    assert result.index.tolist() == cells.index.tolist() and result.name == "Customer"


def test_flags_from_number_columns_need_no_text() -> None:
    assert parse_flags(_cells([0, 1, 2, -1]).astype("int8"), "s", row_note=None).tolist() \
        == [0, 1, 1, 1]
    floats = _cells([0.0, float("nan"), 0.2, float("inf")])
    assert parse_flags(floats, "s", row_note=None).tolist() == [0, 0, 1, 1]
    nullable = _cells([1, None, 0]).astype("Int64")
    assert parse_flags(nullable, "s", row_note=None).tolist() == [1, 0, 0]


def test_flags_from_categorical_words_report_rows_of_bad_ones() -> None:
    words = _cells(pd.Categorical(["Yes", "no", None, "yes"]))
    assert parse_flags(words, "s", row_note=None).tolist() == [1, 0, 0, 1]
    with pytest.raises(DataValidationError) as info:
        parse_flags(_cells(pd.Categorical(["yes", "maybe", "no", "maybe"])), "s",
                    row_note=DATA_ROWS)
    assert info.value.rows == (3, 5) and info.value.values == ("maybe", "maybe")


def test_empty_cells_of_nullable_numbers_are_reported() -> None:
    cells = _cells([3, None, 5], name="Units").astype("Int64")
    with pytest.raises(DataValidationError) as info:
        parse_numbers(cells, "s.parquet", row_note=DATA_ROWS)
    assert info.value.rule == "numeric" and info.value.rows == (3,)
    assert parse_numbers(_cells([3, -1]).astype("int32"), "s", row_note=None).tolist() \
        == [3.0, -1.0]


def test_required_columns_lists_existing_columns_and_closest_name() -> None:
    frame = pd.DataFrame(columns=["Order Date", "Store", "Sales"])
    with pytest.raises(DataValidationError) as info:
        require_columns(frame, {"date": "Order Dte", "target": "Sales"}, "s.csv")
    text = str(info.value)
    assert info.value.rule == "required_columns"
    assert "'Order Dte' (mapped as date)" in text and "'Sales' (mapped" not in text
    assert "'Order Date', 'Store', 'Sales'" in text
    assert "did you mean 'Order Dte' -> 'Order Date'?" in text


def test_require_rows_says_what_emptied_the_table() -> None:
    with pytest.raises(DataValidationError, match="no data rows after filters"):
        require_rows(pd.DataFrame({"a": []}), "s.csv", after="filters")
    require_rows(pd.DataFrame({"a": [1]}), "s.csv")


def test_check_unique_shows_rows_only_with_a_row_note() -> None:
    frame = pd.DataFrame({"customer_id": ["a", "b", "a", "c"]}, index=[2, 3, 4, 5])
    with pytest.raises(DataValidationError) as info:
        check_unique(frame, ["customer_id"], "crm.csv", row_note=CSV_ROWS)
    assert info.value.rule == "unique_rows" and info.value.rows == (2, 4)
    assert info.value.column == "customer_id"
    panel = pd.DataFrame({"series_id": ["s1", "s1", "s2"], "ds": ["w1", "w1", "w1"]})
    with pytest.raises(DataValidationError) as info:
        check_unique(panel, ["series_id", "ds"], "panel")
    assert info.value.rows == () and "('s1', 'w1')" in str(info.value)
    check_unique(panel.iloc[1:], ["series_id", "ds"], "panel")


def test_check_history() -> None:
    check_history(30, 30, "sales.csv")
    with pytest.raises(DataValidationError) as info:
        check_history(20, 30, "sales.csv", reason="lag 8 + 3 windows of 4")
    assert info.value.rule == "enough_history"
    assert "20 periods but 30 are needed" in str(info.value)
    assert "lag 8 + 3 windows of 4" in str(info.value)


def test_drop_rows_removes_and_counts(caplog: pytest.LogCaptureFixture) -> None:
    frame = pd.DataFrame({"price": [1.0, 0.0, -2.0, 3.0]}, index=[2, 3, 4, 5])
    with caplog.at_level(logging.WARNING, logger="features.validation"):
        kept = drop_rows(frame, frame["price"] <= 0, "s.csv", "price_positive",
                         "with price <= 0", row_note=CSV_ROWS)
    assert kept.index.tolist() == [2, 5]
    assert "dropped 2 of 4 rows with price <= 0" in caplog.text
    assert "rows 3, 4" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="features.validation"):
        kept = drop_rows(frame, frame["price"] > 5, "s.csv", "price_positive", "too dear")
    assert kept.index.tolist() == [2, 3, 4, 5] and caplog.text == ""


def test_dates_outside_the_supported_years_are_reported_not_a_traceback() -> None:
    with pytest.raises(DataValidationError) as info:
        parse_dates(_cells(["2021-01-04", "1600-01-03", "2999-05-01"], name="date"),
                    "sales.csv", date_format=None, row_note=CSV_ROWS)
    assert info.value.rule == "date_in_range" and info.value.rows == (3, 4)


def test_numbers_too_large_to_sum_are_reported() -> None:
    with pytest.raises(DataValidationError) as info:
        parse_numbers(_cells([3, 1e308, -2e15], name="quantity"), "sales.csv",
                      row_note=CSV_ROWS)
    assert info.value.rule == "plausible_number" and info.value.rows == (3, 4)
    assert parse_numbers(_cells([3, 1e15]), "s.csv", row_note=CSV_ROWS).tolist() == [3, 1e15]


def test_sales_dated_in_the_future_are_reported_by_row() -> None:
    dates = pd.Series(pd.to_datetime(["2024-01-01", "2030-01-07", "2024-01-08"]),
                      index=[2, 3, 4], name="date")
    with pytest.raises(DataValidationError) as info:
        check_not_future(dates, "sales.csv", row_note=CSV_ROWS,
                         today=pd.Timestamp("2024-06-01"))
    assert info.value.rule == "not_in_future" and info.value.rows == (3,)
    check_not_future(dates.head(1), "sales.csv", row_note=CSV_ROWS,
                     today=pd.Timestamp("2024-06-01"))  # the past is fine


def test_all_zero_sales_are_a_mapping_mistake() -> None:
    with pytest.raises(DataValidationError, match="every line's sales value is zero"):
        check_not_all_zero(pd.Series([0.0, 0.0], name="quantity"), "sales.csv")
    check_not_all_zero(pd.Series([0.0, 2.0], name="quantity"), "sales.csv")


def test_repeated_lines_are_kept_and_said(caplog: pytest.LogCaptureFixture) -> None:
    frame = pd.DataFrame({"date": ["d1", "d1", "d2", "d1"], "qty": [1, 1, 1, 1]},
                         index=[2, 3, 4, 5])
    with caplog.at_level(logging.WARNING):
        assert warn_duplicate_lines(frame, "sales.csv", row_note=CSV_ROWS) == 2
    assert "2 lines repeat an earlier line in every column (e.g. rows 3, 5" in caplog.text
