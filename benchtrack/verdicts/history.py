"""The one way a comparison reads its history: earlier runs of each benchmark on the baseline
branch and this machine fingerprint, without the runs being compared, of comparable settings,
after the last change point."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

from benchtrack import results as r
from benchtrack.analysis.changepoints import last_segment_start
from benchtrack.analysis.features import HistoryRun, loops_of
from benchtrack.results import BenchmarkResult
from benchtrack.session import INVOCATION_KEY

MAX_LOOP_RATIO = 2.0  # runs calibrated to loop counts further apart measure different things


class HistoryStore(Protocol):
    def history(self, suite: str, branch: str, fingerprint: str, exclude: frozenset[str] = ...,
                per_benchmark: int = ...) -> dict[str, list[HistoryRun]]: ...


def read_history(store: HistoryStore | None, suites: Iterable[str], branch: str, fingerprint: str,
                 exclude: Iterable[str | None]) -> dict[str, list[HistoryRun]]:
    """History of every benchmark of the suites, newest first. ``exclude``: run ids and
    invocation ids of the runs being compared (a parent run id excludes its benchmarks)."""
    if store is None or not fingerprint or not branch:
        return {}
    excluded = frozenset(x for x in exclude if x)
    history: dict[str, list[HistoryRun]] = {}
    for suite in sorted(set(suites)):
        found = store.history(suite, branch, fingerprint, exclude=excluded)
        history.update({name: [run for run in runs if run.invocation not in excluded] for name, runs in found.items()})
    return history


def usable_history(runs: Sequence[HistoryRun], candidate: BenchmarkResult, level: str = "") -> list[HistoryRun]:
    """Runs of the same level and comparable loop counts, after the last change point of the
    wall-time centres (history is newest first, as is the result)."""
    comparable = [run for run in runs if _comparable(run, candidate, level)]
    centres = [run.statistics(r.WALL) for run in comparable]
    if any(c is None for c in centres) or len(comparable) < 6:
        return comparable
    chronological = [c.centre for c in reversed(centres) if c is not None]
    start = last_segment_start(chronological)
    return comparable[: len(comparable) - start]


def _comparable(run: HistoryRun, candidate: BenchmarkResult, level: str) -> bool:
    if level and run.level and run.level != level:
        return False
    mine, theirs = _loops(loops_of(candidate)), _loops(run.loops)
    if not mine or not theirs:
        return True
    ratio = max(max(mine) / min(theirs), max(theirs) / min(mine))
    return ratio <= MAX_LOOP_RATIO


def _loops(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip().isdigit() and int(v) > 0]


def exclusions(*operands: Any) -> list[str | None]:
    """Run ids and invocation ids of compare operands (run, git ref or file alike)."""
    found: list[str | None] = []
    for operand in operands:
        found.append(getattr(operand, "run_id", None))
        for run in getattr(operand, "runs", ()):
            found.append(run.metadata.get(INVOCATION_KEY))
    return found


def invocation_of(metadata: Mapping[str, str]) -> str | None:
    return metadata.get(INVOCATION_KEY)
