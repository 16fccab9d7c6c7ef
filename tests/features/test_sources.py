"""Loaders: every validation rule on a small bad CSV, the three source formats, the
spec's data options, and a real slice of UCI Online Retail."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from experiments.spec import load_spec
from features.config import DataConfig, SourceConfig
from features.sources import OTHER, load_raw, read_table, standardize
from features.validation import DataValidationError

ROOT = Path(__file__).resolve().parents[2]
SLICE = ROOT / "tests" / "data" / "online_retail_slice.csv"
ONLINE_RETAIL_SPEC = ROOT / "experiments" / "online_retail.yaml"

HEADER = "Order Date,Store,Category,Units,Unit Price,Customer\n"
GOOD_LINES = [
    "2021-01-04,S1,A,2,10.0,c1",
    "2021-01-05,S1,B,1,5.0,c2",
    "2021-01-06,S2,A,3,2.0,",
    "2021-01-11,S2,B,-1,5.0,c2",
    "2021-01-12,S3,A,4,1.5,c3",
]
MAPPING = {"date": "Order Date", "keys": ["Store", "Category"], "quantity": "Units",
           "price": "Unit Price", "customer_id": "Customer", "promo": None, "channel": None}


def _csv(tmp_path: Path, lines: list[str], header: str = HEADER, name: str = "sales.csv") -> Path:
    path = tmp_path / name
    path.write_text(header + "".join(line + "\n" for line in lines))
    return path


def _config(sales: Path | dict, **options: object) -> DataConfig:
    source = sales if isinstance(sales, dict) else {"path": str(sales)}
    mapping = {**MAPPING, **options.pop("columns", {})}  # type: ignore[dict-item]
    return DataConfig.model_validate({"sales": source, "sales_columns": mapping, **options})


def _load_error(tmp_path: Path, lines: list[str], **options: object) -> DataValidationError:
    with pytest.raises(DataValidationError) as info:
        load_raw(_config(_csv(tmp_path, lines), **options))
    return info.value


# --- the standardised sales table --------------------------------------------------


def test_good_csv_becomes_the_rawdata_contract(tmp_path: Path) -> None:
    raw = load_raw(_config(_csv(tmp_path, GOOD_LINES)))
    sales = raw.sales
    assert raw.keys == ("Store", "Category")
    assert list(sales.columns) == ["date", "Store", "Category", "y", "revenue", "quantity",
                                   "price", "customer_id"]
    assert sales["date"].dtype == "datetime64[ns]"
    assert sales["y"].tolist() == [20.0, 5.0, 6.0, -5.0, 6.0]  # units x price, by hand
    assert sales["customer_id"].isna().tolist() == [False, False, True, False, False]
    assert raw.labels == {"sales": str(tmp_path / "sales.csv")}


def test_quantity_target_uses_units(tmp_path: Path) -> None:
    raw = load_raw(_config(_csv(tmp_path, GOOD_LINES), target="quantity"))
    assert raw.sales["y"].tolist() == [2.0, 1.0, 3.0, -1.0, 4.0]
    assert raw.sales["revenue"].sum() == pytest.approx(32.0)


def test_mapped_target_column_is_y(tmp_path: Path) -> None:
    header = "Order Date,Store,Category,Sales\n"
    path = _csv(tmp_path, ["2021-01-04,S1,A,12.5", "2021-01-05,S1,A,7"], header=header)
    raw = load_raw(_config(path, columns={"target": "Sales", "quantity": None, "price": None,
                                          "customer_id": None}))
    assert raw.sales["y"].tolist() == [12.5, 7.0]
    assert raw.sales["revenue"].tolist() == [12.5, 7.0]


def test_ids_keep_leading_zeros_from_csv(tmp_path: Path) -> None:
    lines = ["2021-01-04,007,01,2,10.0,000123", "2021-01-05,7,1,1,5.0,123"]
    sales = load_raw(_config(_csv(tmp_path, lines))).sales
    assert sales["Store"].tolist() == ["007", "7"]
    assert sales["customer_id"].tolist() == ["000123", "123"]


# --- one test per rule ---------------------------------------------------------------


def test_misspelt_mapping_names_missing_and_existing_columns(tmp_path: Path) -> None:
    err = _load_error(tmp_path, GOOD_LINES, columns={"price": "Unit Prise"})
    assert err.rule == "required_columns"
    assert "'Unit Prise' (mapped as price)" in str(err)
    assert "'Order Date', 'Store', 'Category', 'Units', 'Unit Price', 'Customer'" in str(err)
    assert "did you mean 'Unit Prise' -> 'Unit Price'?" in str(err)


def test_missing_key_column_is_reported(tmp_path: Path) -> None:
    err = _load_error(tmp_path, GOOD_LINES, columns={"keys": ["Store", "Region"]})
    assert err.rule == "required_columns" and "'Region' (mapped as series key Region)" in str(err)


def test_explicit_optional_column_must_exist_default_one_may_be_absent(tmp_path: Path) -> None:
    err = _load_error(tmp_path, GOOD_LINES, columns={"promo": "On Promo"})
    assert err.rule == "required_columns" and "'On Promo' (mapped as promo)" in str(err)
    config = DataConfig.model_validate({
        "sales": {"path": str(_csv(tmp_path, GOOD_LINES))},
        "sales_columns": {k: v for k, v in MAPPING.items() if k not in {"promo", "channel"}},
    })  # promo/channel left at their defaults ('promo', 'channel'), absent from the file
    assert "promo" not in load_raw(config).sales.columns


def test_malformed_date_names_its_spreadsheet_row(tmp_path: Path) -> None:
    lines = [*GOOD_LINES[:2], "2021-13-01,S1,A,1,1.0,c1", *GOOD_LINES[2:], "yesterday,S2,A,1,1,"]
    err = _load_error(tmp_path, lines)
    assert err.rule == "parseable_date" and err.column == "Order Date"
    assert err.rows == (4, 8)  # header is row 1: data lines 3 and 7
    assert "rows 4, 8 (spreadsheet rows: the header is row 1): '2021-13-01', 'yesterday'" \
        in str(err)


def test_date_format_from_the_spec_is_honoured(tmp_path: Path) -> None:
    lines = ["04/01/2021,S1,A,2,10.0,c1", "13/01/2021,S1,A,1,5.0,c2"]
    raw = load_raw(_config(_csv(tmp_path, lines), columns={"date_format": "%d/%m/%Y"}))
    assert raw.sales["date"].tolist() == [pd.Timestamp("2021-01-04"), pd.Timestamp("2021-01-13")]


def test_non_numeric_target_is_reported_with_row(tmp_path: Path) -> None:
    header = "Order Date,Store,Category,Sales\n"
    path = _csv(tmp_path, ["2021-01-04,S1,A,12.5", "2021-01-05,S1,A,twelve"], header=header)
    with pytest.raises(DataValidationError) as info:
        load_raw(_config(path, columns={"target": "Sales", "quantity": None, "price": None,
                                        "customer_id": None}))
    assert info.value.rule == "numeric" and info.value.column == "Sales"
    assert info.value.rows == (3,) and "'twelve'" in str(info.value)


def test_missing_series_key_is_an_error(tmp_path: Path) -> None:
    err = _load_error(tmp_path, [*GOOD_LINES, "2021-01-12,,A,1,1.0,c1"])
    assert err.rule == "key_present" and err.column == "Store" and err.rows == (7,)


def test_price_zero_or_negative_lines_are_dropped_and_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    lines = [*GOOD_LINES, "2021-01-12,S1,A,5,0,c1", "2021-01-12,S1,A,-3,-2.5,"]
    with caplog.at_level(logging.WARNING):
        sales = load_raw(_config(_csv(tmp_path, lines))).sales
    assert len(sales) == len(GOOD_LINES)
    assert (sales["price"] > 0).all()
    assert "dropped 2 of 7 rows with price <= 0" in caplog.text
    assert "rows 7, 8" in caplog.text


@pytest.mark.parametrize(("returns", "rows", "net"), [("keep", 5, 32.0), ("drop", 4, 37.0)])
def test_returns_keep_nets_drop_removes(
    tmp_path: Path, returns: str, rows: int, net: float
) -> None:
    sales = load_raw(_config(_csv(tmp_path, GOOD_LINES), returns=returns)).sales
    assert len(sales) == rows
    assert sales["y"].sum() == pytest.approx(net)  # 20 + 5 + 6 + 6, minus the 5.0 return


def test_empty_file_and_header_only_file(tmp_path: Path) -> None:
    (tmp_path / "zero.csv").write_text("")
    for path in (tmp_path / "zero.csv", _csv(tmp_path, [], name="header_only.csv")):
        with pytest.raises(DataValidationError) as info:
            load_raw(_config(path))
        assert info.value.rule == "not_empty" and path.name in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataValidationError) as info:
        load_raw(_config(tmp_path / "nope.csv"))
    assert info.value.rule == "file_exists" and "nope.csv" in str(info.value)


def test_unreadable_format(tmp_path: Path) -> None:
    path = tmp_path / "sales.parquet"
    path.write_text(HEADER + GOOD_LINES[0])
    with pytest.raises(DataValidationError) as info:
        load_raw(_config(path))
    assert info.value.rule == "readable_format" and "parquet" in str(info.value)


# --- data options --------------------------------------------------------------------


def test_filters_keep_listed_values_and_skip_broken_excluded_rows(tmp_path: Path) -> None:
    lines = [*GOOD_LINES, "not a date,S9,A,x,1.0,c1"]  # broken, but filtered out
    sales = load_raw(_config(_csv(tmp_path, lines), filters={"Store": ["S1", "S3"]})).sales
    assert sorted(sales["Store"].unique()) == ["S1", "S3"]
    assert len(sales) == 3


def test_filter_matching_nothing_lists_values_present(tmp_path: Path) -> None:
    err = _load_error(tmp_path, GOOD_LINES, filters={"Store": ["s1"]})
    assert err.rule == "not_empty" and "'S1'" in str(err)


def test_top_series_pools_the_rest_into_other(tmp_path: Path) -> None:
    # revenue by (Store, Category): S1/A 20, S2/A 6, S1/B 5, S3/A 6, S2/B -5
    raw = load_raw(_config(_csv(tmp_path, GOOD_LINES), top_series=2))
    series = raw.sales[["Store", "Category"]].drop_duplicates()
    kept = set(map(tuple, series.to_numpy()))
    assert kept == {("S1", "A"), ("S2", "A"), (OTHER, OTHER)}  # tie 6 vs 6: S2 < S3
    assert raw.sales["y"].sum() == pytest.approx(32.0)  # pooling never loses revenue


def test_top_series_larger_than_series_count_changes_nothing(tmp_path: Path) -> None:
    raw = load_raw(_config(_csv(tmp_path, GOOD_LINES), top_series=50))
    assert OTHER not in set(raw.sales["Store"])


# --- formats -------------------------------------------------------------------------


def _typed_frame() -> pd.DataFrame:
    return pd.DataFrame({
        "Order Date": pd.to_datetime(["2021-01-04", "2021-01-05", "2021-01-11"]),
        "Store": ["S1", "S2", "S1"], "Category": ["A", "A", "B"],
        "Units": [2, 1, -1], "Unit Price": [10.0, 5.0, 2.5],
        "Customer": [17850.0, None, 12.0],
    })


def test_parquet_sqlite_and_csv_give_the_same_sales(tmp_path: Path) -> None:
    frame = _typed_frame()
    frame.to_csv(tmp_path / "sales.csv", index=False)
    frame.to_parquet(tmp_path / "sales.parquet", index=False)
    url = f"sqlite:///{tmp_path / 'sales.db'}"
    engine = sa.create_engine(url)
    frame.to_sql("sales", engine, index=False)
    engine.dispose()
    sources = [{"path": str(tmp_path / "sales.csv")}, {"path": str(tmp_path / "sales.parquet")},
               {"url": url, "table": "sales"}, {"url": url, "query": "SELECT * FROM sales"}]
    results = [load_raw(_config(source)).sales for source in sources]
    for other in results[1:]:
        pd.testing.assert_frame_equal(results[0], other)
    assert results[0]["customer_id"].tolist()[::2] == ["17850", "12"]


def test_read_table_reads_every_row_of_each_format(tmp_path: Path) -> None:
    frame = _typed_frame()
    frame.to_parquet(tmp_path / "s.parquet", index=False)
    table = read_table(SourceConfig(path=str(tmp_path / "s.parquet")))
    assert list(table.columns) == list(frame.columns) and len(table) == len(frame)


def test_sql_errors_are_reported(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'missing.db'}"
    with pytest.raises(DataValidationError) as info:
        read_table(SourceConfig(url=url, table="sales"))
    assert info.value.rule == "file_exists"
    assert not (tmp_path / "missing.db").exists()
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    _typed_frame().to_sql("orders", engine, index=False)
    engine.dispose()
    with pytest.raises(DataValidationError) as info:
        read_table(SourceConfig(url=f"sqlite:///{tmp_path / 'db.sqlite'}", table="sales"))
    assert info.value.rule == "readable_format" and "sales" in str(info.value)


def test_errors_in_a_parquet_file_use_data_row_numbers(tmp_path: Path) -> None:
    frame = _typed_frame().assign(Store=["S1", None, "S1"])
    frame.to_parquet(tmp_path / "s.parquet", index=False)
    with pytest.raises(DataValidationError) as info:
        load_raw(_config(tmp_path / "s.parquet"))
    assert info.value.rows == (2,) and "(data rows, 1-based)" in str(info.value)


# --- categorical and typed columns (the simulator's, Parquet written by pandas) -------


def _category_frame() -> pd.DataFrame:
    """Six lines of three series, out of date order; keys, ids and channel categorical."""
    return pd.DataFrame({
        "Order Date": pd.to_datetime(["2021-01-11", "2021-01-04", "2021-01-05",
                                      "2021-01-04", "2021-01-12", "2021-01-05"]),
        "Store": pd.Categorical(["S1", "S1 ", "S2", "S1", "S2", "S1"],
                                categories=["S1", "S1 ", "S2", "S9"]),  # S9: no lines
        "Category": pd.Categorical(["A", "A", "B", "A", "B", "B"]),
        "Units": pd.array([2, 1, 3, -1, 4, 2], dtype="int32"),
        "Unit Price": [10.0, 5.0, 2.0, 5.0, 1.5, 3.0],
        "Customer": pd.Categorical(["c1", "c2", None, "c2", "c3", "c1"]),
        "Promo": pd.array([0, 1, 0, 0, 1, 1], dtype="int8"),
        "Channel": pd.Categorical(["store", "online", "store", "store", "store", "online"]),
    })


def _typed_config(**options: object) -> DataConfig:
    return _config({"path": "sales.parquet"},
                   columns={"promo": "Promo", "channel": "Channel"}, **options)


def test_categorical_columns_give_the_sales_of_text_columns(
    caplog: pytest.LogCaptureFixture,
) -> None:
    frame = _category_frame()
    text = ["Store", "Category", "Customer", "Channel"]
    with caplog.at_level(logging.INFO, logger="features.sources"):
        sales = standardize(frame, _typed_config()).sales
    assert "6 of 6 rows kept as sales lines, 3 series" in caplog.text  # S1/A, S2/B, S1/B
    expected = standardize(frame.astype({c: "str" for c in text}), _typed_config()).sales
    renamed = ["Store", "Category", "customer_id", "channel"]
    assert all(isinstance(sales[c].dtype, pd.CategoricalDtype) for c in renamed)
    assert sales["Store"].cat.categories.tolist() == ["S1", "S2"]  # 'S1 ' trimmed, S9 unused
    pd.testing.assert_frame_equal(sales.astype({c: "str" for c in renamed}), expected)
    assert sales["date"].is_monotonic_increasing
    assert sales["y"].tolist() == [5.0, -5.0, 6.0, 6.0, 20.0, 6.0]  # ties in file order


def test_top_series_pools_categorical_keys_into_other() -> None:
    # revenue: S1/A 20 + 5 - 5 = 20, S1/B 6, S2/B 6 + 6 = 12
    raw = standardize(_category_frame(), _typed_config(top_series=2))
    sales = raw.sales
    assert set(map(tuple, sales[["Store", "Category"]].drop_duplicates().to_numpy())) == {
        ("S1", "A"), ("S2", "B"), (OTHER, OTHER)}
    assert sorted(sales["Category"].cat.categories) == sorted(["A", "B", OTHER])
    assert sales["y"].sum() == pytest.approx(38.0)


def test_filters_on_a_categorical_column() -> None:
    sales = standardize(_category_frame(), _typed_config(filters={"Store": ["S2"]})).sales
    assert sales["Store"].tolist() == ["S2", "S2"] and sales["y"].sum() == pytest.approx(12.0)
    with pytest.raises(DataValidationError) as info:
        standardize(_category_frame(), _typed_config(filters={"Store": ["S3"]}))
    assert info.value.rule == "not_empty"
    assert "column 'Store' has e.g. 'S1', 'S2'" in str(info.value)


# --- customers and calendar ----------------------------------------------------------


def test_customers_are_standardised_and_ids_must_be_unique(tmp_path: Path) -> None:
    crm = tmp_path / "crm.csv"
    crm.write_text("Customer,Segment,Since\nc1,gold,2020-01-01\nc2,silver,\nc3,gold,2020-03-01\n")
    config = _config(_csv(tmp_path, GOOD_LINES), customers={"path": str(crm)}, customer_columns={
        "customer_id": "Customer", "segment": "Segment", "region": None, "signup_date": "Since"})
    customers = load_raw(config).customers
    assert customers is not None
    assert customers["customer_id"].tolist() == ["c1", "c2", "c3"]
    assert customers["signup_date"].isna().tolist() == [False, True, False]
    crm.write_text("Customer,Segment,Since\nc1,gold,\nc2,silver,\nc1,bronze,\n")
    with pytest.raises(DataValidationError) as info:
        load_raw(config)
    assert info.value.rule == "unique_rows" and info.value.rows == (2, 4)
    assert "crm.csv" in str(info.value)


def test_calendar_rows_must_be_unique_per_date_and_keys(tmp_path: Path) -> None:
    cal = tmp_path / "calendar.csv"
    cal.write_text("day,Category,holiday,promo\n2021-01-04,A,0,1\n2021-01-04,B,yes,0\n")
    config = _config(_csv(tmp_path, GOOD_LINES), calendar={"path": str(cal)},
                     calendar_columns={"date": "day", "promo": "promo"})
    calendar = load_raw(config).calendar
    assert calendar is not None
    assert list(calendar.columns) == ["date", "Category", "holiday", "promo"]
    assert calendar["holiday"].tolist() == [0.0, 1.0]
    cal.write_text("day,Category,holiday,promo\n"
                   "2021-01-04,A,0,0\n2021-01-11,A,0,0\n2021-01-04,A,1,0\n")
    with pytest.raises(DataValidationError) as info:
        load_raw(config)
    assert info.value.rule == "unique_rows" and info.value.rows == (2, 4)


def test_standardize_is_pure_and_uses_given_labels() -> None:
    sales = _typed_frame().assign(Units=["2", "x", "1"])
    config = _config({"path": "warehouse/sales.parquet"})
    with pytest.raises(DataValidationError) as info:
        standardize(sales, config, labels={"sales": "export of 2021-02-01"})
    assert str(info.value).startswith("export of 2021-02-01: column 'Units'")
    assert info.value.rows == (2,)


# --- the real Online Retail slice ----------------------------------------------------


@pytest.fixture(scope="module")
def retail_slice() -> pd.DataFrame:
    return pd.read_csv(SLICE, dtype={"CustomerID": "str"})


def _online_retail_config(**changes: object) -> DataConfig:
    data = load_spec(ONLINE_RETAIL_SPEC).data
    return data.model_copy(update={"sales": SourceConfig(path=str(SLICE)), **changes})


def test_online_retail_slice_loads_with_the_spec_mapping(retail_slice: pd.DataFrame) -> None:
    raw = load_raw(_online_retail_config())
    sold = retail_slice[retail_slice["UnitPrice"] > 0]
    assert len(raw.sales) == len(sold) < len(retail_slice)  # zero-price lines dropped
    assert raw.keys == ("Country",)
    expected = (sold["Quantity"] * sold["UnitPrice"]).groupby(sold["Country"]).sum()
    got = raw.sales.groupby("Country")["y"].sum()
    pd.testing.assert_series_equal(got.sort_index(), expected.sort_index(), check_names=False)
    cancelled = sold["InvoiceNo"].str.startswith("C")
    assert cancelled.sum() > 0 and (raw.sales["y"] < 0).sum() == cancelled.sum()
    assert raw.sales["customer_id"].isna().sum() == sold["CustomerID"].isna().sum() > 0
    assert set(raw.sales["customer_id"].dropna()) == set(sold["CustomerID"].dropna())
    assert raw.sales["date"].min() >= pd.Timestamp("2011-01-01")
    assert raw.sales["date"].max() < pd.Timestamp("2011-05-01")
    assert raw.sales["date"].dt.month.nunique() == 4  # month-first dates inferred right


def test_online_retail_slice_top_series_and_returns_drop(retail_slice: pd.DataFrame) -> None:
    raw = load_raw(_online_retail_config(top_series=2, returns="drop"))
    sold = retail_slice[(retail_slice["UnitPrice"] > 0) & (retail_slice["Quantity"] >= 0)]
    revenue = (sold["Quantity"] * sold["UnitPrice"]).groupby(sold["Country"]).sum()
    top_two = set(revenue.nlargest(2).index)
    assert set(raw.sales["Country"]) == top_two | {OTHER}
    assert len(raw.sales) == len(sold) and (raw.sales["y"] >= 0).all()


def test_raw_until_keeps_sales_up_to_the_date_and_the_whole_calendar() -> None:
    import pandas as pd

    from features.raw import RawData

    sales = pd.DataFrame({"date": pd.to_datetime(["2024-01-01", "2024-01-08", "2024-01-15"]),
                          "store": ["a", "a", "a"], "y": [1.0, 2.0, 3.0]})
    calendar = pd.DataFrame({"date": pd.to_datetime(["2024-01-01", "2024-02-01"]),
                             "promo": [0, 1]})
    raw = RawData(sales=sales, keys=("store",), calendar=calendar)
    cut = raw.until("2024-01-08")
    assert cut.sales["y"].tolist() == [1.0, 2.0]
    assert len(cut.calendar) == 2  # planned future dates are still known
    assert len(raw.sales) == 3  # the original is untouched


def test_raw_until_a_day_keeps_that_whole_day_and_an_instant_cuts_at_it() -> None:
    import pandas as pd

    from features.raw import RawData

    times = ["2011-11-06 08:00", "2011-11-06 17:30", "2011-11-07 00:00"]
    sales = pd.DataFrame({"date": pd.to_datetime(times), "store": "a", "y": [1.0, 2.0, 3.0]})
    raw = RawData(sales=sales, keys=("store",))
    assert raw.until("2011-11-06").sales["y"].tolist() == [1.0, 2.0]  # the Sunday's orders
    assert raw.until("2011-11-06 12:00").sales["y"].tolist() == [1.0]


def test_repeated_lines_are_judged_on_every_column_of_the_file(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Two lines equal in the mapped columns but not in an unmapped one (the item of an
    invoice) are two purchases: no warning; an exact repeat of a whole line is one."""
    header = "Order Date,Store,Category,Units,Unit Price,Customer,Item\n"
    lines = ["2021-01-04,S1,A,2,10.0,c1,i1", "2021-01-04,S1,A,2,10.0,c1,i2",
             "2021-01-05,S1,B,1,5.0,c2,i3"]
    with caplog.at_level(logging.WARNING):
        load_raw(_config(_csv(tmp_path, lines, header=header)))
    assert "repeat" not in caplog.text
    with caplog.at_level(logging.WARNING):
        load_raw(_config(_csv(tmp_path, [*lines, lines[0]], header=header)))
    assert "1 line repeats an earlier line in every column (e.g. rows 5" in caplog.text
