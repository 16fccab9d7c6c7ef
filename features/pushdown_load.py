"""Loading sales that stay in the warehouse: validate the lines and sum them to daily cells.

One pass over the lines (:func:`daily_sql`) groups them by their stored keys and *day* —
plus the drop flags and a text promo value — with every sum the panel needs and a count of
each rule's bad cells. pandas then does on those few rows what :mod:`features.sources`
does on the lines: cleans each distinct key and flag value with the same functions, raises
the same ``DataValidationError`` in the same order (the first five offending rows come from
an example query), logs the same drops and pools small series (``top_series``). Daily
cells keep the load independent of the frequency a build asks for, and make ``until`` a
filter. Money is summed in exact integer micro-units, so nothing depends on the order
DuckDB's threads add the lines in.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from features.config import DataConfig, SourceConfig
from features.known_future import OTHER
from features.pushdown_sql import (
    VIEW,
    LineView,
    SalesSource,
    Warehouse,
    column_types,
    import_duckdb,
    literal,
    open_source,
    quote,
    sales_source,
)
from features.validation import (
    DATA_ROWS,
    FIRST_DATE,
    FUTURE_HINT,
    LAST_DATE,
    MAX_ABS_NUMBER,
    DataValidationError,
    _flag_numbers,
    _rows,
    as_text,
    check_not_all_zero,
    future_what,
    latest_sales_date,
    require_rows,
)

log = logging.getLogger(__name__)

SUMS = ["lines", "y", "promo_on", "price_wx", "price_w", "positive", "revenue"]


@dataclass(frozen=True)
class WarehouseSales:
    """What loading learnt about lines that stay in the warehouse.

    ``daily``: one row per (series, day) of the kept lines — ``series`` (the final key
    values, pooled ones as '__other__'), ``day`` (days since 1970-01-01) and the sums
    :data:`SUMS`; ``series_keys``: stored keys' hash -> final key values; ``end``: the
    ``until`` cut.
    """

    source: SalesSource
    view: LineView
    daily: pd.DataFrame
    series_keys: pd.DataFrame
    end: pd.Timestamp | None = None


# --- loading -------------------------------------------------------------------------


def open_sales(source: SourceConfig) -> tuple[Warehouse, dict[str, str]]:
    """The open warehouse of the sales source and its column types; an empty table is
    an error (``not_empty``), as in the in-memory path."""
    warehouse = open_source(sales_source(source))
    try:
        if warehouse.scalar(f"SELECT count(*) FROM (SELECT 1 FROM {warehouse.source.sql()} "
                            "LIMIT 1)") == 0:
            require_rows(pd.DataFrame(), source.label)
        return warehouse, column_types(warehouse)
    except BaseException:
        warehouse.close()
        raise


def load_sales(warehouse: Warehouse, config: DataConfig, mapping: dict[str, str],
               types: dict[str, str]) -> WarehouseSales:
    """Validate the lines and aggregate them to daily cells (see the module docstring).

    ``mapping`` is role -> column as :mod:`features.sources` resolved it (its checks of
    missing columns ran already)."""
    label = config.sales.label
    view = LineView.of(config, mapping, types)
    n_read = int(warehouse.scalar(f"SELECT count(*) FROM {warehouse.source.sql()}") or 0)
    if config.filters:
        view = replace(view, filters=_filter_hashes(warehouse, config.filters, label))
    view.create(warehouse)
    cells = daily_cells(warehouse, view)
    if config.filters:
        if not cells["lines"].sum():
            _no_rows_left(warehouse, config.filters, label)
        log.info("%s: filters %s keep %d of %d rows", label, config.filters,
                 int(cells["lines"].sum()), n_read)
    checks = _Checks(warehouse, view, label)
    checks.values(cells)
    cells = checks.drops(cells)
    daily, series_keys = _final_series(cells, checks.key_text, view, config.top_series,
                                       label)
    check_not_all_zero(daily["y" if "y" in daily else "revenue"], label,
                       mapping.get("target") or mapping.get("quantity"))
    _log_kept(daily, n_read, label)
    return WarehouseSales(warehouse.source, view, daily, series_keys)


def daily_sql(view: LineView, where: str = "true", wide: bool = False) -> str:
    """Lines grouped by stored keys, day (and text promo value, drop flags): the sums.

    Money is summed exactly, in integer micro-units, so the sums — and the data digest —
    do not depend on the order DuckDB's threads add the lines in. ``wide``: plain float
    sums, for what micro-units cannot hold (a non-finite cell, which fails validation
    anyway, or a line beyond 9e12)."""
    keys = [f"_sc_k{i}" for i in range(len(view.keys))]
    groups = [*keys, "_sc_day"]
    if view.text_promo:
        groups.append("_sc_promo")
    if view.has("price"):
        groups.append("(_sc_price <= 0) AS _sc_not_sale")
    if view.returns == "drop":
        groups.append(f"({view.returned_value()} < 0) AS _sc_return")
    money = {"revenue": view.revenue, "positive": f"greatest({view.revenue}, 0)"}
    if not view.y_is_revenue:
        money["y"] = "_sc_y"
    if view.has("price"):  # weights |revenue|, or 1 without revenue
        money["price_wx"] = "abs(_sc_revenue) * _sc_price" if view.has_revenue else "_sc_price"
    first, last = (view.time_literal(day) for day in (FIRST_DATE, LAST_DATE))
    sums = ["count(*) AS lines",  # bad_*: any rule broken (which one is asked if so)
            f"count(*) FILTER (WHERE NOT coalesce(_sc_time BETWEEN {first} AND {last}, "
            "false)) AS bad_date",
            *(f"{_exact(expression, wide)} AS {name}" for name, expression in money.items())]
    if view.has("promo") and not view.text_promo:
        sums.append("sum(_sc_promo) AS promo_on")
    for role in ("target", "quantity", "price"):
        if view.has(role):  # NaN compares as the largest number in DuckDB
            sums.append(f"count(*) FILTER (WHERE NOT coalesce(abs(_sc_{role}) <= "
                        f"{MAX_ABS_NUMBER}, false)) AS bad_{role}")
    cells = f"SELECT {', '.join(groups + sums)} FROM {VIEW} WHERE {where} GROUP BY ALL"
    return f"SELECT *, hash({', '.join(keys)}) AS _sc_key_hash FROM ({cells})"  # = the view's


def _exact(expression: str, wide: bool) -> str:
    """The exact sum of a DOUBLE expression, as DOUBLE (``wide``: a plain float sum)."""
    if wide:
        return f"sum({expression})"
    return f"CAST(sum(CAST(round(({expression}) * 1e6) AS BIGINT)) AS DOUBLE) / 1e6"


def _far(view: LineView) -> str:
    """features.validation.parse_dates' range: dates pandas cannot hold."""
    first, last = (view.time_literal(day) for day in (FIRST_DATE, LAST_DATE))
    return f"_sc_time < {first} OR _sc_time > {last}"


def _not_finite(role: str) -> str:
    return f"NOT coalesce(isfinite(_sc_{role}), false)"


def _huge(role: str) -> str:
    """features.validation.parse_numbers' plausible magnitude."""
    return f"abs(_sc_{role}) > {MAX_ABS_NUMBER}"


def daily_cells(warehouse: Warehouse, view: LineView, where: str = "true") -> pd.DataFrame:
    """The daily cells (:func:`daily_sql`), sorted, with ``y`` and ``price_w``."""
    try:
        cells = warehouse.frame(daily_sql(view, where))
    except import_duckdb().ConversionException:  # NaN, infinite or huge money
        cells = warehouse.frame(daily_sql(view, where, wide=True))
    if "y" not in cells.columns:
        cells["y"] = cells["revenue"]
    if view.has("price"):  # sum |x| = 2 sum max(x, 0) - sum x
        cells["price_w"] = 2 * cells["positive"] - cells["revenue"] if view.has_revenue \
            else cells["lines"].astype("float64")
    return _in_order(cells)


def _in_order(cells: pd.DataFrame) -> pd.DataFrame:
    """Cells sorted by their groups: DuckDB returns groups in any order, and pandas sums
    floats in row order (a stable order keeps every later sum reproducible)."""
    groups = [column for column in cells.columns if column.startswith("_sc_")]
    return cells.sort_values(groups, kind="stable", ignore_index=True)


def _filter_hashes(warehouse: Warehouse, filters: dict[str, list[str]], label: str
                   ) -> dict[str, tuple[int, ...]]:
    """Per filter column, the hashes of the stored values whose text is listed."""
    hashes = {}
    for column, allowed in filters.items():
        values = warehouse.frame(f"SELECT {quote(column)} AS value, hash({quote(column)}) AS h,"
                                 f" count(*) AS n FROM {warehouse.source.sql()} GROUP BY ALL")
        text = as_text(values["value"])
        unmatched = sorted(set(allowed) - set(text.dropna().unique()))
        if unmatched:
            log.warning("%s: filter %s: no rows have %s", label, column, unmatched)
        chosen = text.isin(allowed).to_numpy()
        hashes[column] = tuple(int(h) for h in values["h"].to_numpy()[chosen])
    return hashes


def _no_rows_left(warehouse: Warehouse, filters: dict[str, list[str]], label: str) -> None:
    """The in-memory path's error (with its hint of frequent values) when filters keep
    no row."""
    parts = []
    for column in filters:
        values = warehouse.frame(f"SELECT {quote(column)} AS value, count(*) AS n FROM "
                                 f"{warehouse.source.sql()} GROUP BY ALL")
        counts = values.groupby(as_text(values["value"]).astype("str").to_numpy())["n"].sum()
        top = counts.sort_values(ascending=False, kind="stable").head(8).index
        parts.append(f"column '{column}' has e.g. " + ", ".join(repr(v) for v in top))
    raise DataValidationError(label, "not_empty", f"no rows left after filters {filters}",
                              hint="; ".join(parts))


@dataclass
class _Checks:
    """The in-memory path's checks on daily cells, in its order; examples are queried."""

    warehouse: Warehouse
    view: LineView
    label: str
    key_text: dict[int, pd.Series] = field(default_factory=dict)  # stored -> text

    def values(self, cells: pd.DataFrame) -> None:
        """Dates, keys, numbers, flags: the first rule broken raises."""
        date_format = self.view.date_format
        hint = f"expected format '{date_format}'" if date_format else (
            "set sales_columns.date_format if the dates use another format")
        if cells["bad_date"].sum():
            unparsed, far = self._count("_sc_day IS NULL", _far(self.view))
            self._fail(unparsed, "_sc_day IS NULL", "date", "parseable_date",
                       ("has a date that cannot be parsed", "have a date that cannot be "
                        "parsed"), hint)
            self._fail(far, _far(self.view), "date", "date_in_range",
                       ("has a date outside 1678-2261", "have a date outside 1678-2261"),
                       "a typo in the year?")
        self._check_not_future(cells)
        for i, key in enumerate(self.view.keys):
            self._check_key(cells, i, key)
        for role in ("target", "quantity", "price"):
            if self.view.has(role):
                self._check_number(cells, role)
        if self.view.text_promo:
            self._check_flags(cells)

    def _check_not_future(self, cells: pd.DataFrame) -> None:
        """As :func:`features.validation.check_not_future`, from the daily cells first."""
        latest = latest_sales_date()
        last_day = (latest - pd.Timestamp("1970-01-01")).days  # _sc_day: days since 1970
        if not (cells["_sc_day"] > last_day).any():
            return
        condition = f"_sc_day > {last_day}"
        (future,) = self._count(condition)
        self._fail(future, condition, "date", "not_in_future", future_what(latest),
                   FUTURE_HINT)

    def _check_number(self, cells: pd.DataFrame, role: str) -> None:
        if not cells[f"bad_{role}"].sum():
            return
        empty, huge = self._count(_not_finite(role), _huge(role))
        self._fail(empty, _not_finite(role), role, "numeric",
                   ("is empty or not a finite number", "are empty or not a finite number"))
        self._fail(huge, _huge(role), role, "plausible_number",
                   (f"is larger than {MAX_ABS_NUMBER:.0e} in magnitude",
                    f"are larger than {MAX_ABS_NUMBER:.0e} in magnitude"),
                   "a typo, or a value that would overflow the sums")

    def _count(self, *conditions: str) -> list[int]:
        """Lines where each condition holds (one more pass: only when a rule is broken)."""
        counts = ", ".join(f"count(*) FILTER (WHERE {c})" for c in conditions)
        found = self.warehouse.connection.execute(f"SELECT {counts} FROM {VIEW}").fetchone()
        return [int(n) for n in found or ()]

    def _check_key(self, cells: pd.DataFrame, i: int, key: str) -> None:
        column = f"_sc_k{i}"
        raw = cells[column].drop_duplicates()
        text = as_text(raw.reset_index(drop=True))
        empty = raw[text.isna().to_numpy()]
        self.key_text[i] = pd.Series(text.to_numpy(), index=raw.to_numpy())
        if empty.empty:
            return
        lines = int(cells.loc[cells[column].isin(empty) | cells[column].isna(), "lines"].sum())
        condition = f"{column} IS NULL" + self._one_of(column, empty, self.view.types[key])
        self._fail(lines, condition, key, "key_present",  # cells shown cleaned: empty
                   ("has no series key value", "have no series key value"), column=key,
                   blank=True)

    @staticmethod
    def _one_of(column: str, values: pd.Series, kind: str) -> str:
        if kind == "VARCHAR":
            texts = [literal(v) for v in values.dropna().astype(str)]
            return f" OR {column} IN ({', '.join(texts)})" if texts else ""
        return f" OR isnan(CAST({column} AS DOUBLE))" if kind in ("FLOAT", "DOUBLE") else ""

    def _check_flags(self, cells: pd.DataFrame) -> None:
        raw = cells["_sc_promo"].dropna().drop_duplicates()
        numbers = _flag_numbers(raw.reset_index(drop=True))
        bad = raw[np.isnan(numbers)]
        lines = int(cells.loc[cells["_sc_promo"].isin(bad), "lines"].sum())
        texts = ", ".join(literal(v) for v in bad.astype(str)) or "NULL"
        self._fail(lines, f"_sc_promo IN ({texts})", "promo", "numeric",
                   ("is not a 0/1 flag", "are not 0/1 flags"))
        flag = dict(zip(raw, numbers, strict=True))
        on = cells["_sc_promo"].map(flag).fillna(0.0).to_numpy() != 0
        cells["promo_on"] = np.where(on, cells["lines"], 0)

    def _fail(self, count: int, condition: str, role: str, rule: str,
              what: tuple[str, str], hint: str = "", column: str | None = None,
              blank: bool = False) -> None:
        if not count:
            return
        name = column or self.view.mapping[role]
        rows, values = self._examples(condition, name)
        values = [None] * len(rows) if blank else values
        raise DataValidationError(self.label, rule, _rows(count, what), column=name,
                                  rows=rows, values=values, row_note=DATA_ROWS, hint=hint)

    def _examples(self, condition: str, column: str) -> tuple[list[int], list[object]]:
        """Row numbers and stored values of the first five lines where ``condition``."""
        body = self.view.body(self.warehouse.source.sql(numbered=True))
        found = self.warehouse.frame(
            f"SELECT _row, {quote(column)} AS value FROM ({body}) WHERE {condition} "
            "ORDER BY _row LIMIT 5")
        values = [None if pd.isna(v) else v for v in found["value"].tolist()]
        return [int(r) for r in found["_row"]], values

    def drops(self, cells: pd.DataFrame) -> pd.DataFrame:
        """Cells of the kept lines; lines with price <= 0 and returns logged as dropped."""
        total = int(cells["lines"].sum())
        if "_sc_not_sale" in cells:
            drop = cells["_sc_not_sale"].fillna(False).to_numpy(dtype=bool)
            self._log_drop(cells, drop, total, "_sc_price <= 0", "price_positive",
                           "with price <= 0 (free items, stock write-offs, bad-debt "
                           "adjustments: not sales)", logging.WARNING)
            total -= int(cells.loc[drop, "lines"].sum())
            cells = cells.loc[~drop]
        if "_sc_return" in cells:
            drop = cells["_sc_return"].fillna(False).to_numpy(dtype=bool)
            price = "_sc_price > 0 AND " if self.view.has("price") else ""
            self._log_drop(cells, drop, total, f"{price}{self.view.returned_value()} < 0",
                           "returns", "with a negative quantity (returns; the spec says "
                           "returns: drop)", logging.INFO)
            cells = cells.loc[~drop]
        if not cells["lines"].sum():
            require_rows(pd.DataFrame(), self.label,
                         after="dropping lines with price <= 0 and returns")
        return cells

    def _log_drop(self, cells: pd.DataFrame, drop: np.ndarray, total: int, condition: str,
                  rule: str, reason: str, level: int) -> None:
        count = int(cells.loc[drop, "lines"].sum())
        if not count:
            return
        rows, _ = self._examples(condition, self.view.mapping["date"])
        log.log(level, "%s: dropped %d of %d rows %s (rule: %s), e.g. rows %s (%s)",
                self.label, count, total, reason, rule, ", ".join(map(str, rows)), DATA_ROWS)


def _final_series(cells: pd.DataFrame, key_text: dict[int, pd.Series], view: LineView,
                  top_series: int | None, label: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Daily cells by final series (keys as cleaned text, small series pooled) and the
    stored keys' hash -> final keys table. ``key_text``: stored -> text, per key."""
    keys = list(view.keys)
    stored = cells.drop_duplicates("_sc_key_hash")
    series_keys = pd.DataFrame({"key_hash": stored["_sc_key_hash"].to_numpy()})
    for i, key in enumerate(keys):
        text = stored[f"_sc_k{i}"].map(key_text[i])
        series_keys[key] = text.astype("str").to_numpy()
    if top_series:
        series_keys = _pool(series_keys, cells, keys, top_series, label)
    series_keys["series"] = _joined(series_keys, keys)
    if not series_keys["key_hash"].is_unique:
        raise RuntimeError("two stored key combinations share a hash; use engine: pandas")
    sums = [name for name in SUMS if name in cells.columns]
    daily = cells.assign(series=cells["_sc_key_hash"].map(
        series_keys.set_index("key_hash")["series"]), day=cells["_sc_day"].astype("int64"))
    daily = daily.groupby(["series", "day"], as_index=False)[sums].sum()
    return daily, series_keys


def _joined(frame: pd.DataFrame, keys: list[str]) -> pd.Series:
    return frame[keys[0]].str.cat([frame[key] for key in keys[1:]], sep="\x1f")


def _pool(series_keys: pd.DataFrame, cells: pd.DataFrame, keys: list[str], top_n: int,
          label: str) -> pd.DataFrame:
    """features.sources._pool_small_series on the cells: the top_n series by revenue (or
    y) keep their keys, the others become '__other__'."""
    weight = "revenue" if "revenue" in cells.columns else "y"
    by_hash = cells.groupby("_sc_key_hash")[weight].sum()
    names = _joined(series_keys, keys)
    totals = by_hash.reindex(series_keys["key_hash"]).to_numpy()
    totals = pd.Series(totals).groupby(names.to_numpy()).sum().sort_index()
    ranked = totals.rename("total").rename_axis("series").reset_index()
    ranked = ranked.sort_values(["total", "series"], ascending=[False, True])
    top = ranked["series"].head(top_n)
    pooled = ~names.isin(top).to_numpy()
    if pooled.any():
        share = totals.loc[top.to_numpy()].sum() / totals.sum() if totals.sum() else 0.0
        log.info("%s: top_series %d keeps %.1f%% of revenue; %d series pooled into '%s'",
                 label, top_n, 100 * share, len(totals) - len(top), OTHER)
        series_keys.loc[pooled, keys] = OTHER
    return series_keys


def _log_kept(daily: pd.DataFrame, n_read: int, label: str) -> None:
    days = daily["day"].to_numpy()
    first, last = (np.datetime64(int(d), "D").item() for d in (days.min(), days.max()))
    log.info("%s: %d of %d rows kept as sales lines, %d series, %s .. %s", label,
             int(daily["lines"].sum()), n_read, daily["series"].nunique(), first, last)
