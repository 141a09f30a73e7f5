"""pyperf JSON (format "1.0", pyperf >= 1.0) -> one RunResult.

Shape (pyperf ``_bench.py``)::

    {"version": "1.0", "metadata": {...},
     "benchmarks": [{"metadata": {...}, "runs": [{"metadata": {...}, "warmups": [[loops, value]], "values": [...]}]}]}

Metadata is stored once at the highest level it is common to: a run's effective metadata is the
file's, overlaid by its benchmark's, overlaid by its own. So "name", "loops" and "inner_loops" may
sit at any of the three levels (a one-benchmark file keeps its name at the top).

Why values are stored unchanged: the worker records ``raw / (loops * inner_loops)``, seconds per
operation, the unit of benchtrack's time metrics; ``loops * inner_loops`` becomes the loop count.
Every run with values is a separate worker process; runs without values calibrated loops or
warm-ups and measured nothing, so they are skipped and do not count as a process.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from benchtrack.errors import ResultFormatError
from benchtrack.probes.environment import BENCHTRACK_TAG_PREFIX, GIT_COMMIT_TAG, UNKNOWN
from benchtrack.results import WALL, BenchmarkResult, RunResult, Sample

FORMAT = "pyperf"
SUITE = "pyperf"
LEVEL = "imported"
KIND = "time"
SUPPORTED_VERSION = "1.0"
TIME_UNIT = "second"
_IMPLEMENTATIONS = {"cpython": "CPython", "pypy": "PyPy"}


def looks_like(data: object) -> bool:
    """pyperf files have a version and a benchmarks list, and none of pytest-benchmark's keys."""
    return (
        isinstance(data, Mapping)
        and isinstance(data.get("benchmarks"), list)
        and "version" in data
        and "machine_info" not in data
        and "commit_info" not in data
    )


def to_run_result(data: Mapping[str, Any]) -> RunResult:
    """Convert one parsed pyperf document; validation of values is the caller's."""
    version = data.get("version")
    if version != SUPPORTED_VERSION:
        raise ResultFormatError(
            f"pyperf file format version {version!r} is not supported (only {SUPPORTED_VERSION!r}); "
            "rewrite it with a current pyperf: python -m pyperf convert OLD.json -o NEW.json",
        )
    top = _mapping(data.get("metadata"), "the file's metadata")
    benchmarks = _list(data.get("benchmarks"), "the file's benchmarks")
    runs_per_benchmark = [_resolved_runs(entry, top, position) for position, entry in enumerate(benchmarks)]
    all_metas = [meta for runs in runs_per_benchmark for meta, _ in runs]
    started, finished = _time_span(all_metas)
    return RunResult(
        suite=SUITE,
        level=LEVEL,
        started_at=started,
        finished_at=finished,
        metadata=_metadata(top, all_metas),
        benchmarks=tuple(_benchmark(runs, position) for position, runs in enumerate(runs_per_benchmark)),
    )


# A run as (its effective metadata, its document).
_Run = tuple[Mapping[str, Any], Mapping[str, Any]]


def _resolved_runs(entry: object, top: Mapping[str, Any], position: int) -> list[_Run]:
    where = f"pyperf benchmark #{position}"
    bench = _mapping(entry, where)
    common = {**top, **_mapping(bench.get("metadata"), f"{where} metadata")}
    runs = bench.get("runs")
    if not isinstance(runs, list) or not runs:
        raise ResultFormatError(f"{where} has no runs")
    resolved: list[_Run] = []
    for run in runs:
        document = _mapping(run, f"{where} run")
        resolved.append(({**common, **_mapping(document.get("metadata"), f"{where} run metadata")}, document))
    return resolved


def _benchmark(runs: list[_Run], position: int) -> BenchmarkResult:
    name = runs[0][0].get("name")  # pyperf's own Benchmark.get_name() reads the first run
    if not isinstance(name, str) or not name:
        raise ResultFormatError(f"pyperf benchmark #{position} has no name in its metadata")
    unit = runs[0][0].get("unit", TIME_UNIT)
    if unit != TIME_UNIT:
        raise ResultFormatError(f"benchmark {name!r} measures {unit!r}; only time benchmarks (unit 'second') can be imported")
    measured = [(meta, run) for meta, run in runs if run.get("values")]
    samples = tuple(
        Sample(process=process, index=index, loops=_loops(name, meta), values={WALL: _number(name, value)})
        for process, (meta, run) in enumerate(measured)
        for index, value in enumerate(_list(run["values"], f"benchmark {name!r} values"))
    )
    return BenchmarkResult(
        name=name,
        benchmark=name,
        file="",  # pyperf does not record which script defined the benchmark
        kind=KIND,
        samples=samples,
        error=None if samples else "no measured values, only calibration runs",
        warmups=len(measured[0][1].get("warmups") or ()) if measured else 0,
        details={"load": _loads(meta for meta, _ in measured)},
    )


def _loads(metas: Iterable[Mapping[str, Any]]) -> list[dict[str, float]]:
    """pyperf's per-run 1-minute load average, as benchtrack's per-process load details: what
    lets a comparison see that a pyperf run was measured on a busy machine."""
    loads = []
    for meta in metas:
        value = meta.get("load_avg_1min")
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            loads.append({"load1": float(value)})
    return loads


def _loops(name: str, meta: Mapping[str, Any]) -> int:
    loops, inner = meta.get("loops", 1), meta.get("inner_loops", 1)
    for value in (loops, inner):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ResultFormatError(f"benchmark {name!r}: loops must be positive integers, not {value!r}")
    return int(loops) * int(inner)


def _number(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ResultFormatError(f"benchmark {name!r}: a run holds {value!r}, not a number")
    return float(value)


def _time_span(metas: list[Mapping[str, Any]]) -> tuple[float, float]:
    """Earliest run start and latest run end over all runs, calibration included.

    pyperf stamps "date" when a worker finishes measuring (local time, no zone offset, read in
    this machine's zone) and "duration" is how long the run took, so a run spans date - duration
    to date. A file whose metadata was stripped gives (0, 0) rather than a refusal.
    """
    spans = [span for span in map(_run_span, metas) if span is not None]
    if not spans:
        return 0.0, 0.0
    return min(start for start, _ in spans), max(end for _, end in spans)


def _run_span(meta: Mapping[str, Any]) -> tuple[float, float] | None:
    date, duration = meta.get("date"), meta.get("duration", 0.0)
    if not isinstance(date, str) or isinstance(duration, bool) or not isinstance(duration, int | float):
        return None
    try:
        end = datetime.fromisoformat(date).timestamp()
    except ValueError:
        return None
    return end - float(duration), end


def _metadata(top: Mapping[str, Any], run_metas: list[Mapping[str, Any]]) -> dict[str, str]:
    def fact(key: str) -> str | None:
        # The top level holds what all benchmarks share; else the first run that has it.
        for meta in (top, *run_metas):
            value = meta.get(key)
            if value is not None and str(value).strip():
                return str(value).strip()
        return None

    p = BENCHTRACK_TAG_PREFIX
    commit = fact("commit_id") or fact("commit")  # pyperformance writes commit_id/commit_branch
    python_version = fact("python_version")
    tags = {GIT_COMMIT_TAG: commit} if commit else {}
    tags |= {
        f"{p}git.branch": fact("commit_branch") or UNKNOWN,
        f"{p}git.dirty": UNKNOWN,
        # pyperf writes "3.11.7 (64-bit)"; keep the version alone, as benchtrack runs record it.
        f"{p}python.version": python_version.split()[0] if python_version else UNKNOWN,
        f"{p}python.implementation": _implementation(fact("python_implementation")),
        f"{p}cpu.model": fact("cpu_model_name") or UNKNOWN,
        f"{p}imported_from": FORMAT,
    }
    return tags


def _implementation(name: str | None) -> str:
    # pyperf records sys.implementation.name ("cpython"); benchtrack runs record platform's "CPython".
    if name is None:
        return UNKNOWN
    return _IMPLEMENTATIONS.get(name.lower(), name)


def _mapping(value: object, where: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ResultFormatError(f"{where} is not a JSON object")
    return value


def _list(value: object, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise ResultFormatError(f"{where} is not a JSON list")
    return value
