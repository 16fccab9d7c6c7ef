"""Configuration objects of the features package.

These pydantic models are the parts of an experiment spec that `features` needs: where
the raw data lives, how its columns map to salescast's logical names, and which feature
builders run. `experiments.spec.ExperimentSpec` composes them; `features` never imports
`experiments`.
"""

from __future__ import annotations

import glob
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from features.calendar import calendar_feature_names

Frequency = Literal["D", "W", "M"]
FileFormat = Literal["auto", "csv", "parquet", "sql"]
Engine = Literal["auto", "pandas", "duckdb"]
Aggregate = Literal["mean", "sum", "max", "min"]
GapFill = Literal["missing", "zero"]

# Column names a known-future value may not take: the panel's own and the pipeline's.
RESERVED_NAMES = frozenset({
    "series_id", "ds", "y", "date", "step", "promo", "price", "holiday", "price_ratio",
    "price_reference", "revenue", "quantity", "customer_id", "channel", "yhat", "yhat_lower",
    "yhat_upper", "origin", *calendar_feature_names("D"),  # D: every calendar feature
})
RESERVED_PREFIXES = ("lag_", "roll_mean_", "roll_std_", "cust_", "share_")


class StrictModel(BaseModel):
    """Base for config objects: unknown keys are an error, not silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceConfig(StrictModel):
    """One raw table: a CSV/Parquet file (a Parquet folder or glob too), or a SQL
    table/query read through SQLAlchemy (a ``duckdb:///`` database through DuckDB)."""

    path: str | None = Field(None, description="CSV or Parquet file, Parquet folder or glob "
                             "(relative to the CWD).")
    format: FileFormat = "auto"
    url: str | None = Field(None, description="SQLAlchemy URL when format is 'sql', or "
                            "duckdb:///<file> for a DuckDB database.")
    table: str | None = None
    query: str | None = None
    csv_options: dict[str, str | int | bool] = Field(default_factory=dict)
    engine: Engine = Field(
        "auto", description="Sales only: 'duckdb' aggregates the lines where they are "
        "stored (Parquet, a DuckDB database; features.pushdown), 'pandas' reads them into "
        "memory; 'auto' pushes down a Parquet folder or glob and a duckdb:/// URL.")

    @model_validator(mode="after")
    def _one_location(self) -> SourceConfig:
        if self.format == "sql" or self.url:
            if not self.url or not (self.table or self.query):
                raise ValueError("a SQL source needs 'url' and one of 'table' or 'query'")
        elif not self.path:
            raise ValueError("a file source needs 'path'")
        if self.engine == "duckdb" and not self._duckdb_readable():
            raise ValueError("engine 'duckdb' reads Parquet files (a file, folder or glob) "
                             "or a duckdb:/// database; CSV and other SQL databases are read "
                             "by pandas (engine: auto or pandas)")
        return self

    def _duckdb_readable(self) -> bool:
        if self.url:
            return self.url.startswith("duckdb:///")
        return self.resolved_format() == "parquet"

    def pushdown(self) -> bool:
        """Whether DuckDB aggregates the lines of this (sales) source where they are."""
        if self.engine != "auto":
            return self.engine == "duckdb"
        if self.url:
            return self.url.startswith("duckdb:///")
        return self.resolved_format() == "parquet" and self._many_files()

    def _many_files(self) -> bool:
        return glob.has_magic(self.path or "") or Path(self.path or "").is_dir()

    @property
    def label(self) -> str:
        """A human name for error messages: the file path or the SQL table."""
        return self.path or f"{self.url}:{self.table or 'query'}"

    def resolved_format(self) -> Literal["csv", "parquet", "sql"]:
        if self.format != "auto":
            return self.format
        if self.url:
            return "sql"
        if Path(self.path or "").is_dir():
            return "parquet"  # a folder of Parquet parts
        suffix = Path(self.path or "").suffix.lower()
        return "parquet" if suffix in {".parquet", ".pq"} else "csv"


class SalesColumns(StrictModel):
    """Logical name -> column name in the raw sales export.

    `target` names a column holding revenue or units directly; leave it empty to derive
    revenue as quantity x price. `keys` are the series keys (e.g. store, category).
    """

    date: str = "date"
    target: str | None = None
    quantity: str | None = "quantity"
    price: str | None = "unit_price"
    promo: str | None = "promo"
    customer_id: str | None = "customer_id"
    channel: str | None = "channel"
    keys: list[str] = Field(default_factory=lambda: ["store", "category"])
    date_format: str | None = Field(None, description="strftime format, e.g. '%m/%d/%Y %H:%M'.")


class CustomerColumns(StrictModel):
    customer_id: str = "customer_id"
    segment: str | None = "segment"
    region: str | None = "region"
    signup_date: str | None = "signup_date"


class CalendarColumns(StrictModel):
    date: str = "date"
    holiday: str | None = "holiday"
    promo: str | None = Field("promo", description="Planned promotion flag, if any.")


class KnownFutureColumns(StrictModel):
    """The known-future table: ``date``, the series keys it is given by (any subset of the
    sales keys; none = the same value for every series), and its value columns, each with
    how days combine into a period (``mean``, ``sum``, ``max``, ``min``).

    ``values: {open: min, school_holiday: max, markdown: mean}``; each name becomes a model
    feature and a scenario value of that name.
    """

    date: str = "date"
    keys: list[str] = Field(default_factory=list)
    values: dict[str, Aggregate] = Field(..., min_length=1)

    @field_validator("values")
    @classmethod
    def _free_names(cls, values: dict[str, Aggregate]) -> dict[str, Aggregate]:
        taken = [name for name in values
                 if name in RESERVED_NAMES or name.startswith(RESERVED_PREFIXES)]
        if taken:
            raise ValueError(f"{taken} are salescast's own column names; rename the "
                             "column in the file")
        return values


class DataConfig(StrictModel):
    """Where the raw data is and how to read it."""

    sales: SourceConfig
    customers: SourceConfig | None = None
    calendar: SourceConfig | None = None
    sales_columns: SalesColumns = SalesColumns()
    customer_columns: CustomerColumns = CustomerColumns()
    calendar_columns: CalendarColumns = CalendarColumns()
    target: Literal["revenue", "quantity"] = Field(
        "revenue", description="What y is when no target column is mapped."
    )
    returns: Literal["keep", "drop"] = Field(
        "keep",
        description="Negative quantities are returns: 'keep' nets them against sales, "
        "'drop' removes those rows (and says how many).",
    )
    filters: dict[str, list[str]] = Field(
        default_factory=dict, description="Keep only rows whose column is in the list."
    )
    top_series: int | None = Field(
        None, description="Keep the N series with the most revenue; the rest become '__other__'."
    )
    end: str | None = Field(
        None, description="Use sales up to this date only: train as of a past date (YYYY-MM-DD)."
    )
    gaps: GapFill = Field(
        "missing", description="Periods with no rows inside a series (see features.gaps): "
        "'missing' makes their y NaN, 'zero' counts them as zero sales.")
    gap_periods: int | None = Field(
        None, ge=1, description="Transaction lines: the shortest run of empty periods of a "
        "series that is a gap (default 28 D, 8 W, 3 M).")
    known_future: SourceConfig | None = Field(
        None, description="Known-future covariates by date (and keys): store open, school "
        "holidays, markdowns, a weather forecast.")
    known_future_columns: KnownFutureColumns | None = None

    @model_validator(mode="after")
    def _known_future_mapped(self) -> DataConfig:
        columns = self.known_future_columns
        if (self.known_future is None) != (columns is None):
            raise ValueError("'known_future' and 'known_future_columns' go together: the "
                             "table and its date, keys and values")
        if columns is not None:
            unknown = [key for key in columns.keys if key not in self.sales_columns.keys]
            if unknown:
                raise ValueError(f"known_future_columns.keys {unknown} are not series keys "
                                 f"(sales_columns.keys: {self.sales_columns.keys})")
            clash = sorted(set(columns.values) & set(self.sales_columns.keys))
            if clash:
                raise ValueError(f"known_future_columns.values {clash} are series keys")
        return self


class FeatureConfig(StrictModel):
    """Which feature builders run, and their windows.

    Lags are counted in periods of the spec's frequency. Every target-derived or
    transaction-derived feature is shifted by at least the forecast horizon H, so the
    whole horizon is forecast from data known at the origin (a direct, leakage-free
    design). `lags: null` means H, H+1, H+2, H+3 and one season (52 W, 7 D, 12 M) when
    that exceeds H; a lag below H is refused.
    """

    calendar: bool = True
    holidays: bool = True
    lags: list[int] | None = None
    rolling_windows: list[int] = Field(default_factory=lambda: [4, 13])
    price_promo: bool = True
    customers: bool = True
    rfm_quantiles: int = Field(4, ge=2, le=10)


class SimulatorConfig(StrictModel):
    """Parameters of the embedded retail simulator (`features.simulator`)."""

    seed: int = 42
    stores: int = Field(20, ge=1)
    categories: int = Field(6, ge=1, le=26)
    customers: int = Field(2000, ge=10)
    start: str = "2022-01-03"
    periods: int = Field(156, ge=8, description="Number of periods of `freq`.")
    freq: Literal["D", "W"] = "W"
    shift_at: str | None = Field(None, description="Date of the regime shift, if any.")
    future_periods: int = Field(26, ge=0, description="Calendar rows beyond the sales.")
    lines_per_day: float | None = Field(
        None,
        gt=0,
        description="Mean transaction lines per day across the chain (volume); "
        "default 4 per store x category.",
    )
