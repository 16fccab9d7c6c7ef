"""Warehouse pushdown (features.pushdown): the training set DuckDB aggregates equals the
in-memory one, and bad input gets the in-memory path's error, word for word.

Data: the seeded simulator, written as one Parquet file (read into memory by pandas) and
as a folder of parts (aggregated by DuckDB where it is).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from features.build import build_training_set
from features.config import DataConfig, FeatureConfig, SimulatorConfig
from features.pushdown import WarehouseRawData
from features.raw import RawData
from features.simulator import simulate_retail
from features.sources import load_raw
from features.training_set import TrainingSet
from features.validation import DataValidationError

pytest.importorskip("duckdb")

SIMULATOR = SimulatorConfig(seed=11, stores=3, categories=2, customers=150, periods=110)
PARTS = 3


@pytest.fixture(scope="module")
def retail(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    data = simulate_retail(SIMULATOR)
    folder = tmp_path_factory.mktemp("retail")
    data.customers.to_parquet(folder / "customers.parquet", index=False)
    data.calendar.to_parquet(folder / "calendar.parquet", index=False)
    return {"folder": folder, "sales": data.sales}


def _write(sales: pd.DataFrame, folder: Path) -> tuple[Path, Path]:
    """``sales`` as one file and as a folder of parts (the same rows in the same order)."""
    folder.mkdir(parents=True, exist_ok=True)
    single = folder / "sales.parquet"
    sales.to_parquet(single, index=False)
    parts = folder / "parts"
    parts.mkdir(exist_ok=True)
    for i, rows in enumerate(np.array_split(np.arange(len(sales)), PARTS)):
        sales.iloc[rows].to_parquet(parts / f"part-{i}.parquet", index=False)
    return single, parts


def _config(sales: Path | dict[str, Any], folder: Path, **options: Any) -> DataConfig:
    source = sales if isinstance(sales, dict) else {"path": str(sales)}
    return DataConfig.model_validate({
        "sales": source, "customers": {"path": str(folder / "customers.parquet")},
        "calendar": {"path": str(folder / "calendar.parquet")}, **options})


def _assert_same(memory: TrainingSet, warehouse: TrainingSet) -> None:
    """Same rows, columns and values (float sums may differ in the last bits)."""
    close = {"check_exact": False, "rtol": 1e-9, "atol": 1e-9}
    pd.testing.assert_frame_equal(memory.panel, warehouse.panel, **close)
    pd.testing.assert_frame_equal(memory.base, warehouse.base, **close)
    pd.testing.assert_frame_equal(memory.series_attributes, warehouse.series_attributes,
                                  **close)
    meta = [{k: v for k, v in ts.metadata.to_dict().items() if k != "data_digest"}
            for ts in (memory, warehouse)]
    assert meta[0] == meta[1]


def _both(retail: dict[str, Any], tmp_path: Path, sales: pd.DataFrame | None = None,
          **options: Any) -> tuple[DataConfig, DataConfig]:
    """Configs of the same lines: one file (pandas) and a folder of parts (DuckDB)."""
    single, parts = _write(retail["sales"] if sales is None else sales, tmp_path)
    return (_config(single, retail["folder"], **options),
            _config(parts, retail["folder"], **options))


# --- the same training set --------------------------------------------------------


def _messy(sales: pd.DataFrame) -> pd.DataFrame:
    """Text as exports have it: padded keys and ids, missing and empty customer ids."""
    out = sales.astype({"store": "str", "customer_id": "str"})
    out.loc[out.index % 7 == 0, "store"] = " " + out["store"] + " "
    out.loc[out.index % 11 == 0, "customer_id"] = out["customer_id"] + "  "
    out.loc[out.index % 13 == 0, "customer_id"] = None
    out.loc[out.index % 17 == 0, "customer_id"] = " "
    return out


CASES = {
    "weekly": ({}, "W", 8, None),
    "monthly": ({}, "M", 2, None),
    "daily": ({}, "D", 7, None),
    "returns_dropped": ({"returns": "drop"}, "W", 4, None),
    "top_series": ({"top_series": 3}, "W", 4, None),
    "units": ({"target": "quantity"}, "W", 4, None),
    "filtered": ({"filters": {"category": ["grocery"]}}, "W", 4, None),
    "messy_text": ({}, "W", 4, _messy),
}


@pytest.mark.parametrize("case", CASES)
def test_pushdown_training_set_equals_in_memory(retail: dict[str, Any], tmp_path: Path,
                                                case: str) -> None:
    options, freq, horizon, change = CASES[case]
    sales = change(retail["sales"]) if change else None
    memory, warehouse = _both(retail, tmp_path, sales, **options)
    raw = load_raw(warehouse)
    assert isinstance(raw, WarehouseRawData)
    _assert_same(build_training_set(load_raw(memory), FeatureConfig(), freq, horizon),
                 build_training_set(raw, FeatureConfig(), freq, horizon))


@pytest.mark.parametrize("end", ["2023-06-14", "2023-06-14 12:00"])
def test_until_cuts_in_the_warehouse(retail: dict[str, Any], tmp_path: Path, end: str) -> None:
    memory, warehouse = _both(retail, tmp_path)
    _assert_same(build_training_set(load_raw(memory).until(end), FeatureConfig(), "W", 4),
                 build_training_set(load_raw(warehouse).until(end), FeatureConfig(), "W", 4))


def test_without_customer_features_and_crm(retail: dict[str, Any], tmp_path: Path) -> None:
    single, parts = _write(retail["sales"], tmp_path)
    features = FeatureConfig(customers=False, holidays=False)
    memory, warehouse = (DataConfig.model_validate({"sales": {"path": str(path)}})
                         for path in (single, parts))
    _assert_same(build_training_set(load_raw(memory), features, "W", 4),
                 build_training_set(load_raw(warehouse), features, "W", 4))


def test_duckdb_database_is_read_in_place(retail: dict[str, Any], tmp_path: Path) -> None:
    import duckdb

    database = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(database)) as connection:
        connection.register("lines", retail["sales"])
        connection.execute("CREATE TABLE sales AS SELECT * FROM lines")
    url = f"duckdb:///{database}"
    memory = _config({"url": url, "table": "sales", "engine": "pandas"}, retail["folder"])
    warehouse = _config({"url": url, "query": "SELECT * FROM sales"}, retail["folder"])
    raw = load_raw(warehouse)
    assert isinstance(raw, WarehouseRawData)
    _assert_same(build_training_set(load_raw(memory), FeatureConfig(), "W", 4),
                 build_training_set(raw, FeatureConfig(), "W", 4))


def test_digest_is_the_same_run_to_run(retail: dict[str, Any], tmp_path: Path) -> None:
    _, warehouse = _both(retail, tmp_path)
    digests = {build_training_set(load_raw(warehouse), FeatureConfig(), "W", 4)
               .metadata.data_digest for _ in range(2)}
    assert len(digests) == 1


def test_engine_choice(retail: dict[str, Any], tmp_path: Path) -> None:
    single, parts = _write(retail["sales"], tmp_path)
    assert type(load_raw(_config(single, retail["folder"]))) is RawData
    assert type(load_raw(_config(parts, retail["folder"]))) is WarehouseRawData
    pushed = _config({"path": str(single), "engine": "duckdb"}, retail["folder"])
    assert type(load_raw(pushed)) is WarehouseRawData
    in_memory = _config({"path": str(parts), "engine": "pandas"}, retail["folder"])
    assert type(load_raw(in_memory)) is RawData  # pandas reads the folder whole
    with pytest.raises(ValueError, match="engine 'duckdb' reads Parquet"):
        DataConfig.model_validate({"sales": {"path": "sales.csv", "engine": "duckdb"}})


def test_auto_engine_without_duckdb_reads_into_memory(
        retail: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import features.pushdown_sql

    def missing() -> None:
        raise ImportError("no duckdb")

    _, parts = _write(retail["sales"], tmp_path)
    monkeypatch.setattr(features.pushdown_sql, "import_duckdb", missing)
    assert type(load_raw(_config(parts, retail["folder"]))) is RawData
    with pytest.raises(ImportError):
        load_raw(_config({"path": str(parts), "engine": "duckdb"}, retail["folder"]))


def test_text_date_without_format_falls_back(retail: dict[str, Any], tmp_path: Path,
                                             caplog: pytest.LogCaptureFixture) -> None:
    sales = retail["sales"].assign(date=retail["sales"]["date"].dt.strftime("%Y-%m-%d"))
    path = tmp_path / "sales.parquet"
    sales.to_parquet(path, index=False)
    with caplog.at_level(logging.WARNING, logger="features.sources"):
        raw = load_raw(_config({"path": str(path), "engine": "duckdb"}, retail["folder"]))
    assert type(raw) is RawData
    assert "pandas guesses the format" in caplog.text


# --- the same errors --------------------------------------------------------------


def _with(sales: pd.DataFrame, column: str, rows: list[int], value: object) -> pd.DataFrame:
    """``sales`` with ``value`` in ``column`` at ``rows`` (0-based)."""
    out = sales.copy()
    out.loc[rows, column] = value
    return out


def _text_dates(sales: pd.DataFrame) -> pd.DataFrame:
    return sales.assign(date=sales["date"].dt.strftime("%d/%m/%Y"))


BAD = {
    "unparseable_text_date": (lambda s: _with(_text_dates(s), "date", [5, 4000], "31/02/2023"),
                              {"sales_columns": {"date_format": "%d/%m/%Y"}}),
    "missing_date": (lambda s: _with(s, "date", [3, 9], pd.NaT), {}),
    "date_out_of_range": (lambda s: _with(s.astype({"date": "datetime64[us]"}), "date", [12],
                                          pd.Timestamp("2999-01-04")), {}),
    "huge_price": (lambda s: _with(s, "unit_price", [10, 11], 3e15), {}),
    "empty_price": (lambda s: _with(s, "unit_price", [2, 7, 5000], np.nan), {}),
    "infinite_quantity": (lambda s: _with(s.astype({"quantity": "float64"}), "quantity", [8],
                                          np.inf), {}),
    "empty_key": (lambda s: _with(s.astype({"store": "str"}), "store", [4, 6], "  "), {}),
    "bad_flag": (lambda s: _with(s.astype({"promo": "str"}), "promo", [1, 2, 3], "maybe"), {}),
    "missing_column": (lambda s: s.drop(columns="unit_price"), {}),
    "misspelt_mapping": (lambda s: s, {"sales_columns": {"quantity": "qty"}}),
    "filters_keep_nothing": (lambda s: s, {"filters": {"store": ["S99"]}}),
    "no_sales_left": (lambda s: s.assign(unit_price=0.0), {}),
    "empty_table": (lambda s: s.iloc[:0], {}),
    "dated_in_the_future": (lambda s: _with(s.astype({"date": "datetime64[us]"}), "date",
                                            [12, 40], pd.Timestamp("2030-01-07")), {}),
    "all_zero": (lambda s: s.assign(quantity=0), {}),
}


@pytest.mark.parametrize("case", BAD)
def test_bad_input_gets_the_in_memory_error(retail: dict[str, Any], tmp_path: Path,
                                            case: str) -> None:
    change, options = BAD[case]
    path = tmp_path / "sales.parquet"
    change(retail["sales"]).to_parquet(path, index=False)
    errors = []
    for engine in ("pandas", "duckdb"):
        with pytest.raises(DataValidationError) as info:
            load_raw(_config({"path": str(path), "engine": engine}, retail["folder"],
                             **options))
        errors.append(str(info.value))
    assert errors[0] == errors[1]


def test_error_rows_count_across_the_parts(retail: dict[str, Any], tmp_path: Path) -> None:
    """Row numbers are data rows across the files in name order, as one file has them."""
    last_part_row = len(retail["sales"]) - 3
    sales = _with(retail["sales"], "unit_price", [last_part_row], -np.inf)
    single, parts = _write(sales, tmp_path)
    found = []
    for path in (single, parts):
        with pytest.raises(DataValidationError) as info:
            load_raw(_config(path, retail["folder"]))
        err = info.value
        found.append((err.rule, err.column, err.rows, err.values, err.problem))
    assert found[0] == found[1]
    assert found[1][2] == (last_part_row + 1,)


def test_negative_quantities_are_handled_alike(retail: dict[str, Any], tmp_path: Path,
                                               caplog: pytest.LogCaptureFixture) -> None:
    """A negative quantity is a return (not an error): dropped with the same logged count
    and example rows under ``returns: drop``, netted otherwise (the equality tests)."""
    single, parts = _write(retail["sales"], tmp_path)
    logged = []
    for path in (single, parts):
        caplog.clear()
        with caplog.at_level(logging.INFO):
            load_raw(_config(path, retail["folder"], returns="drop"))
        logged.append([r.getMessage().split(": ", 1)[1] for r in caplog.records
                       if "rule: returns" in r.getMessage()])
    assert logged[0] == logged[1] and len(logged[0]) == 1
    assert "with a negative quantity" in logged[0][0]
