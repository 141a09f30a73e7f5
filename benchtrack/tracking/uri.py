"""Where the tracking store is, decided without importing mlflow (commands that need no
store must not pay its ~3 s import)."""

from __future__ import annotations

import os
from pathlib import Path

from benchtrack.errors import TrackingError

EMBEDDED_DB = "mlflow.db"
ARTIFACTS_FOLDER = "mlartifacts"
_SCHEMES = ("sqlite", "postgresql", "postgresql+psycopg", "postgresql+psycopg2", "mysql", "http", "https")


def resolve_tracking_uri(option: str | None, cwd: Path | None = None) -> str:
    """--tracking-uri, else MLFLOW_TRACKING_URI, else the embedded SQLite store in cwd."""
    uri = option or os.environ.get("MLFLOW_TRACKING_URI")
    if not uri:
        return f"sqlite:///{(cwd or Path.cwd()).resolve() / EMBEDDED_DB}"
    scheme = uri.split(":", 1)[0] if ":" in uri else ""
    if scheme not in _SCHEMES:
        raise TrackingError(f"unsupported tracking URI {uri!r}: use sqlite:///PATH, postgresql://... or http(s)://HOST:PORT")
    return uri


def sqlite_path(uri: str) -> Path | None:
    """The database file of a sqlite:/// URI (relative or absolute), else None."""
    prefix = "sqlite:///"
    if not uri.startswith(prefix):
        return None
    return Path(uri[len(prefix):]).resolve()


def is_http(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))
