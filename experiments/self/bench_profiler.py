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
import select
import statistics
import subprocess
import sys
import time

import psutil

from benchtrack import MemoryProfiler, benchmark

WORK_S = 0.2  # seconds of CPU-bound work per timed run
ROUNDS = 10  # on/off pairs per measurement
WATCH_INTERVAL = 0.05

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


def _in_process(interval: float, n: int) -> tuple[float, float]:
    """(overhead %, median achieved interval in ms) of a profiler at ``interval``."""
    ratios, gaps = [], []
    for round_index in range(ROUNDS):
        seconds = {}
        for on in ((True, False) if round_index % 2 == 0 else (False, True)):
            if on:
                profiler = MemoryProfiler(interval=interval)
                profiler.start()
                seconds[on] = _timed(n)
                profiler.stop()
                gaps.extend(profiler.intervals()[:-1])  # the last one ends at stop()'s own reading
            else:
                seconds[on] = _timed(n)
        ratios.append(seconds[True] / seconds[False])
    return (statistics.median(ratios) - 1.0) * 100.0, statistics.median(gaps) * 1000.0


def _external(n: int) -> float:
    """Overhead % of a CPU-bound child while this process polls its RSS every 50 ms."""
    child = subprocess.Popen([sys.executable, "-c", _CHILD_SOURCE], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             text=True, bufsize=1)
    assert child.stdin is not None and child.stdout is not None
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
    n = _calibrate()
    overhead_50, achieved_50 = _in_process(0.05, n)
    overhead_10, achieved_10 = _in_process(0.01, n)
    return {
        "overhead_pct_50ms": overhead_50,
        "overhead_pct_10ms": overhead_10,
        "achieved_interval_ms_50ms": achieved_50,
        "achieved_interval_ms_10ms": achieved_10,
        "external_overhead_pct": _external(n),
    }
