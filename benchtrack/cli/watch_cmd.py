"""`benchtrack watch`: follow the memory of a process, a command, a cgroup or a container over
time, judge the trend for a leak, report peak and OOM kills, and log the timeline to MLflow.

JSON (``benchtrack.watch/1``) on stdout with ``--format json``::

    {"schema": "benchtrack.watch/1", "samples": int, "duration_s": float, "start_mb": float,
     "end_mb": float, "peak_mb": float,
     "leak": {"detected": bool, "slope_mb_per_min": float, "ci_low": float, "ci_high": float,
              "severity": "critical" | "major" | "minor" | "none", ...},
     "oom_events": [{"time_s": float, "kind": str, "detail": str}, ...], ...,
     "timeline": benchtrack.timeline/1 (the samples, for `benchtrack report`)}

Never NaN: with too few samples after the warm-up the verdict has no slope; the document then
says ``"detected": false``, ``"severity": "none"``, ``0.0`` for slope, interval and growth, and
``"judged": false`` with the reason in ``"reasons"``. A watch with no sample at all reports
``0.0`` for start, end and peak. MB are MiB throughout.
"""

from __future__ import annotations

import contextlib
import json
import math
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from benchtrack.cli import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    FormatOption,
    OutputFormat,
    TrackingUriOption,
    app,
    load_cli_config,
    maps_errors,
)
from benchtrack.errors import BenchtrackError, TrackingError, UsageError

WATCH_SCHEMA = "benchtrack.watch/1"


@app.command("watch", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
@maps_errors
def watch_command(
    ctx: typer.Context,
    pid: Annotated[int | None, typer.Option("--pid", help="Watch this process and all its children (RSS summed).")] = None,
    cgroup: Annotated[
        str | None,
        typer.Option("--cgroup", help="Watch this memory cgroup: a v1 or v2 directory (relative: under /sys/fs/cgroup)."),
    ] = None,
    container: Annotated[str | None, typer.Option("--container", help="Watch this docker / podman container.")] = None,
    docker_url: Annotated[
        str | None,
        typer.Option("--docker-url",
                     help="Container engine API (default: $DOCKER_HOST, else unix:///run/podman/podman.sock if it exists, "
                          "else the docker default)."),
    ] = None,
    interval: Annotated[str, typer.Option("--interval", help="Time between samples: seconds (0.5) or 1s, 1m.")] = "1",
    duration: Annotated[
        str | None, typer.Option("--duration", help="Stop after this long: 30, 30s, 5m, 1h (default: when the target exits).")
    ] = None,
    warmup: Annotated[
        str | None, typer.Option("--warmup", help="Seconds discarded before the leak analysis (default: 20% of the run).")
    ] = None,
    level: Annotated[
        str, typer.Option("--level", "-l", help="Level whose fail_on applies (leak thresholds: the levels file's memory table).")
    ] = "comprehensive",
    levels_file: Annotated[
        Path | None, typer.Option("--levels", help="levels.toml (default: experiments/levels.toml if present).")
    ] = None,
    tracking_uri: TrackingUriOption = None,
    no_track: Annotated[bool, typer.Option("--no-track", help="Watch and report without logging to MLflow.")] = False,
    chart: Annotated[Path | None, typer.Option("--chart", help="Also draw the timeline as a PNG here.")] = None,
    output_format: FormatOption = OutputFormat.table,
) -> None:
    """Watch memory over time (a pid, a cgroup, a container, or a command after --), then judge it for a leak.

    Exactly one target. A command is started here and its whole process tree is ended when
    --duration passes. Exit 1 when a leak reaches the level's fail_on, 2 on bad input.

    Example: benchtrack watch --duration 5m --interval 1 -- python server.py
    """
    from benchtrack.config import select_level
    from benchtrack.durations import parse_duration
    from benchtrack.monitor import judge_timeline, summarize_timeline
    from benchtrack.monitor import watch as run_watch
    from benchtrack.probes.targets import target_kind

    command = list(ctx.args)
    interval_s = parse_duration(interval)
    duration_s = parse_duration(duration) if duration is not None else None
    warmup_s = _parse_warmup(warmup)
    config = load_cli_config(levels_file)
    chosen = select_level(config.levels, level)
    uri = None if no_track else _tracking_uri(tracking_uri)  # a malformed URI fails now, not after the watch
    target = _make_target(pid, cgroup, container, docker_url, command)
    stderr = Console(stderr=True)
    try:
        with _live_progress(stderr, target.description, duration_s) as on_sample:
            timeline = run_watch(target, interval_s=interval_s, duration_s=duration_s, on_sample=on_sample,
                                 stop_on_interrupt=True)
    finally:
        target.close()
    timeline, leak = judge_timeline(timeline, config.leak, warmup_s=warmup_s)
    # A command that died just before close() was never seen dead by the loop: ask once more.
    late = target.new_oom_events(timeline.times_s[-1] if timeline.times_s else 0.0)
    if late:
        timeline = replace(timeline, oom_events=(*timeline.oom_events, *late))
    exit_code = getattr(target, "exit_code", None)
    summary = summarize_timeline(timeline)
    kind = target_kind(target)
    run_id, tracking_note = None, None
    with tempfile.TemporaryDirectory(prefix="benchtrack-watch-") as scratch:
        chart_path, chart_note = _draw_chart(timeline, leak, chart, Path(scratch) if uri else None)
        if uri is not None:
            run_id, tracking_note = _log(uri, timeline, leak, kind, chosen.name, interval_s, chart_path)
    failing = leak.detected and chosen.fails(leak.severity)
    document = watch_document(timeline, leak, summary.as_dict(), kind=kind, level=chosen.name, exit_code=exit_code,
                              run_id=run_id, failing=failing)
    report_note = _log_report(uri, run_id, document, timeline) if uri is not None and run_id is not None else None
    if output_format is OutputFormat.json:
        typer.echo(json.dumps(document, indent=2, allow_nan=False))
    else:
        _print_table(timeline, leak, summary.as_dict(), kind, chosen, exit_code, failing)
    for note in (chart_note, report_note):
        if note:
            stderr.print(f"benchtrack: warning: {note}", highlight=False, markup=False, soft_wrap=True)
    if tracking_note:
        stderr.print(f"benchtrack: error: {tracking_note}", highlight=False, markup=False, soft_wrap=True)
        raise typer.Exit(EXIT_USAGE)
    if run_id is not None:
        stderr.print(f"logged to {uri} as run {run_id} (browse with: benchtrack ui)", highlight=False, markup=False,
                     soft_wrap=True)
    if chart is not None and chart_path is not None:
        stderr.print(f"chart written to {chart}", highlight=False, markup=False, soft_wrap=True)
    raise typer.Exit(EXIT_FAILED if failing else EXIT_OK)


# --- inputs ------------------------------------------------------------------------------------


def _tracking_uri(option: str | None) -> str:
    from benchtrack.tracking.uri import resolve_tracking_uri

    return resolve_tracking_uri(option)


def _parse_warmup(text: str | None) -> float | None:
    from benchtrack.durations import parse_duration

    if text is None:
        return None
    with contextlib.suppress(ValueError):
        if float(text.strip().rstrip("smh")) == 0:
            return 0.0
    return parse_duration(text)


def _make_target(pid: int | None, cgroup: str | None, container: str | None, docker_url: str | None,
                 command: list[str]) -> Any:
    from benchtrack.probes.targets import CgroupTarget, CommandTarget, ProcessTarget

    if command and command[0].startswith("-"):
        raise UsageError(f"no such option: {command[0]} (put the command to watch after --)")
    given = [name for name, value in (("--pid", pid), ("--cgroup", cgroup), ("--container", container),
                                      ("-- COMMAND", command or None)) if value is not None]
    if not given:
        raise UsageError("nothing to watch: give one of --pid N, --cgroup PATH, --container NAME or -- COMMAND ...")
    if len(given) > 1:
        raise UsageError(f"give exactly one target, got {' and '.join(given)}")
    if pid is not None:
        return ProcessTarget(pid)
    if cgroup is not None:
        return CgroupTarget(cgroup)
    if container is not None:
        return _container_target(container, docker_url)
    return CommandTarget(command)


def _container_target(name: str, docker_url: str | None) -> Any:
    try:
        from benchtrack.probes.containers import make_container_target
    except ImportError as exc:
        raise UsageError(f"container targets are not available: {exc}") from None
    try:
        return make_container_target(name, docker_url)
    except BenchtrackError:
        raise
    except Exception as exc:  # noqa: BLE001 - the docker SDK raises many kinds; all mean "not reachable"
        text = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise UsageError(f"cannot reach the container engine at {docker_url or 'the default address'}: {text}") from None


# --- progress, chart, tracking -----------------------------------------------------------------


@contextlib.contextmanager
def _live_progress(console: Console, description: str, duration_s: float | None) -> Iterator[Any]:
    """Current MB and elapsed time on stderr (only on a terminal; CI logs stay clean)."""
    columns: list[Any] = [TextColumn("{task.description}")]
    if duration_s is not None:
        columns.append(BarColumn())
    columns.append(TimeElapsedColumn())
    progress = Progress(*columns, console=console, transient=True, disable=not console.is_terminal)
    label = escape(description[:60])
    with progress:
        task = progress.add_task(f"watching {label}", total=duration_s)

        def on_sample(time_s: float, reading: Any, events: list[Any]) -> None:
            state = f"{reading.memory_bytes / 2**20:.1f} MB" if reading.alive else "exited"
            oom = f", {len(events)} OOM kill(s)" if events else ""
            progress.update(task, completed=time_s, description=f"watching {label}: {state}{oom}")

        yield on_sample


def _draw_chart(timeline: Any, leak: Any, chart: Path | None, scratch: Path | None) -> tuple[Path | None, str | None]:
    """The PNG (benchtrack.report.charts), at --chart, else in ``scratch`` for the MLflow run
    (None: not tracked); returns (path or None, warning or None)."""
    if chart is None and scratch is None:
        return None, None
    try:
        from benchtrack.report.charts import timeline_chart
    except ImportError:
        return None, "charts are not available in this build (benchtrack.report.charts); no PNG drawn" if chart else None
    path = chart if chart is not None else Path(str(scratch)) / "timeline.png"
    try:
        return timeline_chart(timeline, path, title=f"memory of {timeline.target}", leak=leak), None
    except Exception as exc:  # noqa: BLE001 - a chart must never cost the measurement
        return None, f"could not draw the chart: {exc}"


def _log(uri: str, timeline: Any, leak: Any, kind: str, level: str, interval_s: float,
         chart: Path | None) -> tuple[str | None, str | None]:
    """(run id, None), or (None, error line) with the timeline kept in .benchtrack/unsaved/."""
    from benchtrack.probes.environment import machine_fingerprint
    from benchtrack.tracking.store import MlflowStore
    from benchtrack.tracking.timelines import log_watch

    try:
        store = MlflowStore(uri)
        params = {"interval_s": f"{interval_s:g}", "warmup_s": f"{leak.warmup_s:g}"}
        return log_watch(store, timeline, leak, kind=kind, fingerprint=machine_fingerprint(), level=level,
                         params=params, chart=chart), None
    except TrackingError as exc:
        return None, f"{exc}; timeline kept in {_keep_unsaved(timeline)}"


def _log_report(uri: str, run_id: str, document: dict[str, Any], timeline: Any) -> str | None:
    """benchtrack/report.{md,html,json} on the watch's run; a warning line when that failed."""
    from benchtrack.report.publish import publish_memory_report
    from benchtrack.results import timeline_to_dict
    from benchtrack.tracking.store import MlflowStore

    try:
        store = MlflowStore(uri)
    except TrackingError as exc:
        return f"could not log the report of run {run_id}: {exc}"
    return publish_memory_report(store, run_id, document, timeline_to_dict(timeline))


def _keep_unsaved(timeline: Any) -> Path:
    from benchtrack.results import timeline_to_dict
    from benchtrack.session import keep_unsaved

    return keep_unsaved("watch", timeline_to_dict(timeline), suffix=".timeline.json")


# --- output ------------------------------------------------------------------------------------


def _number(value: float) -> float:
    """NaN (a verdict from too few samples) becomes 0.0: JSON has no NaN."""
    return float(value) if math.isfinite(value) else 0.0


def watch_document(timeline: Any, leak: Any, summary: dict[str, Any], *, kind: str, level: str, exit_code: int | None,
                   run_id: str | None, failing: bool) -> dict[str, Any]:
    from benchtrack.results import timeline_to_dict

    judged = math.isfinite(leak.slope_mb_per_min)
    return {
        "schema": WATCH_SCHEMA,
        "target": timeline.target,
        "kind": kind,
        "samples": int(summary["samples"]),
        "duration_s": float(summary["duration_s"]),
        "start_mb": float(summary["start_mb"]),
        "end_mb": float(summary["end_mb"]),
        "peak_mb": float(summary["peak_mb"]),
        "peak_time_s": float(summary["peak_time_s"]),
        "limit_mb": summary["limit_mb"],
        "leak": {
            "detected": bool(leak.detected),
            "slope_mb_per_min": _number(leak.slope_mb_per_min),
            "ci_low": _number(leak.ci_low),
            "ci_high": _number(leak.ci_high),
            "severity": leak.severity,
            "growth_mb": _number(leak.growth_mb),
            "judged": judged,
            "samples": leak.samples,
            "warmup_s": leak.warmup_s,
            "reasons": list(leak.reasons),
        },
        "oom_events": [{"time_s": e.time_s, "kind": e.kind, "detail": e.detail} for e in timeline.oom_events],
        "exit_code": exit_code,
        "level": level,
        "failed": failing,
        "run_id": run_id,
        # the samples themselves, so `benchtrack report watch.json --format html` can draw them
        "timeline": timeline_to_dict(timeline),
    }


def _print_table(timeline: Any, leak: Any, summary: dict[str, Any], kind: str, level: Any, exit_code: int | None,
                 failing: bool) -> None:
    console = Console()
    console = console if console.is_terminal else Console(width=200)
    table = Table(title=f"benchtrack watch - {kind} {escape(timeline.target)}", show_header=False)
    table.add_column("", style="bold")
    table.add_column("")
    table.add_row("samples", f"{summary['samples']} over {summary['duration_s']:.1f} s")
    table.add_row("memory", f"start {summary['start_mb']:.1f} MB, end {summary['end_mb']:.1f} MB, "
                            f"peak {summary['peak_mb']:.1f} MB at {summary['peak_time_s']:.1f} s")
    if summary["limit_mb"] is not None:
        table.add_row("limit", f"{summary['limit_mb']:.1f} MB")
    if math.isfinite(leak.slope_mb_per_min):
        trend = (f"{leak.slope_mb_per_min:.3g} MB/min (95% CI {leak.ci_low:.3g} to {leak.ci_high:.3g}), "
                 f"growth {leak.growth_mb:.3g} MB after a {leak.warmup_s:.1f} s warm-up")
    else:
        trend = "no verdict (too few samples)"
    table.add_row("trend", trend)
    verdict = f"LEAK ({leak.severity})" if leak.detected else "no leak"
    if failing:
        verdict += f" - fails level {level.name} (fail_on {level.fail_on})"
    table.add_row("verdict", f"[red]{verdict}[/red]" if leak.detected else verdict)
    for event in timeline.oom_events:
        table.add_row("OOM", escape(f"{event.time_s:.1f} s {event.kind}: {event.detail}"))
    if exit_code is not None:
        table.add_row("exit code", str(exit_code))
    console.print(table)
    for reason in leak.reasons:
        console.print(f"  {reason}", style="dim", highlight=False, markup=False)
