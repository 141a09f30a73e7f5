"""MemoryProfiler: memory of this process over time, with named phases, as a Timeline.

    with MemoryProfiler(interval=0.05, name="nightly import") as profiler:
        with profiler.phase("load"):
            rows = load()
        profiler.mark_start("train")
        model = train(rows)
        profiler.mark_end("train")
    profiler.phase_stats()["load"].peak_mb
    profiler.save_chart(Path("import.png"))
    profiler.log_to_mlflow()

How it samples
--------------
A daemon thread reads RSS every ``interval`` seconds and records the *measured* time of each
reading (``time.monotonic``): a Python thread competes for the GIL, so under a CPU-bound main
thread its wake-ups slip by up to the switch interval (5 ms) and an assumed spacing would be wrong
(FIELD_NOTES, "Memory and GC probes"). It waits on an Event against a running deadline (no busy
wait, no drift), skips ticks it has missed rather than bursting, and keeps each reading to one
``pread`` of ``/proc/self/statm`` on a file descriptor kept open: every system call releases the
GIL and costs a thread switch when the main thread wants it back, so one call per sample is the
floor. Phase boundaries take a sample of their own in the calling thread, so a phase's start, end
and peak come from readings taken exactly at its edges; its peak is the highest reading in
``[start, end]``, boundary readings included (a spike between two readings is still missed: use
a shorter interval, or the kernel's high-water mark in a benchmark, for exact peaks).

"MB" is MiB (1,048,576 bytes), as in :mod:`benchtrack.analysis.leaks`. Importing this module
loads neither numpy nor matplotlib nor mlflow; each is imported when its method is called.
"""

from __future__ import annotations

import array
import contextlib
import gc
import itertools
import math
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import psutil

from benchtrack.probes.memory import current_rss
from benchtrack.results import Phase, Timeline

PROFILE_SCHEMA = "benchtrack.profile/1"  # history: 1 - timeline, phases (PhaseStats), leak verdict or null

if TYPE_CHECKING:
    from benchtrack.analysis.leaks import LeakThresholds, LeakVerdict

MIB = 1024.0 * 1024.0
MIN_INTERVAL = 0.001  # seconds; shorter intervals would spend the process on its own measurement
CHILD_REFRESH_S = 0.5  # track_children: how often the list of child processes is refreshed
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


@dataclass(frozen=True)
class PhaseStats:
    """Memory of one phase, from the readings taken at its boundaries and in between (MB)."""

    start_mb: float
    end_mb: float
    peak_mb: float
    delta_mb: float  # end - start: what the phase left behind
    duration_s: float
    samples: int  # readings within [start, end], boundary readings included


@dataclass
class _OpenPhase:
    name: str
    start_s: float
    start_index: int


@dataclass(frozen=True)
class _ClosedPhase:
    name: str
    start_s: float
    end_s: float
    start_index: int
    end_index: int


class _StatmReader:
    """RSS of one process from its statm file, through a descriptor kept open: one pread (a single
    system call, so a single GIL release) per reading instead of open + fstat + read + close."""

    def __init__(self, pid: int | None = None) -> None:
        self._fd = os.open("/proc/self/statm" if pid is None else f"/proc/{pid}/statm", os.O_RDONLY)

    def read(self) -> int:
        return int(os.pread(self._fd, 128, 0).split()[1]) * _PAGE_SIZE

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self._fd)


class _ChildrenRss:
    """Summed RSS of this process's descendants; the (costly, /proc-wide) list of descendants is
    refreshed at most every CHILD_REFRESH_S, their statm files are read at every sample."""

    def __init__(self) -> None:
        self._process = psutil.Process()
        self._readers: dict[int, _StatmReader | psutil.Process] = {}
        self._refreshed = -math.inf

    def read(self, now: float) -> int:
        if now - self._refreshed >= CHILD_REFRESH_S:
            self._refresh()
            self._refreshed = now
        total = 0
        for pid, reader in list(self._readers.items()):
            try:
                total += reader.read() if isinstance(reader, _StatmReader) else int(reader.memory_info().rss)
            except (OSError, ValueError, IndexError, psutil.Error):
                self._drop(pid)  # exited since the last refresh
        return total

    def _refresh(self) -> None:
        try:
            alive = {child.pid for child in self._process.children(recursive=True)}
        except psutil.Error:
            alive = set()
        for pid in set(self._readers) - alive:
            self._drop(pid)
        for pid in alive - set(self._readers):
            try:
                self._readers[pid] = _StatmReader(pid)
            except OSError:
                with contextlib.suppress(psutil.Error):
                    self._readers[pid] = psutil.Process(pid)

    def _drop(self, pid: int) -> None:
        reader = self._readers.pop(pid, None)
        if isinstance(reader, _StatmReader):
            reader.close()

    def close(self) -> None:
        for pid in list(self._readers):
            self._drop(pid)


class MemoryProfiler:
    """Sample this process's RSS in a background thread, with named phases; see the module doc.

    ``interval``: seconds between readings (the achieved spacing is recorded, never assumed).
    ``gc_at_boundaries``: run ``gc.collect()`` before every boundary reading, so each phase's
    start and end show memory still referenced rather than garbage awaiting collection (a phase's
    duration then includes the collection that closes it).
    ``track_children``: add the RSS of descendant processes to every reading (their list is
    refreshed every CHILD_REFRESH_S; shared pages are counted once per process, as RSS does).
    ``name``: the timeline's target and the MLflow run name.

    Phases may nest and overlap; a name may be used again once closed (``phase_stats`` then keys
    the repeats ``name#2``, ``name#3``, ...). Phases still open when the profiler stops are closed
    at its final reading. The profiler runs once: enter it (or ``start()``) a single time.
    """

    def __init__(self, interval: float = 0.05, *, gc_at_boundaries: bool = False, track_children: bool = False,
                 name: str | None = None) -> None:
        if not (math.isfinite(interval) and interval >= MIN_INTERVAL):
            raise ValueError(f"interval must be a finite number of seconds >= {MIN_INTERVAL}, got {interval!r}")
        self.interval = float(interval)
        self.gc_at_boundaries = gc_at_boundaries
        self.track_children = track_children
        self.name = name
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # C arrays, not lists: a list would keep one Python float per sample, allocated among the
        # profiled program's objects, and those survivors pin the arenas its freed objects lived
        # in, so memory the program released would still look resident.
        self._times = array.array("d")
        self._rss = array.array("d")
        self._open: list[_OpenPhase] = []
        self._closed: list[_ClosedPhase] = []
        self._t0 = 0.0
        self._started_at = 0.0
        self._state = "new"  # new -> running -> stopped
        self._own: _StatmReader | None = None
        self._children: _ChildrenRss | None = None

    # --- life cycle ------------------------------------------------------------------------------

    def __enter__(self) -> MemoryProfiler:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def start(self) -> None:
        """Take the first reading and start the sampling thread."""
        if self._state != "new":
            raise RuntimeError("a MemoryProfiler runs once; create a new one for another run")
        try:
            self._own = _StatmReader()
        except OSError:
            self._own = None  # no /proc: psutil through current_rss
        self._children = _ChildrenRss() if self.track_children else None
        self._started_at = time.time()
        self._t0 = time.monotonic()
        self._state = "running"
        self._sample()
        self._thread = threading.Thread(target=self._run, name="benchtrack-memory-profiler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread, take a final reading and close phases left open. Idempotent."""
        if self._state != "running":
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._sample()
        with self._lock:
            end_s, end_index = self._times[-1], len(self._times) - 1
            for phase in reversed(self._open):
                self._closed.append(_ClosedPhase(phase.name, phase.start_s, end_s, phase.start_index, end_index))
            self._open.clear()
            self._state = "stopped"
            if self._own is not None:
                self._own.close()
            if self._children is not None:
                self._children.close()

    @property
    def running(self) -> bool:
        return self._state == "running"

    @property
    def thread_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        stop, clock, interval, sample = self._stop, time.monotonic, self.interval, self._sample
        deadline = clock() + interval
        while not stop.wait(max(deadline - clock(), 0.0)):
            sample()
            deadline += interval
            now = clock()
            if deadline <= now:  # the GIL or the machine held us up: skip missed ticks, no burst
                deadline = now + interval

    def _read(self, now: float) -> int:
        rss = self._own.read() if self._own is not None else current_rss()
        if self._children is not None:
            rss += self._children.read(now)
        return rss

    def _sample(self) -> int:
        """Take one reading; returns its index. The lock keeps times strictly increasing when the
        thread and a boundary sample race."""
        with self._lock:
            return self._sample_locked()

    def _sample_locked(self) -> int:
        rss = self._read(time.monotonic())
        t = time.monotonic() - self._t0
        if self._times and t <= self._times[-1]:
            t = math.nextafter(self._times[-1], math.inf)
        self._times.append(t)
        self._rss.append(float(rss))
        return len(self._times) - 1

    def _boundary(self) -> tuple[float, int]:
        if self.gc_at_boundaries:
            gc.collect()
        index = self._sample()
        return self._times[index], index

    # --- phases ----------------------------------------------------------------------------------

    def mark_start(self, name: str) -> None:
        """Open phase ``name`` now (with a reading taken at this instant)."""
        self._require_running("mark_start")
        start_s, index = self._boundary()
        with self._lock:
            self._open.append(_OpenPhase(name, start_s, index))

    def mark_end(self, name: str) -> None:
        """Close the most recently opened phase called ``name``; ValueError if none is open."""
        self._require_running("mark_end")
        with self._lock:
            if not any(p.name == name for p in self._open):
                open_names = ", ".join(repr(p.name) for p in self._open) or "none"
                raise ValueError(f"no open phase named {name!r} (open: {open_names})")
        end_s, end_index = self._boundary()
        with self._lock:
            positions = [i for i, p in enumerate(self._open) if p.name == name]
            if not positions:  # another thread closed it meanwhile
                raise ValueError(f"no open phase named {name!r}")
            phase = self._open.pop(positions[-1])
            self._closed.append(_ClosedPhase(name, phase.start_s, end_s, phase.start_index, end_index))

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """``with profiler.phase("load"): ...`` : mark_start and mark_end, also when the body raises."""
        self.mark_start(name)
        try:
            yield
        finally:
            if self.running:
                self.mark_end(name)

    def check_memory(self, force_sample: bool = False) -> float:
        """Current memory in MB; with ``force_sample`` the reading is also recorded now."""
        with self._lock:
            if self._state == "running":
                if force_sample:
                    return self._rss[self._sample_locked()] / MIB
                return self._read(time.monotonic()) / MIB
        return current_rss() / MIB

    def _require_running(self, what: str) -> None:
        if self._state != "running":
            raise RuntimeError(f"{what}: the profiler is not running (use it inside its with block)")

    # --- results ---------------------------------------------------------------------------------

    @property
    def timeline(self) -> Timeline:
        """A snapshot of the readings so far, with the closed phases (all phases once stopped)."""
        with self._lock:
            times, rss = tuple(self._times), tuple(self._rss)
            closed = list(self._closed)
        target = self.name or f"pid {os.getpid()}"
        if self.track_children:
            target += " (with children)"
        phases = tuple(Phase(p.name, p.start_s, p.end_s) for p in sorted(closed, key=lambda p: (p.start_s, -p.end_s)))
        return Timeline(target=target, started_at=self._started_at, times_s=times, memory_bytes=rss, phases=phases)

    def phase_stats(self) -> dict[str, PhaseStats]:
        """Per closed phase, in order of closing: start, end, peak and change in MB, and duration."""
        with self._lock:
            rss = list(self._rss)
            closed = list(self._closed)
        stats: dict[str, PhaseStats] = {}
        seen: dict[str, int] = {}
        for phase in closed:
            seen[phase.name] = seen.get(phase.name, 0) + 1
            key = phase.name if seen[phase.name] == 1 else f"{phase.name}#{seen[phase.name]}"
            within = rss[phase.start_index : phase.end_index + 1]
            start_mb, end_mb = rss[phase.start_index] / MIB, rss[phase.end_index] / MIB
            stats[key] = PhaseStats(start_mb=start_mb, end_mb=end_mb, peak_mb=max(within) / MIB,
                                    delta_mb=end_mb - start_mb, duration_s=phase.end_s - phase.start_s,
                                    samples=len(within))
        return stats

    def intervals(self) -> list[float]:
        """Measured spacing of consecutive readings, seconds (boundary readings included)."""
        with self._lock:
            times = list(self._times)
        return [b - a for a, b in itertools.pairwise(times)]

    def leak_verdict(self, thresholds: LeakThresholds | None = None, **options: Any) -> LeakVerdict:
        """Trend verdict on the readings (:func:`benchtrack.analysis.leaks.detect_leak`; ``options``
        go to it: warmup_fraction, min_warmup_s, alpha)."""
        from benchtrack.analysis.leaks import LeakThresholds, detect_leak

        timeline = self.timeline
        return detect_leak(timeline.times_s, timeline.memory_bytes, thresholds=thresholds or LeakThresholds(),
                           **options)

    def save_chart(self, path: Path | str, *, title: str | None = None, leak: LeakVerdict | None = None) -> Path:
        """PNG of the timeline (memory, phases, peak, change rate; the leak trend when given)."""
        from benchtrack.report.charts import timeline_chart

        timeline = self.timeline
        return timeline_chart(timeline, Path(path), title=title or f"memory profile: {timeline.target}", leak=leak)

    def profile_document(self, leak: LeakVerdict | None = None) -> dict[str, Any]:
        """The profile as a ``benchtrack.profile/1`` document: the timeline (``benchtrack.timeline/1``),
        per-phase numbers and, when given, the leak verdict (what `benchtrack report` renders)."""
        from dataclasses import asdict

        from benchtrack.results import timeline_to_dict

        verdict = None
        if leak is not None:
            judged = math.isfinite(leak.slope_mb_per_min)
            verdict = {"detected": bool(leak.detected), "severity": leak.severity, "judged": judged,
                       **{key: (float(getattr(leak, key)) if judged else 0.0)
                          for key in ("slope_mb_per_min", "ci_low", "ci_high", "growth_mb")}}
        return {"schema": PROFILE_SCHEMA, "timeline": timeline_to_dict(self.timeline),
                "phases": {name: asdict(stats) for name, stats in self.phase_stats().items()}, "leak": verdict}

    def save_json(self, path: Path | str, *, leak: LeakVerdict | None = None) -> Path:
        """Write :meth:`profile_document` as JSON (render it with `benchtrack report PATH --format html`)."""
        import json

        path = Path(path)
        path.write_text(json.dumps(self.profile_document(leak), indent=2, allow_nan=False), encoding="utf-8")
        return path

    def log_to_mlflow(self, tracking_uri: str | None = None, experiment: str = "benchtrack/profiles",
                      run_name: str | None = None) -> str:
        """Log the profile as one MLflow run and return its id: ``memory_mb`` per reading (step =
        reading index, timestamp = when it was read), per-phase metrics ``phase.<name>.<stat>``,
        summary metrics, the timeline JSON and the PNG chart as artifacts. ``tracking_uri``
        defaults as on the command line (MLFLOW_TRACKING_URI, else ./mlflow.db)."""
        from benchtrack.tracking.profiles import log_profile
        from benchtrack.tracking.uri import resolve_tracking_uri

        params = {"interval_s": str(self.interval), "gc_at_boundaries": str(self.gc_at_boundaries),
                  "track_children": str(self.track_children), "pid": str(os.getpid())}
        uri = resolve_tracking_uri(tracking_uri)
        run_id = log_profile(uri, self.timeline, self.phase_stats(), experiment=experiment,
                             run_name=run_name or self.name, params=params, chart=self.save_chart)
        from benchtrack.report.publish import publish_memory_report
        from benchtrack.tracking.store import MlflowStore

        warning = publish_memory_report(MlflowStore(uri), run_id, self.profile_document())
        if warning:
            import warnings

            warnings.warn(warning, RuntimeWarning, stacklevel=2)
        return run_id
