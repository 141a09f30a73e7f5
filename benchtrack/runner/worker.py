"""Worker process: imports one benchmark file, calibrates, warms up and measures samples.

Run as ``python -m benchtrack.runner.worker REQUEST.json RESULT.json``. It imports neither
mlflow nor typer, so a worker starts in a fraction of a second.
"""

from __future__ import annotations

import functools
import gc
import json
import math
import sys
import time
import tracemalloc
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchtrack import results as r
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


@dataclass(frozen=True)
class WorkerReply:
    loops: int
    samples: list[dict[str, Any]] = field(default_factory=list)
    probes: dict[str, str] = field(default_factory=dict)
    error: str | None = None


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
        self.peak.start()
        wall_ns, cpu_ns = time_loops(self.call, loops)
        peak = self.peak.stop()
        return self._common(loops, wall_ns, cpu_ns, rss_before, peak)

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
        gc.collect()
        values = self.timed(1)
        # tracemalloc slows allocation-heavy code 8-14x, so it runs in a separate, untimed call.
        gc.collect()
        tracemalloc.start()
        try:
            self.call()
            _, traced_peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        values[r.TRACEMALLOC_PEAK] = float(traced_peak)
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
            r.GC_COLLECTED: delta.collected / loops,
            r.GC_UNCOLLECTABLE: delta.uncollectable / loops,
        }
        for generation, count in enumerate(delta.collections):
            values[r.gc_generation_metric(generation)] = count / loops
        if self.uss:
            values[r.USS_AFTER] = float(current_uss())
        return values


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
    peak = make_peak_probe(request.peak_probe)
    probes = {"peak_rss": peak.name, "tracemalloc": "separate-call" if instance.spec.kind == "memory" else "off"}
    samples: list[dict[str, Any]] = []
    loops = request.loops or 1
    try:
        call, teardown = bind_call(instance)
        try:
            with GcProbe() as gc_probe:
                taker = SampleTaker(call, peak, gc_probe, request.uss or instance.spec.uss)
                if instance.spec.kind in ("memory", "track"):
                    loops = 1
                    take = taker.memory if instance.spec.kind == "memory" else taker.track
                else:
                    loops = request.loops or calibrate_loops(call, request.min_sample_time)
                    take = functools.partial(taker.timed, loops)
                for _ in range(request.warmups):
                    take()
                for index in range(request.samples):
                    samples.append({"process": request.process, "index": index, "loops": loops, "values": take()})
        finally:
            teardown()
    except Exception as exc:  # noqa: BLE001 - a failing benchmark is a result, not a crash
        return WorkerReply(loops, samples, probes, describe_exception(exc))
    finally:
        peak.close()
    return WorkerReply(loops, samples, probes)


def main(argv: list[str]) -> int:
    request_path, reply_path = Path(argv[0]), Path(argv[1])
    request = WorkerRequest(**json.loads(request_path.read_text(encoding="utf-8")))
    try:
        reply = run_worker(request)
    except Exception as exc:  # noqa: BLE001 - reported to the parent as this benchmark's error
        reply = WorkerReply(request.loops or 0, [], {}, describe_exception(exc))
    reply_path.write_text(json.dumps(asdict(reply), allow_nan=False), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
