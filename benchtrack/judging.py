"""After `benchtrack run` has measured and logged: compare each suite with its current baseline,
decide promotions and carry them out. Stores come in through narrow protocols so tests can use
a real store or a fake one."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from benchtrack.baseline_snapshot import BaselineSnapshot
from benchtrack.config import Config, Level
from benchtrack.results import BenchmarkResult
from benchtrack.session import Invocation, SuiteOutcome
from benchtrack.verdicts import PromotionDecision, Report, compare_results, promotion_decision


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


def judge(invocation: Invocation, config: Config, level: Level, store: Any | None, registry: Registry | None,
          snapshots: Sequence[BaselineSnapshot] = ()) -> list[SuiteJudgement]:
    """With snapshots, each suite is judged against the snapshot of that suite (and nothing is
    promoted); otherwise against the store's current baselines."""
    return [_judge_suite(outcome, config, level, store, registry, snapshots) for outcome in invocation.suites]


def _judge_suite(outcome: SuiteOutcome, config: Config, level: Level, store: Any | None,
                 registry: Registry | None, snapshots: Sequence[BaselineSnapshot]) -> SuiteJudgement:
    run = outcome.result
    fingerprint = run.metadata.get("benchtrack.machine.fingerprint", "")
    candidate = {b.name: b for b in run.benchmarks}
    baseline, source = _baselines(run.suite, config, fingerprint, store, registry, snapshots)
    history = {}
    if store is not None:
        exclude = frozenset(filter(None, [outcome.parent_run_id]))
        history = store.history(run.suite, config.baseline_branch, fingerprint, exclude=exclude)
    report = compare_results(baseline, candidate, config, level, history)
    checks_by_bench = {bench.name: memory_checks(bench, config) for bench in run.benchmarks}
    promotions: dict[str, PromotionDecision] = {}
    if registry is not None and not snapshots:
        for bench in run.benchmarks:
            decision = promotion_decision(level, config, run.metadata, bench, bench.name in baseline, report)
            if decision.promote and any(not c.passed for c in checks_by_bench[bench.name]):
                decision = PromotionDecision(False, "a memory or GC check failed")
            run_id = outcome.child_run_ids.get(bench.name)
            if decision.promote and run_id:
                registry.promote(run_id, decision.reason)
            promotions[bench.name] = decision
    checks = tuple(check for bench_checks in checks_by_bench.values() for check in bench_checks)
    return SuiteJudgement(run.suite, report, source, promotions, checks)


def _baselines(suite: str, config: Config, fingerprint: str, store: Any | None, registry: Registry | None,
               snapshots: Sequence[BaselineSnapshot]) -> tuple[dict[str, BenchmarkResult], str]:
    if snapshots:
        mine = [snapshot for snapshot in snapshots if snapshot.suite == suite]
        entries = {e.benchmark: e.result.benchmarks[0] for snapshot in mine for e in snapshot.entries}
        return entries, f"snapshot ({mine[0].branch})" if mine else "no snapshot of this suite"
    if registry is None or store is None:
        return {}, "none"
    records = registry.current_for(suite, config.baseline_branch, fingerprint)
    baseline = {}
    for name, record in records.items():
        baseline[name] = store.load_benchmark_result(record.run_id).benchmarks[0]
    return baseline, f"{config.baseline_branch} baselines"
