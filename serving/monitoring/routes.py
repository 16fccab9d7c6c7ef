"""The latest monitoring report over HTTP: drift, accuracy, and the HTML page.

`salescast monitor --spec ...` writes ``latest.json`` / ``latest.html`` (and dated copies
``monitor-<UTC time>.*``) into ``settings.reports_dir``; these routes serve the latest
one. They compute nothing themselves: a report is a batch job's result, and the API
stays fast. Before any report exists they answer 404 with the JSON error shape.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, TypeVar

from fastapi import APIRouter
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field, ValidationError

from serving.deps import SettingsDep
from serving.errors import ApiError
from serving.schemas import error_responses, json_error_responses

log = logging.getLogger(__name__)

router = APIRouter(tags=["monitoring"])

LATEST = "latest"
NO_REPORT = ("no monitoring report yet in {folder}: run `salescast monitor --spec FILE` "
             "(it writes latest.json / latest.html there)")


class Verdict(BaseModel):
    """ok / watch / retrain and why."""

    status: str
    reasons: list[str]


class DriftReport(BaseModel):
    """Data, prediction and target drift of the latest monitoring run."""

    generated: str | None = Field(None, description="When the report was made (UTC).")
    verdict: Verdict
    context: dict[str, str] = Field(default_factory=dict)
    drift: dict[str, Any] | None = Field(None, description="Per-feature drift and the share.")
    prediction_drift: dict[str, Any] | None = None
    target_drift: dict[str, Any] | None = None
    thresholds: dict[str, Any] = Field(default_factory=dict)


class LagRow(BaseModel):
    """Accuracy of the forecasts made ``lag`` periods before the period they are for."""

    lag: int = Field(..., ge=1)
    n: int = Field(..., description="Forecasts with their actual.")
    n_series: int
    forecast: float | None = None
    actual: float | None = None
    wape: float | None = None
    bias_pct: float | None = Field(None, description="Positive = over-forecast.")
    mae: float | None = None
    coverage: float | None = Field(None, description="Share of actuals inside the interval.")


class ReviewRow(BaseModel):
    """One month or quarter of the review at the review lag."""

    period: str
    n: int
    n_series: int
    forecast: float | None = None
    actual: float | None = None
    wape: float | None = None
    bias_pct: float | None = None
    mae: float | None = None
    coverage: float | None = None
    driver_series: str | None = Field(None, description="The series with the largest miss.")
    driver_share: float | None = Field(None, description="Its share of all series' misses.")


class LagAccuracy(BaseModel):
    """Accuracy by forecast lag and the month / quarter review at ``review_lag``."""

    freq: str
    model_version: str | None = None
    review_lag: int
    horizon: int | None = None
    summary: str = Field(..., description="How accuracy decays with lag, in one sentence.")
    n_forecasts: int = 0
    n_series: int = 0
    first_origin: str | None = None
    last_origin: str | None = None
    by_lag: list[LagRow] = Field(default_factory=list)
    review: dict[str, list[ReviewRow]] = Field(default_factory=dict,
                                               description="month and quarter.")


class AccuracyReport(BaseModel):
    """Forecast accuracy (WAPE, bias, coverage, tracking signal) of the latest run."""

    generated: str | None = None
    verdict: Verdict
    context: dict[str, str] = Field(default_factory=dict)
    accuracy: dict[str, Any] | None = Field(
        None, description="overall, by_series, by_key, by_segment, periods; null before "
        "any actuals arrived.")
    lag_accuracy: LagAccuracy | None = Field(
        None, description="Accuracy by forecast lag; null in reports made without it.")
    fva: dict[str, Any] | None = Field(
        None, description="Forecast value added: seasonal naive vs model vs final "
        "(overridden) WAPE and bias, overall, by author, reason and key; null without "
        "actuals or in reports made without it.")


Report = TypeVar("Report", DriftReport, AccuracyReport)


def latest_report(folder: Path, suffix: str) -> Path:
    """``latest<suffix>``, else the newest ``monitor-*<suffix>``; 404 when there is none."""
    latest = folder / f"{LATEST}{suffix}"
    if latest.is_file():
        return latest
    dated = sorted(folder.glob(f"monitor-*{suffix}")) if folder.is_dir() else []
    if not dated:
        raise ApiError(404, "no_report", NO_REPORT.format(folder=folder))
    return dated[-1]


def _unreadable(path: Path, exc: Exception) -> ApiError:
    log.warning("cannot read monitoring report %s: %s", path, exc)
    return ApiError(503, "report_unreadable", f"the report {path.name} cannot be read")


def read_document(folder: Path) -> dict[str, Any]:
    """The latest JSON report as a dict (503 when the file is unreadable or not a report)."""
    path = latest_report(folder, ".json")
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise _unreadable(path, exc) from None
    if not isinstance(document, dict):
        raise _unreadable(path, TypeError(f"a JSON {type(document).__name__}, not an object"))
    return document


def _build(model: type[Report], document: dict[str, Any], **sections: Any) -> Report:
    """``model`` from the report's verdict, context and ``sections`` (503 if malformed)."""
    try:
        context = {str(k): str(v) for k, v in (document.get("context") or {}).items()}
        return model(generated=context.get("generated"), verdict=document["verdict"],
                     context=context, **sections)
    except (AttributeError, KeyError, ValidationError) as exc:
        log.warning("malformed monitoring report: %r", exc)
        raise ApiError(503, "report_unreadable", "the latest report is malformed") from None


@router.get("/v1/monitoring/drift", response_model=DriftReport,
            responses=error_responses(404, 503), summary="Drift of the latest monitoring report")
def get_drift(settings: SettingsDep) -> DriftReport:
    document = read_document(Path(settings.reports_dir))
    return _build(DriftReport, document, drift=document.get("drift"),
                  prediction_drift=document.get("prediction_drift"),
                  target_drift=document.get("target_drift"),
                  thresholds=document.get("thresholds") or {})


@router.get("/v1/monitoring/accuracy", response_model=AccuracyReport,
            responses=error_responses(404, 503), summary="Accuracy of the latest monitoring report")
def get_accuracy(settings: SettingsDep) -> AccuracyReport:
    document = read_document(Path(settings.reports_dir))
    return _build(AccuracyReport, document, accuracy=document.get("accuracy"),
                  lag_accuracy=document.get("lag_accuracy"), fva=document.get("fva"))


@router.get("/reports/latest", response_class=HTMLResponse,
            responses=json_error_responses(404, 503),
            summary="The latest monitoring report (HTML page)")
def get_latest_html(settings: SettingsDep) -> HTMLResponse:
    path = latest_report(Path(settings.reports_dir), ".html")
    try:
        return HTMLResponse(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise _unreadable(path, exc) from None
