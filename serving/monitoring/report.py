"""The monitoring report: a JSON document and one self-contained HTML page.

The JSON is the :class:`MonitorResult` turned into plain types (dataclasses -> objects,
frames -> lists of rows, NaN / inf -> null). The HTML page has the verdict and its
reasons at the top, the drift table, reference vs current distributions of the drifted
features, and - when actuals are known - accuracy over time, bias by segment, the
worst series, and accuracy by forecast lag with the review at the planning lag. Plots
are inline SVG drawn here (bars and lines need no plotting library: matplotlib took
~0.5 s to import and ~1.5 s to draw this page's figures, most of the command's time
budget); the page loads no script, font, stylesheet or image from anywhere else.
"""

from __future__ import annotations

import dataclasses
import html
import json
import logging
import math
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from serving.monitoring.accuracy import AccuracyReport
from serving.monitoring.drift import ColumnDrift, DatasetDrift
from serving.monitoring.fva import FvaReport
from serving.monitoring.lag import PERIOD_WORDS, LagAccuracy
from serving.monitoring.verdict import MonitorResult, describe_score

log = logging.getLogger(__name__)

SCHEMA = "salescast.monitoring/1"
MAX_PANELS = 12
WORST_SERIES = 10


# --- JSON -----------------------------------------------------------------------------


def to_jsonable(value: Any) -> Any:
    """Plain JSON types: dataclasses and mappings -> dicts, frames -> row lists, NaN -> None."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, pd.DataFrame):
        return [to_jsonable(row) for row in value.to_dict(orient="records")]
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, (pd.Timestamp, datetime, date)):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return None if pd.isna(value) else str(value)


def to_document(result: MonitorResult) -> dict[str, Any]:
    """The JSON document of a monitoring run (``schema`` names its version)."""
    document: dict[str, Any] = {"schema": SCHEMA, **to_jsonable(result)}
    if result.drift is not None:
        document["drift"]["drifted_columns"] = result.drift.drifted_columns
    return document


# --- HTML building blocks -------------------------------------------------------------

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2rem;
color:#1f2933;max-width:1100px}
h1{font-size:1.5rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #d9e2ec}
table{border-collapse:collapse;margin:.5rem 0;font-size:.85rem}
th,td{border:1px solid #d9e2ec;padding:.25rem .5rem;text-align:right}
th{background:#f0f4f8}td:first-child,th:first-child{text-align:left}
tr.flag td{background:#fff1f0}.verdict{padding:1rem 1.25rem;border-radius:6px;margin:1rem 0}
.ok{background:#e3f9e5;border-left:6px solid #31a24c}
.watch{background:#fffbea;border-left:6px solid #f0b429}
.retrain{background:#ffeeee;border-left:6px solid #d64545}
.status{font-size:1.4rem;font-weight:700;text-transform:uppercase}
.note{color:#52606d;font-size:.85rem}
svg{margin:.25rem .5rem .25rem 0;font-size:10px;fill:#1f2933}svg .t{font-size:12px;font-weight:600}
svg .g{stroke:#d9e2ec;stroke-width:1}
"""


def _cell(value: Any) -> str:
    if isinstance(value, bool | np.bool_):
        return "yes" if value else ""
    if isinstance(value, float | np.floating):
        return "" if not math.isfinite(value) else f"{value:.4g}"
    return html.escape(str(value))


def html_table(
    headers: Sequence[str], rows: Sequence[Sequence[Any]], flags: Sequence[bool] | None = None,
) -> str:
    """An HTML table (no header row when ``headers`` is empty); flagged rows highlighted."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    head = f"<tr>{head}</tr>" if head else ""
    body = []
    for i, row in enumerate(rows):
        css = ' class="flag"' if flags is not None and flags[i] else ""
        body.append(f"<tr{css}>" + "".join(f"<td>{_cell(v)}</td>" for v in row) + "</tr>")
    return f"<table>{head}{''.join(body)}</table>"


def frame_table(frame: pd.DataFrame, flag_column: str | None = None) -> str:
    flags = frame[flag_column].astype(bool).tolist() if flag_column else None
    return html_table([str(c) for c in frame.columns], frame.itertuples(index=False), flags)


BAR_COLOURS = ("#829ab1", "#d64545", "#f0b429")
LINE_COLOURS = ("#1f2933", "#d64545", "#829ab1")


def nice_ticks(low: float, high: float, count: int = 4) -> list[float]:
    """Round tick values covering [low, high] (steps of 1, 2, 2.5 or 5 x 10^k)."""
    if not (math.isfinite(low) and math.isfinite(high)):
        low, high = 0.0, 1.0
    span = high - low if high > low else max(abs(high), 1.0)
    raw = span / count
    magnitude = 10.0 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.floor(low / step) * step
    ticks = [first]
    while ticks[-1] < high - 1e-12 * span or len(ticks) < 2:
        ticks.append(first + len(ticks) * step)
    return ticks


@dataclasses.dataclass(frozen=True)
class _Canvas:
    """Pixel geometry of one chart: the plot area inside margins and the y scale."""

    width: int
    height: int
    ticks: list[float]
    left: int = 52
    right: int = 12
    top: int = 38
    bottom: int = 48

    def y(self, value: float) -> float:
        low, high = self.ticks[0], self.ticks[-1]
        return self.top + (high - value) / (high - low) * (self.height - self.top - self.bottom)

    def band(self, count: int) -> float:
        return (self.width - self.left - self.right) / max(count, 1)

    def x(self, position: float, count: int) -> float:
        return self.left + (position + 0.5) * self.band(count)


def _axes(
    canvas: _Canvas, labels: Sequence[str], title: str, names: Sequence[str],
    colours: Sequence[str],
) -> list[str]:
    """Grid lines, y tick values, every k-th x label, the title and the legend below it."""
    parts = [f'<text x="{canvas.left}" y="14" class="t">{html.escape(title)}</text>']
    for tick in canvas.ticks:
        y = canvas.y(tick)
        parts.append(f'<line x1="{canvas.left}" x2="{canvas.width - canvas.right}" '
                     f'y1="{y:.1f}" y2="{y:.1f}" class="g"/>')
        parts.append(f'<text x="{canvas.left - 4}" y="{y + 3:.1f}" text-anchor="end">'
                     f"{tick:.4g}</text>")
    step = max(1, math.ceil(len(labels) / 8))
    base = canvas.height - canvas.bottom + 12
    for i in range(0, len(labels), step):
        x = canvas.x(i, len(labels))
        parts.append(f'<text x="{x:.1f}" y="{base}" text-anchor="end" '
                     f'transform="rotate(-30 {x:.1f} {base})">{html.escape(str(labels[i]))}</text>')
    for i, name in enumerate(names if len(names) > 1 else []):
        x = canvas.left + 90 * i
        parts.append(f'<rect x="{x}" y="20" width="9" height="9" fill="{colours[i]}"/>'
                     f'<text x="{x + 12}" y="28">{html.escape(name)}</text>')
    return parts


def _svg(canvas: _Canvas, parts: list[str]) -> str:
    return (f'<svg width="{canvas.width}" height="{canvas.height}" role="img">'
            f"{''.join(parts)}</svg>")


def svg_bars(
    labels: Sequence[str], series: Mapping[str, Sequence[float]], title: str,
    width: int = 340, height: int = 210,
) -> str:
    """Grouped vertical bars (one group per label, one bar per series) from zero."""
    values = [v for vs in series.values() for v in vs if math.isfinite(v)] or [0.0]
    canvas = _Canvas(width, height, nice_ticks(min(0.0, *values), max(0.0, *values)))
    parts = _axes(canvas, labels, title, list(series), BAR_COLOURS)
    bar = canvas.band(len(labels)) * 0.8 / max(len(series), 1)
    zero = canvas.y(0.0)
    for k, values_k in enumerate(series.values()):
        for i, value in enumerate(values_k):
            value = value if math.isfinite(value) else 0.0
            x = canvas.x(i, len(labels)) - 0.4 * canvas.band(len(labels)) + k * bar
            top = min(zero, canvas.y(value))
            parts.append(f'<rect x="{x:.1f}" y="{top:.1f}" width="{max(bar, 0.5):.1f}" '
                         f'height="{abs(canvas.y(value) - zero):.1f}" fill="{BAR_COLOURS[k]}"/>')
    return _svg(canvas, parts)


def svg_lines(
    labels: Sequence[str], series: Mapping[str, Sequence[float]], title: str,
    width: int = 700, height: int = 230,
) -> str:
    """One polyline per series over the labels (e.g. forecast and actual per month)."""
    values = [v for vs in series.values() for v in vs if math.isfinite(v)] or [0.0]
    canvas = _Canvas(width, height, nice_ticks(min(values), max(values)))
    parts = _axes(canvas, labels, title, list(series), LINE_COLOURS)
    for k, values_k in enumerate(series.values()):
        points = " ".join(f"{canvas.x(i, len(labels)):.1f},{canvas.y(v):.1f}"
                          for i, v in enumerate(values_k) if math.isfinite(v))
        parts.append(f'<polyline points="{points}" fill="none" stroke="{LINE_COLOURS[k]}" '
                     'stroke-width="2"/>')
    return _svg(canvas, parts)


# --- drift sections -------------------------------------------------------------------

_DRIFT_HEADERS = ["column", "kind", "method", "score", "threshold", "p-value", "PSI",
                  "PSI > limit", "n reference", "n current", "missing current", "drifted"]


def _drift_row(c: ColumnDrift) -> list[Any]:
    return [c.column, c.kind, c.method, c.statistic, c.threshold,
            math.nan if c.p_value is None else c.p_value, c.psi, c.psi_drifted,
            c.n_reference, c.n_current, c.missing_current, c.drifted]


def _drift_table(columns: Sequence[ColumnDrift]) -> str:
    ordered = sorted(columns, key=lambda c: (not c.drifted, c.column))
    flags = [c.drifted for c in ordered]
    return html_table(_DRIFT_HEADERS, [_drift_row(c) for c in ordered], flags)


def distribution_plots(columns: Sequence[ColumnDrift]) -> str:
    """Reference vs current shares per bin, one small chart per column (up to MAX_PANELS)."""
    shown = [c for c in columns if c.histogram.reference][:MAX_PANELS]
    charts = [
        svg_bars(c.histogram.labels, {"reference": c.histogram.reference,
                                      "current": c.histogram.current},
                 f"{c.column}: {describe_score(c)}")
        for c in shown
    ]
    more = len(columns) - len(shown)
    note = f'<p class="note">{more} more drifted columns are in the table.</p>' if more > 0 else ""
    return "<div>" + "".join(charts) + "</div>" + note


def drift_section(drift: DatasetDrift, extra: Sequence[ColumnDrift]) -> str:
    share = f"{drift.n_drifted} of {len(drift.columns)} features drifted (share {drift.share:.2f}; "
    share += f"dataset drift at {drift.drift_share:.2f}): "
    share += "dataset drift" if drift.dataset_drifted else "no dataset drift"
    parts = ["<h2>Data drift</h2>", f"<p>{html.escape(share)}</p>"]
    if drift.multiple_testing != "none":
        control = f"p-values controlled across columns by {drift.multiple_testing}"
        control += (f"; rows of one {drift.cluster} (and of one period) count as fewer "
                    "independent values" if drift.cluster else "")
        parts.append(f'<p class="note">{html.escape(control)}.</p>')
    parts.append(_drift_table(drift.columns))
    if drift.skipped:
        skipped = "; ".join(f"{k} ({v})" for k, v in drift.skipped.items())
        parts.append(f'<p class="note">Not compared: {html.escape(skipped)}</p>')
    if extra:
        parts += ["<h2>Prediction and target drift</h2>", _drift_table(extra)]
    drifted = [c for c in [*drift.columns, *extra] if c.drifted]
    parts.append("<h2>Distributions of drifted columns</h2>")
    parts.append(distribution_plots(drifted) if drifted else "<p>No column drifted.</p>")
    return "\n".join(parts)


# --- accuracy sections ----------------------------------------------------------------


def _overall_table(accuracy: AccuracyReport) -> str:
    rows = []
    for metric in ("wape", "bias", "coverage"):
        promised = accuracy.expected.get(metric, math.nan)
        observed = accuracy.overall[metric]
        rows.append([metric, observed, promised, observed - promised])
    overall = accuracy.overall
    rows.append(["forecast / actual", overall["forecast"], overall["actual"], math.nan])
    return html_table(["metric", "observed", "promised (backtest)", "deviation"], rows)


def accuracy_over_time_plot(periods: pd.DataFrame, period: str) -> str:
    """Forecast and actual sums per period, and the deviation in % of the actual."""
    labels = periods["period"].astype(str).tolist()
    sums = svg_lines(labels, {"actual": periods["actual"].tolist(),
                              "forecast": periods["forecast"].tolist()},
                     f"forecast vs actual per {period}")
    deviation = svg_bars(labels, {"deviation %": periods["deviation_pct"].tolist()},
                         f"deviation % per {period} (positive = over-forecast)", width=700)
    return f"<div>{sums}</div><div>{deviation}</div>"


def bias_plot(table: pd.DataFrame, by: str) -> str:
    return svg_bars(table[by].astype(str).tolist(), {"bias": table["bias"].tolist()},
                    f"bias by {by} (positive = over-forecast)", width=max(340, 40 * len(table)))


def _bias_section(accuracy: AccuracyReport) -> list[str]:
    if accuracy.by_segment is not None:
        by, table = "segment", accuracy.by_segment
    elif accuracy.by_key:
        by, table = next(iter(accuracy.by_key.items()))
    else:
        return []
    return [f"<h2>Bias by {html.escape(by)}</h2>", bias_plot(table, by), frame_table(table)]


def accuracy_section(accuracy: AccuracyReport) -> str:
    worst = accuracy.by_series.assign(size=lambda t: (t["forecast"] - t["actual"]).abs())
    worst = worst.nlargest(WORST_SERIES, "size").drop(columns="size")
    period = "week" if len(accuracy.periods["week"]) <= 60 else "month"
    parts = ["<h2>Forecast accuracy</h2>", _overall_table(accuracy), "<h2>Accuracy over time</h2>",
             accuracy_over_time_plot(accuracy.periods[period], period)]
    for name in ("month", "quarter"):
        parts += [f"<h3>By {name}</h3>", frame_table(accuracy.periods[name])]
    parts += _bias_section(accuracy)
    for key, table in accuracy.by_key.items():
        parts += [f"<h2>Accuracy by {html.escape(key)}</h2>", frame_table(table)]
    parts += [f"<h2>Worst series (by |forecast - actual|; tracking-signal limit "
              f"±{accuracy.tracking_signal_limit:g})</h2>", frame_table(worst, "alarm")]
    return "\n".join(parts)


# --- accuracy by forecast lag ---------------------------------------------------------


def _people(value: Any, kind: str) -> str:
    """A number for people: ratio 0.123, signed percent +4.2 %, share 81 %, count 1,234
    (kind "" = text as it is); a missing value is a dash."""
    if value is None or pd.isna(value):
        return "–"
    if not kind:
        return str(value)
    value = float(value)
    formats = {"ratio": f"{value:.3f}", "pct": f"{round(value, 1) + 0.0:+.1f} %",
               "share": f"{100 * value:.0f} %", "count": f"{value:,.0f}",
               "amount": f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"}
    return formats[kind]


_LAG_KINDS = {"lag": "count", "wape": "ratio", "bias_pct": "pct", "mae": "amount",
              "coverage": "share", "n": "count", "n_series": "count"}
_REVIEW_KINDS = {"period": "", "n": "count", "forecast": "amount", "actual": "amount",
                 "wape": "ratio", "bias_pct": "pct", "coverage": "share", "driver_series": "",
                 "driver_share": "share"}
_TITLES = {"wape": "WAPE", "mae": "MAE", "bias_pct": "bias (+ = over)", "n": "forecasts",
           "n_series": "series", "driver_series": "largest miss", "driver_share": "its share"}


def people_table(frame: pd.DataFrame, kinds: Mapping[str, str]) -> str:
    """The ``kinds`` columns of ``frame`` (kind "" = text), numbers formatted for people."""
    rows = [[_people(row[c], k) for c, k in kinds.items()] for _, row in frame.iterrows()]
    return html_table([_TITLES.get(c, c) for c in kinds], rows)


def lag_section(lag: LagAccuracy) -> str:
    """Accuracy by forecast lag (table and WAPE chart) and the review at the review lag."""
    parts = ["<h2>Accuracy by forecast lag</h2>", f"<p>{html.escape(lag.summary)}</p>"]
    if lag.empty:
        return "\n".join(parts)
    unit = PERIOD_WORDS.get(lag.freq, "periods")
    parts.append(f'<p class="note">Lag k: the forecast made k {unit} before the period it is '
                 f"for. Model version {html.escape(str(lag.model_version))}, "
                 f"{lag.n_forecasts:,} forecasts of {lag.n_series:,} series with their actual, "
                 f"origins {lag.first_origin} .. {lag.last_origin}.</p>")
    known = lag.by_lag[lag.by_lag["n"] > 0]
    if len(known) > 1:
        parts.append(svg_lines([f"lag {k}" for k in known["lag"]],
                               {"WAPE": known["wape"].tolist()}, "WAPE by forecast lag",
                               width=460))
    parts.append(people_table(lag.by_lag, _LAG_KINDS))
    parts.append(f"<h3>Review at lag {lag.review_lag} (the lag the business plans on)</h3>")
    beyond = lag.horizon is not None and lag.review_lag > lag.horizon
    missing = (f"the model forecasts only {lag.horizon} {unit} ahead" if beyond
               else "none has its actual yet")
    for period, table in lag.review.items():
        parts.append(f"<h4>By {period}</h4>")
        parts.append(people_table(table, _REVIEW_KINDS) if not table.empty else
                     f"<p>No lag-{lag.review_lag} forecast: {missing}.</p>")
    return "\n".join(parts)


# --- forecast value added ------------------------------------------------------------

_FVA_KINDS = {"n": "count", "n_overridden": "count", "n_naive": "count", "wape_naive": "ratio",
              "wape_model": "ratio", "wape_final": "ratio", "bias_model": "share",
              "bias_final": "share", "fva_model": "ratio", "fva_override": "ratio"}
_TITLES.update({"n_overridden": "overridden", "n_naive": "with naive", "wape_naive":
                "WAPE naive", "wape_model": "WAPE model", "wape_final": "WAPE final",
                "bias_model": "bias model", "bias_final": "bias final",
                "fva_model": "FVA model vs naive", "fva_override": "FVA overrides"})


def _fva_table(table: pd.DataFrame, by: str) -> str:
    return people_table(table, {by: "", **_FVA_KINDS})


def fva_section(fva: FvaReport) -> str:
    """Naive vs model vs final (overridden): the value each step added, by author,
    reason and key (positive FVA = the step lowered WAPE)."""
    overall = pd.DataFrame([{"forecasts": "all", **fva.overall}])
    if fva.overridden is not None:
        overall = pd.concat([overall, pd.DataFrame([{"forecasts": "overridden",
                                                     **fva.overridden}])])
    parts = ["<h2>Forecast value added</h2>", f"<p>{html.escape(fva.summary)}</p>",
             f'<p class="note">Naive: {html.escape(fva.naive_basis)}. FVA = WAPE before '
             "the step - WAPE after it: positive means the step helped.</p>",
             _fva_table(overall, "forecasts")]
    for title, table, by in (("author", fva.by_author, "author"),
                             ("reason", fva.by_reason, "reason"),
                             *((key, t, key) for key, t in fva.by_key.items())):
        if not table.empty:
            parts += [f"<h3>By {html.escape(title)}</h3>", _fva_table(table, by)]
    return "\n".join(parts)


# --- the page and the files -----------------------------------------------------------


def _header(result: MonitorResult) -> str:
    verdict = result.verdict
    reasons = "".join(f"<li>{html.escape(r)}</li>" for r in verdict.reasons)
    decided = (f'<p class="decided"><b>Decided by:</b> {html.escape(verdict.decided_by)}</p>'
               if verdict.decided_by else "")
    causes = "".join(f"<li>{html.escape(r)}</li>" for r in verdict.explanations)
    explained = f"<p><b>Explained by:</b></p><ul>{causes}</ul>" if causes else ""
    context = html_table([], [[k, v] for k, v in result.context.items()])
    return (f'<div class="verdict {verdict.status}"><div class="status">{verdict.status}</div>'
            f"{decided}<ul>{reasons}</ul>{explained}</div>{context}")


def history_section(drift: DatasetDrift) -> str:
    """The whole-history view: the same inputs against every training period (not judged)."""
    note = ("The same logged inputs against the whole training sample, raw values. A "
            "growing, seasonal business differs from its multi-year history every month, "
            "so this view is shown but never judged.")
    return "\n".join(["<h2>Whole-history view (not judged)</h2>", f'<p class="note">{note}</p>',
                      f"<p>{drift.n_drifted} of {len(drift.columns)} features differ.</p>",
                      _drift_table(drift.columns)])


def render_html(result: MonitorResult) -> str:
    """The self-contained HTML page of a monitoring run."""
    body = ["<h1>salescast monitoring report</h1>", _header(result)]
    extra = [c for c in (result.prediction_drift, result.target_drift) if c is not None]
    if result.drift is not None:
        body.append(drift_section(result.drift, extra))
    if result.history_drift is not None:
        body.append(history_section(result.history_drift))
    if result.accuracy is not None:
        body.append(accuracy_section(result.accuracy))
    if result.lag_accuracy is not None:
        body.append(lag_section(result.lag_accuracy))
    if result.fva is not None:
        body.append(fva_section(result.fva))
    return ("<!DOCTYPE html><html><head><meta charset=\"utf-8\">"
            "<title>salescast monitoring report</title>"
            f"<style>{_CSS}</style></head><body>{''.join(body)}</body></html>")


def write_report(
    result: MonitorResult, out_dir: str | Path, include_html: bool = True,
) -> tuple[Path, Path | None]:
    """Write ``report.json`` and (unless ``include_html`` is False) ``report.html``."""
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    json_path = folder / "report.json"
    json_path.write_text(json.dumps(to_document(result), indent=1, allow_nan=False))
    if not include_html:
        return json_path, None
    html_path = folder / "report.html"
    html_path.write_text(render_html(result), encoding="utf-8")
    log.debug("monitoring report written to %s", folder)
    return json_path, html_path
