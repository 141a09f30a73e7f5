"""Watch the service's memory and CPU while load runs, and raise alerts as thresholds are crossed.

Memory comes from the same targets and sampling loop as `benchtrack watch`
(:mod:`benchtrack.probes.targets`, :func:`benchtrack.monitor.watch`), so a load run's timeline is
judged for a leak exactly like a watched one. CPU is read beside each memory sample as the
target's *cumulative* CPU time, turned into a percentage of one CPU over the interval (like
`top`: 200 % is two cores busy):

- process tree: psutil ``cpu_times`` (user + system) summed over the tree; each process counts
  from the first time it is seen, so a child that exits does not make the sum go backwards;
- cgroup: ``cpu.stat`` ``usage_usec`` (v2, same directory) or ``cpuacct.usage`` (v1, the
  ``cpuacct`` hierarchy at the memory cgroup's relative path);
- container: the engine's ``cpu_stats.cpu_usage.total_usage`` (ns) from a one-shot stats call;
  None when the engine does not report it (the CPU timeline is then empty).

Alerts (:class:`AlertSpec`): memory above ``memory_mb``, CPU above ``cpu_percent``, and
memory growth above ``growth_mb_per_min`` measured as the Theil-Sen slope of the last
``GROWTH_WINDOW`` samples (the median of pairwise slopes: one noisy sample cannot fire it). An
alert fires when its value crosses the threshold and re-arms once the value is back below it;
each firing is recorded (time, kind, value, threshold) and handed to every alert callback.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import psutil

from benchtrack.load.scenario import AlertSpec
from benchtrack.probes.targets import CGROUP_ROOTS, MemoryTarget, TargetReading
from benchtrack.results import OomEvent, Timeline

MIB = 1024.0 * 1024.0
GROWTH_WINDOW = 10  # trailing samples behind the growth alert's slope
MIN_GROWTH_SAMPLES = 5  # no growth alert before this many samples


@dataclass(frozen=True)
class Alert:
    time_s: float  # seconds since the monitor started
    kind: str  # "memory" | "cpu" | "growth"
    value: float
    threshold: float
    unit: str  # "MB" | "%" | "MB/min"

    @property
    def message(self) -> str:
        what = {"memory": "memory", "cpu": "CPU", "growth": "memory growth"}[self.kind]
        return f"alert at {self.time_s:.1f} s: {what} {self.value:.1f} {self.unit} above {self.threshold:g} {self.unit}"

    def as_dict(self) -> dict[str, Any]:
        return {"time_s": self.time_s, "kind": self.kind, "value": self.value, "threshold": self.threshold,
                "unit": self.unit}


@dataclass(frozen=True)
class CpuSample:
    time_s: float
    percent: float  # of one CPU over the interval that ends here


AlertCallback = Callable[[Alert], None]


# --- CPU readers -------------------------------------------------------------------------------


class CpuReader(Protocol):
    def cpu_seconds(self) -> float | None:
        """CPU time the target has used so far (a counter), None when it cannot be read now."""
        ...


class ProcessTreeCpu:
    """user + system CPU of a pid and its descendants; each process counts from when first seen."""

    def __init__(self, pid: int) -> None:
        self._root = psutil.Process(pid)
        self._first: dict[int, float] = {}  # pid -> its CPU seconds when first seen
        self._last: dict[int, float] = {}
        self._gone = 0.0  # CPU used by processes that have since exited (up to their last reading)

    def cpu_seconds(self) -> float | None:
        try:
            tree = [self._root, *self._root.children(recursive=True)]
        except psutil.Error:
            return None
        current: dict[int, float] = {}
        for process in tree:
            with contextlib.suppress(psutil.Error):
                times = process.cpu_times()
                current[process.pid] = times.user + times.system
        if not current:
            return None
        for pid in set(self._last) - set(current):
            self._gone += self._last[pid] - self._first[pid]
            del self._first[pid]
        for pid, used in current.items():
            self._first.setdefault(pid, used)
        self._last = current
        return self._gone + sum(used - self._first[pid] for pid, used in current.items())


class CgroupCpu:
    """cpu.stat usage_usec (v2) or cpuacct.usage (v1) of a cgroup."""

    def __init__(self, counter: Path, scale: float) -> None:
        self.counter = counter
        self._scale = scale  # counter units per second

    def cpu_seconds(self) -> float | None:
        try:
            text = self.counter.read_text(encoding="ascii")
        except OSError:
            return None
        if self.counter.name == "cpu.stat":
            for line in text.splitlines():
                key, _, value = line.partition(" ")
                if key == "usage_usec":
                    return int(value) / self._scale
            return None
        return int(text.strip()) / self._scale


def cgroup_cpu_reader(memory_cgroup: Path, roots: Sequence[Path] = CGROUP_ROOTS) -> CgroupCpu | None:
    """The CPU counter beside a memory cgroup: v2 ``cpu.stat`` in the same directory, else v1
    ``cpuacct.usage`` at the same path under the cpuacct (or cpu,cpuacct) hierarchy."""
    if (memory_cgroup / "cpu.stat").is_file() and not (memory_cgroup / "memory.usage_in_bytes").is_file():
        return CgroupCpu(memory_cgroup / "cpu.stat", 1e6)
    for root in roots:
        with contextlib.suppress(ValueError):
            relative = memory_cgroup.relative_to(root)
            for hierarchy in ("cpuacct", "cpu,cpuacct", "cpuacct,cpu"):
                counter = root.parent / hierarchy / relative / "cpuacct.usage"
                if counter.is_file():
                    return CgroupCpu(counter, 1e9)
    return None


class ContainerCpu:
    """cpu_stats.cpu_usage.total_usage (ns) from the engine's one-shot stats."""

    def __init__(self, target: Any) -> None:
        self._target = target

    def cpu_seconds(self) -> float | None:
        target = self._target
        kwargs: dict[str, Any] = {"stream": False}
        if getattr(target, "_one_shot", False):
            kwargs["one_shot"] = True
        try:
            # The target's own API client: one connection, already negotiated.
            stats = target._api.stats(target.id, **kwargs)
            usage = stats["cpu_stats"]["cpu_usage"]["total_usage"]
        except Exception:  # noqa: BLE001 - any engine failure means "no CPU reading this time"
            return None
        return float(usage) / 1e9 if isinstance(usage, int | float) and usage > 0 else None


def cpu_reader_for(target: MemoryTarget) -> CpuReader | None:
    """The CPU counter that matches a watch target; None when there is none to read."""
    kind = getattr(target, "kind", None)
    try:
        if kind in ("process", "command"):
            return ProcessTreeCpu(int(target.pid))  # type: ignore[attr-defined]
        if kind == "cgroup":
            return cgroup_cpu_reader(Path(target.path))  # type: ignore[attr-defined]
        if kind == "container":
            return ContainerCpu(target)
    except psutil.Error:
        return None
    return None


# --- growth and alerts (pure) ------------------------------------------------------------------


def trailing_growth_mb_per_min(times_s: Sequence[float], memory_bytes: Sequence[float],
                               window: int = GROWTH_WINDOW) -> float | None:
    """Theil-Sen slope (median of pairwise slopes) of the last ``window`` samples, MB/min;
    None with fewer than MIN_GROWTH_SAMPLES samples or no time span."""
    if len(times_s) < MIN_GROWTH_SAMPLES:
        return None
    t = np.asarray(times_s[-window:], dtype=float) / 60.0
    mb = np.asarray(memory_bytes[-window:], dtype=float) / MIB
    dt = t[None, :] - t[:, None]
    pairs = dt > 0
    if not pairs.any():
        return None
    return float(np.median((mb[None, :] - mb[:, None])[pairs] / dt[pairs]))


class AlertState:
    """Fires an alert when a value crosses its threshold; re-arms once it is back below."""

    def __init__(self, thresholds: AlertSpec) -> None:
        self.thresholds = thresholds
        self._armed = {"memory": True, "cpu": True, "growth": True}

    def check(self, time_s: float, kind: str, value: float | None) -> Alert | None:
        threshold = {"memory": self.thresholds.memory_mb, "cpu": self.thresholds.cpu_percent,
                     "growth": self.thresholds.growth_mb_per_min}[kind]
        if threshold is None or value is None or not math.isfinite(value):
            return None
        if value <= threshold:
            self._armed[kind] = True
            return None
        if not self._armed[kind]:
            return None
        self._armed[kind] = False
        return Alert(time_s, kind, value, threshold, {"memory": "MB", "cpu": "%", "growth": "MB/min"}[kind])


# --- the monitor -------------------------------------------------------------------------------


class _Stopped(KeyboardInterrupt):
    """Raised from the sampling loop's sleep when stop() is called: monitor.watch() ends on a
    KeyboardInterrupt with stop_on_interrupt=True and returns the timeline measured so far."""


@dataclass(frozen=True)
class MonitorRecord:
    timeline: Timeline
    cpu: tuple[CpuSample, ...]
    alerts: tuple[Alert, ...]
    cpu_available: bool


class ResourceMonitor:
    """Sample a target's memory and CPU in a background thread; alerts as they fire.

    Example::

        monitor = ResourceMonitor(ProcessTarget(pid), interval_s=1.0,
                                  alerts=AlertSpec(growth_mb_per_min=5))
        monitor.add_alert_callback(lambda alert: print(alert.message))
        monitor.start()
        ...  # run the load
        record = monitor.stop()   # record.timeline, record.cpu, record.alerts

    The monitor only reads the target; closing it (ending a command we started) is the caller's job.
    """

    def __init__(self, target: MemoryTarget, *, interval_s: float = 1.0, alerts: AlertSpec | None = None,
                 growth_window: int = GROWTH_WINDOW, cpu: CpuReader | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not (math.isfinite(interval_s) and interval_s > 0):
            raise ValueError(f"interval_s must be positive, got {interval_s}")
        self.target = target
        self.interval_s = interval_s
        self.growth_window = max(growth_window, MIN_GROWTH_SAMPLES)
        self._cpu = cpu if cpu is not None else cpu_reader_for(target)
        self._clock = clock
        self._state = AlertState(alerts or AlertSpec())
        self._callbacks: list[AlertCallback] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._times: list[float] = []
        self._memory: list[float] = []
        self._cpu_samples: list[CpuSample] = []
        self._alerts: list[Alert] = []
        self._last_cpu: tuple[float, float] | None = None  # (clock, cpu seconds)
        self._timeline: Timeline | None = None
        self._error: BaseException | None = None
        self._started_at = time.time()

    def add_alert_callback(self, callback: AlertCallback) -> None:
        self._callbacks.append(callback)

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("a ResourceMonitor starts once")
        self._thread = threading.Thread(target=self._run, name="benchtrack-monitor", daemon=True)
        self._thread.start()

    def stop(self) -> MonitorRecord:
        """End sampling (one last sample is not taken: the loop stops at its next sleep)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._error is not None:
            raise self._error
        return MonitorRecord(self.timeline, self.cpu_timeline, self.alerts, self._cpu is not None)

    @property
    def timeline(self) -> Timeline:
        """Memory so far (the final one after stop())."""
        if self._timeline is not None:
            return self._timeline
        with self._lock:
            return Timeline(target=self.target.description, started_at=self._started_at, times_s=tuple(self._times),
                            memory_bytes=tuple(self._memory))

    @property
    def cpu_timeline(self) -> tuple[CpuSample, ...]:
        with self._lock:
            return tuple(self._cpu_samples)

    @property
    def alerts(self) -> tuple[Alert, ...]:
        with self._lock:
            return tuple(self._alerts)

    def _run(self) -> None:
        from benchtrack.monitor import watch

        def sleep(seconds: float) -> None:
            if self._stop.wait(seconds):
                raise _Stopped

        self._started_at = time.time()
        try:
            self._timeline = watch(self.target, interval_s=self.interval_s, clock=self._clock, sleep=sleep,
                                   on_sample=self._on_sample, stop_when_dead=False, stop_on_interrupt=True)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller of stop()
            self._error = exc

    def _on_sample(self, time_s: float, reading: TargetReading, events: list[OomEvent]) -> None:  # noqa: ARG002
        fired: list[Alert] = []
        cpu_percent = self._read_cpu()
        with self._lock:
            if reading.alive:
                self._times.append(time_s)
                self._memory.append(reading.memory_bytes)
                growth = trailing_growth_mb_per_min(self._times, self._memory, self.growth_window)
                candidates = [("memory", reading.memory_bytes / MIB), ("growth", growth)]
            else:
                candidates = []
            if cpu_percent is not None:
                self._cpu_samples.append(CpuSample(time_s, cpu_percent))
                candidates.append(("cpu", cpu_percent))
            for kind, value in candidates:
                alert = self._state.check(time_s, kind, value)
                if alert is not None:
                    self._alerts.append(alert)
                    fired.append(alert)
        for alert in fired:
            for callback in self._callbacks:
                callback(alert)

    def _read_cpu(self) -> float | None:
        if self._cpu is None:
            return None
        used = self._cpu.cpu_seconds()
        now = self._clock()
        if used is None:
            return None
        previous, self._last_cpu = self._last_cpu, (now, used)
        if previous is None or now <= previous[0]:
            return None
        return max(0.0, (used - previous[1]) / (now - previous[0]) * 100.0)
