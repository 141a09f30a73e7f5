"""`benchtrack compare` and the `benchtrack baseline` commands."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from benchtrack.cli import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    CalibrationOption,
    FormatOption,
    InstructionsOption,
    OutputFormat,
    TrackingUriOption,
    _calibration,
    _open_store,
    _stdout_console,
    app,
    load_cli_config,
    maps_errors,
)
from benchtrack.errors import UsageError

baseline_app = typer.Typer(help="Show, promote, list and export baselines.", no_args_is_help=True)
app.add_typer(baseline_app, name="baseline")

NOT_SUITES = frozenset({"watch", "profiles"})  # experiments of `benchtrack watch` and MemoryProfiler
LevelsOption = Annotated[
    Path | None, typer.Option("--levels", help="levels.toml with thresholds (default: experiments/levels.toml if present).")
]


class _LazyStore:
    """Opened only when an operand needs it: comparing two files never imports mlflow."""

    def __init__(self, tracking_uri: str | None) -> None:
        self._uri = tracking_uri
        self.store: Any = None

    def available(self, tracking_uri: str | None) -> bool:
        """A store to read history from: one already opened, or one named or present."""
        from benchtrack.tracking.uri import EMBEDDED_DB

        return (self.store is not None or bool(tracking_uri) or bool(os.environ.get("MLFLOW_TRACKING_URI"))
                or Path(EMBEDDED_DB).exists())

    def __call__(self) -> Any:
        if self.store is None:
            from benchtrack.tracking.uri import resolve_tracking_uri, sqlite_path

            uri = resolve_tracking_uri(self._uri)
            database = sqlite_path(uri)
            if database is not None and not database.exists():
                # Reading a run from a store that does not exist: say so, don't create an empty one.
                raise UsageError(f"no tracking store at {database}: pass --tracking-uri or set MLFLOW_TRACKING_URI")
            self.store = _open_store(uri)
        return self.store


class _StoredCalibrations:
    """latest_calibration of a store opened only when asked."""

    def __init__(self, lazy: _LazyStore) -> None:
        self._lazy = lazy

    def latest_calibration(self, fingerprint: str) -> str | None:
        return self._lazy().latest_calibration(fingerprint)


@app.command("compare")
@maps_errors
def compare_command(
    baseline: Annotated[str, typer.Argument(help="Baseline: a result file, an MLflow run id or a git ref.")],
    candidate: Annotated[
        str | None,
        typer.Argument(help="Candidate: a result file, an MLflow run id or a git ref (with --rerun: default the work tree)."),
    ] = None,
    level: Annotated[str, typer.Option("--level", "-l", help="Level whose thresholds and fail_on apply.")] = "comprehensive",
    fail_on: Annotated[
        str | None, typer.Option("--fail-on", help="Exit 1 at this severity or above: minor, major, critical, none.")
    ] = None,
    benchmark: Annotated[list[str] | None, typer.Option("--benchmark", "-b", help="Compare only this benchmark.")] = None,
    allow_missing: Annotated[
        bool, typer.Option("--allow-missing", help="Skip benchmarks present on one side only instead of failing.")
    ] = False,
    levels_file: LevelsOption = None,
    calibration_file: CalibrationOption = None,
    tracking_uri: TrackingUriOption = None,
    output_format: FormatOption = OutputFormat.table,
    rerun: Annotated[
        bool, typer.Option("--rerun", help="Measure both git refs now, side by side in interleaved rounds, instead of "
                                           "reading stored runs.")
    ] = False,
    folder: Annotated[
        Path, typer.Option("--folder", help="With --rerun: the benchmark folder, inside the repository.")
    ] = Path("experiments"),
    seed: Annotated[
        int | None,
        typer.Option("--seed", help="With --rerun: seed of the order of the sides in each round (default: a fresh one, "
                                    "reported in the JSON)."),
    ] = None,
    instructions: InstructionsOption = False,
    duet: Annotated[
        bool, typer.Option("--duet", help="With --rerun: run both sides at once, each pinned to its own CPU, round after "
                                          "round (levels file: [rerun] mode).")
    ] = False,
    chart: Annotated[
        Path | None, typer.Option("--chart", help="With two load runs: also draw latency and memory side by side as a PNG.")
    ] = None,
) -> None:
    """Compare two runs: files (benchtrack, pytest-benchmark, pyperf, baseline snapshots), run ids or git refs.

    With --rerun, both git refs are checked out into temporary worktrees and measured now,
    interleaved (CANDIDATE defaults to the work tree, uncommitted changes included). The code
    under test imports from each checkout's root and src/ (levels file: [rerun] pythonpath).

    Example: benchtrack compare main HEAD --fail-on major

    Example: benchtrack compare main --rerun -b json.roundtrip
    """
    from benchtrack.cli.render import print_json
    from benchtrack.cli.verdict_render import compare_document, print_verdicts
    from benchtrack.config import ALL_BENCHMARKS, select_level
    from benchtrack.probes.environment import machine_fingerprint
    from benchtrack.probes.instructions import require_valgrind
    from benchtrack.verdicts.operands import compare_operands, resolve

    config = load_cli_config(levels_file)
    chosen = select_level(config.levels, level)
    if fail_on is not None:
        if fail_on not in ("minor", "major", "critical", "none"):
            raise UsageError(f"--fail-on must be minor, major, critical or none, got {fail_on!r}")
        chosen = replace(chosen, fail_on=fail_on)
    if duet and not rerun:
        raise UsageError("--duet is a way of measuring: it goes with --rerun")
    if duet:
        config = replace(config, rerun=replace(config.rerun, mode="duet"))
    if instructions and not rerun:
        raise UsageError("--instructions measures: it goes with --rerun (stored runs keep the counts they were measured with)")
    if instructions:
        require_valgrind()
        chosen = replace(chosen, instructions=(ALL_BENCHMARKS,))
    if rerun:
        _compare_rerun(baseline, candidate, folder, tuple(benchmark or ()), config, chosen, tracking_uri,
                       secrets.randbelow(2**31) if seed is None else seed, output_format)
    if candidate is None:
        raise UsageError("compare needs a candidate (or --rerun, which measures the work tree)")
    from benchtrack.cli.load_cmd import compare_load_operands

    load_code = compare_load_operands(baseline, candidate, tracking_uri, output_format, chart)  # two `benchtrack load` runs
    if load_code is not None:
        raise typer.Exit(load_code)
    lazy = _LazyStore(tracking_uri)
    fingerprint = machine_fingerprint()
    left = resolve(baseline, lazy, fingerprint, Path.cwd())
    right = resolve(candidate, lazy, fingerprint, Path.cwd())
    base, cand = _select(left.benchmarks(), right.benchmarks(), tuple(benchmark or ()), allow_missing, baseline, candidate)
    store = lazy if lazy.available(tracking_uri) else None
    calibration = _calibration(calibration_file, right.metadata or left.metadata, config.calibration_max_age_s,
                               _StoredCalibrations(lazy) if store else None)
    report = compare_operands(left, right, base, cand, config, chosen, store, calibration)
    if output_format is OutputFormat.json:
        print_json(compare_document(report, chosen, baseline, candidate))
    else:
        print_verdicts(report, chosen, _stdout_console(), f"{baseline} -> {candidate}")
    raise typer.Exit(EXIT_FAILED if report.failing(chosen) else EXIT_OK)


def _compare_rerun(baseline: str, candidate: str | None, folder: Path, only: tuple[str, ...], config: Any,
                   level: Any, tracking_uri: str | None, seed: int, output_format: OutputFormat) -> None:
    """Measure both refs side by side, print the verdicts, exit with their code."""
    from benchtrack.cli.render import print_json
    from benchtrack.cli.verdict_render import compare_document, print_verdicts
    from benchtrack.sidebyside.rerun import compare_side_by_side
    from benchtrack.tracking.uri import resolve_tracking_uri

    uri = resolve_tracking_uri(tracking_uri)
    stderr = Console(stderr=True)
    try:
        with _rounds_progress(stderr, "measuring side by side") as advance:
            outcome = compare_side_by_side(Path.cwd(), baseline, candidate, folder, only, config, level,
                                           lambda: _open_store(uri), seed, advance)
    except KeyboardInterrupt:
        stderr.print("benchtrack: interrupted; worktrees removed, nothing logged", highlight=False, markup=False)
        raise typer.Exit(130) from None
    measured = outcome.measured
    if output_format is OutputFormat.json:
        document = compare_document(outcome.report, level, outcome.labels[0], outcome.labels[1])
        document["rerun"] = {
            "id": outcome.comparison_id, "mode": config.rerun.mode, "seed": measured.seed,
            "rounds": dict(measured.rounds), "stopped": dict(measured.stopped),
            "first_side": {name: list(order) for name, order in measured.order.items()},
            "file_errors": list(outcome.file_errors),
            "parent_run_ids": {"baseline": outcome.parent_run_ids[0], "candidate": outcome.parent_run_ids[1]},
            "tracking_uri": uri, "tracking_error": outcome.tracking_error,
            "spool": str(outcome.spool_path) if outcome.spool_path else None,
        }
        print_json(document)
    else:
        title = f"{outcome.labels[0]} -> {outcome.labels[1]}, measured side by side ({config.rerun.mode} rounds)"
        print_verdicts(outcome.report, level, _stdout_console(), title)
        rounds = ", ".join(f"{name} {measured.rounds[name]} ({why})" for name, why in sorted(measured.stopped.items()))
        stderr.print(f"rounds per benchmark: {rounds}", highlight=False, markup=False, soft_wrap=True)
        if outcome.tracking_error:
            stderr.print(f"benchtrack: warning: not logged ({outcome.tracking_error}); results kept in {outcome.spool_path}",
                         highlight=False, markup=False, soft_wrap=True)
        else:
            stderr.print(f"both sides logged to {uri} (comparison {outcome.comparison_id})", highlight=False,
                         markup=False, soft_wrap=True)
    for error in outcome.file_errors:
        stderr.print(f"benchtrack: error: {error}", highlight=False, markup=False, soft_wrap=True)
    for name in outcome.failed:
        stderr.print(f"benchtrack: {name} failed on one side: {outcome.report.skipped.get(name, 'not judged')}",
                     highlight=False, markup=False, soft_wrap=True)
    if outcome.file_errors:
        raise typer.Exit(EXIT_USAGE)
    raise typer.Exit(EXIT_FAILED if outcome.report.failing(level) or outcome.failed else EXIT_OK)


def _store_calibration(uri: str, calibration: Any, stderr: Console) -> str | None:
    """Log the calibration to the tracking store beside the file; a store that fails loses nothing."""
    import json

    from benchtrack.errors import BenchtrackError
    from benchtrack.verdicts.calibration import calibration_to_dict

    try:
        return str(_open_store(uri).log_calibration(calibration.fingerprint, calibration.created_at,
                                                    json.dumps(calibration_to_dict(calibration), indent=1)))
    except BenchtrackError as exc:
        stderr.print(f"benchtrack: warning: calibration not logged to {uri} ({exc}); the file holds it",
                     highlight=False, markup=False, soft_wrap=True)
        return None


@contextlib.contextmanager
def _rounds_progress(stderr: Console, title: str, rounds: int | None = None) -> Iterator[Callable[[Any], None]]:
    """A progress line for side-by-side rounds, and the callback that advances it. SIGTERM (a
    cancelled CI job) unwinds like Ctrl-C meanwhile, so worktrees and workers are removed."""
    from benchtrack.cli import _progress

    def interrupt(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    of = f" of {rounds}" if rounds else ""
    with _progress(stderr) as progress:
        task = progress.add_task(title, total=None)

        def advance(event: Any) -> None:
            progress.update(task, advance=1, description=f"{event.item.name} (round {event.process + 1}{of})")

        yield advance


def _select(base: dict[str, Any], cand: dict[str, Any], only: tuple[str, ...], allow_missing: bool,
            base_text: str, cand_text: str) -> tuple[dict[str, Any], dict[str, Any]]:
    if only:
        for name in only:
            for side, text in ((base, base_text), (cand, cand_text)):
                if name not in side:
                    raise UsageError(f"benchmark {name!r} is missing from {text}")
        base = {k: v for k, v in base.items() if k in only}
        cand = {k: v for k, v in cand.items() if k in only}
    missing = sorted(set(base) ^ set(cand))
    if missing and not allow_missing:
        where = ", ".join(f"{name} (only in {base_text if name in base else cand_text})" for name in missing[:5])
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise UsageError(f"benchmarks missing on one side: {where}{more} (use --allow-missing to skip them)")
    if not set(base) & set(cand):
        raise UsageError(f"{base_text} and {cand_text} have no benchmark in common")
    return base, cand


def _this_machine(branch: str | None, fingerprint: str | None) -> tuple[str, str]:
    from benchtrack.probes.environment import git_info, machine_fingerprint

    return branch or git_info(Path.cwd()).branch or "main", fingerprint or machine_fingerprint()


BranchOption = Annotated[str | None, typer.Option("--branch", help="Baseline branch (default: levels.toml's baseline branch).")]
FingerprintOption = Annotated[str | None, typer.Option("--fingerprint", help="Machine fingerprint (default: this machine).")]
SuiteOption = Annotated[str | None, typer.Option("--suite", help="Suite name (default: every suite in the store).")]


def _suites(store: Any, suite: str | None) -> list[str]:
    if suite:
        return [suite]
    from benchtrack.tracking.store import EXPERIMENT_PREFIX

    names = [e.name for e in store.client.search_experiments(filter_string=f"name LIKE '{EXPERIMENT_PREFIX}%'")]
    suites = (n.removeprefix(EXPERIMENT_PREFIX) for n in names)
    return sorted(s for s in suites if not s.startswith("_") and s not in NOT_SUITES)


@baseline_app.command("show")
@maps_errors
def baseline_show(
    suite: SuiteOption = None,
    branch: BranchOption = None,
    fingerprint: FingerprintOption = None,
    levels_file: LevelsOption = None,
    tracking_uri: TrackingUriOption = None,
    output_format: FormatOption = OutputFormat.table,
) -> None:
    """Show the current baseline of every benchmark for a branch and machine.

    Example: benchtrack baseline show --suite examples
    """
    from benchtrack.cli.render import print_json
    from benchtrack.tracking.baselines import BaselineRegistry
    from benchtrack.tracking.uri import resolve_tracking_uri

    branch, fingerprint = _this_machine(branch or load_cli_config(levels_file).baseline_branch, fingerprint)
    store = _open_store(resolve_tracking_uri(tracking_uri))
    registry = BaselineRegistry(store)
    rows = [(s, record) for s in _suites(store, suite) for record in registry.current_for(s, branch, fingerprint).values()]
    if output_format is OutputFormat.json:
        print_json({"schema": "benchtrack.baselines/1", "branch": branch, "fingerprint": fingerprint,
                    "baselines": [_record_entry(s, r) for s, r in rows]})
    else:
        _print_records(f"baselines on {branch} @ {fingerprint}", rows, _stdout_console())
    raise typer.Exit(EXIT_OK)


@baseline_app.command("promote")
@maps_errors
def baseline_promote(
    run_id: Annotated[str, typer.Argument(help="A benchmark run id, or a parent run id to promote all its benchmarks.")],
    reason: Annotated[str, typer.Option("--reason", help="Why, for the record.")] = "manual",
    tracking_uri: TrackingUriOption = None,
) -> None:
    """Make a run the current baseline of its benchmark (an append-only promotion record).

    Example: benchtrack baseline promote 3f2a...e9 --reason "accepted slowdown, see PR 42"
    """
    from benchtrack.tracking.baselines import BaselineRegistry
    from benchtrack.tracking.uri import resolve_tracking_uri

    store = _open_store(resolve_tracking_uri(tracking_uri))
    registry = BaselineRegistry(store)
    tags = store.run_tags(run_id)
    children = store.child_run_ids(run_id) if tags.get("benchtrack.type") == "invocation" else [run_id]
    for child in children:
        record = registry.promote(child, reason)
        typer.echo(f"promoted {record.key.benchmark} ({child}) on {record.key.branch}")
    raise typer.Exit(EXIT_OK)


@baseline_app.command("history")
@maps_errors
def baseline_history(
    benchmark: Annotated[str, typer.Argument(help="Benchmark name, e.g. 'json.roundtrip[size=100]'.")],
    suite: Annotated[str, typer.Option("--suite", help="The benchmark's suite.")],
    branch: BranchOption = None,
    fingerprint: FingerprintOption = None,
    levels_file: LevelsOption = None,
    tracking_uri: TrackingUriOption = None,
    output_format: FormatOption = OutputFormat.table,
) -> None:
    """Every promotion record of one benchmark, current first.

    Example: benchtrack baseline history 'json.roundtrip[size=100]' --suite examples
    """
    from benchtrack.cli.render import print_json
    from benchtrack.tracking.baselines import BaselineKey, BaselineRegistry
    from benchtrack.tracking.uri import resolve_tracking_uri

    branch, fingerprint = _this_machine(branch or load_cli_config(levels_file).baseline_branch, fingerprint)
    registry = BaselineRegistry(_open_store(resolve_tracking_uri(tracking_uri)))
    records = registry.history(BaselineKey(suite, benchmark, branch, fingerprint))
    if output_format is OutputFormat.json:
        print_json({"schema": "benchtrack.baseline-history/1", "records": [_record_entry(suite, r) for r in records]})
    else:
        _print_records(f"promotions of {benchmark} on {branch}", [(suite, r) for r in records], _stdout_console())
    raise typer.Exit(EXIT_OK)


@baseline_app.command("export")
@maps_errors
def baseline_export(
    suite: SuiteOption = None,
    branch: BranchOption = None,
    fingerprint: FingerprintOption = None,
    folder: Annotated[Path, typer.Option("--folder", help="Where the baselines/ folder goes.")] = Path(),
    levels_file: LevelsOption = None,
    tracking_uri: TrackingUriOption = None,
) -> None:
    """Write the current baselines as versioned JSON snapshots into baselines/ (for CI without a server).

    Example: benchtrack baseline export --suite examples, then: benchtrack run --baseline baselines/FILE.json
    """
    import time

    from benchtrack.tracking.baselines import BaselineRegistry, export_snapshot
    from benchtrack.tracking.uri import resolve_tracking_uri

    branch, fingerprint = _this_machine(branch or load_cli_config(levels_file).baseline_branch, fingerprint)
    store = _open_store(resolve_tracking_uri(tracking_uri))
    registry = BaselineRegistry(store)
    written = 0
    for name in _suites(store, suite):
        if not registry.current_for(name, branch, fingerprint):
            continue
        path = export_snapshot(registry, name, branch, fingerprint, folder, time.time())
        typer.echo(f"wrote {path}")
        written += 1
    if not written:
        raise UsageError(f"no baselines on {branch} for fingerprint {fingerprint} to export")
    raise typer.Exit(EXIT_OK)


def _record_entry(suite: str, record: Any) -> dict[str, Any]:
    return {"suite": suite, "benchmark": record.key.benchmark, "run_id": record.run_id, "commit": record.commit,
            "reason": record.reason, "measured_ms": record.source_start_ms, "recorded_ms": record.recorded_ms,
            "record_id": record.record_id}


def _print_records(title: str, rows: list[tuple[str, Any]], console: Console) -> None:
    import datetime

    table = Table(title=title)
    for column in ("suite", "benchmark", "run id", "commit", "reason", "measured"):
        table.add_column(column)
    for suite, record in rows:
        measured = datetime.datetime.fromtimestamp(record.source_start_ms / 1000, tz=datetime.UTC)
        table.add_row(escape(suite), escape(record.key.benchmark), record.run_id, (record.commit or "")[:12],
                      escape(record.reason), measured.strftime("%Y-%m-%d %H:%M:%S UTC"))
    console.print(table)
    if not rows:
        console.print("no baselines yet: they are promoted by `benchtrack run` on the baseline branch")


@app.command("bisect")
@maps_errors
def bisect_command(
    good: Annotated[str, typer.Argument(help="A git ref where the benchmark was still fast.")],
    bad: Annotated[str, typer.Argument(help="A later git ref where it is slow.")],
    benchmark: Annotated[str, typer.Option("--benchmark", "-b", help="The benchmark that regressed.")],
    folder: Annotated[Path, typer.Option("--folder", help="The benchmark folder, inside the repository.")] = Path("experiments"),
    level: Annotated[str, typer.Option("--level", "-l", help="Level whose samples and thresholds apply.")] = "quick",
    levels_file: LevelsOption = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the order of the sides in each round.")] = 0,
    output_format: FormatOption = OutputFormat.table,
) -> None:
    """Find the first commit between GOOD and BAD at which a benchmark regressed, measuring each
    step side by side with GOOD (interleaved rounds), like git bisect.

    Example: benchtrack bisect v1.2 HEAD -b json.roundtrip
    """
    from benchtrack.cli.render import print_json
    from benchtrack.config import select_level
    from benchtrack.sidebyside.bisect import bisect

    config = load_cli_config(levels_file)
    chosen = select_level(config.levels, level)
    stderr = Console(stderr=True)
    with _rounds_progress(stderr, "bisecting") as advance:
        result = bisect(Path.cwd(), good, bad, benchmark, folder, config, chosen, seed, advance)
    steps = [result.end_to_end, *result.steps]
    if output_format is OutputFormat.json:
        print_json({
            "schema": "benchtrack.bisect/1", "benchmark": benchmark, "good": result.good, "bad": result.bad,
            "first_bad": result.first_bad, "message": result.message,
            "steps": [{"commit": s.commit, "outcome": s.outcome, "verdict": s.verdict, "change": s.change,
                       "ci_low": s.ci_low, "ci_high": s.ci_high, "rounds": s.rounds, "remeasured": s.remeasured,
                       "end_to_end": index == 0} for index, s in enumerate(steps)],
        })
    else:
        table = Table(title=escape(f"{benchmark}: bisect {result.good[:10]}..{result.bad[:10]} (each step against GOOD)"))
        for column in ("commit", "outcome", "wall-time change", "interval", "rounds"):
            table.add_column(column)
        for index, s in enumerate(steps):
            label = f"{s.commit[:10]}{' (BAD)' if index == 0 else ''}"
            interval = f"[{s.ci_low:+.1%}, {s.ci_high:+.1%}]" if s.outcome != "skipped" else "-"
            change = f"{s.change:+.1%}" if s.outcome != "skipped" else "failed to run"
            outcome = s.outcome + (" (measured twice)" if s.remeasured else "")
            table.add_row(escape(label), outcome, change, interval, str(s.rounds))
        console = _stdout_console()
        console.print(table)
        console.print(escape(result.message), highlight=False, soft_wrap=True)
    raise typer.Exit(EXIT_OK)


@app.command("calibrate")
@maps_errors
def calibrate_command(
    folder: Annotated[Path, typer.Option("--folder", help="The benchmark folder, inside the repository.")] = Path("experiments"),
    level: Annotated[str, typer.Option("--level", "-l", help="Level whose invocations to calibrate (its processes).")]
    = "comprehensive",
    benchmark: Annotated[list[str] | None, typer.Option("--benchmark", "-b", help="Calibrate only this benchmark.")] = None,
    groups: Annotated[int, typer.Option("--groups", min=2, help="Invocations to emulate per side.")] = 3,
    ref: Annotated[str, typer.Option("--ref", help="The commit measured against itself.")] = "HEAD",
    levels_file: LevelsOption = None,
    tracking_uri: TrackingUriOption = None,
    output_format: FormatOption = OutputFormat.table,
) -> None:
    """Measure this machine's noise between invocations: an A/A side-by-side run of one commit
    against itself, stored for this machine fingerprint (.benchtrack/calibration/ and MLflow) and read by
    later comparisons that were not measured side by side.

    Example: benchtrack calibrate --level comprehensive -b json.roundtrip
    """
    import math
    import time

    from benchtrack.cli.render import print_json
    from benchtrack.config import select_level
    from benchtrack.probes.environment import machine_fingerprint
    from benchtrack.sidebyside.rerun import compare_side_by_side
    from benchtrack.tracking.uri import resolve_tracking_uri
    from benchtrack.verdicts.calibration import Calibration, calibration_noise, calibration_to_dict, save_calibration

    config = load_cli_config(levels_file)
    chosen = select_level(config.levels, level)
    rounds = groups * chosen.processes
    settings = replace(config, rerun=replace(config.rerun, max_rounds=rounds, budget_s=max(config.rerun.budget_s, 3600.0)))
    uri = resolve_tracking_uri(tracking_uri)
    stderr = Console(stderr=True)
    with _rounds_progress(stderr, "calibrating", rounds) as advance:
        # times only: an A/A run's instruction counts say nothing about the noise between invocations
        outcome = compare_side_by_side(Path.cwd(), ref, ref, folder, tuple(benchmark or ()), settings,
                                       replace(chosen, instructions=()), lambda: _open_store(uri), 0, advance,
                                       stop_early=False)
    fingerprint = machine_fingerprint()
    calibration = Calibration(fingerprint, time.time(), calibration_noise(outcome.measured.baseline,
                                                                           outcome.measured.candidate, chosen.processes))
    if not calibration.noise:
        raise UsageError("nothing to calibrate: no benchmark ran on both sides")
    path = save_calibration(calibration, Path.cwd())
    stored_as = _store_calibration(uri, calibration, stderr)
    if output_format is OutputFormat.json:
        print_json({**calibration_to_dict(calibration), "path": str(path), "level": chosen.name, "rounds": rounds,
                    "rerun_id": outcome.comparison_id, "tracking_uri": uri, "calibration_run_id": stored_as})
    else:
        table = Table(title=f"noise between invocations at {chosen.name} ({chosen.processes} processes), "
                            f"{fingerprint}")
        for column in ("benchmark", "metric", "sd", "df"):
            table.add_column(column)
        for (name, metric), noise in sorted(calibration.noise.items()):
            table.add_row(escape(name), metric, f"{math.sqrt(noise.variance):.1%}", f"{noise.df:g}")
        _stdout_console().print(table)
        where = f"{path} and {uri} (run {stored_as})" if stored_as else str(path)
        stderr.print(f"calibration written to {where} (used for {config.calibration_max_age_s / 86400:g} days)",
                     highlight=False, markup=False, soft_wrap=True)
    raise typer.Exit(EXIT_OK)
