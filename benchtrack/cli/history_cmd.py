"""`benchtrack history BENCHMARK`: the runs of one benchmark on a branch and machine, oldest
first, with the change points of a metric's per-run centres, as a table, JSON and a PNG chart."""

from __future__ import annotations

import datetime
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from benchtrack.cli import EXIT_OK, FormatOption, OutputFormat, TrackingUriOption, _open_store, _stdout_console, app, maps_errors
from benchtrack.cli.compare_cmd import FingerprintOption, LevelsOption, _suites
from benchtrack.errors import UsageError

HISTORY_SCHEMA = "benchtrack.history/1"


@app.command("history")
@maps_errors
def history_command(
    benchmark: Annotated[str, typer.Argument(help="Benchmark name, e.g. 'json.roundtrip[size=100]'.")],
    suite: Annotated[str | None, typer.Option("--suite", help="The benchmark's suite (needed when several have it).")] = None,
    metric: Annotated[str, typer.Option("--metric", help="wall_s, cpu_s, rss_peak_bytes, tracemalloc_peak_bytes, "
                                                         "gc_pause_s, gc_collections or instructions.")] = "wall_s",
    branch: Annotated[str | None, typer.Option("--branch", help="Branch (default: the current git branch, else "
                                                                "levels.toml's baseline branch).")] = None,
    fingerprint: FingerprintOption = None,
    limit: Annotated[int, typer.Option("--limit", min=2, help="Show the newest N runs.")] = 100,
    chart: Annotated[Path | None, typer.Option("--chart", help="Also draw the history as a PNG here.")] = None,
    levels_file: LevelsOption = None,
    tracking_uri: TrackingUriOption = None,
    output_format: FormatOption = OutputFormat.table,
) -> None:
    """The runs of one benchmark, oldest first, with the change points of a metric over them.

    Change points are steps of the runs' centres (e.g. a landed speed-up); one-off slow runs and
    slow drift are not. Runs of `compare --rerun` are left out.

    Example: benchtrack history stats.summarize --suite self --metric wall_s --chart history.png
    """
    from benchtrack.analysis.changepoints import change_points, segments
    from benchtrack.analysis.compare import spec_for
    from benchtrack.analysis.features import HISTORY_CENTRE
    from benchtrack.cli.render import print_json
    from benchtrack.tracking.baselines import BaselineKey, BaselineRegistry
    from benchtrack.tracking.uri import resolve_tracking_uri

    branch, fingerprint = _branch_and_fingerprint(branch, fingerprint, levels_file)
    store = _open_store(resolve_tracking_uri(tracking_uri))
    runs = _runs(store, benchmark, suite, branch, fingerprint, limit)
    spec = spec_for(metric)
    key = HISTORY_CENTRE.format(metric=metric)
    runs = [run for run in reversed(runs) if key in run.features]  # oldest first
    if not runs:
        raise UsageError(f"no {metric} values in the runs of {benchmark} (is the metric measured by this benchmark?)")
    centres = [run.features[key] for run in runs]
    values = [math.exp(c) if spec.log_scale else c for c in centres]
    found = change_points(centres, log_scale=spec.log_scale)
    records = BaselineRegistry(store).history(BaselineKey(runs[0].suite, benchmark, branch, fingerprint))
    promoted = {record.run_id for record in records}
    document = _document(benchmark, metric, branch, fingerprint, runs, values, promoted, found, spec.log_scale)
    if chart is not None:
        document["chart"] = str(_draw(chart, document, segments(centres, found), spec.log_scale))
    if output_format is OutputFormat.json:
        print_json(document)
    else:
        _print_table(document)
    raise typer.Exit(EXIT_OK)


def _branch_and_fingerprint(branch: str | None, fingerprint: str | None, levels_file: Path | None) -> tuple[str, str]:
    from benchtrack.cli import load_cli_config
    from benchtrack.probes.environment import collect_metadata, git_info

    if branch is None:
        branch = git_info(Path.cwd()).branch or load_cli_config(levels_file).baseline_branch
    if fingerprint is None:
        fingerprint = collect_metadata(Path.cwd())["benchtrack.machine.fingerprint"]
    return branch, fingerprint


def _runs(store: Any, benchmark: str, suite: str | None, branch: str, fingerprint: str, limit: int) -> list[Any]:
    """The benchmark's runs, newest first; one clear error when the suite or benchmark is unknown,
    the name is in several suites, or nothing ran on this branch and machine."""
    known = _suites(store, None)
    if suite is not None and suite not in known:
        raise UsageError(f"unknown suite {suite!r} (suites in the store: {', '.join(known) or 'none'})")
    suites = [suite] if suite else known
    runs = store.benchmark_runs(benchmark, suites, branch, fingerprint)
    if not runs:
        anywhere = store.benchmark_runs(benchmark, suites, limit=1)
        if not anywhere:
            where = f"suite {suite}" if suite else "any suite"
            raise UsageError(f"unknown benchmark {benchmark!r}: no runs of it in {where}")
        raise UsageError(f"no runs of {benchmark} on branch {branch} with machine fingerprint {fingerprint} "
                         "(pass --branch or --fingerprint)")
    in_suites = sorted({run.suite for run in runs})
    if len(in_suites) > 1:
        raise UsageError(f"benchmark {benchmark} is in several suites ({', '.join(in_suites)}): pass --suite")
    return list(runs[:limit])


def _document(benchmark: str, metric: str, branch: str, fingerprint: str, runs: Sequence[Any], values: Sequence[float],
              promoted: set[str], found: Sequence[Any], log_scale: bool) -> dict[str, Any]:
    starts = {point.index: point for point in found}
    rows = []
    for i, (run, value) in enumerate(zip(runs, values, strict=True)):
        point = starts.get(i)
        rows.append({
            "run_id": run.run_id, "start_ms": run.start_ms, "commit": run.commit or None, "level": run.level,
            "value": value, "change": value / values[i - 1] - 1.0 if i and values[i - 1] else None,
            "promoted": run.run_id in promoted, "change_point": point is not None,
        })
    return {
        "schema": HISTORY_SCHEMA, "suite": runs[0].suite, "benchmark": benchmark, "metric": metric,
        "unit": _unit(metric), "branch": branch, "fingerprint": fingerprint, "runs": rows,
        "change_points": [
            {"index": p.index, "run_id": runs[p.index].run_id, "commit": runs[p.index].commit or None,
             "before": math.exp(p.before) if log_scale else p.before, "after": math.exp(p.after) if log_scale else p.after,
             "relative_change": p.relative_change, "p_value": p.p_value}
            for p in found
        ],
        "chart": None,
    }


def _unit(metric: str) -> str:
    if metric.endswith("_s"):
        return "s"
    if metric.endswith("_bytes"):
        return "bytes"
    return ""


def _human(value: float, unit: str) -> str:
    from benchtrack.units import format_bytes, format_seconds

    if unit == "s":
        return format_seconds(value)
    if unit == "bytes":
        return format_bytes(value)
    return f"{value:.4g}"


def _print_table(document: dict[str, Any]) -> None:
    table = Table(title=escape(f"{document['suite']}/{document['benchmark']} {document['metric']} on {document['branch']} "
                               f"@ {document['fingerprint']}"))
    for column in ("time (UTC)", "commit", "level", document["metric"], "vs previous", "promoted", "change point"):
        table.add_column(escape(column))
    points = {p["index"]: p for p in document["change_points"]}
    for i, row in enumerate(document["runs"]):
        when = datetime.datetime.fromtimestamp(row["start_ms"] / 1000, tz=datetime.UTC).strftime("%Y-%m-%d %H:%M")
        point = points.get(i)
        marker = f"▲ {point['relative_change']:+.1%} (p={point['p_value']:.2g})" if point and point["relative_change"] \
            is not None else ("▲" if point else "")
        table.add_row(when, (row["commit"] or "")[:10], escape(row["level"]), _human(row["value"], document["unit"]),
                      f"{row['change']:+.1%}" if row["change"] is not None else "", "yes" if row["promoted"] else "",
                      marker)
    console = _stdout_console()
    console.print(table)
    count = len(document["change_points"])
    console.print(f"{len(document['runs'])} runs, {count} change point{'s' if count != 1 else ''}", highlight=False)
    if document["chart"]:
        console.print(f"chart: {document['chart']}", highlight=False, soft_wrap=True)


def _draw(path: Path, document: dict[str, Any], found_segments: Sequence[Any], log_scale: bool) -> Path:
    from benchtrack.report.history_chart import ChartSegment, history_chart

    unit, scale = _chart_unit(document)
    rows = document["runs"]
    return history_chart(
        path, title=f"{document['suite']}/{document['benchmark']}: {document['metric']} on {document['branch']}",
        unit=unit, times_ms=[row["start_ms"] for row in rows], values=[row["value"] / scale for row in rows],
        promoted=[row["promoted"] for row in rows], change_indices=[p["index"] for p in document["change_points"]],
        segments=[ChartSegment(s.start, s.stop, (math.exp(s.centre) if log_scale else s.centre) / scale)
                  for s in found_segments])


def _chart_unit(document: dict[str, Any]) -> tuple[str, float]:
    """(axis label, divisor) suited to the typical value."""
    typical = sorted(abs(row["value"]) for row in document["runs"])[len(document["runs"]) // 2]
    if document["unit"] == "s":
        for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
            if typical >= scale:
                return f"{document['metric']} ({unit})", scale
        return f"{document['metric']} (ns)", 1e-9
    if document["unit"] == "bytes":
        return f"{document['metric']} (MiB)", 2.0**20
    return document["metric"], 1.0
