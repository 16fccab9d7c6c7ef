"""Monitor calibration: does `salescast monitor` say `retrain` when, and only when, the
business changed? (issue 11)

For each simulator seed the demo's spec is trained as of 2024-07-14 and served to the
demo's application for 16 weeks, without a regime shift (arm ``quiet``) and with the
demo's shift from week 9 (arm ``shift``); the monitor judges weeks 1-8 and 9-16
(:mod:`experiments.calibration`). Targets: quiet, ``retrain`` in <= 5 % of verdicts (and
``ok`` in most); shift weeks 9-16, ``retrain`` in >= 95 %.

    python bench/monitor_calibration.py --seeds 20 [--root bench-out/calibration]

Prepared seeds are kept under ``--root`` (delete it to start over); a second run only
re-judges them, so a change of the monitor is re-measured in seconds per seed.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # not bench/serving.py

from experiments.calibration import calibrate, prepare_seed, rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20, help="how many seeds (1..N)")
    parser.add_argument("--first-seed", type=int, default=1)
    parser.add_argument("--root", type=Path, default=Path("bench-out/calibration"))
    parser.add_argument("--trials", type=int, default=None,
                        help="trials of every tuned family (default: the demo spec's)")
    parser.add_argument("--prepare-only", action="store_true",
                        help="train and serve the seeds, judge nothing (a later run judges)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    overrides = None
    if args.trials is not None:
        overrides = {"models": {f: {"trials": args.trials} for f in ("regression", "lightgbm")}}
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    started = time.perf_counter()
    if args.prepare_only:
        for seed in tqdm(seeds, desc="prepare"):
            prepare_seed(seed, args.root, overrides)
        print(f"prepared {len(seeds)} seeds in {time.perf_counter() - started:.0f} s")
        return
    with tqdm(total=len(seeds), desc="seeds") as bar:
        judgements = calibrate(seeds, args.root, overrides, progress=lambda _: bar.update())
    elapsed = time.perf_counter() - started
    table = rates(judgements)
    print(f"monitor calibration: {len(seeds)} seeds in {elapsed:.0f} s")
    print(table.round(3).to_string())
    print("\nper seed (verdict, WAPE / promise, drifted features):")
    for j in judgements:
        print(f"  seed {j.seed:3d} {j.arm:5s} weeks {j.weeks:5s} {j.verdict:8s} "
              f"wape x{j.wape_ratio:.2f} drifted {j.n_drifted}  | {j.reasons[0][:110]}")
    out = args.root / "judgements.json"
    out.write_text(json.dumps([j.__dict__ for j in judgements], indent=1, default=str))
    print(f"\nall reasons: {out}")


if __name__ == "__main__":
    main()
