"""Memory stress and recovery: where a process breaks under a real memory limit, how
fragmentation keeps memory resident, how much memory comes back after a load, and whether a
component's reset returns it to its pre-load footprint."""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

from benchtrack import benchmark
from benchtrack.probes.memory import current_rss

MIB = 1024 * 1024
CGROUP_V1 = Path("/sys/fs/cgroup/memory")
LIMIT_MB = 96
STEP_MB = 4

# The child allocates and touches STEP_MB at a time and reports each step on stdout, so the
# last line it printed is the breaking point when the kernel (or the allocator) stops it.
_RAMP = f"""
import sys
blocks = []
mb = 0
while mb < 4096:
    try:
        block = bytearray({STEP_MB} * 1024 * 1024)
    except MemoryError:
        print("memoryerror", flush=True)
        sys.exit(3)
    for i in range(0, len(block), 4096):
        block[i] = 1
    blocks.append(block)
    mb += {STEP_MB}
    print(mb, flush=True)
"""


def _ramp_in_cgroup() -> tuple[float, float, float]:
    """(breaking point MB, OOM kill seen 1/0, 1) under a real v1 memory cgroup limit."""
    group = CGROUP_V1 / f"benchtrack-ramp-{uuid.uuid4().hex[:8]}"
    group.mkdir()
    try:
        (group / "memory.limit_in_bytes").write_text(str(LIMIT_MB * MIB))
        swap = group / "memory.memsw.limit_in_bytes"
        if swap.exists():
            swap.write_text(str(LIMIT_MB * MIB))
        child = subprocess.Popen([sys.executable, "-c", _RAMP], stdout=subprocess.PIPE, text=True,
                                 preexec_fn=lambda: (group / "cgroup.procs").write_text(str(os.getpid())))  # noqa: PLW1509
        output, _ = child.communicate(timeout=120)
        oom_kills = _oom_kills(group)
        steps = [int(line) for line in output.split() if line.isdigit()]
        return float(steps[-1] if steps else 0), float(oom_kills > 0 or child.returncode == -9), 1.0
    finally:
        time.sleep(0.1)
        group.rmdir()


def _oom_kills(group: Path) -> int:
    for line in (group / "memory.oom_control").read_text().splitlines():
        if line.startswith("oom_kill "):
            return int(line.split()[1])
    return int((group / "memory.failcnt").read_text())


def _ramp_with_rlimit() -> tuple[float, float, float]:
    """Fallback where cgroups cannot be created: an address-space limit (coarser: it counts
    the interpreter's mappings too), reported as method 0."""
    limit = (LIMIT_MB + 64) * MIB
    child = subprocess.Popen(
        [sys.executable, "-c", f"import resource; resource.setrlimit(resource.RLIMIT_AS, ({limit}, {limit}))\n" + _RAMP],
        stdout=subprocess.PIPE, text=True,
    )
    output, _ = child.communicate(timeout=120)
    steps = [int(line) for line in output.split() if line.isdigit()]
    return float(steps[-1] if steps else 0), 0.0, 0.0


def _can_use_cgroups() -> bool:
    return CGROUP_V1.is_dir() and os.access(CGROUP_V1, os.W_OK) and os.geteuid() == 0


@benchmark(name="stress.pressure_ramp", kind="track", processes=1, samples=2, warmups=0, timeout=300,
           tags=("memory", "stress"))
def pressure_ramp() -> dict[str, float]:
    """Allocate in 4 MB steps until a 96 MB limit stops the process: the breaking point."""
    breaking, oom, method = _ramp_in_cgroup() if _can_use_cgroups() else _ramp_with_rlimit()
    return {"breaking_point_mb": breaking, "limit_mb": float(LIMIT_MB), "oom_killed": oom, "cgroup_limit": method}


def _malloc_trim() -> None:
    """Hand freed arenas back to the OS where glibc allows it (what a long-lived service may do)."""
    name = ctypes.util.find_library("c")
    if name:
        libc = ctypes.CDLL(name)
        if hasattr(libc, "malloc_trim"):
            libc.malloc_trim(0)


@benchmark(name="stress.fragmentation", kind="track", samples=3, tags=("memory", "stress"))
def fragmentation() -> dict[str, float]:
    """Many small objects, every other one freed: how much stays resident that nothing uses."""
    gc.collect()
    _malloc_trim()
    before = current_rss()
    objects = [bytes(200) + i.to_bytes(4, "little") for i in range(400_000)]
    peak = current_rss()
    del objects[::2]
    gc.collect()
    after_half = current_rss()
    live = len(objects) * (200 + 4 + 33)  # payload plus bytes object header
    del objects
    gc.collect()
    after_all = current_rss()
    return {
        "peak_mb": (peak - before) / MIB,
        "half_freed_mb": (after_half - before) / MIB,
        "live_mb": live / MIB,
        "resident_over_live": (after_half - before) / live if live else 0.0,
        "retained_after_free_mb": (after_all - before) / MIB,
    }


@benchmark(name="stress.recovery", kind="track", samples=3, tags=("memory", "stress"),
           targets={"track.unrecovered_pct.median": 50.0})
def recovery() -> dict[str, float]:
    """A load of ~130 MB of Python objects, released: percent of the growth given back by the
    collector alone, and after glibc's malloc_trim."""
    gc.collect()
    _malloc_trim()  # start from a trimmed heap, or an earlier sample's free arenas hide the load
    before = current_rss()
    load = [{"id": i, "payload": "x" * 100, "tags": [i, i + 1]} for i in range(400_000)]
    peak = current_rss()
    del load
    gc.collect()
    released = current_rss()
    _malloc_trim()
    trimmed = current_rss()
    grown = max(peak - before, 1)
    return {
        "load_mb": (peak - before) / MIB,
        "recovered_pct": 100.0 * (peak - released) / grown,
        "recovered_after_trim_pct": 100.0 * (peak - trimmed) / grown,
        "unrecovered_pct": 100.0 * (trimmed - before) / grown,
    }


class SessionCache:
    """A component with a reset, as a service's cache or connection pool would have."""

    def __init__(self) -> None:
        self.entries: dict[str, bytes] = {}

    def load(self, count: int) -> None:
        for i in range(count):
            self.entries[f"session-{i}"] = os.urandom(512)

    def reset(self) -> None:
        self.entries = {}


@benchmark(name="stress.reset", kind="track", samples=3, tags=("memory", "stress"),
           targets={"track.excess_after_reset_pct.median": 10.0})
def reset_behaviour() -> dict[str, float]:
    """After reset(), memory must be back within 10% of the pre-load baseline."""
    gc.collect()
    _malloc_trim()
    baseline = current_rss()
    cache = SessionCache()
    cache.load(150_000)
    loaded = current_rss()
    cache.reset()
    gc.collect()
    _malloc_trim()
    after = current_rss()
    return {
        "baseline_mb": baseline / MIB,
        "loaded_mb": loaded / MIB,
        "after_reset_mb": after / MIB,
        "excess_after_reset_pct": 100.0 * (after - baseline) / baseline,
    }

