"""The served model: ONE ``mlflow.pyfunc.PythonModel`` for every forecaster family.

Artifacts logged with the model:

* ``forecaster`` (``forecaster.joblib``): the fitted forecaster. It carries what a
  forecast needs: its FeaturePipeline and history tail (to build the feature rows of
  future periods) and the conformal calibration of its backtest (for the interval).
* ``metadata`` (``metadata.json``): family, spec name, horizon, freq, level, keys,
  series ids, exog and feature columns, ``last_ds`` (the training origin: the last
  observed period), ``forecast_ds`` (the ``horizon`` periods after it), the backtest
  metrics, the data digest and the spec hash.
* ``reference_sample`` (``reference_sample.parquet``): a seeded sample of at most 5,000
  training feature rows (series_id, ds, keys, exog, features, y) — the reference the
  drift monitor compares logged prediction inputs with.

Input rows: ``series_id`` (str), ``ds`` (one of the ``horizon`` periods after the
series' origin, as a datetime or an ISO date string — the signature types it ``Any`` so
both in-process callers and the JSON scoring server work), and optional future exogenous
columns (``promo``, ``price``, ``holiday``: a what-if scenario for that row; missing
or NaN means the planned / last known value). Output: ``series_id, ds, yhat,
yhat_lower, yhat_upper, origin`` in input order. The optional ``level`` param changes the
interval level. Unknown series or a ds outside the horizon raise a ValueError naming
them. ``predict_with_features`` also returns the feature rows behind each forecast (for
the prediction log), ``reference_sample()`` reads the drift reference, and
``explain(rows)`` says why each forecast is what it is (:mod:`training.forecasters.explain`).

**Living origins.** A loaded model forecasts from its training origin. ``roll(actuals)``
returns a copy whose series forecast from their newest actual (the forecaster's
``update``: no refit; the rule is :mod:`features.origin`); ``origins()`` and
``trained_origins()`` say where each series stands. The API (``serving.living``) rolls
the champion from the actuals in its prediction store; ``mlflow models serve`` serves the
training origin.

The model is logged with ``code_paths`` = the ``features`` and ``training`` package
directories, so it loads in a process where salescast is not installed (``mlflow models
serve``, the serving app) without that process importing ``training`` itself. It is
logged "from code" (:mod:`training.pyfunc_model`), not as a pickled ``SalescastModel``.
"""

from __future__ import annotations

import functools
import json
import logging
import tempfile
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import joblib
import mlflow
import numpy as np
import pandas as pd

import features
import training
from features.calendar import (
    day_numbers,
    first_days,
    period_numbers,
    period_numbers_of_days,
    period_starts,
)
from training.base import FORECAST_COLUMNS
from training.families import requirements as family_requirements
from training.forecasters.cells import predict_cells
from training.forecasters.explain import TOP, explain_rows

if TYPE_CHECKING:
    from mlflow.models import ModelSignature
    from mlflow.models.model import ModelInfo

    from features.training_set import TrainingSet
    from training.backtest import BacktestResult
    from training.base import Forecaster

log = logging.getLogger(__name__)

OUTPUT_COLUMNS = [*FORECAST_COLUMNS, "origin"]
FAST_CELLS = 64  # rows up to which a family with a matrix predictor takes the cell path
REFERENCE_ROWS = 5_000
ARTIFACT_FILES = {
    "forecaster": "forecaster.joblib",
    "metadata": "metadata.json",
    "reference_sample": "reference_sample.parquet",
}
MODEL_CODE = str(Path(__file__).with_name("pyfunc_model.py"))  # builds SalescastModel
# What the pickled forecaster and its code need (mlflow brings cloudpickle, pydantic, yaml),
# from the family table; kept short: MLflow checks each pin when it saves and loads.
_REQUIREMENTS = family_requirements()


class SalescastModel(mlflow.pyfunc.PythonModel):
    """A fitted salescast forecaster behind the pyfunc interface (see module docstring)."""

    def __init__(self, forecaster: Forecaster | None = None,
                 metadata: dict[str, Any] | None = None) -> None:
        self.forecaster = forecaster
        self.metadata: dict[str, Any] = metadata or {}
        self.reference_path: str | None = None

    def load_context(self, context: Any) -> None:
        self.forecaster = joblib.load(context.artifacts["forecaster"])
        self.metadata = json.loads(Path(context.artifacts["metadata"]).read_text())
        self.reference_path = context.artifacts.get("reference_sample")

    def predict(self, context: Any, model_input: pd.DataFrame,
                params: dict[str, Any] | None = None) -> pd.DataFrame:
        """Forecast the requested (series_id, ds) rows; see the module docstring."""
        fast = self._forecast_cells(model_input, params)
        return fast[0] if fast is not None else self._forecast(model_input, params)[0]

    def origins(self) -> dict[str, str]:
        """series_id -> ISO date of the period its forecast starts after."""
        return _iso_dates(self.forecaster.origins())

    def trained_origins(self) -> dict[str, str]:
        """series_id -> ISO date of the last period the model was trained on."""
        return _iso_dates(self.forecaster.trained_origins_)

    def roll(self, actuals: pd.DataFrame) -> SalescastModel:
        """A copy rolled forward: per series in ``actuals`` (series_id, ds, y [, exog]), all
        its consecutive periods after its training origin (the forecaster's ``update``)."""
        rolled = SalescastModel(self.forecaster.update(actuals), self.metadata)
        rolled.reference_path = self.reference_path
        return rolled

    def predict_with_features(self, model_input: pd.DataFrame,
                              params: dict[str, Any] | None = None
                              ) -> tuple[pd.DataFrame, pd.DataFrame | list[dict[str, Any]]]:
        """The forecast and, per input row, the feature values the model saw — a frame
        (series_id, ds, feature columns), or from the few-cell fast path one dict per row —
        what the serving app logs for drift monitoring."""
        fast = self._forecast_cells(model_input, params)
        if fast is not None:
            return fast
        forecast, rows, used, scenario = self._forecast(model_input, params)
        columns = [c for c in self.metadata["feature_columns"] if c in used.columns]
        if len(columns) < len(self.metadata["feature_columns"]):  # a family without features
            future = getattr(self.forecaster, "future_features", None)
            if future is None:
                return forecast, rows[["series_id", "ds"]].copy()
            used = future(int(self.metadata["horizon"]), scenario,
                          series_ids=rows["series_id"].unique().tolist())
            columns = [c for c in self.metadata["feature_columns"] if c in used.columns]
        order = positions_of(used, rows)
        at = [used.columns.get_loc(c) for c in ("series_id", "ds", *columns)]
        return forecast, used.iloc[order, at].reset_index(drop=True)

    def _forecast_cells(self, model_input: pd.DataFrame, params: dict[str, Any] | None
                        ) -> tuple[pd.DataFrame, list[dict[str, Any]]] | None:
        """A few rows through the cell fast path (:mod:`training.forecasters.cells`): the
        forecast and one dict of feature values per row, or None where it does not apply
        (a family without a matrix predictor, many rows, a (series, ds) asked twice)."""
        if (len(model_input) > FAST_CELLS
                or not getattr(self.forecaster, "cells_supported", False)):
            return None
        level = interval_level(params, self.metadata)
        origins = self.forecaster.origins()
        rows = validate_input(model_input, self.metadata, origins)
        series, steps = rows["series_id"].tolist(), rows["step"].tolist()
        if len(set(zip(series, steps, strict=True))) < len(series):
            return None  # the general path merges a repeated cell's scenario (or refuses it)
        exog = {c: rows[c].to_numpy(dtype=float) for c in _scenario_columns(rows, self.metadata)}
        cells = predict_cells(self.forecaster, series, steps, exog, level)
        iso = {s: pd.Timestamp(origins[s]).date().isoformat() for s in set(series)}
        forecast = pd.DataFrame({
            "series_id": rows["series_id"], "ds": rows["ds"], "yhat": cells.yhat,
            "yhat_lower": cells.yhat_lower, "yhat_upper": cells.yhat_upper,
            "origin": [iso[s] for s in series]})
        columns = [c for c in self.metadata["feature_columns"] if c in cells.features[0]]
        return forecast, [{c: record[c] for c in columns} for record in cells.features]

    def _forecast(self, model_input: pd.DataFrame, params: dict[str, Any] | None
                  ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame | None]:
        """The forecast of the input rows (in input order), the rows checked, the rows the
        model read (aligned with its own output, not the input) and the scenario."""
        level = interval_level(params, self.metadata)
        origins = self.forecaster.origins()
        rows = validate_input(model_input, self.metadata, origins)
        scenario = scenario_exog(rows, self.metadata)
        series_ids = rows["series_id"].unique().tolist()
        forecast, used = self.forecaster.predict_with_rows(
            int(self.metadata["horizon"]), scenario, level, series_ids)
        order = positions_of(forecast, rows)
        out = forecast.iloc[order].reset_index(drop=True)
        iso = {s: pd.Timestamp(d).date().isoformat() for s, d in origins[series_ids].items()}
        out["origin"] = [iso[s] for s in out["series_id"]]
        return out[OUTPUT_COLUMNS], rows, used, scenario

    def explain(self, model_input: pd.DataFrame, params: dict[str, Any] | None = None
                ) -> pd.DataFrame:
        """Why each input row's forecast is what it is: the drivers frame of
        :mod:`training.forecasters.explain` (one row per driver; ``cell`` = the input row),
        with the input's scenario values; ``params``: ``top`` drivers per row (default 5,
        0: all of them)."""
        rows = validate_input(model_input, self.metadata, self.forecaster.origins())
        top = int((params or {}).get("top", TOP))
        return explain_rows(self.forecaster, rows, int(self.metadata["horizon"]),
                            scenario_exog(rows, self.metadata), top or None)

    def reference_sample(self) -> pd.DataFrame:
        """The training feature rows logged as the drift reference."""
        if self.reference_path is None:
            raise FileNotFoundError("this model was not loaded from MLflow artifacts")
        return pd.read_parquet(self.reference_path)


def _iso_dates(values: pd.Series) -> dict[str, str]:
    return {str(k): pd.Timestamp(v).date().isoformat() for k, v in values.items()}


def validate_input(model_input: pd.DataFrame, metadata: dict[str, Any],
                   origins: pd.Series) -> pd.DataFrame:
    """The input rows with ``ds`` as datetimes, or a ValueError that says what is wrong
    (``origins``: series_id -> the period each series forecasts after)."""
    frame = pd.DataFrame(model_input).reset_index(drop=True)
    missing = [c for c in ("series_id", "ds") if c not in frame.columns]
    if missing:
        raise ValueError(f"model input is missing column(s) {missing}; it needs series_id and "
                         f"ds, optionally {metadata.get('exog_columns', [])}")
    if frame.empty:
        raise ValueError("model input has no rows")
    frame["series_id"] = frame["series_id"].astype(str).astype(object)  # numpy, not pyarrow
    frame["ds"] = _parse_ds(frame["ds"])
    _check_series(frame, metadata)
    frame["step"] = _check_horizon(frame, metadata, origins)
    for column in _scenario_columns(frame, metadata):
        frame[column] = _numbers(frame[column])
    return frame


def _numbers(values: pd.Series) -> pd.Series:
    """A scenario column as floats (missing stays NaN: the planned value is used)."""
    if pd.api.types.is_float_dtype(values):
        return values
    parsed = pd.to_numeric(values, errors="coerce").astype(float)
    bad = parsed.isna() & values.notna()
    if bad.any():
        examples = ", ".join(f"row {i}: {values.iloc[i]!r}" for i in bad[bad].index[:5])
        raise ValueError(f"{values.name}: {int(bad.sum())} scenario value(s) are not numbers "
                         f"({examples})")
    return parsed


def _parse_ds(values: pd.Series) -> pd.Series:
    """Datetimes as they are; text as ISO 8601 dates (anything else is an error)."""
    if pd.api.types.is_datetime64_any_dtype(values):
        parsed = values
    else:
        parsed = pd.to_datetime(values, errors="coerce", format="ISO8601")
    if getattr(parsed.dt, "tz", None) is not None:
        parsed = parsed.dt.tz_localize(None)
    bad = parsed.isna()
    if bad.any():
        examples = ", ".join(f"row {i}: {values.iloc[i]!r}" for i in bad[bad].index[:5])
        raise ValueError(f"ds: {int(bad.sum())} row(s) are not dates ({examples})")
    return parsed.astype("datetime64[ns]")


def _check_series(frame: pd.DataFrame, metadata: dict[str, Any]) -> None:
    known = set(metadata["series_ids"])
    unknown = sorted(set(frame["series_id"]) - known)
    if unknown:
        shown = ", ".join(repr(s) for s in unknown[:10])
        raise ValueError(f"unknown series_id(s): {shown} (the model forecasts "
                         f"{len(known)} series, e.g. {sorted(known)[:3]})")


def _check_horizon(frame: pd.DataFrame, metadata: dict[str, Any],
                   origins: pd.Series) -> np.ndarray:
    """Every ds is one of the ``horizon`` periods after its series' origin: its step."""
    freq, horizon = metadata["freq"], int(metadata["horizon"])
    days = day_numbers(frame["ds"])
    numbers = period_numbers_of_days(days, freq)
    asked = frame["series_id"].tolist()
    unique = list(dict.fromkeys(asked))  # the series asked, not every series of the model
    origin_numbers = dict(zip(unique, period_numbers(origins.loc[unique].to_numpy(),
                                                     freq).tolist(), strict=True))
    steps = numbers - np.array([origin_numbers[s] for s in asked])
    outside = (first_days(numbers, freq) != days) | (steps < 1) | (steps > horizon)
    if outside.any():
        first = frame.loc[outside].iloc[0]
        start = pd.Timestamp(origins[first["series_id"]])
        first_step = int(period_numbers(pd.DatetimeIndex([start]), freq)[0]) + 1
        allowed = period_starts(np.array([first_step, first_step + horizon - 1]), freq)
        shown = ", ".join(sorted({d.date().isoformat() for d in frame.loc[outside, "ds"]})[:10])
        raise ValueError(
            f"ds outside the forecast horizon: {shown}; the model forecasts series "
            f"{first['series_id']!r} for the {horizon} periods ({freq}) "
            f"{allowed[0].date()} .. {allowed[1].date()} after its origin {start.date()}")
    return steps


def _scenario_columns(frame: pd.DataFrame, metadata: dict[str, Any]) -> list[str]:
    return [c for c in metadata.get("exog_columns", []) if c in frame.columns]


def scenario_exog(rows: pd.DataFrame, metadata: dict[str, Any]) -> pd.DataFrame | None:
    """The what-if exogenous values given with the input rows (series_id, ds, exog), or
    None when the input carries none; NaN cells keep the planned / last known value."""
    columns = _scenario_columns(rows, metadata)
    if not columns:
        return None
    given = ~np.isnan(rows[columns].to_numpy(dtype=np.float64))
    used = [c for c, any_given in zip(columns, given.any(axis=0), strict=True) if any_given]
    if not used:
        return None
    picked = rows.loc[given.any(axis=1), ["series_id", "ds", *used]].reset_index(drop=True)
    keys = list(zip(picked["series_id"].tolist(), day_numbers(picked["ds"]).tolist(),
                    strict=True))
    if len(set(keys)) == len(keys):
        return picked
    distinct = picked.drop_duplicates()
    clashes = distinct[distinct.duplicated(["series_id", "ds"], keep=False)]
    if not clashes.empty:
        first = clashes.iloc[0]
        raise ValueError(f"conflicting scenario values for series {first['series_id']!r}"
                         f" at {first['ds'].date()}: one value per (series_id, ds), please")
    return distinct.reset_index(drop=True)


def positions_of(frame: pd.DataFrame, rows: pd.DataFrame) -> np.ndarray:
    """Where each (series_id, ds) of ``rows`` is in ``frame`` (a dict join: requests are
    small and a pandas merge costs milliseconds); ValueError for a row it lacks."""
    keys = zip(frame["series_id"].astype(str).tolist(),
               pd.DatetimeIndex(frame["ds"]).asi8.tolist(), strict=True)
    where = {key: i for i, key in enumerate(keys)}
    wanted = zip(rows["series_id"].tolist(), pd.DatetimeIndex(rows["ds"]).asi8.tolist(),
                 strict=True)
    found = [where.get(key, -1) for key in wanted]
    if -1 in found:
        first = rows.iloc[found.index(-1)]
        raise ValueError(f"{found.count(-1)} row(s) outside the forecast, e.g. series "
                         f"{first['series_id']!r} at {first['ds'].date()}")
    return np.asarray(found, dtype=np.int64)


def interval_level(params: dict[str, Any] | None, metadata: dict[str, Any]) -> float:
    """The ``level`` param (a share strictly between 0 and 1), else the model's own."""
    given = (params or {}).get("level")
    if given is None:
        return float(metadata["level"])
    try:
        level = float(given)
    except (TypeError, ValueError):
        raise ValueError(f"level must be a number between 0 and 1, not {given!r}") from None
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be between 0 and 1 (e.g. 0.8), not {given!r}")
    return level


def model_metadata(
    forecaster: Forecaster,
    training_set: TrainingSet,
    backtest: BacktestResult,
    spec_name: str,
    level: float,
    baseline: pd.DataFrame,
) -> dict[str, Any]:
    """What the served model says about itself (``metadata.json``); ``baseline``: the
    forecast's (series_id, ds) rows (:func:`forecast_periods`)."""
    meta = training_set.metadata
    return {
        "family": forecaster.family,
        "spec_name": spec_name,
        "spec_hash": meta.spec_hash,
        "data_digest": meta.data_digest,
        "horizon": int(meta.horizon),
        "freq": meta.freq,
        "level": float(level),
        "keys": list(meta.keys),
        "series_ids": training_set.series_ids,
        "exog_columns": list(meta.exog_columns),
        "feature_columns": list(meta.feature_columns),
        "last_ds": pd.Timestamp(training_set.base["ds"].max()).date().isoformat(),
        "forecast_ds": sorted({pd.Timestamp(d).date().isoformat() for d in baseline["ds"]}),
        "backtest_metrics": {k: float(v) for k, v in backtest.metrics.items()},
        "params": {k: _json_value(v) for k, v in forecaster.get_params().items()},
        "series_segments": series_segments(training_set),
    }


def series_segments(training_set: TrainingSet) -> dict[str, str]:
    """Each series' dominant customer segment (by revenue), for accuracy by segment."""
    attributes = training_set.series_attributes
    if attributes is None or "segment" not in attributes.columns:
        return {}
    known = attributes.dropna(subset=["segment"])
    return dict(zip(known["series_id"].astype(str), known["segment"].astype(str), strict=True))


def _json_value(value: Any) -> Any:
    return value if isinstance(value, (bool, int, float, str, type(None))) else str(value)


def reference_sample(training_set: TrainingSet, seed: int = 0,
                     rows: int = REFERENCE_ROWS) -> pd.DataFrame:
    """A seeded sample of at most ``rows`` training feature rows (the drift reference)."""
    panel = training_set.panel
    keep = ["series_id", "ds", *training_set.keys, *training_set.exog_columns,
            *training_set.feature_columns, "y"]
    columns = list(dict.fromkeys(c for c in keep if c in panel.columns))
    sample = panel.sample(n=min(rows, len(panel)), random_state=seed)
    return sample[columns].sort_values(["series_id", "ds"]).reset_index(drop=True)


def model_signature(exog_columns: list[str], level: float) -> ModelSignature:
    """Input: series_id, ds (datetime or ISO string), optional exog; output: the forecast."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema
    from mlflow.types.schema import AnyType

    inputs = [ColSpec("string", "series_id"), ColSpec(AnyType(), "ds")]
    inputs += [ColSpec("double", c, required=False) for c in exog_columns]
    outputs = [ColSpec("string", "series_id"), ColSpec("datetime", "ds")]
    outputs += [ColSpec("double", c) for c in ("yhat", "yhat_lower", "yhat_upper")]
    outputs += [ColSpec("string", "origin")]
    params = ParamSchema([ParamSpec("level", "double", float(level))])
    return ModelSignature(inputs=Schema(inputs), outputs=Schema(outputs), params=params)


def input_example(baseline: pd.DataFrame, training_set: TrainingSet) -> pd.DataFrame:
    """Two series x two periods of the horizon, with their planned exogenous values."""
    series = sorted(baseline["series_id"].astype(str).unique())[:2]
    periods = sorted(baseline["ds"].unique())[:2]
    rows = pd.DataFrame([(s, d) for s in series for d in periods], columns=["series_id", "ds"])
    rows["ds"] = pd.to_datetime(rows["ds"]).astype("datetime64[ns]")
    exog = training_set.exog_columns
    if not exog:
        return rows
    future = training_set.future_frame()[["series_id", "ds", *exog]]
    future = future.assign(series_id=future["series_id"].astype(str),
                           ds=pd.to_datetime(future["ds"]).astype("datetime64[ns]"))
    return rows.merge(future, on=["series_id", "ds"], how="left")


def forecast_periods(forecaster: Forecaster, training_set: TrainingSet) -> pd.DataFrame:
    """The (series_id, ds) rows the model forecasts without a scenario: the ``horizon``
    periods after each series' origin, the rows ``forecaster.predict`` returns (without
    computing a forecast) and the ones :func:`validate_input` accepts."""
    origins = forecaster.origins()
    horizon, freq = int(training_set.horizon), training_set.metadata.freq
    numbers = period_numbers(origins.to_numpy(), freq)[:, None] + np.arange(1, horizon + 1)
    return pd.DataFrame({
        "series_id": np.repeat(origins.index.astype(str).to_numpy(dtype=object), horizon),
        "ds": period_starts(numbers.ravel(), freq),
    })


def pip_requirements() -> list[str]:
    """Pinned requirements of the installed libraries (no slow inference at log time)."""
    return list(_pins())


@functools.cache
def _pins() -> tuple[str, ...]:
    """The installed versions, looked up once per process (each lookup scans sys.path)."""
    pins = []
    for name in _REQUIREMENTS:
        try:
            pins.append(f"{name}=={importlib_metadata.version(name)}")
        except importlib_metadata.PackageNotFoundError:
            continue
    return tuple(pins)


def code_paths() -> list[str]:
    """The package directories the model needs to load without salescast installed."""
    return [str(Path(features.__file__).parent), str(Path(training.__file__).parent)]


def write_artifacts(out_dir: Path, forecaster: Forecaster, metadata: dict[str, Any],
                    reference: pd.DataFrame) -> dict[str, str]:
    paths = {key: out_dir / name for key, name in ARTIFACT_FILES.items()}
    joblib.dump(forecaster, paths["forecaster"])
    paths["metadata"].write_text(json.dumps(metadata, indent=2))
    reference.to_parquet(paths["reference_sample"], index=False)
    return {key: str(path) for key, path in paths.items()}


def log_forecaster(
    forecaster: Forecaster,
    training_set: TrainingSet,
    backtest: BacktestResult,
    *,
    spec_name: str,
    level: float,
    name: str = "model",
    seed: int = 0,
) -> ModelInfo:
    """Log the fitted ``forecaster`` as a pyfunc model in the active run."""
    baseline = forecast_periods(forecaster, training_set)  # no forecast needed
    metadata = model_metadata(forecaster, training_set, backtest, spec_name, level, baseline)
    with tempfile.TemporaryDirectory() as tmp:
        artifacts = write_artifacts(Path(tmp), forecaster, metadata,
                                    reference_sample(training_set, seed))
        return mlflow.pyfunc.log_model(
            name=name,
            python_model=MODEL_CODE,  # models from code: no pickled object, no warning
            artifacts=artifacts,
            code_paths=code_paths(),
            signature=model_signature(training_set.exog_columns, level),
            input_example=input_example(baseline, training_set),
            pip_requirements=pip_requirements(),
        )
