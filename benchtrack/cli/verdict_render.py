"""Verdict tables and the `benchtrack.compare/1` JSON document."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from benchtrack import results as r
from benchtrack.analysis.compare import Comparison
from benchtrack.config import Level
from benchtrack.probes.instructions import BLIND_SPOTS
from benchtrack.units import format_bytes, format_seconds
from benchtrack.verdicts import PromotionDecision, Report
from benchtrack.verdicts.judging import MemoryCheck

COMPARE_SCHEMA = "benchtrack.compare/1"
_COLOURS = {"regression": "red", "improvement": "green", "unchanged": "white", "inconclusive": "yellow"}


def compare_document(report: Report, level: Level, baseline: str, candidate: str,
                     promotions: Mapping[str, PromotionDecision] | None = None) -> dict[str, Any]:
    failing = {(c.benchmark, c.metric) for c in report.failing(level)}
    return {
        "schema": COMPARE_SCHEMA,
        "baseline": baseline,
        "candidate": candidate,
        "level": level.name,
        "fail_on": level.fail_on,
        "comparisons": [_comparison_entry(c, (c.benchmark, c.metric) in failing, report) for c in report.comparisons],
        "anomalies": {
            # too little history gives an infinite threshold, which JSON cannot hold: null then
            name: {"anomalous": a.anomalous, "method": a.method, "score": a.score,
                   "threshold": a.threshold if math.isfinite(a.threshold) else None,
                   "history_size": a.history_size, "reasons": list(a.reasons)}
            for name, a in report.anomalies.items()
        },
        "skipped": dict(report.skipped),
        "only_in_baseline": list(report.only_in_baseline),
        "only_in_candidate": list(report.only_in_candidate),
        "promotions": {name: {"promoted": d.promote, "reason": d.reason} for name, d in (promotions or {}).items()},
        "suite_shifts": [{"metric": s.metric, "change": s.change, "benchmarks": s.benchmarks,
                          "moved_together": s.moved_together, "suite_wide": s.suite_wide} for s in report.shifts],
        "contention": {name: {"baseline": sides[0].as_dict(), "candidate": sides[1].as_dict()}
                       for name, sides in report.contention.items() if sides[0].contended or sides[1].contended},
        "undecided": [{"benchmark": c.benchmark, "metric": c.metric, "change": c.change, "ci_low": c.ci_low,
                       "ci_high": c.ci_high} for c in report.undecided(level)],
        "summary": {**report.counts(), "failed": bool(failing)},
        **({"instructions_blind_spots": BLIND_SPOTS} if any(c.metric == r.INSTRUCTIONS for c in report.comparisons) else {}),
    }


def _comparison_entry(c: Comparison, fails: bool, report: Report) -> dict[str, Any]:
    anomaly = report.anomalies.get(c.benchmark)
    return {
        "benchmark": c.benchmark,
        "metric": c.metric,
        "verdict": c.verdict,
        "severity": c.severity,
        "change": c.change,
        "ci_low": c.ci_low,
        "ci_high": c.ci_high,
        "p_value": c.p_value,
        "p_adjusted": c.p_adjusted,
        "baseline": c.baseline_centre,
        "candidate": c.candidate_centre,
        "absolute_change": c.absolute_change,
        "spread_source": c.spread_source,
        "processes": [c.baseline_processes, c.candidate_processes],
        "process_centres": _process_centres(report, c),
        "degrees_of_freedom": c.df if math.isfinite(c.df) else None,
        "suite_shift_removed": c.shift,
        "notes": list(c.notes),
        "anomalous": bool(anomaly and anomaly.anomalous),
        "fails": fails,
    }


def _process_centres(report: Report, c: Comparison) -> dict[str, list[float]]:
    """Each worker process's centre on both sides (index = process), for distribution charts."""
    base, cand = report.process_centres.get((c.benchmark, c.metric), ((), ()))
    return {"baseline": list(base), "candidate": list(cand)}


def _value(metric: str, value: float) -> str:
    if metric.endswith("_bytes"):
        return format_bytes(value)
    if metric.endswith("_s"):
        return format_seconds(value)
    if metric == r.INSTRUCTIONS:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def _shown(c: Comparison) -> bool:
    """Every benchmark's wall time; other metrics only when they moved."""
    return c.metric in ("wall_s", r.INSTRUCTIONS) or c.verdict in ("regression", "improvement") or c.undecided_slowdown


def print_verdicts(report: Report, level: Level, console: Console, title: str,
                   promotions: Mapping[str, PromotionDecision] | None = None) -> None:
    if not report.comparisons:
        console.print(escape(f"{title}: nothing to compare"), highlight=False)
        _print_notes(report, console, promotions)
        return
    table = Table(title=title)
    for column, justify in (("benchmark", "left"), ("metric", "left"), ("baseline", "right"), ("candidate", "right"),
                            ("change [CI]", "right"), ("p adj", "right"), ("verdict", "left"), ("severity", "left")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    failing = {(c.benchmark, c.metric) for c in report.failing(level)}
    for c in report.comparisons:
        if not _shown(c):
            continue
        colour = _COLOURS[c.verdict]
        anomaly = report.anomalies.get(c.benchmark)
        marks = (" [magenta](anomalous)[/]" if anomaly and anomaly.anomalous and c.metric == "wall_s" else "") + (
            " [yellow](contended)[/]" if c.metric == "wall_s" and report.contended(c.benchmark) else "") + (
            " [bold red]FAIL[/]" if (c.benchmark, c.metric) in failing else "")
        table.add_row(
            escape(c.benchmark), c.metric, _value(c.metric, c.baseline_centre), _value(c.metric, c.candidate_centre),
            f"{c.change:+.1%} [{c.ci_low:+.1%}, {c.ci_high:+.1%}]", f"{c.p_adjusted:.2g}",
            f"[{colour}]{c.verdict}[/]{marks}", c.severity,
        )
    console.print(table)
    counts = report.counts()
    hidden = sum(1 for c in report.comparisons if not _shown(c))
    note = f"; {hidden} unchanged or inconclusive results of other metrics than wall time not listed" if hidden else ""
    console.print(", ".join(f"{n} {v}" for v, n in counts.items()) + f" (fail on: {level.fail_on}){note}", highlight=False)
    _print_notes(report, console, promotions)


def _print_notes(report: Report, console: Console, promotions: Mapping[str, PromotionDecision] | None) -> None:
    if any(c.metric == r.INSTRUCTIONS for c in report.comparisons):
        console.print(escape(BLIND_SPOTS), highlight=False)
    for shift in report.shifts:
        if shift.worth_a_line:
            console.print(f"[yellow]{escape(shift.describe())}[/]", highlight=False)
    for c in report.comparisons:
        for note in c.notes if _shown(c) or c.undecided_slowdown else ():
            if "under contention" in note or note.startswith("undecided"):
                console.print(escape(f"{c.benchmark} {c.metric}: {note}"), highlight=False)
    for name, anomaly in report.anomalies.items():
        if anomaly.anomalous:
            console.print(escape(f"anomalous: {name} ({anomaly.method}): " + "; ".join(anomaly.reasons)), highlight=False)
    for name, reason in report.skipped.items():
        console.print(escape(f"not compared: {name}: {reason}"), highlight=False)
    for name, decision in (promotions or {}).items():
        if decision.promote:
            console.print(escape(f"promoted to baseline: {name} ({decision.reason})"), highlight=False)


def print_memory_checks(checks: Sequence[MemoryCheck], level: Level, console: Console) -> None:
    if not checks:
        return
    table = Table(title="memory and GC checks")
    for column in ("benchmark", "check", "result", "severity", "detail"):
        table.add_column(column)
    for check in checks:
        fails = not check.passed and level.fails(check.severity)
        result = "[green]passed[/]" if check.passed else ("[bold red]FAIL[/]" if fails else "[yellow]flagged[/]")
        table.add_row(escape(check.benchmark), check.check, result, check.severity, escape(check.detail))
    console.print(table)
