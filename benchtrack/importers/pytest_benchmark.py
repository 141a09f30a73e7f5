"""pytest-benchmark JSON -> one RunResult.

Reads what ``pytest --benchmark-json=FILE`` writes (raw timings always included) and what
``--benchmark-save``/``--benchmark-autosave`` store (raw timings only with ``--benchmark-save-data``).

Why stats.data is stored unchanged: pytest-benchmark times one round of ``iterations`` calls and
records ``duration / iterations`` (``stats.Metadata.update``, checked in 5.2), so every
value already is seconds per call, the unit of benchtrack's time metrics. ``iterations`` becomes
the sample's loop count. Every round runs in the pytest process, hence process 0 throughout.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from benchtrack.errors import ResultFormatError
from benchtrack.probes.environment import BENCHTRACK_TAG_PREFIX, GIT_COMMIT_TAG, UNKNOWN
from benchtrack.results import WALL, BenchmarkResult, RunResult, Sample

FORMAT = "pytest-benchmark"
SUITE = "pytest-benchmark"
LEVEL = "imported"
KIND = "time"

SAVE_DATA_HINT = (
    "re-run pytest with --benchmark-save-data (or write the file with --benchmark-json=FILE, "
    "which always keeps them)"
)
# get_commit_info() writes these instead of a commit id outside a repository or when git fails.
_NO_COMMIT = frozenset({"", "unversioned", "unknown"})
_NO_BRANCH = frozenset({"", "(unknown)", "(detached head)"})


def looks_like(data: object) -> bool:
    """pytest-benchmark always writes machine_info and commit_info next to its benchmarks list."""
    return (
        isinstance(data, Mapping)
        and isinstance(data.get("benchmarks"), list)
        and ("machine_info" in data or "commit_info" in data)
    )


def to_run_result(data: Mapping[str, Any]) -> RunResult:
    """Convert one parsed pytest-benchmark document; validation of values is the caller's."""
    benchmarks = data.get("benchmarks")
    if not isinstance(benchmarks, list):
        raise ResultFormatError("pytest-benchmark file has no 'benchmarks' list")
    when = _timestamp(data.get("datetime"))
    return RunResult(
        suite=SUITE,
        level=LEVEL,
        started_at=when,  # the file records one moment only: when the session wrote it
        finished_at=when,
        metadata=_metadata(data),
        benchmarks=tuple(_benchmark(entry, position) for position, entry in enumerate(benchmarks)),
    )


def _benchmark(entry: object, position: int) -> BenchmarkResult:
    if not isinstance(entry, Mapping) or not isinstance(entry.get("fullname"), str):
        raise ResultFormatError(f"pytest-benchmark benchmark #{position} has no 'fullname'")
    fullname: str = entry["fullname"]
    stats = entry.get("stats")
    if not isinstance(stats, Mapping):
        raise ResultFormatError(f"benchmark {fullname!r} has no 'stats'")
    data = stats.get("data")
    if data is None:
        raise ResultFormatError(f"benchmark {fullname!r} has no raw timings (stats.data): {SAVE_DATA_HINT}")
    if not isinstance(data, list):
        raise ResultFormatError(f"benchmark {fullname!r}: stats.data is not a list")
    loops = _iterations(fullname, stats.get("iterations", 1))
    params = entry.get("params") or {}
    group = entry.get("group")
    return BenchmarkResult(
        name=fullname,
        benchmark=_without_param_id(fullname, entry.get("param")),
        file=fullname.partition("::")[0],
        kind=KIND,
        params={str(key): str(value) for key, value in params.items()} if isinstance(params, Mapping) else {},
        tags=(str(group),) if group else (),
        samples=tuple(
            Sample(process=0, index=index, loops=loops, values={WALL: _number(fullname, value)})
            for index, value in enumerate(data)
        ),
        error=None if data else "no rounds recorded",
    )


def _without_param_id(fullname: str, param: object) -> str:
    # "test_x.py::test_sum[10]" -> "test_x.py::test_sum": the benchmark all parameter sets share.
    suffix = f"[{param}]"
    if param is not None and fullname.endswith(suffix):
        return fullname[: -len(suffix)]
    return fullname


def _iterations(fullname: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ResultFormatError(f"benchmark {fullname!r}: stats.iterations must be a positive integer, not {value!r}")
    return value


def _number(fullname: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ResultFormatError(f"benchmark {fullname!r}: stats.data holds {value!r}, not a number")
    return float(value)


def _timestamp(value: object) -> float:
    if not isinstance(value, str):
        raise ResultFormatError(f"pytest-benchmark file has no 'datetime' (found {value!r})")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ResultFormatError(f"pytest-benchmark 'datetime' {value!r} is not an ISO date") from None
    # Older pytest-benchmark releases wrote utcnow() without an offset: naive means UTC here.
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _metadata(data: Mapping[str, Any]) -> dict[str, str]:
    commit_info = _mapping(data.get("commit_info"))
    machine_info = _mapping(data.get("machine_info"))
    p = BENCHTRACK_TAG_PREFIX
    commit = str(commit_info.get("id") or "")
    known = commit not in _NO_COMMIT
    branch = str(commit_info.get("branch") or "")
    tags = {GIT_COMMIT_TAG: commit} if known else {}
    tags |= {
        f"{p}git.branch": branch if known and branch not in _NO_BRANCH else UNKNOWN,
        f"{p}git.dirty": str(bool(commit_info.get("dirty"))).lower() if known else UNKNOWN,
        f"{p}python.version": str(machine_info.get("python_version") or UNKNOWN),
        f"{p}python.implementation": str(machine_info.get("python_implementation") or UNKNOWN),
        f"{p}cpu.model": _cpu_model(machine_info),
        f"{p}imported_from": f"{FORMAT} {data.get('version', UNKNOWN)}",
    }
    return tags


def _cpu_model(machine_info: Mapping[str, Any]) -> str:
    # py-cpuinfo names it brand_raw since 7.0 and brand before; processor is platform's fallback.
    cpu = _mapping(machine_info.get("cpu"))
    for value in (cpu.get("brand_raw"), cpu.get("brand"), machine_info.get("processor")):
        if isinstance(value, str) and value.strip():
            return value.strip()
    return UNKNOWN


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}

