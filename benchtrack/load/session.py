"""One `benchtrack load` run: watch the target, replay the scenario, judge it, build its document.

:func:`run_scenario` starts a :class:`~benchtrack.load.monitoring.ResourceMonitor` on the target
(if any) so its first sample is the memory *before* load, runs the generator, stops the monitor,
judges the memory timeline for a leak (:func:`benchtrack.monitor.judge_timeline`, the scenario's
warm-up discarded, else the default 20 %), evaluates the pass criteria and returns everything
with the ``benchtrack.load/1`` document. Tracking and rendering are the caller's.

``benchtrack.load/1`` (the keys every consumer may rely on; extra keys may be added)::

    {"schema": "benchtrack.load/1", "requests": int, "success_rate": float, "timeouts": int,
     "throughput_rps": float, "latency_ms": {"p50", "p90", "p95", "p99", "max", "mean": float},
     "memory": benchtrack.watch/1 object or null, "criteria": {"passed": bool, "met": int, "of": int, ...},
     "scenario", "base_url", "model", "tag", "started_at", "duration_s", "successes", "errors": {class: n},
     "rate_limited", "missed_sends", "requested_rps", "saturated", "warnings", "windows": [...],
     "histogram": base64 HDR (microseconds), "alerts": [...], "cpu": {...} or null, "run_id"}

History: 1 - first version.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

from benchtrack.analysis.leaks import LeakThresholds, LeakVerdict
from benchtrack.load.criteria import CriteriaVerdict, RunFigures, evaluate
from benchtrack.load.monitoring import Alert, MonitorRecord, ResourceMonitor
from benchtrack.load.result import LoadResult
from benchtrack.load.scenario import Scenario
from benchtrack.probes.targets import MemoryTarget
from benchtrack.results import Timeline

LOAD_SCHEMA = "benchtrack.load/1"
MIB = 1024.0 * 1024.0


@dataclass(frozen=True)
class LoadRun:
    result: LoadResult
    monitor: MonitorRecord | None
    leak: LeakVerdict | None
    verdict: CriteriaVerdict
    document: dict[str, Any]


# (timeline, leak verdict, MemorySummary.as_dict()) -> the `benchtrack.watch/1` object; the CLI
# hands in `watch_document`, so this module needs nothing of the CLI.
MemoryDocument = Callable[[Timeline, LeakVerdict, dict[str, Any]], dict[str, Any]]


def run_scenario(scenario: Scenario, describe_memory: MemoryDocument, *, target: MemoryTarget | None = None,
                 interval_s: float = 1.0, tag: str | None = None, processes: int = 1, seed: int = 0,
                 leak_thresholds: LeakThresholds | None = None,
                 on_alert: Callable[[Alert], None] | None = None) -> LoadRun:
    from benchtrack.load.generator import run_load

    monitor = None
    if target is not None:
        monitor = ResourceMonitor(target, interval_s=interval_s, alerts=scenario.alerts)
        if on_alert is not None:
            monitor.add_alert_callback(on_alert)
        monitor.start()
    try:
        result = run_load(scenario, processes=processes, seed=seed, tag=tag)
    finally:
        record = monitor.stop() if monitor is not None else None
    return judge_load(scenario, result, record, leak_thresholds or LeakThresholds(), describe_memory)


def judge_load(scenario: Scenario, result: LoadResult, record: MonitorRecord | None, thresholds: LeakThresholds,
               describe_memory: MemoryDocument) -> LoadRun:
    """The leak verdict, the criteria and the document of a finished run."""
    leak = None
    memory = None
    figures = RunFigures(mean_response_ms=result.latency.mean_ms, success_rate=result.success_rate,
                         timeouts=result.timeouts, answered=result.latency.count)
    if record is not None and record.timeline.times_s:
        from benchtrack.monitor import judge_timeline, summarize_timeline

        timeline, leak = judge_timeline(record.timeline, thresholds,
                                        warmup_s=scenario.warmup_s if scenario.warmup_s > 0 else None)
        record = replace(record, timeline=timeline)
        summary = summarize_timeline(timeline)
        growth = leak.slope_mb_per_min * 60.0 if math.isfinite(leak.slope_mb_per_min) else None
        figures = replace(figures, growth_mb_per_hour=growth, start_mb=summary.start_mb, peak_mb=summary.peak_mb)
        memory = describe_memory(timeline, leak, summary.as_dict())
    verdict = evaluate(scenario.criteria, figures)
    if memory is not None:
        memory["failed"] = any(c.held is False for c in verdict.criteria if c.name in ("memory_growth", "peak_memory"))
    document = load_document(scenario, result, verdict, memory, record)
    return LoadRun(result, record, leak, verdict, document)


def load_document(scenario: Scenario, result: LoadResult, verdict: CriteriaVerdict, memory: dict[str, Any] | None,
                  record: MonitorRecord | None) -> dict[str, Any]:
    latency = result.latency
    document = {
        "schema": LOAD_SCHEMA,
        "requests": result.requests,
        "success_rate": result.success_rate,
        "timeouts": result.timeouts,
        "throughput_rps": result.throughput_rps,
        "latency_ms": {"p50": latency.p50_ms, "p90": latency.p90_ms, "p95": latency.p95_ms, "p99": latency.p99_ms,
                       "max": latency.max_ms, "mean": latency.mean_ms},
        "memory": memory,
        "criteria": verdict.as_dict(),
        "scenario": result.scenario,
        "source": scenario.source,
        "base_url": result.base_url,
        "model": result.model,
        "tag": result.tag,
        "started_at": result.started_at,
        "duration_s": result.duration_s,
        "warmup_s": scenario.warmup_s,
        "successes": result.successes,
        "errors": dict(result.errors),
        "rate_limited": result.rate_limited,
        "missed_sends": result.missed_sends,
        "requested_rps": result.requested_rps,
        "saturated": result.saturated,
        "warnings": list(result.warnings),
        "windows": [asdict(w) for w in result.windows],
        "histogram": result.histogram,
        "alerts": [a.as_dict() for a in record.alerts] if record is not None else [],
        "cpu": cpu_summary(record),
        "run_id": None,
    }
    return finite(document)


def cpu_summary(record: MonitorRecord | None) -> dict[str, Any] | None:
    if record is None or not record.cpu_available:
        return None
    values = [sample.percent for sample in record.cpu]
    return {"samples": len(values), "mean_percent": statistics.fmean(values) if values else None,
            "max_percent": max(values) if values else None,
            "timeline": [{"time_s": s.time_s, "percent": s.percent} for s in record.cpu]}


def finite(value: Any) -> Any:
    """NaN and infinities become None: JSON has neither."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [finite(item) for item in value]
    return value
