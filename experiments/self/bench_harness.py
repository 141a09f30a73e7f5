"""What the harness itself costs: per timed sample against a bare perf_counter_ns loop, and
how much peak-RSS measurement slows a CPU-bound benchmark (probe on and off alternating)."""

from __future__ import annotations

import statistics
import time

from benchtrack import benchmark
from benchtrack.probes.gc_probe import GcProbe
from benchtrack.probes.memory import make_peak_probe
from benchtrack.runner.worker import SampleTaker

CLOCK_CALLS = 200_000
SAMPLES = 2_000
ROUNDS = 40  # alternating on/off pairs per sample of the overhead benchmark


def _noop() -> None:
    return None


def _bare_clock_ns() -> float:
    clock = time.perf_counter_ns
    start = clock()
    for _ in range(CLOCK_CALLS):
        clock()
    return (clock() - start) / CLOCK_CALLS


@benchmark(name="harness.sample_overhead", kind="track", tags=("harness",), samples=3,
           targets={"track.sample_total_us.median": 500.0})
def sample_overhead() -> dict[str, float]:
    """A no-op benchmark measured the way a real one is: the full cost of one timed sample
    (probes included, outside the timed loop) and the part that lands inside the timed loop."""
    peak = make_peak_probe("auto")
    with GcProbe() as gc_probe:
        taker = SampleTaker(_noop, peak, gc_probe, uss=False)
        start = time.perf_counter_ns()
        inside = [taker.timed(1)["wall_s"] for _ in range(SAMPLES)]
        total_ns = (time.perf_counter_ns() - start) / SAMPLES
    peak.close()
    bare = _bare_clock_ns()
    return {
        "bare_clock_ns": bare,
        "timed_region_ns": statistics.median(inside) * 1e9,
        "timed_region_over_bare_ns": statistics.median(inside) * 1e9 - bare,
        "sample_total_us": total_ns / 1e3,
    }


def _cpu_bound() -> int:
    total = 0
    for i in range(60_000):
        total += i * i % 7
    return total


def _overhead_pct(probe_name: str) -> float:
    """Median of paired ratios, on and off alternating so drift hits both sides alike."""
    ratios = []
    with GcProbe() as gc_probe:
        on_probe, off_probe = make_peak_probe(probe_name), make_peak_probe("off")
        on, off = SampleTaker(_cpu_bound, on_probe, gc_probe, False), SampleTaker(_cpu_bound, off_probe, gc_probe, False)
        try:
            for round_index in range(ROUNDS):
                first, second = (on, off) if round_index % 2 == 0 else (off, on)
                a, b = first.timed(4)["wall_s"], second.timed(4)["wall_s"]
                on_s, off_s = (a, b) if first is on else (b, a)
                ratios.append(on_s / off_s)
        finally:
            on_probe.close()
            off_probe.close()
    return (statistics.median(ratios) - 1.0) * 100.0


@benchmark(name="harness.peak_rss_overhead", kind="track", tags=("harness",), samples=3,
           targets={"track.kernel_hwm_pct.median": 2.0})
def peak_rss_overhead() -> dict[str, float]:
    return {
        "kernel_hwm_pct": _overhead_pct("kernel-hwm"),
        "sampler_thread_pct": _overhead_pct("sampler-thread"),
    }
