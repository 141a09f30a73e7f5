"""Fixtures: benchmark folders in tmp_path, an in-process CLI invoker, real MLflow stores.

Helpers they wrap live in support.py (importable from test modules as `support`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
from support import Invoked, fresh_store_uri, invoke_cli, mlflow_client, sqlite_uri, write_bench_folder

from benchtrack.tracking.store import quiet_mlflow_environment

# The CLI sets these on its first store use; set them before anything here imports mlflow, so
# mlflow configures its logging quietly from the start (no INFO lines, no telemetry).
quiet_mlflow_environment()


@pytest.fixture(autouse=True)
def _no_stray_store(monkeypatch: pytest.MonkeyPatch) -> None:
    # Every test names its store; an inherited MLFLOW_TRACKING_URI must never be written to.
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


@pytest.fixture
def bench_folder(tmp_path: Path) -> Callable[..., Path]:
    """make(files, levels=None, name="bench") -> a benchmark folder under this test's tmp_path
    (see support.write_bench_folder for the levels argument)."""

    def make(files: Mapping[str, str], levels: str | None = None, name: str = "bench") -> Path:
        return write_bench_folder(tmp_path / name, files, levels)

    return make


@pytest.fixture
def invoke() -> Callable[..., Invoked]:
    """invoke(args, env=None) -> Invoked(exit_code, stdout, stderr, exception), in-process."""
    return invoke_cli


@pytest.fixture
def chdir_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Work in tmp_path, so anything written to the working folder stays out of the repo."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(scope="session")
def store_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty MLflow SQLite database whose schema MlflowStore created, once per session."""
    from benchtrack.tracking.store import MlflowStore

    db = tmp_path_factory.mktemp("store-template") / "mlflow.db"
    MlflowStore(sqlite_uri(db))
    return db


@pytest.fixture
def store_uri(store_template: Path, tmp_path: Path) -> str:
    """sqlite:///<tmp_path>/store/mlflow.db: a fresh, real MLflow store for this test."""
    return fresh_store_uri(store_template, tmp_path / "store")


@pytest.fixture(scope="session")
def open_client() -> Callable[[str], Any]:
    """open_client(uri) -> an MlflowClient on that store, to read back what benchtrack logged."""
    return mlflow_client
