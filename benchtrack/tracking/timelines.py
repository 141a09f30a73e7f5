"""Memory timelines (`benchtrack watch`) in MLflow: one run per watch in ``benchtrack/watch``.

A run holds:
- tags ``benchtrack.type=watch``, ``benchtrack.watch.target`` (what was watched),
  ``benchtrack.watch.kind`` (process, command, cgroup, container), ``benchtrack.machine.fingerprint``,
  the level, and the leak verdict (``benchtrack.leak.detected``, ``benchtrack.leak.severity``);
- the metric ``memory_mb``, one step per sample, each with its real timestamp (epoch ms of
  ``started_at + time_s``), written through the store's bulk writer (one INSERT on SQL stores);
- summary metrics at step 0: peak_mb, start_mb, end_mb, slope_mb_per_min, slope_ci_low,
  slope_ci_high, growth_mb, samples, duration_s, oom_events (and limit_mb when known). A NaN
  (a verdict from too few samples) is not logged at all;
- the artifacts ``benchtrack/timeline.json`` (``benchtrack.timeline/1``) and, when given,
  ``benchtrack/timeline.png``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path

from benchtrack.analysis.leaks import LeakVerdict
from benchtrack.results import Timeline, timeline_to_dict
from benchtrack.tracking.store import (
    MAX_PARAMS_PER_BATCH,
    MlflowStore,
    Point,
    _clip_tags,
    _translate_errors,
    log_artifact_files,
)

WATCH_SUITE = "watch"  # experiment benchtrack/watch
MEMORY_METRIC = "memory_mb"
TIMELINE_ARTIFACT = "benchtrack/timeline.json"
CHART_ARTIFACT = "benchtrack/timeline.png"
MIB = 1024.0 * 1024.0


def timeline_points(timeline: Timeline) -> list[Point]:
    """memory_mb at step i, stamped with the sample's real time in epoch milliseconds."""
    return [
        (MEMORY_METRIC, memory / MIB, round((timeline.started_at + t) * 1000), step)
        for step, (t, memory) in enumerate(zip(timeline.times_s, timeline.memory_bytes, strict=True))
    ]


def watch_summary_metrics(timeline: Timeline, leak: LeakVerdict) -> dict[str, float]:
    memory = timeline.memory_bytes
    metrics = {
        "samples": float(len(memory)),
        "duration_s": (timeline.times_s[-1] - timeline.times_s[0]) if memory else 0.0,
        "oom_events": float(len(timeline.oom_events)),
        "slope_mb_per_min": leak.slope_mb_per_min,
        "slope_ci_low": leak.ci_low,
        "slope_ci_high": leak.ci_high,
        "growth_mb": leak.growth_mb,
    }
    if memory:
        metrics.update(peak_mb=max(memory) / MIB, start_mb=memory[0] / MIB, end_mb=memory[-1] / MIB)
    if timeline.limit_bytes is not None:
        metrics["limit_mb"] = timeline.limit_bytes / MIB
    return {key: float(value) for key, value in metrics.items() if math.isfinite(value)}


def log_watch(store: MlflowStore, timeline: Timeline, leak: LeakVerdict, *, kind: str, fingerprint: str,
              level: str, params: Mapping[str, str] | None = None, chart: Path | None = None,
              tags: Mapping[str, str] | None = None) -> str:
    """Log one watch as one finished run; returns its run id (TrackingError on any store failure)."""
    experiment_id = store.experiment_id(WATCH_SUITE)
    all_tags = {
        "benchtrack.type": "watch",
        "benchtrack.watch.target": timeline.target,
        "benchtrack.watch.kind": kind,
        "benchtrack.machine.fingerprint": fingerprint,
        "benchtrack.level": level,
        "benchtrack.leak.detected": str(leak.detected).lower(),
        "benchtrack.leak.severity": leak.severity,
        **(tags or {}),
    }
    client = store.client
    start_ms = round(timeline.started_at * 1000)
    end_s = timeline.started_at + (timeline.times_s[-1] if timeline.times_s else 0.0)
    with _translate_errors("cannot log the watch"):
        run = client.create_run(experiment_id, start_time=start_ms, tags=_clip_tags(all_tags),
                                run_name=f"watch {timeline.target}"[:250])
        run_id = str(run.info.run_id)
        now_ms = round(end_s * 1000)
        summary: list[Point] = [(key, value, now_ms, 0) for key, value in watch_summary_metrics(timeline, leak).items()]
        store.write_points(run_id, timeline_points(timeline) + summary)
        if params:
            store.log_params(run_id, dict(list(params.items())[:MAX_PARAMS_PER_BATCH]))
        _log_artifacts(run.info.artifact_uri, timeline, chart)
        client.set_terminated(run_id, "FINISHED", end_time=max(now_ms, start_ms))
    return run_id


def _log_artifacts(artifact_uri: str, timeline: Timeline, chart: Path | None) -> None:
    folder, name = TIMELINE_ARTIFACT.rsplit("/", 1)
    files: dict[str, str | Path] = {
        name: json.dumps(timeline_to_dict(timeline), separators=(",", ":"), allow_nan=False),
    }
    if chart is not None and chart.is_file():
        files[CHART_ARTIFACT.rsplit("/", 1)[1]] = chart
    log_artifact_files(artifact_uri, folder, files)
