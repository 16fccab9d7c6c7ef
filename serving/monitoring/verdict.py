"""The monitoring verdict: ``ok``, ``watch`` or ``retrain``, with reasons in plain words.

**Accuracy decides, drift explains.** For a served model (:func:`decide` with
``served=True``):

* **Actuals are in**: the verdict rests on accuracy against the version's promise (its
  own backtest, :mod:`serving.monitoring.promise`). A comparison *fails* when the loss is
  both material and beyond its sampling noise for the number of series and periods seen:

  - **retrain** when any of: WAPE at least ``wape_retrain_ratio`` (1.25) times the
    promise, coverage ``coverage_retrain_drop`` (0.10) or more below it, or a bias
    ``bias_retrain`` (0.10) further from zero than the promise's, each with ``z`` at
    least ``z_retrain`` (3); or more tracking-signal alarms than chance explains (over
    ``alarm_sigmas`` = 3 standard deviations, chance being the backtest's own alarm rate,
    :mod:`serving.monitoring.accuracy`) with the excess at least ``alarm_retrain_share``
    (10 %) of the series.
  - **watch** when the same holds at the watch levels (1.1, 0.05, 0.05 with
    ``z >= z_watch`` = 2; alarms beyond chance on fewer series).
  - Feature, prediction and target drift never change this verdict: they are listed in
    ``Verdict.explanations`` as the **likely cause** of a loss, or, when accuracy holds,
    as inputs that moved while the forecasts kept their promise (a growing, seasonal
    business always moves some).
* **No actuals yet**: feature, prediction and target drift are the early warning; they
  can say ``watch``, never ``retrain`` (a retrain needs the new actuals anyway).

For two data files (``served=False``, ``salescast monitor --reference --current``) drift
is all there is: dataset drift (the share of drifted features reaches ``drift_share``)
says retrain, some drifted features watch. PSI flags are shown in the report but never
change the verdict (see :mod:`serving.monitoring.drift`).

``Verdict.decided_by`` names the evidence that decided. A scheduler acts on the status:
``salescast monitor`` exits with code 3 on ``retrain``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from serving.monitoring.accuracy import AccuracyReport
from serving.monitoring.drift import ColumnDrift, DatasetDrift, DriftThresholds
from serving.monitoring.fva import FvaReport
from serving.monitoring.lag import LagAccuracy
from serving.monitoring.promise import Comparison

Status = Literal["ok", "watch", "retrain"]
_RANK: dict[str, int] = {"ok": 0, "watch": 1, "retrain": 2}
_SHOWN_COLUMNS = 8


@dataclass(frozen=True)
class VerdictRule:
    """How much accuracy loss means *watch* and how much means *retrain*."""

    wape_watch_ratio: float = 1.1
    wape_retrain_ratio: float = 1.25
    coverage_watch_drop: float = 0.05
    coverage_retrain_drop: float = 0.10
    bias_watch: float = 0.05
    bias_retrain: float = 0.10
    z_watch: float = 2.0
    z_retrain: float = 3.0
    alarm_sigmas: float = 3.0
    alarm_retrain_share: float = 0.10

    def level(self, metric: str, effect: float, z: float) -> Status:
        """retrain / watch / ok for one comparison's effect and its z."""
        watch, retrain = {
            "wape": (self.wape_watch_ratio, self.wape_retrain_ratio),
            "coverage": (self.coverage_watch_drop, self.coverage_retrain_drop),
            "bias": (self.bias_watch, self.bias_retrain),
        }[metric]
        if not math.isfinite(effect) or math.isnan(z):
            return "ok"
        if effect >= retrain and z >= self.z_retrain:
            return "retrain"
        return "watch" if effect >= watch and z >= self.z_watch else "ok"


@dataclass(frozen=True)
class Verdict:
    """The decision and why: the reasons of the deciding level first, the evidence that
    decided (``decided_by``) and, when accuracy decided, the likely causes."""

    status: Status
    reasons: list[str]
    decided_by: str = ""
    explanations: list[str] = field(default_factory=list)


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
    history_drift: DatasetDrift | None = None
    fva: FvaReport | None = None  # forecast value added of overrides (monitoring.fva)


Finding = tuple[Status, str]


def describe_score(column: ColumnDrift) -> str:
    """The deciding score in words, e.g. ``wasserstein 0.21 > 0.10`` or ``ks p=0.003``."""
    if column.method == "no data":
        return "no data"
    adjusted = column.p_adjusted
    if column.method in ("ks", "chi2"):
        relation = "<" if column.drifted else ">="
        if adjusted is not None:
            return (f"{column.method} p={column.p_value:.3g}, BH-adjusted {adjusted:.3g} "
                    f"{'<=' if column.drifted else '>'} {column.threshold:g}")
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


def _comparison_text(c: Comparison) -> str:
    noise = f"z = {c.z:.1f} for {c.n_series} series, {c.n_rows} forecasts"
    if c.metric == "wape":
        return (f"WAPE {c.current:.3g} is {c.effect:.2f}x the promised {c.promised:.3g} "
                f"({noise})")
    if c.metric == "coverage":
        return f"interval coverage {c.current:.2f} vs the promised {c.promised:.2f} ({noise})"
    return f"bias {c.current:+.1%} vs the promised {c.promised:+.1%} ({noise})"


def _alarm_finding(accuracy: AccuracyReport, rule: VerdictRule) -> Finding:
    """Tracking-signal alarms beyond chance: watch; beyond chance on many series: retrain."""
    limit, alarms, n = accuracy.tracking_signal_limit, accuracy.n_alarms, accuracy.n_series
    excess = alarms - accuracy.chance_alarms
    text = (f"tracking signal beyond ±{limit:g} for {alarms} of {n} series (by chance: "
            f"about {accuracy.chance_alarms:.0f}, {accuracy.chance_basis})")
    if alarms == 0 or excess <= rule.alarm_sigmas * accuracy.chance_alarms_sd:
        return "ok", text
    return ("retrain" if excess / n >= rule.alarm_retrain_share else "watch"), text


def accuracy_findings(accuracy: AccuracyReport, rule: VerdictRule) -> list[Finding]:
    """WAPE, coverage and bias against the promise, with their noise; tracking-signal alarms."""
    check = accuracy.promise_check
    if check is None:
        return [("ok", "no promise to compare with (the model has no backtest metrics)"),
                _alarm_finding(accuracy, rule)]
    findings: list[Finding] = []
    for comparison in (check.wape, check.coverage, check.bias):
        if math.isfinite(comparison.promised) and math.isfinite(comparison.current):
            level = rule.level(comparison.metric, comparison.effect, comparison.z)
            findings.append((level, _comparison_text(comparison)))
    findings.append(_alarm_finding(accuracy, rule))
    return findings


def _drift_evidence(drift: DatasetDrift | None, prediction_drift: ColumnDrift | None,
                    target_drift: ColumnDrift | None) -> list[Finding]:
    findings: list[Finding] = []
    if drift is not None:
        findings += drift_findings(drift)
    if prediction_drift is not None:
        findings.append(column_finding("prediction drift", prediction_drift))
    if target_drift is not None:
        findings.append(column_finding("target drift", target_drift))
    return findings


def _at_most_watch(findings: list[Finding]) -> list[Finding]:
    return [("watch" if level == "retrain" else level, text) for level, text in findings]


def _conclude(findings: list[Finding], decided_by: str,
              explanations: list[str] | None = None) -> Verdict:
    status: Status = max((level for level, _ in findings), key=_RANK.__getitem__, default="ok")
    ordered = sorted(findings, key=lambda f: -_RANK[f[0]])
    shown = ordered if status == "ok" else [f for f in ordered if f[0] != "ok"]
    return Verdict(status=status, reasons=[text for _, text in shown] or ["nothing to judge"],
                   decided_by=decided_by, explanations=explanations or [])


def _accuracy_decides(accuracy: AccuracyReport, drift_evidence: list[Finding],
                      rule: VerdictRule) -> Verdict:
    findings = accuracy_findings(accuracy, rule)
    moved = [text for level, text in drift_evidence if level != "ok"]
    worst = max((level for level, _ in findings), key=_RANK.__getitem__, default="ok")
    prefix = "likely cause" if worst != "ok" else "moved, but the forecasts keep their promise"
    n = int(accuracy.overall.get("n", 0))
    decided_by = f"accuracy against the promise ({n} forecasts with their actuals)"
    return _conclude(findings, decided_by, [f"{prefix}: {m}" for m in moved])


def decide(
    drift: DatasetDrift | None = None, prediction_drift: ColumnDrift | None = None,
    target_drift: ColumnDrift | None = None, accuracy: AccuracyReport | None = None,
    rule: VerdictRule | None = None, served: bool = False,
) -> Verdict:
    """Apply the rule of the module docstring to whatever evidence is present."""
    evidence = _drift_evidence(drift, prediction_drift, target_drift)
    if accuracy is not None:
        return _accuracy_decides(accuracy, evidence, rule or VerdictRule())
    if served:
        return _conclude(_at_most_watch(evidence),
                         "drift only: an early warning, no actuals yet to judge accuracy")
    return _conclude(evidence, "drift between the reference and the current data")


def build_result(
    thresholds: DriftThresholds, drift: DatasetDrift | None = None,
    prediction_drift: ColumnDrift | None = None, target_drift: ColumnDrift | None = None,
    accuracy: AccuracyReport | None = None, context: dict[str, str] | None = None,
    rule: VerdictRule | None = None, served: bool = False,
    history_drift: DatasetDrift | None = None,
) -> MonitorResult:
    """Decide the verdict and bundle it with its evidence (``history_drift``, the
    whole-history view, is reported, never judged)."""
    verdict = decide(drift, prediction_drift, target_drift, accuracy, rule, served)
    return MonitorResult(
        verdict=verdict, thresholds=thresholds, drift=drift, prediction_drift=prediction_drift,
        target_drift=target_drift, accuracy=accuracy, context=dict(context or {}),
        history_drift=history_drift,
    )
