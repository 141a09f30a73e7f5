"""What `benchtrack compare A B` compares: a result file (benchtrack, pytest-benchmark, pyperf,
baseline snapshot), an MLflow run id, or a git ref (the newest run of that commit measured on
this machine). Files need no tracking store, so comparing two files never imports mlflow."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchtrack.analysis.features import cpu_count
from benchtrack.config import Config, Level
from benchtrack.errors import ResultFormatError, UsageError
from benchtrack.results import BenchmarkResult, RunResult
from benchtrack.verdicts.calibration import Calibration
from benchtrack.verdicts.history import exclusions, read_history
from benchtrack.verdicts.policy import Report, compare_results

RUN_ID = re.compile(r"^[0-9a-f]{32}$")


@dataclass(frozen=True)
class Operand:
    text: str
    kind: str  # "file" | "run" | "git-ref"
    runs: tuple[RunResult, ...]
    run_id: str | None = None
    commit: str | None = None

    def benchmarks(self) -> dict[str, BenchmarkResult]:
        found: dict[str, BenchmarkResult] = {}
        for run in self.runs:
            for bench in run.benchmarks:
                if bench.name in found:
                    raise ResultFormatError(f"{self.text}: benchmark {bench.name!r} appears twice")
                found[bench.name] = bench
        return found

    @property
    def metadata(self) -> dict[str, str]:
        return dict(self.runs[0].metadata) if self.runs else {}


def resolve(text: str, open_store: Callable[[], Any], fingerprint: str, cwd: Path) -> Operand:
    path = Path(text)
    if path.is_file():
        return Operand(text, "file", tuple(load_result_file(path)))
    if RUN_ID.match(text):
        return Operand(text, "run", (open_store().load_run(text),), run_id=text)
    commit = git_commit(text, cwd)
    if commit is not None:
        run_id = open_store().newest_invocation(commit, fingerprint)
        if run_id is None:
            raise UsageError(f"no benchtrack run of {text} ({commit[:12]}) on this machine (fingerprint {fingerprint})")
        return Operand(text, "git-ref", (open_store().load_run(run_id),), run_id=run_id, commit=commit)
    if path.suffix in (".json", ".gz") or "/" in text:
        raise UsageError(f"no such result file: {text}")
    raise UsageError(f"{text!r} is not a result file, an MLflow run id or a git ref")


def load_result_file(path: Path) -> list[RunResult]:
    """benchtrack, pytest-benchmark and pyperf results, or a baseline snapshot."""
    from benchtrack.baseline_snapshot import SNAPSHOT_SCHEMA, load_snapshot
    from benchtrack.importers import load_any

    if _schema_of(path) == SNAPSHOT_SCHEMA:
        snapshot = load_snapshot(path)
        return [entry.result for entry in snapshot.entries]
    return load_any(path)


def _schema_of(path: Path) -> str | None:
    try:
        with path.open("rb") as handle:
            head = handle.read(256)
        if not head.lstrip().startswith(b"{"):
            return None
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return data.get("schema") if isinstance(data, dict) else None


def git_commit(ref: str, cwd: Path) -> str | None:
    """The commit a git ref names, or None when it names none (or git is unavailable)."""
    if ref.startswith("-"):
        return None
    try:
        result = subprocess.run(
            ["git", "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"],
            cwd=cwd, capture_output=True, text=True, timeout=10, check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    sha = result.stdout.strip()
    return sha if result.returncode == 0 and re.fullmatch(r"[0-9a-f]{40}", sha) else None


def compare_operands(left: Operand, right: Operand, base: Mapping[str, BenchmarkResult],
                     cand: Mapping[str, BenchmarkResult], config: Config, level: Level,
                     open_store: Callable[[], Any] | None, calibration: Calibration | None) -> Report:
    """`benchtrack compare`: the same judging as after a run. History comes from the baseline's
    branch (else the configured baseline branch) and the candidate's machine fingerprint, and
    never holds either of the two runs being compared, so the same two runs get the same verdict
    by run id, by git ref and by file. ``open_store`` is None when there is no store to read."""
    metadata = right.metadata or left.metadata
    fingerprint = metadata.get("benchtrack.machine.fingerprint", "")
    branch = left.metadata.get("benchtrack.git.branch") or config.baseline_branch
    suites = [run.suite for operand in (left, right) for run in operand.runs]
    store = open_store() if open_store is not None and fingerprint else None
    history = read_history(store, suites, branch, fingerprint, exclusions(left, right))
    return compare_results(base, cand, config, level, history, calibration=calibration,
                           cpus=cpu_count(metadata), candidate_level=right.runs[0].level if right.runs else "")
