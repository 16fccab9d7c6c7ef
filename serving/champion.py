"""The champion: the loaded model version behind the API, and its atomic hot swap.

A :class:`Champion` is one pyfunc model version with its validated metadata, its current
*state* (the python model rolled to each series' newest origin: ``serving.living``) and
its precomputed no-scenario forecast. The :class:`ChampionManager` holds the one reference
requests read (``manager.current``); a new champion is built completely — downloaded,
loaded, rolled to the actuals in the store, its forecast table computed — before that
reference is replaced, so requests in flight finish on the model they started with and
none fails during a swap.

The model contract (see the README): the python model (``unwrap_python_model()``) has
``predict(context, df, params)``: series_id, ds and optional exogenous columns in,
series_id, ds, yhat, yhat_lower, yhat_upper (and ``origin``) out, in input order;
``metadata`` gives family, horizon, freq, last_ds (the training origin), series_ids, keys,
level and exog_columns; optional: ``predict_with_features(df)`` also returns the feature
values used; ``trained_origins()`` and ``roll(actuals)`` (a copy forecasting from the
newest actuals: without it the origin never moves). serving never imports ``training``:
the model brings its own code.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from features.origin import SeriesOrigin, flag_stale
from serving.forecast_table import ForecastTable, SeriesForecast, build_entries, grid
from serving.registry import ChampionVersion, ModelSource, RegistryUnavailable, redact

log = logging.getLogger(__name__)

FORECAST_COLUMNS = ["series_id", "ds", "yhat", "yhat_lower", "yhat_upper"]


class ChampionMetadata(BaseModel):
    """What the served model says about itself (``unwrap_python_model().metadata``)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    family: str
    horizon: int = Field(ge=1)
    freq: Literal["W", "D", "M"]
    last_ds: date = Field(description="The training origin: the last period trained on.")
    series_ids: list[str] = Field(min_length=1)
    keys: list[str] = Field(default_factory=list)
    level: float | None = Field(None, description="Nominal level of the interval.")
    exog_columns: list[str] = Field(default_factory=list)


@dataclass(frozen=True)
class ModelRef:
    """Which model version answers, and where it was loaded from."""

    name: str
    version: str
    run_id: str | None
    alias: str
    source: Literal["registry", "local-copy"]
    path: str
    loaded_at: datetime


class Champion:
    """One loaded model version: pyfunc model, its rolled state and precomputed forecast."""

    def __init__(self, model: Any, ref: ModelRef, metadata: ChampionMetadata) -> None:
        self.model = model
        self.ref = ref
        self.metadata = metadata
        self.series_ids = frozenset(metadata.series_ids)
        self.exog_columns = frozenset(metadata.exog_columns)
        self.model_json = json.dumps(
            {"name": ref.name, "version": ref.version, "run_id": ref.run_id}, separators=(",", ":")
        )
        self.trained = model.unwrap_python_model()
        self.can_roll = callable(getattr(self.trained, "roll", None))
        self.trained_origins = self._trained_origins()
        self._ds_as_text = _schema_type(model, "ds") == "string"
        # What serving.living replaces when origins move: state and entries together,
        # under ``lock``; ``digests`` say what each entry was computed from.
        self.lock = threading.Lock()
        self.state: Any = self.trained
        at_training = {s: SeriesOrigin(s, o, o, None, "current")
                       for s, o in self.trained_origins.items()}
        self.digests: dict[str, Any] = {s: (o, ()) for s, o in at_training.items()}
        self.table = ForecastTable(self.forecast_entries(self.state, at_training))
        self.clock: date | None = self.table.clock()  # the newest origin of any series
        self.watermark: datetime | None = None  # actuals received before it are rolled in

    def take(self, series_ids: list[str]) -> tuple[Any, dict[str, SeriesForecast]]:
        """The current state and these series' entries, as one consistent pair."""
        with self.lock:
            return self.state, self.table.take(series_ids)

    def predict(
        self, frame: pd.DataFrame, params: dict[str, Any] | None = None, state: Any = None,
    ) -> tuple[pd.DataFrame, pd.DataFrame | list[dict] | None]:
        """The forecast of ``frame`` rows by ``state`` (default: the current one), plus the
        features it used if it says. ``params`` (e.g. another interval ``level``) go to
        the model's ``predict`` as in MLflow's scoring server; the features are then unknown.
        """
        state = self.state if state is None else state
        frame = self._model_input(frame)
        with_features = getattr(state, "predict_with_features", None)
        if params or with_features is None:
            forecast, features = state.predict(None, frame, params or None), None
        else:
            forecast, features = with_features(frame)
        if len(forecast) != len(frame) or not set(FORECAST_COLUMNS) <= set(forecast.columns):
            raise RuntimeError(
                f"model {self.ref.name} v{self.ref.version} broke the forecast contract: "
                f"{len(forecast)} rows with columns {list(forecast.columns)} for {len(frame)}"
            )
        return forecast.reset_index(drop=True), features

    def forecast_entries(self, state: Any, origins: dict[str, SeriesOrigin]
                         ) -> dict[str, SeriesForecast]:
        """The no-scenario forecast of these series from their origins, by ``state``."""
        if not origins:
            return {}
        meta = self.metadata
        forecast, features = self.predict(grid(origins, meta.freq, meta.horizon), state=state)
        return build_entries(forecast, features, origins, meta.freq, meta.horizon)

    def status(self, entry: SeriesForecast, clock: date | None) -> SeriesOrigin:
        """The entry's origin, flagged stale when far behind ``clock`` (features.origin)."""
        return flag_stale(entry.origin, clock, self.metadata.freq, self.metadata.horizon)

    def series_id_for(self, keys: dict[str, str]) -> str:
        """series_id of the series with these key values ("|".join in the model's order)."""
        expected = self.metadata.keys
        if set(keys) != set(expected):
            raise KeyError(f"series keys must be exactly {expected}, got {sorted(keys)}")
        return "|".join(str(keys[name]) for name in expected)

    def _trained_origins(self) -> dict[str, date]:
        listed = getattr(self.trained, "trained_origins", None)
        if callable(listed):
            return {str(s): date.fromisoformat(str(d)[:10]) for s, d in listed().items()}
        return dict.fromkeys(sorted(self.series_ids), self.metadata.last_ds)

    def _model_input(self, frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame.reset_index(drop=True)
        ds = frame["ds"]
        if not pd.api.types.is_datetime64_any_dtype(ds):
            ds = pd.to_datetime(ds, format="ISO8601")
        frame["ds"] = ds.dt.strftime("%Y-%m-%d") if self._ds_as_text else ds
        frame["series_id"] = frame["series_id"].astype(str)
        for column in frame.columns:
            if column not in ("series_id", "ds") and frame[column].dtype != "float64":
                frame[column] = pd.to_numeric(frame[column]).astype("float64")
        return frame


def _schema_type(model: Any, column: str) -> str | None:
    """Type name of ``column`` in the model signature's inputs (None if unsigned)."""
    try:
        schema = model.metadata.get_input_schema()
        spec = next(s for s in schema.inputs if s.name == column)
        return str(getattr(spec.type, "name", spec.type))
    except (AttributeError, StopIteration, TypeError):
        return None


def load_champion(path: Path, version: ChampionVersion, source: str) -> Champion:
    """Load the pyfunc model at ``path`` and build its forecast table."""
    import mlflow.pyfunc

    model = mlflow.pyfunc.load_model(str(path))
    metadata = ChampionMetadata.model_validate(model.unwrap_python_model().metadata)
    ref = ModelRef(
        name=version.model_name, version=version.version, run_id=version.run_id,
        alias=version.alias, source=source, path=str(path),  # type: ignore[arg-type]
        loaded_at=datetime.now(UTC),
    )
    champion = Champion(model, ref, metadata)
    log.info(
        "champion %s v%s (%s, %d series, trained to %s) loaded from %s",
        ref.name, ref.version, metadata.family, len(metadata.series_ids), metadata.last_ds,
        source,
    )
    return champion


@dataclass(frozen=True)
class RefreshOutcome:
    """What a reload did: whether it swapped, and the versions before and after."""

    swapped: bool
    previous: ModelRef | None
    current: ModelRef


class ChampionManager:
    """Holds the champion requests use and replaces it, whole, when the alias moves."""

    def __init__(
        self, source: ModelSource, on_swap: Callable[[Champion], None] | None = None,
        prepare: Callable[[Champion], None] | None = None,
    ) -> None:
        self.source = source
        self.on_swap = on_swap
        self.prepare = prepare  # e.g. roll the new champion to the actuals in the store
        self.current: Champion | None = None
        self.last_error: str | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        """First load: the alias from the registry, else the local copy; never raises."""
        try:
            self.refresh()
            return
        except RegistryUnavailable as exc:
            self.last_error = str(exc)
            log.warning("registry unavailable (%s); trying the local copy", exc)
        except Exception as exc:
            self.last_error = redact(f"{type(exc).__name__}: {exc}")
            log.exception("could not load the champion from the registry")
        self._load_local_copy()

    def _load_local_copy(self) -> None:
        copy = self.source.local_copy()
        if copy is None:
            log.error("no champion to serve yet; /readyz answers 503 until one loads")
            return
        version, path = copy
        try:
            self._swap(load_champion(path, version, source="local-copy"))
        except Exception as exc:
            self.last_error = f"local copy unusable: {exc}"
            log.exception("could not load the local copy at %s", path)

    def refresh(self, force: bool = False) -> RefreshOutcome:
        """Swap in the alias's version if it differs from the current one (or if forced)."""
        with self._lock:
            wanted = self.source.resolve()
            current = self.current
            if current is not None and not force and _same_version(current.ref, wanted):
                return RefreshOutcome(False, current.ref, current.ref)
            champion = load_champion(self.source.fetch(wanted), wanted, source="registry")
            self._swap(champion)
            return RefreshOutcome(True, current.ref if current else None, champion.ref)

    def _swap(self, champion: Champion) -> None:
        if self.prepare is not None:
            self.prepare(champion)
        previous = self.current
        self.current = champion  # the one reference requests read: an atomic replacement
        self.last_error = None
        if self.on_swap is not None:
            self.on_swap(champion)
        if previous is not None:
            log.info("champion swapped: v%s -> v%s", previous.ref.version, champion.ref.version)

    async def poll(self, every_seconds: float) -> None:
        """Check the alias every ``every_seconds`` until cancelled (the app's lifespan)."""
        while True:
            await asyncio.sleep(every_seconds)
            try:
                await asyncio.to_thread(self.refresh)
            except RegistryUnavailable as exc:
                log.warning("champion poll: %s", exc)
            except Exception:
                log.exception("champion poll failed; keeping the current champion")


def _same_version(ref: ModelRef, wanted: ChampionVersion) -> bool:
    return ref.name == wanted.model_name and ref.version == wanted.version
