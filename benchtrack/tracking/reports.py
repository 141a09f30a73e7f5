"""Reports on MLflow runs: ``benchtrack/report.{md,html,json}`` on a suite's parent run (and on
watch and profile runs), ``benchtrack/charts/<benchmark>.png`` on benchmark child runs, and
reading the newest report of every suite back (`benchtrack report RUN_ID`, `benchtrack export`)."""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path

from benchtrack.errors import TrackingError
from benchtrack.tracking.store import MlflowStore, _translate_errors, log_artifact_files

REPORT_FOLDER = "benchtrack"
REPORT_JSON = f"{REPORT_FOLDER}/report.json"
CHART_FOLDER = f"{REPORT_FOLDER}/charts"
_REPORTED_TYPES = ("invocation", "watch", "profile")
_TRIES_PER_SUITE = 5  # newer parent runs without a report (a crash, an older benchtrack) are skipped


def log_report(store: MlflowStore, run_id: str, files: Mapping[str, str]) -> None:
    """report.md / report.html / report.json under benchtrack/ of one run."""
    with _translate_errors(f"cannot log the report of run {run_id}"):
        artifact_uri = store.client.get_run(run_id).info.artifact_uri
        log_artifact_files(artifact_uri, REPORT_FOLDER, files)


def log_charts(store: MlflowStore, run_id: str, charts: Mapping[str, bytes]) -> None:
    """PNG files (name -> bytes) under benchtrack/charts/ of one run."""
    with _translate_errors(f"cannot log the charts of run {run_id}"), tempfile.TemporaryDirectory() as tmp:
        files: dict[str, str | Path] = {}
        for name, png in charts.items():
            path = Path(tmp) / name
            path.write_bytes(png)
            files[name] = path
        log_artifact_files(store.client.get_run(run_id).info.artifact_uri, CHART_FOLDER, files)


def load_report(store: MlflowStore, run_id: str) -> str:
    """The report.json of a run; a benchmark child run gives its parent's."""
    tags = store.run_tags(run_id)
    if tags.get("benchtrack.type") == "benchmark":
        run_id = tags.get("mlflow.parentRunId", "")
        tags = store.run_tags(run_id)
    if tags.get("benchtrack.type") not in _REPORTED_TYPES:
        raise TrackingError(f"run {run_id} is not a benchtrack run, watch or profile")
    text = _download_report(store, run_id)
    if text is None:
        raise TrackingError(f"run {run_id} has no {REPORT_JSON} (runs logged before reports existed have none)")
    return text


def latest_reports(store: MlflowStore) -> list[str]:
    """The report.json of the newest parent run of every suite that has one."""
    experiments = store._benchtrack_experiments()
    if not experiments:
        return []
    runs = store._search(experiments, "tags.`benchtrack.type` = 'invocation'", max_results=5000)  # newest first
    tried: dict[str, int] = {}
    found: dict[str, str] = {}
    for run in runs:
        suite = run.data.tags.get("benchtrack.suite", "")
        if suite in found or tried.get(suite, 0) >= _TRIES_PER_SUITE:
            continue
        tried[suite] = tried.get(suite, 0) + 1
        text = _download_report(store, str(run.info.run_id))
        if text is not None:
            found[suite] = text
    return [found[suite] for suite in sorted(found)]


def _download_report(store: MlflowStore, run_id: str) -> str | None:
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    with _translate_errors(f"cannot read the report of run {run_id}"), tempfile.TemporaryDirectory() as tmp:
        repository = get_artifact_repository(store.client.get_run(run_id).info.artifact_uri)
        if not any(item.path == REPORT_JSON for item in repository.list_artifacts(REPORT_FOLDER)):
            return None
        return Path(repository.download_artifacts(REPORT_JSON, tmp)).read_text(encoding="utf-8")
