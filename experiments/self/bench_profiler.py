"""What MemoryProfiler costs the process it profiles, and what watching from outside costs.

In-process: a CPU-bound pure-Python loop timed with the profiler running and not running,
alternating in one sample so drift hits both sides alike; the overhead is the median of the
paired ratios (as in bench_harness.peak_rss_overhead). The profiler's thread has to take the GIL
from the loop for every reading, which is the whole cost. Also reported: the spacing of readings
the thread achieved under that load (asked 50 ms; the GIL switch interval is 5 ms).

External: `benchtrack watch` samples another process's /proc from its own process, so the
watched process runs no code of ours and holds no lock we take: by construction it pays nothing
but a share of the machine. Measured anyway: a child process's CPU-bound loop timed (by the child)
with this process polling the child's RSS every 50 ms and without, alternating.
"""

from __future__ import annotations

import inspect
import math
import select
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass

import psutil

from benchtrack import MemoryProfiler, benchmark

WORK_S = 0.25  # seconds of CPU-bound work per timed run (four readings at 50 ms)
ROUNDS = 12  # on/off pairs per measurement
WATCH_INTERVAL = 0.05  # the external watcher's polling interval

def _cpu_bound(n: int) -> int:
    total = 0
    for i in range(n):
        total += i * i % 7
    return total


# The child runs the very same loop, timed by itself.
_CHILD_SOURCE = inspect.getsource(_cpu_bound) + """
import sys, time
for line in sys.stdin:
    n = int(line)
    start = time.perf_counter()
    _cpu_bound(n)
    print(time.perf_counter() - start, flush=True)
"""


def _timed(n: int) -> float:
    start = time.perf_counter()
    _cpu_bound(n)
    return time.perf_counter() - start


def _calibrate() -> int:
    n = 20_000
    while _timed(n) < 0.02:
        n *= 2
    return max(1, int(n * WORK_S / _timed(n)))


@dataclass(frozen=True)
class Measured:
    overhead_pct: float  # median of paired on/off wall-time ratios, minus one
    spread_pct: float  # interquartile range of those ratios: the noise the median sits in
    cpu_overhead_pct: float  # the same with the process's CPU time (both threads): blind to other processes
    achieved_interval_ms: float  # median spacing of the thread's readings during the loop


def _in_process(interval: float, n: int) -> Measured:
    ratios, cpu_ratios, gaps = [], [], []
    for round_index in range(ROUNDS):
        wall, cpu = {}, {}
        for on in ((True, False) if round_index % 2 == 0 else (False, True)):
            profiler = MemoryProfiler(interval=interval) if on else None
            if profiler is not None:
                profiler.start()
            cpu0 = time.process_time()
            wall[on] = _timed(n)
            cpu[on] = time.process_time() - cpu0
            if profiler is not None:
                profiler.stop()
                # thread to thread only: the first interval starts at start()'s own reading, the
                # last ends at stop()'s
                gaps.extend(profiler.intervals()[1:-1])
        ratios.append(wall[True] / wall[False])
        cpu_ratios.append(cpu[True] / cpu[False])
    quartiles = statistics.quantiles(ratios, n=4)
    return Measured((statistics.median(ratios) - 1.0) * 100.0, (quartiles[2] - quartiles[0]) * 100.0,
                    (statistics.median(cpu_ratios) - 1.0) * 100.0,
                    statistics.median(gaps) * 1000.0 if gaps else math.nan)


def _external(n: int) -> float:
    """Overhead % of a CPU-bound child while this process polls its RSS every 50 ms."""
    child = subprocess.Popen([sys.executable, "-c", _CHILD_SOURCE], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             text=True, bufsize=1)
    assert child.stdin is not None
    assert child.stdout is not None
    watched = psutil.Process(child.pid)
    ratios = []
    try:
        for round_index in range(ROUNDS):
            seconds = {}
            for on in ((True, False) if round_index % 2 == 0 else (False, True)):
                child.stdin.write(f"{n}\n")
                while on and not select.select([child.stdout], [], [], WATCH_INTERVAL)[0]:
                    watched.memory_info()  # what a watcher does: read the target's RSS from /proc
                seconds[on] = float(child.stdout.readline())
            ratios.append(seconds[True] / seconds[False])
    finally:
        child.stdin.close()
        child.wait(timeout=30)
    return (statistics.median(ratios) - 1.0) * 100.0


@benchmark(name="profiler.overhead", kind="track", tags=("profiler",), samples=3, processes=1, warmups=0,
           targets={"track.overhead_pct_50ms.median": 2.0})
def profiler_overhead() -> dict[str, float]:
    """Overheads in %, with the interquartile range of the paired ratios beside each: on a busy
    machine that spread, not the profiler, decides how small an overhead can be told apart."""
    n = _calibrate()
    at_50, at_10 = _in_process(0.05, n), _in_process(0.01, n)
    return {
        "overhead_pct_50ms": at_50.overhead_pct,
        "overhead_pct_50ms_iqr": at_50.spread_pct,
        "overhead_pct_10ms": at_10.overhead_pct,
        "overhead_pct_10ms_iqr": at_10.spread_pct,
        "cpu_overhead_pct_50ms": at_50.cpu_overhead_pct,
        "cpu_overhead_pct_10ms": at_10.cpu_overhead_pct,
        "achieved_interval_ms_50ms": at_50.achieved_interval_ms,
        "achieved_interval_ms_10ms": at_10.achieved_interval_ms,
        "external_overhead_pct": _external(n),
    }
