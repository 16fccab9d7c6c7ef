"""The compact form of cached answers in the prediction log, and their expansion on read.

Why it exists: a no-scenario answer is a slice of a forecast computed ahead
(:mod:`serving.forecast_table`), identical for every request that asks for it. Logging
each answered cell as its own row (~200 bytes, yhat and bounds repeated for every request)
made the log grow ~1.2 GB a minute under a 960-row batch load and its writer fall behind
(17 % of the rows kept). Instead:

* each precomputed forecast of one series is stored **once** per model version, under a
  ``snapshot_id``: a digest of the rows it logs (series, ds, yhat, bounds, origin), so a
  forecast recomputed at the same origin with other numbers (a corrected actual) is
  another snapshot and an old answer still reads back as it was given;
* an answer is stored as **one row per request**: its runs of consecutive steps,
  ``[[snapshot_id, first step, steps], ...]`` as JSON (one run per series for a
  series x horizon request), and how many rows it answered.

:func:`expand` turns those rows back into one row per answered cell, in answer order, with
the same columns as the per-cell log, so every reader sees the log as before. What-if
answers (and the model path) are still logged per cell: each of their rows is new.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

import numpy as np
import pandas as pd

# series_id, ds (ISO date), yhat, yhat_lower, yhat_upper, features (JSON text or None),
# origin (ISO date the forecast was made from, or None): one prediction-log row
LogRow = tuple[str, str, float | None, float | None, float | None, str | None, str | None]

# request_id, created_at (naive UTC), model_name, model_version, rows answered, runs (JSON)
RequestRow = tuple[str, datetime, str, str, int, str]
# model_name, model_version, snapshot_id, step, series_id, origin (ISO or None), ds (ISO), yhat,
# yhat_lower, yhat_upper: one cell of a stored forecast snapshot
SnapshotRow = tuple[str, str, str, int, str, str | None, str, Any, Any, Any]
SnapshotKey = tuple[str, str, str]  # model_name, model_version, snapshot_id

REQUEST_COLUMNS = ["request_id", "created_at", "model_name", "model_version", "n_rows", "runs"]
SNAPSHOT_COLUMNS = ["model_name", "model_version", "snapshot_id", "step", "series_id",
                    "origin", "ds", "yhat", "yhat_lower", "yhat_upper"]
COMPACT = (",", ":")
# Every writer refreshes ``last_used`` of the snapshots it logs at least this often, so a
# snapshot unused for longer than the retention plus this is pointed at by no kept row.
SNAPSHOT_TOUCH = timedelta(hours=1)


class _Point(Protocol):
    @property
    def log_row(self) -> LogRow: ...


class CachedForecast(Protocol):
    """One series' precomputed forecast (:class:`serving.forecast_table.SeriesForecast`)."""

    @property
    def snapshot_id(self) -> str: ...

    @property
    def points(self) -> Sequence[_Point]: ...


def snapshot_id(rows: Iterable[LogRow]) -> str:
    """The digest naming a forecast by the rows it logs (16 characters, 96 bits)."""
    digest = hashlib.blake2b(repr(tuple(rows)).encode(), digest_size=12).digest()
    return base64.urlsafe_b64encode(digest).decode()


@dataclass(frozen=True)
class CachedAnswer:
    """A no-scenario answer: runs (forecast, first step, steps) in answer order.

    Iterating gives its per-cell log rows, so it can stand wherever rows are expected.
    """

    runs: tuple[tuple[CachedForecast, int, int], ...]
    n_cells: int

    def __iter__(self) -> Iterator[LogRow]:
        for forecast, first, steps in self.runs:
            for point in forecast.points[first:first + steps]:
                yield point.log_row


def runs_json(answer: CachedAnswer) -> str:
    """The answer as stored: ``[[snapshot_id, first step, steps], ...]``."""
    return json.dumps([[f.snapshot_id, first, steps] for f, first, steps in answer.runs],
                      separators=COMPACT)


def snapshot_rows(key: SnapshotKey, forecast: CachedForecast) -> Iterator[SnapshotRow]:
    """The stored cells of one forecast snapshot (features stay in baseline_features)."""
    name, version, snapshot = key
    for step, point in enumerate(forecast.points):
        series_id, ds, yhat, lower, upper, _, origin = point.log_row
        yield name, version, snapshot, step, series_id, origin, ds, yhat, lower, upper


def runs_frame(requests: pd.DataFrame) -> pd.DataFrame:
    """One row per stored run: request (position), model_name, model_version,
    snapshot_id, first, steps."""
    position, snapshots, firsts, steps = [], [], [], []
    for i, text in enumerate(requests["runs"]):
        for snapshot, first, count in json.loads(text):
            position.append(i)
            snapshots.append(snapshot)
            firsts.append(first)
            steps.append(count)
    at = np.asarray(position, dtype=np.int64)
    return pd.DataFrame({
        "request": at, "model_name": requests["model_name"].to_numpy()[at],
        "model_version": requests["model_version"].to_numpy()[at], "snapshot_id": snapshots,
        "first": np.asarray(firsts, dtype=np.int64), "steps": np.asarray(steps, dtype=np.int64),
    })


def expand(requests: pd.DataFrame, runs: pd.DataFrame, cells: pd.DataFrame,
           columns: list[str]) -> tuple[pd.DataFrame, int]:
    """The per-cell log rows of stored requests, in answer order, and how many cells had
    no stored snapshot (left out).

    ``requests``: request_id, created_at, model_name, model_version (row order = request
    position in ``runs``); ``runs``: :func:`runs_frame`; ``cells``: snapshot cells with
    model_name, model_version, snapshot_id, step, series_id, ds, yhat, yhat_lower,
    yhat_upper, origin, features.
    """
    run_of_cell = np.repeat(np.arange(len(runs)), runs["steps"].to_numpy())
    starts = np.cumsum(runs["steps"].to_numpy()) - runs["steps"].to_numpy()
    offset = np.arange(len(run_of_cell)) - starts[run_of_cell]
    wanted = pd.DataFrame({
        "request": runs["request"].to_numpy()[run_of_cell],
        "model_name": runs["model_name"].to_numpy()[run_of_cell],
        "model_version": runs["model_version"].to_numpy()[run_of_cell],
        "snapshot_id": runs["snapshot_id"].to_numpy()[run_of_cell],
        "step": runs["first"].to_numpy()[run_of_cell] + offset,
        "order": np.arange(len(run_of_cell)),
    })
    keys = ["model_name", "model_version", "snapshot_id", "step"]
    found = wanted.merge(cells, on=keys, how="inner").sort_values("order", kind="stable")
    head = requests[["request_id", "created_at"]].iloc[found["request"].to_numpy()]
    found = found.assign(request_id=head["request_id"].to_numpy(),
                         created_at=head["created_at"].to_numpy())
    return found[columns].reset_index(drop=True), len(wanted) - len(found)
