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


def _known_future_spec() -> dict:
    raw = _minimal()
    raw["data"].update({
        "sales_columns": {"keys": ["store", "category"]},
        "known_future": {"path": "store_days.csv"},
        "known_future_columns": {"date": "day", "keys": ["store"],
                                 "values": {"open": "mean", "markdown": "max"}},
        "gaps": "zero", "gap_periods": 12,
    })
    return raw


def test_known_future_and_gaps_round_trip(tmp_path: Path) -> None:
    spec = load_spec(_write(tmp_path, _known_future_spec()))
    columns = spec.data.known_future_columns
    assert columns is not None and columns.values == {"open": "mean", "markdown": "max"}
    assert (spec.data.gaps, spec.data.gap_periods) == ("zero", 12)
    again = ExperimentSpec.model_validate(spec.model_dump(mode="json"))
    assert again == spec and again.spec_hash() == spec.spec_hash()
    assert load_spec(_write(tmp_path, _minimal())).data.gaps == "missing"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"known_future_columns": None}, "go together"),
        ({"known_future_columns": {"keys": ["region"], "values": {"open": "mean"}}},
         "not series keys"),
        ({"known_future_columns": {"values": {"promo": "max"}}}, "salescast's own"),
        ({"known_future_columns": {"values": {"lag_4": "max"}}}, "salescast's own"),
        ({"known_future_columns": {"values": {"open": "median"}}}, "values.open"),
        ({"known_future_columns": {"values": {}}}, "values"),
        ({"gaps": "drop"}, "data.gaps"),
    ],
)
def test_bad_known_future_or_gap_sections_say_what_is_wrong(
    tmp_path: Path, change: dict, message: str
) -> None:
    raw = _known_future_spec()
    raw["data"].update(change)
    raw["data"] = {k: v for k, v in raw["data"].items() if v is not None}
    with pytest.raises(SpecError, match=message):
        load_spec(_write(tmp_path, raw))
