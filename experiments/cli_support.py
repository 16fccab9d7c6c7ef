"""Small helpers shared by the CLI commands: logging set-up and clean failures.

**Quiet tools.** A command prints its own lines (and salescast's log lines) only. Without
``--verbose`` the libraries are told to keep quiet before they are imported: MLflow's
loggers at ERROR (``MLFLOW_LOGGING_LEVEL``, read when mlflow is imported; alembic follows
it) and no artifact download bars (``MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR``); the other
chatty loggers at ERROR; Python warnings ignored except those salescast's own code raises
(deprecations ignored whoever raises them), in this process and (``PYTHONWARNINGS``) in
the processes it starts. A variable already set in the environment wins. ``--verbose``
puts the libraries at INFO (MLflow's own default) with their warnings, and salescast at
DEBUG. Salescast's own progress display (the per-family tuning bar on a terminal) is not
a library's and stays.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import typer

log = logging.getLogger("salescast")

LIBRARY_LOGGERS = ("alembic", "mlflow", "urllib3", "matplotlib", "numexpr", "optuna", "httpx",
                   "lightgbm", "sqlalchemy", "huey", "distributed", "fsspec")
VERBOSE_LIBRARIES = ("mlflow", "optuna", "alembic", "lightgbm")  # INFO with --verbose
OWN_PACKAGES = r"(features|training|serving|experiments|bench)(\.|$)"
QUIET_ENV = {
    "MLFLOW_LOGGING_LEVEL": "ERROR",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    "PYTHONWARNINGS": "ignore",
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",  # a server's "View run ... at" lines
}


def setup_logging(level: int = logging.INFO) -> None:
    """Log lines to stderr, short and timestamped; chatty libraries at WARNING (a CLI
    command quietens them further, :func:`library_output`)."""
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
        force=True,
    )
    for name in LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(max(level, logging.WARNING))


@contextmanager
def library_output(verbose: bool) -> Iterator[None]:
    """For the duration of a command: the libraries quiet, or with ``verbose`` at their
    own INFO level (see the module docstring); the process's environment, logger levels
    and warning filters are put back afterwards (commands run in-process in the tests)."""
    saved_env = {name: os.environ.get(name) for name in QUIET_ENV}
    saved_levels = {name: logging.getLogger(name).level for name in LIBRARY_LOGGERS}
    with warnings.catch_warnings():
        _show_libraries() if verbose else _quiet_libraries()
        try:
            yield
        finally:
            for name, value in saved_env.items():
                _restore_env(name, value)
            for name, level in saved_levels.items():
                logging.getLogger(name).setLevel(level)


def _quiet_libraries() -> None:
    for name, value in QUIET_ENV.items():
        os.environ.setdefault(name, value)
    for name in LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.simplefilter("ignore")
    warnings.filterwarnings("default", module=OWN_PACKAGES)
    for category in (DeprecationWarning, PendingDeprecationWarning, FutureWarning):
        warnings.filterwarnings("ignore", category=category)  # for developers: see -v


def _show_libraries() -> None:
    for name in VERBOSE_LIBRARIES:  # not sqlalchemy: at INFO it echoes every statement
        logging.getLogger(name).setLevel(logging.INFO)
    warnings.simplefilter("default")


def _restore_env(name: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


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
