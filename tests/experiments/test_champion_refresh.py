"""A retrain whose challengers all lose to the champion's configuration (refitted on the same,
newer backtest) delivers that configuration refitted on the newer data: registered,
judged like a challenger and promoted as a refresh — not the champion left as it was fitted.
Real MLflow store and registry (the session's), a tiny simulated spec."""

from __future__ import annotations

import pytest

from experiments.settings import Settings
from experiments.training_job import run_training

CUT = "2023-07-30"  # a Sunday, 10 weeks before the simulated data end


@pytest.fixture(scope="module")
def client(training_settings: Settings):
    from mlflow import MlflowClient

    return MlflowClient(training_settings.tracking_uri, registry_uri=training_settings.tracking_uri)


def _cut(spec, end: str | None):
    return spec.model_copy(update={"data": spec.data.model_copy(update={"end": end})})


def test_a_retrain_that_loses_to_the_champion_refits_its_configuration(
    tiny_spec, training_settings: Settings, client
) -> None:
    spec = tiny_spec("tiny_refresh")
    first = run_training(_cut(spec, CUT), training_settings, families=["regression"], trials=1)
    old = first.decision.champion_version
    old_version = client.get_model_version("tiny_refresh_model", old)
    assert first.decision.promoted and old_version.tags["family"] == "regression"

    # the newer data's only challenger is seasonal naive: the regression's configuration,
    # refitted on the same windows, beats it
    second = run_training(_cut(spec, None), training_settings, families=["seasonal_naive"])
    decision = second.decision
    naive_version = second.versions["seasonal_naive"]
    assert decision.promoted and decision.previous_champion_version == old
    assert decision.champion_version not in (old, naive_version)
    assert "refitted on the new data" in decision.reason and "refresh" in decision.reason

    new = client.get_model_version_by_alias("tiny_refresh_model", "champion")
    assert str(new.version) == decision.champion_version
    assert new.tags["family"] == "regression"
    assert new.tags["data_end"] > old_version.tags["data_end"]
    refit_run, old_run = client.get_run(new.run_id), client.get_run(old_version.run_id)
    assert refit_run.data.tags["configuration_of_version"] == old
    tuned = {k: v for k, v in old_run.data.params.items() if k in ("alpha", "l1_ratio",
                                                                    "strategy", "target_scale")}
    assert tuned and {k: refit_run.data.params[k] for k in tuned} == tuned
    assert refit_run.data.metrics["wape"] < client.get_run(
        client.get_model_version("tiny_refresh_model", naive_version).run_id
    ).data.metrics["wape"]
    rejected = client.get_model_version("tiny_refresh_model", naive_version)
    assert rejected.tags["promotion_decision"] == "rejected"


def test_without_refresh_the_champion_stays_as_it_was_fitted(
    tiny_spec, training_settings: Settings, client
) -> None:
    spec = tiny_spec("tiny_norefresh")
    strict = spec.promotion.model_copy(update={"refresh": False})
    first = run_training(_cut(spec, CUT).model_copy(update={"promotion": strict}),
                         training_settings, families=["regression"], trials=1)
    second = run_training(_cut(spec, None).model_copy(update={"promotion": strict}),
                          training_settings, families=["seasonal_naive"])
    assert second.decision.action == "rejected"
    assert second.decision.champion_version == first.decision.champion_version
    versions = client.search_model_versions("name = 'tiny_norefresh_model'")
    assert sorted(v.tags["family"] for v in versions) == ["regression", "seasonal_naive",
                                                          "seasonal_naive"]


def test_a_champion_that_cannot_be_refitted_stays_and_nothing_is_half_registered(
    tiny_spec, training_settings: Settings, client, monkeypatch: pytest.MonkeyPatch
) -> None:
    import training.registry

    spec = tiny_spec("tiny_refit_fails")
    first = run_training(_cut(spec, CUT), training_settings, families=["regression"], trials=1)

    judged: list[str] = []
    promote = training.registry.promote_candidate

    def registry_gone(client, name, challenger, *args: object):  # after the run's own
        judged.append(challenger.version)
        if len(judged) == 1:
            return promote(client, name, challenger, *args)
        raise ConnectionError("registry went away")

    monkeypatch.setattr(training.registry, "promote_candidate", registry_gone)
    second = run_training(_cut(spec, None), training_settings, families=["seasonal_naive"])
    assert judged == ["3", "4"]  # this run's naive, then the refit, registered...
    assert second.decision.action == "rejected"
    assert second.decision.champion_version == first.decision.champion_version
    versions = client.search_model_versions("name = 'tiny_refit_fails_model'")
    assert sorted(v.tags["family"] for v in versions) == ["regression", "seasonal_naive",
                                                          "seasonal_naive"]  # ...and is gone
    champion = client.get_model_version_by_alias("tiny_refit_fails_model", "champion")
    assert str(champion.version) == first.decision.champion_version
