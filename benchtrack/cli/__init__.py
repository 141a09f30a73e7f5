"""The typer CLI: parse options, call the core, render, and map errors to exit codes once."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import replace
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from benchtrack.errors import BenchtrackError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

app = typer.Typer(
    name="benchtrack",
    help="Performance and memory regression tracking, logged to MLflow.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

F = TypeVar("F", bound=Callable[..., Any])


class OutputFormat(str, Enum):
    table = "table"
    json = "json"


class PeakProbeName(str, Enum):
    auto = "auto"
    kernel_hwm = "kernel-hwm"
    sampler_thread = "sampler-thread"
    off = "off"


TrackingUriOption = Annotated[
    str | None,
    typer.Option("--tracking-uri",
                 help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///./mlflow.db)."),
]
CalibrationOption = Annotated[
    Path | None,
    typer.Option("--calibration", help="A/A calibration (benchtrack.calibration/1) for the noise between runs "
                                        "(default: .benchtrack/calibration/<fingerprint>.json if present)."),
]
InstructionsOption = Annotated[
    bool,
    typer.Option("--instructions", help="Also count instructions per operation of every timed benchmark, under valgrind "
                                        "(deterministic whatever the load; blind to I/O waits, cache misses, parallelism)."),
]
FormatOption = Annotated[
    OutputFormat, typer.Option("--format", help="table for people, json for machines (stdout holds only the JSON).")
]


def maps_errors(command: F) -> F:
    """The one place a BenchtrackError becomes one line on stderr and its exit code."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except BenchtrackError as exc:
            typer.echo(f"benchtrack: error: {exc}", err=True)
            raise typer.Exit(exc.exit_code) from None

    return wrapper  # type: ignore[return-value]


@app.command("run")
@maps_errors
def run_command(
    folder: Annotated[
        Path, typer.Argument(help="Folder with bench_*.py files (each sub-folder is a suite).")
    ] = Path("experiments"),
    level: Annotated[
        str, typer.Option("--level", "-l", help="Level from levels.toml: quick, comprehensive, nightly.")
    ] = "quick",
    benchmark: Annotated[
        list[str] | None, typer.Option("--benchmark", "-b", help="Run only this benchmark (repeatable).")
    ] = None,
    processes: Annotated[int | None, typer.Option(min=1, help="Override the level's worker processes per benchmark.")] = None,
    samples: Annotated[int | None, typer.Option(min=1, help="Override the level's samples per process.")] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Also write the raw results (benchtrack.result/1 JSON) here.")
    ] = None,
    tracking_uri: TrackingUriOption = None,
    no_track: Annotated[bool, typer.Option("--no-track", help="Measure and report without logging to MLflow.")] = False,
    peak_probe: Annotated[PeakProbeName, typer.Option(help="How peak RSS is measured per sample.")] = PeakProbeName.auto,
    baseline: Annotated[
        list[Path] | None,
        typer.Option("--baseline", help="Compare with baseline snapshots (baselines/*.json, repeatable), not the store's."),
    ] = None,
    calibration_file: CalibrationOption = None,
    instructions: InstructionsOption = False,
    output_format: FormatOption = OutputFormat.table,
) -> None:
    """Run a benchmark folder at a level, log every run to MLflow, and judge it against its baselines.

    Exit 1 when a regression reaches the level's fail_on (or a benchmark failed).

    Example: benchtrack run experiments/ --level quick
    """
    from benchtrack.cli.render import print_json
    from benchtrack.probes.environment import collect_metadata
    from benchtrack.results import dumps_results
    from benchtrack.session import RunOptions, Session, prepare
    from benchtrack.tracking.uri import resolve_tracking_uri

    options = RunOptions(folder=folder, level=level, only=tuple(benchmark or ()), processes=processes,
                         samples=samples, peak_probe=peak_probe.value, instructions=instructions)
    discovery, config, chosen_level, plans = prepare(options)
    snapshots = _load_snapshots(baseline or [])
    if options.only and not plans:
        raise BenchtrackError(f"no benchmark named {', '.join(options.only)} at level {level!r}")
    uri = None if no_track else resolve_tracking_uri(tracking_uri)
    store = _open_store(uri) if uri else None
    metadata = collect_metadata(folder)
    stderr = Console(stderr=True)
    calibration = _calibration(calibration_file, metadata, config.calibration_max_age_s, store)
    _warn_before_measuring(stderr, list(zip(baseline or [], snapshots, strict=True)), config, metadata, chosen_level,
                           discovery)
    total = sum(item.processes for plan in plans for item in plan.items)
    with _progress(stderr) as progress:
        task = progress.add_task("measuring", total=total)

        def advance(event: Any) -> None:
            progress.update(task, advance=1, description=f"{event.item.name} (process {event.process + 1})")

        session = Session(store, metadata, on_progress=advance, leak_thresholds=config.leak)
        invocation = session.run(options, discovery, chosen_level, plans)
    if output is not None:
        output.write_text(dumps_results(s.result for s in invocation.suites), encoding="utf-8")
    judgements = _judge(invocation, config, chosen_level, store, snapshots, calibration)
    document = _run_document(invocation, uri, judgements, chosen_level)
    _publish_reports(store, invocation, document, stderr)
    if output_format is OutputFormat.json:
        print_json(document)
    else:
        _print_run_tables(invocation, judgements, chosen_level, config, folder, stderr)
        if uri and invocation.tracking_error is None:
            stderr.print(f"logged to {uri} (browse with: benchtrack ui)", highlight=False, markup=False, soft_wrap=True)
    code = _run_exit_code(invocation, stderr)
    if code == EXIT_OK and any(j.failing(chosen_level) for j in judgements):
        code = EXIT_FAILED
    raise typer.Exit(code)


def _warn_before_measuring(stderr: Console, snapshots: list[tuple[Path, Any]], config: Any, metadata: dict[str, str],
                           level: Any, discovery: Any) -> None:
    """What a user should know before the minutes of measuring start."""
    from benchtrack.probes.environment import busy_machine_warnings
    from benchtrack.probes.instructions import find_valgrind

    def warn(text: str) -> None:
        stderr.print(f"benchtrack: {text}", highlight=False, markup=False, soft_wrap=True)

    for path, snapshot in snapshots:
        for reason in _snapshot_mismatches(snapshot, config.baseline_branch, metadata):
            warn(f"warning: baseline snapshot {path}: {reason}")
    for warning in busy_machine_warnings():
        warn(f"warning: {warning}; samples taken while descheduled are flagged and wall-time verdicts are checked "
             "against CPU time")
    if level.instructions and find_valgrind() is None:
        warn(f"warning: level {level.name} counts instructions, but valgrind is not installed: no instruction counts this run")
    for error in discovery.errors if stderr.is_terminal else ():  # repeated in the summary; once is enough in logs
        warn(f"error: {error.relative}: {error.message}")


def _print_run_tables(invocation: Any, judgements: list[Any], level: Any, config: Any, folder: Path,
                      stderr: Console) -> None:
    from benchtrack.cli.render import print_run_table
    from benchtrack.cli.verdict_render import print_memory_checks, print_verdicts

    console = _stdout_console()
    print_run_table(invocation, console)
    for judgement in judgements:
        title = f"{judgement.suite}: against {judgement.baseline_source}" if judgement.report.comparisons \
            else f"{judgement.suite}: no baseline yet" if not judgement.baselines \
            else f"{judgement.suite} ({judgement.baselines} baselines, but no metric they share with this run)"
        print_verdicts(judgement.report, level, console, title, judgement.promotions)
        if not judgement.baselines and not level.promote:
            stderr.print(f"benchtrack: {judgement.suite} has no baseline yet and level {level.name} never sets one: "
                         f"run `benchtrack run {folder} --level comprehensive` once on branch {config.baseline_branch} "
                         "with a clean work tree, then this level is judged against it",
                         highlight=False, markup=False, soft_wrap=True)
        print_memory_checks(judgement.checks, level, console)


def _run_document(invocation: Any, uri: str | None, judgements: list[Any], level: Any) -> dict[str, Any]:
    """The `benchtrack.run/1` document: what --format json prints and what the reports render."""
    from benchtrack.cli.render import invocation_document
    from benchtrack.cli.verdict_render import compare_document

    document = invocation_document(invocation, uri)
    document["verdicts"] = {j.suite: compare_document(j.report, level, j.baseline_source, "this run", j.promotions)
                            for j in judgements}
    document["memory_checks"] = [
        {"suite": j.suite, "benchmark": c.benchmark, "check": c.check, "passed": c.passed, "severity": c.severity,
         "fails": not c.passed and level.fails(c.severity), "detail": c.detail}
        for j in judgements for c in j.checks
    ]
    return document


def _publish_reports(store: Any, invocation: Any, document: dict[str, Any], stderr: Console) -> None:
    """report.md/html/json on each suite's parent run, charts on the benchmarks that changed."""
    from benchtrack.report.publish import publish_run_reports

    if store is None or invocation.tracking_error is not None:
        return
    for warning in publish_run_reports(store, document):
        stderr.print(f"benchtrack: warning: {warning}", highlight=False, markup=False, soft_wrap=True)


def _load_snapshots(paths: list[Path]) -> list[Any]:
    from benchtrack.baseline_snapshot import load_snapshots

    return load_snapshots(paths)


def _snapshot_mismatches(snapshot: Any, branch: str, metadata: dict[str, str]) -> list[str]:
    from benchtrack.baseline_snapshot import snapshot_mismatches

    return snapshot_mismatches(snapshot, branch, metadata.get("benchtrack.machine.fingerprint", ""))


def _judge(invocation: Any, config: Any, level: Any, store: Any, snapshots: list[Any], calibration: Any) -> list[Any]:
    """Verdicts against the current baselines (or snapshots); skipped when the store failed."""
    from benchtrack.verdicts.judging import SnapshotBaselines, StoreBaselines, judge

    if invocation.tracking_error:
        return []
    registry = None
    source: Any = SnapshotBaselines(snapshots) if snapshots else None
    if store is not None:
        from benchtrack.tracking.baselines import BaselineRegistry

        registry = BaselineRegistry(store)
        source = source or StoreBaselines(store, registry)
    return judge(invocation, config, level, store, source, registry, calibration)


def _calibration(path: Path | None, metadata: dict[str, str], max_age_s: float, store: Any = None) -> Any:
    """The A/A calibration named, else the one `benchtrack calibrate` stored for this machine
    fingerprint when it is younger than max_age_s, else None."""
    from benchtrack.verdicts.calibration import find_calibration, load_calibration

    if path is not None:
        return load_calibration(path)
    return find_calibration(metadata.get("benchtrack.machine.fingerprint", ""), Path.cwd(), max_age_s,
                            store.latest_calibration if store is not None else None)


def _run_exit_code(invocation: Any, stderr: Console) -> int:
    for error in invocation.file_errors:
        stderr.print(f"benchtrack: error: {error.relative}: {error.message}", highlight=False, markup=False, soft_wrap=True)
    if invocation.tracking_error:
        stderr.print(f"benchtrack: error: {invocation.tracking_error}; results kept in {invocation.spool_path}"
                     f" (log them later with: benchtrack import {invocation.spool_path})",
                     highlight=False, markup=False, soft_wrap=True)
    if invocation.file_errors or invocation.tracking_error:
        return EXIT_USAGE
    return EXIT_FAILED if invocation.failed_benchmarks else EXIT_OK


def _stdout_console() -> Console:
    """Tables keep their columns when piped to a file or a CI log (rich would use 80)."""
    console = Console()
    return console if console.is_terminal else Console(width=200)


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), console=console, transient=True, disable=not console.is_terminal,
    )


def load_cli_config(levels_file: Path | None) -> Any:
    """The levels file a command names, else experiments/levels.toml when present, else defaults."""
    from benchtrack.config import load_config
    from benchtrack.errors import UsageError

    if levels_file is not None and not levels_file.is_file():
        raise UsageError(f"no such levels file: {levels_file}")
    default = Path("experiments") / "levels.toml"
    return load_config(levels_file or (default if default.is_file() else None))


def _open_store(uri: str) -> Any:
    from benchtrack.tracking.store import MlflowStore

    return MlflowStore(uri)


@app.command("list")
@maps_errors
def list_command(
    folder: Annotated[Path, typer.Argument(help="Folder with bench_*.py files.")] = Path("experiments"),
    level: Annotated[str | None, typer.Option("--level", "-l", help="Show only what this level runs.")] = None,
    output_format: FormatOption = OutputFormat.table,
) -> None:
    """List the benchmarks found in a folder, with parameters, kinds, tags and levels.

    Example: benchtrack list experiments/ --level quick
    """
    from benchtrack.cli.listing import list_document, print_listing

    document = list_document(folder, level)
    if output_format is OutputFormat.json:
        from benchtrack.cli.render import print_json

        print_json(document)
    else:
        print_listing(document, _stdout_console(), Console(stderr=True))
    raise typer.Exit(EXIT_USAGE if document["file_errors"] else EXIT_OK)


@app.command("check")
@maps_errors
def check_command(
    tracking_uri: TrackingUriOption = None,
    output_format: FormatOption = OutputFormat.table,
) -> None:
    """Check the environment: dependencies, tracking store, git, valgrind, and noisy-machine advisories.

    Example: benchtrack check --tracking-uri http://127.0.0.1:5000
    """
    from benchtrack.cli.checks import print_checks, run_checks
    from benchtrack.cli.render import print_json

    document = run_checks(tracking_uri)
    if output_format is OutputFormat.json:
        print_json(document)
    else:
        print_checks(document, _stdout_console())
    raise typer.Exit(EXIT_OK if document["ok"] else EXIT_USAGE)


@app.command("import")
@maps_errors
def import_command(
    file: Annotated[Path, typer.Argument(help="A benchtrack, pytest-benchmark (--benchmark-json) or pyperf result file.")],
    fingerprint: Annotated[
        str | None,
        typer.Option("--fingerprint", help="Machine fingerprint to file foreign results under (default: this machine)."),
    ] = None,
    tracking_uri: TrackingUriOption = None,
) -> None:
    """Log a result file to the tracking store: a run kept in .benchtrack/unsaved/, or pytest-benchmark
    and pyperf results to migrate their history.

    Example: benchtrack import .benchmarks/Linux-CPython-3.11-64bit/0001_abc.json
    """
    import uuid

    from benchtrack.probes.environment import machine_fingerprint
    from benchtrack.tracking.uri import resolve_tracking_uri
    from benchtrack.verdicts.operands import load_result_file

    runs = load_result_file(file)
    store = _open_store(resolve_tracking_uri(tracking_uri))
    invocation = uuid.uuid4().hex
    for loaded in runs:
        run = loaded
        if "benchtrack.machine.fingerprint" not in run.metadata:
            # Foreign tools record no fingerprint; imported history is filed under this machine
            # (or the one named) so baselines and comparisons can find it.
            run = replace(run, metadata={**run.metadata, "benchtrack.machine.fingerprint": fingerprint or machine_fingerprint()})
        parent = store.start_invocation(run, invocation)
        for bench in run.benchmarks:
            store.log_benchmark(parent, run, bench)
        store.finish_invocation(parent, run)
        typer.echo(f"imported {len(run.benchmarks)} benchmarks of suite {run.suite} as run {parent}")
    raise typer.Exit(EXIT_OK)


def main() -> None:
    app(prog_name="benchtrack")


# Command modules register themselves on `app`; imported last because they import from here.
from benchtrack.cli import compare_cmd, export_cmd, history_cmd, load_cmd, report_cmd, ui_cmd, watch_cmd  # noqa: E402, F401
