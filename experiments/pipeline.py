"""The data stages of an experiment: raw data (generated if the spec says so) -> TrainingSet.

Shared by the CLI commands, the training job and the demo, so that "load the spec's data"
means one thing everywhere.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from experiments.spec import ExperimentSpec
from features.config import SimulatorConfig
from features.raw import RawData
from features.training_set import TrainingSet

log = logging.getLogger(__name__)


def generate_data(config: SimulatorConfig, out_dir: Path) -> dict[str, Path]:
    """Simulate the retail data set and write it as Parquet files into ``out_dir``."""
    from features.simulator import simulate_retail, write_retail_data

    data = simulate_retail(config)
    paths = write_retail_data(data, Path(out_dir))
    log.info("simulated %d sales lines, %d customers into %s",
             len(data.sales), len(data.customers), out_dir)
    return paths


def ensure_simulated(spec: ExperimentSpec) -> None:
    """Generate the spec's data with its simulator section when the sales file is missing."""
    sales_path = spec.data.sales.path
    if spec.simulator is None or sales_path is None or Path(sales_path).exists():
        return
    log.info("%s is missing: generating it with the spec's simulator settings", sales_path)
    generate_data(spec.simulator, Path(sales_path).parent)


def load_spec_data(spec: ExperimentSpec) -> RawData:
    """Read and validate the spec's raw tables (after simulating them if needed)."""
    from features.sources import load_raw

    ensure_simulated(spec)
    raw = load_raw(spec.data)
    if spec.data.end is not None:
        raw = raw.until(spec.data.end)
        log.info("using sales up to %s (data.end): %d lines", spec.data.end, len(raw.sales))
    return raw


def build_features(spec: ExperimentSpec, raw: RawData | None = None) -> TrainingSet:
    """The spec's leakage-free TrainingSet."""
    from features.build import build_training_set

    raw = raw if raw is not None else load_spec_data(spec)
    return build_training_set(
        raw,
        spec.features,
        freq=spec.frequency,
        horizon=spec.horizon,
        spec_hash=spec.spec_hash(),
        season_length=spec.season_length,
    )


def summarize_training_set(training_set: TrainingSet) -> str:
    """A few lines a person reads after `features build`."""
    meta = training_set.metadata
    features = ", ".join(meta.feature_columns[:8])
    more = len(meta.feature_columns) - 8
    features += f", +{more} more" if more > 0 else ""
    return "\n".join([
        f"series     {meta.n_series}",
        f"periods    {meta.n_periods} ({meta.freq}, {meta.start} .. {meta.end})",
        f"rows       {meta.n_rows}",
        f"features   {len(meta.feature_columns)}: {features}",
        f"horizon    {meta.horizon}",
        _gaps_line(meta.extra.get("gaps") or {}),
        f"digest     {meta.data_digest[:12]}  spec {meta.spec_hash}",
    ])


def _gaps_line(gaps: dict[str, Any]) -> str:
    if not gaps.get("n_gaps"):
        return "gaps       none"
    return (f"gaps       {gaps['n_gaps']} stretches, {gaps['n_cells']} series x periods "
            f"(data.gaps: {gaps['fill']})")
