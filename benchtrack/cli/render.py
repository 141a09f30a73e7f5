"""Terminal tables and JSON documents for CLI output (rich lives here, not in the core)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from benchtrack import results as r
from benchtrack.analysis.contention import Contention
from benchtrack.analysis.features import contention, cpu_count, metric_summaries
from benchtrack.analysis.stats import between_process_cv, summarize
from benchtrack.analysis.targets import check_targets
from benchtrack.results import BenchmarkResult
from benchtrack.session import Invocation
from benchtrack.units import format_bytes, format_seconds

RUN_SCHEMA = "benchtrack.run/1"


def invocation_document(invocation: Invocation, tracking_uri: str | None) -> dict[str, Any]:
    suites = []
    for outcome in invocation.suites:
        benchmarks = []
        for bench in outcome.result.benchmarks:
            benchmarks.append({
                "name": bench.name,
                "suite": outcome.result.suite,
                "kind": bench.kind,
                "status": "ok" if bench.ok else "failed",
                "error": bench.error,
                "run_id": outcome.child_run_ids.get(bench.name),
                "samples": len(bench.timed_samples),
                "processes": bench.process_count,
                "summary": metric_summaries(bench) if bench.samples else {},
                "contention": contention(bench, cpu_count(outcome.result.metadata)).as_dict(),
                "targets": [
                    {"target": c.target, "limit": c.limit, "value": c.value, "met": c.met}
                    for c in check_targets(bench)
                ],
            })
        suites.append({
            "suite": outcome.result.suite,
            "level": outcome.result.level,
            "parent_run_id": outcome.parent_run_id,
            # where and when it was measured: report headlines and Prometheus labels
            "commit": outcome.result.metadata.get("mlflow.source.git.commit"),
            "branch": outcome.result.metadata.get("benchtrack.git.branch"),
            "fingerprint": outcome.result.metadata.get("benchtrack.machine.fingerprint"),
            "finished_at": outcome.result.finished_at,
            "benchmarks": benchmarks,
        })
    total = sum(len(outcome.result.benchmarks) for outcome in invocation.suites)
    return {
        "schema": RUN_SCHEMA,
        "invocation": invocation.invocation_id,
        "level": invocation.level.name,
        "tracking_uri": tracking_uri,
        "tracking_error": invocation.tracking_error,
        "unsaved_results": str(invocation.spool_path) if invocation.spool_path else None,
        "suites": suites,
        "file_errors": [{"file": e.relative, "error": e.message} for e in invocation.file_errors],
        "summary": {
            "benchmarks": total,
            "failed": len(invocation.failed_benchmarks),
            "file_errors": len(invocation.file_errors),
        },
    }


def print_json(document: Mapping[str, Any]) -> None:
    print(json.dumps(document, indent=2, allow_nan=False))


MAX_TRACKED_ROWS = 25  # per benchmark in the terminal table


def print_run_table(invocation: Invocation, console: Console) -> None:
    table = Table(title=f"benchtrack run - level {invocation.level.name}", show_lines=False)
    for column, justify in (
        ("suite", "left"), ("benchmark", "left"), ("median", "right"), ("IQR", "right"),
        ("min", "right"), ("proc CV", "right"), ("samples x procs", "right"), ("peak RSS", "right"),
        ("GC pause/op", "right"), ("contention", "left"), ("status", "left"),
    ):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for outcome in invocation.suites:
        for bench in outcome.result.benchmarks:
            cpus = cpu_count(outcome.result.metadata)
            table.add_row(escape(outcome.result.suite), escape(bench.name), *_row_cells(bench, cpus))
    console.print(table)
    contended = [b.name for s in invocation.suites for b in s.result.benchmarks
                 if b.samples and contention(b, cpu_count(s.result.metadata)).contended]
    if contended:
        console.print(f"[yellow]measured under contention: {escape(', '.join(contended))}[/]: their wall times hold "
                      "other programs' work; verdicts lean on CPU time for them")
    tracked = [b for s in invocation.suites for b in s.result.benchmarks if b.ok and b.kind == "track"]
    if tracked:
        console.print(_tracked_table(tracked))
    counted = [b for s in invocation.suites for b in s.result.benchmarks
               if b.series(r.INSTRUCTIONS) or b.details.get("instructions_error")]
    if counted:
        console.print(_instructions_table(counted))


def _instructions_table(benches: list[BenchmarkResult]) -> Table:
    """Instructions per operation beside wall time: each shows what the other cannot."""
    table = Table(title="instructions per operation (valgrind; deterministic, but blind to I/O waits, "
                        "cache misses and parallelism: read it beside wall time, never for it)")
    for column, justify in (("benchmark", "left"), ("instructions/op", "right"), ("spread", "right"),
                            ("wall/op", "right"), ("note", "left")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for bench in benches:
        counts, walls = bench.series(r.INSTRUCTIONS), bench.series(r.WALL)
        error = str(bench.details.get("instructions_error") or "")
        if not counts:
            table.add_row(escape(bench.name), "-", "-", format_seconds(summarize(walls).median) if walls else "-",
                          f"[yellow]{escape(error)}[/]")
            continue
        stats = summarize(counts)
        spread = (stats.max - stats.min) / stats.median if stats.median else 0.0
        table.add_row(escape(bench.name), f"{stats.median:,.0f}", f"{spread:.2%}",
                      format_seconds(summarize(walls).median) if walls else "-", "")
    return table


def _tracked_table(benches: list[BenchmarkResult]) -> Table:
    """Values that track benchmarks measured and returned themselves (median over samples)."""
    table = Table(title="tracked values (median of samples)")
    for column, justify in (("benchmark", "left"), ("metric", "left"), ("median", "right"),
                            ("min", "right"), ("max", "right"), ("target", "left")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for bench in benches:
        checks = {c.target: c for c in check_targets(bench)}
        metrics = [m for m in bench.metric_names() if m.startswith(r.TRACK_PREFIX)]
        # a self-benchmark may track hundreds of values: the terminal gets the targets and the first
        # few, the JSON output and MLflow get them all
        shown = [m for m in metrics if any(t.startswith(m + ".") for t in checks)]
        shown += [m for m in metrics if m not in shown][:max(0, MAX_TRACKED_ROWS - len(shown))]
        for metric in metrics:
            if metric not in shown:
                continue
            stats = summarize(bench.series(metric))
            target = ""
            for statistic in ("median", "mean", "max", "p95", "min"):
                check = checks.get(f"{metric}.{statistic}")
                if check:
                    target = f"{statistic} <= {check.limit:g}: " + ("[green]met[/]" if check.met else "[red]missed[/]")
            table.add_row(escape(bench.name), escape(metric.removeprefix(r.TRACK_PREFIX)), f"{stats.median:.4g}",
                          f"{stats.min:.4g}", f"{stats.max:.4g}", target)
        if len(metrics) > len(shown):
            table.add_row(escape(bench.name), f"... {len(metrics) - len(shown)} more (--format json, or the MLflow run)",
                          "", "", "", "")
    return table


def _row_cells(bench: BenchmarkResult, cpus: int) -> list[str]:
    status = "[green]ok[/]" if bench.ok else f"[red]failed[/]: {escape(bench.error or '')}"
    missed = [c for c in check_targets(bench) if not c.met]
    if missed:
        status += " [yellow]target missed: " + escape(", ".join(
            f"{c.target} {'n/a' if c.value is None else f'{c.value:.3g}'} > {c.limit:g}" for c in missed
        )) + "[/]"
    if not bench.samples:
        return ["-", "-", "-", "-", "0", "-", "-", "-", status]
    wall = summarize(bench.series(r.WALL))
    processes = [s.process for s in bench.timed_samples]
    peak = max(bench.series(r.RSS_PEAK))
    memory = bench.series(r.TRACEMALLOC_PEAK)
    peak_text = format_bytes(peak) + (f" (traced {format_bytes(max(memory))})" if memory else "")
    return [
        format_seconds(wall.median),
        format_seconds(wall.iqr),
        format_seconds(wall.min),
        f"{between_process_cv(bench.series(r.WALL), processes):.1%}",
        f"{len(bench.timed_samples) // max(bench.process_count, 1)}x{bench.process_count}",
        peak_text,
        format_seconds(summarize(bench.series(r.GC_PAUSE)).mean),
        _contention_cell(contention(bench, cpus)),
        status,
    ]


def _contention_cell(found: Contention) -> str:
    if found.contended:
        return f"[yellow]yes: {escape(found.reason)}[/]"
    return f"{found.descheduled_fraction:.0%} desched."
