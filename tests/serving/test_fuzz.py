"""schemathesis over the API's own /openapi.json, against a real `salescast serve` with its
key (bench/fuzz_api.py at a small example count: the benchmark runs >= 1,000 requests)."""

from __future__ import annotations

import secrets
from pathlib import Path
from types import ModuleType

import pytest

from tests.bench.loader import load_bench
from tests.serving.conftest import MlflowStore, Registered

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def fuzz_api() -> ModuleType:
    return load_bench("fuzz_api")


def test_fuzzing_finds_no_5xx_and_no_contract_violation(
    fuzz_api: ModuleType, mlflow_store: MlflowStore, toy_champion: Registered, tmp_path: Path
) -> None:
    from experiments.traffic import ApiProcess

    key = secrets.token_hex(24)
    env = fuzz_api.serve_env(mlflow_store.tracking_uri, "toy", tmp_path, key)
    api = ApiProcess(env=env | {"PYTHONPATH": str(REPO)}, cwd=tmp_path)
    api.start()
    try:
        result = fuzz_api.fuzz(api, key, max_examples=10, phases="examples,fuzzing", seed=13)
    finally:
        api.stop()
    assert result.exit_code == 0 and result.failures == 0, result.output[-5000:]
    assert result.generated >= 60, result.output[-2000:]  # every operation was exercised
    assert result.server_errors == 0
    assert sum(result.answered.values()) >= result.generated  # the server saw them all
    assert result.answered.get("401", 0) == 0  # the key reached every guarded route
