"""Frozen result records and their versioned JSON form.

History of ``benchtrack.result``:
  1 - first version: per-sample metric values with their worker-process index.
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
GC_COLLECTED = "gc_collected"
GC_UNCOLLECTABLE = "gc_uncollectable"


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

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def process_count(self) -> int:
        return len({sample.process for sample in self.samples})

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
        "error": result.error,
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
    )


def _finite(name: object, value: object) -> float:
    number = float(value)  # type: ignore[arg-type]
    if not math.isfinite(number):
        raise ValueError(f"metric {name} holds a non-finite value ({value})")
    return number


def dumps_results(results: Iterable[RunResult]) -> str:
    """Serialise; NaN is refused so a file we write is always one we can read back."""
    return json.dumps([run_result_to_dict(r) for r in results], indent=2, allow_nan=False)


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
