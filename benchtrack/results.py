"""Frozen result records and their versioned JSON form.

History of ``benchtrack.result``:
  1 - first version: per-sample metric values with their worker-process index; later in version 1
      (optional keys, older files stay valid): targets, and "details" (GC pauses and
      gc.get_stats() per process, leak attribution); per-sample "ctx_involuntary" and per-process
      machine load ("details.load": the other programs' CPU use while the samples were taken);
      per-benchmark "started_at"/"finished_at" (epoch seconds: the first sample's start, the last
      sample's end), absent from older files and from imported ones.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchtrack.errors import ResultFormatError

RESULT_SCHEMA = "benchtrack.result/1"

# Metric names. Time and GC values are per operation (divided by the sample's loop count) so
# runs calibrated to different loop counts stay comparable; memory values are absolute bytes.
WALL = "wall_s"
CPU = "cpu_s"
RSS_BEFORE = "rss_before_bytes"
RSS_AFTER = "rss_after_bytes"
RSS_PEAK = "rss_peak_bytes"
USS_AFTER = "uss_after_bytes"
TRACEMALLOC_PEAK = "tracemalloc_peak_bytes"
GC_PAUSE = "gc_pause_s"
GC_PAUSE_MAX = "gc_pause_max_s"  # longest single pause inside the sample (not per operation)
LEAK_RSS = "rss_bytes"  # leak benchmarks: RSS after each batch, after a full collection
LEAK_OPERATIONS = "operations"  # leak benchmarks: cumulative operations at the end of the batch
LEAK_ELAPSED = "elapsed_s"
CTX_INVOLUNTARY = "ctx_involuntary"  # preemptions of the worker during the sample (a count, not per operation)
GC_COLLECTED = "gc_collected"
GC_UNCOLLECTABLE = "gc_uncollectable"
INSTRUCTIONS = "instructions"  # executed per operation, counted under callgrind (probes.instructions)


TRACK_PREFIX = "track."


def gc_generation_metric(generation: int) -> str:
    return f"gc_gen{generation}_collections"


@dataclass(frozen=True)
class Sample:
    """One measured sample: which worker process took it and what it measured."""

    process: int
    index: int
    loops: int
    values: Mapping[str, float]


@dataclass(frozen=True)
class BenchmarkResult:
    """Everything measured for one benchmark with one parameter set."""

    name: str
    benchmark: str
    file: str
    kind: str
    params: Mapping[str, str] = field(default_factory=dict)
    tags: tuple[str, ...] = ()
    samples: tuple[Sample, ...] = ()
    error: str | None = None
    warmups: int = 0
    probes: Mapping[str, str] = field(default_factory=dict)
    targets: Mapping[str, float] = field(default_factory=dict)
    details: Mapping[str, Any] = field(default_factory=dict)  # JSON-ready: gc pauses, attribution
    started_at: float | None = None  # epoch seconds the first sample began (None: not recorded)
    finished_at: float | None = None  # epoch seconds the last sample ended

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def process_count(self) -> int:
        """Worker processes that measured (the instruction-count process is not one of them)."""
        return len({sample.process for sample in self.timed_samples})

    @property
    def timed_samples(self) -> tuple[Sample, ...]:
        return tuple(s for s in self.samples if WALL in s.values)

    def metric_names(self) -> list[str]:
        names: dict[str, None] = {}
        for sample in self.samples:
            names.update(dict.fromkeys(sample.values))
        return list(names)

    def series(self, metric: str) -> list[float]:
        return [s.values[metric] for s in self.samples if metric in s.values]


@dataclass(frozen=True)
class RunResult:
    """One suite measured by one `benchtrack run` invocation."""

    suite: str
    level: str
    started_at: float
    finished_at: float
    metadata: Mapping[str, str]
    benchmarks: tuple[BenchmarkResult, ...]
    schema: str = RESULT_SCHEMA

    @property
    def failed(self) -> tuple[BenchmarkResult, ...]:
        return tuple(b for b in self.benchmarks if not b.ok)


def run_result_to_dict(result: RunResult) -> dict[str, Any]:
    return {
        "schema": result.schema,
        "suite": result.suite,
        "level": result.level,
        "started_at": result.started_at,
        "finished_at": result.finished_at,
        "metadata": dict(result.metadata),
        "benchmarks": [benchmark_result_to_dict(b) for b in result.benchmarks],
    }


def benchmark_result_to_dict(result: BenchmarkResult) -> dict[str, Any]:
    return {
        "name": result.name,
        "benchmark": result.benchmark,
        "file": result.file,
        "kind": result.kind,
        "params": dict(result.params),
        "tags": list(result.tags),
        "warmups": result.warmups,
        "probes": dict(result.probes),
        "targets": dict(result.targets),
        "details": dict(result.details),
        "error": result.error,
        **({"started_at": result.started_at} if result.started_at is not None else {}),
        **({"finished_at": result.finished_at} if result.finished_at is not None else {}),
        "samples": [
            {"process": s.process, "index": s.index, "loops": s.loops, "values": dict(s.values)}
            for s in result.samples
        ],
    }


def run_result_from_dict(data: Mapping[str, Any]) -> RunResult:
    schema = data.get("schema") if isinstance(data, Mapping) else None
    if schema != RESULT_SCHEMA:
        raise ResultFormatError(f"not a {RESULT_SCHEMA} document (schema={schema!r})")
    try:
        return RunResult(
            suite=str(data["suite"]),
            level=str(data["level"]),
            started_at=float(data["started_at"]),
            finished_at=float(data["finished_at"]),
            metadata={str(k): str(v) for k, v in data["metadata"].items()},
            benchmarks=tuple(_benchmark_from_dict(b) for b in data["benchmarks"]),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ResultFormatError(f"malformed {RESULT_SCHEMA} document: {exc!r}") from None


def _benchmark_from_dict(data: Mapping[str, Any]) -> BenchmarkResult:
    samples = tuple(
        Sample(
            process=int(s["process"]),
            index=int(s["index"]),
            loops=int(s["loops"]),
            values={str(k): _finite(k, v) for k, v in s["values"].items()},
        )
        for s in data["samples"]
    )
    return BenchmarkResult(
        name=str(data["name"]),
        benchmark=str(data["benchmark"]),
        file=str(data["file"]),
        kind=str(data["kind"]),
        params={str(k): str(v) for k, v in data["params"].items()},
        tags=tuple(str(t) for t in data["tags"]),
        samples=samples,
        error=None if data.get("error") is None else str(data["error"]),
        warmups=int(data.get("warmups", 0)),
        probes={str(k): str(v) for k, v in data.get("probes", {}).items()},
        targets={str(k): _finite(k, v) for k, v in data.get("targets", {}).items()},
        details=dict(data.get("details", {})),
        started_at=_optional_time(data.get("started_at")),
        finished_at=_optional_time(data.get("finished_at")),
    )


def _optional_time(value: object) -> float | None:
    return None if value is None else _finite("started_at/finished_at", value)


def _finite(name: object, value: object) -> float:
    number = float(value)  # type: ignore[arg-type]
    if not math.isfinite(number):
        raise ValueError(f"metric {name} holds a non-finite value ({value})")
    return number


def dumps_results(results: Iterable[RunResult]) -> str:
    """Serialise; NaN is refused so a file we write is always one we can read back."""
    try:
        return json.dumps([run_result_to_dict(r) for r in results], indent=2, allow_nan=False)
    except ValueError as exc:
        raise ResultFormatError(f"cannot write results: {exc}") from None


def load_results_file(path: Path) -> list[RunResult]:
    """Read a file written by `benchtrack run --output` (one result or a list of them)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ResultFormatError(f"cannot read {path}: {exc.strerror}") from None
    try:
        data = json.loads(text, parse_constant=_reject_constant)
    except ValueError as exc:
        raise ResultFormatError(f"{path} is not valid JSON: {exc}") from None
    documents = data if isinstance(data, list) else [data]
    try:
        return [run_result_from_dict(doc) for doc in documents]
    except ResultFormatError as exc:
        raise ResultFormatError(f"{path}: {exc}") from None


def _reject_constant(name: str) -> float:
    raise ValueError(f"non-finite number {name} is not allowed")


# Memory over time: what `benchtrack watch`, MemoryProfiler and leak benchmarks produce.
# History of ``benchtrack.timeline``:
#   1 - times (s since start), memory (bytes), optional operations, limit, phases, OOM events.
TIMELINE_SCHEMA = "benchtrack.timeline/1"


@dataclass(frozen=True)
class Phase:
    name: str
    start_s: float
    end_s: float


@dataclass(frozen=True)
class OomEvent:
    """An out-of-memory kill seen on a target: from a cgroup's oom_kill counter, a container's
    restart count rising, or an exit code of 137 (engines' OOM flags are unreliable)."""

    time_s: float
    kind: str  # "oom_kill" | "restart" | "exit_137"
    detail: str


@dataclass(frozen=True)
class Timeline:
    target: str
    started_at: float  # epoch seconds of time_s == 0
    times_s: tuple[float, ...]
    memory_bytes: tuple[float, ...]
    operations: tuple[float, ...] | None = None  # cumulative operation counts, when known
    limit_bytes: float | None = None
    phases: tuple[Phase, ...] = ()
    oom_events: tuple[OomEvent, ...] = ()


def timeline_to_dict(timeline: Timeline) -> dict[str, Any]:
    return {
        "schema": TIMELINE_SCHEMA,
        "target": timeline.target,
        "started_at": timeline.started_at,
        "times_s": list(timeline.times_s),
        "memory_bytes": list(timeline.memory_bytes),
        "operations": None if timeline.operations is None else list(timeline.operations),
        "limit_bytes": timeline.limit_bytes,
        "phases": [{"name": p.name, "start_s": p.start_s, "end_s": p.end_s} for p in timeline.phases],
        "oom_events": [{"time_s": e.time_s, "kind": e.kind, "detail": e.detail} for e in timeline.oom_events],
    }


def timeline_from_dict(data: Mapping[str, Any]) -> Timeline:
    if not isinstance(data, Mapping) or data.get("schema") != TIMELINE_SCHEMA:
        raise ResultFormatError(f"not a {TIMELINE_SCHEMA} document")
    try:
        operations = data.get("operations")
        return Timeline(
            target=str(data["target"]),
            started_at=float(data["started_at"]),
            times_s=tuple(_finite("times_s", v) for v in data["times_s"]),
            memory_bytes=tuple(_finite("memory_bytes", v) for v in data["memory_bytes"]),
            operations=None if operations is None else tuple(_finite("operations", v) for v in operations),
            limit_bytes=None if data.get("limit_bytes") is None else float(data["limit_bytes"]),
            phases=tuple(Phase(str(p["name"]), float(p["start_s"]), float(p["end_s"])) for p in data.get("phases", [])),
            oom_events=tuple(OomEvent(float(e["time_s"]), str(e["kind"]), str(e["detail"])) for e in data.get("oom_events", [])),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ResultFormatError(f"malformed {TIMELINE_SCHEMA} document: {exc!r}") from None
