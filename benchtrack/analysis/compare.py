"""Baseline vs candidate: a verdict that accounts for the noise between worker processes.

Why not a t-test on all samples (pyperf) or Mann-Whitney U (asv)? Samples of one process are
not independent draws: every process carries its own offset (memory layout, hash seed, CPU
placement), and on shared machines that offset dwarfs the spread inside a process. Treating
samples as independent makes the standard error far too small, so unchanged code is flagged.

So each process is one observation (its median, on a log scale for times), each side's centre is
the mean of its process medians, and the uncertainty of the difference comes from the spread
*between* processes, with Welch-Satterthwaite degrees of freedom and Student's t: a cluster-level
test that stays calibrated with the 2-10 processes benchtrack runs (a cluster bootstrap needs
many more clusters before its intervals stop being too narrow). When a side has one process, its
spread comes from the benchmark's history of runs, else from the other side, else from a
deliberately wide prior, which makes the verdict inconclusive rather than a guess.

Verdicts: regression / improvement when the change is significant after Benjamini-Hochberg
control over all comparisons of one run; unchanged when it is not significant *and* the
confidence interval excludes changes as large as the minor threshold; inconclusive otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
from scipy import stats as scipy_stats

Verdict = Literal["regression", "improvement", "unchanged", "inconclusive"]
Severity = Literal["critical", "major", "minor", "none"]
Scale = Literal["relative", "absolute"]
SEVERITIES: tuple[Severity, ...] = ("none", "minor", "major", "critical")
MIB = 1024.0 * 1024.0
TRIM = 0.2
OUTLYING_RUN_MADS = 5.0


@dataclass(frozen=True)
class Thresholds:
    """Severity bounds: relative change (0.15 = 15%) or absolute growth in MiB."""

    minor: float
    major: float
    critical: float
    scale: Scale = "relative"

    def severity(self, change: float) -> Severity:
        for name, bound in (("critical", self.critical), ("major", self.major), ("minor", self.minor)):
            if change >= bound:
                return name  # type: ignore[return-value]
        return "none"


DEFAULT_THRESHOLDS: Mapping[str, Thresholds] = {
    "time": Thresholds(0.15, 0.30, 0.50),
    "memory": Thresholds(5.0, 20.0, 50.0, scale="absolute"),
    "gc": Thresholds(0.15, 0.30, 0.50),
}


@dataclass(frozen=True)
class MetricSpec:
    """How one metric is compared: its threshold family and whether it lives on a log scale."""

    name: str
    family: str  # key into the thresholds mapping
    log_scale: bool
    unit_scale: float = 1.0  # divide raw values by this for absolute thresholds (bytes -> MiB)


COMPARED_METRICS: tuple[MetricSpec, ...] = (
    MetricSpec("wall_s", "time", log_scale=True),
    MetricSpec("cpu_s", "time", log_scale=True),
    MetricSpec("rss_peak_bytes", "memory", log_scale=False, unit_scale=MIB),
    MetricSpec("tracemalloc_peak_bytes", "memory", log_scale=False, unit_scale=MIB),
    MetricSpec("gc_pause_s", "gc", log_scale=False),
    MetricSpec("gc_collections", "gc", log_scale=False),
)


@dataclass(frozen=True)
class Side:
    """One side of a comparison: values with the worker process each came from."""

    values: Sequence[float]
    processes: Sequence[int]

    def process_groups(self) -> list[np.ndarray]:
        groups: dict[int, list[float]] = {}
        for value, process in zip(self.values, self.processes, strict=True):
            groups.setdefault(process, []).append(value)
        return [np.asarray(v, dtype=float) for _, v in sorted(groups.items())]


@dataclass(frozen=True)
class History:
    """Earlier runs of the same benchmark on the same machine fingerprint and branch. Their
    between-process variances, pooled, pin down the process noise far better than the 2-10
    processes of one run; the spread of their centres reveals noise between whole runs."""

    runs: Sequence[RunStatistics] = ()

    @property
    def usable(self) -> bool:
        return len(self.runs) >= 3

    def pooled_process_variance(self) -> tuple[float, float] | None:
        """(variance, degrees of freedom) pooled over runs with two or more processes."""
        usable = [r for r in self.runs if r.processes >= 2]
        df = float(sum(r.processes - 1 for r in usable))
        if df < 2:
            return None
        return sum((r.processes - 1) * r.process_variance for r in usable) / df, df

    def centre_variance(self) -> float:
        """Variance of the run centres, leaving out runs far from the rest (beyond 5 scaled MADs):
        a regressed run that landed on the branch must not pass for noise and hide the same
        regression in every later comparison; on clean history nothing is left out."""
        centres = np.array([r.centre for r in self.runs])
        median = float(np.median(centres))
        scale = 1.4826 * float(np.median(np.abs(centres - median)))
        kept = centres[np.abs(centres - median) <= OUTLYING_RUN_MADS * scale] if scale > 0 else centres
        if len(kept) < 3:
            return scale**2
        return float(np.var(kept, ddof=1))


@dataclass(frozen=True)
class ComparisonSettings:
    alpha: float = 0.01  # false-discovery rate across all comparisons of one run
    prior_cv: float = 0.10  # spread assumed for a one-process side with nothing else to go on
    prior_df: float = 4.0
    thresholds: Mapping[str, Thresholds] = field(default_factory=lambda: dict(DEFAULT_THRESHOLDS))


@dataclass(frozen=True)
class Comparison:
    benchmark: str
    metric: str
    verdict: Verdict
    severity: Severity
    change: float  # relative: +0.10 = 10% slower or larger
    ci_low: float
    ci_high: float
    p_value: float  # raw two-sided p-value
    p_adjusted: float  # after Benjamini-Hochberg over the run's comparisons
    baseline_centre: float
    candidate_centre: float
    absolute_change: float  # in the metric's threshold unit (MiB for memory, else the raw unit)
    spread_source: str  # "processes", "history", "other-side", "prior", "exact"
    baseline_processes: int
    candidate_processes: int
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Estimate:
    centre: float
    variance: float  # of the centre
    df: float
    source: str
    processes: int


def trimmed_mean(values: np.ndarray, proportion: float = TRIM) -> float:
    """Mean after cutting ``proportion`` off each end: as robust as the median to rare outliers,
    but it does not jump between modes when a bimodal benchmark's mix shifts a little."""
    ordered = np.sort(values)
    cut = int(proportion * len(ordered))
    return float(ordered[cut : len(ordered) - cut].mean())


def _process_centres(side: Side, log_scale: bool) -> np.ndarray:
    groups = [np.log(g) if log_scale else g for g in side.process_groups()]
    return np.array([trimmed_mean(g) for g in groups])


@dataclass(frozen=True)
class RunStatistics:
    """What one run contributes to later comparisons' history, in the comparison's scale."""

    centre: float
    process_variance: float  # variance of the per-process centres (0 with one process)
    processes: int


def run_statistics(side: Side, log_scale: bool) -> RunStatistics:
    centres = _process_centres(side, log_scale and min(side.values) > 0)
    variance = float(centres.var(ddof=1)) if len(centres) >= 2 else 0.0
    return RunStatistics(float(centres.mean()), variance, len(centres))


def _estimate(centres: np.ndarray, other: np.ndarray, history: History, settings: ComparisonSettings,
              log_scale: bool) -> _Estimate:
    """The side's centre and the variance of that centre, from the best spread available."""
    count = len(centres)
    centre = float(centres.mean())
    pooled = history.pooled_process_variance()
    if count >= 2:
        own_df = count - 1.0
        variance = float(centres.var(ddof=1))
        if pooled is None:
            return _Estimate(centre, variance / count, own_df, "processes", count)
        pooled_variance, pooled_df = pooled
        combined = (own_df * variance + pooled_df * pooled_variance) / (own_df + pooled_df)
        return _Estimate(centre, combined / count, own_df + pooled_df, "processes+history", count)
    if pooled is not None:
        return _Estimate(centre, pooled[0] + _excess_run_variance(history), pooled[1], "history", 1)
    if history.usable:
        return _Estimate(centre, history.centre_variance(), len(history.runs) - 1.0, "history", 1)
    if len(other) >= 2:
        return _Estimate(centre, float(other.var(ddof=1)), len(other) - 1.0, "other-side", 1)
    prior_sd = settings.prior_cv if log_scale else settings.prior_cv * abs(centre)
    return _Estimate(centre, prior_sd**2, settings.prior_df, "prior", 1)


def _excess_run_variance(history: History) -> float:
    """Noise between whole runs beyond what the processes of one run show (machine state,
    neighbours): the spread of run centres minus what process noise alone explains."""
    pooled = history.pooled_process_variance()
    if not history.usable or pooled is None:
        return 0.0
    expected = float(np.mean([pooled[0] / r.processes for r in history.runs]))
    return max(0.0, history.centre_variance() - expected)


def compare_metric(benchmark: str, spec: MetricSpec, baseline: Side, candidate: Side,
                   settings: ComparisonSettings, history: History | None = None) -> Comparison:
    """Compare one metric; the verdict is provisional until adjust_for_multiplicity runs."""
    history = history or History()
    _check_finite(benchmark, spec.name, baseline.values, candidate.values)
    log_scale = spec.log_scale and min(*baseline.values, *candidate.values) > 0
    base_centres, cand_centres = _process_centres(baseline, log_scale), _process_centres(candidate, log_scale)
    base = _estimate(base_centres, cand_centres, history, settings, log_scale)
    cand = _estimate(cand_centres, base_centres, history, settings, log_scale)
    # A one-process side's estimate already holds the between-run excess; add it for the others.
    extra = _excess_run_variance(history) * sum(1 for side in (base, cand) if side.processes >= 2)
    difference = cand.centre - base.centre
    variance = base.variance + cand.variance + extra
    thresholds = settings.thresholds[spec.family]
    if variance <= 0.0:
        return _exact(benchmark, spec, base, cand, difference, log_scale, thresholds)
    df = _welch_df(base, cand, extra)
    se = math.sqrt(variance)
    t_stat = difference / se
    p_value = float(2.0 * scipy_stats.t.sf(abs(t_stat), df))
    half_width = float(scipy_stats.t.ppf(1.0 - settings.alpha / 2.0, df)) * se
    low, high = difference - half_width, difference + half_width
    change, ci_low, ci_high = (_relative(x, base.centre, log_scale) for x in (difference, low, high))
    absolute = _absolute(difference, base.centre, cand.centre, log_scale) / spec.unit_scale
    comparison = Comparison(
        benchmark=benchmark, metric=spec.name, verdict="inconclusive", severity="none", change=change,
        ci_low=ci_low, ci_high=ci_high, p_value=p_value, p_adjusted=p_value,
        baseline_centre=_natural(base.centre, log_scale), candidate_centre=_natural(cand.centre, log_scale),
        absolute_change=absolute, spread_source=f"{base.source}/{cand.source}",
        baseline_processes=base.processes, candidate_processes=cand.processes,
    )
    return decide(comparison, settings.alpha, thresholds, spec.unit_scale)


def decide(comparison: Comparison, alpha: float, thresholds: Thresholds, unit_scale: float = 1.0) -> Comparison:
    """Verdict and severity from the (adjusted) p-value, the interval and the thresholds."""
    significant = comparison.p_adjusted < alpha
    if significant and comparison.change > 0:
        growth = comparison.absolute_change if thresholds.scale == "absolute" else comparison.change
        return replace(comparison, verdict="regression", severity=thresholds.severity(growth))
    if significant and comparison.change < 0:
        return replace(comparison, verdict="improvement", severity="none")
    if _within_noise_band(comparison, thresholds, unit_scale):
        return replace(comparison, verdict="unchanged", severity="none")
    return replace(comparison, verdict="inconclusive", severity="none")


def _within_noise_band(comparison: Comparison, thresholds: Thresholds, unit_scale: float) -> bool:
    """The interval rules out a change as large as the minor threshold in either direction."""
    if thresholds.scale == "relative":
        return -thresholds.minor < comparison.ci_low and comparison.ci_high < thresholds.minor
    base = comparison.baseline_centre / unit_scale
    return (-thresholds.minor < comparison.ci_low * base) and (comparison.ci_high * base < thresholds.minor)


def adjust_for_multiplicity(
    comparisons: Sequence[Comparison],
    settings: ComparisonSettings,
    thresholds_for: Callable[[Comparison], Mapping[str, Thresholds]] | None = None,
) -> list[Comparison]:
    """Benjamini-Hochberg over one run's comparisons, then verdicts re-decided, each with the
    thresholds ``thresholds_for`` gives its benchmark (default: the settings' thresholds)."""
    adjusted = benjamini_hochberg([c.p_value for c in comparisons])
    units = {spec.name: spec for spec in COMPARED_METRICS}
    result = []
    for comparison, p_adjusted in zip(comparisons, adjusted, strict=True):
        if comparison.spread_source == "exact":
            result.append(comparison)
            continue
        spec = units.get(comparison.metric, MetricSpec(comparison.metric, "time", True))
        thresholds = thresholds_for(comparison) if thresholds_for else settings.thresholds
        updated = replace(comparison, p_adjusted=p_adjusted)
        result.append(decide(updated, settings.alpha, thresholds[spec.family], spec.unit_scale))
    return result


def benjamini_hochberg(p_values: Sequence[float]) -> list[float]:
    """Step-up adjusted p-values (monotone, capped at 1)."""
    count = len(p_values)
    if count == 0:
        return []
    order = np.argsort(p_values)
    ranked = np.asarray(p_values, dtype=float)[order] * count / np.arange(1, count + 1)
    monotone = np.minimum.accumulate(ranked[::-1])[::-1]
    adjusted = np.empty(count)
    adjusted[order] = np.minimum(monotone, 1.0)
    return [float(p) for p in adjusted]


def _welch_df(base: _Estimate, cand: _Estimate, extra: float) -> float:
    numerator = (base.variance + cand.variance + extra) ** 2
    denominator = base.variance**2 / base.df + cand.variance**2 / cand.df
    if denominator <= 0.0:
        return max(base.df + cand.df, 1.0)
    return max(1.0, numerator / denominator)


def _exact(benchmark: str, spec: MetricSpec, base: _Estimate, cand: _Estimate, difference: float,
           log_scale: bool, thresholds: Thresholds) -> Comparison:
    """No spread at all (e.g. deterministic counts): any difference is real."""
    change = _relative(difference, base.centre, log_scale)
    absolute = _absolute(difference, base.centre, cand.centre, log_scale) / spec.unit_scale
    verdict: Verdict = "unchanged" if difference == 0 else ("regression" if difference > 0 else "improvement")
    growth = absolute if thresholds.scale == "absolute" else change
    severity: Severity = thresholds.severity(growth) if verdict == "regression" else "none"
    return Comparison(
        benchmark=benchmark, metric=spec.name, verdict=verdict, severity=severity, change=change,
        ci_low=change, ci_high=change, p_value=0.0 if difference else 1.0, p_adjusted=0.0 if difference else 1.0,
        baseline_centre=_natural(base.centre, log_scale), candidate_centre=_natural(cand.centre, log_scale),
        absolute_change=absolute, spread_source="exact",
        baseline_processes=base.processes, candidate_processes=cand.processes,
    )


MAX_LOG_CHANGE = 50.0  # e^50: beyond any real change; keeps absurd spreads finite


def _relative(difference: float, base_centre: float, log_scale: bool) -> float:
    if log_scale:
        return math.expm1(max(-MAX_LOG_CHANGE, min(MAX_LOG_CHANGE, difference)))
    return difference / abs(base_centre) if base_centre else (0.0 if difference == 0 else math.copysign(1.0, difference))


def _absolute(difference: float, base_centre: float, cand_centre: float, log_scale: bool) -> float:
    return math.exp(cand_centre) - math.exp(base_centre) if log_scale else difference


def _natural(centre: float, log_scale: bool) -> float:
    return math.exp(centre) if log_scale else centre


def _check_finite(benchmark: str, metric: str, *series: Sequence[float]) -> None:
    for values in series:
        if len(values) == 0:
            raise ValueError(f"{benchmark}: no {metric} samples on one side")
        if not all(math.isfinite(v) for v in values):
            raise ValueError(f"{benchmark}: {metric} holds a non-finite value")
