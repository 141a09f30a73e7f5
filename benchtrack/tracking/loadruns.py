"""Load runs (`benchtrack load`) in MLflow: one run per scenario invocation in ``benchtrack/load``.

A run holds:
- tags ``benchtrack.type=load``, ``benchtrack.load.scenario``, ``benchtrack.load.tag`` (pre-fix,
  post-fix, baseline), ``benchtrack.load.base_url``, ``benchtrack.load.model`` (open, closed),
  ``benchtrack.load.passed``, ``benchtrack.machine.fingerprint`` and, inside a git work tree,
  ``mlflow.source.git.commit``;
- per time window of the generator (step = window index, timestamp = the window's end):
  ``throughput_rps``, ``p50_ms``, ``p95_ms``, ``p99_ms``, ``errors``, ``timeouts``;
- per monitor sample (step = sample index, timestamp = when it was read): ``memory_mb`` and
  ``cpu_percent`` (the monitor samples at its own interval, not per window);
- summary metrics at step 0 (``summary/...``): requests, success_rate, throughput, latency
  percentiles, memory start/peak/end, leak slope, CPU mean/max, alerts, criteria met;
- artifacts under ``benchtrack/``: ``windows.csv`` (one row per window: the per-request records
  are not kept), ``memory.csv`` (time, MB, CPU %), ``load.json`` (the ``benchtrack.load/1``
  document) and the PNG charts handed in.
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from benchtrack.load.monitoring import CpuSample
from benchtrack.load.result import LoadResult
from benchtrack.results import Timeline
from benchtrack.tracking.store import MlflowStore, Point, _clip_tags, _translate_errors, log_artifact_files

LOAD_SUITE = "load"  # experiment benchtrack/load
ARTIFACT_FOLDER = "benchtrack"
WINDOW_METRICS = ("throughput_rps", "p50_ms", "p95_ms", "p99_ms", "errors", "timeouts")
MIB = 1024.0 * 1024.0


def window_points(result: LoadResult) -> list[Point]:
    points: list[Point] = []
    for step, window in enumerate(result.windows):
        stamp = round((result.started_at + window.end_s) * 1000)
        for key in WINDOW_METRICS:
            points.append((key, float(getattr(window, key)), stamp, step))
    return points


def monitor_points(timeline: Timeline | None, cpu: Sequence[CpuSample]) -> list[Point]:
    if timeline is None:
        return []
    points: list[Point] = [("memory_mb", memory / MIB, round((timeline.started_at + t) * 1000), step)
                           for step, (t, memory) in enumerate(zip(timeline.times_s, timeline.memory_bytes, strict=True))]
    points += [("cpu_percent", sample.percent, round((timeline.started_at + sample.time_s) * 1000), step)
               for step, sample in enumerate(cpu)]
    return points


def summary_metrics(document: Mapping[str, Any]) -> dict[str, float]:
    """Flat numbers of a ``benchtrack.load/1`` document, prefixed ``summary/``."""
    latency = document["latency_ms"]
    values: dict[str, Any] = {
        "requests": document["requests"], "success_rate": document["success_rate"], "timeouts": document["timeouts"],
        "throughput_rps": document["throughput_rps"], "criteria_met": document["criteria"]["met"],
        "alerts": len(document.get("alerts", ())),
        **{f"latency_{key}_ms": value for key, value in latency.items()},
    }
    memory = document.get("memory")
    if memory:
        values.update(memory_start_mb=memory["start_mb"], memory_peak_mb=memory["peak_mb"],
                      memory_end_mb=memory["end_mb"])
        if memory["leak"]["judged"]:
            values["slope_mb_per_min"] = memory["leak"]["slope_mb_per_min"]
    cpu = document.get("cpu")
    if cpu:
        values.update(cpu_mean_percent=cpu["mean_percent"], cpu_max_percent=cpu["max_percent"])
    return {f"summary/{key}": float(value) for key, value in values.items()
            if isinstance(value, int | float) and math.isfinite(value)}


def windows_csv(result: LoadResult) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["start_s", "end_s", "requests", "successes", "errors", "timeouts", "throughput_rps", "p50_ms",
                     "p95_ms", "p99_ms"])
    for w in result.windows:
        writer.writerow([w.start_s, w.end_s, w.requests, w.successes, w.errors, w.timeouts, w.throughput_rps, w.p50_ms,
                         w.p95_ms, w.p99_ms])
    return buffer.getvalue()


def memory_csv(timeline: Timeline, cpu: Sequence[CpuSample]) -> str:
    """One row per memory sample, with the CPU % read at that sample (empty when none)."""
    by_time = {sample.time_s: sample.percent for sample in cpu}
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["time_s", "memory_mb", "cpu_percent"])
    for t, memory in zip(timeline.times_s, timeline.memory_bytes, strict=True):
        percent = by_time.get(t)
        writer.writerow([t, memory / MIB, "" if percent is None else percent])
    return buffer.getvalue()


def log_load_run(store: MlflowStore, result: LoadResult, document: Mapping[str, Any], *, fingerprint: str,
                 commit: str | None = None, timeline: Timeline | None = None, cpu: Sequence[CpuSample] = (),
                 charts: Sequence[Path] = (), params: Mapping[str, str] | None = None) -> str:
    """Log one load run as one finished run; returns its id (TrackingError on any store failure)."""
    experiment_id = store.experiment_id(LOAD_SUITE)
    tags = {
        "benchtrack.type": "load",
        "benchtrack.load.scenario": result.scenario,
        "benchtrack.load.tag": result.tag or "",
        "benchtrack.load.base_url": result.base_url,
        "benchtrack.load.model": result.model,
        "benchtrack.load.passed": str(bool(document["criteria"]["passed"])).lower(),
        "benchtrack.machine.fingerprint": fingerprint,
        **({"mlflow.source.git.commit": commit} if commit else {}),
    }
    client = store.client
    start_ms = round(result.started_at * 1000)
    end_ms = max(start_ms, round((result.started_at + (result.windows[-1].end_s if result.windows else 0.0)) * 1000))
    name = f"load {result.scenario}" + (f" ({result.tag})" if result.tag else "")
    with _translate_errors("cannot log the load run"):
        run = client.create_run(experiment_id, start_time=start_ms, tags=_clip_tags(tags), run_name=name[:250])
        run_id = str(run.info.run_id)
        summary: list[Point] = [(key, value, end_ms, 0) for key, value in summary_metrics(document).items()]
        store.write_points(run_id, window_points(result) + monitor_points(timeline, cpu) + summary)
        if params:
            store.log_params(run_id, params)
        files: dict[str, str | Path] = {
            "windows.csv": windows_csv(result),
            "load.json": json.dumps({**document, "run_id": run_id}, indent=1, allow_nan=False),
        }
        if timeline is not None:
            files["memory.csv"] = memory_csv(timeline, cpu)
        files.update({chart.name: chart for chart in charts if chart.is_file()})
        log_artifact_files(run.info.artifact_uri, ARTIFACT_FOLDER, files)
        client.set_terminated(run_id, "FINISHED", end_time=end_ms)
    return run_id


def load_document_of_run(store: MlflowStore, run_id: str) -> dict[str, Any]:
    """The ``benchtrack.load/1`` document a load run keeps (for `benchtrack compare RUN RUN`)."""
    from mlflow.artifacts import download_artifacts

    with _translate_errors(f"cannot read the load document of run {run_id}"):
        path = download_artifacts(run_id=run_id, artifact_path=f"{ARTIFACT_FOLDER}/load.json",
                                  tracking_uri=store.uri)
        return dict(json.loads(Path(path).read_text(encoding="utf-8")))


def log_scaling_run(store: MlflowStore, document: Mapping[str, Any], *, started_at: float, fingerprint: str,
                    commit: str | None = None, chart: Path | None = None) -> str:
    """Log a scaling run (``benchtrack.scaling/1``): memory and CPU per load level as metric steps
    (step = the level's index, the level itself as the metric ``load``), the best fits as tags."""
    experiment_id = store.experiment_id(LOAD_SUITE)
    memory, cpu = document["memory"], document.get("cpu")
    tags = {
        "benchtrack.type": "scaling",
        "benchtrack.load.scenario": str(document["scenario"]),
        "benchtrack.load.model": str(document["model"]),
        "benchtrack.scaling.memory": (memory.get("best") or {}).get("formula", memory.get("note") or ""),
        "benchtrack.scaling.cpu": ((cpu or {}).get("best") or {}).get("formula", "") if cpu else "",
        "benchtrack.machine.fingerprint": fingerprint,
        **({"mlflow.source.git.commit": commit} if commit else {}),
    }
    client = store.client
    start_ms = round(started_at * 1000)
    end_ms = round(time.time() * 1000)
    points: list[Point] = []
    for step, level in enumerate(document["levels"]):
        points.append(("load", float(level["level"]), end_ms, step))
        points.append(("memory_mb", float(level["memory_mb"]), end_ms, step))
        if level.get("cpu_percent") is not None:
            points.append(("cpu_percent", float(level["cpu_percent"]), end_ms, step))
    with _translate_errors("cannot log the scaling run"):
        run = client.create_run(experiment_id, start_time=start_ms, tags=_clip_tags(tags),
                                run_name=f"scaling {document['scenario']}"[:250])
        run_id = str(run.info.run_id)
        store.write_points(run_id, points)
        files: dict[str, str | Path] = {"scaling.json": json.dumps(document, indent=1, allow_nan=False)}
        if chart is not None and chart.is_file():
            files[chart.name] = chart
        log_artifact_files(run.info.artifact_uri, ARTIFACT_FOLDER, files)
        client.set_terminated(run_id, "FINISHED", end_time=end_ms)
    return run_id
