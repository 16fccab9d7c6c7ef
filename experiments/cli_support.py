"""Small helpers shared by the CLI commands: logging set-up and clean failures."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import typer

log = logging.getLogger("salescast")


def setup_logging(level: int = logging.INFO) -> None:
    """Log lines to stderr, short and timestamped; quieten chatty libraries."""
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
        force=True,
    )
    for noisy in ("alembic", "mlflow", "urllib3", "matplotlib", "numexpr", "optuna", "httpx"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))


def _user_errors() -> tuple[type[BaseException], ...]:
    """Errors that are the user's to fix: shown as one message, never a traceback."""
    from pydantic import ValidationError

    from experiments.spec import SpecError
    from experiments.stack import StackError

    errors: list[type[BaseException]] = [SpecError, StackError, ValidationError,
                                         FileNotFoundError]
    try:
        from features.validation import DataValidationError
        from serving.store import StoreError

        errors += [DataValidationError, StoreError]
    except ImportError:  # pragma: no cover
        pass
    return tuple(errors)


@contextmanager
def fail_cleanly() -> Iterator[None]:
    """Turn user errors into `error: <message>` on stderr and exit code 1."""
    try:
        yield
    except typer.Exit:
        raise
    except _user_errors() as exc:
        typer.echo(f"error: {describe_error(exc)}", err=True)
        raise typer.Exit(code=1) from None


def describe_error(exc: BaseException) -> str:
    """The message of a user error on one line; a pydantic ValidationError as
    ``where: what`` per error (settings by their ``SALESCAST_*`` variable)."""
    from pydantic import ValidationError

    if not isinstance(exc, ValidationError):
        return str(exc)
    settings = exc.title.endswith("Settings")
    parts = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"])
        if settings and where:
            where = f"SALESCAST_{where.upper()}"
        message = error["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    return f"invalid {'settings' if settings else exc.title}: " + "; ".join(parts)
