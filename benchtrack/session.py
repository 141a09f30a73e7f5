"""One `benchtrack run`: discover, plan, measure in workers, log each benchmark as it finishes.

Knows nothing of typer or rich: progress and results leave through callbacks and records.
Measured data is never lost to a store failure: results are written to a spool file that
`benchtrack import` can log later.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol, TypeVar

from benchtrack.analysis.leaks import LeakThresholds
from benchtrack.config import ALL_BENCHMARKS, Config, Level, find_levels_file, load_config, select_level
from benchtrack.errors import TrackingError, UsageError
from benchtrack.probes.instructions import require_valgrind
from benchtrack.results import BenchmarkResult, RunResult, dumps_results
from benchtrack.runner.runner import Plan, Progress, Runner, make_plan
from benchtrack.suite import Discovery, FileError, discover

INVOCATION_KEY = "benchtrack.invocation"
# Runs measured side by side (`compare --rerun`, `calibrate`) carry this tag: rounds of
# interleaved processes are not comparable with a level's runs, so history leaves them out.
RERUN_MODE_KEY = "benchtrack.rerun.mode"
SPOOL_FOLDER = Path(".benchtrack") / "unsaved"


def keep_unsaved(prefix: str, document: Mapping[str, Any], suffix: str = ".json") -> Path:
    """A measurement the store did not take, as JSON in SPOOL_FOLDER (for `benchtrack import` or a
    later look): `<prefix>-<time>-<random>.json`, never overwriting another."""
    SPOOL_FOLDER.mkdir(parents=True, exist_ok=True)
    path = SPOOL_FOLDER / f"{prefix}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}{suffix}"
    path.write_text(json.dumps(document, allow_nan=False), encoding="utf-8")
    return path


_T = TypeVar("_T")


class Store(Protocol):
    uri: str

    def start_invocation(self, result_shell: RunResult, invocation_id: str) -> str: ...

    def log_benchmark(self, parent_run_id: str, run: RunResult, bench: BenchmarkResult) -> object: ...

    def finish_invocation(self, parent_run_id: str, run: RunResult) -> None: ...


@dataclass(frozen=True)
class SuiteOutcome:
    result: RunResult
    parent_run_id: str | None
    child_run_ids: Mapping[str, str]


@dataclass(frozen=True)
class Invocation:
    invocation_id: str
    level: Level
    suites: tuple[SuiteOutcome, ...]
    file_errors: tuple[FileError, ...]
    tracking_error: str | None
    spool_path: Path | None

    @property
    def failed_benchmarks(self) -> list[BenchmarkResult]:
        return [b for s in self.suites for b in s.result.benchmarks if not b.ok]


@dataclass(frozen=True)
class RunOptions:
    folder: Path
    level: str = "quick"
    only: tuple[str, ...] = ()
    processes: int | None = None
    samples: int | None = None
    peak_probe: str = "auto"
    instructions: bool = False  # count instructions of every timed benchmark, whatever the level says


def prepare(options: RunOptions) -> tuple[Discovery, Config, Level, list[Plan]]:
    """Everything that can fail on bad input, done before anything is measured."""
    discovery = discover(options.folder)
    config = load_config(find_levels_file(options.folder))
    level = select_level(config.levels, options.level)
    level = replace(
        level,
        processes=options.processes or level.processes,
        samples=options.samples or level.samples,
        instructions=(ALL_BENCHMARKS,) if options.instructions else level.instructions,
    )
    if options.instructions:
        require_valgrind()
    _check_known(discovery, options.only)
    plans = [make_plan(suite, level, options.only) for suite in discovery.suites]
    return discovery, config, level, [p for p in plans if p.items]


def _check_known(discovery: Discovery, only: tuple[str, ...]) -> None:
    known = {name for suite in discovery.suites for _, inst in suite.instances() for name in (inst.name, inst.spec.name)}
    unknown = [name for name in only if name not in known]
    if unknown:
        raise UsageError(f"unknown benchmark {', '.join(map(repr, unknown))} (see: benchtrack list)")


class Session:
    def __init__(
        self,
        store: Store | None,
        metadata: Mapping[str, str],
        on_progress: Callable[[Progress], None] = lambda _: None,
        spool_root: Path | None = None,
        leak_thresholds: LeakThresholds | None = None,
    ) -> None:
        self._leak_thresholds = leak_thresholds
        self._store = store
        self._metadata = dict(metadata)
        self._on_progress = on_progress
        self._spool_root = spool_root or Path.cwd()
        self._tracking_error: str | None = None

    def run(self, options: RunOptions, discovery: Discovery, level: Level, plans: list[Plan]) -> Invocation:
        invocation_id = uuid.uuid4().hex
        # Every result of this invocation carries its id, so a comparison can leave the very runs
        # it compares out of their own history, whether they come as run ids, git refs or files.
        self._metadata[INVOCATION_KEY] = invocation_id
        runner = Runner(peak_probe=options.peak_probe, on_progress=self._on_progress, leak_thresholds=self._leak_thresholds,
                        instructions=lambda item: level.counts_instructions(item.name, item.instance.spec.name))
        outcomes = [self._run_plan(runner, plan, invocation_id) for plan in plans]
        spool = self._spool(invocation_id, outcomes) if self._tracking_error else None
        return Invocation(invocation_id, level, tuple(outcomes), discovery.errors, self._tracking_error, spool)

    def _run_plan(self, runner: Runner, plan: Plan, invocation_id: str) -> SuiteOutcome:
        shell = RunResult(plan.suite.name, plan.level.name, time.time(), time.time(), self._metadata, ())
        store = self._store
        parent_id = self._guard(lambda s: s.start_invocation(shell, invocation_id)) if store else None
        child_ids: dict[str, str] = {}

        def log(bench: BenchmarkResult) -> None:
            if parent_id is None:
                return
            logged = self._guard(lambda s: s.log_benchmark(parent_id, shell, bench))
            if logged is not None:
                child_ids[bench.name] = str(getattr(logged, "run_id", ""))

        result = replace(runner.run_plan(plan, self._metadata, on_result=log), started_at=shell.started_at)
        if parent_id is not None:
            self._guard(lambda s: s.finish_invocation(parent_id, result))
        return SuiteOutcome(result, parent_id, child_ids)

    def log_measured(self, results: Sequence[RunResult], spool_name: str) -> tuple[list[SuiteOutcome], Path | None]:
        """Log results measured elsewhere (both sides of an interleaved comparison), each as its
        own parent run with its benchmarks; what the store did not take is spooled."""
        outcomes = [self._log_one(result, result.metadata.get(INVOCATION_KEY, spool_name)) for result in results]
        spool = self._spool(spool_name, outcomes) if self._tracking_error else None
        return outcomes, spool

    def _log_one(self, result: RunResult, invocation_id: str) -> SuiteOutcome:
        shell = replace(result, benchmarks=())
        parent_id = self._guard(lambda s: s.start_invocation(shell, invocation_id))
        child_ids: dict[str, str] = {}
        if parent_id is None:
            return SuiteOutcome(result, None, child_ids)
        for bench in result.benchmarks:
            logged = self._guard(lambda s: s.log_benchmark(parent_id, shell, bench))  # noqa: B023 - called at once
            if logged is not None:
                child_ids[bench.name] = str(getattr(logged, "run_id", ""))
        self._guard(lambda s: s.finish_invocation(parent_id, result))
        return SuiteOutcome(result, parent_id, child_ids)

    @property
    def tracking_error(self) -> str | None:
        return self._tracking_error

    def _guard(self, action: Callable[[Store], _T]) -> _T | None:
        """Stop logging after the first store failure, but keep measuring."""
        if self._store is None or self._tracking_error:
            return None
        try:
            return action(self._store)
        except TrackingError as exc:
            self._tracking_error = str(exc)
            return None

    def _spool(self, invocation_id: str, outcomes: list[SuiteOutcome]) -> Path:
        """Only what the store did not take: importing the file later logs nothing twice."""
        unsaved = [
            replace(o.result, benchmarks=tuple(b for b in o.result.benchmarks if b.name not in o.child_run_ids))
            for o in outcomes
        ]
        path = self._spool_root / SPOOL_FOLDER / f"{invocation_id}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(dumps_results(r for r in unsaved if r.benchmarks), encoding="utf-8")
        return path
