"""Where the champion comes from: the MLflow Model Registry, and a local copy of it.

``models:/<name>@<alias>`` is resolved to a version, whose model directory is downloaded
once into ``local_model_dir/versions/<version>`` with a small ``manifest.json`` (model name,
version, run id, alias) naming the current one. When the tracking server is unreachable
the API starts from that copy. The registry is never created or migrated by serving: an
``http(s)`` server that refuses a TCP connection, or a SQLite file that does not exist,
counts as unreachable at once instead of after minutes of retries.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
import threading
from contextlib import closing
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from serving.settings import ServingSettings

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
KEEP_VERSIONS = 3


class RegistryUnavailable(RuntimeError):
    """The tracking server / registry cannot be reached, or does not name a champion."""


@dataclass(frozen=True)
class ChampionVersion:
    """A registered model version and the alias it was found under."""

    model_name: str
    version: str
    run_id: str | None
    alias: str


_USERINFO = re.compile(r"(?<=://)[^/@\s]+@")


def redact(text: str) -> str:
    """``text`` with URL credentials (``scheme://user:password@host``) masked: registry
    errors reach the log and the unauthenticated /readyz."""
    return _USERINFO.sub("***@", text)


def _probe_uri(uri: str, timeout: float) -> None:
    """Fail fast when ``uri`` cannot be served: an http(s) server that refuses or does not
    answer within ``timeout``, a SQLite file that is missing or holds no MLflow registry."""
    parsed = urlparse(uri)
    if parsed.scheme in {"http", "https"}:
        _probe_http(uri, timeout)
    elif parsed.scheme == "sqlite":
        database = uri.split(":///", 1)[-1]
        if database and database != ":memory:":
            _probe_sqlite(Path(database))


def _probe_http(uri: str, timeout: float) -> None:
    """One GET of ``/health`` with ``timeout`` for connecting and for the answer: any HTTP
    answer (even 404 from a server without that route) means the server is there."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout):
            return
    except urllib.error.HTTPError:
        return
    except (OSError, ValueError) as exc:
        raise RegistryUnavailable(f"tracking server {redact(uri)} unreachable or not "
                                  f"answering within {timeout:g} s: {exc}") from exc


def _probe_sqlite(database: Path) -> None:
    """Serving never creates or migrates the registry: a missing file, or one without
    MLflow's tables (an empty file), is no registry, and MLflow must not initialise it."""
    import sqlite3

    if not database.is_file():
        raise RegistryUnavailable(f"no MLflow database at {database}")
    try:
        with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
            found = db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' "
                               "AND name = 'registered_models'").fetchone()
    except sqlite3.Error as exc:
        raise RegistryUnavailable(f"{database} is not a readable MLflow database: {exc}") from exc
    if found is None:
        raise RegistryUnavailable(f"{database} holds no MLflow registry (serving never "
                                  "creates one: train a model into it first)")


def _bound_mlflow_http() -> None:
    """MLflow's own HTTP calls (resolve, download, poll) give up in seconds, not minutes of
    retries, unless the user set these variables: a hung server then costs one poll."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "15")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")


class ModelSource:
    """Resolves the champion alias in the registry and keeps the local copy up to date."""

    def __init__(self, settings: ServingSettings) -> None:
        self.settings = settings
        self.local_dir = Path(settings.local_model_dir)
        _bound_mlflow_http()

    def _client(self) -> Any:
        for uri in filter(None, [self.settings.tracking_uri, self.settings.registry_uri]):
            _probe_uri(uri, self.settings.connect_timeout)
        from mlflow import MlflowClient

        return MlflowClient(self.settings.tracking_uri, self._registry_uri)

    @property
    def _registry_uri(self) -> str:
        """Explicit, so MLflow's process-wide default registry never leaks in."""
        return self.settings.registry_uri or self.settings.tracking_uri

    def resolve(self) -> ChampionVersion:
        """The version the alias points at now; raises RegistryUnavailable if unknown."""
        alias = self.settings.model_alias
        try:
            client = self._client()
            name = self.settings.model_name or self._only_model_with_alias(client, alias)
            version = client.get_model_version_by_alias(name, alias)
        except RegistryUnavailable:
            raise
        except Exception as exc:  # MLflow raises MlflowException, OSError, SQL errors...
            raise RegistryUnavailable(redact(f"cannot resolve @{alias}: {exc}")) from exc
        return ChampionVersion(name, str(version.version), version.run_id, alias)

    @staticmethod
    def _only_model_with_alias(client: Any, alias: str) -> str:
        names = [m.name for m in client.search_registered_models() if alias in (m.aliases or {})]
        if len(names) != 1:
            raise RegistryUnavailable(
                f"{len(names)} registered models carry @{alias} ({names}); "
                "set SALESCAST_MODEL_NAME or --model-name"
            )
        return names[0]

    def fetch(self, champion: ChampionVersion) -> Path:
        """Local directory of ``champion``'s model, downloading it unless already there."""
        target = self._version_dir(champion)
        if not (target / "MLmodel").is_file():
            self._download(champion, target)
        self._write_manifest(champion, target)
        self._prune(keep=target)
        return target

    def local_copy(self) -> tuple[ChampionVersion, Path] | None:
        """The champion saved by the last successful fetch, if its files are still there."""
        try:
            manifest = json.loads((self.local_dir / MANIFEST).read_text())
            path = self.local_dir / manifest.pop("path")
            names = [field.name for field in fields(ChampionVersion)]
            champion = ChampionVersion(**{name: manifest[name] for name in names})
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("no usable local copy of the champion in %s: %s", self.local_dir, exc)
            return None
        return (champion, path) if (path / "MLmodel").is_file() else None

    def _version_dir(self, champion: ChampionVersion) -> Path:
        safe_name = "".join(c if c.isalnum() or c in "-_." else "_" for c in champion.model_name)
        return self.local_dir / "versions" / f"{safe_name}-v{champion.version}"

    def _download(self, champion: ChampionVersion, target: Path) -> None:
        """Download the version's files (by their storage URI: ``models:/`` URIs make MLflow
        read its process-wide registry URI instead of ours)."""
        import mlflow.artifacts

        source = self._client().get_model_version_download_uri(
            champion.model_name, champion.version
        )
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".download-", dir=target.parent))
        try:
            downloaded = mlflow.artifacts.download_artifacts(
                artifact_uri=source, dst_path=str(staging),
                tracking_uri=self.settings.tracking_uri, registry_uri=self._registry_uri,
            )
            Path(downloaded).rename(target)  # atomic; another worker may have won the race
        except OSError:
            if not (target / "MLmodel").is_file():
                raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        log.info("downloaded %s v%s to %s", champion.model_name, champion.version, target)

    def _write_manifest(self, champion: ChampionVersion, target: Path) -> None:
        manifest = asdict(champion) | {
            "path": str(target.relative_to(self.local_dir)),
            "saved_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        staging = self.local_dir / f".{MANIFEST}.{os.getpid()}-{threading.get_ident()}.tmp"
        staging.write_text(json.dumps(manifest, indent=2))
        staging.replace(self.local_dir / MANIFEST)

    def _prune(self, keep: Path) -> None:
        """Keep the newest few version directories (others may still be loading older ones)."""
        versions = sorted(
            (p for p in (self.local_dir / "versions").iterdir() if p.is_dir() and p != keep
             and not p.name.startswith(".")),
            key=lambda p: p.stat().st_mtime,
        )
        for old in versions[: max(0, len(versions) - (KEEP_VERSIONS - 1))]:
            shutil.rmtree(old, ignore_errors=True)
