"""ServingSettings: SALESCAST_ environment, and no trivially weak API key."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from serving.server import settings_environment
from serving.settings import ServingSettings


def test_environment_with_prefix_configures_the_service(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SALESCAST_MODEL_NAME", "retail")
    monkeypatch.setenv("SALESCAST_MAX_ROWS", "25")
    monkeypatch.setenv("SALESCAST_UNRELATED", "ignored")
    settings = ServingSettings()
    assert (settings.model_name, settings.max_rows, settings.host) == ("retail", 25, "127.0.0.1")


@pytest.mark.parametrize("key", ["short-key", "aaaaaaaaaaaaaaaaaaaa", "changeme-changeme-123",
                                 "0101010101010101"])
def test_weak_api_keys_are_refused(key: str) -> None:
    with pytest.raises(ValidationError, match="api_key"):
        ServingSettings(api_key=key)


@pytest.mark.parametrize("blank", ["", "  ", "\t\n"])
def test_a_blank_key_is_refused_not_taken_as_no_key(blank: str,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SALESCAST_API_KEY", blank)
    with pytest.raises(ValidationError, match="api_key is set but blank"):
        ServingSettings()


def test_an_unset_key_means_no_key_and_a_strong_one_is_kept(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SALESCAST_API_KEY", raising=False)
    assert ServingSettings().api_key is None
    strong = "f3a9c1d27b8e4a60b5d9e2c7a1f04b38"
    assert ServingSettings(api_key=strong).api_key.get_secret_value() == strong  # type: ignore[union-attr]


def test_worker_environment_rebuilds_the_same_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = ServingSettings(model_name="retail", api_key="f3a9c1d27b8e4a60b5d9e2c7a1f04b38",
                               workers=3, poll_seconds=5, log_predictions=False)
    for name, value in settings_environment(settings).items():
        monkeypatch.setenv(name, value)
    assert ServingSettings() == settings
