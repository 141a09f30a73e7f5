"""From two sets of benchmark results (plus history) to verdicts, anomalies and a pass/fail.

No mlflow and no typer here: the store is read by the caller, which hands in plain records.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from benchtrack import results as r
from benchtrack.analysis.anomaly import AnomalyResult, detect_anomaly
from benchtrack.analysis.compare import (
    COMPARED_METRICS,
    Comparison,
    ComparisonSettings,
    History,
    Thresholds,
    adjust_for_multiplicity,
    compare_metric,
)
from benchtrack.analysis.features import HistoryRun, anomaly_features, metric_side
from benchtrack.config import Config, Level
from benchtrack.errors import ResultFormatError
from benchtrack.results import BenchmarkResult

VERDICTS = ("regression", "improvement", "unchanged", "inconclusive")

@dataclass(frozen=True)
class Report:
    comparisons: tuple[Comparison, ...]
    anomalies: Mapping[str, AnomalyResult] = field(default_factory=dict)
    only_in_baseline: tuple[str, ...] = ()
    only_in_candidate: tuple[str, ...] = ()
    skipped: Mapping[str, str] = field(default_factory=dict)  # benchmark -> why it was not compared

    def counts(self) -> dict[str, int]:
        return {verdict: sum(1 for c in self.comparisons if c.verdict == verdict) for verdict in VERDICTS}

    def failing(self, level: Level) -> list[Comparison]:
        """Regressions whose severity reaches the level's fail_on."""
        return [c for c in self.comparisons if c.verdict == "regression" and level.fails(c.severity)]

    def improved(self, benchmark: str) -> bool:
        mine = [c for c in self.comparisons if c.benchmark == benchmark]
        primary = [c for c in mine if c.metric == r.WALL]
        return bool(primary) and primary[0].verdict == "improvement" and not any(c.verdict == "regression" for c in mine)

    def regressed(self, benchmark: str) -> bool:
        return any(c.verdict == "regression" for c in self.comparisons if c.benchmark == benchmark)


def compare_results(
    baseline: Mapping[str, BenchmarkResult],
    candidate: Mapping[str, BenchmarkResult],
    config: Config,
    level: Level,
    history: Mapping[str, Sequence[HistoryRun]] | None = None,
    seed: int = 0,
) -> Report:
    """Compare every benchmark present on both sides, with false-discovery control over all of them."""
    history = history or {}
    raw: list[Comparison] = []
    skipped: dict[str, str] = {}
    anomalies: dict[str, AnomalyResult] = {}
    for name in sorted(set(baseline) & set(candidate)):
        base, cand = baseline[name], candidate[name]
        reason = _not_comparable(base, cand)
        if reason:
            skipped[name] = reason
            continue
        settings = ComparisonSettings(alpha=config.alpha, thresholds=config.thresholds_for(level, name, cand.benchmark))
        runs = history.get(name, ())
        raw.extend(_compare_benchmark(name, base, cand, settings, runs))
        anomalies[name] = _anomaly(cand, runs, seed)
    for name in sorted(set(candidate) - set(baseline)):
        # No baseline yet, but history may exist: a first baseline must not be an anomalous run.
        if candidate[name].ok and candidate[name].samples and history.get(name):
            anomalies[name] = _anomaly(candidate[name], history[name], seed)
    def thresholds_for(comparison: Comparison) -> Mapping[str, Thresholds]:
        bench = candidate[comparison.benchmark]
        return config.thresholds_for(level, bench.name, bench.benchmark)

    adjusted = adjust_for_multiplicity(raw, ComparisonSettings(alpha=config.alpha), thresholds_for)
    return Report(
        comparisons=tuple(adjusted),
        anomalies=anomalies,
        only_in_baseline=tuple(sorted(set(baseline) - set(candidate))),
        only_in_candidate=tuple(sorted(set(candidate) - set(baseline))),
        skipped=skipped,
    )


def _not_comparable(base: BenchmarkResult, cand: BenchmarkResult) -> str | None:
    if not base.ok or not cand.ok:
        return "failed on one side"
    if cand.kind == "track" or base.kind == "track":
        return "track benchmarks report their own metrics (no direction to judge)"
    if not base.samples or not cand.samples:
        return "no samples on one side"
    return None


def _compare_benchmark(name: str, base: BenchmarkResult, cand: BenchmarkResult, settings: ComparisonSettings,
                       runs: Sequence[HistoryRun]) -> list[Comparison]:
    comparisons = []
    for spec in COMPARED_METRICS:
        base_side, cand_side = metric_side(base, spec.name), metric_side(cand, spec.name)
        if base_side is None or cand_side is None:
            continue
        past = tuple(s for s in (run.statistics(spec.name) for run in runs) if s is not None)
        try:
            comparisons.append(compare_metric(name, spec, base_side, cand_side, settings, History(past)))
        except ValueError as exc:
            raise ResultFormatError(str(exc)) from None
    return comparisons


def _anomaly(cand: BenchmarkResult, runs: Sequence[HistoryRun], seed: int) -> AnomalyResult:
    current = anomaly_features(cand)
    # Seven runs before judging: with fewer, a robust z over five features false-alarms ~4%.
    return detect_anomaly([run.features() for run in runs], current, seed=seed, min_history_z=7)


@dataclass(frozen=True)
class PromotionDecision:
    promote: bool
    reason: str


def promotion_decision(level: Level, config: Config, metadata: Mapping[str, str], bench: BenchmarkResult,
                       has_baseline: bool, report: Report | None) -> PromotionDecision:
    """Promote when a clean run on the baseline branch passed, is not anomalous, and either
    improved on its baseline or has none yet."""
    refusals = (
        (not level.promote, f"level {level.name} does not promote"),
        (metadata.get("benchtrack.git.branch") != config.baseline_branch,
         f"branch {metadata.get('benchtrack.git.branch', 'unknown')} is not the baseline branch {config.baseline_branch}"),
        (metadata.get("benchtrack.git.dirty") != "false", "the work tree had uncommitted changes"),
        (not bench.ok, "the benchmark failed"),
    )
    for refused, reason in refusals:
        if refused:
            return PromotionDecision(False, reason)
    anomaly = report.anomalies.get(bench.name) if report else None
    if anomaly is not None and anomaly.anomalous:
        return PromotionDecision(False, "the run is anomalous against its history")
    if not has_baseline:
        return PromotionDecision(True, "first baseline")
    if report is not None and report.improved(bench.name):
        return PromotionDecision(True, "improvement")
    return PromotionDecision(False, "not an improvement")
