"""Multi-step strategies of the global families: how the H steps after an origin are made.

* ``direct`` — one model for every step. Each target-derived feature of a row at ``ds``
  reads y up to ``ds - H`` (lags from H), so all H feature rows are known at the origin.
  Cheap and stable, but a 28-day model never sees last week.
* ``buckets`` — one model per bucket of steps (:func:`bucket_ends`: e.g. 1-7, 8-14 and
  15-28 for H = 28). The model of steps a..b reads y up to ``ds - b`` (lags from b), so
  the first steps see the newest periods; each row is still known at the origin.
* ``recursive`` — one model of the next period (lags from 1). Step s reads the forecasts
  of steps 1..s-1 as if they were y (:func:`recursive_rows`), so its rows depend on the
  earlier forecasts and a scenario that changes step 1 moves every later step.

The strategy is a hyper-parameter of the LightGBM and regression families, tuned on the
same backtest as the rest. Each bucket (and the recursive model) is a fitted member of
the family with ``strategy="direct"`` on the features of a *shifted* pipeline
(:meth:`features.FeaturePipeline.with_shift`): the leakage rule is the same for all —
a row at ``ds`` reads y only up to ``ds - min_lag``, with min_lag >= the largest step the member
forecasts (1 for the recursive model, whose later steps read forecasts, never actuals
after the origin). ``tests/training/test_strategy.py`` holds each strategy to it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from features.lags import default_lags, rows_to_end, series_runs
from features.pipeline import ORDER, append_future

if TYPE_CHECKING:
    from features import TrainingSet
    from features.pipeline import FeaturePipeline
    from training.forecasters.common import GlobalForecaster

STRATEGIES: tuple[str, ...] = ("direct", "buckets", "recursive")


@dataclass(frozen=True)
class StrategyView:
    """One member of a strategy: the steps it forecasts and the pipeline it reads."""

    first: int
    last: int
    pipeline: FeaturePipeline


def bucket_ends(horizon: int, season: int) -> tuple[int, ...]:
    """The last step of each bucket: a quarter, a half and the whole horizon, each rounded
    up to whole seasons when the horizon spans two or more (7-day weeks of daily data)."""
    ends = {max(1, -(-horizon // 4)), max(1, -(-horizon // 2)), horizon}
    if 1 < season <= horizon // 2:
        ends = {min(horizon, -(-end // season) * season) for end in ends}
    return tuple(sorted(ends))


def shifted_lags(pipeline: FeaturePipeline, gap: int, season: int) -> tuple[int, ...]:
    """Lags of a member reading y up to ds - gap: gap..gap+3, the season when longer, and
    the spec's own lags (all >= H >= gap)."""
    return tuple(sorted({*default_lags(gap, pipeline.freq, season), *pipeline.lags}))


def strategy_views(pipeline: FeaturePipeline, strategy: str, season: int
                   ) -> list[StrategyView]:
    """The members of ``strategy`` on the training set's (direct) ``pipeline``."""
    horizon = pipeline.horizon
    if strategy == "direct":
        return [StrategyView(1, horizon, pipeline)]
    if strategy == "recursive":
        return [StrategyView(1, horizon, pipeline.with_shift(1, shifted_lags(pipeline, 1,
                                                                             season)))]
    if strategy != "buckets":
        raise ValueError(f"unknown strategy {strategy!r}; known: {', '.join(STRATEGIES)}")
    views, first = [], 1
    for end in bucket_ends(horizon, season):
        views.append(StrategyView(first, end, pipeline.with_shift(end, shifted_lags(
            pipeline, end, season))))
        first = end + 1
    return views


def shifted_training_set(training_set: TrainingSet, pipeline: FeaturePipeline
                         ) -> TrainingSet:
    """``training_set`` with the features of another pipeline (same base panel)."""
    panel = pipeline.transform(training_set.base)
    metadata = replace(training_set.metadata, feature_columns=tuple(pipeline.feature_columns))
    return replace(training_set, panel=panel, pipeline=pipeline, metadata=metadata)


def bucket_rows(model: GlobalForecaster, history: pd.DataFrame) -> pd.DataFrame:
    """The future feature rows of every bucket (no scenario): bucket b's rows are its steps
    of its own pipeline's future frame, marked with ``member`` = b."""
    frames = []
    for member, view in enumerate(model.views_):
        frame = view.pipeline.future_frame(history, model.horizon_)
        step = frame.groupby("series_id", sort=False).cumcount().to_numpy() + 1
        keep = (step >= view.first) & (step <= view.last)
        frames.append(frame.loc[keep].assign(member=member))
    return pd.concat(frames, ignore_index=True).sort_values(ORDER, kind="stable",
                                                            ignore_index=True)


def recursive_rows(model: GlobalForecaster, history: pd.DataFrame,
                   future_exog: pd.DataFrame | None = None) -> pd.DataFrame:
    """The feature rows of steps 1..H of the recursive member: step s is built from the
    history followed by the forecasts of steps < s (fed back as y), with the scenario's
    exogenous values. Sorted by series_id, ds; ``member`` = 0.

    The rows are transformed once; each step recomputes only the features read from y
    (:meth:`FeaturePipeline.target_features`) over the same sorted panel, so they equal a
    full transform of the history and the forecasts so far, bit for bit."""
    pipeline, member = model.views_[0].pipeline, model.members_[0]
    history = pipeline.tail(history)
    future = pipeline.future_base(history, model.horizon_, future_exog)
    frame = pipeline.transform(append_future(history, future), with_reference=True)
    runs, positions = series_runs(frame["series_id"].to_numpy())
    step = future_steps(runs, positions, model.horizon_)
    y = frame["y"].to_numpy(dtype=np.float64, na_value=np.nan, copy=True)
    taken = []
    for s in range(1, model.horizon_ + 1):
        at = step == s
        rows = frame.loc[at].reset_index(drop=True)
        for name, values in pipeline.target_features(y, runs, positions).items():
            rows[name] = values[at]
        yhat = member._predict_view(rows)
        y[at] = model._floored(yhat)
        taken.append(rows.assign(member=0))
    out = pd.concat(taken, ignore_index=True)
    return out.sort_values(ORDER, kind="stable", ignore_index=True)


def future_steps(runs: np.ndarray, positions: np.ndarray, horizon: int) -> np.ndarray:
    """Step (1..horizon) of each row of a sorted panel whose series each end with their
    ``horizon`` future periods; 0 for the history rows."""
    remaining = rows_to_end(runs, positions)
    return np.where(remaining <= horizon, horizon + 1 - remaining, 0)
