"""Is the monitor's verdict right? The demo's loop on many simulator seeds, both ways.

For each seed the demo's spec (with that simulator seed) is trained once as of
:data:`~experiments.demo.TRAINED_AS_OF`, then served by a real API process to the demo's
application for 16 weeks in two *arms*:

* ``quiet``: the simulator without a regime shift; the monitor judges weeks 1-8 and
  weeks 9-16: neither should say ``retrain``.
* ``shift``: the simulator with the demo's shift on :data:`~experiments.demo.SHIFT_AT`
  (the first day of week 9); weeks 1-8 are the quiet arm's weeks (the simulator leaves
  every row before the shift as it was), weeks 9-16 should say ``retrain``.

Before the shift the two arms' data are identical, so one champion serves both. What each
seed prepared (MLflow store, champion, one prediction store per arm) stays in its folder
under ``root``; judging again (after a change of the monitor) re-runs only the monitor.
``bench/monitor_calibration.py`` runs 20 seeds; the tests run a small chain.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import yaml

from experiments.demo import (
    QUIET_WEEKS,
    SHIFT_AT,
    SHIFT_WEEKS,
    TRAINED_AS_OF,
    api_client,
    api_env,
    demo_spec_path,
)
from experiments.settings import Settings
from experiments.spec import ExperimentSpec, load_spec

if TYPE_CHECKING:
    from features.training_set import TrainingSet

log = logging.getLogger(__name__)

ARMS = ("quiet", "shift")
DONE = "prepared"


@dataclass(frozen=True)
class Judgement:
    """One monitor verdict of one seed, arm and stretch of weeks."""

    seed: int
    arm: str
    weeks: str  # "1-8" or "9-16"
    verdict: str
    reasons: list[str]
    wape_ratio: float
    n_drifted: int
    decided_by: str = ""
    explanations: list[str] = field(default_factory=list)

    @property
    def shifted(self) -> bool:
        """Whether the judged weeks are after the regime shift."""
        return self.arm == "shift" and self.weeks == "9-16"


def seed_spec(seed: int, overrides: Mapping[str, Any] | None = None,
              base: Path | None = None) -> dict[str, Any]:
    """The demo spec (or ``base``) with the simulator's ``seed`` and ``overrides``
    (top-level sections merged one level deep, e.g. ``{"models": {...}}``)."""
    raw = yaml.safe_load((base or demo_spec_path()).read_text())
    raw["simulator"]["seed"] = seed
    for section, values in (overrides or {}).items():
        raw[section] = {**raw.get(section, {}), **values} if isinstance(values, dict) else values
    return raw


def arm_spec(raw: Mapping[str, Any], folder: Path, arm: str) -> ExperimentSpec:
    """The seed's spec reading the ``arm``'s simulated files in ``folder / arm``."""
    data_dir = folder / arm / "data"
    raw = {**raw, "data": {**raw["data"],
                           **{t: {"path": str(data_dir / f"{t}.parquet")}
                              for t in ("sales", "customers", "calendar")}}}
    raw["simulator"] = {**raw["simulator"], "shift_at": SHIFT_AT if arm == "shift" else None}
    path = folder / f"{arm}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_spec(path)


def seed_settings(folder: Path, arm: str) -> Settings:
    """One MLflow store and champion per seed; one prediction store per arm."""
    return Settings(
        tracking_uri=f"sqlite:///{folder / 'mlflow.db'}",
        optuna_storage=f"sqlite:///{folder / 'optuna.db'}",
        artifact_location=str(folder / "mlartifacts"),
        store_url=f"sqlite:///{folder / arm / 'predictions.db'}",
        reports_dir=folder / arm / "reports",
        local_model_dir=folder / arm / "champion",
    )


def _as_of(spec: ExperimentSpec, end: str) -> ExperimentSpec:
    return spec.model_copy(update={"data": spec.data.model_copy(update={"end": end})})


def prepare_seed(seed: int, root: Path, overrides: Mapping[str, Any] | None = None,
                 base: Path | None = None) -> Path:
    """Train the seed's champion and play both arms' 16 weeks (skipped when done)."""
    from experiments.pipeline import build_features, generate_data
    from experiments.training_job import run_training

    folder = (root / f"seed-{seed}").resolve()
    if (folder / DONE).exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    raw = seed_spec(seed, overrides, base)
    specs = {arm: arm_spec(raw, folder, arm) for arm in ARMS}
    for arm, spec in specs.items():
        assert spec.simulator is not None
        generate_data(spec.simulator, folder / arm / "data")
    run_training(_as_of(specs["shift"], TRAINED_AS_OF), seed_settings(folder, "shift"))
    for arm, spec in specs.items():
        _serve(spec, seed_settings(folder, arm), build_features(spec), folder / arm)
    (folder / DONE).write_text("ok\n")
    return folder


def _serve(spec: ExperimentSpec, settings: Settings, training_set: TrainingSet,
           workdir: Path) -> None:
    """The demo's application against a real API process, all 16 weeks."""
    import secrets

    from experiments.traffic import ApiProcess, simulate_application

    key = secrets.token_hex(16)
    api = ApiProcess(env=api_env(settings, spec.registered_model_name, key), cwd=workdir)
    try:
        api.start()
        with api_client(api.url, key) as client:
            simulate_application(client, training_set.base, [*QUIET_WEEKS, *SHIFT_WEEKS],
                                 training_set.exog_columns, spec.horizon)
    finally:
        api.stop()


def judge_seed(folder: Path, seed: int) -> list[Judgement]:
    """The monitor's verdicts on the prepared seed: quiet 1-8, quiet 9-16, shift 9-16."""
    from experiments.monitoring_job import run_monitoring

    stretches = [("quiet", QUIET_WEEKS), ("quiet", SHIFT_WEEKS), ("shift", SHIFT_WEEKS)]
    found = []
    for arm, weeks in stretches:
        spec = load_spec(folder / f"{arm}.yaml")
        periods = (weeks[0], weeks[-1])
        outcome = run_monitoring(spec, seed_settings(folder, arm), periods=periods)
        found.append(_judgement(seed, arm, weeks, outcome))
    return found


def _judgement(seed: int, arm: str, weeks: list[pd.Timestamp], outcome: Any) -> Judgement:
    result = outcome.result
    accuracy = result.accuracy
    ratio = float("nan")
    if accuracy is not None and accuracy.expected.get("wape"):
        ratio = accuracy.overall["wape"] / accuracy.expected["wape"]
    label = "1-8" if weeks[0] == QUIET_WEEKS[0] else "9-16"
    drifted = result.drift.n_drifted if result.drift is not None else 0
    return Judgement(seed, arm, label, outcome.verdict, outcome.reasons, ratio, drifted,
                     outcome.decided_by, outcome.explanations)


def calibrate(seeds: list[int], root: Path, overrides: Mapping[str, Any] | None = None,
              base: Path | None = None,
              progress: Callable[[int], None] = lambda seed: None) -> list[Judgement]:
    """Prepare (when not done) and judge every seed."""
    judgements: list[Judgement] = []
    for seed in seeds:
        folder = prepare_seed(seed, root, overrides, base)
        judgements += judge_seed(folder, seed)
        progress(seed)
    return judgements


def rates(judgements: list[Judgement]) -> pd.DataFrame:
    """Share of each verdict per (arm, weeks)."""
    frame = pd.DataFrame([(j.arm, j.weeks, j.verdict) for j in judgements],
                         columns=["arm", "weeks", "verdict"])
    counts = frame.groupby(["arm", "weeks"])["verdict"].value_counts(normalize=True)
    table = counts.unstack(fill_value=0.0)
    return table.reindex(columns=["ok", "watch", "retrain"], fill_value=0.0)
