"""What the MLflow UI test drives: the real ``mlflow server`` (a subprocess on the session's
store), its REST API as the UI calls it, and headless Chromium rendering UI pages.

Chromium reaches the server as ``http://mlflow-ui.test:<port>``, a name it maps to
127.0.0.1 itself (every other name resolves to nothing: the pages render offline). The
UI opens its AI-assistant panel over the page when the server's host name is local
(localhost / 127.0.0.1); a non-local name keeps the screenshots about the runs. The
server is told to accept that host name and origin.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from experiments.traffic import free_port, wait_for_http
from tests.conftest import MlflowStore

UI_HOST = "mlflow-ui.test"
API = "/api/2.0/mlflow"
SERVER_ENV = {
    "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",  # no huey job runners: starts in seconds
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
}
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--hide-scrollbars", "--window-size=1400,900",
]
INSTALL_HINT = ("headless Chromium is needed to render the MLflow UI: install it with "
                "`apt-get update && apt-get install -y chromium` (Debian/Ubuntu, as root); "
                ".ci/run installs it when missing")


def venv_script(name: str) -> Path:
    """A console script of the interpreter running the tests (the project's .venv)."""
    return Path(sys.executable).with_name(name)


@dataclass
class MlflowServer:
    """A running ``mlflow server`` process group and where it writes its log."""

    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ui_url(self) -> str:
        return f"http://{UI_HOST}:{self.port}"

    def log_tail(self, lines: int = 30) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def wait_ready(self, timeout: float = 90.0) -> None:
        """Poll ``/health`` until it answers OK; fail with the server's log otherwise."""
        wait_for_http(f"{self.api_url}/health", self.process, timeout, self.log_tail)

    def stop(self) -> None:
        """Terminate the whole process group (the CLI, uvicorn), then kill what is left."""
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=15)
        except ProcessLookupError:
            pass


def start_mlflow_server(store: MlflowStore, workdir: Path) -> MlflowServer:
    """Start ``mlflow server`` on the store (returns at once; call ``wait_ready``)."""
    port = free_port()
    command = [
        str(venv_script("mlflow")), "server",
        "--backend-store-uri", store.tracking_uri,
        "--default-artifact-root", store.artifact_location, "--no-serve-artifacts",
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        "--allowed-hosts", f"{UI_HOST}:{port},127.0.0.1:{port}",
        "--cors-allowed-origins", f"http://{UI_HOST}:{port}",
    ]
    log_path = workdir / "mlflow-server.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(command, cwd=workdir, stdout=log_file,
                                   stderr=subprocess.STDOUT, env=os.environ | SERVER_ENV,
                                   start_new_session=True)
    return MlflowServer(process, port, log_path)


@dataclass
class MlflowRest:
    """The tracking server's REST API, as the UI (or ``curl``) calls it."""

    base_url: str

    def get(self, endpoint: str, **params: Any) -> dict[str, Any]:
        url = f"{self.base_url}{API}/{endpoint}"
        return self._json(httpx.get(url, params=params, timeout=30))

    def post(self, endpoint: str, body: dict[str, Any]) -> dict[str, Any]:
        url = f"{self.base_url}{API}/{endpoint}"
        return self._json(httpx.post(url, json=body, timeout=30))

    def download(self, run_id: str, path: str) -> bytes:
        """An artifact's bytes through the endpoint the UI's artifact viewer uses."""
        response = httpx.get(f"{self.base_url}/get-artifact",
                             params={"path": path, "run_uuid": run_id}, timeout=30)
        response.raise_for_status()
        return response.content

    def runs(self, experiment_id: str) -> list[dict[str, Any]]:
        """Every run of the experiment (all pages of ``runs/search``)."""
        runs: list[dict[str, Any]] = []
        body: dict[str, Any] = {"experiment_ids": [experiment_id], "max_results": 1000}
        while True:
            page = self.post("runs/search", body)
            runs += page.get("runs", [])
            if not page.get("next_page_token"):
                return runs
            body["page_token"] = page["next_page_token"]

    def artifacts(self, run_id: str, path: str = "") -> set[str]:
        """Every artifact file of a run (directories listed recursively)."""
        listing = self.get("artifacts/list", run_id=run_id, path=path)
        found: set[str] = set()
        for item in listing.get("files", []):
            found |= self.artifacts(run_id, item["path"]) if item["is_dir"] else {item["path"]}
        return found

    @staticmethod
    def _json(response: httpx.Response) -> dict[str, Any]:
        if response.status_code != 200:
            raise AssertionError(f"{response.request.method} {response.request.url} -> "
                                 f"{response.status_code}: {response.text[:500]}")
        return response.json()


def tags(entity: dict[str, Any]) -> dict[str, str]:
    """A REST entity's ``[{key, value}]`` tag list as a dict (runs carry it under data)."""
    items = entity.get("data", entity).get("tags", [])
    return {t["key"]: t["value"] for t in items}


def chromium_binary() -> str | None:
    """Debian's ``chromium`` (or Ubuntu's ``chromium-browser``) on PATH, if installed."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


@dataclass
class RenderedPage:
    """A UI page after its requests settled: the screenshot and the rendered DOM."""

    url: str
    png: Path
    dom: str


def render_pages(chromium: str, pages: dict[str, str], out_dir: Path,
                 budget_ms: int = 15000) -> dict[str, RenderedPage]:
    """Screenshot ``{name: url}`` pages in parallel Chromiums (one profile each)."""
    running: dict[str, tuple[str, Path, subprocess.Popen[str]]] = {}
    for name, url in pages.items():
        png = out_dir / f"{name}.png"
        command = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={out_dir / f'profile-{name}'}",
                   f"--host-resolver-rules=MAP {UI_HOST} 127.0.0.1, MAP * ~NOTFOUND",
                   f"--virtual-time-budget={budget_ms}", f"--screenshot={png}", "--dump-dom",
                   url]
        running[name] = (url, png, subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            start_new_session=True))
    try:
        return {name: _finish(url, png, process) for name, (url, png, process) in running.items()}
    finally:
        for _, _, process in running.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def _finish(url: str, png: Path, process: subprocess.Popen[str],
            timeout: float = 60) -> RenderedPage:
    try:
        dom, errors = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"chromium did not finish rendering {url} in {timeout:.0f} s") from None
    if process.returncode != 0:
        raise RuntimeError(f"chromium failed on {url} ({process.returncode}):\n{errors[-2000:]}")
    return RenderedPage(url, png, dom)


def grey_spread(png: Path) -> tuple[tuple[int, int], float]:
    """The image's size and the standard deviation of its grey levels (0 = one flat colour)."""
    from PIL import Image, ImageStat  # Pillow comes with matplotlib

    with Image.open(png) as image:
        grey = image.convert("L")
        return grey.size, float(ImageStat.Stat(grey).stddev[0])
