"""The README's MLflow UI screenshots, taken from the link `salescast demo` prints.

    python bench/screenshots.py --demo-dir salescast-demo [--run-demo] [--out docs/img]

Serves the demo's MLflow store (``<demo-dir>/mlflow.db``, artifacts in
``<demo-dir>/mlartifacts``) with the real ``mlflow server`` and renders in headless
Chromium (Debian's ``chromium``: `make browser`) two pages at 1400 x 900:

* ``mlflow-experiment.png``: the link of the demo's latest training run
  (:mod:`training.mlflow_ui`): its family runs side by side, best WAPE first, with wape,
  mase, bias_pct and coverage;
* ``mlflow-model.png``: the ``@champion`` version of the registered model (its tags,
  aliases and the run that trained it).

``--run-demo`` runs `salescast demo --workdir <demo-dir>` first (minutes). The PNGs are
reduced to 256 colours (well under 300 KB each). The server and Chromium helpers are the
MLflow UI test's (``tests/experiments/_browser.py``): the same host-name mapping keeps
MLflow's assistant panel, opened on local host names, out of the pictures.
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the tests' browser helpers (not an installed package)

from tests.conftest import MlflowStore  # noqa: E402
from tests.experiments._browser import (  # noqa: E402
    chromium_binary,
    render_pages,
    start_mlflow_server,
)

log = logging.getLogger("screenshots")
EXPERIMENT = "retail_demo"
MAX_BYTES = 300_000


def latest_training_link(tracking_uri: str, base_url: str) -> tuple[str, str]:
    """The runs-table link of the experiment's newest training parent run, and the page
    of the registered model's ``@champion`` version (``models/<name>/versions/<v>``)."""
    from mlflow import MlflowClient

    from training.mlflow_ui import runs_view_url, view_key

    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    if experiment is None:
        raise SystemExit(f"no experiment {EXPERIMENT!r} in {tracking_uri}: run the demo first")
    parents = client.search_runs([experiment.experiment_id],
                                 "attributes.run_name LIKE '%train as of %'",
                                 order_by=["attributes.start_time DESC"], max_results=1)
    if not parents:
        raise SystemExit("no finished training run yet")
    parent = parents[0]
    log.info("latest training run: %s (%s)", parent.info.run_name, parent.info.run_id)
    name = client.search_registered_models(max_results=1)[0].name
    champion = client.get_model_version_by_alias(name, "champion").version
    key = view_key(parent.info.run_id)
    return (runs_view_url(base_url, experiment.experiment_id, key),
            f"{base_url}/#/models/{name}/versions/{champion}?workflowType=machine_learning")


def shrink(png: Path, target: Path) -> int:
    """Save ``png`` as ``target`` in 256 colours; returns the size in bytes."""
    from PIL import Image

    with Image.open(png) as image:
        image.convert("RGB").quantize(colors=256).save(target, optimize=True)
    return target.stat().st_size


def take(demo_dir: Path, out_dir: Path) -> list[Path]:
    chromium = chromium_binary()
    if chromium is None:
        raise SystemExit("headless Chromium is needed: `make browser`")
    store = MlflowStore(demo_dir, f"sqlite:///{demo_dir / 'mlflow.db'}", "",
                        str(demo_dir / "mlartifacts"))
    with tempfile.TemporaryDirectory() as tmp:
        server = start_mlflow_server(store, Path(tmp))
        try:
            server.wait_ready()
            link, champion = latest_training_link(store.tracking_uri, server.ui_url)
            pages = {"mlflow-experiment": link, "mlflow-model": champion}
            log.info("rendering %s", link)
            rendered = render_pages(chromium, pages, Path(tmp), budget_ms=20000)
        finally:
            server.stop()
        out_dir.mkdir(parents=True, exist_ok=True)
        written = []
        for name, page in rendered.items():
            target = out_dir / f"{name}.png"
            size = shrink(page.png, target)
            log.info("%s: %d KB", target, size // 1000)
            if size > MAX_BYTES:
                log.warning("%s is over %d KB", target, MAX_BYTES // 1000)
            written.append(target)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo-dir", type=Path, default=Path("salescast-demo"))
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    parser.add_argument("--run-demo", action="store_true", help="run `salescast demo` first")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    demo_dir = args.demo_dir.resolve()
    if args.run_demo:
        salescast = Path(sys.executable).with_name("salescast")
        subprocess.run([str(salescast), "demo", "--workdir", str(demo_dir)], check=True)
    for path in take(demo_dir, args.out):
        print(path)


if __name__ == "__main__":
    main()
