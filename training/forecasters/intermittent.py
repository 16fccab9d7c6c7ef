"""Intermittent demand: Croston (SBA) or TSB for series with many zero periods, simple
exponential smoothing for the others — item-level sales, where most weeks sell nothing.

**Classes** (Syntetos, Boylan & Croston 2005), per series on its training history:
ADI = the mean interval between non-zero demands (observed periods up to the last demand /
number of demands, so the first interval counts from the series' start) and CV² = the
squared coefficient of variation of the non-zero sizes (population variance):
smooth (ADI < 1.32, CV² < 0.49), erratic (ADI < 1.32, CV² >= 0.49), intermittent
(ADI >= 1.32, CV² < 0.49), lumpy (both at or above). A series with no demand is
intermittent (ADI infinite, CV² 0). The class is fitted once and fixed (``demand_class_``).

**Methods** (every forecast is flat over the horizon and non-negative):

* intermittent / lumpy, ``method="sba"``: Croston — the size ``z`` and the interval ``p``
  between demands are smoothed at demand periods only, with ``alpha`` and ``beta``; the
  forecast is (1 - beta / 2) z / p, the Syntetos-Boylan approximation that removes the
  upward bias of Croston's z / p.
* intermittent / lumpy, ``method="tsb"``: Teunter-Syntetos-Babai — ``z`` as above, and the
  demand probability ``d`` smoothed with ``beta`` every period (1 on a demand, 0 else);
  forecast d z. Unlike Croston it decays through a long run of zeros (obsolescence).
* smooth / erratic: simple exponential smoothing of y with ``alpha``. Not the seasonal
  naive: an item that sells most periods with erratic sizes is forecast better by a
  smoothed level than by one observation a season ago, which carries all that noise (and
  the seasonal naive is the baseline every family is compared with anyway). SES is also
  Croston's size recursion, so both share one code path.

A state starts at its first observation (SES) or first demand (Croston: z = that size,
p = the periods up to it; TSB: d = 1 / p); before that the forecast is 0. Only y > 0 is
a demand (a net return counts as a period without demand). NaN y (a missing period) is
skipped: no update, and it does not count in intervals.

**Smoothing**: ``alpha`` / ``beta`` given = used for every series; ``None`` = chosen per
series from :data:`GRID` (jointly for Croston / TSB) by the in-sample mean squared
one-step error, the forecast made before each observed period after the state started.

**Vectorised**: the recursions run one numpy step per period over all series of a
method and all grid candidates at once (arrays series x candidates), so the cost grows
with periods x series x candidates and there is no Python loop over series.

**Rolling the origin** (:meth:`PanelForecaster.update`, no refit): the stored state at the
training origin (``trained_state_``, the recursion's result on the training y) is run on
*all* the posted rows of each updated series with the stored parameters — the same
operations as running the recursion over the training y followed by those rows, so the
same rows give bit-identical forecasts however they arrived. Everything is stored as
plain numpy arrays (pickled and served).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from training.forecasters.common import ORDER, PanelForecaster

if TYPE_CHECKING:
    import optuna

    from features import TrainingSet

SES, SBA, TSB = 0, 1, 2
METHODS: dict[str, int] = {"sba": SBA, "tsb": TSB}
CLASSES: tuple[str, ...] = ("smooth", "erratic", "intermittent", "lumpy")
ADI_CUTOFF, CV2_CUTOFF = 1.32, 0.49
GRID: tuple[float, ...] = (0.05, 0.1, 0.2, 0.3, 0.5)
STATE: tuple[str, ...] = ("size", "interval", "probability", "since", "started")
State = dict[str, np.ndarray]


def demand_classes(y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ADI, CV² and class (:data:`CLASSES`) of each row of ``y`` (series x periods, NaN =
    missing period); see the module docstring."""
    observed = ~np.isnan(y)
    value = np.where(observed, y, 0.0)
    demand = value > 0
    count = demand.sum(axis=1)
    last = np.where(demand, np.cumsum(observed, axis=1), 0).max(axis=1)
    some = count > 0
    safe = np.maximum(count, 1)
    mean = value.sum(axis=1, where=demand) / safe
    square = (value**2).sum(axis=1, where=demand) / safe
    adi = np.where(some, last / safe, np.inf)
    cv2 = np.where(some, np.maximum(square / np.where(some, mean, 1.0) ** 2 - 1.0, 0.0), 0.0)
    code = 2 * (adi >= ADI_CUTOFF) + (cv2 >= CV2_CUTOFF)
    return adi, cv2, np.asarray(CLASSES, dtype=object)[code]


def initial_state(shape: tuple[int, ...]) -> State:
    """The state before any observation (not started)."""
    return {name: np.zeros(shape) for name in STATE}


def one_step(kind: int, state: State, beta: np.ndarray | float) -> np.ndarray:
    """The forecast made from ``state`` (the same for every step ahead); 0 if not started."""
    started = state["started"] > 0
    if kind == SES:
        forecast = state["size"]
    elif kind == SBA:
        forecast = (1.0 - beta / 2.0) * state["size"] / np.where(started, state["interval"], 1.0)
    else:
        forecast = state["probability"] * state["size"]
    return np.where(started, forecast, 0.0)


def advance(kind: int, state: State, y: np.ndarray, alpha: np.ndarray | float,
            beta: np.ndarray | float) -> State:
    """The state after one period's ``y`` (NaN: no observation, the state is kept)."""
    observed = ~np.isnan(y)
    value = np.where(observed, y, 0.0)
    started = state["started"] > 0
    since = state["since"] + observed
    hit = observed if kind == SES else observed & (value > 0)
    first, later = hit & ~started, hit & started
    size, interval, probability = state["size"], state["interval"], state["probability"]
    return {
        "size": np.where(first, value, np.where(later, size + alpha * (value - size), size)),
        "interval": np.where(first, since, np.where(
            later, interval + beta * (since - interval), interval)),
        "probability": np.where(first, 1.0 / np.maximum(since, 1.0), np.where(
            observed & started, probability + beta * (hit - probability), probability)),
        "since": np.where(hit, 0.0, since),
        "started": (started | hit).astype(float),
    }


def run(kind: int, y: np.ndarray, alpha: np.ndarray | float, beta: np.ndarray | float,
        state: State) -> tuple[State, np.ndarray]:
    """``state`` (series x candidates) after the periods of ``y`` (series x periods), and
    the in-sample mean squared one-step error of each series and candidate."""
    squared = np.zeros(state["size"].shape)
    scored = np.zeros(state["size"].shape)
    for t in range(y.shape[1]):
        column = y[:, t, None]
        counted = ~np.isnan(column) & (state["started"] > 0)
        error = np.where(counted, column, 0.0) - one_step(kind, state, beta)
        squared += np.where(counted, error**2, 0.0)
        scored += counted
        state = advance(kind, state, column, alpha, beta)
    return state, squared / np.maximum(scored, 1.0)


def fit_smoothing(kind: int, y: np.ndarray, alpha: float | None, beta: float | None
                  ) -> tuple[np.ndarray, np.ndarray, State]:
    """Per series (rows of ``y``): alpha, beta and the state after ``y``; a ``None``
    parameter is chosen from :data:`GRID` by in-sample error (first candidate on ties)."""
    alphas = GRID if alpha is None else (float(alpha),)
    betas = (0.0,) if kind == SES else GRID if beta is None else (float(beta),)
    grid_alpha = np.repeat(alphas, len(betas))[None, :]
    grid_beta = np.tile(betas, len(alphas))[None, :]
    state = initial_state((len(y), grid_alpha.shape[1]))
    state, mse = run(kind, y, grid_alpha, grid_beta, state)
    best = np.argmin(mse, axis=1)
    rows = np.arange(len(y))
    chosen = {name: values[rows, best] for name, values in state.items()}
    return grid_alpha[0, best], grid_beta[0, best], chosen


def ragged(frame: pd.DataFrame, series_ids: np.ndarray) -> np.ndarray:
    """y of ``frame`` as a matrix: one row per ``series_ids`` entry, its periods in order
    from the left, NaN-padded on the right (padding is skipped like a missing period)."""
    ordered = frame.sort_values(ORDER, kind="stable")
    row = pd.Index(series_ids).get_indexer(ordered["series_id"].astype(str))
    column = ordered.groupby("series_id", sort=False).cumcount().to_numpy()
    width = int(column.max()) + 1 if len(column) else 0
    matrix = np.full((len(series_ids), width), np.nan)
    matrix[row, column] = ordered["y"].to_numpy(dtype=float, na_value=np.nan)
    return matrix


class IntermittentForecaster(PanelForecaster):
    """Croston-SBA / TSB for intermittent and lumpy series, SES for smooth and erratic
    ones (see the module docstring)."""

    family = "intermittent"
    reads_features = False

    def __init__(self, method: str = "sba", alpha: float | None = None,
                 beta: float | None = None) -> None:
        self.method = method
        self.alpha = alpha
        self.beta = beta

    def fit(self, training_set: TrainingSet) -> IntermittentForecaster:
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {sorted(METHODS)}, not {self.method!r}")
        self._remember(training_set)
        ids = training_set.base["series_id"].astype(str).unique()
        self.series_ids_: np.ndarray = np.asarray(sorted(ids), dtype=object)
        y = ragged(training_set.base, self.series_ids_)
        self.adi_, self.cv2_, self.demand_class_ = demand_classes(y)
        self.kind_: np.ndarray = np.where(self.adi_ >= ADI_CUTOFF, METHODS[self.method], SES)
        self.alpha_ = np.zeros(len(y))
        self.beta_ = np.zeros(len(y))
        state = initial_state((len(y),))
        for kind in np.unique(self.kind_):
            rows = self.kind_ == kind
            alpha, beta, fitted = fit_smoothing(int(kind), y[rows], self.alpha, self.beta)
            self.alpha_[rows], self.beta_[rows] = alpha, beta
            for name in STATE:
                state[name][rows] = fitted[name]
        self.trained_state_: State = state
        self.state_: State = state
        return self

    def intermittent_count(self) -> int:
        """How many series get Croston / TSB (the others get plain SES)."""
        return int((self.kind_ != SES).sum())

    def _rolled(self, series_ids: list[str]) -> None:
        """The trained state of ``series_ids`` run on their whole extension."""
        ids = np.asarray(sorted(map(str, series_ids)), dtype=object)
        positions = pd.Index(self.series_ids_).get_indexer(ids)
        extension = self.extension_[self.extension_["series_id"].isin(ids)]
        y = ragged(extension, ids)
        self.state_ = {name: values.copy() for name, values in self.state_.items()}
        for kind in np.unique(self.kind_[positions]):
            at = positions[self.kind_[positions] == kind]
            start = {name: values[at, None] for name, values in self.trained_state_.items()}
            rolled, _ = run(int(kind), y[self.kind_[positions] == kind],
                            self.alpha_[at, None], self.beta_[at, None], start)
            for name in STATE:
                self.state_[name][at] = rolled[name][:, 0]

    def forecasts(self) -> pd.Series:
        """series_id -> the flat, non-negative forecast from its current state."""
        values = np.zeros(len(self.series_ids_))
        for kind in np.unique(self.kind_):
            rows = self.kind_ == kind
            state = {name: array[rows] for name, array in self.state_.items()}
            values[rows] = one_step(int(kind), state, self.beta_[rows])
        return pd.Series(np.maximum(values, 0.0), index=self.series_ids_, name="yhat")

    def _predict_rows(self, rows: pd.DataFrame) -> np.ndarray:
        """Each row's series forecast (flat over the horizon; exog is ignored)."""
        forecast = self.forecasts()
        return forecast.to_numpy()[forecast.index.get_indexer(rows["series_id"].astype(str))]


FIRST_TRIAL: dict[str, Any] = {"method": "sba", "smoothing": "fitted"}  # the defaults


def search_space(trial: optuna.Trial) -> dict[str, Any]:
    """SBA or TSB; smoothing fitted per series, or one alpha / beta for every series."""
    method = trial.suggest_categorical("method", ["sba", "tsb"])
    if trial.suggest_categorical("smoothing", ["fitted", "fixed"]) == "fitted":
        return {"method": method, "alpha": None, "beta": None}
    return {
        "method": method,
        "alpha": trial.suggest_float("alpha", 0.02, 0.5, log=True),
        "beta": trial.suggest_float("beta", 0.02, 0.5, log=True),
    }
