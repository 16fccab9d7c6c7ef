"""`salescast review`: the periodic forecast review, as HTML + JSON, from the store.

    salescast review --period 2024-09 [--spec experiments/retail_demo.yaml]
                     [--keys store,category] [--freq W] [--out reviews]
                     [--action "raise the S03 promotion uplift"] [--action ...]

Reads the prediction store of ``Settings.store_url`` (``SALESCAST_STORE_URL``, as
``salescast monitor`` and the API do), builds the review of the month (``YYYY-MM``) or
quarter (``YYYY-Qn``) (:mod:`experiments.review`), writes ``review-<period>.html``
(self-contained, :mod:`experiments.review_html`) and ``review-<period>.json`` into
``--out`` and prints a short summary. The key columns (for the levels and segments) are
``--keys``, else the spec's ``data.sales_columns.keys``, else none (total and series
only); the frequency (for the seasonal naive) is ``--freq``, else the spec's, else
inferred from the actuals' dates. ``--action`` (repeatable) records the decisions taken;
without it the section says "none recorded". No champion is loaded, so no MLflow.

A period without actuals, or a malformed period, is one ``error:`` line and exit 1;
nothing is written then.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

if TYPE_CHECKING:
    from experiments.review import Period

log = logging.getLogger(__name__)


def _fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code=1)


def _from_spec(spec: Path | None, keys: str | None, freq: str | None, model: str | None
               ) -> tuple[list[str], str | None, str | None]:
    """The key columns, frequency and registered model name: the options first, then the
    spec's."""
    wanted = [k.strip() for k in keys.split(",") if k.strip()] if keys else None
    if spec is not None:
        from experiments.cli_support import fail_cleanly
        from experiments.spec import load_spec

        with fail_cleanly():
            loaded = load_spec(spec)
        wanted = wanted if wanted is not None else list(loaded.data.sales_columns.keys)
        freq = freq or loaded.frequency
        model = model or loaded.registered_model_name
    return wanted or [], freq, model


def write_review(doc: dict[str, Any], out: Path, period: Period) -> tuple[Path, Path]:
    from experiments.review_html import render_review

    out.mkdir(parents=True, exist_ok=True)
    json_path, html_path = (out / f"review-{period.label}{s}" for s in (".json", ".html"))
    json_path.write_text(json.dumps(doc, indent=1, allow_nan=False), encoding="utf-8")
    html_path.write_text(render_review(doc), encoding="utf-8")
    return json_path, html_path


@dataclass(frozen=True)
class ModelRef:
    """The registered model whose versions explain the top deviations, and where it lives."""

    name: str
    tracking_uri: str
    registry_uri: str | None = None


def build_document(period: Period, keys: list[str], freq: str | None, actions: list[str],
                   store_url: str, model: ModelRef | None = None) -> dict[str, Any]:
    """The review of ``period`` from the prediction store at ``store_url``; with ``model``,
    the drivers of the top deviations too (:mod:`experiments.review_drivers`)."""
    from experiments.review import build_review, read_period
    from experiments.review_drivers import drivers_section
    from serving.store import PredictionStore

    store = PredictionStore(store_url)
    try:
        frame, used_freq = read_period(store, period, keys, freq)
        doc = build_review(frame, period, keys, actions, used_freq,
                           source=_shown_url(store_url))
        doc["drivers"] = drivers_section(store, doc, model and model.name,
                                         model.tracking_uri if model else "",
                                         model.registry_uri if model else None)
    finally:
        store.dispose()
    return doc


def _shown_url(url: str) -> str:
    """The store URL without its password (it goes into the JSON)."""
    import sqlalchemy as sa

    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return "(unparsable store URL)"


def review(
    period: Annotated[str, typer.Option(help="A month (YYYY-MM) or a quarter (YYYY-Qn).")],
    spec: Annotated[Path | None, typer.Option(
        help="Experiment spec: its key columns and frequency.")] = None,
    keys: Annotated[str | None, typer.Option(
        help="Comma-separated key columns of the series ids (default: the spec's).")] = None,
    freq: Annotated[str | None, typer.Option(
        help="D, W or M, for the seasonal naive (default: the spec's, else inferred).")] = None,
    out: Annotated[Path, typer.Option(help="Folder for review-<period>.html/.json.")] = Path(
        "reviews"),
    model: Annotated[str | None, typer.Option(
        help="Registered model whose versions explain the top deviations (default: the "
        "spec's).")] = None,
    action: Annotated[list[str] | None, typer.Option(
        "--action", help="An action decided in the review (repeat the option).")] = None,
) -> None:
    """Write the forecast review of a month or quarter (HTML + JSON) and print its summary."""
    from experiments.cli_support import fail_cleanly
    from experiments.review import ReviewError, parse_period
    from experiments.review_html import summary_lines
    from experiments.settings import Settings

    if freq is not None and freq not in ("D", "W", "M"):
        _fail(f"--freq {freq!r} is not one of D, W, M")
    with fail_cleanly():
        try:
            parsed = parse_period(period)
            chosen_keys, chosen_freq, model_name = _from_spec(spec, keys, freq, model)
            settings = Settings()
            ref = (ModelRef(model_name, settings.tracking_uri, settings.registry_uri)
                   if model_name else None)
            doc = build_document(parsed, chosen_keys, chosen_freq, list(action or []),
                                 settings.store_url, ref)
        except ReviewError as exc:
            _fail(str(exc))
        paths = write_review(doc, out, parsed)
    for line in summary_lines(doc):
        typer.echo(line)
    typer.echo(f"json       {paths[0]}")
    typer.echo(f"html       {paths[1]}")
