"""The `salescast` command line (Typer).

Heavy libraries (pandas, mlflow, lightgbm) are imported inside the commands so that
`salescast --help` stays instant. Every command builds its own `Settings` and passes it
down; known user errors (a bad spec, invalid data) print one clear message and exit 1.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Annotated

import typer

from experiments.cli_support import fail_cleanly, library_output, setup_logging

app = typer.Typer(
    name="salescast",
    help="Sales-forecasting experiments: features, tuned forecasters in MLflow, a served "
    "champion, drift monitoring.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(help="Raw data: the embedded retail simulator.", no_args_is_help=True)
features_app = typer.Typer(help="Training sets from raw data.", no_args_is_help=True)
stack_app = typer.Typer(help="The shared stack on this machine: PostgreSQL and an mlflow "
                        "server on it (`salescast stack up`).", no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(features_app, name="features")
app.add_typer(stack_app, name="stack")

log = logging.getLogger("salescast")

SpecOption = Annotated[Path, typer.Option("--spec", help="Experiment spec (YAML).")]
StackDir = Annotated[Path, typer.Option(
    "--dir", help="The stack's folder: PostgreSQL data, logs, artifacts, stack.env.")]


@app.callback()
def main(
    ctx: typer.Context,
    verbose: Annotated[bool, typer.Option(
        "--verbose", "-v", help="Debug logging, and the libraries' own log lines, progress "
        "bars and warnings (MLflow, Optuna, ...), quiet otherwise.")] = False,
) -> None:
    """salescast: sales forecasting from raw transactions to a monitored champion."""
    setup_logging(logging.DEBUG if verbose else logging.INFO)
    ctx.with_resource(library_output(verbose))


@data_app.command("generate")
def data_generate(
    out: Annotated[Path, typer.Option(help="Folder for sales/customers/calendar.parquet.")],
    seed: Annotated[int, typer.Option(help="Random seed.")] = 42,
    stores: Annotated[int, typer.Option(min=1)] = 20,
    categories: Annotated[int, typer.Option(min=1, max=26)] = 6,
    customers: Annotated[int, typer.Option(min=10)] = 2000,
    start: Annotated[str, typer.Option(help="First date (YYYY-MM-DD).")] = "2022-01-03",
    periods: Annotated[int, typer.Option(min=8, help="Periods of --freq.")] = 156,
    freq: Annotated[str, typer.Option(help="D or W.")] = "W",
    shift_at: Annotated[
        str | None, typer.Option(help="Date of a regime shift (demonstrates drift).")
    ] = None,
) -> None:
    """Write a seeded, realistic retail data set (the embedded default data)."""
    with fail_cleanly():
        from experiments.pipeline import generate_data
        from features.config import SimulatorConfig

        config = SimulatorConfig(
            seed=seed, stores=stores, categories=categories, customers=customers,
            start=start, periods=periods, freq=freq, shift_at=shift_at or None,  # type: ignore[arg-type]
        )
        paths = generate_data(config, out)
        for table, path in paths.items():
            typer.echo(f"{table:<10} {path}")


@features_app.command("build")
def features_build(
    spec: SpecOption,
    out: Annotated[
        Path | None, typer.Option(help="Parquet file for the training set.")
    ] = None,
) -> None:
    """Build the leakage-free training set of a spec and print its summary."""
    with fail_cleanly():
        from experiments.pipeline import build_features, summarize_training_set
        from experiments.spec import load_spec

        experiment = load_spec(spec)
        training_set = build_features(experiment)
        target = out or Path("artifacts") / f"{experiment.name}_training_set.parquet"
        target.parent.mkdir(parents=True, exist_ok=True)
        training_set.panel.to_parquet(target, index=False)
        typer.echo(summarize_training_set(training_set))
        typer.echo(f"written    {target}")


@app.command()
def demo(
    workdir: Annotated[
        Path, typer.Option(help="Fresh working directory for data, MLflow and reports.")
    ] = Path("salescast-demo"),
    stack: Annotated[Path | None, typer.Option(
        help="Run on the stack in this folder (`salescast stack up`) instead of SQLite "
        "files in the working directory; the stack must hold no earlier demo.")] = None,
) -> None:
    """Run the whole loop on the embedded retail data, printing a line per stage."""
    with fail_cleanly():
        from experiments.demo import run_demo

        run_demo(workdir, stack_dir=stack)


@stack_app.command("up")
def stack_up(
    folder: StackDir = Path(".salescast-stack"),
    pg_port: Annotated[int, typer.Option(min=0, max=65535, help="0 = a free port.")] = 0,
    mlflow_port: Annotated[int, typer.Option(min=0, max=65535, help="0 = a free port.")] = 0,
) -> None:
    """Start PostgreSQL (127.0.0.1 only) and `mlflow server` on it; print the settings."""
    with fail_cleanly():
        from experiments.stack import env_text, up

        started = time.perf_counter()
        stack = up(folder, pg_port, mlflow_port)
        if stack.started:
            typer.echo(f"started {' and '.join(stack.started)} in "
                       f"{time.perf_counter() - started:.0f} s")
        else:
            typer.echo(f"the stack in {stack.folder} is running already: reusing it")
        typer.echo(env_text(stack.folder))
        typer.echo(f"use it: source {stack.folder / 'stack.env'}")
        typer.echo(f"stop it: salescast stack down --dir {stack.folder}")


@stack_app.command("down")
def stack_down(
    folder: StackDir = Path(".salescast-stack"),
    purge: Annotated[bool, typer.Option(help="Then delete the folder (data too).")] = False,
) -> None:
    """Stop the stack's mlflow server and PostgreSQL (nothing running is fine)."""
    with fail_cleanly():
        from experiments.stack import down

        existed = folder.exists()
        stopped = down(folder, purge=purge)
        typer.echo(f"stopped {' and '.join(stopped)}" if stopped else "nothing was running")
        if purge and existed:
            typer.echo(f"removed {folder}")


@stack_app.command("env")
def stack_env(folder: StackDir = Path(".salescast-stack")) -> None:
    """Print the stack's settings as `export` lines (`eval "$(salescast stack env)"`)."""
    with fail_cleanly():
        from experiments.stack import env_text

        typer.echo(env_text(folder))


def _register_stage_commands() -> None:
    """The training, serving and monitoring commands live beside their orchestration."""
    from experiments import commands_monitor, commands_review, commands_serve, commands_train

    for name in ("train", "compare", "promote", "rollback"):
        app.command(name)(getattr(commands_train, name))
    app.command("serve")(commands_serve.serve)
    app.command("monitor")(commands_monitor.monitor)
    app.command("review")(commands_review.review)


_register_stage_commands()


if __name__ == "__main__":
    app()
