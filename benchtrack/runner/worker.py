"""Worker process: imports one benchmark file, calibrates, warms up and measures samples.

Run as ``python -m benchtrack.runner.worker REQUEST.json RESULT.json``. It imports neither
mlflow nor typer, so a worker starts in a fraction of a second.
"""

from __future__ import annotations

import functools
import gc
import json
import math
import os
import resource
import sys
import time
import tracemalloc
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchtrack import results as r
from benchtrack.probes import instructions
from benchtrack.probes.contention import MachineLoad
from benchtrack.probes.gc_probe import GcProbe
from benchtrack.probes.memory import PeakRssProbe, current_rss, current_uss, make_peak_probe
from benchtrack.suite import BenchmarkInstance, describe_exception, find_instance

MAX_LOOPS = 2**32


@dataclass(frozen=True)
class WorkerRequest:
    file: str
    name: str
    process: int
    samples: int
    warmups: int
    min_sample_time: float
    loops: int | None = None
    uss: bool = False
    peak_probe: str = "auto"
    mode: str = "measure"  # "attribute": find what a leaking benchmark keeps; "instructions": parts for callgrind
    cpus: list[int] | None = None  # pin this worker to these CPUs first (duet rounds)


@dataclass(frozen=True)
class WorkerReply:
    loops: int
    samples: list[dict[str, Any]] = field(default_factory=list)
    probes: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    started_at: float | None = None  # epoch seconds: the first sample's start and the last one's end
    finished_at: float | None = None


def bind_call(instance: BenchmarkInstance) -> tuple[Callable[[], Any], Callable[[], None]]:
    """The zero-argument callable to measure and its teardown, built once so the timed loop
    pays only for a C-level partial call."""
    spec = instance.spec
    if spec.setup is None:
        call = functools.partial(spec.func, **instance.params)
        teardown = spec.teardown or (lambda: None)
        return call, teardown
    state = spec.setup(**instance.params)
    call = functools.partial(spec.func, state)
    if spec.teardown is None:
        return call, lambda: None
    return call, functools.partial(spec.teardown, state)


def time_loops(call: Callable[[], Any], loops: int) -> tuple[int, int]:
    """Wall and CPU nanoseconds of ``loops`` calls."""
    wall_clock, cpu_clock = time.perf_counter_ns, time.process_time_ns
    iterations = range(loops)
    cpu0 = cpu_clock()
    wall0 = wall_clock()
    for _ in iterations:
        call()
    wall1 = wall_clock()
    cpu1 = cpu_clock()
    return wall1 - wall0, cpu1 - cpu0


def calibrate_loops(call: Callable[[], Any], min_sample_time: float) -> int:
    """Smallest power-of-two loop count whose sample lasts at least ``min_sample_time``."""
    target_ns = min_sample_time * 1e9
    loops = 1
    while loops < MAX_LOOPS:
        wall_ns, _ = time_loops(call, loops)
        if wall_ns >= target_ns:
            return loops
        loops *= 2 if wall_ns > target_ns / 4 else 4
    return MAX_LOOPS


class SampleTaker:
    """Takes one sample at a time, with every probe around (never inside) the timed loop."""

    def __init__(self, call: Callable[[], Any], peak: PeakRssProbe, gc_probe: GcProbe, uss: bool) -> None:
        self.call, self.peak, self.gc_probe, self.uss = call, peak, gc_probe, uss

    def timed(self, loops: int) -> dict[str, float]:
        self.gc_probe.reset()
        rss_before = current_rss()
        switches = involuntary_switches()
        self.peak.start()
        wall_ns, cpu_ns = time_loops(self.call, loops)
        peak = self.peak.stop()
        values = self._common(loops, wall_ns, cpu_ns, rss_before, peak)
        values[r.CTX_INVOLUNTARY] = float(involuntary_switches() - switches)
        return values

    def track(self) -> dict[str, float]:
        """One call whose returned {name: number} is recorded beside the usual probes."""
        self.gc_probe.reset()
        rss_before = current_rss()
        self.peak.start()
        wall0, cpu0 = time.perf_counter_ns(), time.process_time_ns()
        reported = self.call()
        wall_ns, cpu_ns = time.perf_counter_ns() - wall0, time.process_time_ns() - cpu0
        values = self._common(1, wall_ns, cpu_ns, rss_before, self.peak.stop())
        values.update(tracked_values(reported))
        return values

    def memory(self) -> dict[str, float]:
        with self.gc_probe.suspended():
            gc.collect()
        values = self.timed(1)
        # tracemalloc slows allocation-heavy code 8-14x, so it runs in a separate, untimed call.
        with self.gc_probe.suspended():
            gc.collect()
        tracemalloc.start()
        try:
            self.call()
            _, traced_peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        values[r.TRACEMALLOC_PEAK] = float(traced_peak)
        return values

    def leak_batch(self, operations: int, done: int, started: float) -> dict[str, float]:
        """One batch of operations, then a full collection (ours, not counted as the benchmark's)
        so the RSS that remains is what the component keeps."""
        values = self.timed(operations)
        with self.gc_probe.suspended():
            gc.collect()
        values[r.LEAK_RSS] = float(current_rss())
        values[r.LEAK_OPERATIONS] = float(done + operations)
        values[r.LEAK_ELAPSED] = time.monotonic() - started
        return values

    def _common(self, loops: int, wall_ns: int, cpu_ns: int, rss_before: int, peak: int) -> dict[str, float]:
        rss_after = current_rss()
        delta = self.gc_probe.read()
        values: dict[str, float] = {
            r.WALL: wall_ns / loops / 1e9,
            r.CPU: cpu_ns / loops / 1e9,
            r.RSS_BEFORE: float(rss_before),
            r.RSS_AFTER: float(rss_after),
            r.RSS_PEAK: float(max(peak, rss_before, rss_after)),
            r.GC_PAUSE: delta.pause_ns / loops / 1e9,
            r.GC_PAUSE_MAX: delta.max_pause_ns / 1e9,
            r.GC_COLLECTED: delta.collected / loops,
            r.GC_UNCOLLECTABLE: delta.uncollectable / loops,
        }
        for generation, count in enumerate(delta.collections):
            values[r.gc_generation_metric(generation)] = count / loops
        if self.uss:
            values[r.USS_AFTER] = float(current_uss())
        return values


def involuntary_switches() -> int:
    """Times the kernel took the CPU away from this process (~1 us to read): a sample that
    was preempted shows it here, and its wall time then holds someone else's work."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_nivcsw


def tracked_values(reported: object) -> dict[str, float]:
    if not isinstance(reported, Mapping) or not reported:
        raise TypeError(f"a track benchmark must return a non-empty {{name: number}} mapping, got {type(reported).__name__}")
    values = {}
    for name, value in reported.items():
        number = float(value)
        if not math.isfinite(number):
            raise ValueError(f"track metric {name!r} is not finite ({value})")
        values[r.TRACK_PREFIX + str(name)] = number
    return values


def run_worker(request: WorkerRequest) -> WorkerReply:
    instance = find_instance(Path(request.file), request.name)
    if request.mode == "attribute":
        return attribute_leak(instance, request)
    if request.mode == "instructions":
        return instruction_parts(instance, request)
    kind = instance.spec.kind
    peak = make_peak_probe(request.peak_probe)
    probes = {"peak_rss": peak.name, "tracemalloc": "separate-call" if kind == "memory" else "off"}
    samples: list[dict[str, Any]] = []
    details: dict[str, Any] = {}
    loops = request.loops or 1
    window: list[float] = []  # when the samples were taken, for the run's start and end in MLflow
    try:
        call, teardown = bind_call(instance)
        try:
            with GcProbe() as gc_probe:
                taker = SampleTaker(call, peak, gc_probe, request.uss or instance.spec.uss)
                loops, take = _sampler(taker, instance, request, call)
                for _ in range(request.warmups):
                    take()
                gc_probe.clear_pauses()
                load = MachineLoad.start()
                window.append(time.time())
                for index in range(request.samples):
                    samples.append({"process": request.process, "index": index, "loops": loops, "values": take()})
                window.append(time.time())
                details = {"gc_pauses_s": [p / 1e9 for p in gc_probe.pauses_ns], "gc_stats": gc.get_stats(),
                           "load": load.stop()}
        finally:
            teardown()
    except Exception as exc:  # noqa: BLE001 - a failing benchmark is a result, not a crash
        return WorkerReply(loops, samples, probes, describe_exception(exc), details)
    finally:
        peak.close()
    return WorkerReply(loops, samples, probes, None, details, *window)


def _sampler(taker: SampleTaker, instance: BenchmarkInstance, request: WorkerRequest,
             call: Callable[[], Any]) -> tuple[int, Callable[[], dict[str, float]]]:
    """(loops, a zero-argument function taking one sample) for the benchmark's kind."""
    kind = instance.spec.kind
    if kind == "memory":
        return 1, taker.memory
    if kind == "track":
        return 1, taker.track
    if kind == "leak":
        operations = instance.spec.operations
        started = time.monotonic()
        batches = iter(range(1_000_000))
        return operations, lambda: taker.leak_batch(operations, next(batches) * operations, started)
    loops = request.loops or calibrate_loops(call, request.min_sample_time)
    return loops, functools.partial(taker.timed, loops)


def instruction_parts(instance: BenchmarkInstance, request: WorkerRequest) -> WorkerReply:
    """Run under callgrind (probes.instructions): warm up, then one empty part and one part of
    ``loops`` operations per sample, each between two marks. Nothing is timed; the counts are
    in callgrind's files."""
    loops = request.loops or 1
    call, teardown = bind_call(instance)
    try:
        for _ in range(max(request.warmups, 1)):
            for _ in range(loops):
                call()
        iterations = range(loops)
        instructions.mark()
        instructions.mark()
        for _ in range(request.samples):
            for _ in iterations:
                call()
            instructions.mark()
    except Exception as exc:  # noqa: BLE001 - reported as the count's error
        return WorkerReply(loops, [], {}, describe_exception(exc))
    finally:
        teardown()
    return WorkerReply(loops, [], {"instructions": "callgrind"}, None, {"parts": request.samples})


ATTRIBUTION_TOP = 10


def attribute_leak(instance: BenchmarkInstance, request: WorkerRequest) -> WorkerReply:
    """A separate run (tracemalloc slows everything, so never during measurement): which object
    types grew in number, and which allocation sites grew, between two snapshots taken after
    warm-up batches and after the measured ones."""
    operations = instance.spec.operations
    call, teardown = bind_call(instance)
    try:
        for _ in range(max(request.warmups, 1) * operations):
            call()
        gc.collect()
        tracemalloc.start(10)
        before_types = _type_counts()
        before = tracemalloc.take_snapshot()
        for _ in range(request.samples * operations):
            call()
        gc.collect()
        after_types = _type_counts()  # before the snapshot, whose own objects would count
        after = tracemalloc.take_snapshot()
        tracemalloc.stop()
    except Exception as exc:  # noqa: BLE001 - reported as the attribution's error
        return WorkerReply(operations, [], {}, describe_exception(exc))
    finally:
        teardown()
    total = request.samples * operations
    # Growth far below one object per hundred operations is our own bookkeeping, not the leak.
    floor = max(10, total // 100)
    grown_types = sorted(((after_types[t] - before_types.get(t, 0), t) for t in after_types), reverse=True)
    ours = [tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, f"{Path(__file__).parents[1]}/*")]
    after, before = after.filter_traces(ours), before.filter_traces(ours)
    sites = [d for d in after.compare_to(before, "lineno") if d.size_diff > 0][:ATTRIBUTION_TOP]
    details = {
        "operations": total,
        "types": [{"type": name, "growth": growth} for growth, name in grown_types[:ATTRIBUTION_TOP] if growth >= floor],
        "sites": [
            {"site": f"{d.traceback[0].filename}:{d.traceback[0].lineno}", "size_diff": d.size_diff,
             "count_diff": d.count_diff}
            for d in sites
        ],
    }
    return WorkerReply(operations, [], {"tracemalloc": "attribution"}, None, details)


def _type_counts() -> dict[str, int]:
    counts: dict[str, int] = {}
    for obj in gc.get_objects():
        name = f"{type(obj).__module__}.{type(obj).__qualname__}"
        counts[name] = counts.get(name, 0) + 1
    return counts


def main(argv: list[str]) -> int:
    request_path, reply_path = Path(argv[0]), Path(argv[1])
    request = WorkerRequest(**json.loads(request_path.read_text(encoding="utf-8")))
    try:
        if request.cpus:
            os.sched_setaffinity(0, request.cpus)
        reply = run_worker(request)
    except Exception as exc:  # noqa: BLE001 - reported to the parent as this benchmark's error
        reply = WorkerReply(request.loops or 0, [], {}, describe_exception(exc))
    reply_path.write_text(json.dumps(asdict(reply), allow_nan=False), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
