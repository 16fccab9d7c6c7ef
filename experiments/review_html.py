"""The forecast review as a page people read: numbers formatted, one self-contained HTML.

Numbers for people (:func:`human_number`, :func:`human_pct`): thousands separators
(``1379000`` -> ``1,379,000``; one decimal below 100), percentages with one decimal
(``0.1234`` -> ``12.3 %``), never scientific notation, ``n/a`` for a missing value.

The page fits a laptop screen (1366 px) without horizontal scrolling: a centred column of
at most 1100 px, tables at 100 % width with ``table-layout: fixed`` and cells that wrap
(long series ids break anywhere); no image, script or fixed-width element. Inline CSS
only, so the file can be mailed or attached as it is.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from html import escape
from typing import Any

MISSING = "n/a"
Formatter = Callable[[Any], str]

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#1d2430;
background:#f6f7f9}
main{max-width:1100px;margin:0 auto;padding:16px 20px;box-sizing:border-box}
h1{font-size:1.5em;margin:.4em 0}h2{font-size:1.15em;margin:1.4em 0 .4em}
p.note{color:#5a6270;font-size:.9em;margin:.3em 0}
table{width:100%;table-layout:fixed;border-collapse:collapse;background:#fff;
font-size:.9em;margin:.4em 0}
th,td{padding:4px 6px;border-bottom:1px solid #e2e5ea;overflow-wrap:anywhere;
word-break:break-word;vertical-align:top}
th{text-align:left;background:#eef1f5}td.num,th.num{text-align:right}
.cards{display:flex;flex-wrap:wrap;gap:10px}
.card{flex:1 1 160px;background:#fff;border:1px solid #e2e5ea;border-radius:6px;
padding:8px 12px;min-width:0}
.card b{display:block;font-size:1.3em}
"""


def human_number(value: Any) -> str:
    """``1379000`` -> ``1,379,000``; ``12.34`` -> ``12.3``; None / NaN -> ``n/a``."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return MISSING
    number = float(value)
    text = f"{number:,.0f}" if abs(number) >= 100 or number == int(number) else f"{number:,.1f}"
    return "0" if text == "-0" else text


def human_pct(value: Any, signed: bool = False) -> str:
    """``0.1234`` -> ``12.3 %`` (``+12.3 %`` with ``signed``); None / NaN -> ``n/a``."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return MISSING
    text = f"{100 * float(value):{'+' if signed else ''},.1f}"
    return f"{'0.0' if text in ('-0.0', '+0.0') else text} %"


def signed_pct(value: Any) -> str:
    return human_pct(value, signed=True)


def points(value: Any) -> str:
    """A WAPE difference in percentage points: ``0.052`` -> ``+5.2 pts``."""
    text = human_pct(value, signed=True)
    return text if text == MISSING else text.replace(" %", " pts")


def plain(value: Any) -> str:
    return MISSING if value is None else str(value)


# column -> (header, formatter, numeric)
COLUMNS: dict[str, tuple[str, Formatter, bool]] = {
    "level": ("level", plain, False), "group": ("group", plain, False),
    "series_id": ("series", plain, False), "scope": ("scope", plain, False),
    "author": ("author", plain, False), "forecasts": ("forecasts", plain, False),
    "n_groups": ("groups", human_number, True), "n": ("rows", human_number, True),
    "n_series": ("series", human_number, True), "top_series": ("top series", human_number, True),
    "n_overridden": ("overridden", human_number, True),
    "n_naive": ("with naive", human_number, True),
    "forecast": ("forecast", human_number, True), "actual": ("actual", human_number, True),
    "error": ("error", human_number, True), "abs_error": ("abs. error", human_number, True),
    "share": ("share of error", human_pct, True), "wape": ("WAPE", human_pct, True),
    "bias": ("bias", signed_pct, True),
    "wape_naive": ("WAPE naive", human_pct, True), "wape_model": ("WAPE model", human_pct, True),
    "wape_final": ("WAPE final", human_pct, True),
    "bias_model": ("bias model", signed_pct, True), "bias_final": ("bias final", signed_pct, True),
    "fva_model": ("FVA model vs naive", points, True),
    "fva_override": ("FVA override vs model", points, True),
    "fva_total": ("FVA total", points, True),
    "ds": ("period", plain, False), "name": ("driver", plain, False),
    "value": ("value", plain, False), "yhat": ("model", human_number, True),
    "base": ("base", human_number, True), "contribution": ("contribution", human_number, True),
}


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str], empty: str) -> str:
    """An HTML table of ``rows`` (their ``columns``, formatted), or a note when empty."""
    if not rows:
        return f'<p class="note">{escape(empty)}</p>'
    specs = [(c, COLUMNS.get(c, (c, plain, False))) for c in columns]
    head = "".join(f'<th{" class=num" if n else ""}>{escape(h)}</th>' for _, (h, _, n) in specs)
    body = "".join(
        "<tr>" + "".join(f'<td{" class=num" if n else ""}>{escape(fmt(row.get(c)))}</td>'
                         for c, (_, fmt, n) in specs) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def fva_sentence(fva: dict[str, Any]) -> str:
    """What the overrides and the model added, in words, with percentages for people."""
    rows = {r["scope"]: r for r in fva["rows"]}
    overall, touched = rows["all forecasts"], rows.get("overridden forecasts")
    if touched is None:
        people = "No forecast of the period was overridden."
    else:
        gain = touched["fva_override"] or 0.0
        verdict = "added value" if gain > 0 else "added noise" if gain < 0 else "changed nothing"
        people = (f"Overrides changed {human_number(touched['n'])} of "
                  f"{human_number(overall['n'])} forecasts: on them WAPE went from "
                  f"{human_pct(touched['wape_model'])} (model) to "
                  f"{human_pct(touched['wape_final'])} (final), they {verdict}.")
    if not overall["n_naive"]:
        return f"{people} No forecast has a seasonal-naive value: no comparison with naive."
    return (f"{people} On the {human_number(overall['n_naive'])} forecasts with a "
            f"seasonal-naive value the model's value added is {points(overall['fva_model'])}"
            " of WAPE.")


def _cards(total: dict[str, Any]) -> str:
    items = [("Forecast", human_number(total.get("forecast"))),
             ("Actual", human_number(total.get("actual"))),
             ("WAPE", human_pct(total.get("wape"))), ("Bias", signed_pct(total.get("bias")))]
    return '<div class="cards">' + "".join(
        f'<div class="card">{escape(k)}<b>{escape(v)}</b></div>' for k, v in items) + "</div>"


def _drivers(drivers: str | list[dict[str, Any]]) -> list[str]:
    """The model's drivers of the top series' forecasts (a table), or why there are none."""
    if isinstance(drivers, str):
        return [f'<p class="note">Drivers: {escape(drivers)}.</p>']
    return ["<h3>Why the model said so: drivers of the top series' forecasts</h3>",
            table(drivers, ["series_id", "ds", "yhat", "base", "name", "value", "contribution"],
                  "None of their forecasts was within the model's reach."),
            '<p class="note">base + the contributions = the model\'s number (yhat); the plan '
            "at the start of the period, before overrides.</p>"]


def _sections(doc: dict[str, Any]) -> list[str]:
    keys = [k for k in doc["keys"] if any(k in r for r in doc["deviations"])]
    fva = doc["fva"]
    return [
        "<h2>Headline: each level</h2>",
        table(doc["levels"], ["level", "n_groups", "forecast", "actual", "wape", "bias"], ""),
        table(doc["cold_start"], ["forecasts", "n_series", "forecast", "actual", "wape", "bias"],
              "No new (cold-start) series in the period."),
        f"<h2>Biggest deviations (top {len(doc['deviations'])} series)</h2>",
        table(doc["deviations"], ["series_id", *keys, "forecast", "actual", "error",
                                  "abs_error", "share"], "No deviation."),
        "<h3>The level groups behind them</h3>",
        table(doc["groups_behind"], ["level", "group", "top_series", "forecast", "actual",
                                     "wape", "bias"], "The series have no key columns."),
        *_drivers(doc["drivers"]),
        "<h2>Bias by segment</h2>",
        table(doc["bias_by_segment"], ["level", "group", "forecast", "actual", "wape", "bias"],
              "No key column: no segments."),
        "<h2>Bias by override author</h2>",
        table(doc["bias_by_author"], ["author", "n_overridden", "actual", "bias_model",
                                      "bias_final", "fva_override"],
              "No forecast of the period was overridden."),
        "<h2>Forecast value added</h2>", f"<p>{escape(fva['summary'])}</p>",
        table(fva["rows"], ["scope", "n", "n_naive", "wape_naive", "wape_model", "wape_final",
                            "fva_model", "fva_override", "fva_total"], ""),
        f'<p class="note">Naive forecast: {escape(fva["naive_basis"])}. FVA is the WAPE a '
        "step removed: positive = the step helped.</p>",
        "<h2>Actions decided</h2>",
        "<ul>" + "".join(f"<li>{escape(a)}</li>" for a in doc["actions"]) + "</ul>",
    ]


def render_review(doc: dict[str, Any]) -> str:
    """The whole self-contained HTML page of a review document."""
    period = doc["period"]
    total = next((r for r in doc["levels"] if r["level"] == "total"), {})
    intro = (f'<p class="note">{period["first"]} .. {period["last"]}: '
             f'{human_number(doc["n_forecasts"])} forecasts with actuals, '
             f'{human_number(doc["n_series"])} series. Forecast = the final number (after '
             f'overrides); bias &gt; 0 = over-forecast. Generated {escape(doc["generated"])}.'
             "</p>")
    title = f"Forecast review {escape(period['label'])}"
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{title}</title><style>{CSS}</style></head><body><main>"
            f"<h1>{title}</h1>{intro}{_cards(total)}{''.join(_sections(doc))}"
            "</main></body></html>")


def summary_lines(doc: dict[str, Any]) -> list[str]:
    """The short summary the command prints (label padded like `salescast monitor`)."""
    total = next((r for r in doc["levels"] if r["level"] == "total"), {})
    lines = [f"period     {doc['period']['label']} ({human_number(doc['n_forecasts'])} "
             f"forecasts with actuals, {human_number(doc['n_series'])} series)",
             f"total      forecast {human_number(total.get('forecast'))}, actual "
             f"{human_number(total.get('actual'))}, WAPE {human_pct(total.get('wape'))}, "
             f"bias {signed_pct(total.get('bias'))}"]
    for row in (r for r in doc["levels"] if r["level"] != "total"):
        lines.append(f"{'level':<10} {row['level']}: WAPE {human_pct(row['wape'])}")
    if doc["deviations"]:
        top = doc["deviations"][0]
        lines.append(f"largest    {top['series_id']}: abs. error {human_number(top['abs_error'])}"
                     f" ({human_pct(top['share'])} of the period's), net "
                     f"{human_number(top['error'])}")
    lines.append(f"fva        {doc['fva']['summary']}")
    lines.append(f"actions    {'; '.join(doc['actions'])}")
    return lines
