"""Loaders: read the raw tables (CSV, Parquet, SQL) and standardise them to :class:`RawData`.

I/O lives in :func:`read_table` only; :func:`standardize` is pure (frames in, RawData
out): it maps the export's column names to salescast's logical names (the spec's
``sales_columns``, ``customer_columns``, ``calendar_columns``), validates every rule of
:mod:`features.validation`, and applies the spec's data options.

Decisions about messy sales exports (the UCI Online Retail file has all of them):

* A negative quantity is a return (a cancelled invoice). ``returns: keep`` keeps the
  line, so its negative revenue nets against the sales of its period; ``returns: drop``
  removes those lines and logs how many.
* A line with price <= 0 is not a sale — a free item, a stock write-off ("damaged",
  "lost"), a bad-debt adjustment — so it is dropped, with a logged count and example
  rows. An empty, non-numeric or infinite price, quantity or target is an error.
* A missing customer id is allowed (the line still counts as a sale; customer features
  skip it). A missing series key or date is an error: the line belongs to no series.
* ``filters`` keep the rows whose (raw) column value is listed; they run before the
  other checks, so broken rows of excluded series do not block a run.
* ``top_series: N`` keeps the N key combinations with the most revenue (after returns)
  and pools the others into one series whose key values are all ``'__other__'``.
* Text columns that arrive categorical (the simulator's; Parquet files written by
  pandas) stay categorical, their categories cleaned once each: ten million lines of
  keys and customer ids cost a small integer a line, and no string conversion.

Sales in a Parquet folder or glob or a DuckDB database (``engine: auto``), or any Parquet
source with ``engine: duckdb``, are not read into memory: :func:`load_raw` validates them
in DuckDB and returns a :class:`features.pushdown.WarehouseRawData` (the same rules and
messages; see :mod:`features.pushdown`, which also says what falls back to pandas).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from features.config import DataConfig, SourceConfig, StrictModel
from features.known_future import OTHER, standardize_known_future
from features.pushdown import PushdownUnsupported, WarehouseRawData, load_sales, open_sales
from features.pushdown_sql import duckdb_database, import_duckdb, parquet_files, quote_table
from features.raw import RawData
from features.validation import (
    CSV_ROWS,
    DATA_ROWS,
    DataValidationError,
    as_text,
    check_not_all_zero,
    check_not_future,
    check_unique,
    drop_rows,
    parse_dates,
    parse_flags,
    parse_numbers,
    require_columns,
    require_rows,
    require_values,
    warn_duplicate_lines,
)

log = logging.getLogger(__name__)

SALES_ROLES = ("target", "quantity", "price", "promo", "customer_id", "channel")


# --- reading -------------------------------------------------------------------------


def read_table(source: SourceConfig, text_columns: Sequence[str] = ()) -> pd.DataFrame:
    """One raw table as read from its CSV or Parquet file or SQL table/query.

    ``text_columns`` (ids, series keys) are read from a CSV as text so ids such as
    '007' keep their leading zeros; other CSV columns use pandas' type inference and the
    source's ``csv_options`` (``sep``, ``encoding``, ``decimal``, ``thousands``, ...).
    A missing file, an unreadable format and a table with no rows raise
    :class:`DataValidationError`.
    """
    fmt = source.resolved_format()
    frame = _read_sql(source) if fmt == "sql" else _read_file(source, fmt, text_columns)
    require_rows(frame, source.label)
    return frame


def _read_file(source: SourceConfig, fmt: str, text_columns: Sequence[str]) -> pd.DataFrame:
    path = Path(source.path or "")
    parts = parquet_files(source.path or "") if fmt == "parquet" else []
    if len(parts) > 1 or (parts and not path.is_file()):  # a folder or glob of parts
        return pd.concat([pd.read_parquet(part) for part in parts], ignore_index=True)
    if not path.is_file():
        where = "" if path.is_absolute() else f" (looked for {path.resolve()})"
        raise DataValidationError(source.label, "file_exists", f"file not found{where}")
    try:
        if fmt == "parquet":
            return pd.read_parquet(path)
        options = dict(source.csv_options)
        options.setdefault("dtype", {column: "str" for column in text_columns})
        return pd.read_csv(path, **options)
    except pd.errors.EmptyDataError:
        return pd.DataFrame()
    except (ValueError, OSError, TypeError) as exc:  # ParserError, ArrowInvalid, decoding
        raise DataValidationError(
            source.label, "readable_format", f"cannot be read as {fmt}: {exc}") from exc


def _read_sql(source: SourceConfig) -> pd.DataFrame:
    """A SQL table or query through SQLAlchemy (imported lazily: it is only needed here);
    a duckdb:/// database through DuckDB."""
    import sqlalchemy as sa

    if duckdb_database(source.url or "") is not None:
        return _read_duckdb(source)
    _require_sqlite_file(source)
    try:
        engine = sa.create_engine(source.url or "")
        try:
            with engine.connect() as connection:
                if source.query:
                    return pd.read_sql_query(sa.text(source.query), connection)
                return pd.read_sql_table(source.table or "", connection)
        finally:
            engine.dispose()
    except (sa.exc.SQLAlchemyError, ValueError) as exc:
        raise DataValidationError(
            source.label, "readable_format", f"cannot be read from SQL: {exc}") from exc


def _read_duckdb(source: SourceConfig) -> pd.DataFrame:
    """A table or query of a DuckDB database file, read whole."""
    duckdb = import_duckdb()
    database = duckdb_database(source.url or "") or ""
    if not Path(database).is_file():
        raise DataValidationError(
            source.label, "file_exists", f"DuckDB database not found: {database}")
    try:
        with duckdb.connect(database, read_only=True) as connection:
            query = source.query or f"SELECT * FROM {quote_table(source.table or '')}"
            return connection.execute(query).df()
    except duckdb.Error as exc:
        raise DataValidationError(
            source.label, "readable_format", f"cannot be read by DuckDB: {exc}") from exc


def _require_sqlite_file(source: SourceConfig) -> None:
    """SQLite would silently create a missing database file: say it is missing instead."""
    from sqlalchemy.engine import make_url

    url = make_url(source.url or "")
    database = url.database or ""
    is_file_db = url.get_backend_name() == "sqlite" and database not in {"", ":memory:"}
    if is_file_db and not Path(database).is_file():
        raise DataValidationError(
            source.label, "file_exists", f"SQLite database not found: {database}")


def load_raw(config: DataConfig) -> RawData:
    """Read the spec's sales (and customers, calendar when configured) and standardise.

    Sales the spec pushes down (``SourceConfig.pushdown``) stay where they are: the
    result is a :class:`~features.pushdown.WarehouseRawData`. A column DuckDB cannot read
    as pandas does sends them to pandas, with a warning saying why."""
    if config.sales.pushdown():
        try:
            return _load_in_warehouse(config)
        except PushdownUnsupported as exc:
            log.warning("%s: not aggregated in DuckDB (%s): the lines are read into memory",
                        config.sales.label, exc)
        except ImportError:
            if config.sales.engine == "duckdb":
                raise
            log.warning("%s: DuckDB is not installed (pip install 'salescast[warehouse]'): "
                        "the lines are read into memory", config.sales.label)
    columns = config.sales_columns
    ids = [*columns.keys, *config.filters, *([columns.customer_id] if columns.customer_id else [])]
    sales = read_table(config.sales, text_columns=ids)
    return standardize(sales, config, **_other_tables(config))


def _other_tables(config: DataConfig) -> dict[str, pd.DataFrame | None]:
    """The customers, calendar and known-future tables as read (None: not configured)."""
    tables: dict[str, pd.DataFrame | None] = {
        "customers": None, "calendar": None, "known_future": None}
    if config.customers is not None:
        customer_id = config.customer_columns.customer_id
        tables["customers"] = read_table(config.customers, text_columns=[customer_id])
    if config.calendar is not None:
        tables["calendar"] = read_table(config.calendar, text_columns=config.sales_columns.keys)
    if config.known_future is not None and config.known_future_columns is not None:
        tables["known_future"] = read_table(config.known_future,
                                            text_columns=config.known_future_columns.keys)
    return tables


def _load_in_warehouse(config: DataConfig) -> RawData:
    """Sales validated and aggregated to daily cells in DuckDB (features.pushdown); the
    other tables read and standardised as usual."""
    label = config.sales.label
    warehouse, types = open_sales(config.sales)
    with warehouse:
        columns = pd.DataFrame(columns=list(types))
        mapping = _sales_mapping(columns, config, label)
        if config.filters:
            require_columns(columns, {f"filter {c}": c for c in config.filters}, label)
        sales = load_sales(warehouse, config, mapping, types)
    tables = _other_tables(config)
    labels = _default_labels(config, tables)
    keys = list(config.sales_columns.keys)
    raw = WarehouseRawData(_no_lines(mapping, keys, config), tuple(keys), labels=labels,
                           gaps=config.gaps, gap_periods=config.gap_periods, warehouse=sales)
    return _with_other_tables(raw, config, tables, sales.series_keys[keys])


def _no_lines(mapping: dict[str, str], keys: list[str], config: DataConfig) -> pd.DataFrame:
    """The standard sales columns without lines (those stay in the warehouse)."""
    numbers = {role: pd.Series(dtype="float64") for role in ("target", "quantity", "price")
               if role in mapping}
    frame = pd.DataFrame({"date": pd.Series(dtype="datetime64[ns]"),
                          **{key: pd.Series(dtype="str") for key in keys},
                          **_values(numbers, config)})
    for role, dtype in (("promo", "float64"), ("customer_id", "str"), ("channel", "str")):
        if role in mapping:
            frame[role] = pd.Series(dtype=dtype)
    return frame


# --- standardising -------------------------------------------------------------------


def standardize(
    sales: pd.DataFrame,
    config: DataConfig,
    customers: pd.DataFrame | None = None,
    calendar: pd.DataFrame | None = None,
    labels: dict[str, str] | None = None,
    known_future: pd.DataFrame | None = None,
) -> RawData:
    """Map, validate and clean raw frames into the :class:`RawData` contract (no I/O).

    ``labels`` name the tables in messages (default: the configured path or SQL table).
    Row numbers in messages follow the configured source format: spreadsheet rows for
    CSV (header = row 1), 1-based data rows for Parquet and SQL. ``known_future`` is the
    table of ``data.known_future`` (:mod:`features.known_future`).
    """
    tables = {"customers": customers, "calendar": calendar, "known_future": known_future}
    labels = {**_default_labels(config, tables), **(labels or {})}
    raw_sales = _standard_sales(sales, config, labels["sales"])
    keys = list(config.sales_columns.keys)
    raw = RawData(raw_sales, tuple(keys), labels=labels, gaps=config.gaps,
                  gap_periods=config.gap_periods)
    return _with_other_tables(raw, config, tables, raw_sales[keys])


def _with_other_tables(raw: RawData, config: DataConfig,
                       tables: dict[str, pd.DataFrame | None], key_values: pd.DataFrame
                       ) -> RawData:
    """``raw`` with the customers, calendar and known-future tables standardised;
    ``key_values``: the sales' series keys (a known-future key must be one of them)."""
    labels = raw.labels
    customers, calendar, known = (tables.get(name) for name in
                                  ("customers", "calendar", "known_future"))
    if customers is not None:
        customers = _standard_customers(customers, config, labels["customers"])
    if calendar is not None:
        calendar = _standard_calendar(calendar, config, labels["calendar"])
    if known is not None:
        known = _standard_known_future(known, config, key_values, labels["known_future"])
    return replace(raw, customers=customers, calendar=calendar, known_future=known,
                   known_future_columns=config.known_future_columns if known is not None
                   else None)


def _default_labels(config: DataConfig, tables: dict[str, pd.DataFrame | None]
                    ) -> dict[str, str]:
    labels = {"sales": config.sales.label}
    for name, frame in tables.items():
        source = getattr(config, name)
        if frame is not None:
            labels[name] = source.label if source is not None else name
    return labels


def _row_note(source: SourceConfig | None) -> str:
    return CSV_ROWS if source is not None and source.resolved_format() == "csv" else DATA_ROWS


def _numbered(frame: pd.DataFrame, note: str) -> pd.DataFrame:
    """The frame indexed by the row number a person sees in the source (see ``note``)."""
    first = 2 if note == CSV_ROWS else 1
    return frame.set_axis(pd.RangeIndex(first, first + len(frame)), axis=0)


def _resolve_columns(
    columns: StrictModel, frame: pd.DataFrame, needed: Sequence[str],
    optional: Sequence[str], label: str, *, also: dict[str, str] | None = None,
) -> dict[str, str]:
    """Role -> column of the roles present. Needed roles, optional ones the spec set
    explicitly, and ``also`` (e.g. series keys) must exist; an optional role left at its
    default is skipped when the table does not have it."""
    mapping = {role: getattr(columns, role) for role in (*needed, *optional)}
    mapping = {role: name for role, name in mapping.items() if name is not None}
    required = {
        role: name for role, name in mapping.items()
        if role in needed or role in columns.model_fields_set
    }
    require_columns(frame, {**required, **(also or {})}, label)
    return {role: name for role, name in mapping.items() if name in frame.columns}


def _value_roles(config: DataConfig, label: str) -> list[str]:
    """The roles y is computed from: the target column, or quantity (x price)."""
    columns = config.sales_columns
    if columns.target:
        return ["target"]
    needed = ["quantity", "price"] if config.target == "revenue" else ["quantity"]
    unmapped = [role for role in needed if getattr(columns, role) is None]
    if unmapped:
        raise DataValidationError(
            label, "required_columns",
            f"no target column is mapped and {', '.join(unmapped)} is not mapped either",
            hint=f"map sales_columns.target, or quantity and price for target '{config.target}'")
    return needed


# --- sales ---------------------------------------------------------------------------


def _sales_mapping(frame: pd.DataFrame, config: DataConfig, label: str) -> dict[str, str]:
    """Role -> column of the sales table (missing mapped columns are an error)."""
    return _resolve_columns(
        config.sales_columns, frame, ["date", *_value_roles(config, label)], SALES_ROLES,
        label, also={f"series key {key}": key for key in config.sales_columns.keys})


def _standard_sales(frame: pd.DataFrame, config: DataConfig, label: str) -> pd.DataFrame:
    note = _row_note(config.sales)
    frame = _numbered(frame, note)
    keys = list(config.sales_columns.keys)
    mapping = _sales_mapping(frame, config, label)
    n_read = len(frame)
    frame = _apply_filters(frame, config.filters, label)
    # repeats in every column of the file, not in the mapped ones: two lines of one invoice
    # with the same quantity and price differ only in their item (the Online Retail file:
    # 5,268 true repeats, 238,589 on the mapped columns)
    warn_duplicate_lines(frame, label, row_note=note)
    sales = _sales_frame(frame, mapping, keys, config, label, note)
    check_not_future(sales["date"], label, row_note=note)
    sales = _drop_non_sales(sales, config, label, note)
    check_not_all_zero(sales["y"], label, mapping.get("target") or mapping.get("quantity"))
    if config.top_series:
        sales = _pool_small_series(sales, keys, config.top_series, label)
    log.info("%s: %d of %d rows kept as sales lines, %d series, %s .. %s",
             label, len(sales), n_read, _count_series(sales, keys),
             sales["date"].min().date(), sales["date"].max().date())
    if not sales["date"].is_monotonic_increasing:  # exports are usually in date order
        sales = sales.sort_values("date", kind="stable")
    return sales.reset_index(drop=True)


def _key_combinations(sales: pd.DataFrame, keys: list[str]) -> tuple[np.ndarray, int]:
    """One integer per line naming its key combination (series), and their range.

    Computed on integer codes (a categorical key's own codes), as a pandas groupby on the
    key columns would take seconds at ten million lines. No key value may be missing.
    """
    combined, space = np.zeros(len(sales), dtype=np.int64), 1
    for key in keys:
        values = sales[key]
        if isinstance(values.dtype, pd.CategoricalDtype):
            codes, n_values = values.cat.codes.to_numpy(), len(values.cat.categories)
        else:
            codes, uniques = pd.factorize(values)
            n_values = len(uniques)
        combined *= n_values
        combined += codes
        space *= n_values
        if space > len(sales):  # keep the range small: renumber the combinations
            combined, uniques = pd.factorize(combined)
            space = len(uniques)
    return combined, space


def _count_series(sales: pd.DataFrame, keys: list[str]) -> int:
    """Number of distinct key combinations (series) among the lines."""
    combined, space = _key_combinations(sales, keys)
    return int(np.count_nonzero(np.bincount(combined, minlength=space)))


def _series_numbers(sales: pd.DataFrame, keys: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Each line's series number, 0, 1, ... in order of first appearance, and the
    position of each series' first line (``sales`` has lines)."""
    numbers = pd.factorize(_key_combinations(sales, keys)[0])[0]
    seen = np.maximum.accumulate(numbers)  # grows by one at each series' first line
    return numbers, np.concatenate([[0], np.flatnonzero(seen[1:] > seen[:-1]) + 1])


def _sales_frame(
    frame: pd.DataFrame, mapping: dict[str, str], keys: list[str], config: DataConfig,
    label: str, note: str,
) -> pd.DataFrame:
    """date, keys, y, revenue, quantity, price, promo, customer_id, channel (as mapped).

    Built as one dict of columns and framed once, without copying them: at ten million
    lines every copy of the frame costs hundreds of MB and page faults to fill them.
    """
    date_format = config.sales_columns.date_format
    out = {"date": parse_dates(frame[mapping["date"]], label, date_format=date_format,
                               row_note=note)}
    for key in keys:
        out[key] = as_text(frame[key])
        require_values(out[key], label, what="series key value", row_note=note)
    numbers = {role: parse_numbers(frame[mapping[role]], label, row_note=note)
               for role in ("target", "quantity", "price") if role in mapping}
    out.update(_values(numbers, config))
    if "promo" in mapping:
        out["promo"] = parse_flags(frame[mapping["promo"]], label, row_note=note)
    for role in ("customer_id", "channel"):
        if role in mapping:
            out[role] = as_text(frame[mapping[role]])
    return pd.DataFrame(out, copy=False)


def _values(numbers: dict[str, pd.Series], config: DataConfig) -> dict[str, pd.Series]:
    """y, revenue (when computable), quantity and price from the parsed numeric columns.

    A mapped target is revenue when ``config.target`` is 'revenue', units otherwise.
    """
    quantity, price = numbers.get("quantity"), numbers.get("price")
    line_revenue = quantity * price if quantity is not None and price is not None else None
    y = numbers.get("target", line_revenue if config.target == "revenue" else quantity)
    revenue = y if "target" in numbers and config.target == "revenue" else line_revenue
    columns = {"y": y, "revenue": revenue, "quantity": quantity, "price": price}
    return {name: s for name, s in columns.items() if s is not None}


def _drop_non_sales(
    sales: pd.DataFrame, config: DataConfig, label: str, note: str
) -> pd.DataFrame:
    """Drop lines with price <= 0 (not sales); drop returns when ``returns: drop``."""
    if "price" in sales:
        sales = drop_rows(
            sales, sales["price"] <= 0, label, "price_positive",
            "with price <= 0 (free items, stock write-offs, bad-debt adjustments: not sales)",
            row_note=note)
    if config.returns == "drop":
        values = sales["quantity"] if "quantity" in sales else sales["y"]
        sales = drop_rows(
            sales, values < 0, label, "returns",
            "with a negative quantity (returns; the spec says returns: drop)",
            row_note=note, level=logging.INFO)
    require_rows(sales, label, after="dropping lines with price <= 0 and returns")
    return sales


def _apply_filters(
    frame: pd.DataFrame, filters: dict[str, list[str]], label: str
) -> pd.DataFrame:
    """Rows whose value of every filter column is listed (compared as text)."""
    if not filters:
        return frame
    require_columns(frame, {f"filter {column}": column for column in filters}, label)
    keep = pd.Series(True, index=frame.index)
    for column, allowed in filters.items():
        text = as_text(frame[column])
        unmatched = sorted(set(allowed) - set(text.dropna().unique()))
        if unmatched:
            log.warning("%s: filter %s: no rows have %s", label, column, unmatched)
        keep &= text.isin(allowed)
    if not keep.any():
        raise DataValidationError(
            label, "not_empty", f"no rows left after filters {filters}",
            hint=_present_values(frame, list(filters)))
    log.info("%s: filters %s keep %d of %d rows", label, filters, int(keep.sum()), len(frame))
    return frame.loc[keep]


def _present_values(frame: pd.DataFrame, columns: list[str]) -> str:
    """The most frequent values of each column, to help fix a filter."""
    parts = []
    for column in columns:
        top = as_text(frame[column]).astype("str").value_counts().head(8).index
        parts.append(f"column '{column}' has e.g. " + ", ".join(repr(v) for v in top))
    return "; ".join(parts)


def _pool_small_series(
    sales: pd.DataFrame, keys: list[str], top_n: int, label: str
) -> pd.DataFrame:
    """Keep the ``top_n`` key combinations with the most revenue; pool the rest as '__other__'.

    Ranked on net revenue (or y when revenue is unknown); ties by key, so it is stable.
    Totals are summed per series number, not per line text (ten million joined strings).
    """
    numbers, first = _series_numbers(sales, keys)
    names = sales[keys].iloc[first].astype("str")
    series = names[keys[0]].str.cat([names[key] for key in keys[1:]], sep="\x1f")
    weight = sales["revenue"] if "revenue" in sales else sales["y"]
    totals = weight.groupby(numbers).sum().set_axis(series.to_numpy()).sort_index()
    ranked = totals.rename("total").rename_axis("series").reset_index()
    ranked = ranked.sort_values(["total", "series"], ascending=[False, True])
    top = ranked["series"].head(top_n)
    pooled = ~series.isin(top).to_numpy()[numbers]
    if pooled.any():
        share = totals.loc[top.to_numpy()].sum() / totals.sum() if totals.sum() else 0.0
        log.info("%s: top_series %d keeps %.1f%% of revenue; %d series pooled into '%s'",
                 label, top_n, 100 * share, len(totals) - len(top), OTHER)
        for key in keys:
            sales[key] = _pooled_key(sales[key], pooled)
    return sales


def _pooled_key(values: pd.Series, pooled: np.ndarray) -> pd.Series:
    """Key values with the pooled lines' set to '__other__'; a categorical key stays
    categorical: it gains that category and (through as_text) drops those pooled away."""
    if not isinstance(values.dtype, pd.CategoricalDtype):
        return values.where(~pooled, OTHER)
    if OTHER not in values.cat.categories:
        values = values.cat.add_categories([OTHER])
    return as_text(values.where(~pooled, OTHER))


# --- customers and calendar ----------------------------------------------------------


def _standard_customers(frame: pd.DataFrame, config: DataConfig, label: str) -> pd.DataFrame:
    """customer_id (unique text), segment, region, signup_date (may be empty)."""
    note = _row_note(config.customers)
    frame = _numbered(frame, note)
    columns = config.customer_columns
    mapping = _resolve_columns(
        columns, frame, ["customer_id"], ["segment", "region", "signup_date"], label)
    ids = as_text(frame[mapping["customer_id"]])
    require_values(ids, label, what="customer id", row_note=note)
    check_unique(ids.to_frame(), [str(ids.name)], label, row_note=note)
    out = pd.DataFrame({"customer_id": ids})
    for role in ("segment", "region"):
        if role in mapping:
            out[role] = as_text(frame[mapping[role]])
    if "signup_date" in mapping:
        signup = frame[mapping["signup_date"]]
        known = parse_dates(signup.dropna(), label, date_format=None, row_note=note)
        out["signup_date"] = known.reindex(frame.index)
    return out.reset_index(drop=True)


def _standard_calendar(frame: pd.DataFrame, config: DataConfig, label: str) -> pd.DataFrame:
    """date, the sales keys the calendar has, holiday and promo flags; one row per (date, keys)."""
    note = _row_note(config.calendar)
    frame = _numbered(frame, note)
    mapping = _resolve_columns(
        config.calendar_columns, frame, ["date"], ["holiday", "promo"], label)
    keys = [key for key in config.sales_columns.keys if key in frame.columns]
    frame = _apply_filters(
        frame, {c: v for c, v in config.filters.items() if c in frame.columns}, label)
    out = pd.DataFrame(index=frame.index)
    out["date"] = parse_dates(frame[mapping["date"]], label, date_format=None, row_note=note)
    for key in keys:
        out[key] = as_text(frame[key])
        require_values(out[key], label, what="series key value", row_note=note)
    for role in ("holiday", "promo"):
        if role in mapping:
            out[role] = parse_flags(frame[mapping[role]], label, row_note=note)
    check_unique(out, ["date", *keys], label, row_note=note)
    return out.sort_values(["date", *keys]).reset_index(drop=True)


def _standard_known_future(frame: pd.DataFrame, config: DataConfig, sales: pd.DataFrame,
                           label: str) -> pd.DataFrame:
    """The known-future table checked against the sales (see :mod:`features.known_future`)."""
    columns = config.known_future_columns
    if columns is None:
        raise DataValidationError(label, "required_columns",
                                  "no known_future_columns say what the table holds")
    note = _row_note(config.known_future)
    frame = _apply_filters(
        _numbered(frame, note),
        {c: v for c, v in config.filters.items() if c in frame.columns}, label)
    sales_keys = {key: set(sales[key].dropna().unique().tolist()) for key in columns.keys}
    return standardize_known_future(frame, columns, sales_keys, label, row_note=note,
                                    pooled=config.top_series is not None)
