"""What the rest of the machine did while a worker measured: the CPU time other programs
used (from /proc/stat, less the worker's own) and the load average. Read twice per worker
process, around its samples, never inside a timed region."""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass

PROC_STAT = "/proc/stat"
# Fields of the aggregate "cpu" line of /proc/stat that count as busy (guest time is already in user).
_BUSY_FIELDS = (0, 1, 2, 5, 6, 7)  # user nice system irq softirq steal
_IDLE_FIELDS = (3, 4)  # idle iowait
_STEAL_FIELD = 7


def _cpu_ticks() -> tuple[float, float, float] | None:
    """(busy, total, steal) seconds over all CPUs since boot, or None where /proc/stat is missing."""
    try:
        with open(PROC_STAT, encoding="ascii") as handle:
            fields = [float(v) for v in handle.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    if len(fields) < 8:
        return None
    hertz = float(os.sysconf("SC_CLK_TCK"))
    busy = sum(fields[i] for i in _BUSY_FIELDS) / hertz
    total = busy + sum(fields[i] for i in _IDLE_FIELDS) / hertz
    return busy, total, fields[_STEAL_FIELD] / hertz


@dataclass(frozen=True)
class MachineLoad:
    """Started before a worker's samples, stopped after them."""

    wall: float
    own_cpu: float
    ticks: tuple[float, float, float] | None

    @classmethod
    def start(cls) -> MachineLoad:
        return cls(time.perf_counter(), time.process_time(), _cpu_ticks())

    def stop(self) -> dict[str, float]:
        """others_cpus: CPUs' worth of work other programs did meanwhile (0.0 = the machine was
        ours; 1.0 = a whole CPU was busy elsewhere); steal_cpus: time the hypervisor took."""
        wall, own = time.perf_counter() - self.wall, time.process_time() - self.own_cpu
        values: dict[str, float] = {"wall_s": wall}
        with contextlib.suppress(OSError):  # no load average on this platform
            values["load1"] = os.getloadavg()[0]
        ticks = _cpu_ticks()
        if self.ticks is None or ticks is None or wall <= 0:
            return values
        busy, _, steal = (after - before for after, before in zip(ticks, self.ticks, strict=True))
        values["others_cpus"] = max(0.0, (busy - own) / wall)
        values["steal_cpus"] = max(0.0, steal / wall)
        return values
