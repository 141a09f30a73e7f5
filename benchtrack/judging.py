"""After `benchtrack run` has measured and logged: compare each suite with its current baseline,
decide promotions and carry them out. Stores come in through narrow protocols so tests can use
a real store or a fake one."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
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
class SuiteJudgement:
    suite: str
    report: Report
    baseline_source: str
    promotions: Mapping[str, PromotionDecision] = field(default_factory=dict)


def judge(invocation: Invocation, config: Config, level: Level, store: Any | None, registry: Registry | None,
          snapshot: BaselineSnapshot | None) -> list[SuiteJudgement]:
    return [_judge_suite(outcome, config, level, store, registry, snapshot) for outcome in invocation.suites]


def _judge_suite(outcome: SuiteOutcome, config: Config, level: Level, store: Any | None,
                 registry: Registry | None, snapshot: BaselineSnapshot | None) -> SuiteJudgement:
    run = outcome.result
    fingerprint = run.metadata.get("benchtrack.machine.fingerprint", "")
    candidate = {b.name: b for b in run.benchmarks}
    baseline, source = _baselines(run.suite, config, fingerprint, store, registry, snapshot)
    history = {}
    if store is not None:
        exclude = frozenset(filter(None, [outcome.parent_run_id]))
        history = store.history(run.suite, config.baseline_branch, fingerprint, exclude=exclude)
    report = compare_results(baseline, candidate, config, level, history)
    promotions: dict[str, PromotionDecision] = {}
    if registry is not None and snapshot is None:
        for bench in run.benchmarks:
            decision = promotion_decision(level, config, run.metadata, bench, bench.name in baseline, report)
            run_id = outcome.child_run_ids.get(bench.name)
            if decision.promote and run_id:
                registry.promote(run_id, decision.reason)
            promotions[bench.name] = decision
    return SuiteJudgement(run.suite, report, source, promotions)


def _baselines(suite: str, config: Config, fingerprint: str, store: Any | None, registry: Registry | None,
               snapshot: BaselineSnapshot | None) -> tuple[dict[str, BenchmarkResult], str]:
    if snapshot is not None:
        entries = {e.benchmark: e.result.benchmarks[0] for e in snapshot.entries if e.result.suite == suite}
        return entries, "snapshot"
    if registry is None or store is None:
        return {}, "none"
    records = registry.current_for(suite, config.baseline_branch, fingerprint)
    baseline = {}
    for name, record in records.items():
        baseline[name] = store.load_benchmark_result(record.run_id).benchmarks[0]
    return baseline, f"{config.baseline_branch} baselines"
