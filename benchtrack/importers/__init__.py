"""Other tools' result files -> benchtrack RunResults, so `compare` and `import` treat them alike.

One module per foreign format (pytest_benchmark, pyperf), each a pure function from the parsed
JSON document to a RunResult; this module reads the file, tells the formats apart and checks
what every imported run must satisfy, so the rules are the same for every format.
"""

from __future__ import annotations

import gzip
import json
import math
import zlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from benchtrack.errors import ResultFormatError
from benchtrack.importers import pyperf, pytest_benchmark
from benchtrack.results import RESULT_SCHEMA, RunResult, run_result_from_dict

BENCHTRACK = "benchtrack"
PYTEST_BENCHMARK = pytest_benchmark.FORMAT
PYPERF = pyperf.FORMAT
FORMATS = (BENCHTRACK, PYTEST_BENCHMARK, PYPERF)

_GZIP_MAGIC = b"\x1f\x8b"
_RESULT_SCHEMA_FAMILY = RESULT_SCHEMA.partition("/")[0] + "/"  # any version: a wrong one gets a clear error
_IMPORTERS: dict[str, Callable[[Mapping[str, Any]], RunResult]] = {
    PYTEST_BENCHMARK: pytest_benchmark.to_run_result,
    PYPERF: pyperf.to_run_result,
}


def detect_format(data: object) -> str:
    """Name the format of a parsed JSON document: "benchtrack", "pytest-benchmark" or "pyperf"."""
    if _is_benchtrack_document(data) or (
        isinstance(data, list) and data and all(map(_is_benchtrack_document, data))
    ):
        return BENCHTRACK
    if pytest_benchmark.looks_like(data):
        return PYTEST_BENCHMARK
    if pyperf.looks_like(data):
        return PYPERF
    raise ResultFormatError(f"not a benchtrack, pytest-benchmark or pyperf result file (found {_describe(data)})")


def load_any(path: Path) -> list[RunResult]:
    """Read a benchtrack, pytest-benchmark or pyperf result file (pyperf's may be gzip-compressed).

    A benchtrack file gives every document in it (it may hold a list), another tool's file gives
    exactly one run. Every problem is a ResultFormatError with one line naming the file.
    """
    data, constants = _read_json(path)
    try:
        kind = detect_format(data)
        if constants:
            _raise_for_constants(data, kind, constants)
        if kind == BENCHTRACK:
            return _benchtrack_runs(data)
        run = _import(data, kind)
        validate_imported(run)
    except ResultFormatError as exc:
        raise ResultFormatError(f"{path}: {exc}") from None
    return [run]


def validate_imported(run: RunResult) -> None:
    """What an imported run must hold before it may be compared or stored."""
    names: set[str] = set()
    for benchmark in run.benchmarks:
        if benchmark.name in names:
            raise ResultFormatError(f"benchmark name {benchmark.name!r} appears more than once")
        names.add(benchmark.name)
        for sample in benchmark.samples:
            for metric, value in sample.values.items():
                if not math.isfinite(value) or value < 0:
                    raise ResultFormatError(
                        f"benchmark {benchmark.name!r} has an invalid {metric} value {value} "
                        f"(process {sample.process}, sample {sample.index})",
                    )
    if not any(benchmark.samples for benchmark in run.benchmarks):
        raise ResultFormatError("no benchmark in it has any measured value")


def _benchtrack_runs(data: object) -> list[RunResult]:
    # The same rules as load_results_file (one document or a list), whose parsing this reuses.
    documents = data if isinstance(data, list) else [data]
    return [run_result_from_dict(document) for document in documents if isinstance(document, Mapping)]


def _import(data: object, kind: str) -> RunResult:
    if not isinstance(data, Mapping):  # detect_format only names a foreign format for an object
        raise ResultFormatError(f"a {kind} file must hold a JSON object")
    return _IMPORTERS[kind](data)


def _is_benchtrack_document(data: object) -> bool:
    return isinstance(data, Mapping) and str(data.get("schema", "")).startswith(_RESULT_SCHEMA_FAMILY)


def _read_json(path: Path) -> tuple[object, list[str]]:
    """Parse the file; NaN/Infinity come back as floats and are listed, so the caller can name
    the benchmark holding one before refusing the file (JSON itself has no such numbers)."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ResultFormatError(f"cannot read {path}: {exc.strerror}") from None
    if raw.startswith(_GZIP_MAGIC):
        # By content, not by the .gz suffix: pyperf writes gzip for any name ending in .gz.
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise ResultFormatError(f"{path} is not a readable gzip file: {exc}") from None
    constants: list[str] = []

    def keep_constant(name: str) -> float:
        constants.append(name)
        return float(name)

    try:
        return json.loads(raw, parse_constant=keep_constant), constants
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError both are ValueErrors
        raise ResultFormatError(f"{path} is not valid JSON: {exc}") from None
    except RecursionError:
        raise ResultFormatError(f"{path} is not a result file: its JSON nests too deeply") from None


def _raise_for_constants(data: object, kind: str, constants: list[str]) -> None:
    if kind in _IMPORTERS:
        # Converting first lets validate_imported name the benchmark when a timing is the culprit.
        validate_imported(_import(data, kind))
    raise ResultFormatError(f"non-finite number {constants[0]} is not allowed in a result file")


def _describe(data: object) -> str:
    if isinstance(data, Mapping):
        keys = sorted(map(str, data))
        listed = ", ".join(keys[:5]) + (", ..." if len(keys) > 5 else "")
        return f"a JSON object with keys {listed}" if keys else "an empty JSON object"
    if isinstance(data, list):
        return f"a JSON list of {len(data)} item(s)"
    return f"a JSON {type(data).__name__}"


__all__ = ["BENCHTRACK", "FORMATS", "PYPERF", "PYTEST_BENCHMARK", "detect_format", "load_any", "validate_imported"]
