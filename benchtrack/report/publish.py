"""Leave the report on the MLflow run it describes: every `benchtrack run` suite's parent run gets
``benchtrack/report.{md,html,json}`` and each benchmark child run that changed its distribution
chart; watch and profile runs get their report too.

A report is a view of data already logged, so nothing here may cost a measurement: every
failure becomes a warning line for the caller to print, never an exception.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from benchtrack.report.model import build_report
from benchtrack.report.render import chart_file_name, distribution_charts, report_files

MAX_CHILD_CHARTS = 50  # per suite and run: a chart costs ~0.1 s to draw and ~20 KB to store


def suite_document(document: Mapping[str, Any], suite: str) -> dict[str, Any]:
    """A `benchtrack.run/1` document narrowed to one suite."""
    return {
        **document,
        "suites": [s for s in document["suites"] if s["suite"] == suite],
        "verdicts": {name: v for name, v in (document.get("verdicts") or {}).items() if name == suite},
        "memory_checks": [c for c in document.get("memory_checks") or [] if c["suite"] == suite],
    }


def publish_run_reports(store: Any, document: Mapping[str, Any]) -> list[str]:
    """Report artifacts of every logged suite of a `benchtrack run` document; returns warnings."""
    warnings = []
    for suite in document["suites"]:
        if suite.get("parent_run_id"):
            warning = _guarded(f"the report of suite {suite['suite']}", lambda s=suite: _publish_suite(store, document, s))
            warnings += [warning] if warning else []
    return warnings


def _publish_suite(store: Any, document: Mapping[str, Any], suite: Mapping[str, Any]) -> None:
    from benchtrack.tracking.reports import log_charts, log_report

    report = build_report(suite_document(document, suite["suite"]), f"suite {suite['suite']}")
    charts = distribution_charts(report, MAX_CHILD_CHARTS)
    log_report(store, suite["parent_run_id"], report_files(report, charts))
    child_runs = {b["name"]: b["run_id"] for b in suite["benchmarks"] if b.get("run_id")}
    for row, png in charts:
        run_id = child_runs.get(row["benchmark"])
        if run_id:
            log_charts(store, run_id, {chart_file_name(row): png})


def publish_memory_report(store: Any, run_id: str, document: Mapping[str, Any],
                          timeline: Mapping[str, Any] | None = None) -> str | None:
    """The report of a watch (`benchtrack.watch/1`) or profile (`benchtrack.profile/1`) on its run,
    with the timeline chart when ``timeline`` (`benchtrack.timeline/1`) is given; a warning or None."""

    def publish() -> None:
        from benchtrack.tracking.reports import log_report

        report = build_report(document, f"run {run_id}")
        if timeline is not None and report["memory"] is not None:
            report["memory"]["timeline"] = dict(timeline)
        log_report(store, run_id, report_files(report))

    return _guarded(f"the report of run {run_id}", publish)


def _guarded(what: str, action: Any) -> str | None:
    try:
        action()
    except Exception as exc:  # noqa: BLE001 - a report must never cost the measurement it describes
        text = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        return f"could not log {what}: {text}"
    return None
