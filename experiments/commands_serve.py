"""`salescast serve`: the champion behind the prediction API (registered by experiments.cli).

Options override the ``SALESCAST_*`` environment, which overrides the defaults of
:class:`serving.settings.ServingSettings`. Heavy imports happen inside the command.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer

from experiments.cli_support import fail_cleanly


@contextmanager
def _startup_failures() -> Iterator[None]:
    """A server that cannot start: `error: <reason>` and exit code 1 (uvicorn's own code 3
    would read as a `retrain` verdict of `salescast monitor`)."""
    from serving.server import StartupError
    from serving.store import StoreError

    try:
        yield
    except (StoreError, StartupError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=1) from None


def serve(
    host: Annotated[
        str | None, typer.Option(help="Bind address [default: 127.0.0.1, SALESCAST_HOST].")
    ] = None,
    port: Annotated[
        int | None, typer.Option(min=1, max=65535, help="Port [default: 8000, SALESCAST_PORT].")
    ] = None,
    workers: Annotated[
        int | None, typer.Option(min=1, help="uvicorn worker processes [default: 1].")
    ] = None,
    model_name: Annotated[
        str | None,
        typer.Option("--model-name", help="Registered model [default: the one with the alias]."),
    ] = None,
    alias: Annotated[
        str | None, typer.Option(help="Registry alias to serve [default: champion].")
    ] = None,
    tracking_uri: Annotated[
        str | None, typer.Option(help="MLflow tracking URI [default: sqlite:///mlflow.db].")
    ] = None,
    store_url: Annotated[
        str | None, typer.Option(help="Prediction log database [default: sqlite:///predictions.db].")
    ] = None,
) -> None:
    """Serve the champion: /v1/forecast, /invocations, /v1/actuals, /docs."""
    with fail_cleanly(), _startup_failures():
        from serving.server import open_store, run_server
        from serving.settings import ServingSettings

        given = {
            "host": host, "port": port, "workers": workers, "model_name": model_name,
            "model_alias": alias, "tracking_uri": tracking_uri, "store_url": store_url,
        }
        settings = ServingSettings(**{k: v for k, v in given.items() if v is not None})
        open_store(settings)
        model = settings.model_name or f"the model with @{settings.model_alias}"
        typer.echo(f"serving {model} on http://{settings.host}:{settings.port} (docs: /docs)")
        run_server(settings)


if __name__ == "__main__":  # `python -m experiments.commands_serve`, used by tests and bench
    from experiments.cli_support import setup_logging

    setup_logging()
    typer.run(serve)
