"""One `benchtrack.report/1` document in the three formats, with its charts: what `benchtrack
report` prints and what every run, watch and profile leaves on its MLflow run."""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from benchtrack.report.html import render_html
from benchtrack.report.markdown import render_markdown

Format = Literal["md", "html", "json"]
FORMATS: tuple[Format, ...] = ("md", "html", "json")
MAX_DISTRIBUTION_CHARTS = 12  # an HTML report stays a few hundred KB however many benchmarks moved
REPORT_FILES = {"md": "report.md", "html": "report.html", "json": "report.json"}
_CHARTED = ("regression", "improvement", "inconclusive")
_UNSAFE = re.compile(r"[^\w.\-]+")


Charts = list[tuple[Mapping[str, Any], bytes]]


def render(report: Mapping[str, Any], output_format: Format, charts: Charts | None = None) -> str:
    """``charts``: distribution charts already drawn (else drawn here for HTML)."""
    if output_format == "md":
        return render_markdown(report)
    if output_format == "json":
        return json.dumps(report, indent=2, allow_nan=False) + "\n"
    drawn = distribution_charts(report) if charts is None else charts[:MAX_DISTRIBUTION_CHARTS]
    captioned = [(f"{row['benchmark']} {row['metric']}: {_caption(row)}", png) for row, png in drawn]
    return render_html(report, captioned, timeline_chart_png(report))


def report_files(report: Mapping[str, Any], charts: Charts | None = None) -> dict[str, str]:
    """report.md, report.html and report.json (names a contract: the MLflow UI tests read them)."""
    return {REPORT_FILES[fmt]: render(report, fmt, charts) for fmt in FORMATS}


def charted_rows(report: Mapping[str, Any], limit: int = MAX_DISTRIBUTION_CHARTS) -> list[Mapping[str, Any]]:
    """The comparisons worth a distribution chart, worst first: one per benchmark (its worst
    metric) that changed or stayed inconclusive, with per-process centres on both sides."""
    seen: set[tuple[str, str]] = set()
    rows = []
    for row in report["verdicts"]:  # already worst first
        key = (row["suite"], row["benchmark"])
        centres = row.get("process_centres") or {}
        if key in seen or row["verdict"] not in _CHARTED or not centres.get("baseline") or not centres.get("candidate"):
            continue
        seen.add(key)
        rows.append(row)
        if len(rows) >= limit:
            break
    return rows


def distribution_charts(report: Mapping[str, Any], limit: int = MAX_DISTRIBUTION_CHARTS) -> Charts:
    from benchtrack.report.charts import distribution_chart

    return [(row, distribution_chart(row["benchmark"], row["metric"], row["process_centres"]["baseline"],
                                     row["process_centres"]["candidate"], subtitle=_caption(row)))
            for row in charted_rows(report, limit)]


def chart_file_name(row: Mapping[str, Any]) -> str:
    """benchtrack/charts/<name>.png on the benchmark's child run."""
    return f"{_UNSAFE.sub('_', row['benchmark']).strip('_') or 'benchmark'}.png"


def timeline_chart_png(report: Mapping[str, Any]) -> bytes | None:
    """The memory timeline chart of a watch or profile report that carries its timeline."""
    memory = report.get("memory") or {}
    if not memory.get("timeline"):
        return None
    from benchtrack.report.charts import timeline_chart
    from benchtrack.results import timeline_from_dict

    timeline = timeline_from_dict(memory["timeline"])
    with tempfile.TemporaryDirectory(prefix="benchtrack-report-") as tmp:
        path = timeline_chart(timeline, Path(tmp) / "timeline.png", title=f"memory of {timeline.target}")
        return path.read_bytes()


def _caption(row: Mapping[str, Any]) -> str:
    return (f"{row['verdict']} ({row['severity']}): {row['change']:+.1%} "
            f"[{row['ci_low']:+.1%}, {row['ci_high']:+.1%}]")
