"""Figures a data scientist reads in a family run: backtest forecasts against actuals, error
by horizon step, feature importance, and the parent run's WAPE leaderboard.

Built with matplotlib's object API (``matplotlib.figure.Figure``, no ``pyplot``), so no
GUI backend is involved and nothing global changes; ``mlflow.log_figure`` saves them.
Fixed margins instead of constrained layout: it halves the time to render. Likewise
titles sit at a fixed height (``y=1.0``: where matplotlib puts them anyway unless top tick
labels collide, which these axes have none of), sparing a layout pass, and the PNGs are
saved at :data:`DPI` with light compression (:data:`PNG_COMPRESSION`).
"""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

DPI = 80  # matplotlib's default is 100: a third fewer pixels to draw and encode
PNG_COMPRESSION = 1  # zlib level of the saved PNGs (PIL's default 6 encodes slower)


def sample_series(predictions: pd.DataFrame, n_series: int = 3) -> list[str]:
    """Up to ``n_series`` representative series: the largest, the median and the smallest
    by total actual sales over the backtest (deterministic, so runs are comparable)."""
    totals = predictions.groupby("series_id")["y"].sum().sort_values(ascending=False)
    if len(totals) <= n_series:
        return totals.index.tolist()
    positions = [round(i * (len(totals) - 1) / max(n_series - 1, 1)) for i in range(n_series)]
    return [totals.index[p] for p in positions]


def forecast_vs_actual(predictions: pd.DataFrame, n_series: int = 3) -> Figure:
    """Backtest forecasts (one line + interval band per window) against the actuals of a
    few sample series; ``predictions`` is ``BacktestResult.predictions``."""
    chosen = sample_series(predictions, n_series)
    fig = Figure(figsize=(10, 3 * max(len(chosen), 1)), dpi=DPI)
    fig.subplots_adjust(hspace=0.45, top=0.93, bottom=0.07)
    axes = fig.subplots(max(len(chosen), 1), 1, squeeze=False)[:, 0]
    for ax, series_id in zip(axes, chosen, strict=False):
        rows = predictions[predictions["series_id"] == series_id].sort_values("ds")
        actual = rows.drop_duplicates("ds")
        ax.plot(actual["ds"], actual["y"], color="black", marker=".", label="actual")
        for window, part in rows.groupby("window", sort=True):
            line = ax.plot(part["ds"], part["yhat"], label=f"forecast w{window}")[0]
            ax.fill_between(part["ds"], part["yhat_lower"], part["yhat_upper"],
                            color=line.get_color(), alpha=0.15)
        ax.set_title(f"series {series_id}", y=1.0)
        ax.legend(loc="upper left", fontsize="x-small")
    return fig


def error_by_step(by_step: pd.DataFrame, metric: str = "wape") -> Figure:
    """``metric`` by horizon step (1 = the period right after the origin)."""
    frame = by_step.reset_index() if "step" not in by_step.columns else by_step
    fig = Figure(figsize=(6, 4), dpi=DPI)
    ax = fig.subplots()
    ax.bar(frame["step"].astype(int), frame[metric], color="tab:blue")
    ax.set_xlabel("horizon step (periods after the origin)")
    ax.set_ylabel(metric)
    ax.set_title(f"backtest {metric} by horizon step", y=1.0)
    return fig


def feature_importance(importances: pd.Series, top: int = 20) -> Figure:
    """The ``top`` features by importance (e.g. LightGBM gain), largest at the top."""
    shown = importances.sort_values(ascending=False).head(top).iloc[::-1]
    fig = Figure(figsize=(7, 0.3 * len(shown) + 1.5), dpi=DPI)
    fig.subplots_adjust(left=0.35)
    ax = fig.subplots()
    ax.barh([str(name) for name in shown.index], shown.to_numpy(), color="tab:green")
    ax.set_title("feature importance", y=1.0)
    return fig


def leaderboard_wape(leaderboard: pd.DataFrame) -> Figure:
    """Backtest WAPE of each family's best model (lower is better)."""
    frame = leaderboard.sort_values("wape")
    fig = Figure(figsize=(6, 4), dpi=DPI)
    ax = fig.subplots()
    ax.bar(frame["family"].astype(str), frame["wape"], color="tab:orange")
    ax.set_ylabel("wape (backtest mean)")
    ax.set_title("leaderboard: WAPE by family", y=1.0)
    return fig
