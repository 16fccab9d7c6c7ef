"""The monitoring routes serve the latest report written by `salescast monitor`, 404 before."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from fastapi.testclient import TestClient

from serving.app import create_app
from serving.monitoring.drift import DriftThresholds, dataset_drift
from serving.monitoring.report import render_html, to_document
from serving.monitoring.verdict import build_result
from tests.serving.conftest import serving_settings


def _write_report(folder: Path, name: str, shift: float) -> str:
    rng = np.random.default_rng(3)
    reference = pd.DataFrame({"price": rng.normal(10, 1, 300)})
    current = pd.DataFrame({"price": rng.normal(10 + shift, 1, 300)})
    result = build_result(DriftThresholds(), drift=dataset_drift(reference, current,
                                                                 DriftThresholds()))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.json").write_text(json.dumps(to_document(result)))
    (folder / f"{name}.html").write_text(render_html(result))
    return result.verdict.status


def test_routes_return_404_before_any_report_then_the_latest(
    mlflow_store, toy_champion, tmp_path: Path,
) -> None:
    reports = tmp_path / "reports"
    settings = serving_settings(mlflow_store, tmp_path, reports_dir=reports)
    with TestClient(create_app(settings)) as client:
        for path in ("/v1/monitoring/drift", "/v1/monitoring/accuracy", "/reports/latest"):
            answer = client.get(path)
            assert answer.status_code == 404
            assert answer.json()["error"]["code"] == "no_report"
        assert _write_report(reports, "monitor-20300101T000000Z", shift=0.0) == "ok"
        assert client.get("/v1/monitoring/drift").json()["verdict"]["status"] == "ok"
        assert _write_report(reports, "latest", shift=2.0) == "retrain"
        drift = client.get("/v1/monitoring/drift").json()
        assert drift["verdict"]["status"] == "retrain"
        assert drift["drift"]["drifted_columns"] == ["price"]
        accuracy = client.get("/v1/monitoring/accuracy").json()
        assert accuracy["accuracy"] is None and accuracy["verdict"]["status"] == "retrain"
        page = client.get("/reports/latest")
        assert page.headers["content-type"].startswith("text/html")
        assert page.text == (reports / "latest.html").read_text()


def test_a_malformed_report_is_503_not_500(mlflow_store, toy_champion, tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    reports.mkdir()
    (reports / "latest.html").write_bytes(b"\xff\xfe not utf-8")
    settings = serving_settings(mlflow_store, tmp_path, reports_dir=reports)
    with TestClient(create_app(settings)) as client:
        for document in ("[1, 2]", '{"context": {}}', '{"verdict": "ok"}'):
            (reports / "latest.json").write_text(document)
            for path in ("/v1/monitoring/drift", "/v1/monitoring/accuracy"):
                answer = client.get(path)
                assert answer.status_code == 503, (document, path, answer.text)
                assert answer.json()["error"]["code"] == "report_unreadable"
        assert client.get("/reports/latest").status_code == 503
