"""Did a load run pass? Five criteria, of which ``required`` must hold (pure: numbers in, a record out).

1. memory growth: the leak verdict's Theil-Sen slope (the point estimate, over the analysed span
   after the warm-up), in MB/hour, under ``growth_mb_per_hour``;
2. mean response time under ``mean_response_s`` (requests that got an answer; timeouts are
   counted by criterion 4);
3. success rate over ``success_rate``;
4. at most ``timeouts`` timeouts;
5. peak memory under ``peak_memory_ratio`` times the first sample (taken before the load starts).

Without a monitored target (or with too few memory samples for a slope) the memory criteria are
"not applicable": the run is judged on the criteria that apply, and ``required`` is scaled down
in proportion, rounded up: ``ceil(required * applicable / 5)``. The default 4 of 5 becomes 3 of 3
(every request criterion must hold) without a monitor, and 4 of 4 when only the slope is missing.
The thresholds are the scenario's [criteria] (:class:`benchtrack.load.scenario.CriteriaSpec`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from benchtrack.load.scenario import CriteriaSpec

CRITERIA_COUNT = 5


@dataclass(frozen=True)
class Criterion:
    name: str  # "memory_growth" | "mean_response" | "success_rate" | "timeouts" | "peak_memory"
    held: bool | None  # None: not applicable (no memory measured)
    value: float | None
    threshold: float
    rule: str  # human: "< 50 MB/hour"
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "held": self.held, "applicable": self.held is not None, "value": self.value,
                "threshold": self.threshold, "rule": self.rule, "detail": self.detail}


@dataclass(frozen=True)
class CriteriaVerdict:
    criteria: tuple[Criterion, ...]
    met: int
    of: int  # criteria that apply
    required: int  # after scaling to the criteria that apply
    passed: bool

    def as_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "met": self.met, "of": self.of, "required": self.required,
                "criteria": [c.as_dict() for c in self.criteria]}


@dataclass(frozen=True)
class RunFigures:
    """What the criteria look at, taken from a LoadResult and the monitor's memory verdict."""

    mean_response_ms: float
    success_rate: float
    timeouts: int
    answered: int  # requests that got an answer (the mean response covers these)
    growth_mb_per_hour: float | None = None  # None: no slope (no monitor, or too few samples)
    start_mb: float | None = None  # None: no monitor
    peak_mb: float | None = None


def evaluate(criteria: CriteriaSpec, figures: RunFigures) -> CriteriaVerdict:
    results = (
        _growth(criteria, figures.growth_mb_per_hour),
        _mean_response(criteria, figures),
        Criterion("success_rate", figures.success_rate > criteria.success_rate, figures.success_rate,
                  criteria.success_rate, f"> {criteria.success_rate:.0%}", f"{figures.success_rate:.1%} succeeded"),
        Criterion("timeouts", figures.timeouts <= criteria.timeouts, float(figures.timeouts), float(criteria.timeouts),
                  f"<= {criteria.timeouts}", f"{figures.timeouts} timed out"),
        _peak(criteria, figures.start_mb, figures.peak_mb),
    )
    applicable = [c for c in results if c.held is not None]
    met = sum(1 for c in applicable if c.held)
    required = math.ceil(criteria.required * len(applicable) / CRITERIA_COUNT)
    return CriteriaVerdict(results, met, len(applicable), required, met >= required)


def _growth(criteria: CriteriaSpec, growth: float | None) -> Criterion:
    rule = f"< {criteria.growth_mb_per_hour:g} MB/hour"
    if growth is None or not math.isfinite(growth):
        return Criterion("memory_growth", None, None, criteria.growth_mb_per_hour, rule,
                         "not applicable: no memory slope (no monitored target, or too few samples)")
    return Criterion("memory_growth", growth < criteria.growth_mb_per_hour, growth, criteria.growth_mb_per_hour, rule,
                     f"{growth:.3g} MB/hour (leak slope)")


def _mean_response(criteria: CriteriaSpec, figures: RunFigures) -> Criterion:
    rule = f"< {criteria.mean_response_s:g} s"
    if figures.answered == 0:
        return Criterion("mean_response", False, None, criteria.mean_response_s, rule, "no request got an answer")
    seconds = figures.mean_response_ms / 1000.0
    return Criterion("mean_response", seconds < criteria.mean_response_s, seconds, criteria.mean_response_s, rule,
                     f"{seconds * 1000:.1f} ms mean")


def _peak(criteria: CriteriaSpec, start_mb: float | None, peak_mb: float | None) -> Criterion:
    rule = f"< {criteria.peak_memory_ratio:.0%} of start"
    if start_mb is None or peak_mb is None or start_mb <= 0:
        return Criterion("peak_memory", None, None, criteria.peak_memory_ratio, rule,
                         "not applicable: no memory measured")
    ratio = peak_mb / start_mb
    return Criterion("peak_memory", ratio < criteria.peak_memory_ratio, ratio, criteria.peak_memory_ratio, rule,
                     f"peak {peak_mb:.1f} MB = {ratio:.0%} of start {start_mb:.1f} MB")
