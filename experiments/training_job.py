"""The training job of a spec: data -> training set -> tuned families in MLflow -> registry.

``run_training`` runs, inside one MLflow parent run: build the training set (generating
the data with the spec's simulator first when the sales file is missing), compute the
nested backtest windows once, then for each family (seasonal naive always, as the
baseline): tune with Optuna on the inner windows, score the chosen params on the outer
(held-out) windows — the family's reported metrics, its promise and what the promotion
rule compares; a tuned trial that does not hold its gain over the family's defaults
there gives way to them (:func:`training.tuning.holds_its_gain`) — refit them on the
full training set with the conformal calibration of both, and log it (family run +
pyfunc model). Only after every family has finished are the models registered (one
version per family), and then the promotion rule moves the aliases. Any failure marks
the parent run (and the open family run) FAILED, leaves the registry as it was, and
raises.

**Several tuning workers, one registration.** This process is the *leader*: its trials,
and those of any process joining its parent run (``salescast train --join RUN_ID``,
:mod:`experiments.join_job`, or the ``workers - 1`` it starts itself,
:mod:`experiments.local_workers`), form one group sharing each family's ``trials``
budget (:mod:`training.trial_groups`). The leader waits for the group's running trials,
picks the study's best, logs every worker's trials under the family run (``n_trials`` and
``n_workers`` are the group's), and alone registers and promotes, once. The parent run
records each family's budget as a param ``trials.<family>`` for the joiners.

Optuna studies are named ``<spec>.<family>.<spec hash>.<data digest[:12]>`` in the
settings' Optuna storage: re-running the same spec on the same data continues the same
study (its best trial may then come from an earlier run; its backtest is re-run).
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import pandas as pd

from experiments.local_workers import (
    LocalWorkers,
    is_shared_storage,
    joiner_options,
    local_workers,
    require_shared_storage,
    settings_env,
)
from experiments.settings import Settings
from experiments.spec import ExperimentSpec
from training import families as families_table
from training.config import FAMILIES, FamilyConfig
from training.trial_groups import TrialGroup

if TYPE_CHECKING:
    from collections.abc import Callable

    from mlflow import MlflowClient

    from features.training_set import TrainingSet
    from training.backtest import BacktestPlan, BacktestResult
    from training.base import Forecaster
    from training.registry import Candidate, PromotionDecision
    from training.tuning import TuningResult

log = logging.getLogger(__name__)

BASELINE = families_table.BASELINE  # the promotion rule's yardstick: always trained
LEADERBOARD_COLUMNS = ["family", "version", "wape", "mase", "bias_pct", "coverage",
                       "train_seconds", "n_trials", "run_id"]


@dataclass
class FamilyOutcome:
    """One family's refitted best model, as logged in its family run."""

    family: str
    run_id: str
    model_uri: str
    params: dict[str, Any]
    metrics: dict[str, float]
    train_seconds: float
    n_trials: int
    version: str | None = None
    fitted: _Fitted | None = field(default=None, repr=False)  # in memory, for an ensemble


@dataclass
class TrainingOutcome:
    """What a training invocation produced: runs, versions, and the promotion decision."""

    spec_name: str
    model_name: str
    experiment_id: str
    parent_run_id: str
    families: dict[str, FamilyOutcome]
    decision: PromotionDecision
    run_name: str = ""
    ui_url: str = ""  # the MLflow UI's runs table of this run's families

    @property
    def versions(self) -> dict[str, str]:
        return {f: o.version for f, o in self.families.items() if o.version is not None}

    @property
    def leaderboard(self) -> pd.DataFrame:
        """One row per family, best backtest WAPE first."""
        rows = [{"family": o.family, "version": o.version, **o.metrics,
                 "train_seconds": o.train_seconds, "n_trials": o.n_trials, "run_id": o.run_id}
                for o in self.families.values()]
        frame = pd.DataFrame(rows)
        return frame[LEADERBOARD_COLUMNS].sort_values("wape").reset_index(drop=True)

    def leaderboard_text(self) -> str:
        return format_table(self.leaderboard.drop(columns=["run_id"]))


def format_table(frame: pd.DataFrame) -> str:
    """A plain-text table for people (4 significant digits for floats)."""
    return frame.to_string(index=False, float_format=lambda v: f"{v:.4g}", na_rep="-")


@dataclass
class _Job:
    """What every family of one invocation shares."""

    spec: ExperimentSpec
    settings: Settings
    training_set: TrainingSet
    plan: BacktestPlan
    client: MlflowClient
    experiment_id: str
    trials: int | None = None
    timeout: float | None = None
    n_jobs: int | None = None
    outcomes: dict[str, FamilyOutcome] = field(default_factory=dict)
    group: TrialGroup | None = None  # the run's trials, whichever worker runs them
    workers: LocalWorkers = field(default_factory=LocalWorkers)  # joiners started here


def select_families(spec: ExperimentSpec, families: list[str] | None) -> list[str]:
    """The families to run: those asked for (else the spec's enabled ones), with seasonal
    naive always first — it is the baseline of the promotion rule."""
    unknown = sorted(set(families or []) - set(FAMILIES))
    if unknown:
        raise ValueError(f"unknown model family {unknown}; known: {', '.join(FAMILIES)}")
    chosen = families or [f for f in FAMILIES if spec.models.family(f).enabled]
    return [BASELINE, *[f for f in dict.fromkeys(chosen) if f != BASELINE]]


def run_training(
    spec: ExperimentSpec,
    settings: Settings,
    families: list[str] | None = None,
    trials: int | None = None,
    timeout: float | None = None,
    n_jobs: int | None = None,
    workers: int = 1,
    spec_file: str | None = None,
    purpose: str = "train",
) -> TrainingOutcome:
    """Train, log, register and promote (see the module docstring), tuning with
    ``workers - 1`` local joiner processes too; ``spec_file`` names the spec in the line
    that tells how to add workers on other machines. The parent run is named
    ``<purpose> as of <data cut date>``."""
    import mlflow

    from training.mlflow_ui import runs_view_url, save_family_view, ui_base_url
    from training.registry import client_for
    from training.tracking import ensure_experiment, probe_tracking_server, tracking

    chosen = select_families(spec, families)
    check_family_params(spec, chosen)
    if workers > 1:
        require_shared_storage(settings.optuna_storage, f"--workers {workers}")
    for uri in dict.fromkeys(filter(None, (settings.tracking_uri, settings.registry_uri))):
        probe_tracking_server(uri)  # fail in seconds, not after MLflow's minutes of retries
    with tracking(settings.tracking_uri, settings.registry_uri):
        experiment_id = ensure_experiment(spec.name, settings.artifact_location)
        client = client_for(settings.tracking_uri, settings.registry_uri)
        with mlflow.start_run(run_name=purpose,
                              tags={"spec_name": spec.name, "spec_hash": spec.spec_hash()}) as run:
            try:
                job = _prepare(spec, settings, client, experiment_id, chosen)
                run_name = _name_parent_run(job, purpose)
                job.trials, job.timeout, job.n_jobs = trials, timeout, n_jobs
                decision = _lead(job, run.info.run_id, chosen, workers, spec_file)
            except BaseException as exc:
                mlflow.set_tag("error", f"{type(exc).__name__}: {exc}"[:5000])
                raise
        key = save_family_view(client, experiment_id, run.info.run_id)
        url = runs_view_url(ui_base_url(settings.tracking_uri), experiment_id, key)
        return TrainingOutcome(spec.name, spec.registered_model_name, experiment_id,
                               run.info.run_id, job.outcomes, decision, run_name, url)


def data_cut_date(spec: ExperimentSpec, training_set: TrainingSet) -> str:
    """The date the training data stop at: the spec's ``data.end``, else the last period."""
    return pd.Timestamp(spec.data.end or training_set.metadata.end).date().isoformat()


def _name_parent_run(job: _Job, purpose: str) -> str:
    """Name the active parent run for what it does, once its data are known."""
    import mlflow

    from training.tracking import parent_run_name

    name = parent_run_name(purpose, data_cut_date(job.spec, job.training_set))
    mlflow.set_tag("mlflow.runName", name)
    return name


def _prepare(spec: ExperimentSpec, settings: Settings, client: MlflowClient,
             experiment_id: str, chosen: list[str]) -> _Job:
    """Training set, windows and the parent run's tags, params, spec and dataset."""
    import mlflow

    from experiments.pipeline import build_features
    from training.backtest import plan_windows
    from training.tracking import log_spec, log_training_data, parent_tags

    training_set = build_features(spec)
    plan = plan_windows(training_set, spec.backtest)
    meta = training_set.metadata
    mlflow.set_tags(parent_tags(spec.name, spec.spec_hash(), meta.data_digest))
    mlflow.log_params({"families": ",".join(chosen), "frequency": spec.frequency,
                       "horizon": spec.horizon, "n_windows": len(plan.inner),
                       "outer_windows": len(plan.outer),
                       "window_step": spec.backtest.step, "level": spec.models.interval_level,
                       "n_series": meta.n_series, "n_periods": meta.n_periods})
    log_spec(spec.model_dump(mode="json"))
    log_training_data(training_set, f"{spec.name}-training-set")
    gaps = meta.extra.get("gaps", {})
    mlflow.log_dict(gaps, "data_gaps.json")
    mlflow.log_param("data_gaps", gaps.get("n_gaps", 0))
    return _Job(spec, settings, training_set, plan, client, experiment_id)


def _lead(job: _Job, run_id: str, chosen: list[str], workers: int, spec_file: str | None
          ) -> PromotionDecision:
    """Record the budgets, say how to add workers, start the local ones, then train."""
    import mlflow

    job.group = TrialGroup(run_id)
    budgets = {f: _budget(job, f).trials for f in chosen if families_table.BY_NAME[f].tuned}
    mlflow.log_params({f"trials.{family}": n for family, n in budgets.items()})
    if is_shared_storage(job.settings.optuna_storage):
        log.info("more tuning workers for this run (same SALESCAST_OPTUNA_STORAGE and "
                 "tracking store): salescast train --spec %s --join %s",
                 spec_file or "<spec file>", run_id)
    with local_workers(workers - 1, job.spec.model_dump(mode="json"), run_id,
                       joiner_options(chosen, job.trials, job.timeout, job.n_jobs),
                       settings_env(job.settings)) as pool:
        job.workers = pool
        return _train_register_promote(job, chosen)


def _train_register_promote(job: _Job, chosen: list[str]) -> PromotionDecision:
    from training.registry import champion_on_backtest, loses_to_champion_configuration

    for family in chosen:
        if families_table.BY_NAME[family].combines:
            outcome = _train_ensemble(job, family)
        else:
            outcome = _train_family(job, family)
        job.workers.check()
        if outcome is not None:
            job.outcomes[family] = outcome
    name = job.spec.registered_model_name
    champion = champion_on_backtest(job.client, name, job.training_set, job.plan.scoring,
                                    job.spec.models.interval_level)
    decision = _register_and_promote(job, champion)
    if champion is not None and loses_to_champion_configuration(
            decision, champion, job.training_set.metadata.end, job.spec.promotion):
        decision = _refresh_champion(job, champion, decision)
    _log_parent_summary(job, decision)
    return decision


def _refresh_champion(job: _Job, champion: Candidate, rejected: PromotionDecision
                      ) -> PromotionDecision:
    """The champion's configuration refitted on this run's (newer) data, logged, registered
    and judged like a challenger: what a retrain delivers when the configuration that
    serves beats every family tuned on the new data. On failure the run keeps the
    rejection (and no half-registered version)."""
    from training.registry import version_estimator

    name = job.spec.registered_model_name
    log.info("%s: the champion v%s's configuration beats this run's challenger on the same "
             "backtest; refitting it on the data to %s", name, champion.version,
             job.training_set.metadata.end)
    try:
        estimator = version_estimator(name, champion.version)
        params = job.client.get_run(champion.run_id).data.params if champion.run_id else {}
        outcome = _fit_configuration(job, champion, estimator, params)
        decision = _register_and_judge(job, outcome, champion)
    except Exception as exc:  # an old champion whose code no longer loads or fits
        log.warning("champion v%s could not be refitted (%s: %s); it stays as it was fitted",
                    champion.version, type(exc).__name__, exc)
        return rejected
    return replace(decision, reason=f"{rejected.reason}; so its configuration was refitted "
                                    f"on the new data: {decision.reason}")


def _fit_configuration(job: _Job, champion: Candidate, estimator: Forecaster,
                       params: dict[str, Any]) -> FamilyOutcome:
    """``estimator`` backtested (nested, as a tuned family is), refitted and logged in its
    own family run, tagged with the version whose configuration it is."""
    import mlflow
    from sklearn.base import clone

    from training.backtest import run_backtest, run_outer

    level, data = job.spec.models.interval_level, job.training_set
    tags = {"family": champion.family, "spec_name": job.spec.name,
            "configuration_of_version": champion.version}
    with mlflow.start_run(run_name=f"{champion.family} (v{champion.version} refitted)",
                          nested=True, tags=tags) as run:
        tuning = run_backtest(estimator, data, job.plan.inner, level)
        promise = (run_outer(estimator, data, job.plan.outer, tuning, level) if job.plan.outer
                   else tuning)
        return _fit_and_log(job, champion.family, clone(estimator), params, (tuning, promise),
                            run.info.run_id)


def _register_and_judge(job: _Job, outcome: FamilyOutcome, champion: Candidate
                        ) -> PromotionDecision:
    """Register ``outcome`` and judge it against the champion and this run's naive; undo
    the registration on failure."""
    from training.registry import NAIVE_FAMILY, promote_candidate

    naive = job.outcomes.get(NAIVE_FAMILY)
    return _registered_then(job, [outcome], lambda candidates: promote_candidate(
        job.client, job.spec.registered_model_name, candidates[0],
        candidate(job, naive) if naive else None, champion, job.spec.promotion))


def check_family_params(spec: ExperimentSpec, chosen: list[str]) -> None:
    """Refuse a chosen family's fixed params (``models.<family>.params``) that its estimator
    does not have or would refuse, naming them, before any run, study or feature build."""
    for family in chosen:
        params = spec.models.family(family).params
        if not params:
            continue
        try:
            families_table.BY_NAME[family].check_params(params)
        except ValueError as error:
            raise ValueError(f"models.{family}.params {params}: {error}") from error


def fixed_params(family: str, spec: ExperimentSpec, n_jobs: int) -> dict[str, Any]:
    """Params every trial of ``family`` shares: the spec's season length, seed and n_jobs
    where the estimator has them (the spec's ``params`` are added by the tuner)."""
    from training.forecasters import FAMILIES as ESTIMATORS

    accepted = ESTIMATORS[family]().get_params()
    wanted = {"season_length": spec.season_length, "seed": spec.models.seed, "n_jobs": n_jobs}
    return {k: v for k, v in wanted.items() if k in accepted}


def family_budget(spec: ExperimentSpec, family: str, trials: int | None = None,
                  timeout: float | None = None) -> FamilyConfig:
    """The spec's budget of ``family`` with the command line's trials / timeout over it."""
    budget = spec.models.family(family)
    update = {k: v for k, v in (("trials", trials), ("timeout", timeout)) if v}
    return budget.model_copy(update=update) if update else budget


def _budget(job: _Job, family: str) -> FamilyConfig:
    return family_budget(job.spec, family, job.trials, job.timeout)


def study_name(spec: ExperimentSpec, data_digest: str, family: str) -> str:
    """The Optuna study of ``family``: the same for every run of this spec on this data."""
    return f"{spec.name}.{family}.{spec.spec_hash()}.{data_digest[:12]}"


def _study_name(job: _Job, family: str) -> str:
    return study_name(job.spec, job.training_set.metadata.data_digest, family)


def _train_family(job: _Job, family: str) -> FamilyOutcome:
    """Tune, refit and log one family in its own nested run."""
    import mlflow

    from training.tuning import tune_family

    fixed = fixed_params(family, job.spec, job.n_jobs or job.settings.n_jobs)
    with mlflow.start_run(run_name=family, nested=True,
                          tags={"family": family, "spec_name": job.spec.name}) as run:
        run_id = run.info.run_id
        log.info("%s: tuning (study %s)", family, _study_name(job, family))
        tuning = tune_family(
            family, job.training_set, job.plan.inner, _budget(job, family),
            job.spec.models.interval_level, job.settings.optuna_storage,
            _study_name(job, family), job.spec.models.seed,
            on_trial=lambda t: _record_trial(job, run_id, family, t),
            fixed=fixed, show_progress_bar=sys.stderr.isatty(), group=job.group,
        )
        _record_other_workers(job, run_id, family, tuning)
        tuning, promise = _score_outer(job, family, tuning)
        return _refit_and_log(job, family, tuning.params, tuning, promise, run_id)


def _score_outer(job: _Job, family: str, tuning: TuningResult
                 ) -> tuple[TuningResult, BacktestResult]:
    """The tuned params scored on the outer windows (the tuning's own backtest when the
    spec has none): what chooses the champion and what the version promises. A tuned trial
    that does not hold its gain over the family's defaults there gives way to them
    (:func:`training.tuning.holds_its_gain`)."""
    from training.tuning import defaults_result

    if not job.plan.outer:
        return tuning, tuning.best_backtest
    tuned = tuning, _outer_backtest(job, family, tuning)
    defaults = defaults_result(tuning, job.training_set, job.plan.inner,
                               job.spec.models.interval_level)
    chosen = tuned if defaults is None else _outer_check(job, family, tuned, defaults)
    log.info("%s: tuning wape %.4f, held-out (outer) wape %.4f", family,
             chosen[0].best_value, chosen[1].metrics["wape"])
    return chosen


def _outer_check(job: _Job, family: str, tuned: tuple[TuningResult, BacktestResult],
                 defaults: TuningResult) -> tuple[TuningResult, BacktestResult]:
    """The tuned trial and its outer backtest when it holds its gain over the defaults
    there, else the defaults and theirs; the run says which in its ``outer_check`` tag."""
    import mlflow

    from training.tuning import holds_its_gain

    tuning, outer = tuned
    defaults_outer = _outer_backtest(job, family, defaults)
    scores = {"tuned": (tuning.best_value, float(outer.metrics["wape"])),
              "defaults": (defaults.best_value, float(defaults_outer.metrics["wape"]))}
    held = holds_its_gain(scores["tuned"], scores["defaults"])
    summary = (f"trial #{tuning.best_trial} {'kept' if held else 'dropped'}: tuning + outer "
               f"wape {scores['tuned'][0]:.4f} + {scores['tuned'][1]:.4f}, defaults "
               f"{scores['defaults'][0]:.4f} + {scores['defaults'][1]:.4f}")
    mlflow.set_tag("outer_check", summary)
    if held:
        return tuned
    log.info("%s: the defaults are kept (%s): the tuned trial does not hold its gain on the "
             "outer window(s)", family, summary)
    return defaults, defaults_outer


def _outer_backtest(job: _Job, family: str, tuning: TuningResult) -> BacktestResult:
    """``tuning``'s params scored on the outer windows (nested backtest)."""
    from training.backtest import run_outer
    from training.tuning import build_forecaster

    estimator = build_forecaster(family, {}, tuning.params)
    return run_outer(estimator, job.training_set, job.plan.outer, tuning.best_backtest,
                     job.spec.models.interval_level)


def _record_trial(job: _Job, run_id: str, family: str, trial: Any) -> None:
    """A line per finished trial for people, and the trial as a nested MLflow run."""
    from training.tracking import describe_trial, log_trial_run

    log.info("%s: %s", family, describe_trial(trial))
    log_trial_run(job.client, job.experiment_id, run_id, family, trial)


def _record_other_workers(job: _Job, run_id: str, family: str, tuning: TuningResult) -> None:
    """The finished trials other workers ran for this run, as nested runs like ours."""
    from training.tracking import log_trial_run

    ours = set(tuning.trial_numbers)
    theirs = [t for t in tuning.group_trials if t.number not in ours and t.state.is_finished()]
    for trial in theirs:
        log_trial_run(job.client, job.experiment_id, run_id, family, trial)
    if theirs or len(tuning.workers) > 1:
        log.info("%s: %d trials of this run, %d by other workers (%d workers)", family,
                 len(tuning.group_trials), len(theirs), len(tuning.workers))


def _refit_and_log(job: _Job, family: str, params: dict[str, Any], tuning: TuningResult,
                   promise: BacktestResult, run_id: str) -> FamilyOutcome:
    """The best params refitted on the whole training set, logged with the backtest that
    scores it (``promise``) and the tuning's figures as ``tuning_<metric>``."""
    import mlflow

    from training.tuning import build_forecaster

    mlflow.set_tags({"study_name": tuning.study.study_name,
                     "best_trial": str(tuning.best_trial)})
    return _fit_and_log(job, family, build_forecaster(family, {}, params), params,
                        (tuning.best_backtest, promise), run_id,
                        (len(tuning.group_trials), len(tuning.workers)))


def _fit_and_log(job: _Job, family: str, estimator: Forecaster, params: dict[str, Any],
                 backtests: tuple[BacktestResult, BacktestResult], run_id: str,
                 trials: tuple[int, int] = (0, 0)) -> FamilyOutcome:
    """``estimator`` fitted (timed) on the whole training set and logged in its family run
    with its (tuning, promise) backtests; ``trials``: the run's trials and workers."""
    started = time.perf_counter()
    forecaster = estimator.fit(job.training_set)
    fitted = _Fitted(forecaster, params, *backtests, time.perf_counter() - started, *trials)
    return _log_family(job, family, fitted, run_id)


@dataclass
class _Fitted:
    """A family's model refitted on the whole training set, and the backtests behind it."""

    forecaster: Forecaster
    params: dict[str, Any]
    tuning: BacktestResult  # the inner windows (what tuning and an ensemble choose on)
    promise: BacktestResult  # the outer windows (what the version promises)
    seconds: float
    n_trials: int  # the run's trials of the family, every worker's
    n_workers: int = 0  # the distinct workers that ran them (0: not tuned, the ensemble)


def _log_family(job: _Job, family: str, fitted: _Fitted, run_id: str) -> FamilyOutcome:
    """Log a refitted family model in its (active) family run, with its calibration."""
    import mlflow

    from training.pyfunc import log_forecaster
    from training.tracking import (
        backtest_metrics,
        log_backtest,
        log_params,
        log_training_data,
    )

    forecaster, promise = fitted.forecaster, fitted.promise
    forecaster.set_conformal(promise.calibration)
    log_params(fitted.params)
    mlflow.log_metrics({"train_seconds": fitted.seconds, "n_trials": fitted.n_trials})
    if fitted.n_workers:
        mlflow.log_metric("n_workers", fitted.n_workers)
    log_training_data(job.training_set, f"{job.spec.name}-training-set")
    importances = getattr(forecaster, "feature_importances", None)
    log_backtest(promise, importances() if importances else None)
    if promise is not fitted.tuning:  # nested: the inner windows' figures too
        inner = backtest_metrics(fitted.tuning)
        mlflow.log_metrics({(f"tuning_{k}" if k in fitted.tuning.metrics else k): v
                            for k, v in inner.items()})
    info = log_forecaster(forecaster, job.training_set, promise,
                          spec_name=job.spec.name, level=job.spec.models.interval_level,
                          seed=job.spec.models.seed)
    metrics = {k: float(v) for k, v in promise.metrics.items()}
    return FamilyOutcome(family, run_id, info.model_uri, fitted.params, metrics,
                         fitted.seconds, fitted.n_trials, fitted=fitted)


def _train_ensemble(job: _Job, family: str) -> FamilyOutcome | None:
    """The combination of the run's best families (:mod:`training.forecasters.ensemble`):
    members and weights chosen on the inner windows, scored on the outer ones, logged
    and registered like any family. None (logged) with fewer than two families."""
    import mlflow

    from training.forecasters.ensemble import EnsembleForecaster, choose_members

    done = _combinable({f: o.fitted for f, o in job.outcomes.items() if o.fitted is not None})
    if len(done) < 2:
        log.info("%s: skipped, it needs two trained families (got %s)", family, list(done))
        return None
    started = time.perf_counter()
    names, weights = choose_members({f: d.tuning.metrics["wape"] for f, d in done.items()},
                                    lambda n, w: _combined(job, done, n, w).metrics["wape"],
                                    scopes={f: families_table.BY_NAME[f].scope for f in done})
    tuning = _combined(job, done, names, weights)
    promise = (_combined(job, done, names, weights, prior=tuning) if job.plan.outer
               else tuning)
    forecaster = EnsembleForecaster.of_fitted({n: done[n].forecaster for n in names}, weights)
    log.info("%s: %s, held-out (outer) wape %.4f", family,
             " + ".join(f"{w / sum(weights):.2f} {n}" for n, w in zip(names, weights,
                                                                    strict=True)),
             promise.metrics["wape"])
    params = {"members": ",".join(names), "weights": ",".join(f"{w / sum(weights):.4f}"
                                                              for w in weights)}
    fitted = _Fitted(forecaster, params, tuning, promise, time.perf_counter() - started, 0)
    with mlflow.start_run(run_name=family, nested=True,
                          tags={"family": family, "spec_name": job.spec.name}) as run:
        return _log_family(job, family, fitted, run.info.run_id)


def _combinable(done: dict[str, _Fitted]) -> dict[str, _Fitted]:
    """The families the ensemble may combine: a *sparse* family (Croston / TSB) only when
    it finds intermittent or lumpy series. On a panel without any it is simple exponential
    smoothing of every series, a weaker copy of the statistical family's candidates, whose
    place in the combination only a few tuning windows would decide."""
    def combinable(family: str, fitted: _Fitted) -> bool:
        if families_table.BY_NAME[family].scope != "sparse":
            return True
        return fitted.forecaster.intermittent_count() > 0  # type: ignore[attr-defined]

    kept = {f: d for f, d in done.items() if combinable(f, d)}
    if len(kept) < len(done):
        log.info("ensemble: %s left out, it finds no intermittent series",
                 ", ".join(sorted(set(done) - set(kept))))
    return kept


def _combined(job: _Job, done: dict[str, _Fitted], names: list[str], weights: list[float],
              prior: BacktestResult | None = None) -> BacktestResult:
    """The backtest of a weighted combination: inner windows, or outer ones with ``prior``."""
    from training.backtest import combine_backtests

    windows = job.plan.inner if prior is None else job.plan.outer
    results = [done[n].tuning if prior is None else done[n].promise for n in names]
    return combine_backtests(results, weights, job.training_set, windows,
                             job.spec.models.interval_level, prior)


def _register_and_promote(job: _Job, champion: Candidate | None) -> PromotionDecision:
    """Register every family's model, then promote; on failure undo the registration
    (delete the new versions, put the aliases back) and raise."""
    from training.registry import promote_challenger

    return _registered_then(job, list(job.outcomes.values()), lambda candidates: (
        promote_challenger(job.client, job.spec.registered_model_name, candidates, champion,
                           job.spec.promotion)))


def _registered_then(job: _Job, outcomes: list[FamilyOutcome],
                     decide: Callable[[list[Candidate]], PromotionDecision]
                     ) -> PromotionDecision:
    """Register ``outcomes`` as new versions, then ``decide`` on their candidates; on
    failure delete those versions, put the aliases back (the registered model too, if it
    is new) and raise."""
    from training.registry import aliases, model_exists

    name = job.spec.registered_model_name
    existed, before, created = model_exists(job.client, name), aliases(job.client, name), []
    try:
        for outcome in outcomes:
            outcome.version = _register(job, outcome)
            created.append(outcome.version)
        return decide([candidate(job, o) for o in outcomes])
    except BaseException:
        _undo_registration(job.client, name, created, before if existed else None)
        for outcome in outcomes:
            outcome.version = None
        raise


def _register(job: _Job, outcome: FamilyOutcome) -> str:
    """A new version of the spec's model from ``outcome``'s logged model, with its tags."""
    from training.registry import register_version, version_tags
    from training.tracking import mlflow_notices_follow_its_logger

    meta = job.training_set.metadata
    tags = version_tags(outcome.family, outcome.metrics, meta.data_digest, meta.spec_hash,
                        outcome.run_id, meta.end)
    with mlflow_notices_follow_its_logger():
        return register_version(job.spec.registered_model_name, outcome.model_uri, tags)


def candidate(job: _Job, outcome: FamilyOutcome) -> Candidate:
    """What the promotion rule judges a registered family by: its outer WAPE, its tuning
    WAPE and both pooled (weighted by their windows)."""
    from training.registry import Candidate

    wape = outcome.metrics["wape"]
    tuning = outcome.fitted.tuning.metrics["wape"] if outcome.fitted else None
    pooled = None
    if tuning is not None and job.plan.outer:
        inner, outer = len(job.plan.inner), len(job.plan.outer)
        pooled = (inner * tuning + outer * wape) / (inner + outer)
    return Candidate(outcome.family, outcome.version or "", wape, outcome.run_id,
                     data_end=job.training_set.metadata.end, tuning_wape=tuning,
                     pooled_wape=pooled,
                     combination=families_table.BY_NAME[outcome.family].combines)


def _undo_registration(client: MlflowClient, name: str, created: list[str],
                       before: dict[str, str] | None) -> None:
    """Delete the new versions and restore the aliases (``before`` None: the registered
    model did not exist, so it goes too)."""
    from training.registry import aliases, delete_versions, model_exists

    delete_versions(client, name, created)
    if before is None:
        if model_exists(client, name):
            client.delete_registered_model(name)
        return
    for alias in set(aliases(client, name)) - set(before):
        client.delete_registered_model_alias(name, alias)
    for alias, version in before.items():
        client.set_registered_model_alias(name, alias, version)


def _log_parent_summary(job: _Job, decision: PromotionDecision) -> None:
    """The leaderboard, the best family's metrics and the decision on the parent run."""
    import mlflow

    from training.tracking import log_leaderboard

    board = TrainingOutcome(job.spec.name, job.spec.registered_model_name, job.experiment_id,
                            "", job.outcomes, decision).leaderboard
    best = job.outcomes[board.iloc[0]["family"]]
    log_leaderboard(board, best.metrics)
    mlflow.set_tags({"best_family": best.family, "promotion_decision": decision.action,
                     "promotion_reason": decision.reason[:5000],
                     "champion_version": decision.champion_version or ""})


COMPARE_COLUMNS = ["family", "version", "alias", "wape", "mase", "bias_pct", "coverage",
                   "train_seconds", "data_digest", "run_id"]


def compare_models(spec: ExperimentSpec, settings: Settings) -> pd.DataFrame:
    """Every registered version of the spec's model with its aliases and the backtest
    metrics of the run that trained it, newest version first."""
    from training.registry import aliases, client_for

    client = client_for(settings.tracking_uri, settings.registry_uri)
    name = spec.registered_model_name
    by_version: dict[str, list[str]] = {}
    for alias, version in aliases(client, name).items():  # search results carry no aliases
        by_version.setdefault(version, []).append(alias)
    versions = client.search_model_versions(f"name = '{name}'")
    rows = [_version_row(client, v, by_version.get(str(v.version), [])) for v in versions]
    frame = pd.DataFrame(rows, columns=COMPARE_COLUMNS)
    order = frame["version"].astype(int).sort_values(ascending=False).index
    return frame.loc[order].reset_index(drop=True)


def _version_row(client: MlflowClient, version: Any, alias: list[str]) -> dict[str, Any]:
    metrics = client.get_run(version.run_id).data.metrics if version.run_id else {}
    row: dict[str, Any] = {name: metrics.get(name) for name in COMPARE_COLUMNS[3:8]}
    row.update(family=version.tags.get("family", ""), version=str(version.version),
               alias=",".join(sorted(alias)), data_digest=version.tags.get("data_digest", "")[:12],
               run_id=version.run_id or "")
    return row
