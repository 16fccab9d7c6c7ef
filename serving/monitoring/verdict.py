"""The monitoring verdict: ``ok``, ``watch`` or ``retrain``, with reasons in plain words.

The rule (thresholds in :class:`VerdictRule` and :class:`DriftThresholds`):

* **retrain** when any of: dataset drift (the share of drifted features reaches
  ``drift_share``); WAPE at least ``wape_retrain_ratio`` (1.5) times the backtest's
  promise; interval coverage ``coverage_retrain_drop`` (0.15) or more below the
  promise; tracking-signal alarms beyond chance (as for watch, below) whose excess over
  the chance count is at least ``alarm_retrain_share`` (10 %) of the series.
* **watch** when any of: some features drifted (below the dataset share); prediction
  drift (``yhat``) or target drift (``y``); a column has no current values or changed
  type;
  WAPE at least ``wape_watch_ratio`` (1.1) times the promise; coverage 0.05 or more
  below it; more tracking-signal alarms than chance explains (over ``alarm_sigmas`` = 3
  standard deviations above the alarms unbiased forecasts would raise, see
  :mod:`serving.monitoring.accuracy`).
* **ok** otherwise. PSI flags are shown in the report but never change the verdict
  (see :mod:`serving.monitoring.drift`). Accuracy is judged against the promise only
  when one is given (``expected``); without actuals only drift is judged.

A scheduler acts on the status: ``salescast monitor`` exits with code 3 on ``retrain``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from serving.monitoring.accuracy import AccuracyReport
from serving.monitoring.drift import ColumnDrift, DatasetDrift, DriftThresholds
from serving.monitoring.lag import LagAccuracy

Status = Literal["ok", "watch", "retrain"]
_RANK: dict[str, int] = {"ok": 0, "watch": 1, "retrain": 2}
_SHOWN_COLUMNS = 8


@dataclass(frozen=True)
class VerdictRule:
    """How much accuracy loss means *watch* and how much means *retrain*."""

    wape_watch_ratio: float = 1.1
    wape_retrain_ratio: float = 1.5
    coverage_watch_drop: float = 0.05
    coverage_retrain_drop: float = 0.15
    alarm_sigmas: float = 3.0
    alarm_retrain_share: float = 0.10


@dataclass(frozen=True)
class Verdict:
    """The decision and why: the reasons of the deciding level first."""

    status: Status
    reasons: list[str]


@dataclass(frozen=True)
class MonitorResult:
    """Everything one monitoring run found, and the verdict drawn from it.

    ``lag_accuracy`` (accuracy by forecast lag, :mod:`serving.monitoring.lag`) is
    reported but does not enter the verdict.
    """

    verdict: Verdict
    thresholds: DriftThresholds
    drift: DatasetDrift | None = None
    prediction_drift: ColumnDrift | None = None
    target_drift: ColumnDrift | None = None
    accuracy: AccuracyReport | None = None
    context: dict[str, str] = field(default_factory=dict)
    lag_accuracy: LagAccuracy | None = None


Finding = tuple[Status, str]


def describe_score(column: ColumnDrift) -> str:
    """The deciding score in words, e.g. ``wasserstein 0.21 > 0.10`` or ``ks p=0.003``."""
    if column.method == "no data":
        return "no data"
    if column.method in ("ks", "chi2"):
        relation = "<" if column.drifted else ">="
        return f"{column.method} p={column.p_value:.3g} {relation} {column.threshold:g}"
    relation = ">" if column.statistic > column.threshold else "<="
    return f"{column.method} {column.statistic:.3f} {relation} {column.threshold:g}"


def _names(columns: list[str]) -> str:
    shown = ", ".join(columns[:_SHOWN_COLUMNS])
    rest = len(columns) - _SHOWN_COLUMNS
    return shown + (f" and {rest} more" if rest > 0 else "")


def drift_findings(drift: DatasetDrift) -> list[Finding]:
    """Dataset drift -> retrain; some drifted or empty columns -> watch; none -> ok."""
    n, drifted = len(drift.columns), drift.drifted_columns
    relation = ">=" if drift.dataset_drifted else "<"
    share = f"share {drift.share:.2f} {relation} {drift.drift_share:.2f}"
    findings: list[Finding] = []
    if drift.dataset_drifted:
        findings.append(("retrain", f"dataset drift: {len(drifted)} of {n} features drifted "
                                    f"({share}): {_names(drifted)}"))
    elif drifted:
        findings.append(("watch", f"{len(drifted)} of {n} features drifted ({share}): "
                                  f"{_names(drifted)}"))
    else:
        findings.append(("ok", f"no feature drifted (0 of {n} compared)"))
    empty = [c.column for c in drift.columns if c.method == "no data"]
    if empty:
        findings.append(("watch", f"no values to compare for: {_names(empty)}"))
    if drift.type_changed:
        findings.append(("watch", f"type changed, not compared: {_names(drift.type_changed)}"))
    return findings


def column_finding(label: str, column: ColumnDrift) -> Finding:
    """Prediction drift or target drift of one column -> watch."""
    if column.drifted:
        return "watch", f"{label}: {column.column} distribution moved ({describe_score(column)})"
    return "ok", f"no {label} ({describe_score(column)})"


def _wape_finding(wape: float, promised: float, rule: VerdictRule) -> Finding:
    ratio = wape / promised if promised > 0 else math.inf
    text = f"WAPE {wape:.3g} is {ratio:.1f}x the backtest's {promised:.3g}"
    if ratio >= rule.wape_retrain_ratio:
        return "retrain", text
    return ("watch", text) if ratio >= rule.wape_watch_ratio else ("ok", text)


def _coverage_finding(observed: float, promised: float, rule: VerdictRule) -> Finding:
    drop = promised - observed
    text = f"interval coverage {observed:.2f} vs the promised {promised:.2f}"
    if drop >= rule.coverage_retrain_drop:
        return "retrain", text
    return ("watch", text) if drop >= rule.coverage_watch_drop else ("ok", text)


def accuracy_findings(accuracy: AccuracyReport, rule: VerdictRule) -> list[Finding]:
    """WAPE and coverage against the promise, and tracking-signal alarms."""
    overall, expected = accuracy.overall, accuracy.expected
    findings: list[Finding] = []
    if "wape" in expected and not math.isnan(overall["wape"]):
        findings.append(_wape_finding(overall["wape"], expected["wape"], rule))
    if "coverage" in expected and not math.isnan(overall["coverage"]):
        findings.append(_coverage_finding(overall["coverage"], expected["coverage"], rule))
    findings.append(_alarm_finding(accuracy, rule))
    return findings


def _alarm_finding(accuracy: AccuracyReport, rule: VerdictRule) -> Finding:
    """Tracking-signal alarms beyond chance: watch; beyond chance on many series: retrain."""
    limit, alarms, n = accuracy.tracking_signal_limit, accuracy.n_alarms, accuracy.n_series
    excess = alarms - accuracy.chance_alarms
    text = (f"tracking signal beyond ±{limit:g} for {alarms} of {n} series "
            f"(unbiased forecasts: about {accuracy.chance_alarms:.0f} by chance)")
    if alarms == 0 or excess <= rule.alarm_sigmas * accuracy.chance_alarms_sd:
        return "ok", text
    return ("retrain" if excess / n >= rule.alarm_retrain_share else "watch"), text


def decide(
    drift: DatasetDrift | None = None, prediction_drift: ColumnDrift | None = None,
    target_drift: ColumnDrift | None = None, accuracy: AccuracyReport | None = None,
    rule: VerdictRule | None = None,
) -> Verdict:
    """Apply the rule of the module docstring to whatever evidence is present."""
    findings: list[Finding] = []
    if drift is not None:
        findings += drift_findings(drift)
    if prediction_drift is not None:
        findings.append(column_finding("prediction drift", prediction_drift))
    if target_drift is not None:
        findings.append(column_finding("target drift", target_drift))
    if accuracy is not None:
        findings += accuracy_findings(accuracy, rule or VerdictRule())
    status: Status = max((level for level, _ in findings), key=_RANK.__getitem__, default="ok")
    ordered = sorted(findings, key=lambda f: -_RANK[f[0]])
    shown = ordered if status == "ok" else [f for f in ordered if f[0] != "ok"]
    return Verdict(status=status, reasons=[text for _, text in shown] or ["nothing to judge"])


def build_result(
    thresholds: DriftThresholds, drift: DatasetDrift | None = None,
    prediction_drift: ColumnDrift | None = None, target_drift: ColumnDrift | None = None,
    accuracy: AccuracyReport | None = None, context: dict[str, str] | None = None,
    rule: VerdictRule | None = None,
) -> MonitorResult:
    """Decide the verdict and bundle it with its evidence."""
    verdict = decide(drift, prediction_drift, target_drift, accuracy, rule)
    return MonitorResult(
        verdict=verdict, thresholds=thresholds, drift=drift, prediction_drift=prediction_drift,
        target_drift=target_drift, accuracy=accuracy, context=dict(context or {}),
    )
