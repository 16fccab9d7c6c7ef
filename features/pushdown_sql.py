"""The SQL side of the warehouse pushdown: a sales source as one DuckDB view of its lines.

:func:`open_source` opens an in-process DuckDB connection on the sales source — Parquet
files (a file, a folder of parts or a glob, read in file-name order) or a table or query of
a DuckDB database — and :class:`LineView` defines the view ``sales_lines`` over it: one row
per line that passes the spec's filters, the export's own columns plus the logical ones
``features.sources`` would compute, each as a SQL expression of the mapped column:

* ``_sc_time`` (the date as DATE / TIMESTAMP: a text date through ``strptime`` with the
  spec's ``date_format``), ``_sc_day`` (days since 1970-01-01, NULL when unparseable);
* ``_sc_k0``, ``_sc_k1``, ... the series keys as stored, ``_sc_key_hash`` one hash of them;
* ``_sc_target``, ``_sc_quantity``, ``_sc_price`` as DOUBLE (NULL when not a number),
  ``_sc_y`` and ``_sc_revenue`` from them as :func:`features.sources._values` does;
* ``_sc_promo`` (0/1; raw text for a text flag column, mapped per distinct value),
  ``_sc_customer`` (the id as stored).

Text cells (keys, ids, text flags) are *not* cleaned line by line — trimming 100 million
strings costs more than the whole aggregation. The passes group by the stored values and
pandas cleans each distinct value with the same :func:`features.validation.as_text`.
Filters compare the hash of the stored value with the hashes of the allowed stored values,
which makes every query's WHERE clause cheap and needs no registered table.

Row numbers (error examples only) are those a person sees: the 1-based data row across the
Parquet files in name order (what ``pandas.read_parquet`` of the folder gives), or the row
of the table / query result.
"""

from __future__ import annotations

import glob
import logging
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import pandas as pd

from features.config import DataConfig, SourceConfig
from features.validation import DataValidationError

if TYPE_CHECKING:
    import duckdb

log = logging.getLogger(__name__)

MEMORY_LIMIT = "2GB"  # DuckDB's buffer pool; it spills to a temporary folder beyond it
DATABASE = "warehouse"  # the alias of an attached DuckDB database
VIEW = "memory.main.sales_lines"
NUMERIC_TYPES = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT",
                 "USMALLINT", "UINTEGER", "UBIGINT", "UHUGEINT", "FLOAT", "DOUBLE")
TIME_TYPES = ("DATE", "TIMESTAMP", "TIMESTAMP_NS", "TIMESTAMP_MS", "TIMESTAMP_S")


class PushdownUnsupported(Exception):
    """The source or a column cannot be read in the warehouse the way pandas reads it."""


def quote(name: str) -> str:
    """A SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def literal(text: str) -> str:
    """A SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


# --- the source ----------------------------------------------------------------------


@dataclass(frozen=True)
class SalesSource:
    """Where the lines are: Parquet files (in order, with their row counts) or a DuckDB
    database's table or query. Picklable: connections are opened from it when needed."""

    label: str
    files: tuple[str, ...] = ()
    file_rows: tuple[int, ...] = ()
    database: str | None = None
    table: str | None = None
    query: str | None = None

    def sql(self, numbered: bool = False) -> str:
        """The source as a FROM item; ``numbered`` adds ``_row`` (the row a person sees)."""
        if self.files:
            return self._parquet_sql(numbered)
        inner = f"({self.query})" if self.query else quote_table(self.table or "")
        if not numbered:
            return f"(SELECT * FROM {inner})"
        return f"(SELECT row_number() OVER () AS _row, * FROM {inner})"

    def _parquet_sql(self, numbered: bool) -> str:
        files = "[" + ", ".join(literal(f) for f in self.files) + "]"
        if not numbered:
            return f"read_parquet({files})"
        offsets, total = [], 0
        for rows in self.file_rows:
            offsets.append(total)
            total += rows
        offset = f"{offsets}[list_position({files}, filename)]"
        return (f"(SELECT {offset} + file_row_number + 1 AS _row, * EXCLUDE (filename, "
                f"file_row_number) FROM read_parquet({files}, filename = true, "
                f"file_row_number = true))")


def quote_table(name: str) -> str:
    """A table name, optionally schema-qualified ('sales' or 'raw.sales')."""
    return ".".join(quote(part) for part in name.split("."))


def sales_source(source: SourceConfig) -> SalesSource:
    """The :class:`SalesSource` of a spec's source, its Parquet files found and counted."""
    if source.url:
        database = duckdb_database(source.url)
        if database is None:
            raise PushdownUnsupported(f"{source.url!r} is not a duckdb:/// URL")
        if not Path(database).is_file():
            raise DataValidationError(source.label, "file_exists",
                                      f"DuckDB database not found: {database}")
        return SalesSource(source.label, database=database, table=source.table,
                           query=source.query)
    files = parquet_files(source.path or "")
    if not files:
        path = Path(source.path or "")
        where = "" if path.is_absolute() else f" (looked for {path.resolve()})"
        raise DataValidationError(source.label, "file_exists",
                                  f"no Parquet file found{where}")
    return SalesSource(source.label, files=tuple(files), file_rows=tuple(_row_counts(files)))


def duckdb_database(url: str) -> str | None:
    """The database file of a ``duckdb:///path`` URL (None for another URL)."""
    prefix = "duckdb:///"
    return url[len(prefix):] if url.startswith(prefix) else None


def parquet_files(path: str) -> list[str]:
    """A Parquet file, the ``*.parquet`` / ``*.pq`` files under a folder, or a glob's
    matches; sorted by name (the order of the rows)."""
    if any(char in path for char in "*?["):
        return sorted(glob.glob(path, recursive=True))
    where = Path(path)
    if where.is_dir():
        found = [p for p in where.rglob("*") if p.suffix.lower() in {".parquet", ".pq"}]
        return sorted(str(p) for p in found if p.is_file())
    return [path] if where.is_file() else []


def _row_counts(files: Sequence[str]) -> list[int]:
    """Rows per Parquet file, from the footers (no data read)."""
    import pyarrow.parquet as pq

    return [pq.ParquetFile(path).metadata.num_rows for path in files]


# --- the connection ------------------------------------------------------------------


@dataclass
class Warehouse:
    """An open DuckDB connection on a :class:`SalesSource` (close it, or use ``with``)."""

    source: SalesSource
    connection: duckdb.DuckDBPyConnection
    spill: str = field(default_factory=lambda: tempfile.mkdtemp(prefix="salescast-duckdb-"))

    def __enter__(self) -> Warehouse:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.connection.close()
        shutil.rmtree(self.spill, ignore_errors=True)

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """Another connection to the same DuckDB (for a second thread)."""
        cursor = self.connection.cursor()
        if self.source.database:
            cursor.execute(f"USE {DATABASE}")
        return cursor

    def frame(self, sql: str) -> pd.DataFrame:
        return self.connection.execute(sql).df()

    def scalar(self, sql: str) -> object:
        row = self.connection.execute(sql).fetchone()
        return row[0] if row else None


def open_source(source: SalesSource) -> Warehouse:
    """An in-process DuckDB on the source (errors reading it: ``readable_format``)."""
    duckdb = import_duckdb()
    connection = duckdb.connect()
    warehouse = Warehouse(source, connection)
    connection.execute(f"SET memory_limit = {literal(MEMORY_LIMIT)}")
    connection.execute(f"SET temp_directory = {literal(warehouse.spill)}")
    try:
        if source.database:
            connection.execute(f"ATTACH {literal(source.database)} AS {DATABASE} (READ_ONLY)")
            connection.execute(f"USE {DATABASE}")
        connection.execute(f"DESCRIBE SELECT * FROM {source.sql()}")
    except duckdb.Error as exc:
        warehouse.close()
        raise DataValidationError(source.label, "readable_format",
                                  f"cannot be read by DuckDB: {exc}") from exc
    return warehouse


def import_duckdb() -> ModuleType:
    """DuckDB, or an ImportError that says how to install it."""
    try:
        import duckdb
    except ImportError as exc:
        raise ImportError("the warehouse pushdown needs DuckDB: pip install "
                          "'salescast[warehouse]'") from exc
    return duckdb


def column_types(warehouse: Warehouse) -> dict[str, str]:
    """Column name -> DuckDB type of the source."""
    described = warehouse.frame(f"DESCRIBE SELECT * FROM {warehouse.source.sql()}")
    return dict(zip(described["column_name"], described["column_type"], strict=True))


# --- the view of the lines -----------------------------------------------------------


@dataclass(frozen=True)
class LineView:
    """How the logical columns of a line are computed from the source's (see module doc).

    ``mapping``: role -> source column, as :func:`features.sources` resolved it;
    ``types``: the source's column types; ``filters``: column -> hashes of the allowed
    stored values.
    """

    mapping: dict[str, str]
    types: dict[str, str]
    keys: tuple[str, ...]
    target: str
    returns: str
    date_format: str | None = None
    filters: dict[str, tuple[int, ...]] = field(default_factory=dict)

    @classmethod
    def of(cls, config: DataConfig, mapping: dict[str, str], types: dict[str, str]
           ) -> LineView:
        columns = config.sales_columns
        view = cls(mapping, types, tuple(columns.keys), config.target, config.returns,
                   columns.date_format)
        for role, column in mapping.items():
            view.check_type(role, types[column])
        return view

    def check_type(self, role: str, kind: str) -> None:
        """Refuse the column types the pandas path would read differently."""
        if role == "date" and kind not in TIME_TYPES and not (
                kind == "VARCHAR" and self.date_format):
            reason = ("a text date without sales_columns.date_format (pandas guesses the "
                      "format)" if kind == "VARCHAR" else f"a date column of type {kind}")
            raise PushdownUnsupported(reason)

    @property
    def text_promo(self) -> bool:
        """A text promotion column: flags are mapped per distinct value, in pandas."""
        return "promo" in self.mapping and self.types[self.mapping["promo"]] == "VARCHAR"

    def has(self, role: str) -> bool:
        return role in self.mapping

    def create(self, warehouse: Warehouse) -> None:
        """Create the view ``sales_lines`` on the warehouse's connection."""
        warehouse.connection.execute(
            f"CREATE OR REPLACE VIEW {VIEW} AS {self.body(warehouse.source.sql())}")

    def body(self, source_sql: str) -> str:
        """The view's SELECT over ``source_sql`` (any FROM item with the raw columns)."""
        inner = ", ".join(["src.*", *self._line_columns()])
        where = " AND ".join(self._filter_conditions()) or "true"
        outer = [f"{self._time_day()} AS _sc_day", *self._value_columns()]
        return (f"SELECT *, {', '.join(outer)} FROM (SELECT {inner} FROM {source_sql} "
                f"AS src WHERE {where})")

    def _line_columns(self) -> list[str]:
        columns = [f"{self._time()} AS _sc_time"]
        keys = [f"src.{quote(key)}" for key in self.keys]
        columns += [f"{key} AS _sc_k{i}" for i, key in enumerate(keys)]
        columns.append(f"hash({', '.join(keys)}) AS _sc_key_hash")
        for role in ("target", "quantity", "price"):
            if self.has(role):
                columns.append(f"{self._number(self.mapping[role])} AS _sc_{role}")
        if self.has("promo"):
            columns.append(f"{self._flag(self.mapping['promo'])} AS _sc_promo")
        if self.has("customer_id"):
            columns.append(f"src.{quote(self.mapping['customer_id'])} AS _sc_customer")
        return columns

    def _time(self) -> str:
        column = f"src.{quote(self.mapping['date'])}"
        if self.types[self.mapping["date"]] == "VARCHAR":
            return f"try_strptime({column}, {literal(self.date_format or '')})"
        return column

    def _time_day(self) -> str:
        if self.types[self.mapping["date"]] == "DATE":
            return "CAST(_sc_time - DATE '1970-01-01' AS INTEGER)"
        return "CAST(CAST(_sc_time AS DATE) - DATE '1970-01-01' AS INTEGER)"

    def _number(self, column: str) -> str:
        kind, cell = self.types[column], f"src.{quote(column)}"
        if kind in NUMERIC_TYPES or kind.startswith("DECIMAL") or kind == "BOOLEAN":
            return f"CAST({cell} AS DOUBLE)"
        if kind == "VARCHAR":
            return f"TRY_CAST({cell} AS DOUBLE)"
        return f"TRY_CAST(CAST({cell} AS VARCHAR) AS DOUBLE)"

    def _flag(self, column: str) -> str:
        """0/1 of a boolean or number (NULL and NaN: 0); a text column as stored."""
        kind, cell = self.types[column], f"src.{quote(column)}"
        if kind == "BOOLEAN":
            return f"CASE WHEN {cell} THEN 1.0 ELSE 0.0 END"
        if kind == "VARCHAR":
            return cell
        number = self._number(column)
        return f"CASE WHEN {number} <> 0 AND NOT isnan({number}) THEN 1.0 ELSE 0.0 END"

    def _value_columns(self) -> list[str]:
        y, revenue = self._values()
        return [f"{y} AS _sc_y"] + ([f"{revenue} AS _sc_revenue"] if revenue else [])

    def _values(self) -> tuple[str, str | None]:
        """y and revenue (None: unknown) as features.sources._values computes them."""
        line = "_sc_quantity * _sc_price" if self.has("quantity") and self.has("price") \
            else None
        if self.has("target"):
            return "_sc_target", "_sc_target" if self.target == "revenue" else line
        return (line if self.target == "revenue" else "_sc_quantity") or "NULL", line

    @property
    def has_revenue(self) -> bool:
        return self._values()[1] is not None

    @property
    def y_is_revenue(self) -> bool:
        return self._values()[0] == self._values()[1]

    def _filter_conditions(self) -> list[str]:
        conditions = []
        for column, hashes in self.filters.items():
            allowed = ", ".join(f"{h}::UBIGINT" for h in hashes) or "NULL"
            conditions.append(f"hash(src.{quote(column)}) IN ({allowed})")
        return conditions

    # --- expressions the passes share ----------------------------------------------

    @property
    def revenue(self) -> str:
        """A line's revenue (y when revenue is unknown): weights, shares, rankings."""
        return "_sc_revenue" if self.has_revenue else "_sc_y"

    def kept(self) -> str:
        """The lines that are sales: price > 0, and not a return under ``returns: drop``."""
        conditions = ["_sc_price > 0"] if self.has("price") else []
        if self.returns == "drop":
            conditions.append(f"{self.returned_value()} >= 0")
        return " AND ".join(conditions) or "true"

    def returned_value(self) -> str:
        return "_sc_quantity" if self.has("quantity") else "_sc_y"

    def period_number(self, freq: str) -> str:
        """A line's period number (features.calendar.period_numbers_of_days) in SQL."""
        if freq == "W":  # Monday-weeks since 1970-01-05
            return "CAST(floor((_sc_day - 4) / 7) AS INTEGER)"
        if freq == "M":
            return "((year(_sc_time) - 1970) * 12 + month(_sc_time) - 1)"
        return "_sc_day"

    def time_literal(self, when: pd.Timestamp) -> str:
        """``when`` as a constant of the date column's type (so row groups are skipped)."""
        kind = self.types[self.mapping["date"]]
        if kind == "DATE":
            return f"CAST({literal(when.date().isoformat())} AS DATE)"
        kind = "TIMESTAMP" if kind == "VARCHAR" else kind
        return f"CAST({literal(when.isoformat(sep=' '))} AS {kind})"
