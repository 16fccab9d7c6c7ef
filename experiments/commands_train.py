"""CLI commands of the model lifecycle: ``train``, ``compare``, ``promote``, ``rollback``.

``train`` leads a training run (``--workers N`` adds N-1 local tuning processes) or, with
``--join RUN_ID``, only adds tuning trials to a leader's run (it prints how many per
family and exits 0 once every family's budget is used).

Plain Typer command functions; ``experiments.cli`` registers them on the ``salescast``
app. Each builds its own ``Settings`` (``SALESCAST_*`` environment) and imports the heavy
libraries inside, so ``salescast --help`` stays instant. Errors print one line
(``error: ...``) and exit with code 1; ``-v`` logs the traceback.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from experiments.cli_support import fail_cleanly

if TYPE_CHECKING:
    from experiments.settings import Settings

log = logging.getLogger(__name__)

SpecOption = Annotated[Path, typer.Option("--spec", help="Experiment spec (YAML).")]


@contextmanager
def _one_line_errors(what: str) -> Iterator[None]:
    """User errors as in every command; anything else as one line too (traceback at -v)."""
    with fail_cleanly():
        try:
            yield
        except (typer.Exit, KeyboardInterrupt):
            raise
        except Exception as exc:
            if _is_user_error(exc):
                raise
            log.debug("%s failed", what, exc_info=True)
            typer.echo(f"error: {_one_line(what, exc)}", err=True)
            raise typer.Exit(code=1) from None


def _is_user_error(exc: Exception) -> bool:
    from experiments.cli_support import _user_errors

    return isinstance(exc, _user_errors())


def _one_line(what: str, exc: Exception) -> str:
    """Registry refusals are the user's to fix: their message alone; others say where."""
    from experiments.local_workers import WorkersError
    from training.distributed import SchedulerUnavailable
    from training.registry import RegistryError

    if isinstance(exc, RegistryError | WorkersError | SchedulerUnavailable):
        return str(exc)
    first_line = (str(exc).strip().splitlines() or [""])[0]
    return f"{what} failed: {type(exc).__name__}: {first_line}"


def _split(families: str | None) -> list[str] | None:
    names = [f.strip() for f in (families or "").split(",") if f.strip()]
    return names or None


def train(
    spec: SpecOption,
    families: Annotated[str | None, typer.Option(
        help="Comma-separated families (seasonal_naive always runs as the baseline).")] = None,
    trials: Annotated[int | None, typer.Option(
        min=1, help="Optuna trials per family, for the whole run (all its workers).")] = None,
    timeout: Annotated[float | None, typer.Option(
        min=1, help="Tuning time limit per family and process (seconds).")] = None,
    n_jobs: Annotated[int | None, typer.Option(
        "--n-jobs", min=-1, help="Parallel per-series fits (joblib).")] = None,
    workers: Annotated[int, typer.Option(
        min=1, help="Tuning processes on this machine, this one included (needs a shared "
        "SALESCAST_OPTUNA_STORAGE).")] = 1,
    join: Annotated[str | None, typer.Option(
        "--join", metavar="RUN_ID", help="Only add tuning trials to the running training "
        "run RUN_ID (its parent run id); the leader alone registers and promotes.")] = None,
    dask: Annotated[str | None, typer.Option(
        "--dask", metavar="SCHEDULER", help="Run the per-series fits and backtest windows on "
        "Dask: 'local' or tcp://host:8786 (default: SALESCAST_DASK_SCHEDULER).")] = None,
) -> None:
    """Tune each family, log to MLflow, register the models and apply the promotion rule
    (with --join: only add tuning trials to a running training run)."""
    with _one_line_errors("training"), ExitStack() as stack:
        from experiments.settings import Settings
        from experiments.spec import load_spec
        from experiments.training_job import run_training
        from training.distributed import compute_engine

        settings = Settings(**({"dask_scheduler": dask} if dask else {}))
        stack.enter_context(compute_engine(settings.dask_scheduler, n_jobs or settings.n_jobs))
        if join is not None:
            _join(spec, settings, join, families, trials, timeout, n_jobs, workers)
            return
        outcome = run_training(load_spec(spec), settings, _split(families), trials, timeout,
                               n_jobs, workers=workers, spec_file=str(spec))
        typer.echo(outcome.leaderboard_text())
        typer.echo(f"promotion: {outcome.decision.summary()}")
        typer.echo(f"parent run '{outcome.run_name}' ({outcome.parent_run_id}) in experiment "
                   f"'{outcome.spec_name}' ({settings.tracking_uri})")
        typer.echo(families_link(outcome.ui_url, settings.tracking_uri))


def families_link(url: str, tracking_uri: str) -> str:
    """The line that gives the MLflow UI link of a training run's families (and, for a
    local store, the command that starts the UI)."""
    from training.mlflow_ui import how_to_open

    start = how_to_open(tracking_uri)
    return f"compare the families in MLflow: {url}" + (f"  (after: {start})" if start else "")


def _join(spec: Path, settings: Settings, run_id: str, families: str | None,
          trials: int | None, timeout: float | None, n_jobs: int | None, workers: int) -> None:
    """``train --join``: a tuning-only worker of the leader's run ``run_id``."""
    from experiments.join_job import join_training
    from experiments.local_workers import WorkersError
    from experiments.spec import load_spec

    if workers != 1:
        raise WorkersError("--workers is the leader's option; start more joiners instead")
    previous = signal.signal(signal.SIGTERM, _interrupt)  # a stopped joiner's trial: FAIL
    try:
        outcome = join_training(load_spec(spec), settings, run_id, _split(families), trials,
                                timeout, n_jobs)
    finally:
        signal.signal(signal.SIGTERM, previous)
    typer.echo(outcome.summary())


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def compare(spec: SpecOption) -> None:
    """List the registered versions of the spec's model with aliases and backtest metrics."""
    with _one_line_errors("compare"):
        from experiments.settings import Settings
        from experiments.spec import load_spec
        from experiments.training_job import compare_models, format_table

        experiment = load_spec(spec)
        board = compare_models(experiment, Settings())
        if board.empty:
            typer.echo(f"no registered versions of {experiment.registered_model_name!r} yet")
            return
        typer.echo(format_table(board.drop(columns=["run_id"])))


def promote(
    spec: SpecOption,
    version: Annotated[str, typer.Option(help="The model version to make champion.")],
    reason: Annotated[str, typer.Option(help="Why (written on the version).")] =
        "manual promotion from the command line",
) -> None:
    """Make a version the champion by hand (the old champion becomes previous-champion)."""
    with _one_line_errors("promote"):
        from experiments.settings import Settings
        from experiments.spec import load_spec
        from training.registry import client_for, promote_version

        settings = Settings()
        name = load_spec(spec).registered_model_name
        client = client_for(settings.tracking_uri, settings.registry_uri)
        decision = promote_version(name, version, reason, client=client)
        typer.echo(f"{name}: {decision.summary()}")


def rollback(spec: SpecOption) -> None:
    """Swap champion and previous-champion (undo the last promotion)."""
    with _one_line_errors("rollback"):
        from experiments.settings import Settings
        from experiments.spec import load_spec
        from training.registry import client_for
        from training.registry import rollback as rollback_model

        settings = Settings()
        name = load_spec(spec).registered_model_name
        client = client_for(settings.tracking_uri, settings.registry_uri)
        decision = rollback_model(name, client=client)
        typer.echo(f"{name}: {decision.summary()}")
