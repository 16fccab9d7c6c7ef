"""`salescast review`: a small SQLite prediction store in, the review's numbers checked by hand.

The store is filled through :class:`serving.store.PredictionStore` and
:func:`serving.overrides.insert_override` directly; the command runs through the real
`salescast` Typer app. Expected numbers are computed here from the data written
(WAPE = sum |f - y| / sum |y| after summing to the level, bias = sum (f - y) / sum y,
f = the final number after overrides), never copied from the code.
"""

from __future__ import annotations

import json
import math
import subprocess
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from experiments.cli import app
from experiments.review import ReviewError, parse_period
from experiments.review_html import human_number, human_pct, points
from serving.overrides import NewOverride, insert_override
from serving.store import Actual, PredictionStore, utc_now
from tests.experiments._browser import CHROMIUM_FLAGS, chromium_binary

runner = CliRunner()

SEPTEMBER = ["2024-09-02", "2024-09-09", "2024-09-16", "2024-09-23", "2024-09-30"]
OUTSIDE = ["2024-08-26", "2024-10-07"]  # forecasts and actuals outside the period
SERIES = ["S01|C1", "S01|C2", "S02|C1"]
Y = {"S01|C1": [100, 120, 110, 90, 100], "S01|C2": [1000, 1100, 900, 1000, 1000],
     "S02|C1": [50, 60, 40, 50, 50]}
MODEL = {"S01|C1": [110, 100, 120, 80, 100], "S01|C2": [1200, 1000, 1000, 1100, 900],
         "S02|C1": [55, 50, 45, 50, 60]}
OVERRIDE = ("S01|C1", "2024-09-09", 125.0)  # maria, promotion: model 100 -> final 125
STALE = ("S02|C1", "2024-09-02", 999.0)  # an older forecast of a cell: the newer one counts
NAIVE = ("S01|C1", "2023-09-04", 80.0)  # 52 weeks before 2024-09-02: its seasonal naive


def final(series: str, k: int) -> float:
    return OVERRIDE[2] if (series, SEPTEMBER[k]) == OVERRIDE[:2] else float(MODEL[series][k])


def _row(series: str, ds: str, yhat: float, created: Any, extra: tuple[Any, ...] = ()
         ) -> tuple[Any, ...]:
    return ("r1", created, "toy", "1", series, ds, yhat, yhat * 0.9, yhat * 1.1, None,
            "2024-08-19", *extra)


def _fill(store: PredictionStore) -> None:
    override = insert_override(store, NewOverride(
        OVERRIDE[0], (date.fromisoformat(OVERRIDE[1]),), OVERRIDE[2], None, "maria",
        "promotion", "a big order"))
    now = utc_now()
    rows = [_row(STALE[0], STALE[1], STALE[2], now - timedelta(days=3))]
    for series in SERIES:
        for k, ds in enumerate(SEPTEMBER):
            touched = (series, ds) == OVERRIDE[:2]
            extra = (OVERRIDE[2], override.id) if touched else (float("nan"), None)
            rows.append(_row(series, ds, float(MODEL[series][k]), now, extra))
        rows += [_row(series, ds, 5000.0, now, (float("nan"), None)) for ds in OUTSIDE]
    store.write_predictions(rows)
    actuals = [Actual(s, date.fromisoformat(ds), float(Y[s][k]))
               for s in SERIES for k, ds in enumerate(SEPTEMBER)]
    actuals += [Actual(s, date.fromisoformat(ds), 1.0) for s in SERIES for ds in OUTSIDE]
    actuals.append(Actual(NAIVE[0], date.fromisoformat(NAIVE[1]), NAIVE[2]))
    store.upsert_actuals(actuals)


@pytest.fixture
def store_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'predictions.db'}"
    store = PredictionStore(url)
    try:
        _fill(store)
    finally:
        store.dispose()
    monkeypatch.setenv("SALESCAST_STORE_URL", url)
    return url


def _review(out: Path, *args: str) -> Any:
    return runner.invoke(app, ["review", "--period", "2024-09", "--keys", "store,category",
                               "--freq", "W", "--out", str(out), *args])


@pytest.fixture
def reviewed(store_url: str, tmp_path: Path) -> tuple[dict[str, Any], str, Path]:
    out = tmp_path / "reviews"
    result = _review(out, "--action", "raise the promotion uplift", "--action", "call li")
    assert result.exit_code == 0, result.output
    doc = json.loads((out / "review-2024-09.json").read_text())
    return doc, result.output, out / "review-2024-09.html"


def _level(doc: dict[str, Any], name: str) -> dict[str, Any]:
    return next(r for r in doc["levels"] if r["level"] == name)


def test_total_and_series_levels_match_the_hand_computation(
        reviewed: tuple[dict[str, Any], str, Path]) -> None:
    doc = reviewed[0]
    totals_f = [sum(final(s, k) for s in SERIES) for k in range(5)]
    totals_y = [sum(Y[s][k] for s in SERIES) for k in range(5)]
    total = _level(doc, "total")
    assert total["forecast"] == pytest.approx(sum(totals_f))
    assert total["actual"] == pytest.approx(sum(totals_y))
    assert total["wape"] == pytest.approx(
        sum(abs(f - y) for f, y in zip(totals_f, totals_y, strict=True)) / sum(totals_y))
    assert total["bias"] == pytest.approx((sum(totals_f) - sum(totals_y)) / sum(totals_y))
    cells = [(final(s, k), Y[s][k]) for s in SERIES for k in range(5)]
    assert _level(doc, "series_id")["wape"] == pytest.approx(
        sum(abs(f - y) for f, y in cells) / sum(y for _, y in cells))
    assert doc["n_forecasts"] == 15 and doc["n_series"] == 3


def test_store_level_sums_its_series_before_comparing(
        reviewed: tuple[dict[str, Any], str, Path]) -> None:
    doc = reviewed[0]
    groups = {"S01": ["S01|C1", "S01|C2"], "S02": ["S02|C1"]}
    error = sum(abs(sum(final(s, k) - Y[s][k] for s in members))
                for members in groups.values() for k in range(5))
    assert _level(doc, "store")["wape"] == pytest.approx(error / sum(sum(v) for v in Y.values()))


def test_biggest_deviations_are_ordered_with_their_groups(
        reviewed: tuple[dict[str, Any], str, Path]) -> None:
    doc = reviewed[0]
    absolute = {s: sum(abs(final(s, k) - Y[s][k]) for k in range(5)) for s in SERIES}
    assert [r["series_id"] for r in doc["deviations"]] == sorted(
        SERIES, key=lambda s: -absolute[s])
    top = doc["deviations"][0]
    assert (top["series_id"], top["store"], top["category"]) == ("S01|C2", "S01", "C2")
    assert top["abs_error"] == pytest.approx(absolute["S01|C2"])
    assert top["share"] == pytest.approx(absolute["S01|C2"] / sum(absolute.values()))
    behind = {(r["level"], r["group"]): r["top_series"] for r in doc["groups_behind"]}
    assert behind[("store", "S01")] == 2 and behind[("category", "C1")] == 2


def test_bias_by_author_and_fva_use_the_override(
        reviewed: tuple[dict[str, Any], str, Path]) -> None:
    doc = reviewed[0]
    (author,) = doc["bias_by_author"]
    y = Y["S01|C1"][1]
    assert author["author"] == "maria" and author["n_overridden"] == 1
    assert author["bias_model"] == pytest.approx((100 - y) / y)
    assert author["bias_final"] == pytest.approx((125 - y) / y)
    rows = {r["scope"]: r for r in doc["fva"]["rows"]}
    assert rows["overridden forecasts"]["fva_override"] == pytest.approx(
        abs(100 - y) / y - abs(125 - y) / y)
    assert "reason: promotion" in rows
    overall, y0 = rows["all forecasts"], Y["S01|C1"][0]
    assert overall["n_naive"] == 1
    assert overall["wape_naive"] == pytest.approx(abs(NAIVE[2] - y0) / y0)
    assert overall["fva_model"] == pytest.approx(
        abs(NAIVE[2] - y0) / y0 - abs(MODEL["S01|C1"][0] - y0) / y0)
    assert "16.7 % (model) to 4.2 % (final)" in doc["fva"]["summary"]
    segment = {(r["level"], r["group"]): r for r in doc["bias_by_segment"]}
    f_c1 = sum(final(s, k) for s in ("S01|C1", "S02|C1") for k in range(5))
    y_c1 = sum(sum(Y[s]) for s in ("S01|C1", "S02|C1"))
    assert segment[("category", "C1")]["bias"] == pytest.approx((f_c1 - y_c1) / y_c1)


def test_actions_the_summary_and_the_page(reviewed: tuple[dict[str, Any], str, Path]) -> None:
    doc, output, html_path = reviewed
    assert doc["actions"] == ["raise the promotion uplift", "call li"]
    total = _level(doc, "total")
    assert f"WAPE {human_pct(total['wape'])}" in output and "json " in output
    page = html_path.read_text()
    assert human_number(total["actual"]) in page and "raise the promotion uplift" in page
    assert "e+0" not in page and "max-width" in page and "table-layout:fixed" in page


def test_no_action_means_none_recorded(store_url: str, tmp_path: Path) -> None:
    assert _review(tmp_path).exit_code == 0
    doc = json.loads((tmp_path / "review-2024-09.json").read_text())
    assert doc["actions"] == ["none recorded"]


def test_a_quarter_takes_its_three_months(store_url: str, tmp_path: Path) -> None:
    result = runner.invoke(app, ["review", "--period", "2024-Q3", "--keys", "store,category",
                                 "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    doc = json.loads((tmp_path / "review-2024-Q3.json").read_text())
    assert doc["n_forecasts"] == 18  # September's 15 and the week of 2024-08-26


def test_a_period_without_actuals_fails_cleanly_and_writes_nothing(
        store_url: str, tmp_path: Path) -> None:
    out = tmp_path / "empty"
    result = runner.invoke(app, ["review", "--period", "2023-02", "--out", str(out)])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "error: no actuals for period 2023-02 (2023-02-01 .. 2023-02-28) in the prediction "
        "store: nothing to review"]
    assert not out.exists()


@pytest.mark.parametrize("text", ["2024-13", "2024-Q5", "09-2024", "2024"])
def test_a_malformed_period_is_refused(text: str) -> None:
    with pytest.raises(ReviewError, match="neither a month"):
        parse_period(text)


@pytest.mark.parametrize(("text", "first", "last"), [
    ("2024-09", "2024-09-01", "2024-09-30"), ("2024-02", "2024-02-01", "2024-02-29"),
    ("2024-Q3", "2024-07-01", "2024-09-30"), ("2024-q4", "2024-10-01", "2024-12-31"),
])
def test_periods(text: str, first: str, last: str) -> None:
    period = parse_period(text)
    assert (f"{period.first:%Y-%m-%d}", f"{period.last:%Y-%m-%d}") == (first, last)


@pytest.mark.parametrize(("value", "text"), [
    (1379000, "1,379,000"), (1.379e6, "1,379,000"), (1234.56, "1,235"), (12.34, "12.3"),
    (7, "7"), (-2500.0, "-2,500"), (1e20, "100,000,000,000,000,000,000"), (None, "n/a"),
    (math.nan, "n/a"),
])
def test_human_number(value: Any, text: str) -> None:
    assert human_number(value) == text


@pytest.mark.parametrize(("value", "signed", "text"), [
    (0.1234, False, "12.3 %"), (0.1234, True, "+12.3 %"), (-0.05, True, "-5.0 %"),
    (12.5, False, "1,250.0 %"), (-0.0001, True, "0.0 %"), (None, False, "n/a"),
])
def test_human_pct(value: Any, signed: bool, text: str) -> None:
    assert human_pct(value, signed=signed) == text


def test_points() -> None:
    assert points(0.052) == "+5.2 pts" and points(math.nan) == "n/a"


MEASURE = ("<script>window.addEventListener('load',()=>{const p=document.createElement('pre');"
           "p.id='measure';p.textContent=document.documentElement.scrollWidth+' '+"
           "window.innerWidth;document.body.appendChild(p)});</script>")


@pytest.mark.skipif(chromium_binary() is None, reason="headless Chromium is not installed")
def test_the_page_fits_a_laptop_width(reviewed: tuple[dict[str, Any], str, Path],
                                      tmp_path: Path) -> None:
    page = tmp_path / "measured.html"
    page.write_text(reviewed[2].read_text().replace("</body>", f"{MEASURE}</body>"))
    flags = [f for f in CHROMIUM_FLAGS if not f.startswith("--window-size")]
    command = [str(chromium_binary()), *flags, "--window-size=1366,800",
               f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=3000",
               "--dump-dom", page.as_uri()]
    dom = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True).stdout
    measured = dom.split('<pre id="measure">')[1].split("</pre>")[0]
    scroll_width, inner_width = (int(v) for v in measured.split())
    assert inner_width == 1366 and scroll_width <= inner_width
