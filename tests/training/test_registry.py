"""Registry: the promotion rule (as a table), a worse challenger leaves the aliases where
they were, a better one moves them, the champion is judged on the same backtest, and
manual promote / rollback move champion and previous-champion."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest

from training.backtest import BacktestWindow, run_backtest
from training.config import PromotionConfig
from training.forecasters import RegressionForecaster
from training.registry import (
    CHALLENGER,
    CHAMPION,
    PREVIOUS_CHAMPION,
    Candidate,
    PromotionDecision,
    RegistryError,
    aliases,
    best_candidate,
    champion_on_backtest,
    client_for,
    judge,
    loses_to_champion_configuration,
    promote_challenger,
    promote_version,
    register_version,
    rollback,
)

LEVEL = 0.8


def _c(family: str, wape: float, version: str = "9") -> Candidate:
    return Candidate(family, version, wape)


def _naive(wape: float | None) -> Candidate | None:
    return None if wape is None else Candidate("seasonal_naive", "1", wape)


NAIVE_030 = _naive(0.3)


def _rejected(wape: float) -> PromotionDecision:
    return PromotionDecision("m", "rejected", False, "1", None, "9", "lightgbm", wape)


@pytest.mark.parametrize(("decision", "champion", "data_end", "config", "refit"), [
    (_rejected(0.25), Candidate("lightgbm", "1", 0.20, data_end="2024-08-19"), "2024-10-14",
     PromotionConfig(), True),  # clearly worse than the configuration on newer data
    (_rejected(0.203), Candidate("lightgbm", "1", 0.20, data_end="2024-08-19"), "2024-10-14",
     PromotionConfig(), False),  # within the margin: rejected for another reason (naive)
    (_rejected(0.25), Candidate("lightgbm", "1", 0.20, data_end="2024-10-14"), "2024-10-14",
     PromotionConfig(), False),  # no newer data
    (_rejected(0.25), Candidate("lightgbm", "1", 0.20, data_end="2024-08-19"), "2024-10-14",
     PromotionConfig(refresh=False), False),
    (_rejected(0.25), Candidate("lightgbm", "1", 0.20, basis="its own backtest (re-backtest "
                                "failed: KeyError)", data_end="2024-08-19"), "2024-10-14",
     PromotionConfig(), False),  # its configuration could not be refitted
    (PromotionDecision("m", "promoted", True, "9", "1", None, "lightgbm", 0.25),
     Candidate("lightgbm", "1", 0.20, data_end="2024-08-19"), "2024-10-14",
     PromotionConfig(), False),
])
def test_a_refit_of_the_champions_configuration_is_due_only_when_it_beat_the_run(
    decision: PromotionDecision, champion: Candidate, data_end: str,
    config: PromotionConfig, refit: bool,
) -> None:
    assert loses_to_champion_configuration(decision, champion, data_end, config) is refit


def test_refresh_promotes_newer_data_within_the_margin() -> None:
    """A challenger on fresher data replaces the stale champion when it is within the margin
    of the champion's configuration refitted on the same windows; older or clearly worse
    challengers still need to beat it by the margin, and `refresh: false` turns it off."""
    old = Candidate("lightgbm", "1", 0.20, data_end="2024-08-19")
    same_newer = Candidate("lightgbm", "9", 0.20, data_end="2024-10-14")
    close_newer = Candidate("lightgbm", "9", 0.2039, data_end="2024-10-14")
    worse_newer = Candidate("lightgbm", "9", 0.2041, data_end="2024-10-14")
    same_older = Candidate("lightgbm", "9", 0.20, data_end="2024-08-19")
    assert judge(same_newer, NAIVE_030, old, PromotionConfig())[0] is True
    assert "refresh" in judge(same_newer, NAIVE_030, old, PromotionConfig())[1]
    assert judge(close_newer, NAIVE_030, old, PromotionConfig())[0] is True
    assert judge(worse_newer, NAIVE_030, old, PromotionConfig())[0] is False
    assert judge(close_newer, NAIVE_030, old, PromotionConfig(margin=0.0))[0] is False
    assert judge(same_older, NAIVE_030, old, PromotionConfig())[0] is False
    assert judge(same_newer, NAIVE_030, old, PromotionConfig(refresh=False))[0] is False
    assert judge(same_newer, _naive(0.19), old, PromotionConfig())[0] is False  # naive still rules


@pytest.mark.parametrize(("challenger", "naive", "champion", "config", "promoted"), [
    (0.10, 0.12, None, PromotionConfig(), True),
    (0.13, 0.12, None, PromotionConfig(), False),                      # worse than naive
    (0.12, 0.12, None, PromotionConfig(), False),                      # a tie does not beat
    (0.13, 0.12, None, PromotionConfig(must_beat_naive=False), True),
    (0.10, None, None, PromotionConfig(), False),                      # no baseline to beat
    (0.10, 0.12, 0.101, PromotionConfig(margin=0.02), False),          # needs < 0.09898
    (0.098, 0.12, 0.101, PromotionConfig(margin=0.02), True),
    (0.100, 0.12, 0.101, PromotionConfig(margin=0.0), True),
    (math.nan, 0.12, None, PromotionConfig(), False),
])
def test_promotion_rule(challenger: float, naive: float | None, champion: float | None,
                        config: PromotionConfig, promoted: bool) -> None:
    current = _c("regression", champion, "1") if champion is not None else None
    decision, reason = judge(_c("lightgbm", challenger), _naive(naive), current, config)
    assert decision is promoted
    assert "lightgbm v9" in reason


@pytest.fixture(scope="module")
def windows(logged_regression) -> list[BacktestWindow]:
    return logged_regression.windows


@pytest.fixture
def registry(mlflow_store, logged_regression, request: pytest.FixtureRequest):
    """A fresh registered model per test: v1 regression, v2 "naive", v3 regression (all
    the same logged regression model: the rule reads families and WAPEs from tags and
    candidates, and only the champion's model is ever loaded)."""
    from training.tracking import tracking

    name = f"reg_{request.node.name}".replace("[", "_").replace("]", "")
    with tracking(mlflow_store.tracking_uri):
        for family in ("regression", "seasonal_naive", "regression"):
            register_version(name, logged_regression.model_uri,
                             {"family": family, "wape": "0.5"})
        yield name, client_for(mlflow_store.tracking_uri)


def _decide(client, name: str, challenger_wape: Callable[[float], float],
            champion: Candidate, config: PromotionConfig | None = None):
    candidates = [Candidate("seasonal_naive", "2", 2 * champion.wape),
                  Candidate("regression", "3", challenger_wape(champion.wape))]
    return promote_challenger(client, name, candidates, champion, config or PromotionConfig())


def test_the_champion_is_judged_on_the_same_backtest(registry, small_training_set,
                                                     windows) -> None:
    name, client = registry
    client.set_registered_model_alias(name, CHAMPION, "1")

    champion = champion_on_backtest(client, name, small_training_set, windows, LEVEL)

    independent = run_backtest(RegressionForecaster(), small_training_set, windows, LEVEL)
    assert champion is not None and champion.version == "1"
    assert champion.wape == pytest.approx(independent.metrics["wape"])
    assert champion.wape != pytest.approx(0.5)  # not the recorded tag
    assert champion.basis == "the same backtest"


def test_a_worse_challenger_leaves_the_aliases_alone(registry, small_training_set,
                                                     windows) -> None:
    name, client = registry
    client.set_registered_model_alias(name, CHAMPION, "1")
    champion = champion_on_backtest(client, name, small_training_set, windows, LEVEL)

    decision = _decide(client, name, lambda wape: 0.99 * wape, champion)  # < 2 % better

    assert not decision.promoted and decision.action == "rejected"
    assert aliases(client, name) == {CHAMPION: "1", CHALLENGER: "3"}
    tags = client.get_model_version(name, "3").tags
    assert tags["promotion_decision"] == "rejected"
    assert "does not beat champion regression v1" in tags["promotion_reason"]
    assert float(tags["promotion_champion_wape"]) == pytest.approx(champion.wape, rel=1e-5)
    assert client.get_model_version(name, "2").tags["promotion_decision"] == "not_selected"


def test_a_better_challenger_becomes_champion(registry, small_training_set, windows) -> None:
    name, client = registry
    client.set_registered_model_alias(name, CHAMPION, "1")
    client.set_registered_model_alias(name, CHALLENGER, "2")
    champion = champion_on_backtest(client, name, small_training_set, windows, LEVEL)

    decision = _decide(client, name, lambda wape: 0.9 * wape, champion)

    assert decision.promoted and decision.champion_version == "3"
    assert aliases(client, name) == {CHAMPION: "3", PREVIOUS_CHAMPION: "1"}
    version = client.get_model_version(name, "3")
    assert version.tags["promotion_decision"] == "promoted"
    assert version.description == decision.reason


def test_auto_off_recommends_without_moving_the_champion(registry) -> None:
    name, client = registry
    champion = Candidate("regression", "1", 0.2)
    client.set_registered_model_alias(name, CHAMPION, "1")

    decision = _decide(client, name, lambda wape: 0.5 * wape, champion,
                       PromotionConfig(auto=False))

    assert decision.action == "recommended" and not decision.promoted
    assert aliases(client, name) == {CHAMPION: "1", CHALLENGER: "3"}


def test_an_unloadable_champion_falls_back_to_its_recorded_wape(
    registry, small_training_set, windows, monkeypatch: pytest.MonkeyPatch
) -> None:
    import training.registry

    def broken(*args: object, **kwargs: object) -> float:
        raise ImportError("old code")

    monkeypatch.setattr(training.registry, "rebacktest_version", broken)
    name, client = registry
    client.set_registered_model_alias(name, CHAMPION, "1")

    champion = champion_on_backtest(client, name, small_training_set, windows, LEVEL)

    assert champion is not None and champion.wape == pytest.approx(0.5)
    assert "re-backtest failed: ImportError" in champion.basis


def test_manual_promotion_and_rollback_move_the_aliases(registry) -> None:
    name, client = registry
    client.set_registered_model_alias(name, CHALLENGER, "2")

    promote_version(name, "1", "first", client=client)
    assert aliases(client, name) == {CHAMPION: "1", CHALLENGER: "2"}
    promote_version(name, "2", "the planner asked", client=client)
    assert aliases(client, name) == {CHAMPION: "2", PREVIOUS_CHAMPION: "1"}
    assert client.get_model_version(name, "2").tags["promotion_decision"] == "manual"

    rollback(name, client=client)
    assert aliases(client, name) == {CHAMPION: "1", PREVIOUS_CHAMPION: "2"}
    assert client.get_model_version(name, "1").tags["promotion_decision"] == "rollback"
    rollback(name, client=client)
    assert aliases(client, name) == {CHAMPION: "2", PREVIOUS_CHAMPION: "1"}

    unchanged = promote_version(name, "2", "again", client=client)
    assert unchanged.action == "unchanged"
    assert aliases(client, name) == {CHAMPION: "2", PREVIOUS_CHAMPION: "1"}


def test_registry_refusals_are_clear(registry) -> None:
    name, client = registry
    with pytest.raises(RegistryError, match="no version 42"):
        promote_version(name, "42", "typo", client=client)
    with pytest.raises(RegistryError, match="no 'previous-champion'"):
        rollback(name, client=client)


def _scored(family: str, outer: float, tuning: float, combination: bool = False) -> Candidate:
    return Candidate(family, "9", outer, tuning_wape=tuning,
                     pooled_wape=(3 * tuning + outer) / 4, combination=combination)


@pytest.mark.parametrize(("family_scores", "chosen"), [
    ((0.20, 0.30), "ensemble"),   # better on the outer window only: one draw
    ((0.26, 0.25), "ensemble"),   # better on the tuning windows only
    ((0.246, 0.28), "ensemble"),  # better on both, but within the 2 % margin on the outer
    ((0.20, 0.25), "regression"),  # clearly better on both
])
def test_the_combination_is_the_challenger_unless_a_family_clearly_beats_it(
        family_scores: tuple[float, float], chosen: str) -> None:
    ensemble = _scored("ensemble", 0.25, 0.29, combination=True)
    family = _scored("regression", *family_scores)
    assert best_candidate([family, ensemble], margin=0.02).family == chosen
    alone = [family, _scored("lightgbm", 0.3, 0.3)]  # no combination: the lowest outer WAPE
    assert best_candidate(alone, margin=0.02).family == "regression"


def test_seasonal_naive_is_beaten_over_every_window_not_one() -> None:
    """A quiet outer window where seasonal naive wins does not veto a model that beats it
    on the tuning windows and overall; one that loses overall is still refused."""
    naive = _scored("seasonal_naive", 0.042, 0.124)
    steady = _scored("ensemble", 0.063, 0.092, combination=True)
    promoted, reason = judge(steady, naive, None, PromotionConfig())
    assert promoted and "all backtest windows" in reason
    worse = _scored("ensemble", 0.040, 0.15, combination=True)
    refused, why = judge(worse, naive, None, PromotionConfig())
    assert not refused and "does not beat seasonal naive on all backtest windows" in why
    # without tuning figures (a backtest that is not nested) the outer windows decide
    assert not judge(Candidate("ensemble", "9", 0.063), Candidate("seasonal_naive", "1", 0.042),
                     None, PromotionConfig())[0]
