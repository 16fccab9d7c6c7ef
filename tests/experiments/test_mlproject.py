"""MLproject: every salescast step is an entry point whose command and typed parameters
match the `salescast` CLI, and entry points really run through ``mlflow run``."""

from __future__ import annotations

import json
import os
import re
import shlex
import stat
import subprocess
import sys
import typing
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import typer
import yaml

from experiments.cli import app
from tests.conftest import MlflowStore

REPO = Path(__file__).resolve().parents[2]
STEPS = ["generate", "features", "train", "promote", "serve", "monitor", "demo"]
PARAMETER_TYPES = {"string", "float", "path", "uri"}
PLACEHOLDER = re.compile(r"(?<!\{)\{(\w+)\}(?!\})")  # {name}, not the shell's ${{VAR}}
FLAG_VALUE = re.compile(r"(--[\w-]+)\s+\{(\w+)\}")
INHERITED_RUN_CONTEXT = {"MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_RUN_ID",
                         "SALESCAST_TRACKING_URI"}


def _entry_points() -> dict[str, dict[str, Any]]:
    return yaml.safe_load((REPO / "MLproject").read_text())["entry_points"]


def _salescast_call(command: str) -> list[str]:
    """The `salescast ...` words of an entry point's command, placeholders filled."""
    words = shlex.split(PLACEHOLDER.sub("VALUE", command))
    return words[words.index("salescast") + 1:]


def _cli_command(words: list[str]) -> tuple[Any, list[str]]:
    """The (sub)command of the `salescast` app the words call, and the rest of the words
    (Typer's command objects: ``commands``, ``params`` with ``opts``, ``callback``)."""
    command: Any = typer.main.get_command(app)
    while hasattr(command, "commands") and words and not words[0].startswith("-"):
        assert words[0] in command.commands, f"salescast has no command {words[0]!r}"
        command, words = command.commands[words[0]], words[1:]
    return command, words


def _options(command: Any) -> dict[str, Any]:
    return {name: p for p in command.params for name in (*p.opts, *p.secondary_opts)}


def _takes_int(command: Any, option: Any) -> bool:
    hint = typing.get_type_hints(command.callback).get(option.name)
    return hint is int or int in typing.get_args(hint)


def test_every_step_is_an_entry_point_with_typed_parameters() -> None:
    entry_points = _entry_points()
    assert set(STEPS) <= set(entry_points)
    for name, entry in entry_points.items():
        parameters = entry.get("parameters", {})
        used = set(PLACEHOLDER.findall(entry["command"]))
        assert used == set(parameters), f"{name}: placeholders {used} vs {set(parameters)}"
        for parameter, spec in parameters.items():
            assert spec["type"] in PARAMETER_TYPES, f"{name}.{parameter}: {spec['type']}"


@pytest.mark.parametrize("entry_point", sorted(_entry_points()))
def test_entry_point_options_exist_on_the_salescast_command(entry_point: str) -> None:
    entry = _entry_points()[entry_point]
    command, words = _cli_command(_salescast_call(entry["command"]))
    options = _options(command)
    for word in words:
        assert not word.startswith("--") or word in options, (
            f"{entry_point}: `salescast {command.name}` has no option {word}")
    for option in command.params:
        if option.required:
            assert set(option.opts) & set(words), f"{entry_point}: {option.opts} is required"
    for flag, parameter in FLAG_VALUE.findall(entry["command"]):
        if _takes_int(command, options[flag]):
            # a `float` parameter would reach the option as "42.0"
            assert entry["parameters"][parameter]["type"] == "string", f"{entry_point}: {flag}"


def _mlflow_env(store: MlflowStore, bin_dirs: list[Path]) -> dict[str, str]:
    """The session store and the given bin dirs first on PATH; no run or experiment left
    over from this process (``mlflow.set_experiment`` exports MLFLOW_EXPERIMENT_ID)."""
    path = os.pathsep.join([*map(str, bin_dirs), os.environ.get("PATH", "")])
    env = {k: v for k, v in os.environ.items() if k not in INHERITED_RUN_CONTEXT}
    return env | {"MLFLOW_TRACKING_URI": store.tracking_uri, "PATH": path,
                  "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}


def _mlflow_run(entry_point: str, params: dict[str, str], experiment: str,
                env: dict[str, str], cwd: Path) -> tuple[str, str]:
    """``mlflow run`` the repo's entry point with the local environment: the project
    run's id and what the command printed."""
    mlflow = Path(sys.executable).with_name("mlflow")
    command = [str(mlflow), "run", str(REPO), "-e", entry_point, "--env-manager", "local",
               "--experiment-name", experiment]
    for key, value in params.items():
        command += ["-P", f"{key}={value}"]
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, f"mlflow run -e {entry_point} failed:\n{done.stderr[-3000:]}"
    found = re.search(r"Run \(ID '([0-9a-f]+)'\) succeeded", done.stderr)
    assert found, done.stderr[-2000:]
    return found.group(1), done.stdout


@pytest.fixture(scope="module")
def venv_bin() -> Path:
    bin_dir = Path(sys.executable).parent
    if not (bin_dir / "salescast").exists():
        pytest.fail(f"no salescast command in {bin_dir}: run `pip install -e '.[dev]'` "
                    "(make install) so `mlflow run` can call it", pytrace=False)
    return bin_dir


@pytest.mark.slow
def test_features_runs_through_mlflow_run(tiny_spec, mlflow_store: MlflowStore,
                                          venv_bin: Path, tmp_path: Path) -> None:
    from mlflow import MlflowClient

    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(tiny_spec("mlproject_features").model_dump(mode="json")))
    out = tmp_path / "ts.parquet"
    env = _mlflow_env(mlflow_store, [venv_bin])
    run_id, _ = _mlflow_run("features", {"spec": str(spec), "out": str(out)},
                            "mlproject_features", env, tmp_path)
    panel = pd.read_parquet(out)
    assert {"series_id", "ds", "y"} <= set(panel.columns)
    assert panel["series_id"].nunique() == 2 * 2  # the tiny spec's stores x categories
    run = MlflowClient(mlflow_store.tracking_uri).get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags["mlflow.project.entryPoint"] == "features"
    assert run.data.params["out"] == str(out)


FAKE_SALESCAST = """#!{python}
import json, os, sys
keys = ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID", "SALESCAST_TRACKING_URI")
env = {{k: os.environ.get(k) for k in keys}}
print("CALLED " + json.dumps({{"argv": sys.argv[1:], "env": env}}))
"""


def test_train_gets_the_mlflow_run_store_but_opens_its_own_runs(
    mlflow_store: MlflowStore, venv_bin: Path, tmp_path: Path,
) -> None:
    """The command line `mlflow run -e train` hands to salescast (a stand-in prints it):
    the tracking store of the project run, and no run to continue (see MLproject)."""
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    script = fake_bin / "salescast"
    script.write_text(FAKE_SALESCAST.format(python=sys.executable))
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    spec = REPO / "experiments" / "retail_demo.yaml"
    env = _mlflow_env(mlflow_store, [fake_bin, venv_bin])
    _, printed = _mlflow_run("train", {"spec": str(spec)}, "mlproject_train", env, tmp_path)
    called = json.loads(printed.split("CALLED ", 1)[1])
    assert called["argv"] == ["train", "--spec", str(spec), "--families", ""]
    assert called["env"] == {"MLFLOW_RUN_ID": None, "MLFLOW_EXPERIMENT_ID": None,
                             "SALESCAST_TRACKING_URI": mlflow_store.tracking_uri}
