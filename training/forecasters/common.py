"""What every forecaster family shares: the season length, the per-series level, and the
fitted history (feature pipeline + tail of the base panel) that prediction needs.

A fitted forecaster is pickled into MLflow and served, so it keeps only ``pipeline_`` and
``tail_ = pipeline.tail(base)``: enough history to build the feature rows of the next
``horizon`` periods, not the whole panel — plus the rows posted since (``extension_``),
which roll each series' origin forward (:meth:`PanelForecaster.update`).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd
from sklearn.base import clone

from features.calendar import SEASON_LENGTHS, period_numbers
from features.pipeline import ORDER, last_rows, sorted_panel
from training.base import Forecaster

if TYPE_CHECKING:
    from features import TrainingSet

log = logging.getLogger(__name__)

TARGET_DERIVED_PREFIXES: tuple[str, ...] = ("lag_", "roll_mean_", "roll_std_")
_LEVEL_FLOOR = 1e-6
ROLL_MEAN = "roll_mean_"
TARGET_SCALES: tuple[str, ...] = ("row", "series", "both")  # GlobalForecaster.target_scale
HEDGED_SCALES: tuple[str, str] = ("row", "series")  # the halves of target_scale="both"
TARGET_TRANSFORMS: tuple[str, ...] = ("asinh", "none")  # GlobalForecaster.target_transform
ROW_LEVEL_FLOOR = 0.1  # a row level below this share of the series scale is not used


def season_length_for(training_set: TrainingSet, explicit: int | None = None) -> int:
    """Periods per season: ``explicit``, else the training set's own, else by frequency."""
    if explicit is not None:
        return int(explicit)
    recorded = training_set.metadata.extra.get("season_length")
    if recorded:
        return int(recorded)
    return SEASON_LENGTHS.get(training_set.freq, 1)


def recent_level(base: pd.DataFrame, season_length: int) -> pd.Series:
    """Per series: mean |y| over its last ``season_length`` periods (known at the origin).

    The scale that makes series of different size comparable (regression targets,
    conformal residuals). Floored at 1 % of the median level, so a series with no recent
    sales gets a small positive scale instead of 0.
    """
    ordered = sorted_panel(base)
    recent = ordered.loc[last_rows(ordered, season_length)]
    level = recent["y"].abs().groupby(recent["series_id"], sort=True).mean()
    positive = level[level > 0]
    floor = max(_LEVEL_FLOOR, 0.01 * float(positive.median())) if len(positive) else 1.0
    return level.clip(lower=floor).fillna(floor).rename("scale")


def level_column(columns: Sequence[str]) -> str | None:
    """The rolling mean of y with the longest window among ``columns`` (None if none)."""
    windows = {int(c.removeprefix(ROLL_MEAN)): c for c in columns
               if c.startswith(ROLL_MEAN) and c.removeprefix(ROLL_MEAN).isdigit()}
    return windows[max(windows)] if windows else None


def target_derived_columns(columns: list[str]) -> list[str]:
    """Feature columns computed from past y (lags, rolling statistics): scaled with y."""
    return [c for c in columns if c.startswith(TARGET_DERIVED_PREFIXES)]


class PanelForecaster(Forecaster):
    """A forecaster that predicts from the feature pipeline's future rows, and rolls its
    origins forward with :meth:`update` (the contract in :mod:`training.base`).

    State: ``tail_`` (the training tail, never changed), ``extension_`` (the rows posted
    after each series' training origin) and ``history_`` (the tail each series predicts
    from: the last ``pipeline.history_length`` rows of both). Subclasses call
    :meth:`_remember` in ``fit``, :meth:`_future_rows` in ``predict_mean`` and
    :meth:`_finish` to shape the output; a family with per-series state of its own
    overrides :meth:`_rolled` to recompute it for the updated series.
    """

    def _remember(self, training_set: TrainingSet, pipeline: Any = None) -> None:
        """Keep the pipeline (``training_set``'s unless given) and the tail it reads."""
        base = training_set.base
        self.pipeline_: Any = pipeline or training_set.pipeline
        self.tail_: pd.DataFrame = self.pipeline_.tail(base).reset_index(drop=True)
        self.horizon_: int = training_set.horizon
        y = base["y"].to_numpy(dtype=float, na_value=np.nan)
        self.nonnegative_: bool = not bool((y < 0).any())  # a missing y is not negative
        self.trained_origins_: pd.Series = self.tail_.groupby("series_id")["ds"].max()
        self.extension_: pd.DataFrame = self.tail_.iloc[:0].copy()
        self.history_: pd.DataFrame = self.tail_
        self.future_cache_: FutureCache | None = None

    def origins(self) -> pd.Series:
        """series_id -> the period each series' forecast starts after (its origin)."""
        cached = getattr(self, "origins_cache_", None)
        if cached is None:
            last = self.history_.groupby("series_id")["ds"].max()
            cached = self.origins_cache_ = pd.Series(
                last.to_numpy(), index=pd.Index(last.index.astype(str), dtype=object),
                name="ds")
        return cached

    def update(self, new_rows: pd.DataFrame) -> PanelForecaster:
        """A copy rolled forward with ``new_rows`` (see :mod:`training.base`); no refit."""
        rows = self._extension_rows(new_rows)
        ids = pd.Index(rows["series_id"].unique())
        new = copy.copy(self)
        kept = self.extension_[~self.extension_["series_id"].isin(ids)]
        new.extension_ = pd.concat([kept, rows], ignore_index=True)
        own = self.tail_[self.tail_["series_id"].isin(ids)]
        rolled = self.pipeline_.tail(pd.concat([own, rows], ignore_index=True))
        others = self.history_[~self.history_["series_id"].isin(ids)]
        new.history_ = pd.concat([others, rolled], ignore_index=True).sort_values(
            ORDER, kind="stable", ignore_index=True)
        new.future_cache_ = new.origins_cache_ = None
        new._rolled(list(ids))
        return new

    reads_features: ClassVar[bool] = True  # False: predicts from base rows (no lags)

    def predict_mean(
        self, horizon: int, future_exog: pd.DataFrame | None = None,
        series_ids: Sequence[str] | None = None,
    ) -> pd.DataFrame:
        """Point forecast for the next ``horizon`` periods, honouring ``future_exog``."""
        return self.predict_mean_with_rows(horizon, future_exog, series_ids)[0]

    def predict_mean_with_rows(
        self, horizon: int, future_exog: pd.DataFrame | None = None,
        series_ids: Sequence[str] | None = None,
    ) -> tuple[pd.DataFrame, pd.DataFrame]:
        rows = self._future_rows(horizon, future_exog, self.reads_features, series_ids)
        return self._finish(rows, self._predict_rows(rows)), rows

    def _predict_rows(self, rows: pd.DataFrame) -> np.ndarray:  # pragma: no cover - abstract
        """yhat of each future row (sorted by series, ds; ``step`` = 1..horizon)."""
        raise NotImplementedError

    def _rolled(self, series_ids: list[str]) -> None:
        """Recompute the family's own per-series state of ``series_ids`` (after update)."""

    def _extension_rows(self, new_rows: pd.DataFrame) -> pd.DataFrame:
        """``new_rows`` checked (known series, consecutive periods after the training
        origin) and completed to base rows: keys, planned exogenous values where the rows
        give none, customer covariates carried forward from the last known period."""
        given = new_rows.assign(series_id=new_rows["series_id"].astype(str),
                                ds=pd.to_datetime(new_rows["ds"]).astype("datetime64[ns]"))
        given = given.sort_values(ORDER, kind="stable", ignore_index=True)
        check_consecutive(given, self.trained_origins_, self.pipeline_.freq)
        ids = given["series_id"].unique()
        own = self.tail_[self.tail_["series_id"].isin(ids)]
        periods = int(given.groupby("series_id").size().max())
        template = self.pipeline_.next_rows(own, periods)
        rows = template.drop(columns="y").merge(given[[*ORDER, "y"]], on=ORDER, how="inner")
        exog = [c for c in self.pipeline_.exog_columns if c in given.columns]
        if exog:
            rows = self.pipeline_.apply_scenario(rows, given[[*ORDER, *exog]])
        last = own.groupby("series_id").tail(1).set_index("series_id")
        for column in self.pipeline_.covariate_columns:
            carried = rows["series_id"].map(last[column]).to_numpy(dtype=float)
            if column in given.columns:  # realised customer statistics, when posted
                posted = rows[ORDER].merge(given[[*ORDER, column]], on=ORDER, how="left")
                carried = posted[column].fillna(pd.Series(carried)).to_numpy(dtype=float)
            rows[column] = carried
        return rows[list(self.tail_.columns)]

    def _check_horizon(self, horizon: int) -> None:
        if not 1 <= horizon <= self.horizon_:
            raise ValueError(
                f"horizon {horizon} is outside 1..{self.horizon_}: this model's features "
                f"are direct for at most {self.horizon_} periods after the origin"
            )

    def _history_of(self, series_ids: Sequence[str] | None) -> pd.DataFrame:
        if series_ids is None:
            return self.history_
        return self.history_[self.history_["series_id"].isin(list(series_ids))]

    def _future_rows(
        self, horizon: int, future_exog: pd.DataFrame | None, features: bool = True,
        series_ids: Sequence[str] | None = None,
    ) -> pd.DataFrame:
        """Rows of the next ``horizon`` periods per series (feature rows or base rows).

        Feature rows come from the no-scenario rows built once per state (a scenario only
        changes exogenous columns: :meth:`FeaturePipeline.apply_scenario`)."""
        self._check_horizon(horizon)
        if not features:
            rows = self.pipeline_.future_base(self._history_of(series_ids), horizon,
                                              future_exog)
            rows = rows.sort_values(ORDER, kind="stable", ignore_index=True)
        else:
            rows = self._feature_cache().rows(series_ids, horizon)
            if future_exog is not None:
                rows = self.pipeline_.apply_scenario(rows, future_exog)
        rows["step"] = np.tile(np.arange(1, horizon + 1), len(rows) // horizon)
        return rows

    def future_features(self, horizon: int, future_exog: pd.DataFrame | None = None,
                        series_ids: Sequence[str] | None = None) -> pd.DataFrame:
        """The feature rows of the next ``horizon`` periods (what drift monitoring logs)."""
        return self._future_rows(horizon, future_exog, features=True, series_ids=series_ids)

    def _feature_cache(self) -> FutureCache:
        cache = getattr(self, "future_cache_", None)
        if cache is None:
            frame = self.pipeline_.future_frame(self.history_, self.horizon_)
            cache = self.future_cache_ = FutureCache.of(frame)
        return cache

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["future_cache_"] = None  # derived: rebuilt on first use after loading
        state["origins_cache_"] = None
        state.pop("scale_lookup_", None)
        return state

    def _finish(self, rows: pd.DataFrame, yhat: np.ndarray) -> pd.DataFrame:
        yhat = self._floored(np.asarray(yhat, dtype=float))
        return rows[["series_id", "ds", "step"]].assign(yhat=yhat).reset_index(drop=True)

    def _floored(self, yhat: np.ndarray) -> np.ndarray:
        """``yhat`` floored at 0 when the training y had no negative value (no returns)."""
        return np.maximum(yhat, 0.0) if self.nonnegative_ else yhat


@dataclass(frozen=True)
class FutureCache:
    """The no-scenario future feature rows of every series, sorted, and where each
    series' rows are (a one-series request takes its rows without scanning the rest)."""

    frame: pd.DataFrame
    positions: dict[str, np.ndarray]
    derived: dict[str, Any] = field(default_factory=dict)  # built from it on demand

    @classmethod
    def of(cls, frame: pd.DataFrame) -> FutureCache:
        frame = frame.sort_values(ORDER, kind="stable", ignore_index=True)
        for column in frame.columns[frame.dtypes == "str"]:
            # numpy objects: taking a few rows of pyarrow strings costs 10x more per request
            frame[column] = frame[column].astype(object)
        groups = frame.groupby("series_id", sort=False).indices
        return cls(frame, {str(k): np.asarray(v) for k, v in groups.items()})

    def rows(self, series_ids: Sequence[str] | None, horizon: int) -> pd.DataFrame:
        ids = self.positions if series_ids is None else series_ids
        picked = [self.positions[s][:horizon] for s in ids if s in self.positions]
        index = np.concatenate(picked) if picked else np.array([], dtype=int)
        return self.frame.iloc[index].reset_index(drop=True)


def check_consecutive(rows: pd.DataFrame, trained: pd.Series, freq: str) -> None:
    """ValueError unless each series' rows are the periods right after its training origin,
    in order, without gaps (``rows`` sorted by series_id, ds)."""
    unknown = sorted(set(rows["series_id"]) - set(trained.index))
    if unknown:
        raise ValueError(f"update: unknown series {unknown[:5]}")
    start = period_numbers(pd.to_datetime(rows["series_id"].map(trained)), freq)
    steps = period_numbers(rows["ds"], freq) - start
    expected = rows.groupby("series_id", sort=False).cumcount().to_numpy() + 1
    wrong = steps != expected
    if wrong.any():
        first = rows.loc[wrong].iloc[0]
        raise ValueError(
            f"update: series {first['series_id']!r} at {first['ds'].date()}: the rows of a "
            f"series must be its consecutive periods after its training origin "
            f"({pd.Timestamp(trained[first['series_id']]).date()})")


def _without_history(model: GlobalForecaster) -> GlobalForecaster:
    """A part of a model (strategy member, hedged half) without the history the whole keeps."""
    model.tail_ = model.history_ = model.extension_ = model.tail_.iloc[:0]
    for half in model.halves_ or []:
        _without_history(half)
    return model


class GlobalForecaster(PanelForecaster):
    """One model across all series: y and target-derived features in units of a level.

    Subclasses set ``scale_target``, ``season_length``, ``strategy``, ``target_scale`` and
    ``target_transform`` params, implement
    ``_fit_direct`` (fit one model on the training set's features: the fitted ``scales_``
    from :meth:`_fit_scales`, ``derived_`` columns, the model) and ``_predict_direct``.

    ``target_scale`` says what y and its lags are divided by: ``"series"``, each series'
    recent level at the training origin (one number per series), or ``"row"``, the level
    at each row's own origin — its longest rolling mean (``roll_mean_<w>``, which reads y
    up to ds - H like every target-derived feature), so the trees learn growth relative
    to the last known level and can follow a series past the range it was trained on.
    A row without that level (the first w periods, a level near zero or negative) takes
    the series scale. ``"both"`` hedges the two: each direct model is the mean of a
    row-level and a series-level half (``halves_``), since neither is better on every
    window — the row level follows a recovery, the series level holds through a pause.
    A ``strategy`` other than ``direct`` fits one such member per step bucket, or one
    recursive member (:mod:`training.forecasters.strategy`), and predicts through them.
    """

    scale_target: bool
    season_length: int | None
    strategy: str = "direct"  # class defaults: models pickled before these params existed
    target_transform: str = "none"
    target_scale: str = "series"
    scales_: pd.Series
    level_column_: str | None = None
    derived_: list[str]
    members_: list[GlobalForecaster] | None = None
    halves_: list[GlobalForecaster] | None = None

    def check_params(self) -> None:
        """The choices a fit would refuse (or, for the transform, silently read as none)."""
        from training.forecasters.strategy import STRATEGIES

        for name, value, known in (("strategy", self.strategy, STRATEGIES),
                                   ("target_scale", self.target_scale, TARGET_SCALES),
                                   ("target_transform", self.target_transform,
                                    TARGET_TRANSFORMS)):
            if value not in known:
                raise ValueError(f"{name} must be one of {', '.join(known)}; got {value!r}")

    def fit(self, training_set: TrainingSet) -> GlobalForecaster:
        self.check_params()
        if self.strategy == "direct":
            self.members_ = None
            return self._fit_view(training_set)
        from training.forecasters import strategy as strategies

        season = season_length_for(training_set, self.season_length)
        self.views_ = strategies.strategy_views(training_set.pipeline, self.strategy, season)
        needed = max(view.pipeline.history_length for view in self.views_)
        self._remember(training_set, replace(training_set.pipeline, min_history=needed))
        self.members_ = [self._member(strategies.shifted_training_set(training_set, v.pipeline))
                         for v in self.views_]
        self.scales_ = self.members_[0].scales_
        return self

    def _member(self, training_set: TrainingSet) -> GlobalForecaster:
        """A direct model of one view, without the history the outer model keeps."""
        member = clone(self).set_params(strategy="direct")._fit_view(training_set)
        return _without_history(member)

    def _fit_view(self, training_set: TrainingSet) -> GlobalForecaster:
        """One direct model of ``training_set``; with ``target_scale="both"`` the pair of
        halves whose mean it predicts (each without the history this model keeps)."""
        if self.target_scale != "both":
            self.halves_ = None
            return self._fit_direct(training_set)
        self._remember(training_set)
        self.halves_ = [
            _without_history(clone(self).set_params(strategy="direct", target_scale=scale)
                             ._fit_direct(training_set)) for scale in HEDGED_SCALES]
        self.scales_, self.derived_ = self.halves_[1].scales_, self.halves_[1].derived_
        self.level_column_ = None
        return self

    def _predict_view(self, rows: pd.DataFrame) -> np.ndarray:
        """The direct model's forecast of ``rows`` (the halves' mean when hedged)."""
        if not self.halves_:
            return self._predict_direct(rows)
        return np.mean([half._predict_direct(rows) for half in self.halves_], axis=0)

    def _fit_direct(self, training_set: TrainingSet) -> GlobalForecaster:  # pragma: no cover
        raise NotImplementedError

    def _predict_direct(self, rows: pd.DataFrame) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def _predict_rows(self, rows: pd.DataFrame) -> np.ndarray:
        if not self.members_:
            return self._predict_view(rows)
        member = rows["member"].to_numpy()
        yhat = np.full(len(rows), np.nan)
        for index, model in enumerate(self.members_):
            at = member == index
            if at.any():
                yhat[at] = model._predict_view(rows.loc[at])
        return yhat

    @property
    def cells_supported(self) -> bool:
        """Whether the few-cells fast path applies (one direct model, or a hedged pair,
        with a matrix API)."""
        return not self.members_ and hasattr(self, "_predict_matrix")

    def _feature_cache(self) -> FutureCache:
        if not self.members_ or getattr(self, "future_cache_", None) is not None:
            return super()._feature_cache()
        from training.forecasters import strategy as strategies

        rows = (strategies.recursive_rows(self, self.history_) if self.strategy == "recursive"
                else strategies.bucket_rows(self, self.history_))
        self.future_cache_ = FutureCache.of(rows)
        return self.future_cache_

    def _future_rows(
        self, horizon: int, future_exog: pd.DataFrame | None, features: bool = True,
        series_ids: Sequence[str] | None = None,
    ) -> pd.DataFrame:
        """A recursive model with a scenario re-runs the recursion (a changed step moves
        the later ones); everything else takes the state's cached rows."""
        if self.strategy != "recursive" or future_exog is None or not self.members_:
            return super()._future_rows(horizon, future_exog, features, series_ids)
        from training.forecasters.strategy import recursive_rows

        self._check_horizon(horizon)
        rows = recursive_rows(self, self._history_of(series_ids), future_exog)
        rows = rows.groupby("series_id", sort=False).head(horizon).reset_index(drop=True)
        rows["step"] = np.tile(np.arange(1, horizon + 1), len(rows) // horizon)
        return rows

    def _fit_scales(self, training_set: TrainingSet) -> pd.Series:
        """Each series' recent level (1.0 everywhere when ``scale_target`` is off); with
        ``target_scale="row"`` also the column that holds each row's level (the value
        itself is checked by :meth:`check_params`, which every fit calls first)."""
        self.level_column_ = None
        if not self.scale_target:
            return pd.Series(1.0, index=training_set.series_ids, name="scale")
        if self.target_scale == "row":
            self.level_column_ = level_column(training_set.feature_columns)
        season = season_length_for(training_set, self.season_length)
        return recent_level(training_set.base, season)

    def _row_scales(self, rows: pd.DataFrame) -> np.ndarray:
        """Per row, what y and its lags are divided by (see ``target_scale``)."""
        lookup = self._scale_lookup()
        series = np.array([lookup.get(s, 1.0) for s in rows["series_id"].tolist()], dtype=float)
        if self.level_column_ is None:
            return series
        level = rows[self.level_column_].to_numpy(dtype=float, na_value=np.nan)
        known = np.isfinite(level) & (level > ROW_LEVEL_FLOOR * series)
        return np.where(known, level, series)

    def _scale_lookup(self) -> dict[str, float]:
        """``scales_`` as a dict (a request of a few rows reads it without pandas), kept
        until ``scales_`` is replaced."""
        cached = getattr(self, "scale_lookup_", None)
        if cached is None or cached[0] is not self.scales_:
            values = self.scales_.to_numpy(dtype=float).tolist()
            cached = (self.scales_, dict(zip(self.scales_.index.tolist(), values, strict=True)))
            self.scale_lookup_ = cached
        return cached[1]

    def _matrix(self, rows: pd.DataFrame, columns: list[str],
                categories: dict[str, list[str]]) -> tuple[np.ndarray, np.ndarray]:
        """``columns`` of ``rows`` as one float matrix — key columns as category codes (NaN
        when unseen), target-derived ones divided by the row's scale — and the scales.
        What a model that takes arrays predicts from, without pandas on the way."""
        scale = self._row_scales(rows)
        numeric = [c for c in columns if c not in categories]
        matrix = np.empty((len(rows), len(columns)))
        matrix[:, [columns.index(c) for c in numeric]] = rows[numeric].to_numpy(
            dtype=float, na_value=np.nan)
        for column, names in categories.items():
            codes = {c: float(i) for i, c in enumerate(names)}
            matrix[:, columns.index(column)] = [codes.get(str(v), np.nan)
                                                for v in rows[column].tolist()]
        for column in self.derived_:
            at = columns.index(column)
            matrix[:, at] = self._encode(matrix[:, at] / scale)
        return matrix, scale

    def _scaled(self, rows: pd.DataFrame, columns: list[str]) -> tuple[pd.DataFrame, np.ndarray]:
        """``columns`` of ``rows`` with the target-derived ones divided by the row's scale."""
        scale = self._row_scales(rows)
        scaled = {c: self._encode(rows[c].to_numpy(dtype=float) / scale) for c in self.derived_}
        design = pd.DataFrame({c: scaled[c] if c in scaled else rows[c] for c in columns},
                              index=rows.index)  # one frame: no copy, then column writes
        return design, scale

    def _encode(self, relative: np.ndarray) -> np.ndarray:
        """y (or a lag of it) relative to the series scale, as the model sees it: with
        ``target_transform="asinh"`` on a signed log scale, so a few huge orders (B2B
        spikes, returns) do not dominate a squared loss and effects are multiplicative."""
        return np.arcsinh(relative) if self.target_transform == "asinh" else relative

    def _decode(self, encoded: np.ndarray, scale: np.ndarray) -> np.ndarray:
        """The model's output back in units of y (the inverse of :meth:`_encode`, times the
        series scale). On the log scale this is a median-like forecast, what WAPE rewards."""
        relative = np.sinh(encoded) if self.target_transform == "asinh" else encoded
        return np.asarray(relative, dtype=float) * scale
