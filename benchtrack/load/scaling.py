"""Run a scenario's [scaling] levels and fit the service's memory and CPU against load.

For each level (users of a closed model, requests/s of an open one), in the order given:

1. with ``restart`` (and a ``[monitor] command``), the target is stopped and started afresh, and
   the run waits until base_url accepts connections;
2. the load runs at that level for ``settle + window`` seconds (a copy of the scenario with that
   users/rate, a constant pattern and ``settle`` as its warm-up, so the latency figures cover the
   window only), while a :class:`~benchtrack.load.monitoring.ResourceMonitor` samples the target;
3. the level's memory is the mean of the memory samples inside the window, its CPU the mean of
   the CPU samples there (percent of one core, like `top`).

Before the first level the idle target is sampled for ``min(window, MAX_IDLE_WINDOW_S)`` (the
baseline). After the last one, with ``reset_check``, the target is left idle for ``settle`` and
sampled again the same way; :func:`benchtrack.analysis.scaling.reset_check` compares the two
(medians of the samples). Then memory and CPU are fitted against the levels
(:func:`benchtrack.analysis.scaling.fit_scaling`).

A scaling run needs a ``[monitor]`` target (there is nothing to fit without one) and at least
``MIN_LEVELS`` distinct levels; both are checked before any traffic is sent. A command target is
started here and stopped at the end; a pid, cgroup or container is only read.
"""

from __future__ import annotations

import contextlib
import math
import socket
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

from benchtrack.analysis.scaling import MIN_LEVELS, ResetCheck, ScalingAnalysis, fit_scaling, reset_check
from benchtrack.load.monitoring import MonitorRecord, ResourceMonitor
from benchtrack.load.result import LoadResult
from benchtrack.load.scenario import MonitorSpec, Pattern, ScalingSpec, Scenario, ScenarioError
from benchtrack.probes.targets import MemoryTarget

SCALING_SCHEMA = "benchtrack.scaling/1"
MIB = 1024.0 * 1024.0
MAX_IDLE_WINDOW_S = 5.0  # idle sampling before the first level and after the last
READY_TIMEOUT_S = 30.0  # a (re)started command must accept connections within this
RESET_TOLERANCE = 0.10  # share of the baseline that may stay after the load (see reset_check)

RunLoad = Callable[[Scenario, int], LoadResult]  # (scenario at one level, seed) -> result
TargetFactory = Callable[[MonitorSpec], MemoryTarget]


@dataclass(frozen=True)
class ScalingLevel:
    level: float  # users or requests/s
    memory_mb: float  # mean over the window
    memory_peak_mb: float  # highest sample in the window
    cpu_percent: float | None  # mean over the window; None when the target's CPU cannot be read
    samples: int  # memory samples in the window
    result: LoadResult  # the level's load run (latency over the window)


@dataclass(frozen=True)
class ScalingResult:
    scenario: str
    model: str  # "open" | "closed"
    load: str  # "users" | "rate"
    target: str
    settle_s: float
    window_s: float
    levels: tuple[ScalingLevel, ...]
    memory: ScalingAnalysis
    cpu: ScalingAnalysis | None  # None when no CPU was read at any level
    baseline_mb: float | None
    reset: ResetCheck | None  # None without reset_check
    warnings: tuple[str, ...]

    @property
    def analyses(self) -> tuple[ScalingAnalysis, ...]:
        """Memory, then CPU when there is one: what the scaling chart draws."""
        return (self.memory,) if self.cpu is None else (self.memory, self.cpu)


def run_scaling(scenario: Scenario, *, seed: int = 0, run_load: RunLoad | None = None,
                target_factory: TargetFactory | None = None,
                on_level: Callable[[ScalingLevel], None] | None = None) -> ScalingResult:
    """Run every level of ``scenario.scaling`` and fit memory and CPU against them (module doc).

    ``run_load(scenario, seed)`` defaults to the generator's :func:`benchtrack.load.generator.run_load`;
    ``target_factory`` to :func:`monitor_target`. ``on_level`` is called after each level (progress).
    """
    spec, monitor = _checked(scenario)
    run_load = run_load or _generator_run_load
    target_factory = target_factory or monitor_target
    load_name = "users" if scenario.model.kind == "closed" else "rate"
    idle_s = min(spec.window_s, MAX_IDLE_WINDOW_S)
    warnings: list[str] = []
    levels: list[ScalingLevel] = []
    with _target(target_factory, monitor, scenario) as target:
        baseline = _idle_memory(target.current, monitor, settle_s=0.0, window_s=idle_s)
        for index, level in enumerate(spec.levels):
            if spec.restart and index > 0:
                target.restart()
            levels.append(_run_level(scenario, level, target.current, monitor, seed + index, run_load))
            if on_level is not None:
                on_level(levels[-1])
        after = _idle_memory(target.current, monitor, settle_s=spec.settle_s, window_s=idle_s) if spec.reset_check else None
    for item in levels:
        if item.samples == 0:
            warnings.append(f"no memory sample at {load_name} {item.level:g}: the target was not alive in the window")
    measured = [item for item in levels if item.samples]
    memory = fit_scaling([i.level for i in measured], [i.memory_mb for i in measured], quantity="memory_mb", load=load_name)
    with_cpu = [item for item in measured if item.cpu_percent is not None]
    cpu = (fit_scaling([i.level for i in with_cpu], [i.cpu_percent for i in with_cpu if i.cpu_percent is not None],
                       quantity="cpu_percent", load=load_name) if with_cpu else None)
    reset = reset_check(baseline, after, RESET_TOLERANCE) if baseline is not None and after is not None else None
    if spec.reset_check and reset is None:
        warnings.append("no reset check: the idle target gave no memory sample before or after the load")
    warnings.extend(memory.warnings + (cpu.warnings if cpu else ()))
    return ScalingResult(scenario.name, scenario.model.kind, load_name, target.description, spec.settle_s, spec.window_s,
                         tuple(levels), memory, cpu, baseline, reset, tuple(warnings))


def scaling_document(result: ScalingResult) -> dict[str, Any]:
    """The ``benchtrack.scaling/1`` JSON document of a scaling run."""
    return {
        "schema": SCALING_SCHEMA,
        "scenario": result.scenario,
        "model": result.model,
        "load": result.load,
        "target": result.target,
        "settle_s": result.settle_s,
        "window_s": result.window_s,
        "levels": [_level_document(item) for item in result.levels],
        "memory": _analysis_document(result.memory),
        "cpu": None if result.cpu is None else _analysis_document(result.cpu),
        "baseline_mb": _finite(result.baseline_mb),
        "reset": None if result.reset is None else {
            "baseline_mb": result.reset.baseline_mb, "after_mb": result.reset.after_mb,
            "retained_mb": result.reset.retained_mb, "allowed_mb": result.reset.allowed_mb, "passed": result.reset.passed},
        "warnings": list(result.warnings),
    }


def monitor_target(spec: MonitorSpec) -> MemoryTarget:
    """The target a [monitor] table names (a command is started here; the caller closes it)."""
    from benchtrack.probes.targets import CgroupTarget, CommandTarget, ProcessTarget

    if spec.pid is not None:
        return ProcessTarget(spec.pid)
    if spec.cgroup is not None:
        return CgroupTarget(spec.cgroup)
    if spec.container is not None:
        from benchtrack.probes.containers import make_container_target

        return make_container_target(spec.container, spec.docker_url)
    if spec.command:
        return CommandTarget(spec.command)
    raise ScenarioError("[monitor] names no target: give one of pid, container, cgroup or command")


# --- one level ---------------------------------------------------------------------------------


def level_scenario(scenario: Scenario, level: float, settle_s: float, window_s: float) -> Scenario:
    """The scenario held at one load level: that users/rate, constant, ``settle`` as warm-up."""
    model = (replace(scenario.model, users=round(level)) if scenario.model.kind == "closed"
             else replace(scenario.model, rate=float(level)))
    return replace(scenario, model=model, pattern=Pattern(), duration_s=settle_s + window_s, warmup_s=settle_s,
                   scaling=None)


def _run_level(scenario: Scenario, level: float, target: MemoryTarget, monitor: MonitorSpec, seed: int,
               run_load: RunLoad) -> ScalingLevel:
    spec = scenario.scaling
    assert spec is not None  # noqa: S101 - checked by run_scaling
    watcher = ResourceMonitor(target, interval_s=monitor.interval_s)
    watcher.start()
    try:
        result = run_load(level_scenario(scenario, level, spec.settle_s, spec.window_s), seed)
    finally:
        record = watcher.stop()
    memory = _in_window(record.timeline.times_s, record.timeline.memory_bytes, spec.settle_s, spec.settle_s + spec.window_s)
    cpu = _in_window([c.time_s for c in record.cpu], [c.percent for c in record.cpu], spec.settle_s,
                     spec.settle_s + spec.window_s)
    return ScalingLevel(level, statistics.fmean(memory) / MIB if memory else math.nan,
                        max(memory) / MIB if memory else math.nan, statistics.fmean(cpu) if cpu else None, len(memory),
                        result)


def _in_window(times: Sequence[float], values: Sequence[float], start_s: float, end_s: float) -> list[float]:
    return [v for t, v in zip(times, values, strict=True) if start_s <= t <= end_s]


def _idle_memory(target: MemoryTarget, monitor: MonitorSpec, *, settle_s: float, window_s: float) -> float | None:
    """Median memory (MB) of the idle target, sampled over ``window_s`` after ``settle_s``."""
    watcher = ResourceMonitor(target, interval_s=min(monitor.interval_s, window_s / 3))
    watcher.start()
    try:
        time.sleep(settle_s + window_s)
    finally:
        record: MonitorRecord = watcher.stop()
    memory = _in_window(record.timeline.times_s, record.timeline.memory_bytes, settle_s, settle_s + window_s)
    return statistics.median(memory) / MIB if memory else None


# --- the target, with restarts -----------------------------------------------------------------


class _Target:
    """The watched target; a command can be restarted (closed, started again, waited for)."""

    def __init__(self, factory: TargetFactory, spec: MonitorSpec, base_url: str, timeout_s: float) -> None:
        self._factory = factory
        self._spec = spec
        self._base_url = base_url
        self._timeout_s = timeout_s
        self.current = self._start()
        self.description = self.current.description

    def _start(self) -> MemoryTarget:
        target = self._factory(self._spec)
        if self._spec.command:
            try:
                wait_until_accepting(self._base_url, self._timeout_s)
            except BaseException:
                target.close()
                raise
        return target

    def restart(self) -> None:
        self.current.close()
        self.current = self._start()

    def close(self) -> None:
        if self._spec.command:  # only a command we started is ours to stop
            self.current.close()


@contextlib.contextmanager
def _target(factory: TargetFactory, spec: MonitorSpec, scenario: Scenario) -> Iterator[_Target]:
    target = _Target(factory, spec, scenario.base_url, READY_TIMEOUT_S)
    try:
        yield target
    finally:
        target.close()


def wait_until_accepting(base_url: str, timeout_s: float, *, poll_s: float = 0.05) -> None:
    """Wait until base_url's host and port accept a TCP connection; ScenarioError after ``timeout_s``."""
    parts = urlsplit(base_url)
    host = parts.hostname or "127.0.0.1"
    port = parts.port or (443 if parts.scheme == "https" else 80)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection((host, port), timeout=1.0):
                return
        except OSError:
            if time.monotonic() >= deadline:
                raise ScenarioError(f"the [monitor] command did not accept connections at {host}:{port} "
                                    f"within {timeout_s:g} s") from None
            time.sleep(poll_s)


# --- checks and documents ----------------------------------------------------------------------


def _checked(scenario: Scenario) -> tuple[ScalingSpec, MonitorSpec]:
    where = scenario.source or scenario.name
    if scenario.scaling is None:
        raise ScenarioError(f"{where}: no [scaling] table: add levels = [...] to run a scaling scenario")
    if scenario.monitor is None:
        raise ScenarioError(f"{where}: [scaling] needs a [monitor] target (pid, container, cgroup or command) to measure")
    distinct = len(set(scenario.scaling.levels))
    if distinct < MIN_LEVELS:
        raise ScenarioError(f"{where}: scaling.levels: {distinct} distinct levels, at least {MIN_LEVELS} are needed "
                            "for a fit (4 or more for a useful choice of model)")
    return scenario.scaling, scenario.monitor


def _generator_run_load(scenario: Scenario, seed: int) -> LoadResult:
    from benchtrack.load.generator import run_load

    return run_load(scenario, seed=seed)


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _level_document(item: ScalingLevel) -> dict[str, Any]:
    result = item.result
    return {
        "level": item.level, "memory_mb": _finite(item.memory_mb), "memory_peak_mb": _finite(item.memory_peak_mb),
        "cpu_percent": _finite(item.cpu_percent), "samples": item.samples, "requests": result.requests,
        "success_rate": result.success_rate, "throughput_rps": result.throughput_rps,
        "latency_ms": {"p50": result.latency.p50_ms, "p99": result.latency.p99_ms, "mean": result.latency.mean_ms},
    }


def _analysis_document(analysis: ScalingAnalysis) -> dict[str, Any]:
    def fit(item: Any) -> dict[str, Any]:
        return {"model": item.model, "a": item.a, "b": item.b, "slope": item.slope, "slope_ci": list(item.slope_ci),
                "r2": item.r2, "aic": _finite(item.aic), "formula": item.formula}

    return {"quantity": analysis.quantity, "best": None if analysis.best is None else fit(analysis.best),
            "fits": [fit(item) for item in analysis.fits], "skipped": list(analysis.skipped),
            "warnings": list(analysis.warnings), "note": analysis.note}
