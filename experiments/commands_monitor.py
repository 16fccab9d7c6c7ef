"""`salescast monitor`: is the current data still like the reference? ok / watch / retrain.

Two forms of one command (exactly one of them):

    salescast monitor --spec experiments/retail.yaml [--window 28D] [--review-lag K]
                      [--out DIR] [--retrain]
    salescast monitor --reference train_sample.parquet --current last_28_days.parquet

The spec form monitors the served champion from the prediction store (see
:mod:`experiments.monitoring_job`): reports ``monitor-<UTC time>.json/.html`` and
``latest.*`` into ``--out`` (default ``Settings.reports_dir``, which the API serves) and
a run in the MLflow experiment ``<spec>-monitoring``. With ``--retrain`` and the verdict
``retrain`` it trains the spec; the promotion rule decides whether the challenger
replaces the champion, and the command says which happened. The ad-hoc form compares two
Parquet or CSV files directly (no store, no model).

The spec form also reports accuracy by forecast lag and the month / quarter review at the
lag the business plans on (``--review-lag``, default the spec's ``monitoring.review_lag``),
and prints how accuracy decays with lag.

Both print the verdict, its reasons, the drifted columns and the report paths, and exit
with 0 for ok / watch, 3 for retrain (a scheduler acts on it) and 1 for an error (one
``error:`` line). The exit code reports the *verdict*: it is 3 even when ``--retrain``
then trained (and maybe promoted) a new champion, so a scheduler still sees that the
monitored model needed replacing.

Speed: files are read column by column with pyarrow (only the compared columns; numbers
as float32, text as dictionary codes) and nothing heavy is imported before the command
runs; the HTML report's charts are inline SVG, so no plotting library loads at all.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn, TypeVar

import typer

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from experiments.monitoring_job import MonitoringOutcome
    from experiments.settings import Settings
    from experiments.spec import ExperimentSpec
    from serving.monitoring.drift import DriftThresholds
    from serving.monitoring.service import Periods
    from serving.monitoring.verdict import MonitorResult

log = logging.getLogger(__name__)
T = TypeVar("T")

EXIT_RETRAIN = 3
PREDICTION, TARGET = "yhat", "y"
PARQUET_SUFFIXES = {".parquet", ".pq"}


class MonitorInputError(ValueError):
    """Input the user must fix (missing or empty file, no common columns): one line, exit 1."""


# --- reading --------------------------------------------------------------------------


def _check_file(path: Path, label: str) -> None:
    if not path.is_file():
        raise MonitorInputError(f"{label} file not found: {path}")
    if path.stat().st_size == 0:
        raise MonitorInputError(f"{label} file is empty: {path}")


def file_columns(path: Path, label: str) -> list[str]:
    """Column names of a Parquet or CSV file, read from its schema or header only."""
    _check_file(path, label)
    import pyarrow as pa

    try:
        if path.suffix.lower() in PARQUET_SUFFIXES:
            import pyarrow.parquet as pq

            return list(pq.read_schema(path).names)
        with path.open(newline="", encoding="utf-8") as handle:
            import csv

            return next(csv.reader(handle), [])
    except (pa.ArrowException, OSError, UnicodeDecodeError) as exc:
        raise MonitorInputError(f"{label} file {path} cannot be read: {exc}") from None


def _compact(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """Numbers as float32 (enough to compare distributions, half the memory)."""
    import pyarrow as pa

    if pa.types.is_integer(column.type) or pa.types.is_floating(column.type):
        return column.cast(pa.float32(), safe=False)
    if pa.types.is_decimal(column.type):
        return column.cast(pa.float64()).cast(pa.float32())
    return column


def _read_arrow(path: Path, columns: list[str]) -> pa.Table:
    import pyarrow as pa

    if path.suffix.lower() in PARQUET_SUFFIXES:
        import pyarrow.parquet as pq

        schema = pq.read_schema(path)
        text = [c for c in columns if pa.types.is_string(schema.field(c).type)
                or pa.types.is_large_string(schema.field(c).type)]
        source = pq.ParquetFile(path, read_dictionary=text)
        return pa.table({c: _compact(source.read(columns=[c]).column(0)) for c in columns})
    from pyarrow import csv

    options = csv.ConvertOptions(include_columns=columns, auto_dict_encode=True)
    table = csv.read_csv(path, convert_options=options)
    return pa.table({c: _compact(table.column(c)) for c in columns})


def read_frame(path: Path, columns: list[str], label: str) -> pd.DataFrame:
    """The listed columns of a Parquet / CSV file as a compact pandas frame."""
    import pyarrow as pa

    try:
        table = _read_arrow(path, columns)
    except (pa.ArrowException, OSError) as exc:
        raise MonitorInputError(f"{label} file {path} cannot be read: {exc}") from None
    if table.num_rows == 0:
        raise MonitorInputError(f"{label} file has no rows: {path}")
    return table.to_pandas(self_destruct=True, split_blocks=True)


def compared_columns(
    reference: list[str], current: list[str], wanted: list[str] | None,
) -> list[str]:
    """The requested columns (all must exist in both files), or all common ones."""
    if wanted:
        absent = [c for c in wanted if c not in reference or c not in current]
        if absent:
            raise MonitorInputError(f"columns not in both files: {', '.join(absent)}")
        return wanted
    common = [c for c in reference if c in set(current)]
    if not common:
        raise MonitorInputError("the reference and current files have no column in common")
    return common


def load_pair(
    reference: Path, current: Path, columns: list[str] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read the compared columns of both files."""
    names = compared_columns(
        file_columns(reference, "reference"), file_columns(current, "current"), columns,
    )
    return read_frame(reference, names, "reference"), read_frame(current, names, "current")


# --- checking -------------------------------------------------------------------------


def thresholds_with(base: DriftThresholds, **overrides: float | int | None) -> DriftThresholds:
    """``base`` with the options the user gave (None = keep the base value)."""
    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        return replace(base, **given)
    except ValueError as exc:
        raise MonitorInputError(str(exc)) from None


def run_drift_check(
    reference: pd.DataFrame, current: pd.DataFrame, thresholds: DriftThresholds,
    columns: list[str] | None = None, context: dict[str, str] | None = None,
) -> MonitorResult:
    """Feature drift, prediction drift (``yhat``) and target drift (``y``) -> verdict.

    ``yhat`` and ``y``, when both frames have them and ``columns`` does not list them,
    are judged as prediction and target drift rather than as features.
    """
    from serving.monitoring.drift import column_drift, column_kind, dataset_drift
    from serving.monitoring.verdict import build_result

    def comparable(c: str) -> bool:  # else judged (type changed) with the features
        kinds = {column_kind(frame[c]) for frame in (reference, current) if c in frame}
        return len(kinds) == 1 and None not in kinds and c in reference and c in current

    special = {c: comparable(c) and not (columns and c in columns) for c in (PREDICTION, TARGET)}
    names = columns or [c for c in reference.columns if c in current.columns and not special.get(c)]
    drift = dataset_drift(reference, current, thresholds, names)
    if not drift.columns and not any(special.values()):
        raise MonitorInputError(f"no comparable columns (skipped: {', '.join(drift.skipped)})")
    extra = {c: column_drift(reference[c], current[c], thresholds, c)
             for c, use in special.items() if use}
    return build_result(thresholds, drift=drift, prediction_drift=extra.get(PREDICTION),
                        target_drift=extra.get(TARGET), context=context)


def exit_code(result: MonitorResult) -> int:
    """3 when the verdict is retrain (a scheduler acts on it), else 0."""
    return EXIT_RETRAIN if result.verdict.status == "retrain" else 0


def print_summary(result: MonitorResult, paths: tuple[Path, Path | None]) -> None:
    """The verdict, its reasons, the drifted columns and the report files, for people."""
    from serving.monitoring.verdict import describe_score

    typer.echo(f"verdict    {result.verdict.status}")
    if result.verdict.decided_by:
        typer.echo(f"decided by {result.verdict.decided_by}")
    for reason in result.verdict.reasons:
        typer.echo(f"reason     {reason}")
    for cause in result.verdict.explanations:
        typer.echo(f"cause      {cause}")
    columns = [*(result.drift.columns if result.drift else []),
               *(c for c in (result.prediction_drift, result.target_drift) if c is not None)]
    for column in (c for c in columns if c.drifted):
        typer.echo(f"drifted    {column.column:<24} {describe_score(column)}")
    typer.echo(f"json       {paths[0]}")
    if paths[1] is not None:
        typer.echo(f"html       {paths[1]}")


# --- the command ----------------------------------------------------------------------


def _context(
    reference: Path, current: Path, frames: tuple[pd.DataFrame, pd.DataFrame],
) -> dict[str, str]:
    return {
        "reference": f"{reference} ({len(frames[0]):,} rows)",
        "current": f"{current} ({len(frames[1]):,} rows)",
        "generated": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def monitor(
    spec: Annotated[
        Path | None, typer.Option(help="Experiment spec: monitor its served champion.")
    ] = None,
    window: Annotated[
        str | None,
        typer.Option(help="With --spec: judge the predictions logged in the last ... "
                     "(default: the spec's monitoring.window)."),
    ] = None,
    review_lag: Annotated[
        int | None,
        typer.Option(min=1, help="With --spec: the forecast lag of the month / quarter review "
                     "(default: the spec's monitoring.review_lag)."),
    ] = None,
    first: Annotated[
        str | None, typer.Option("--from", help="With --spec: only the forecasts of periods "
                                 "from this date (YYYY-MM-DD) on.")
    ] = None,
    last: Annotated[
        str | None, typer.Option("--to", help="With --spec: only the forecasts of periods "
                                 "up to this date (YYYY-MM-DD).")
    ] = None,
    retrain: Annotated[
        bool, typer.Option("--retrain", help="With --spec: train when the verdict is retrain.")
    ] = False,
    reference: Annotated[
        Path | None, typer.Option(help="Ad-hoc form: reference data (Parquet or CSV).")
    ] = None,
    current: Annotated[
        Path | None, typer.Option(help="Ad-hoc form: current data (Parquet or CSV).")
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Report folder [--spec: settings.reports_dir; else "
                                  "./monitoring].")
    ] = None,
    columns: Annotated[
        str | None, typer.Option(help="Comma-separated columns (default: all common ones).")
    ] = None,
    p_value: Annotated[float | None, typer.Option(help="Test significance [0.05].")] = None,
    distance_threshold: Annotated[
        float | None, typer.Option(help="Wasserstein / Jensen-Shannon distance [0.1].")
    ] = None,
    psi_threshold: Annotated[
        float | None, typer.Option(help="PSI flag, shown in the report only [0.2].")
    ] = None,
    drift_share: Annotated[
        float | None, typer.Option(help="Share of drifted columns meaning dataset drift [0.5].")
    ] = None,
    large_sample: Annotated[
        int | None, typer.Option(help="Above this many values use distances, not tests [1000].")
    ] = None,
    html: Annotated[bool, typer.Option("--html/--no-html", help="Write the HTML report.")] = True,
) -> None:
    """ok / watch / retrain (exit 0 / 0 / 3; errors exit 1), in one of two forms.

    --spec FILE: the served champion's logged predictions and actuals of the last
    --window (and of the periods --from .. --to) vs its training sample and backtest;
    accuracy against the backtest's promise decides, drift explains; reports into --out
    and MLflow;
    --retrain trains when the verdict is retrain (the exit code stays 3: it reports the
    verdict). --reference/--current FILE: compare two data files column by column.
    """
    if spec is not None:
        if reference is not None or current is not None:
            _fail("use either --spec or --reference/--current, not both")
        monitor_spec(spec, window, out, retrain, review_lag, parse_periods(first, last))
        return
    if reference is None or current is None:
        _fail("give --spec FILE, or both --reference FILE and --current FILE")
    thresholds = {"p_value": p_value, "distance_threshold": distance_threshold,
                  "psi_threshold": psi_threshold, "drift_share": drift_share,
                  "large_sample": large_sample}
    monitor_files(reference, current, out or Path("monitoring"), columns, thresholds, html)


def _fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code=1)


def monitor_files(
    reference: Path, current: Path, out: Path, columns: str | None,
    overrides: dict[str, float | int | None], html: bool,
) -> None:
    """The ad-hoc form: two files in, the verdict printed, the report written, exit code."""
    from serving.monitoring.drift import DriftThresholds
    from serving.monitoring.report import write_report

    started = time.perf_counter()
    try:
        thresholds = thresholds_with(DriftThresholds(), **overrides)
        wanted = [c.strip() for c in columns.split(",") if c.strip()] if columns else None
        frames = load_pair(reference, current, wanted)
        log.debug("read both files in %.2f s", time.perf_counter() - started)
        result = run_drift_check(*frames, thresholds, wanted, _context(reference, current, frames))
    except MonitorInputError as exc:
        _fail(str(exc))
    paths = write_report(result, out, include_html=html)
    log.debug("monitor finished in %.2f s", time.perf_counter() - started)
    print_summary(result, paths)
    raise typer.Exit(code=exit_code(result))


def parse_periods(first: str | None, last: str | None) -> Periods:
    """``--from`` / ``--to`` as timestamps; a date that is not YYYY-MM-DD fails (exit 1)."""
    import pandas as pd

    def parse(text: str | None, option: str) -> pd.Timestamp | None:
        if text is None:
            return None
        try:
            return pd.Timestamp(date.fromisoformat(text))
        except ValueError:
            _fail(f"{option} {text!r} is not a date (YYYY-MM-DD)")

    periods = parse(first, "--from"), parse(last, "--to")
    if periods[0] is not None and periods[1] is not None and periods[0] > periods[1]:
        _fail(f"--from {first} is after --to {last}")
    return periods


def monitor_spec(spec_path: Path, window: str | None, out: Path | None, retrain: bool,
                 review_lag: int | None = None, periods: Periods = (None, None)) -> None:
    """The store-backed form (see :mod:`experiments.monitoring_job`), then exit 0 / 3 / 1."""
    from experiments.cli_support import fail_cleanly
    from experiments.settings import Settings
    from experiments.spec import load_spec

    with fail_cleanly():
        spec, settings = load_spec(spec_path), Settings()
    outcome = _run_or_fail(lambda: _monitor_and_print(spec, settings, window, out, review_lag,
                                                       periods))
    if retrain and outcome.verdict == "retrain":
        _run_or_fail(lambda: _retrain(spec, settings, outcome.model_version))
    elif retrain:
        typer.echo(f"retrain    not needed (verdict {outcome.verdict})")
    raise typer.Exit(code=exit_code(outcome.result))


def _run_or_fail(step: Callable[[], T]) -> T:
    """Run a step of the spec form; any failure is one `error:` line and exit code 1."""
    from experiments.cli_support import fail_cleanly
    from experiments.monitoring_job import MonitoringError
    from serving.monitoring.service import NoPredictionsError

    with fail_cleanly():
        try:
            return step()
        except (MonitoringError, NoPredictionsError) as exc:
            _fail(str(exc))
        except (typer.Exit, KeyboardInterrupt):
            raise
        except Exception as exc:  # MLflow, the store, training: one line, details in the log
            log.debug("monitoring failed", exc_info=True)
            _fail(f"{type(exc).__name__}: {exc}".splitlines()[0])


def _monitor_and_print(spec: ExperimentSpec, settings: Settings, window: str | None,
                       out: Path | None, review_lag: int | None = None,
                       periods: Periods = (None, None)) -> MonitoringOutcome:
    from experiments.monitoring_job import run_monitoring

    outcome = run_monitoring(spec, settings, window=window, out=out, review_lag=review_lag,
                             periods=periods)
    typer.echo(f"model      {outcome.model_name} v{outcome.model_version}")
    if outcome.result.lag_accuracy is not None:
        typer.echo(f"by lag     {outcome.result.lag_accuracy.summary}")
    print_summary(outcome.result, (outcome.json_path, outcome.html_path))
    typer.echo(f"mlflow     run {outcome.run_id} in experiment {spec.name}-monitoring")
    return outcome


def _retrain(spec: ExperimentSpec, settings: Settings, before: str) -> None:
    from experiments.monitoring_job import describe_retrain, retrain

    typer.echo(f"retrain    training {spec.name} (the promotion rule decides)")
    training = retrain(spec, settings)
    typer.echo(f"retrain    {describe_retrain(training, before)}")
