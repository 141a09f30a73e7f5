"""Targets declared on a benchmark (``{"wall_s.median": 5.0}``), checked against its samples."""

from __future__ import annotations

from dataclasses import dataclass

from benchtrack.analysis.stats import STATISTICS, summarize
from benchtrack.results import BenchmarkResult


@dataclass(frozen=True)
class TargetCheck:
    target: str
    limit: float
    value: float | None  # None when the benchmark produced no such metric
    met: bool


def check_targets(bench: BenchmarkResult) -> list[TargetCheck]:
    checks = []
    for target, limit in bench.targets.items():
        metric, _, statistic = target.rpartition(".")
        series = bench.series(metric) if statistic in STATISTICS else []
        if not series:
            checks.append(TargetCheck(target, limit, None, False))
            continue
        value = summarize(series).as_dict()[statistic]
        checks.append(TargetCheck(target, limit, value, value <= limit))
    return checks
