"""`benchtrack load`: replay a request pattern against a service, watch its memory and CPU, judge it.

JSON (``benchtrack.load/1``, see :mod:`benchtrack.load.session`) on stdout with ``--format json``.
Also the load side of `benchtrack compare A B` (:func:`compare_load_operands`).
"""

from __future__ import annotations

import json
import re
import socket
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from benchtrack.cli import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    FormatOption,
    OutputFormat,
    TrackingUriOption,
    _stdout_console,
    app,
    load_cli_config,
    maps_errors,
)
from benchtrack.errors import BenchtrackError, TrackingError, UsageError

TAGS = ("pre-fix", "post-fix", "baseline")
REACH_TIMEOUT_S = 3.0
SERVICE_START_TIMEOUT_S = 30.0  # a Python service importing its framework on a busy 2-core machine


@app.command("load")
@maps_errors
def load_command(
    target: Annotated[str, typer.Argument(help="A URL (ad-hoc constant load) or a scenario file (.toml).")],
    rate: Annotated[float | None, typer.Option("--rate", help="Open model: arrivals per second (URL only; default 10).")]
    = None,
    users: Annotated[int | None, typer.Option("--users", help="Closed model: concurrent users (URL only).")] = None,
    think: Annotated[str, typer.Option("--think", help="Closed model: pause after each answer (0, 500ms, 5s).")] = "0",
    duration: Annotated[str | None, typer.Option("--duration", help="How long to send: 30, 30s, 5m (URL default 10s).")]
    = None,
    warmup: Annotated[str | None, typer.Option("--warmup", help="Sent but left out of the statistics (default 0).")] = None,
    timeout: Annotated[str | None, typer.Option("--timeout", help="Per request (default 10s).")] = None,
    endpoint: Annotated[str | None, typer.Option("--endpoint", help="URL only: the path to request (default: the URL's).")]
    = None,
    monitor_pid: Annotated[int | None, typer.Option("--monitor-pid", help="Watch this process tree's memory and CPU.")]
    = None,
    monitor_container: Annotated[str | None, typer.Option("--monitor-container", help="Watch this container.")] = None,
    docker_url: Annotated[str | None, typer.Option("--docker-url", help="Container engine API for --monitor-container.")]
    = None,
    monitor_cgroup: Annotated[str | None, typer.Option("--monitor-cgroup", help="Watch this cgroup (v1 or v2).")] = None,
    interval: Annotated[str | None, typer.Option("--interval", help="Between monitor samples (default 1s).")] = None,
    alert_memory: Annotated[float | None, typer.Option("--alert-memory", help="Alert when memory exceeds this many MB.")]
    = None,
    alert_cpu: Annotated[float | None, typer.Option("--alert-cpu", help="Alert when CPU exceeds this % (of one CPU).")]
    = None,
    alert_growth: Annotated[
        float | None, typer.Option("--alert-growth", help="Alert when memory grows faster than this many MB/min.")
    ] = None,
    tag: Annotated[str | None, typer.Option("--tag", help="pre-fix, post-fix or baseline (for comparisons).")] = None,
    processes: Annotated[int, typer.Option("--processes", min=1, help="Generator processes (for high rates).")] = 1,
    seed: Annotated[int, typer.Option("--seed", help="Seed of endpoint choice and arrivals.")] = 0,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Also write the JSON document here.")] = None,
    no_track: Annotated[bool, typer.Option("--no-track", help="Measure without logging to MLflow.")] = False,
    tracking_uri: TrackingUriOption = None,
    output_format: FormatOption = OutputFormat.table,
) -> None:
    """Replay a load pattern against a service, watch its memory and CPU, and check the pass criteria.

    A URL runs a constant ad-hoc load (open with --rate, closed with --users/--think); a .toml
    scenario file sets model, pattern, endpoints, monitor, alerts and criteria. Exit 1 when the
    criteria fail, 2 on bad input (one line).

    Example: benchtrack load http://127.0.0.1:8080/items --rate 20 --duration 60 --monitor-pid 4242 --tag pre-fix
    """
    from benchtrack.durations import parse_duration
    from benchtrack.load.session import run_scenario

    if tag is not None and tag not in TAGS:
        raise UsageError(f"--tag must be one of {', '.join(TAGS)}, got {tag!r}")
    scenario = _scenario(target, rate, users, think, duration, warmup, timeout, endpoint)
    config = load_cli_config(None)
    scenario = _with_alerts(_with_level_alerts(scenario, config.load_alerts), alert_memory, alert_cpu, alert_growth)
    monitor = _monitor_choice(scenario, monitor_pid, monitor_container, docker_url, monitor_cgroup)
    if scenario.scaling is not None:
        _scaling_command(scenario, monitor, interval, seed, output, None if no_track else _tracking_uri(tracking_uri),
                         output_format)
    interval_s = parse_duration(interval) if interval is not None else (
        scenario.monitor.interval_s if scenario.monitor else 1.0)
    uri = None if no_track else _tracking_uri(tracking_uri)  # a malformed URI fails now, not after the load
    stderr = Console(stderr=True)
    if monitor is not None and monitor.command:
        watched = _started_service(monitor, scenario.base_url)  # the service benchtrack starts must listen first
    else:
        _check_reachable(scenario.base_url)
        watched = _make_target(monitor) if monitor else None
    kind = getattr(watched, "kind", None) or "process"

    def alert(fired: Any) -> None:
        stderr.print(f"benchtrack: {fired.message}", highlight=False, markup=False, soft_wrap=True)

    def describe_memory(timeline: Any, leak: Any, summary: dict[str, Any]) -> dict[str, Any]:
        from benchtrack.cli.watch_cmd import watch_document

        return watch_document(timeline, leak, summary, kind=kind, level="load", exit_code=None, run_id=None, failing=False)

    stderr.print(f"benchtrack: load {scenario.name}: {scenario.duration_s:g} s against {scenario.base_url}"
                 + (f", watching {watched.description}" if watched else ""), highlight=False, markup=False,
                 soft_wrap=True)
    try:
        run = run_scenario(scenario, describe_memory, target=watched, interval_s=interval_s, tag=tag,
                           processes=processes, seed=seed, leak_thresholds=config.leak, on_alert=alert)
    finally:
        if watched is not None:
            watched.close()
    document = run.document
    note = None
    if uri is not None:
        document["run_id"], note = _track(uri, run, {"seed": str(seed), "processes": str(processes),
                                                     "interval_s": f"{interval_s:g}", "source": scenario.source or target})
    if output is not None:
        output.write_text(json.dumps(document, indent=2, allow_nan=False), encoding="utf-8")
    if output_format is OutputFormat.json:
        typer.echo(json.dumps(document, indent=2, allow_nan=False))
    else:
        _print_table(run, _stdout_console())
    if note:
        stderr.print(f"benchtrack: error: {note}", highlight=False, markup=False, soft_wrap=True)
        raise typer.Exit(EXIT_USAGE)
    if document["run_id"]:
        stderr.print(f"logged to {uri} as run {document['run_id']} (browse with: benchtrack ui)", highlight=False,
                     markup=False, soft_wrap=True)
    raise typer.Exit(EXIT_OK if run.verdict.passed else EXIT_FAILED)


# --- scaling scenarios -------------------------------------------------------------------------


def _scaling_command(scenario: Any, monitor: Any, interval: str | None, seed: int,
                     output: Path | None, uri: str | None, output_format: OutputFormat) -> None:
    """Run a scenario's [scaling] levels, fit memory and CPU against load, log it; exits (1 when
    growth is exponential or the reset check failed)."""
    from benchtrack.load.scaling import run_scaling, scaling_document

    scenario = _scaling_monitor(scenario, monitor, interval)
    stderr = Console(stderr=True)
    started_at = time.time()

    def progress(level: Any) -> None:
        cpu = "" if level.cpu_percent is None else f", CPU {level.cpu_percent:.0f}%"
        stderr.print(f"benchtrack: {scenario.model.kind} load {level.level:g}: memory {level.memory_mb:.1f} MB{cpu}, "
                     f"{level.result.throughput_rps:.1f} requests/s, p50 {level.result.latency.p50_ms:.1f} ms",
                     highlight=False, markup=False, soft_wrap=True)

    result = run_scaling(scenario, seed=seed, on_level=progress)
    document = scaling_document(result)
    with tempfile.TemporaryDirectory(prefix="benchtrack-scaling-") as scratch:
        chart = _scaling_chart(result, Path(scratch) / "scaling.png")
        if uri is not None:
            document["run_id"] = _track_scaling(uri, document, started_at, chart, stderr)
    if output is not None:
        output.write_text(json.dumps(document, indent=2, allow_nan=False), encoding="utf-8")
    if output_format is OutputFormat.json:
        typer.echo(json.dumps(document, indent=2, allow_nan=False))
    else:
        _print_scaling_table(result, _stdout_console())
    failed = any("exponential" in warning for warning in result.warnings) or (
        result.reset is not None and not result.reset.passed)
    raise typer.Exit(EXIT_FAILED if failed else EXIT_OK)


def _scaling_monitor(scenario: Any, monitor: Any, interval: str | None) -> Any:
    """The scenario with --monitor-* (``monitor``, see _monitor_choice) and --interval applied."""
    from benchtrack.load.scenario import MonitorSpec

    spec = monitor or MonitorSpec()
    if interval is not None:
        spec = replace(spec, interval_s=_seconds("interval", interval))
    return replace(scenario, monitor=spec)


def _scaling_chart(result: Any, path: Path) -> Path | None:
    from benchtrack.report.scaling_chart import scaling_chart

    try:
        return scaling_chart(path, result.analyses, title=f"scaling {result.scenario}")
    except Exception as exc:  # noqa: BLE001 - a chart must never cost the measurement
        Console(stderr=True).print(f"benchtrack: warning: could not draw the scaling chart: {exc}", highlight=False,
                                   markup=False)
        return None


def _track_scaling(uri: str, document: dict[str, Any], started_at: float, chart: Path | None,
                   stderr: Console) -> str | None:
    from benchtrack.probes.environment import git_info, machine_fingerprint
    from benchtrack.tracking.loadruns import log_scaling_run
    from benchtrack.tracking.store import MlflowStore

    try:
        return log_scaling_run(MlflowStore(uri), document, started_at=started_at, fingerprint=machine_fingerprint(),
                               commit=git_info(Path.cwd()).commit, chart=chart)
    except TrackingError as exc:
        stderr.print(f"benchtrack: error: {exc}; the scaling document is kept in {_keep_unsaved(document)}",
                     highlight=False, markup=False, soft_wrap=True)
        return None


def _print_scaling_table(result: Any, console: Console) -> None:
    table = Table(title=f"benchtrack load - scaling {escape(result.scenario)} ({escape(result.target)})")
    for column in (result.load, "memory MB", "peak MB", "CPU %", "requests/s", "p50 ms", "p99 ms"):
        table.add_column(column, justify="right")
    for level in result.levels:
        cpu = "-" if level.cpu_percent is None else f"{level.cpu_percent:.0f}"
        table.add_row(f"{level.level:g}", f"{level.memory_mb:.1f}", f"{level.memory_peak_mb:.1f}", cpu,
                      f"{level.result.throughput_rps:.1f}", f"{level.result.latency.p50_ms:.1f}",
                      f"{level.result.latency.p99_ms:.1f}")
    console.print(table)
    for analysis in result.analyses:
        best = analysis.best
        if best is None:
            console.print(f"{analysis.quantity}: {analysis.note}", highlight=False, markup=False)
            continue
        low, high = best.slope_ci
        console.print(f"{analysis.quantity}: best fit {best.model}: {best.formula} (R² {best.r2:.3f}, slope 95% CI "
                      f"{low:.3g} to {high:.3g})", highlight=False, markup=False)
    if result.reset is not None:
        verdict = "passed" if result.reset.passed else "FAILED"
        console.print(f"reset check {verdict}: {result.reset.after_mb:.1f} MB after the load against "
                      f"{result.reset.baseline_mb:.1f} MB before ({result.reset.retained_mb:+.1f} MB retained, "
                      f"{result.reset.allowed_mb:.1f} MB allowed)", highlight=False, markup=False)
    for warning in result.warnings:
        console.print(f"warning: {warning}", highlight=False, markup=False)


# --- inputs ------------------------------------------------------------------------------------


def _scenario(target: str, rate: float | None, users: int | None, think: str, duration: str | None, warmup: str | None,
              timeout: str | None, endpoint: str | None) -> Any:
    from benchtrack.load.scenario import adhoc_scenario, load_scenario

    seconds = {name: _seconds(name, text) for name, text in (("duration", duration), ("warmup", warmup),
                                                              ("timeout", timeout)) if text is not None}
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", target):
        url = target
        if endpoint is not None:
            if not endpoint.startswith("/"):
                raise UsageError(f"--endpoint must be a path starting with /, got {endpoint!r}")
            parts = urlsplit(target)
            url = f"{parts.scheme}://{parts.netloc}{endpoint}"
        return adhoc_scenario(url, rate=rate, users=users, think_s=_seconds("think", think, allow_zero=True),
                              duration_s=seconds.get("duration", 10.0), warmup_s=seconds.get("warmup", 0.0),
                              timeout_s=seconds.get("timeout", 10.0))
    path = Path(target)
    if path.suffix != ".toml":
        raise UsageError(f"{target!r} is neither a URL (http://host:port/path) nor a scenario file (.toml)")
    ignored = [name for name, value in (("--rate", rate), ("--users", users), ("--endpoint", endpoint)) if value is not None]
    if ignored or think != "0":
        raise UsageError(f"{' and '.join(ignored or ['--think'])} apply to a URL; a scenario file sets [model] and [[endpoints]]")
    scenario = load_scenario(path)
    scenario = replace(scenario, duration_s=seconds.get("duration", scenario.duration_s),
                       warmup_s=seconds.get("warmup", scenario.warmup_s), timeout_s=seconds.get("timeout", scenario.timeout_s))
    if scenario.warmup_s >= scenario.duration_s:
        raise UsageError(f"--warmup ({scenario.warmup_s:g} s) must be shorter than the duration ({scenario.duration_s:g} s)")
    return scenario


def _with_level_alerts(scenario: Any, level_alerts: dict[str, float] | Any) -> Any:
    """[load.alerts] of the levels file, under the scenario's own [alerts] (which win key by key)."""
    from benchtrack.load.scenario import AlertSpec

    if not level_alerts:
        return scenario
    own = scenario.alerts or AlertSpec()
    merged = {key: getattr(own, key) if getattr(own, key) is not None else value for key, value in level_alerts.items()}
    return replace(scenario, alerts=replace(own, **merged))


def _with_alerts(scenario: Any, memory_mb: float | None, cpu_percent: float | None, growth: float | None) -> Any:
    """The scenario's [alerts], each overridden by its command-line option."""
    from benchtrack.load.scenario import AlertSpec

    given = {"memory_mb": memory_mb, "cpu_percent": cpu_percent, "growth_mb_per_min": growth}
    for key, value in given.items():
        if value is not None and not value > 0:
            raise UsageError(f"--alert-{key.split('_')[0]} must be positive, got {value:g}")
    if all(value is None for value in given.values()):
        return scenario
    alerts = replace(scenario.alerts or AlertSpec(), **{k: v for k, v in given.items() if v is not None})
    return replace(scenario, alerts=alerts)


def _seconds(name: str, text: str, *, allow_zero: bool = False) -> float:
    from benchtrack.durations import parse_duration

    if allow_zero and text.strip().rstrip("smh").strip() in ("0", "0.0"):
        return 0.0
    try:
        return parse_duration(text.strip().removesuffix("ms")) / 1000 if text.strip().endswith("ms") else parse_duration(text)
    except UsageError as exc:
        raise UsageError(f"--{name}: {exc}") from None


def _monitor_choice(scenario: Any, pid: int | None, container: str | None, docker_url: str | None,
                    cgroup: str | None) -> Any:
    """The [monitor] to use (a MonitorSpec): the target named on the command line in place of the
    scenario's (keeping its interval), else the scenario's when it names one, else None."""
    from benchtrack.load.scenario import MonitorSpec

    given = {key: value for key, value in (("pid", pid), ("container", container), ("cgroup", cgroup)) if value is not None}
    if len(given) > 1:
        raise UsageError(f"give at most one target to monitor, got {' and '.join('--monitor-' + k for k in given)}")
    if docker_url is not None and container is None:
        raise UsageError("--docker-url goes with --monitor-container")
    spec = scenario.monitor
    if given:
        return MonitorSpec(pid=pid, container=container, docker_url=docker_url, cgroup=cgroup,
                           interval_s=spec.interval_s if spec else 1.0)
    if spec is None or (spec.pid is None and spec.container is None and spec.cgroup is None and not spec.command):
        return None
    return spec


def _make_target(spec: Any) -> Any:
    """The scaling runner's monitor_target, with a container engine's failures as one usage line."""
    from benchtrack.load.scaling import monitor_target

    if spec.container is not None:
        from benchtrack.cli.watch_cmd import _container_target

        return _container_target(spec.container, spec.docker_url)
    return monitor_target(spec)


def _started_service(monitor: Any, base_url: str) -> Any:
    """Start the [monitor] command and wait until it accepts connections (stopped again on failure)."""
    from benchtrack.load.scaling import wait_until_accepting

    target = _make_target(monitor)
    try:
        wait_until_accepting(base_url, SERVICE_START_TIMEOUT_S)
    except BaseException:
        target.close()
        raise
    return target


def _check_reachable(base_url: str) -> None:
    """One line, before any load, when nothing listens at the base URL."""
    parts = urlsplit(base_url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname or "", port), timeout=REACH_TIMEOUT_S):
            return
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise UsageError(f"cannot reach {base_url}: {reason} (is the service running?)") from None


def _tracking_uri(option: str | None) -> str:
    from benchtrack.tracking.uri import resolve_tracking_uri

    return resolve_tracking_uri(option)


# --- tracking ----------------------------------------------------------------------------------


def _track(uri: str, run: Any, params: dict[str, str]) -> tuple[str | None, str | None]:
    """(run id, None), or (None, error line) with the document kept in .benchtrack/unsaved/."""
    from benchtrack.probes.environment import git_info, machine_fingerprint
    from benchtrack.tracking.loadruns import log_load_run
    from benchtrack.tracking.store import MlflowStore

    with tempfile.TemporaryDirectory(prefix="benchtrack-load-") as scratch:
        charts = _draw_charts(run, Path(scratch))
        try:
            store = MlflowStore(uri)
            record = run.monitor
            return log_load_run(store, run.result, run.document, fingerprint=machine_fingerprint(),
                                commit=git_info(Path.cwd()).commit, timeline=record.timeline if record else None,
                                cpu=record.cpu if record else (), charts=charts, params=params), None
        except TrackingError as exc:
            return None, f"{exc}; the load document is kept in {_keep_unsaved(run.document)}"


def _draw_charts(run: Any, folder: Path) -> list[Path]:
    """latency.png (latency and throughput per window) and memory.png; a chart never costs the run."""
    from benchtrack.report.charts import timeline_chart
    from benchtrack.report.load_charts import load_timeline_chart

    charts: list[Path] = []
    result = run.result
    try:
        charts.append(load_timeline_chart(result.windows, folder / "latency.png", title=f"load {result.scenario}",
                                          warmup_s=run.document["warmup_s"], requested_rps=result.requested_rps))
        if run.monitor is not None and run.monitor.timeline.times_s:
            charts.append(timeline_chart(run.monitor.timeline, folder / "memory.png",
                                         title=f"memory under load {result.scenario}", leak=run.leak))
    except Exception as exc:  # noqa: BLE001 - a chart must never cost the measurement
        Console(stderr=True).print(f"benchtrack: warning: could not draw a chart: {exc}", highlight=False, markup=False)
    return charts


def _keep_unsaved(document: dict[str, Any]) -> Path:
    from benchtrack.session import keep_unsaved

    return keep_unsaved("load", document)


# --- output ------------------------------------------------------------------------------------


def _print_table(run: Any, console: Console) -> None:
    document = run.document
    result = run.result
    table = Table(title=f"benchtrack load - {escape(result.scenario)}" + (f" ({result.tag})" if result.tag else ""),
                  show_header=False)
    table.add_column("", style="bold")
    table.add_column("")
    table.add_row("requests", f"{result.requests} in {result.duration_s:.1f} s after warm-up, "
                              f"{result.success_rate:.1%} succeeded, {result.timeouts} timed out")
    if result.errors:
        table.add_row("errors", escape(", ".join(f"{name} {count}" for name, count in sorted(result.errors.items()))))
    requested = f" of {result.requested_rps:.1f} requested" if result.requested_rps else ""
    table.add_row("throughput", f"{result.throughput_rps:.1f} requests/s{requested}"
                                + (" - SATURATED" if result.saturated else ""))
    lat = result.latency
    table.add_row("latency", f"p50 {lat.p50_ms:.1f} ms, p90 {lat.p90_ms:.1f}, p95 {lat.p95_ms:.1f}, p99 {lat.p99_ms:.1f}, "
                             f"max {lat.max_ms:.1f}, mean {lat.mean_ms:.1f}")
    memory = document["memory"]
    if memory is not None:
        leak = memory["leak"]
        trend = (f"{leak['slope_mb_per_min'] * 60:.3g} MB/hour (95% CI {leak['ci_low'] * 60:.3g} to "
                 f"{leak['ci_high'] * 60:.3g})" if leak["judged"] else "no verdict (too few samples)")
        table.add_row("memory", f"start {memory['start_mb']:.1f} MB, peak {memory['peak_mb']:.1f} MB, "
                                f"end {memory['end_mb']:.1f} MB")
        table.add_row("leak", f"{'LEAK (' + leak['severity'] + ')' if leak['detected'] else 'no leak'}: {trend}")
    else:
        table.add_row("memory", "not monitored (give --monitor-pid, --monitor-container or --monitor-cgroup)")
    cpu = document["cpu"]
    if cpu is not None and cpu["samples"]:
        table.add_row("cpu", f"mean {cpu['mean_percent']:.0f} %, max {cpu['max_percent']:.0f} % (of one CPU)")
    alerts = document["alerts"]
    table.add_row("alerts", f"{len(alerts)} fired" if alerts else "none")
    for warning in result.warnings:
        table.add_row("warning", escape(warning))
    console.print(table)
    verdict = run.verdict
    criteria = Table(title=f"criteria: {verdict.met} of {verdict.of} held, {verdict.required} required - "
                           + ("PASSED" if verdict.passed else "FAILED"))
    for column in ("criterion", "rule", "measured", "held"):
        criteria.add_column(column)
    for criterion in verdict.criteria:
        held = "n/a" if criterion.held is None else ("yes" if criterion.held else "[red]NO[/red]")
        criteria.add_row(criterion.name, escape(criterion.rule), escape(criterion.detail), held)
    console.print(criteria)


# --- compare -----------------------------------------------------------------------------------


def compare_load_operands(baseline: str, candidate: str, tracking_uri: str | None, output_format: OutputFormat,
                          chart: Path | None = None) -> int | None:
    """`benchtrack compare A B` when A and B are load runs (benchtrack.load/1 files or load run ids):
    print the comparison (and draw it at ``chart``), return the exit code; None when neither is a load run."""
    from benchtrack.load.compare import compare_document, compare_load, side_from_document

    documents = [_load_operand(text, tracking_uri) for text in (baseline, candidate)]
    if all(d is None for d in documents):
        return None
    if any(d is None for d in documents):
        one = baseline if documents[0] is not None else candidate
        raise UsageError(f"{one} is a load run: compare it with another load run (benchtrack.load/1 file or run id)")
    base = side_from_document(documents[0], baseline)  # type: ignore[arg-type]
    cand = side_from_document(documents[1], candidate)  # type: ignore[arg-type]
    comparisons = compare_load(base, cand)
    document = compare_document(base, cand, comparisons)
    if chart is not None:
        document["chart"] = str(_draw_comparison(base, cand, chart))
    if output_format is OutputFormat.json:
        typer.echo(json.dumps(document, indent=2, allow_nan=False))
    else:
        _print_comparison(document, _stdout_console())
    return EXIT_FAILED if document["summary"]["failed"] else EXIT_OK


def _load_operand(text: str, tracking_uri: str | None) -> dict[str, Any] | None:
    from benchtrack.verdicts.operands import RUN_ID

    path = Path(text)
    if path.is_file():
        return _load_file(path)
    if not RUN_ID.match(text):
        return None
    from benchtrack.tracking.loadruns import load_document_of_run
    from benchtrack.tracking.store import MlflowStore
    from benchtrack.tracking.uri import sqlite_path

    uri = _tracking_uri(tracking_uri)
    database = sqlite_path(uri)
    if database is not None and not database.exists():
        return None  # never create an empty store to look a run up; the usual path says it is missing
    try:
        store = MlflowStore(uri)
        if store.run_tags(text).get("benchtrack.type") != "load":
            return None
    except BenchtrackError:
        return None  # the usual path reports an unknown run id
    return load_document_of_run(store, text)


def _draw_comparison(base: Any, cand: Any, path: Path) -> Path:
    from benchtrack.load.compare import PERCENTILES, histogram_percentiles
    from benchtrack.report.load_charts import load_compare_chart

    def percentiles(side: Any) -> dict[str, float]:
        values = histogram_percentiles(side.histogram) or {}
        return {f"p{int(p)}": v for p, v in values.items() if p in PERCENTILES}

    return load_compare_chart(path, labels=(base.label, cand.label), percentiles=(percentiles(base), percentiles(cand)),
                              memory=((base.memory_times_s, base.memory_mb), (cand.memory_times_s, cand.memory_mb)),
                              title=f"load: {base.label} -> {cand.label}")


def _load_file(path: Path) -> dict[str, Any] | None:
    from benchtrack.load.compare import is_load_document

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return None  # not JSON: the other compare paths explain what it is not
    return data if is_load_document(data) else None


def _print_comparison(document: dict[str, Any], console: Console) -> None:
    table = Table(title=f"load: {escape(document['baseline'])} -> {escape(document['candidate'])}")
    for column in ("metric", "baseline", "candidate", "change", "95% interval", "verdict"):
        table.add_column(column)
    for c in document["comparisons"]:
        table.add_row(c["metric"], _value(c["metric"], c["baseline"]), _value(c["metric"], c["candidate"]),
                      _change(c["metric"], c["change"]),
                      "-" if c["ci_low"] is None else f"{_change(c['metric'], c['ci_low'])} to "
                                                      f"{_change(c['metric'], c['ci_high'])}",
                      c["verdict"])
    console.print(table)
    for c in document["comparisons"]:
        console.print(f"  {c['metric']}: {c['detail']} [{c['method']}]", style="dim", highlight=False, markup=False)


def _value(metric: str, value: float | None) -> str:
    if value is None:
        return "-"
    if metric == "success_rate":
        return f"{value:.1%}"
    return f"{value:.3g} MB/min" if metric == "memory_slope" else f"{value:.3g} ms"


def _change(metric: str, value: float | None) -> str:
    if value is None:
        return "-"
    if metric == "success_rate":
        return f"{value * 100:+.1f} pts"
    return f"{value:+.3g} MB/min" if metric == "memory_slope" else f"{value:+.1%}"
