"""`salescast demo`: the whole loop on the embedded retail data, one line per stage.

It works in its own directory (``--workdir``), so the MLflow store, the Optuna storage,
the generated data and the artifacts of a demo never mix with a user's own. Re-running is
safe: the data are regenerated identically (seeded), and training adds a new parent run
whose challenger is promoted only if it beats the champion.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import typer

from experiments.settings import Settings
from experiments.spec import ExperimentSpec, load_spec

log = logging.getLogger(__name__)
DEMO_SPEC = "retail_demo.yaml"


@dataclass
class StageClock:
    """Prints `[k/n] name ... seconds` per stage and keeps the timings for the summary."""

    total: int
    timings: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        index = len(self.timings) + 1
        typer.echo(f"[{index}/{self.total}] {name} ...")
        started = time.perf_counter()
        yield
        self.timings[name] = time.perf_counter() - started
        typer.echo(f"[{index}/{self.total}] {name}: done in {self.timings[name]:.1f} s")


def demo_spec_path() -> Path:
    """The demo spec shipped inside the `experiments` package."""
    return Path(str(resources.files("experiments").joinpath(DEMO_SPEC)))


@contextmanager
def working_directory(path: Path) -> Iterator[None]:
    previous = Path.cwd()
    path.mkdir(parents=True, exist_ok=True)
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(previous)


def run_demo(workdir: Path, spec_path: Path | None = None) -> dict[str, object]:
    """Run every stage that exists today; return what the summary shows (for tests)."""
    spec_file = (spec_path or demo_spec_path()).resolve()
    workdir = workdir.resolve()
    with working_directory(workdir):
        spec = load_spec(spec_file)
        settings = Settings()
        clock = StageClock(total=3)
        outcome = _run_stages(spec, spec_file, settings, clock)
    _print_summary(outcome, clock, workdir, settings)
    return outcome


def _run_stages(
    spec: ExperimentSpec, spec_file: Path, settings: Settings, clock: StageClock
) -> dict[str, object]:
    from experiments.pipeline import build_features, generate_data, summarize_training_set

    outcome: dict[str, object] = {"spec": spec.name}
    with clock.stage("generate data"):
        assert spec.simulator is not None and spec.data.sales.path is not None
        generate_data(spec.simulator, Path(spec.data.sales.path).parent)
    with clock.stage("build features"):
        training_set = build_features(spec)
        out = Path("artifacts") / f"{spec.name}_training_set.parquet"
        out.parent.mkdir(parents=True, exist_ok=True)
        training_set.panel.to_parquet(out, index=False)
        typer.echo(summarize_training_set(training_set))
        outcome.update(training_set_path=str(out.resolve()), n_series=training_set.metadata.n_series)
    with clock.stage("train, compare and promote"):
        outcome.update(_train_and_promote(spec_file, settings))
    return outcome


def _train_and_promote(spec_file: Path, settings: Settings) -> dict[str, object]:
    from experiments.training_job import run_training

    spec = load_spec(spec_file)
    result = run_training(spec, settings)
    typer.echo(result.leaderboard_text())
    typer.echo(f"promotion: {result.decision.summary()}")
    return {
        "champion_version": result.decision.champion_version,
        "promoted": result.decision.promoted,
        "leaderboard": result.leaderboard.to_dict(orient="records"),
    }


def _print_summary(
    outcome: dict[str, object], clock: StageClock, workdir: Path, settings: Settings
) -> None:
    total = sum(clock.timings.values())
    typer.echo("")
    typer.echo(f"salescast demo finished in {total:.1f} s (working directory {workdir})")
    for name, seconds in clock.timings.items():
        typer.echo(f"  {name:<28} {seconds:6.1f} s")
    if "champion_version" in outcome:
        typer.echo(f"champion: version {outcome['champion_version']} of the retail_demo model")
    typer.echo("next:")
    typer.echo(f"  cd {workdir} && mlflow ui --backend-store-uri {settings.tracking_uri}")
    typer.echo(f"  cd {workdir} && optuna-dashboard {settings.optuna_storage}  # if installed")
