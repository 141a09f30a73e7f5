"""Verdicts of an interleaved comparison: times from the paired permutation test over rounds
(analysis.paired), every other metric as an ordinary comparison of the two sides; the same
Report, thresholds, false-discovery control and fail_on as any comparison."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from benchtrack import results as r
from benchtrack.analysis.compare import (
    Comparison,
    ComparisonSettings,
    Thresholds,
    adjust_for_multiplicity,
    decide,
    spec_for,
)
from benchtrack.analysis.features import process_low_quantiles
from benchtrack.analysis.paired import Round, paired_test
from benchtrack.config import Config, Level
from benchtrack.results import BenchmarkResult
from benchtrack.verdicts.policy import Report, compare_results

PAIRED_METRICS = (r.WALL, r.CPU)


def rounds_of(base: BenchmarkResult, cand: BenchmarkResult, metric: str) -> list[Round]:
    """Per round (worker process index, the same on both sides), each side's log low quantile."""
    left, right = process_low_quantiles(base, metric), process_low_quantiles(cand, metric)
    return [Round(left[p], right[p]) for p in sorted(set(left) & set(right))]


def paired_comparison(name: str, metric: str, base: BenchmarkResult, cand: BenchmarkResult, alpha: float,
                      max_rounds: int, thresholds: Thresholds, mode: str = "interleaved") -> Comparison | None:
    rounds = rounds_of(base, cand, metric)
    if len(rounds) < 2:
        return None
    result = paired_test(rounds, alpha, max_rounds)
    comparison = Comparison(
        benchmark=name, metric=metric, verdict="inconclusive", severity="none", change=result.change,
        ci_low=result.ci_low, ci_high=result.ci_high, p_value=result.p_value, p_adjusted=result.p_value,
        baseline_centre=result.baseline_centre, candidate_centre=result.candidate_centre,
        absolute_change=result.change * result.baseline_centre,
        spread_source=f"{mode}/{result.rounds} rounds", baseline_processes=result.rounds,
        candidate_processes=result.rounds, df=float(result.rounds - 1),
        notes=(f"paired over {result.rounds} {mode} rounds (lower quartiles of the process centres, "
               "permutation test swapping the sides within rounds)",),
    )
    return decide(comparison, alpha, thresholds)


def decided(comparison: Comparison | None, alpha: float, tests: int, resolution: float, thresholds: Thresholds) -> bool:
    """Enough to stop measuring: significant even for a Bonferroni bound over every test of
    the comparison, or the interval inside +-resolution ([rerun] resolution) and the minor
    threshold. Not the minor threshold alone: stopping once a change is shown to be below it
    would leave a real 10% change (minor 15%) "unchanged" after 16 rounds instead of found after 32."""
    if comparison is None:
        return False
    if comparison.p_value < alpha / max(tests, 1):
        return True
    band = min(resolution, thresholds.minor)
    return -band < comparison.ci_low and comparison.ci_high < band


def judge_interleaved(baseline: Mapping[str, BenchmarkResult], candidate: Mapping[str, BenchmarkResult],
                      config: Config, level: Level, max_rounds: int, seed: int = 0, mode: str = "interleaved") -> Report:
    ordinary = compare_results(baseline, candidate, config, level, seed=seed)
    kept = [c for c in ordinary.comparisons if c.metric not in PAIRED_METRICS]

    def thresholds_for(comparison: Comparison) -> Mapping[str, Thresholds]:
        bench = candidate[comparison.benchmark]
        return config.thresholds_for(level, bench.name, bench.benchmark)

    paired = []
    for name in sorted(set(baseline) & set(candidate)):
        if name in ordinary.skipped:
            continue
        for metric in PAIRED_METRICS:
            family = spec_for(metric).family
            found = paired_comparison(name, metric, baseline[name], candidate[name], config.alpha, max_rounds,
                                      config.thresholds_for(level, name, candidate[name].benchmark)[family], mode)
            if found is not None:
                paired.append(found)
    adjusted = adjust_for_multiplicity(paired, ComparisonSettings(alpha=config.alpha), thresholds_for)
    order = {(c.benchmark, c.metric): i for i, c in enumerate(ordinary.comparisons)}
    joined = sorted([*kept, *adjusted], key=lambda c: order.get((c.benchmark, c.metric), len(order)))
    return replace(ordinary, comparisons=tuple(joined), shifts=(), contention={})
