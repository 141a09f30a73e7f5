"""Watch a memory target over time: a sampling loop that produces a :class:`Timeline`.

The loop runs in our process and only reads the target (see :mod:`benchtrack.probes.targets`),
so the watched process pays nothing for it. Each sample is stamped with the time actually
measured around its read (the midpoint of the clock before and after), never the time it was
scheduled for: under load a sample comes late, and the leak slope must see when it really came.
Ticks that were missed are skipped rather than taken in a burst.

``clock``, ``sleep`` and ``wall_clock`` are injected so the loop can be tested without real time.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from benchtrack.analysis.leaks import LeakThresholds, LeakVerdict, detect_leak
from benchtrack.probes.targets import MemoryTarget, TargetReading
from benchtrack.results import OomEvent, Phase, Timeline

MIB = 1024.0 * 1024.0

SampleCallback = Callable[[float, TargetReading, list[OomEvent]], None]


def watch(target: MemoryTarget, *, interval_s: float, duration_s: float | None = None,
          clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
          wall_clock: Callable[[], float] = time.time, on_sample: SampleCallback | None = None,
          stop_when_dead: bool = True, stop_on_interrupt: bool = False) -> Timeline:
    """Sample ``target`` every ``interval_s`` until ``duration_s`` has passed (None: no limit)
    or the target is dead (with ``stop_when_dead``); returns the Timeline.

    - A sample is taken at time 0 and, with a duration, one at its end (the last sleep is cut short).
    - Readings of a dead target are not samples (their memory is 0 by convention); with
      ``stop_when_dead=False`` the loop sleeps on and keeps sampling once it is back.
    - ``on_sample(time_s, reading, new_oom_events)`` is called after every read, dead or alive.
    - ``stop_on_interrupt``: Ctrl+C ends the watch and returns what was measured so far.
    The caller owns the target: closing it (which ends a command we started) is the caller's job.
    """
    if not (math.isfinite(interval_s) and interval_s > 0):
        raise ValueError(f"interval_s must be positive, got {interval_s}")
    if duration_s is not None and not (math.isfinite(duration_s) and duration_s >= 0):
        raise ValueError(f"duration_s must be finite and >= 0, got {duration_s}")
    start = clock()
    started_at = wall_clock()
    times: list[float] = []
    memory: list[float] = []
    events: list[OomEvent] = []
    limit: float | None = None
    try:
        next_due = start
        while True:
            before = clock()
            reading = target.read()
            after = clock()
            elapsed = max(0.0, (before + after) / 2.0 - start)
            new_events = target.new_oom_events(elapsed)
            events.extend(new_events)
            if reading.alive:
                times.append(elapsed)
                memory.append(float(reading.memory_bytes))
                if reading.limit_bytes is not None:
                    limit = float(reading.limit_bytes)
            if on_sample is not None:
                on_sample(elapsed, reading, new_events)
            if not reading.alive and stop_when_dead:
                break
            now = clock()
            if duration_s is not None and now - start >= duration_s:
                break
            next_due += interval_s
            if next_due < now:  # we fell behind: skip the missed ticks
                next_due = now + interval_s - ((now - next_due) % interval_s)
            wake = next_due if duration_s is None else min(next_due, start + duration_s)
            sleep(max(0.0, wake - now))
    except KeyboardInterrupt:
        if not stop_on_interrupt:
            raise
    return Timeline(target=target.description, started_at=started_at, times_s=tuple(times),
                    memory_bytes=tuple(memory), limit_bytes=limit, oom_events=tuple(events))


@dataclass(frozen=True)
class MemorySummary:
    """Plain numbers about a timeline, in MB (MiB); zeros when it holds no sample."""

    samples: int
    duration_s: float
    start_mb: float
    end_mb: float
    peak_mb: float
    peak_time_s: float
    limit_mb: float | None

    def as_dict(self) -> dict[str, Any]:
        return {"samples": self.samples, "duration_s": self.duration_s, "start_mb": self.start_mb,
                "end_mb": self.end_mb, "peak_mb": self.peak_mb, "peak_time_s": self.peak_time_s,
                "limit_mb": self.limit_mb}


def summarize_timeline(timeline: Timeline) -> MemorySummary:
    limit_mb = None if timeline.limit_bytes is None else timeline.limit_bytes / MIB
    if not timeline.memory_bytes:
        return MemorySummary(0, 0.0, 0.0, 0.0, 0.0, 0.0, limit_mb)
    memory = timeline.memory_bytes
    peak_index = max(range(len(memory)), key=memory.__getitem__)
    return MemorySummary(
        samples=len(memory),
        duration_s=timeline.times_s[-1] - timeline.times_s[0],
        start_mb=memory[0] / MIB,
        end_mb=memory[-1] / MIB,
        peak_mb=memory[peak_index] / MIB,
        peak_time_s=timeline.times_s[peak_index],
        limit_mb=limit_mb,
    )


def judge_timeline(timeline: Timeline, thresholds: LeakThresholds, *, warmup_s: float | None = None,
                   warmup_fraction: float = 0.2) -> tuple[Timeline, LeakVerdict]:
    """The leak verdict of a watched timeline, and the timeline with its "warm-up" and
    "analysed" phases marked. ``warmup_s`` (seconds) replaces the default warm-up of
    ``warmup_fraction`` of the run."""
    if warmup_s is None:
        leak = detect_leak(timeline.times_s, timeline.memory_bytes, thresholds=thresholds, warmup_fraction=warmup_fraction)
    else:
        leak = detect_leak(timeline.times_s, timeline.memory_bytes, thresholds=thresholds, warmup_fraction=0.0,
                           min_warmup_s=warmup_s)
    start_s = timeline.times_s[0] if timeline.times_s else 0.0
    end_s = timeline.times_s[-1] if timeline.times_s else 0.0
    cut = min(start_s + leak.warmup_s, end_s)
    return replace(timeline, phases=(Phase("warm-up", start_s, cut), Phase("analysed", cut, end_s))), leak
