"""Is the served model keeping its promise? Accuracy tests with their sampling noise.

The *promise* is the champion's own backtest: the rows of the window it was chosen and
reported on (``backtest/predictions.parquet`` of its MLflow run: ``series_id``, ``ds``,
``y``, ``yhat``, ``yhat_lower``, ``yhat_upper``) and the WAPE and bias of each backtest
window (``wape_w<k>``, ``bias_pct_w<k>``). The *current* rows are the served forecasts
whose actuals arrived. Each test compares one statistic of the two:

* **WAPE**: the ratio current / promised, judged on the log scale;
* **coverage**: the promised share of actuals inside the interval minus the current one;
* **bias**: how much further from zero than the promised one the current bias is (sum
  of errors / sum of actuals; + = over-forecast).

The tracking-signal alarms per series are judged against the backtest's own alarm rate
(:func:`serving.monitoring.accuracy.backtest_alarm_rate`).

Sampling noise: each statistic is a ratio of sums over series, so its variance is the
series-clustered (delta-method) variance of a ratio estimator,
``n / (n - 1) * sum_s (a_s - R b_s)^2 / (sum_s b_s)^2``, for the current rows and for the
promise rows alike (a series' periods share its level, so they are not independent
draws), plus, for WAPE and bias, twice the variance of a whole window's shock (a period
can be easier or harder for every series at once; the current window and the promised
one each have their own): the variance between the backtest's windows beyond what the
series sampling explains. ``z`` is the difference over the combined
standard error: with 120 series x 8 weeks a 10 % WAPE loss is noise, a 40 % one is not;
with 3 series x 3 weeks a 40 % loss is still within noise. A single series has no
clustered variance (``z`` is 0, never a failure).

A test *fails* when the difference is both material (the ``VerdictRule`` thresholds) and
significant (``z`` beyond ``z_watch`` / ``z_retrain``); see :mod:`serving.monitoring.verdict`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

ROWS = ("series_id", "ds", "y", "yhat", "yhat_lower", "yhat_upper")


@dataclass(frozen=True)
class Promise:
    """The champion's backtest: its promise rows and its per-window WAPE and bias.

    Without rows (a model logged before the backtest predictions were kept, or an artifact
    that cannot be read) ``expected`` holds the promised wape / coverage / bias alone and
    only the current rows' noise is counted.
    """

    rows: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=list(ROWS)))
    window_wape: list[float] = field(default_factory=list)
    window_bias: list[float] = field(default_factory=list)  # ratios, not percent
    expected: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_run(cls, rows: pd.DataFrame, metrics: Mapping[str, float]) -> Promise:
        """From the backtest predictions and the run's ``wape_w<k>`` / ``bias_pct_w<k>``."""
        missing = [c for c in ROWS if c not in rows.columns]
        if missing:
            raise ValueError(f"backtest predictions lack columns: {', '.join(missing)}")

        def by_window(prefix: str, scale: float) -> list[float]:
            keys = sorted(k for k in metrics if k.startswith(prefix) and k[len(prefix):].isdigit())
            return [float(metrics[k]) * scale for k in keys]

        return cls(rows[list(ROWS)].dropna(subset=["y", "yhat"]).reset_index(drop=True),
                   by_window("wape_w", 1.0), by_window("bias_pct_w", 0.01))

    @property
    def has_rows(self) -> bool:
        return not self.rows.empty

    def value(self, sums: pd.DataFrame | None, metric: str, numerator: str,
              denominator: str) -> tuple[float, float]:
        """The promised ``metric`` and its sampling variance from the promise rows'
        per-series ``sums`` (without rows: ``expected`` and no variance)."""
        if sums is None:
            return float(self.expected.get(metric, math.nan)), 0.0
        return ratio_and_variance(sums[numerator], sums[denominator])


@dataclass(frozen=True)
class Comparison:
    """One statistic, current vs promised, with the noise of both."""

    metric: str  # wape | coverage | bias
    current: float
    promised: float
    effect: float  # wape: ratio; coverage: promised - current; bias: |current| - |promised|
    z: float  # the difference in standard errors (+ = worse, for bias: |.|)
    n_series: int
    n_rows: int


def _per_series(rows: pd.DataFrame) -> pd.DataFrame:
    """Sums per series: abs error, error, |y|, y, inside, count."""
    error = rows["yhat"] - rows["y"]
    inside = (rows["yhat_lower"] <= rows["y"]) & (rows["y"] <= rows["yhat_upper"])
    parts = pd.DataFrame({
        "series_id": rows["series_id"].astype(str), "abs_error": error.abs(), "error": error,
        "abs_y": rows["y"].abs(), "y": rows["y"], "inside": inside.astype(float), "count": 1.0,
    })
    return parts.groupby("series_id", sort=True).sum()


def ratio_and_variance(numerator: pd.Series, denominator: pd.Series) -> tuple[float, float]:
    """R = sum(num) / sum(den) over clusters and its clustered delta-method variance."""
    total = float(denominator.sum())
    n = len(numerator)
    if total == 0 or n == 0:
        return math.nan, math.nan
    ratio = float(numerator.sum()) / total
    if n < 2:
        return ratio, math.inf
    residual = numerator.to_numpy(float) - ratio * denominator.to_numpy(float)
    return ratio, n / (n - 1) * float(np.sum(residual**2)) / total**2


def _period_shock(values: Sequence[float], sampling: float, log: bool = False) -> float:
    """The variance of a whole window's shock (every series easier or harder at once):
    the variance between backtest windows beyond what the series sampling of one window
    (``sampling``) explains; 0 with fewer than two windows."""
    data = np.log(np.asarray(values, float)) if log else np.asarray(values, float)
    data = data[np.isfinite(data)]
    if len(data) < 2:
        return 0.0
    return max(0.0, float(np.var(data, ddof=1)) - sampling)


def _z(difference: float, variance: float) -> float:
    """``difference`` in standard errors (NaN when unknown)."""
    if not math.isfinite(difference) or math.isnan(variance):
        return math.nan
    if variance <= 0:
        return math.inf if difference > 0 else (-math.inf if difference < 0 else 0.0)
    return difference / math.sqrt(variance)


Sums = tuple[pd.DataFrame, pd.DataFrame | None]  # per-series sums: current, promise rows


def compare_wape(sums: Sums, promise: Promise) -> Comparison:
    cur, promised = sums
    w_cur, v_cur = ratio_and_variance(cur["abs_error"], cur["abs_y"])
    w_bt, v_bt = promise.value(promised, "wape", "abs_error", "abs_y")
    if not (w_cur > 0 and w_bt > 0):  # a perfect window or promise: nothing on a log scale
        ratio = w_cur / w_bt if w_bt > 0 else math.nan
        return Comparison("wape", w_cur, w_bt, ratio, math.nan, len(cur),
                          int(cur["count"].sum()))
    v_cur, v_bt = v_cur / w_cur**2, v_bt / w_bt**2  # on the log scale
    shock = _period_shock(promise.window_wape, v_bt, log=True)
    variance = v_cur + v_bt + 2 * shock  # each window has its own shock
    z = _z(math.log(w_cur / w_bt), variance)
    return Comparison("wape", w_cur, w_bt, w_cur / w_bt, z, len(cur), int(cur["count"].sum()))


def compare_coverage(sums: Sums, promise: Promise) -> Comparison:
    cur, promised = sums
    c_cur, v_cur = ratio_and_variance(cur["inside"], cur["count"])
    c_bt, v_bt = promise.value(promised, "coverage", "inside", "count")
    drop = c_bt - c_cur
    return Comparison("coverage", c_cur, c_bt, drop, _z(drop, v_cur + v_bt),
                      len(cur), int(cur["count"].sum()))


def compare_bias(sums: Sums, promise: Promise) -> Comparison:
    """The bias got worse: ``effect`` = |current| - |promised| (a bias that moved towards
    zero is no loss); ``z`` is that of the change itself."""
    cur, promised = sums
    b_cur, v_cur = ratio_and_variance(cur["error"], cur["y"])
    b_bt, v_bt = promise.value(promised, "bias", "error", "y")
    shock = _period_shock(promise.window_bias, v_bt)
    z = _z(abs(b_cur - b_bt), v_cur + v_bt + 2 * shock)
    return Comparison("bias", b_cur, b_bt, abs(b_cur) - abs(b_bt), z, len(cur),
                      int(cur["count"].sum()))


@dataclass(frozen=True)
class PromiseCheck:
    """Every comparison of the current forecasts with the promise."""

    wape: Comparison
    coverage: Comparison
    bias: Comparison


def check_promise(current: pd.DataFrame, promise: Promise) -> PromiseCheck:
    """Compare the current forecasts with actuals (columns :data:`ROWS`) to the promise."""
    rows = current.dropna(subset=["y", "yhat"])
    sums = (_per_series(rows), _per_series(promise.rows) if promise.has_rows else None)
    return PromiseCheck(compare_wape(sums, promise), compare_coverage(sums, promise),
                        compare_bias(sums, promise))
