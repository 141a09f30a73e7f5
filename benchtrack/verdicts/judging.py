"""After `benchtrack run` has measured and logged: compare each suite with its current baseline,
decide promotions and carry them out. Stores come in through narrow protocols so tests can use
a real store or a fake one."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from benchtrack.analysis.features import cpu_count
from benchtrack.baseline_snapshot import BaselineSnapshot
from benchtrack.config import Config, Level
from benchtrack.results import BenchmarkResult
from benchtrack.session import Invocation, SuiteOutcome
from benchtrack.verdicts.calibration import Calibration
from benchtrack.verdicts.history import invocation_of, read_history
from benchtrack.verdicts.policy import PromotionDecision, Report, compare_results, promotion_decision


class Registry(Protocol):
    def current_for(self, suite: str, branch: str, fingerprint: str) -> Mapping[str, Any]: ...

    def promote(self, run_id: str, reason: str) -> Any: ...


@dataclass(frozen=True)
class MemoryCheck:
    """A memory or GC check of one benchmark in one run: a leak trend or the GC pause budget."""

    benchmark: str
    check: str  # "leak" | "gc_pause_p95"
    passed: bool
    severity: str
    detail: str


@dataclass(frozen=True)
class SuiteJudgement:
    suite: str
    report: Report
    baseline_source: str
    promotions: Mapping[str, PromotionDecision] = field(default_factory=dict)
    checks: tuple[MemoryCheck, ...] = ()
    baselines: int = 0  # benchmarks of the suite with a baseline (a suite of track benchmarks has some, compares none)

    def failing(self, level: Level) -> bool:
        return bool(self.report.failing(level)) or any(not c.passed and level.fails(c.severity) for c in self.checks)


def _leak_detail(bench: BenchmarkResult) -> str:
    leak = bench.details["leak"]
    reasons = leak.get("reasons") or ["no leak"]
    rate = leak.get("mb_per_1000_ops")
    text = f"{leak['processes_detecting']}/{leak['processes']} processes: {reasons[-1]}"
    if rate is not None:
        text = f"{rate:+.3f} MB per 1,000 operations; {text}"
    attribution = bench.details.get("attribution", {})
    sites = attribution.get("sites", [])[:3]
    if sites:
        text += "; grew at " + ", ".join(f"{Path(s['site']).name} (+{s['size_diff'] / 2**20:.1f} MB)" for s in sites)
    types = attribution.get("types", [])[:3]
    if types:
        text += "; objects " + ", ".join(f"{t['type']} +{t['growth']}" for t in types)
    return text


def memory_checks(bench: BenchmarkResult, config: Config) -> list[MemoryCheck]:
    """Leak verdicts of leak benchmarks, and every benchmark's GC pause p95 against the budget."""
    checks = []
    leak = bench.details.get("leak")
    if leak:
        checks.append(MemoryCheck(bench.name, "leak", not leak["detected"], leak["severity"], _leak_detail(bench)))
    p95 = bench.details.get("gc", {}).get("pause_p95_s")
    if p95 is not None and p95 > config.gc_pause_p95_s:
        checks.append(MemoryCheck(bench.name, "gc_pause_p95", False, "major",
                                  f"GC pause p95 {p95 * 1000:.1f} ms > budget {config.gc_pause_p95_s * 1000:.0f} ms"))
    return checks


@dataclass(frozen=True)
class Baselines:
    """The baselines of one suite, wherever they came from, and the run ids behind them (never
    part of the history the comparison reads)."""

    results: Mapping[str, BenchmarkResult]
    run_ids: tuple[str, ...]
    source: str


class BaselineSource(Protocol):
    """Where a suite's baselines come from: the store's promotion records, or snapshots."""

    def baselines(self, suite: str, branch: str, fingerprint: str) -> Baselines: ...

    @property
    def promotes(self) -> bool: ...


class StoreBaselines:
    def __init__(self, store: Any, registry: Registry) -> None:
        self._store, self._registry = store, registry

    @property
    def promotes(self) -> bool:
        return True

    def baselines(self, suite: str, branch: str, fingerprint: str) -> Baselines:
        records = self._registry.current_for(suite, branch, fingerprint)
        results = {name: self._store.load_benchmark_result(record.run_id).benchmarks[0] for name, record in records.items()}
        return Baselines(results, tuple(record.run_id for record in records.values()), f"{branch} baselines")


class SnapshotBaselines:
    def __init__(self, snapshots: Sequence[BaselineSnapshot]) -> None:
        self._snapshots = snapshots

    @property
    def promotes(self) -> bool:
        return False

    def baselines(self, suite: str, branch: str, fingerprint: str) -> Baselines:  # noqa: ARG002 - the run warned
        mine = next((snapshot for snapshot in self._snapshots if snapshot.suite == suite), None)
        if mine is None:
            return Baselines({}, (), "no snapshot of this suite")
        source = f"snapshot ({mine.branch})"
        if mine.fingerprint != fingerprint:
            source = f"snapshot ({mine.branch}) from ANOTHER MACHINE ({mine.fingerprint})"
        entries = mine.entries
        return Baselines({e.benchmark: e.result.benchmarks[0] for e in entries}, tuple(e.run_id for e in entries), source)


def judge(invocation: Invocation, config: Config, level: Level, store: Any | None, source: BaselineSource | None,
          registry: Registry | None = None, calibration: Calibration | None = None) -> list[SuiteJudgement]:
    """Each suite against its baselines from ``source`` (the store's, or snapshots); the
    registry promotes when the source is the store's."""
    return [_judge_suite(outcome, config, level, store, source, registry, calibration) for outcome in invocation.suites]


def _judge_suite(outcome: SuiteOutcome, config: Config, level: Level, store: Any | None, source: BaselineSource | None,
                 registry: Registry | None, calibration: Calibration | None) -> SuiteJudgement:
    run = outcome.result
    fingerprint = run.metadata.get("benchtrack.machine.fingerprint", "")
    candidate = {b.name: b for b in run.benchmarks}
    found = source.baselines(run.suite, config.baseline_branch, fingerprint) if source else Baselines({}, (), "none")
    exclude = [outcome.parent_run_id, invocation_of(run.metadata), *outcome.child_run_ids.values(), *found.run_ids]
    history = read_history(store, [run.suite], config.baseline_branch, fingerprint, exclude)
    report = compare_results(found.results, candidate, config, level, history, calibration=calibration,
                             cpus=cpu_count(run.metadata), candidate_level=run.level)
    checks_by_bench = {bench.name: memory_checks(bench, config) for bench in run.benchmarks}
    promotions: dict[str, PromotionDecision] = {}
    if registry is not None and source is not None and source.promotes:
        for bench in run.benchmarks:
            decision = promotion_decision(level, config, run.metadata, bench, bench.name in found.results, report)
            if decision.promote and any(not c.passed for c in checks_by_bench[bench.name]):
                decision = PromotionDecision(False, "a memory or GC check failed")
            run_id = outcome.child_run_ids.get(bench.name)
            if decision.promote and run_id:
                registry.promote(run_id, decision.reason)
            promotions[bench.name] = decision
    checks = tuple(check for bench_checks in checks_by_bench.values() for check in bench_checks)
    return SuiteJudgement(run.suite, report, found.source, promotions, checks, len(found.results))
