"""The experiment spec: shipped specs validate, bad specs say exactly what is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from experiments.spec import ExperimentSpec, SpecError, load_spec

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted((ROOT / "experiments").glob("*.yaml"))


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_specs_validate(path: Path) -> None:
    spec = load_spec(path)
    assert spec.name == path.stem
    assert spec.horizon >= 1


def test_demo_and_online_retail_specs_are_shipped() -> None:
    assert {p.name for p in SHIPPED} >= {"retail_demo.yaml", "online_retail.yaml"}


def _write(tmp_path: Path, raw: dict) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _minimal() -> dict:
    return {"name": "t", "data": {"sales": {"path": "sales.csv"}}}


def test_minimal_spec_gets_defaults(tmp_path: Path) -> None:
    spec = load_spec(_write(tmp_path, _minimal()))
    assert spec.registered_model_name == "t"
    assert spec.frequency == "W" and spec.season_length == 52
    assert spec.backtest.n_windows >= 1


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"horizon": 0}, "horizon"),
        ({"frequency": "H"}, "frequency"),
        ({"unknown_section": {}}, "unknown_section"),
        ({"data": {"sales": {"path": "s.csv"}, "returns": "ignore"}}, "data.returns"),
        ({"data": {"sales": {"format": "sql"}}}, "data.sales"),
        ({"models": {"lightgbm": {"trials": 0}}}, "models.lightgbm.trials"),
        ({"promotion": {"margin": -0.1}}, "promotion.margin"),
    ],
)
def test_invalid_spec_names_the_field(tmp_path: Path, change: dict, where: str) -> None:
    raw = _minimal() | change
    with pytest.raises(SpecError) as info:
        load_spec(_write(tmp_path, raw))
    assert where in str(info.value)
    assert str(tmp_path / "spec.yaml") in str(info.value)


def test_lags_shorter_than_horizon_are_refused(tmp_path: Path) -> None:
    raw = _minimal() | {"horizon": 8, "features": {"lags": [1, 8]}}
    with pytest.raises(SpecError, match=r"\[1\].*horizon"):
        load_spec(_write(tmp_path, raw))


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="not found"):
        load_spec(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_spec(bad)


def test_spec_hash_depends_on_content_not_formatting(tmp_path: Path) -> None:
    a = ExperimentSpec.model_validate(_minimal())
    b = ExperimentSpec.model_validate(yaml.safe_load(yaml.safe_dump(_minimal(), indent=4)))
    c = ExperimentSpec.model_validate(_minimal() | {"horizon": 4})
    assert a.spec_hash() == b.spec_hash()
    assert a.spec_hash() != c.spec_hash()
