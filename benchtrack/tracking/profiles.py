"""A memory profile (a Timeline with per-phase numbers) as one MLflow run.

What a profile run holds:
  tags     benchtrack.type = "profile", benchtrack.profile.target
  metrics  memory_mb at every reading (step = reading index, timestamp = when it was read);
           phase.<name>.{start_mb,end_mb,peak_mb,delta_mb,duration_s,samples};
           start_mb, end_mb, peak_mb, change_mb, duration_s, samples, interval_median_ms, interval_max_ms
  artifacts benchtrack/timeline.json (benchtrack.timeline/1) and benchtrack/memory.png
"""

from __future__ import annotations

import json
import re
import statistics
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

from benchtrack.results import Timeline, timeline_to_dict
from benchtrack.tracking.store import EXPERIMENT_PREFIX, MlflowStore, Point, _clip_tags, _translate_errors, log_artifact_files

PROFILE_TYPE = "profile"
MEMORY_METRIC = "memory_mb"
ARTIFACT_FOLDER = "benchtrack"
TIMELINE_ARTIFACT = f"{ARTIFACT_FOLDER}/timeline.json"
CHART_ARTIFACT = f"{ARTIFACT_FOLDER}/memory.png"
PHASE_FIELDS = ("start_mb", "end_mb", "peak_mb", "delta_mb", "duration_s", "samples")
MIB = 1024.0 * 1024.0
_UNSAFE_KEY = re.compile(r"[^\w.\- :/]")  # characters MLflow refuses in metric names


def metric_safe(name: str) -> str:
    return _UNSAFE_KEY.sub("_", name) or "_"


def profile_points(timeline: Timeline, phase_stats: Mapping[str, object]) -> list[Point]:
    """memory_mb per reading at its real time, then per-phase and summary metrics (step 0)."""
    start_ms = timeline.started_at * 1000.0
    points: list[Point] = [(MEMORY_METRIC, value / MIB, int(start_ms + t * 1000.0), step)
                           for step, (t, value) in enumerate(zip(timeline.times_s, timeline.memory_bytes, strict=True))]
    end_ms = int(start_ms + (timeline.times_s[-1] * 1000.0 if timeline.times_s else 0.0))
    for name, stats in phase_stats.items():
        for field in PHASE_FIELDS:
            points.append((f"phase.{metric_safe(name)}.{field}", float(getattr(stats, field)), end_ms, 0))
    mb = [v / MIB for v in timeline.memory_bytes]
    if mb:
        summary = {"start_mb": mb[0], "end_mb": mb[-1], "peak_mb": max(mb), "change_mb": mb[-1] - mb[0],
                   "duration_s": timeline.times_s[-1] - timeline.times_s[0], "samples": float(len(mb))}
        gaps = [b - a for a, b in zip(timeline.times_s, timeline.times_s[1:], strict=False)]
        if gaps:
            summary["interval_median_ms"] = statistics.median(gaps) * 1000.0
            summary["interval_max_ms"] = max(gaps) * 1000.0
        points.extend((key, float(value), end_ms, 0) for key, value in summary.items())
    return points


def log_profile(uri: str, timeline: Timeline, phase_stats: Mapping[str, object], *, experiment: str,
                run_name: str | None, params: Mapping[str, str], chart: Callable[[Path], Path] | None) -> str:
    """Log one profile run into ``experiment`` (created when missing) and return its run id.
    ``phase_stats`` values need the PHASE_FIELDS attributes; ``chart(path)`` draws the PNG."""
    store = MlflowStore(uri)
    experiment_id = store.experiment_id_for(experiment, folder=experiment.removeprefix(EXPERIMENT_PREFIX) or experiment)
    start_ms = int(timeline.started_at * 1000)
    end_ms = int((timeline.started_at + (timeline.times_s[-1] if timeline.times_s else 0.0)) * 1000)
    tags = {"benchtrack.type": PROFILE_TYPE, "benchtrack.profile.target": timeline.target}
    with _translate_errors(f"cannot log the memory profile {timeline.target!r}"):
        run = store.client.create_run(experiment_id, start_time=start_ms, tags=_clip_tags(tags),
                                      run_name=run_name or timeline.target)
        run_id = str(run.info.run_id)
        store.write_points(run_id, profile_points(timeline, phase_stats))
        store.log_params(run_id, params)
        files: dict[str, str | Path] = {Path(TIMELINE_ARTIFACT).name: json.dumps(timeline_to_dict(timeline), allow_nan=False)}
        with tempfile.TemporaryDirectory(prefix="benchtrack-profile-") as tmp:
            if chart is not None:
                files[Path(CHART_ARTIFACT).name] = chart(Path(tmp) / Path(CHART_ARTIFACT).name)
            log_artifact_files(run.info.artifact_uri, ARTIFACT_FOLDER, files)
        store.client.set_terminated(run_id, "FINISHED", end_time=end_ms)
    return run_id


