"""build_training_set: raw tables -> the leakage-free TrainingSet every forecaster fits on.

Steps: encode the lines once (series, period, customer codes), aggregate them to the base
panel (:mod:`features.aggregate`; gaps found and made missing, :mod:`features.gaps`; lines
that stayed in a warehouse are aggregated there, :mod:`features.pushdown`), join
the known-future table (:mod:`features.known_future`), add the customer covariates
(:mod:`features.customers`; missing in gaps too), choose the exogenous columns the spec
enables, check there is enough history, and let the
:class:`~features.pipeline.FeaturePipeline` derive the features. The metadata say which
data trained a model: spec hash, a digest of the base panel, its date range and columns,
and the gaps found (``extra["gaps"]``).
"""

from __future__ import annotations

import hashlib
import logging

import numpy as np
import pandas as pd

from features.aggregate import LineCodes, aggregate_with_gaps, encode_lines, planned_calendar
from features.calendar import SEASON_LENGTHS, check_freq
from features.config import FeatureConfig
from features.customers import crm_segment_codes, customer_covariates
from features.gaps import GapReport
from features.known_future import add_known_future
from features.lags import resolve_lags
from features.pipeline import FeaturePipeline
from features.pushdown import AggregatedSales, WarehouseRawData, aggregate_in_warehouse
from features.raw import RawData
from features.training_set import TrainingSet, TrainingSetMetadata

log = logging.getLogger(__name__)

DEFAULT_PRICE_WINDOW = 13


def build_training_set(raw: RawData, features: FeatureConfig, freq: str, horizon: int,
                       spec_hash: str = "", season_length: int | None = None) -> TrainingSet:
    """The training set of ``raw`` at ``freq`` for forecasts ``horizon`` periods ahead.

    Raises ``DataValidationError`` (rule ``enough_history``) when the data span fewer
    periods than the longest lag / rolling window plus the horizon.
    """
    check_freq(freq)
    lags = resolve_lags(features.lags, horizon, freq, season_length)
    sales = _aggregate(raw, freq, features)
    base, known_future = add_known_future(sales.base, raw, freq)
    covariates = sales.covariates
    if covariates is not None:
        base = base.merge(covariates, on=["series_id", "ds"], how="left", validate="1:1")
    covariate_columns = tuple(covariates.columns[2:]) if covariates is not None else ()
    pipeline = _make_pipeline(raw, base, features, freq, horizon, lags, covariate_columns,
                              known_future)
    base = base[["series_id", "ds", "y", *raw.keys, *pipeline.exog_columns,
                 *pipeline.covariate_columns]]
    base = _customers_missing_in_gaps(base, pipeline.covariate_columns)
    _check_history(base, pipeline, raw.labels.get("sales", "sales"))
    panel = pipeline.transform(base)
    metadata = _metadata(base, panel, pipeline, spec_hash,
                         season_length or SEASON_LENGTHS[freq], sales.gaps)
    log.info("training set: %d series x %d periods, %d features", metadata.n_series,
             metadata.n_periods, len(metadata.feature_columns))
    return TrainingSet(panel=panel, base=base, pipeline=pipeline, metadata=metadata,
                       series_attributes=sales.attributes)


def _aggregate(raw: RawData, freq: str, features: FeatureConfig) -> AggregatedSales:
    """Base panel, gaps, customer covariates and series attributes of the sales lines:
    aggregated where they are stored when they stayed in a warehouse (features.pushdown),
    else from the lines in memory (encoded once, shared by the builders)."""
    if isinstance(raw, WarehouseRawData):
        return aggregate_in_warehouse(raw, freq, features)
    codes = encode_lines(raw, freq)
    base, gaps = aggregate_with_gaps(raw, freq, codes)
    return AggregatedSales(base, gaps, _customer_columns(raw, freq, features, codes),
                           series_attributes(raw, codes))


def _make_pipeline(raw: RawData, base: pd.DataFrame, features: FeatureConfig, freq: str,
                   horizon: int, lags: tuple[int, ...], covariate_columns: tuple[str, ...],
                   known_future: pd.DataFrame | None) -> FeaturePipeline:
    known = tuple(raw.known_future_columns.values) if known_future is not None and \
        raw.known_future_columns is not None else ()
    return FeaturePipeline(
        freq=freq, horizon=horizon, keys=tuple(raw.keys), start=base["ds"].min(), lags=lags,
        rolling_windows=tuple(sorted(set(features.rolling_windows))),
        calendar=features.calendar, exog_columns=_exog_columns(base, features) + known,
        covariate_columns=covariate_columns,
        planned=planned_calendar(raw.calendar, freq, raw.keys),
        price_window=max(features.rolling_windows, default=DEFAULT_PRICE_WINDOW),
        known_future=known_future,
    )


def _customers_missing_in_gaps(base: pd.DataFrame, columns: tuple[str, ...]) -> pd.DataFrame:
    """Customer statistics are missing too where y is (a gap: no data, not no customers)."""
    gap = base["y"].isna().to_numpy()
    if not columns or not gap.any():
        return base
    base = base.copy()
    for column in columns:
        base[column] = np.where(gap, np.nan, base[column].to_numpy(dtype=np.float64))
    return base


def _customer_columns(raw: RawData, freq: str, features: FeatureConfig,
                      codes: LineCodes) -> pd.DataFrame | None:
    if not features.customers:
        return None
    if codes.customer is None or not (codes.customer >= 0).any():
        log.info("no customer ids in the sales: customer features skipped")
        return None
    return customer_covariates(raw, freq, features.rfm_quantiles, codes)


def _exog_columns(base: pd.DataFrame, features: FeatureConfig) -> tuple[str, ...]:
    """Future-known columns the spec enables and the data have."""
    wanted = (["promo", "price"] if features.price_promo else [])
    wanted += ["holiday"] if features.holidays else []
    if features.holidays and "holiday" not in base.columns:
        log.info("no holiday calendar: the holiday feature is skipped")
    return tuple(column for column in wanted if column in base.columns)


def _check_history(base: pd.DataFrame, pipeline: FeaturePipeline, source: str) -> None:
    """Enough periods for one horizon of rows whose lags and windows are all complete."""
    from features.validation import check_history

    longest_lag = max(pipeline.lags, default=0)
    longest_window = max(pipeline.rolling_windows, default=1)
    warmup = max(longest_lag, pipeline.horizon + longest_window - 1)
    reason = (f"the longest lag ({longest_lag}) or rolling window ({longest_window}, ending "
              f"{pipeline.horizon} periods back) plus a horizon of {pipeline.horizon}")
    check_history(int(base["ds"].nunique()), warmup + pipeline.horizon, source, reason=reason)


def _metadata(base: pd.DataFrame, panel: pd.DataFrame, pipeline: FeaturePipeline,
              spec_hash: str, season_length: int, gaps: GapReport) -> TrainingSetMetadata:
    return TrainingSetMetadata(
        spec_hash=spec_hash,
        data_digest=data_digest(base),
        start=base["ds"].min().date().isoformat(),
        end=base["ds"].max().date().isoformat(),
        freq=pipeline.freq,
        horizon=pipeline.horizon,
        n_series=int(base["series_id"].nunique()),
        n_periods=int(base["ds"].nunique()),
        n_rows=len(panel),
        keys=pipeline.keys,
        feature_columns=tuple(pipeline.feature_columns),
        exog_columns=pipeline.exog_columns,
        extra={"lags": list(pipeline.lags), "rolling_windows": list(pipeline.rolling_windows),
               "covariate_columns": list(pipeline.covariate_columns),
               "price_window": pipeline.price_window, "season_length": season_length,
               "gaps": gaps.to_dict()},
    )


def data_digest(base: pd.DataFrame) -> str:
    """SHA-256 of the base panel: each column's name, then its values as bytes (dates as
    int64 nanoseconds, numbers as float64 with one NaN pattern, text joined by 0x1F).
    Independent of pandas' hashing internals, so stable across runs and versions."""
    digest = hashlib.sha256()
    for name in base.columns:
        column = base[name]
        digest.update(f"\x1e{name}\x1e".encode())
        if pd.api.types.is_datetime64_any_dtype(column):
            digest.update(column.to_numpy("datetime64[ns]").astype(np.int64).tobytes())
        elif pd.api.types.is_numeric_dtype(column):
            values = column.to_numpy(dtype=np.float64, na_value=np.nan)
            digest.update(np.where(np.isnan(values), np.nan, values).tobytes())
        else:
            digest.update("\x1f".join(column.astype("str").tolist()).encode())
    return digest.hexdigest()


def series_attributes(raw: RawData, codes: LineCodes) -> pd.DataFrame:
    """Per series: series_id, keys, ``revenue`` (all lines) and ``segment``, the CRM segment
    that bought most of its revenue (when the customers table has segments)."""
    column = "revenue" if "revenue" in raw.sales.columns else "y"
    revenue = raw.sales[column].to_numpy(dtype=np.float64, na_value=0.0)
    attributes = codes.series_table.copy()
    attributes["revenue"] = np.bincount(codes.series, weights=revenue, minlength=codes.n_series)
    crm = None
    if codes.customer is not None and codes.customer_ids is not None:
        crm = crm_segment_codes(raw.customers, codes.customer_ids)
    if crm is not None:
        attributes["segment"] = _dominant_segment(codes, crm, np.clip(revenue, 0.0, None))
    return attributes


def _dominant_segment(codes: LineCodes, crm: tuple[np.ndarray, list[str]],
                      revenue: np.ndarray) -> pd.Series:
    segment_of, names = crm
    assert codes.customer is not None
    line_segment = np.where(codes.customer >= 0, segment_of[np.maximum(codes.customer, 0)], -1)
    coded = line_segment >= 0
    totals = np.bincount(codes.series[coded].astype(np.int64) * len(names) + line_segment[coded],
                         weights=revenue[coded], minlength=codes.n_series * len(names))
    totals = totals.reshape(codes.n_series, len(names))
    dominant = np.asarray(names, dtype=object)[np.argmax(totals, axis=1)]
    return pd.Series(np.where(totals.max(axis=1) > 0, dominant, None), dtype="str")
