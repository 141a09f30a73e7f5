"""Baseline snapshots: the current baselines of one (suite, branch, machine fingerprint) with their
raw samples, in one JSON file a CI job can compare against without a tracking server.

No mlflow import here (a job that only reads a snapshot must not pay for it);
`benchtrack.tracking.baselines.export_snapshot` writes snapshots from the store.

File: ``<folder>/baselines/<suite>__<branch>__<fingerprint>.json`` (see `snapshot_path`), keys in
sorted order, entries sorted by benchmark name, NaN refused, so the same baselines always give
the same bytes (apart from ``exported_at``).

History of ``benchtrack.baseline``:
  1 - first version: one entry per benchmark, each holding a ``benchtrack.result/1`` document
      with exactly one benchmark and its raw samples.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchtrack.errors import ResultFormatError, UsageError
from benchtrack.results import RunResult, run_result_from_dict, run_result_to_dict

SNAPSHOT_SCHEMA = "benchtrack.baseline/1"
SNAPSHOT_FOLDER = "baselines"
_MAX_PART = 60  # characters kept of each name part, so a file name stays far below 255 bytes
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


@dataclass(frozen=True)
class SnapshotEntry:
    benchmark: str
    run_id: str
    commit: str | None
    promoted_reason: str
    result: RunResult  # exactly one BenchmarkResult, with its raw samples


@dataclass(frozen=True)
class BaselineSnapshot:
    suite: str
    branch: str
    fingerprint: str
    exported_at: float
    entries: tuple[SnapshotEntry, ...]

    def entry(self, benchmark: str) -> SnapshotEntry | None:
        return next((e for e in self.entries if e.benchmark == benchmark), None)


def snapshot_path(folder: Path, suite: str, branch: str, fingerprint: str) -> Path:
    """Where the snapshot of (suite, branch, fingerprint) lives under folder.

    Characters other than letters, digits, '.', '_' and '-' become '_'. When that (or
    shortening) changed any part, 8 hex characters of a hash of the exact names are appended,
    so 'feature/x' and 'feature_x' get different files.
    """
    parts = (suite, branch, fingerprint)
    cleaned = [_clean_part(part) for part in parts]
    name = "__".join(cleaned)
    if cleaned != list(parts):
        digest = hashlib.sha256("\0".join(parts).encode("utf-8")).hexdigest()[:8]
        name = f"{name}__{digest}"
    return folder / SNAPSHOT_FOLDER / f"{name}.json"


def _clean_part(part: str) -> str:
    cleaned = _UNSAFE.sub("_", part)[:_MAX_PART]
    if cleaned.startswith("."):  # no hidden files, no '.' or '..'
        cleaned = "_" + cleaned[1:]
    return cleaned or "_"


def snapshot_to_dict(snapshot: BaselineSnapshot) -> dict[str, Any]:
    entries = sorted(snapshot.entries, key=lambda e: e.benchmark)
    for entry in entries:
        _check_entry(entry)
    return {
        "schema": SNAPSHOT_SCHEMA,
        "suite": snapshot.suite,
        "branch": snapshot.branch,
        "fingerprint": snapshot.fingerprint,
        "exported_at": snapshot.exported_at,
        "entries": [
            {
                "benchmark": e.benchmark,
                "run_id": e.run_id,
                "commit": e.commit,
                "promoted_reason": e.promoted_reason,
                "result": run_result_to_dict(e.result),
            }
            for e in entries
        ],
    }


def write_snapshot(snapshot: BaselineSnapshot, folder: Path) -> Path:
    """Write the snapshot to `snapshot_path(folder, ...)` atomically; returns that path."""
    try:
        text = json.dumps(snapshot_to_dict(snapshot), indent=2, sort_keys=True, allow_nan=False, ensure_ascii=False)
    except ValueError as exc:  # NaN or infinity somewhere in the samples or exported_at
        raise ResultFormatError(f"cannot write the baseline snapshot of {snapshot.suite!r}: {exc}") from None
    path = snapshot_path(folder, snapshot.suite, snapshot.branch, snapshot.fingerprint)
    partial = path.with_name(path.name + ".partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial.write_text(text + "\n", encoding="utf-8")
        partial.replace(path)  # readers never see a half-written snapshot
    except OSError as exc:
        raise ResultFormatError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path


def load_snapshot(path: Path) -> BaselineSnapshot:
    """Read a snapshot; any problem is one ResultFormatError line naming the file."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ResultFormatError(f"cannot read baseline snapshot {path}: {reason}") from None
    try:
        data = json.loads(text, parse_constant=_reject_constant)
    except ValueError as exc:
        raise ResultFormatError(f"{path} is not valid JSON: {_one_line(exc)}") from None
    try:
        return snapshot_from_dict(data)
    except ResultFormatError as exc:
        raise ResultFormatError(f"{path}: {exc}") from None


def load_snapshots(paths: Sequence[Path]) -> list[BaselineSnapshot]:
    """The snapshots a run compares against, at most one per suite: with two, which one the run
    used would depend on the order of the options."""
    snapshots = [load_snapshot(path) for path in paths]
    first_of: dict[str, Path] = {}
    for path, snapshot in zip(paths, snapshots, strict=True):
        if snapshot.suite in first_of:
            raise UsageError(f"{first_of[snapshot.suite]} and {path} are both baseline snapshots of suite "
                             f"{snapshot.suite!r}: give one --baseline per suite")
        first_of[snapshot.suite] = path
    return snapshots


def snapshot_mismatches(snapshot: BaselineSnapshot, branch: str, fingerprint: str) -> list[str]:
    """Why this snapshot is not the baseline of this branch on this machine (empty: it is)."""
    reasons = []
    if snapshot.fingerprint != fingerprint:
        reasons.append(f"it was measured on another machine (fingerprint {snapshot.fingerprint}, this one is "
                       f"{fingerprint}): machines differ by more than most regressions")
    if snapshot.branch != branch:
        reasons.append(f"it holds the baselines of branch {snapshot.branch!r}, not of the baseline branch {branch!r}")
    return reasons


def snapshot_from_dict(data: object) -> BaselineSnapshot:
    schema = data.get("schema") if isinstance(data, Mapping) else None
    if not isinstance(data, Mapping) or schema != SNAPSHOT_SCHEMA:
        raise ResultFormatError(f"not a {SNAPSHOT_SCHEMA} document (schema={schema!r})")
    try:
        exported_at = float(data["exported_at"])
        if not math.isfinite(exported_at):
            raise ValueError(f"exported_at is not finite ({exported_at})")
        entries = tuple(_entry_from_dict(e) for e in data["entries"])
        snapshot = BaselineSnapshot(
            suite=_text(data, "suite"),
            branch=_text(data, "branch"),
            fingerprint=_text(data, "fingerprint"),
            exported_at=exported_at,
            entries=entries,
        )
    except ResultFormatError:
        raise
    except KeyError as exc:
        raise ResultFormatError(f"malformed {SNAPSHOT_SCHEMA} document: missing key {exc}") from None
    except (TypeError, ValueError, AttributeError) as exc:
        raise ResultFormatError(f"malformed {SNAPSHOT_SCHEMA} document: {_one_line(exc)}") from None
    names = [e.benchmark for e in entries]
    if len(set(names)) != len(names):
        raise ResultFormatError(f"malformed {SNAPSHOT_SCHEMA} document: a benchmark appears twice")
    return snapshot


def _entry_from_dict(data: Mapping[str, Any]) -> SnapshotEntry:
    commit = data["commit"]
    if commit is not None and not isinstance(commit, str):
        raise TypeError(f"commit must be a string or null, got {commit!r}")
    entry = SnapshotEntry(
        benchmark=_text(data, "benchmark"),
        run_id=_text(data, "run_id"),
        commit=commit,
        promoted_reason=_text(data, "promoted_reason"),
        result=run_result_from_dict(data["result"]),
    )
    _check_entry(entry)
    return entry


def _check_entry(entry: SnapshotEntry) -> None:
    names = [b.name for b in entry.result.benchmarks]
    if names != [entry.benchmark]:
        raise ResultFormatError(f"the baseline entry of {entry.benchmark!r} must hold exactly that one benchmark, "
                                f"holds {names!r}")


def _text(data: Mapping[str, Any], key: str) -> str:
    value = data[key]
    if not isinstance(value, str):
        raise TypeError(f"{key} must be a string, got {type(value).__name__}")
    return value


def _reject_constant(name: str) -> float:
    raise ValueError(f"non-finite number {name} is not allowed")


def _one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
