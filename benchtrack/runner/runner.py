"""Plan -> worker processes -> results. Each benchmark runs in several separate worker
processes in turn, so the spread between processes (layout, hash seed, allocator state) is
measured rather than hidden; the first process calibrates the loop count the others reuse."""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from benchtrack import results as r
from benchtrack.analysis.leaks import LeakThresholds, detect_leak
from benchtrack.analysis.stats import summarize
from benchtrack.config import Level
from benchtrack.probes.instructions import (
    INSTALL_HINT,
    CountingPlan,
    InstructionCountError,
    find_valgrind,
    loops_for,
    part_totals,
    per_operation,
)
from benchtrack.results import BenchmarkResult, RunResult, Sample
from benchtrack.runner.worker import WorkerRequest
from benchtrack.suite import LEAK_BATCHES, BenchmarkFile, BenchmarkInstance, Suite

_STDERR_TAIL = 400
INSTRUCTIONS_EXTRA_TIMEOUT_S = 300.0  # callgrind runs 30-60x slower than the timed worker


@dataclass(frozen=True)
class PlanItem:
    file: BenchmarkFile
    instance: BenchmarkInstance
    processes: int
    samples: int
    warmups: int
    timeout: float
    min_sample_time: float

    @property
    def name(self) -> str:
        return self.instance.name


@dataclass(frozen=True)
class Plan:
    suite: Suite
    level: Level
    items: tuple[PlanItem, ...]


def make_plan(suite: Suite, level: Level, only: tuple[str, ...] = ()) -> Plan:
    """The benchmarks of a suite the level selects, with per-benchmark overrides applied."""
    items = []
    for bench_file, instance in suite.instances():
        spec = instance.spec
        if not level.selects(spec.tags, spec.levels):
            continue
        if only and instance.name not in only and spec.name not in only:
            continue
        items.append(PlanItem(
            file=bench_file,
            instance=instance,
            processes=spec.processes or level.processes,
            samples=spec.samples or (max(level.samples, LEAK_BATCHES) if spec.kind == "leak" else level.samples),
            warmups=level.warmups if spec.warmups is None else spec.warmups,
            timeout=spec.timeout or level.timeout,
            min_sample_time=level.min_sample_time,
        ))
    return Plan(suite, level, tuple(items))


class ItemState:
    """What the worker processes of one benchmark have brought back so far."""

    def __init__(self, item: PlanItem) -> None:
        self.item = item
        self.samples: list[Sample] = []
        self.probes: dict[str, str] = {}
        self.replies: list[dict[str, Any]] = []
        self.loops: int | None = None
        self.error: str | None = None
        self.instruction_error: str | None = None
        self.started_at: float | None = None  # the earliest sample's start over the worker processes
        self.finished_at: float | None = None  # the latest sample's end

    def add(self, reply: dict[str, Any]) -> None:
        self.replies.append(reply)
        if reply.get("started_at") is not None and reply.get("finished_at") is not None:
            self.started_at = min(self.started_at or reply["started_at"], reply["started_at"])
            self.finished_at = max(self.finished_at or reply["finished_at"], reply["finished_at"])
        self.samples.extend(_sample_from_dict(s) for s in reply.get("samples", []))
        self.probes.update(reply.get("probes", {}))
        self.error = reply.get("error")
        self.loops = reply.get("loops") or self.loops


@dataclass(frozen=True)
class Progress:
    """One finished worker process, for progress bars."""

    item: PlanItem
    process: int
    error: str | None


class Runner:
    def __init__(
        self,
        python: str = sys.executable,
        peak_probe: str = "auto",
        on_progress: Callable[[Progress], None] = lambda _: None,
        environment: Mapping[str, str] | None = None,
        leak_thresholds: LeakThresholds | None = None,
        instructions: Callable[[PlanItem], bool] = lambda _: False,
    ) -> None:
        self._leak_thresholds = leak_thresholds or LeakThresholds()
        self._instructions = instructions
        self._python = python
        self._peak_probe = peak_probe
        self._on_progress = on_progress
        self._environment = dict(os.environ if environment is None else environment)

    def run_plan(self, plan: Plan, metadata: Mapping[str, str],
                 on_result: Callable[[BenchmarkResult], None] = lambda _: None) -> RunResult:
        """Worker processes run in rounds: process 0 of every benchmark, then process 1 of every
        benchmark (in reverse order, so drift over the invocation evens out), and so on. On a
        shared machine slow spells last seconds; run back to back, every process of a benchmark
        would fall into the same spell and the whole benchmark would shift. Spread over the
        invocation, a spell slows one process of several benchmarks, which the spread between
        processes shows. Each benchmark is reported as soon as its last process is done."""
        started = time.time()
        states = [ItemState(item) for item in plan.items]
        finished: dict[int, BenchmarkResult] = {}
        for process in range(max((item.processes for item in plan.items), default=0)):
            order = list(enumerate(states)) if process % 2 == 0 else list(reversed(list(enumerate(states))))
            for position, state in order:
                if position in finished:
                    continue
                reply = self.spawn(state.item, process, state.loops)
                state.add(reply)
                self._on_progress(Progress(state.item, process, state.error))
                if state.error or process + 1 >= state.item.processes:
                    if self.wants_instructions(state):
                        self.add_instruction_counts(state, loops_for(median_seconds(state.samples)))
                    finished[position] = self.result(state)
                    on_result(finished[position])
        results = tuple(finished[i] for i in range(len(states)))
        return RunResult(
            suite=plan.suite.name, level=plan.level.name, started_at=started,
            finished_at=time.time(), metadata=dict(metadata), benchmarks=results,
        )

    def result(self, state: ItemState) -> BenchmarkResult:
        item, samples, error = state.item, state.samples, state.error
        spec = item.instance.spec
        details: dict[str, Any] = {"gc": gc_details(state.replies), "load": load_details(state.replies)}
        if state.instruction_error:
            details["instructions_error"] = state.instruction_error
        if spec.kind == "leak" and samples:
            details["leak"] = leak_details(samples, self._leak_thresholds)
            if details["leak"]["detected"] and not error:
                details["attribution"] = self._attribute(item)
        return BenchmarkResult(
            name=item.name, benchmark=spec.name, file=item.file.relative, kind=spec.kind,
            params=item.instance.param_strings, tags=spec.tags, samples=tuple(samples),
            error=error, warmups=item.warmups, probes=state.probes, targets=spec.targets, details=details,
            started_at=state.started_at, finished_at=state.finished_at,
        )

    def wants_instructions(self, state: ItemState) -> bool:
        """Timed benchmarks the level (or --instructions) selects, that ran without error."""
        return state.item.instance.spec.kind == "time" and not state.error and bool(state.samples) and \
            self._instructions(state.item)

    def add_instruction_counts(self, state: ItemState, loops: int, process: int | None = None) -> None:
        """One more worker process, under callgrind, whose parts give the instructions per
        operation of each sample (probes.instructions); a failure to count is noted on the
        benchmark, never a failure of it. Its samples are numbered ``process`` (default: after
        the timed processes)."""
        item = state.item
        valgrind = find_valgrind()
        if valgrind is None:
            state.instruction_error = f"valgrind is not installed ({INSTALL_HINT})"
            return
        with tempfile.TemporaryDirectory(prefix="benchtrack-callgrind-") as tmp:
            plan = CountingPlan(valgrind, Path(tmp, "callgrind.out"))
            reply = self.spawn(item, 0, loops, mode="instructions", wrap=plan.command,
                               environment=plan.environment(self._environment),
                               timeout=item.timeout + INSTRUCTIONS_EXTRA_TIMEOUT_S)
            if reply.get("error"):
                state.instruction_error = f"instruction count: {reply['error']}{_last_line(plan.log_path)}"
                return
            try:
                counts = per_operation(part_totals(plan.out_prefix), item.samples, loops)
            except (InstructionCountError, OSError) as exc:
                state.instruction_error = f"instruction count: {exc}"
                return
        if process is None:
            process = 1 + max(s.process for s in state.samples)  # after the timed processes
        state.samples.extend(Sample(process=process, index=i, loops=loops, values={r.INSTRUCTIONS: count})
                             for i, count in enumerate(counts))
        state.probes["instructions"] = "callgrind"

    def _attribute(self, item: PlanItem) -> dict[str, Any]:
        reply = self.spawn(item, item.processes, None, mode="attribute")
        if reply.get("error"):
            return {"error": reply["error"]}
        return dict(reply.get("details", {}))

    def spawn(self, item: PlanItem, process: int, loops: int | None, mode: str = "measure",
              wrap: Callable[[list[str]], list[str]] = list, environment: Mapping[str, str] | None = None,
              timeout: float | None = None) -> dict[str, Any]:
        """One worker process of ``item``; its reply (samples, or an error line). ``wrap``: the
        command that starts the worker (callgrind around it, for instruction counts)."""
        return run_together([self.launch(item, process, loops, mode, wrap, environment, timeout)])[0]

    def launch(self, item: PlanItem, process: int, loops: int | None, mode: str = "measure",
               wrap: Callable[[list[str]], list[str]] = list, environment: Mapping[str, str] | None = None,
               timeout: float | None = None, cpus: frozenset[int] | None = None) -> Launch:
        """What starts one worker process (run_together starts it); ``cpus``: the worker pins itself to
        these CPUs (not preexec_fn: the progress bar's thread makes forking with it unsafe)."""
        request = WorkerRequest(
            file=str(item.file.path), name=item.name, process=process, samples=item.samples,
            warmups=item.warmups, min_sample_time=item.min_sample_time, loops=loops,
            peak_probe=self._peak_probe, mode=mode, cpus=sorted(cpus) if cpus else None,
        )
        return Launch(request, wrap, self._python, dict(environment or self._environment), item.file.path.parent,
                      timeout or item.timeout)


@dataclass(frozen=True)
class Launch:
    request: WorkerRequest
    wrap: Callable[[list[str]], list[str]]
    python: str
    environment: Mapping[str, str]
    cwd: Path
    timeout: float


def run_together(launches: Sequence[Launch]) -> list[dict[str, Any]]:
    """Start every worker at once (each in its own session, stderr to a file so no pipe can
    stall one while the other is read), wait for all, and return their replies in order. A
    timeout kills that worker; Ctrl-C kills them all (and SIGTERM, where the command turns it
    into KeyboardInterrupt, as the side-by-side commands do)."""
    with contextlib.ExitStack() as stack:
        folders = [Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="benchtrack-"))) for _ in launches]
        started = []
        try:
            for launch, folder in zip(launches, folders, strict=True):
                started.append(_start(launch, folder))
            began = time.monotonic()
            outcomes = [_wait(process, launch.timeout, launch.timeout - (time.monotonic() - began), folder)
                        for process, launch, folder in zip(started, launches, folders, strict=True)]
        except BaseException:
            for process in started:
                _kill_group(process)
            raise
        return [_reply(outcome, folder, launch) for outcome, folder, launch in zip(outcomes, folders, launches, strict=True)]


def _start(launch: Launch, folder: Path) -> subprocess.Popen[bytes]:
    (folder / "request.json").write_text(json.dumps(asdict(launch.request)), encoding="utf-8")
    command = launch.wrap([launch.python, "-m", "benchtrack.runner.worker", str(folder / "request.json"),
                           str(folder / "reply.json")])
    with open(folder / "stderr.txt", "wb") as stderr:
        return subprocess.Popen(
            command, cwd=launch.cwd, env=dict(launch.environment), stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True,
        )


def _wait(process: subprocess.Popen[bytes], timeout: float, remaining: float, folder: Path) -> str | None:
    """None on a clean exit, else an error line."""
    try:
        process.wait(timeout=max(remaining, 0.0))
    except subprocess.TimeoutExpired:
        _kill_group(process)
        return f"timed out after {timeout:g} s"
    if process.returncode != 0:
        return _describe_exit(process.returncode, (folder / "stderr.txt").read_text(encoding="utf-8", errors="replace"))
    return None


def _reply(outcome: str | None, folder: Path, launch: Launch) -> dict[str, Any]:
    loops = launch.request.loops
    if outcome is not None:
        return {"samples": [], "error": outcome, "loops": loops}
    try:
        return dict(json.loads((folder / "reply.json").read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return {"samples": [], "error": "worker process wrote no result", "loops": loops}


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def _describe_exit(returncode: int, stderr: str) -> str:
    if returncode < 0:
        reason = f"worker killed by signal {signal.Signals(-returncode).name}"
    else:
        reason = f"worker exited with code {returncode}"
    last_line = next((line for line in reversed(stderr.strip().splitlines()) if line.strip()), "")
    return f"{reason}: {last_line[-_STDERR_TAIL:]}" if last_line else reason


def gc_details(replies: list[dict[str, Any]]) -> dict[str, Any]:
    """Pause statistics over every collection in every process (warm-ups excluded), and
    gc.get_stats() per process as Python returned it (generations differ across versions)."""
    pauses = [p for reply in replies for p in reply.get("details", {}).get("gc_pauses_s", [])]
    summary: dict[str, Any] = {"pauses": len(pauses),
                               "stats_by_process": [r.get("details", {}).get("gc_stats") for r in replies]}
    if pauses:
        stats = summarize(pauses)
        summary.update(pause_mean_s=stats.mean, pause_p95_s=stats.p95, pause_max_s=stats.max)
    return summary


def load_details(replies: list[dict[str, Any]]) -> list[dict[str, float]]:
    """Per worker process, what the rest of the machine did while it measured (see probes.contention)."""
    return [dict(reply.get("details", {}).get("load") or {}) for reply in replies if reply.get("samples")]


def leak_details(samples: list[Sample], thresholds: LeakThresholds) -> dict[str, Any]:
    """A leak verdict per worker process; the benchmark leaks when most processes say so, and
    is described by the process with the median growth per operation."""
    verdicts = []
    for process in sorted({s.process for s in samples}):
        mine = [s for s in samples if s.process == process]
        verdicts.append(detect_leak(
            [s.values[r.LEAK_ELAPSED] for s in mine], [s.values[r.LEAK_RSS] for s in mine],
            operations=[s.values[r.LEAK_OPERATIONS] for s in mine], thresholds=thresholds,
        ))
    detected = sum(v.detected for v in verdicts) * 2 > len(verdicts)
    # The describing process comes from those that agree with the verdict, so a detected leak
    # always carries a severity (and an undetected one none), whatever the median process said.
    agreeing = [v for v in verdicts if v.detected == detected]
    ranked = sorted(agreeing, key=lambda v: v.mb_per_1000_ops if v.mb_per_1000_ops is not None else 0.0)
    middle = ranked[len(ranked) // 2]
    return {
        "detected": detected,
        "severity": middle.severity if detected else "none",
        "mb_per_1000_ops": _finite_or_none(middle.mb_per_1000_ops),
        "slope_mb_per_min": _finite_or_none(middle.slope_mb_per_min),
        "growth_mb": _finite_or_none(middle.growth_mb),
        "processes_detecting": sum(v.detected for v in verdicts),
        "processes": len(verdicts),
        "reasons": list(middle.reasons),
    }


def _last_line(path: Path) -> str:
    """valgrind's own last word (it writes to its log file, not to stderr)."""
    try:
        lines = [line for line in path.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    return f" ({lines[-1][-_STDERR_TAIL:]})" if lines else ""


def median_seconds(samples: list[Sample]) -> float | None:
    """Median wall seconds per operation of the timed samples (None when there are none)."""
    walls = [s.values[r.WALL] for s in samples if r.WALL in s.values]
    return statistics.median(walls) if walls else None


def _finite_or_none(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _sample_from_dict(data: Mapping[str, Any]) -> Sample:
    return Sample(process=int(data["process"]), index=int(data["index"]), loops=int(data["loops"]),
                  values={str(k): float(v) for k, v in data["values"].items()})
