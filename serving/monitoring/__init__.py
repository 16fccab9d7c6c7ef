"""Monitoring: data drift, forecast accuracy, the ok / watch / retrain verdict and its report.

Pure computations on frames (no store, no MLflow): the serving app feeds them logged
prediction inputs and actuals, `salescast monitor` feeds them files. Importing this
package loads NumPy and pandas only; scipy.stats loads for small-sample tests, and the
HTML report draws its charts as inline SVG (no plotting library).
"""

from serving.monitoring.accuracy import AccuracyReport, evaluate_accuracy
from serving.monitoring.drift import (
    ColumnDrift,
    DatasetDrift,
    DriftThresholds,
    column_drift,
    dataset_drift,
)
from serving.monitoring.report import render_html, to_document, write_report
from serving.monitoring.verdict import MonitorResult, Verdict, VerdictRule, build_result, decide

__all__ = [
    "AccuracyReport",
    "ColumnDrift",
    "DatasetDrift",
    "DriftThresholds",
    "MonitorResult",
    "Verdict",
    "VerdictRule",
    "build_result",
    "column_drift",
    "dataset_drift",
    "decide",
    "evaluate_accuracy",
    "render_html",
    "to_document",
    "write_report",
]
