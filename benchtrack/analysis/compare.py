"""Baseline vs candidate: a verdict that accounts for the noise between worker processes *and*
between whole invocations (pure: numbers in, frozen records out).

Why not a t-test on all samples (pyperf) or Mann-Whitney U (asv)? Samples of one process are
not independent draws, and neither are the processes of one invocation: on shared machines a
whole invocation runs 10-50% slower or faster, every benchmark with it. So:

- times: each process is summarised by a low quantile of its samples, and the side by its
  *fastest process* (Chen & Revels, HPEC 2016: interference only ever adds time). Worker
  processes land in speed modes (layout, hash seed, the host's placement) and a slow invocation is
  mostly one whose processes landed in slow modes; the fastest process's low quantile moved by a
  median 1.9% between invocations of identical code on this machine where the mean of the
  processes moved by 7% (experiments/self/real_corpus.py, estimator_evidence). Its uncertainty
  is the spread of that centre between invocations when history or a calibration measured it;
  with only the suite or a prior, the sampling uncertainty of the fastest process's quantile is
  added (a jackknife over processes is no help: it gives the gap to the next speed mode);
- memory and GC: the mean over processes of each process's trimmed mean;
- the variance of the difference has three parts, each with its own degrees of freedom, joined
  by Welch-Satterthwaite: the within-invocation uncertainty of both sides (pooled with history
  for the mean of processes, counted once), the variance between whole invocations beyond it
  (``RunNoise``: from history, an A/A calibration, the suite itself, or a prior; once for each
  side) and the uncertainty of the suite-wide shift when it is subtracted.

Verdicts: regression / improvement when significant after Benjamini-Hochberg over one run's
comparisons; unchanged when not significant and the interval excludes the minor threshold;
inconclusive otherwise. Severity is the highest threshold the whole interval clears.
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
Centre = Literal["fastest-process", "trimmed-mean"]
SEVERITIES: tuple[Severity, ...] = ("none", "minor", "major", "critical")
MIB = 1024.0 * 1024.0
TRIM = 0.2
LOW_QUANTILE = 0.10  # of a process's samples, for times: chosen on the real-run corpus (real_corpus.py)
# No invocation of a real machine repeats a time more closely than this: the floor of the noise
# between invocations (the median benchmark moved 1.9% between invocations of identical code
# here, and whole speed modes come and go), so a few lucky history runs cannot make a 3% jitter
# look significant.
RUN_NOISE_FLOOR = 0.02
# Instructions per operation: the same count to within this between invocations (probes.instructions).
INSTRUCTIONS_NOISE_FLOOR = 0.001
# Benchmarks do not all answer a machine's slow spell alike (pure-Python code slowed 60% in one
# quiet invocation of the real-run corpus while hashing and memory copies did not move): the
# larger the suite-wide shift taken out, the less any one benchmark's share of it is known. Only
# for noise measured elsewhere (history, calibration, also when widened to the suite's spread):
# a spread taken from the pair's own suite alone already shows how differently it moved. The
# corpus figures below were measured with exactly this rule.
# Half the shift as an SD: on the corpus of 2026-12-02 (10 x 5) it cut false alarms with history
# from 3.3% to 1.4% at the same detection of +20% (28%), after the burst widening (noise.py).
SHIFT_RESPONSE_SD = 0.5
MAD_EFFICIENCY = 0.37  # a MAD-based variance is worth about 37% of the degrees of freedom of a sample variance


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
    # instructions per operation repeat to a fraction of a percent whatever the load, so a 2%
    # change is already a finding (a regression of no severity); a level fails from 5% on
    "instructions": Thresholds(0.05, 0.10, 0.25),
}


@dataclass(frozen=True)
class MetricSpec:
    """How one metric is compared: its threshold family, its scale and its centre.

    ``floor``: for linear metrics that can be zero (GC counts and pauses), relative changes are
    taken against max(|baseline|, floor), so 0 -> 0.001 collections per call is no "+100%"."""

    name: str
    family: str  # key into the thresholds mapping
    log_scale: bool
    unit_scale: float = 1.0  # divide raw values by this for absolute thresholds (bytes -> MiB)
    centre: Centre = "trimmed-mean"
    floor: float = 0.0
    noise_floor: float | None = None  # least SD between invocations a log-scale metric is given (None: RUN_NOISE_FLOOR)
    exact_when_constant: bool = True  # identical values on both sides: any difference is real


WALL_SPEC = MetricSpec("wall_s", "time", log_scale=True, centre="fastest-process")
CPU_SPEC = MetricSpec("cpu_s", "time", log_scale=True, centre="fastest-process")
COMPARED_METRICS: tuple[MetricSpec, ...] = (
    WALL_SPEC,
    CPU_SPEC,
    MetricSpec("rss_peak_bytes", "memory", log_scale=False, unit_scale=MIB),
    MetricSpec("tracemalloc_peak_bytes", "memory", log_scale=False, unit_scale=MIB),
    MetricSpec("gc_pause_s", "gc", log_scale=False, floor=20e-6),
    MetricSpec("gc_collections", "gc", log_scale=False, floor=0.01),
    # Not exact when constant: two checkouts of identical code may differ by a handful of
    # instructions per operation (paths, layouts), which is no regression.
    MetricSpec("instructions", "instructions", log_scale=True, noise_floor=INSTRUCTIONS_NOISE_FLOOR,
               exact_when_constant=False),
)
SPECS: Mapping[str, MetricSpec] = {spec.name: spec for spec in COMPARED_METRICS}


def spec_for(metric: str) -> MetricSpec:
    return SPECS.get(metric, MetricSpec(metric, "time", log_scale=True))


@dataclass(frozen=True)
class Side:
    """One side of a comparison: values with the worker process each came from, and which
    samples are left out of the centre (descheduled samples of a wall-time series)."""

    values: Sequence[float]
    processes: Sequence[int]
    excluded: Sequence[bool] = ()

    def process_groups(self) -> list[np.ndarray]:
        groups: dict[int, list[float]] = {}
        dropped: dict[int, list[float]] = {}
        excluded = self.excluded or (False,) * len(self.values)
        for value, process, out in zip(self.values, self.processes, excluded, strict=True):
            (dropped if out else groups).setdefault(process, []).append(value)
            groups.setdefault(process, [])
        # A process keeps its excluded samples when too few clean ones remain to summarise it.
        return [np.asarray(v if len(v) >= 3 else v + dropped.get(p, []), dtype=float) for p, v in sorted(groups.items())]


@dataclass(frozen=True)
class RunStatistics:
    """What one run contributes to later comparisons' history, in the comparison's scale."""

    centre: float
    centre_variance: float  # of the centre, from this run's own processes (or samples, with one process)
    processes: int
    invocation: str = ""  # the `benchtrack run` it belongs to: benchmarks of one invocation shift together


@dataclass(frozen=True)
class RunNoise:
    """Variance of one whole invocation's centre around the benchmark's long-run centre, beyond
    what its own processes show: machine state, neighbours, the invocation as a whole."""

    variance: float
    df: float
    source: str  # "history" | "calibration" | "suite" | "prior"


@dataclass(frozen=True)
class History:
    """Earlier comparable runs of the benchmark (same machine fingerprint, branch, level and
    loop counts, after the last change point), newest first."""

    runs: Sequence[RunStatistics] = ()

    @property
    def usable(self) -> bool:
        """Enough runs to measure the noise between invocations. A run of one process is one draw
        of the speed modes, so such runs (pytest-benchmark files) need twice as many."""
        needed = MIN_HISTORY_RUNS if any(r.processes >= 2 for r in self.runs) else 2 * MIN_HISTORY_RUNS
        return len(self.runs) >= needed

    def pooled_process_variance(self) -> tuple[float, float] | None:
        """(variance between processes, degrees of freedom) pooled over runs with two or more
        processes (for centres that are a mean of processes)."""
        usable = [r for r in self.runs if r.processes >= 2]
        df = float(sum(r.processes - 1 for r in usable))
        if df < 2:
            return None
        return sum((r.processes - 1) * r.centre_variance * r.processes for r in usable) / df, df


MIN_HISTORY_RUNS = 6  # with 4 runs of history, pyperf and pytest-benchmark files of the real-run corpus false-alarmed 5-11%


@dataclass(frozen=True)
class ComparisonSettings:
    alpha: float = 0.01  # false-discovery rate across all comparisons of one run
    # between-run spread assumed when nothing measures it, by threshold family: times and GC
    # wide (the noisiest benchmarks of the real-run corpus moved ~8% between invocations), peak
    # memory narrow (it moved ~1%)
    prior_cv: Mapping[str, float] = field(default_factory=lambda: {"time": 0.10, "gc": 0.10, "memory": 0.01,
                                                                   "instructions": 0.002})
    prior_df: float = 4.0
    thresholds: Mapping[str, Thresholds] = field(default_factory=lambda: dict(DEFAULT_THRESHOLDS))


@dataclass(frozen=True)
class Comparison:
    benchmark: str
    metric: str
    verdict: Verdict
    severity: Severity
    change: float  # relative point estimate: +0.10 = 10% slower or larger
    ci_low: float
    ci_high: float
    p_value: float  # raw two-sided p-value
    p_adjusted: float  # after Benjamini-Hochberg over the run's comparisons
    baseline_centre: float
    candidate_centre: float
    absolute_change: float  # in the metric's threshold unit (MiB for memory, else the raw unit)
    spread_source: str  # within-run source / between-run source, e.g. "processes/history"
    baseline_processes: int
    candidate_processes: int
    notes: tuple[str, ...] = ()
    shift: float = 0.0  # relative suite-wide shift taken out of the change (0 when none)
    df: float = math.inf
    run_noise_share: float = 0.0  # fraction of the variance that is noise between invocations (contention included)

    @property
    def undecided_slowdown(self) -> bool:
        """An inconclusive verdict whose point estimate is a slowdown: never to pass in silence."""
        return self.verdict == "inconclusive" and self.change > 0 and self.ci_high > 0


# -- centres ------------------------------------------------------------------------------------

def trimmed_mean(values: np.ndarray, proportion: float = TRIM) -> float:
    """Mean after cutting ``proportion`` off each end (scipy's trim_mean)."""
    return float(scipy_stats.trim_mean(values, proportion))


def low_quantile(values: np.ndarray, q: float = LOW_QUANTILE) -> float:
    """What the code costs when nothing else gets in the way: a low quantile of a process's samples."""
    return float(np.quantile(values, q))


def process_centres(side: Side, log_scale: bool, centre: Centre = "trimmed-mean") -> np.ndarray:
    estimator = low_quantile if centre == "fastest-process" else trimmed_mean
    groups = [np.log(g) if log_scale else g for g in side.process_groups()]
    return np.array([estimator(g) for g in groups])


@dataclass(frozen=True)
class SideEstimate:
    centre: float
    variance: float  # of the centre, from this run alone
    df: float
    processes: int
    kind: str  # "processes" | "samples" (one process)


def estimate_side(side: Side, spec: MetricSpec, log_scale: bool) -> SideEstimate:
    """The side's centre and this run's own uncertainty about it."""
    centres = process_centres(side, log_scale, spec.centre)
    count = len(centres)
    if count < 2:
        return SideEstimate(float(centres[0]), _one_process_variance(side, log_scale), max(1.0, len(side.values) - 1.0),
                            1, "samples")
    if spec.centre == "fastest-process":
        fastest = int(np.argmin(centres))
        samples = side.process_groups()[fastest]
        return SideEstimate(float(centres[fastest]), _low_quantile_variance(samples, log_scale),
                            max(1.0, len(samples) - 1.0), count, "processes")
    return SideEstimate(float(centres.mean()), float(centres.var(ddof=1)) / count, count - 1.0, count, "processes")


def _low_quantile_variance(samples: np.ndarray, log_scale: bool) -> float:
    """Sampling variance of a process's LOW_QUANTILE: q(1-q) / (n f^2), f the density at the
    quantile for the process's robust spread (normal shape). A process whose samples scatter
    (GC pauses, interrupts) pins its low quantile down less well."""
    values = np.log(samples) if log_scale else samples
    spread = float(scipy_stats.median_abs_deviation(values, scale="normal"))
    density = float(scipy_stats.norm.pdf(scipy_stats.norm.ppf(LOW_QUANTILE)))
    return LOW_QUANTILE * (1.0 - LOW_QUANTILE) * spread**2 / (len(values) * density**2)


def run_statistics(side: Side, log_scale: bool, centre: Centre = "trimmed-mean", invocation: str = "") -> RunStatistics:
    log_scale = log_scale and min(side.values) > 0
    estimate = estimate_side(side, MetricSpec("", "", log_scale, centre=centre), log_scale)
    return RunStatistics(estimate.centre, estimate.variance, estimate.processes, invocation)


def _one_process_variance(side: Side, log_scale: bool) -> float:
    """Variance of a one-process side's centre from its own samples: robust spread, as for a median."""
    values = np.log(np.asarray(side.values, dtype=float)) if log_scale else np.asarray(side.values, dtype=float)
    spread = float(scipy_stats.median_abs_deviation(values, scale="normal"))
    return (math.pi / 2.0) * spread**2 / max(len(values), 1)


@dataclass(frozen=True)
class Term:
    """One independently estimated part of the variance of a difference."""

    variance: float
    df: float


def within_terms(base: SideEstimate, cand: SideEstimate, history: History, centre: Centre) -> tuple[list[Term], str]:
    """This run's own uncertainty of cand - base. For a mean of processes with history, one
    process variance is pooled from both sides and the history and counted once (it is one
    estimate, not two)."""
    pooled = history.pooled_process_variance()
    both = base.kind == cand.kind == "processes"
    if centre != "fastest-process" and pooled is not None and both:
        own_df = (base.processes - 1.0, cand.processes - 1.0)
        df = pooled[1] + sum(own_df)
        own = own_df[0] * base.variance * base.processes + own_df[1] * cand.variance * cand.processes
        variance = (pooled[0] * pooled[1] + own) / df
        return [Term(variance * (1.0 / base.processes + 1.0 / cand.processes), df)], "processes+history"
    return [Term(base.variance, base.df), Term(cand.variance, cand.df)], "+".join(sorted({base.kind, cand.kind}))


def welch_satterthwaite(terms: Sequence[Term]) -> float:
    """Degrees of freedom of a sum of independent variance estimates; every part with its own df,
    so the between-run part (few runs) keeps the df small exactly when it dominates."""
    total = sum(t.variance for t in terms)
    denominator = sum(t.variance**2 / t.df for t in terms if t.variance > 0 and math.isfinite(t.df))
    if total <= 0 or denominator <= 0:
        return math.inf
    return max(1.0, total**2 / denominator)


def history_run_noise(history: History, centre: Centre = "trimmed-mean") -> RunNoise | None:
    """Between-run variance from the history: the spread of the run centres (after each
    invocation's shift is taken out, when the history says which invocation a run belonged to)
    beyond what the process noise alone explains. Outlying runs (_typical_runs) are left out,
    so one regressed run on the branch does not hide the same regression later."""
    if not history.usable:
        return None
    kept = _typical_runs(history, centre)
    if len(kept) < MIN_HISTORY_RUNS:
        centres = np.array([r.centre for r in history.runs])
        scale = float(scipy_stats.median_abs_deviation(centres, scale="normal"))
        return RunNoise(scale**2, max(1.0, MAD_EFFICIENCY * (len(centres) - 1)), "history")
    spread = float(np.var([r.centre for r in kept], ddof=1))
    if centre == "fastest-process":  # its comparisons add no within-run part: the spread is all of it
        return RunNoise(spread, len(kept) - 1.0, "history")
    within = float(np.mean([r.centre_variance for r in kept]))
    return RunNoise(max(0.0, spread - within), len(kept) - 1.0, "history")


OUTLYING_RUN_MADS = 5.0


# Worker processes of pure-Python benchmarks land in speed modes up to 1.7x apart, and now and
# then every process of a run lands in a slow one (real-run corpus, 2026-12-02: cpu.arith ran
# 190 us or 310-345 us per call, all five processes slow in 2 of 10 quiet runs). Such a run is
# the noise's heavy tail, not a change: history keeps every run within a factor of 2 of its
# median, whatever the MADs say; dropping them (5 MADs) false-alarmed on 8.7% of the quiet
# identical-code comparisons with history, keeping them on 2.7%.
MODE_JUMP_LOG = math.log(2.0)


def _typical_runs(history: History, centre: Centre = "trimmed-mean") -> list[RunStatistics]:
    """The history without its outlying runs: beyond OUTLYING_RUN_MADS scaled MADs and, for
    times, beyond a factor of 2 (a regressed run that landed on the branch, not a slow mode)."""
    centres = np.array([r.centre for r in history.runs])
    median = float(np.median(centres))
    scale = float(scipy_stats.median_abs_deviation(centres, scale="normal"))
    bound = max(OUTLYING_RUN_MADS * scale, MODE_JUMP_LOG if centre == "fastest-process" else 0.0)
    if bound <= 0:
        return list(history.runs)
    return [r for r, c in zip(history.runs, centres, strict=True) if abs(c - median) <= bound]


@dataclass(frozen=True)
class PooledBaseline:
    """The baseline's centre averaged with its history's (each earlier run brought to the
    baseline invocation's level): the baseline side then carries 1/runs of one run's noise
    between invocations instead of all of it. The candidate is still one run."""

    centre: float  # log scale, at the baseline invocation's level
    runs: int
    offset_variance: float = 0.0  # of the history runs' shared move to the baseline's level, in the centre
    # The baseline stands apart from its history: ``centre`` is then the history's alone, and a
    # change must show against the baseline run and against the history both (compare_metric).
    apart: bool = False

POOL_CONSISTENCY_SDS = 2.5  # a baseline further than this from its history is not pooled with it


def pool_with_history(base_centre: float, history: History, offset: float, noise: RunNoise,
                      offset_variance: float = 0.0) -> PooledBaseline | None:
    """Pool the baseline run with its history when they agree. ``offset``: the baseline
    invocation's suite-wide level against the history's (suite_offset); ``noise``: the
    history's spread of one run. A baseline that stands apart from its history (promoted long
    ago, a run in a slow mode, or the first run of changed code) is not pooled, so pooling never
    blends two levels: it comes back ``apart``, holding the history's centre."""
    centres = np.array([r.centre + offset for r in _typical_runs(history, "fastest-process")])
    if len(centres) < MIN_HISTORY_RUNS or noise.source != "history":
        return None
    sd = math.sqrt(max(noise.variance, RUN_NOISE_FLOOR**2) * (1.0 + 1.0 / len(centres)))
    if abs(base_centre - float(centres.mean())) > POOL_CONSISTENCY_SDS * sd:
        return PooledBaseline(float(centres.mean()), len(centres), offset_variance, apart=True)
    weight = len(centres) / (len(centres) + 1.0)  # the history's share of the pooled centre carries the offset's error
    return PooledBaseline(float((centres.sum() + base_centre) / (len(centres) + 1)), len(centres) + 1,
                          weight**2 * offset_variance)


@dataclass(frozen=True)
class Shift:
    """The suite-wide shift of one metric between the two invocations: the median change of
    all its benchmarks. Taken out of every benchmark's change, since a whole invocation runs
    slower or faster together; reported, since it is as likely the machine as the code."""

    log_shift: float
    variance: float
    df: float
    benchmarks: int
    moved_together: int  # benchmarks that moved the same way by more than 2%


def compare_metric(benchmark: str, spec: MetricSpec, baseline: Side, candidate: Side,
                   settings: ComparisonSettings, history: History | None = None,
                   run_noise: RunNoise | None = None, shift: Shift | None = None,
                   contention_variance: float = 0.0, pooled: PooledBaseline | None = None) -> Comparison:
    """Compare one metric; the verdict is provisional until adjust_for_multiplicity runs.
    ``contention_variance``: extra noise of sides measured under contention (log scale);
    ``pooled``: the baseline's centre pooled with its history (pool_with_history)."""
    history = history or History()
    _check_finite(benchmark, spec.name, baseline.values, candidate.values)
    if pooled is not None and pooled.apart:
        arguments = (benchmark, spec, baseline, candidate, settings, history, run_noise, shift, contention_variance)
        return _against_both(compare_metric(*arguments, None), compare_metric(*arguments, replace(pooled, apart=False)),
                             settings, spec)
    log_scale = spec.log_scale and min(*baseline.values, *candidate.values) > 0
    base, cand = estimate_side(baseline, spec, log_scale), estimate_side(candidate, spec, log_scale)
    terms, within_source = within_terms(base, cand, history, spec.centre)
    noise = run_noise or history_run_noise(history, spec.centre) or _prior(settings, spec, base.centre, log_scale)
    floor = RUN_NOISE_FLOOR if spec.noise_floor is None else spec.noise_floor
    if log_scale and noise.variance < floor**2:
        noise = replace(noise, variance=floor**2)
    measured = noise.source.split("+")[0]  # history or calibration, perhaps widened to the suite's spread
    if spec.centre == "fastest-process" and measured in ("history", "calibration"):
        # The spread of earlier runs' fastest processes already holds each run's sampling noise;
        # only a pooled (suite) or assumed (prior) spread needs this run's own added.
        terms = [Term(0.0, t.df) for t in terms]
    runs_in_baseline = 1
    if pooled is not None and log_scale and spec.centre == "fastest-process" and measured == "history":
        base, runs_in_baseline = replace(base, centre=pooled.centre), pooled.runs
    between = Term((1.0 + 1.0 / runs_in_baseline) * noise.variance, noise.df)
    if runs_in_baseline > 1 and pooled is not None and pooled.offset_variance > 0:
        terms.append(Term(pooled.offset_variance, math.inf))
    terms.append(between)
    if contention_variance > 0 and log_scale:
        terms.append(Term(contention_variance, math.inf))
    taken_out = 0.0
    if shift is not None and log_scale:
        taken_out = shift.log_shift
        terms.append(Term(shift.variance, shift.df))
        if measured in ("history", "calibration"):  # the suite's own spread already holds this pair's
            terms.append(Term((SHIFT_RESPONSE_SD * shift.log_shift) ** 2, math.inf))
    difference = cand.centre - base.centre - taken_out
    thresholds = settings.thresholds[spec.family]
    variance = sum(t.variance for t in terms)
    if (spec.exact_when_constant and _constant(baseline) and _constant(candidate)) or variance <= 0.0:
        return _exact(benchmark, spec, base, cand, difference, log_scale, thresholds)
    df = welch_satterthwaite(terms)
    se = math.sqrt(variance)
    p_value = float(2.0 * scipy_stats.t.sf(abs(difference / se), df))
    half_width = float(scipy_stats.t.ppf(1.0 - settings.alpha / 2.0, df)) * se
    denominator = _denominator(spec, base.centre, log_scale)
    change, ci_low, ci_high = (_relative(x, denominator, log_scale) for x in (difference, difference - half_width,
                                                                                difference + half_width))
    base_natural = _natural(base.centre, log_scale)
    comparison = Comparison(
        benchmark=benchmark, metric=spec.name, verdict="inconclusive", severity="none", change=change,
        ci_low=ci_low, ci_high=ci_high, p_value=p_value, p_adjusted=p_value,
        baseline_centre=base_natural, candidate_centre=_natural(cand.centre, log_scale),
        absolute_change=(change * base_natural if log_scale else difference) / spec.unit_scale,
        spread_source=f"{within_source}/{noise.source}" + (f"+pooled{runs_in_baseline}" if runs_in_baseline > 1 else ""),
        baseline_processes=base.processes, candidate_processes=cand.processes,
        shift=math.expm1(taken_out), df=df, run_noise_share=(between.variance + contention_variance) / variance,
    )
    return decide(comparison, settings.alpha, thresholds, spec.unit_scale)


def _against_both(alone: Comparison, history: Comparison, settings: ComparisonSettings, spec: MetricSpec) -> Comparison:
    """The baseline run stands apart from its history: a slow-mode run of unchanged code, or
    the first run of code that changed. Either may be true, so a change must show against both
    references (an intersection-union test: the larger p-value, the union of the intervals); the
    point estimate stays the one against the baseline run. On the real-run corpus a baseline
    run 25-30% slow in one benchmark, judged against itself alone, called every later run of
    identical code an improvement."""
    agree = (alone.change > 0) == (history.change > 0)
    offset = alone.baseline_centre / history.baseline_centre - 1.0 if history.baseline_centre else 0.0
    note = (f"the baseline run stands {offset:+.1%} apart from its history: a change must show against both "
            f"(against the history: {history.change:+.1%})")
    combined = replace(alone, p_value=max(alone.p_value, history.p_value) if agree else 1.0,
                       ci_low=min(alone.ci_low, history.ci_low), ci_high=max(alone.ci_high, history.ci_high),
                       spread_source=f"{alone.spread_source}+apart", notes=(*alone.notes, note))
    combined = replace(combined, p_adjusted=combined.p_value)
    return decide(combined, settings.alpha, settings.thresholds[spec.family], spec.unit_scale)


def _constant(side: Side) -> bool:
    """Deterministic values (counts that never vary): there is no noise to model."""
    return len(side.values) >= 2 and min(side.values) == max(side.values)


def _prior(settings: ComparisonSettings, spec: MetricSpec, centre: float, log_scale: bool) -> RunNoise:
    """Nothing measured the noise between runs: a deliberately wide prior, so the verdict is
    inconclusive rather than a guess."""
    cv = settings.prior_cv.get(spec.family, max(settings.prior_cv.values()))
    sd = cv if log_scale else cv * max(abs(centre), spec.floor)
    return RunNoise(sd**2, settings.prior_df, "prior")


def _denominator(spec: MetricSpec, base_centre: float, log_scale: bool) -> float:
    return base_centre if log_scale else max(abs(base_centre), spec.floor)


def decide(comparison: Comparison, alpha: float, thresholds: Thresholds, unit_scale: float = 1.0) -> Comparison:
    """Verdict from the (adjusted) p-value and the interval; severity from the interval's near
    end, so noise never lifts a change into a higher severity than the data support."""
    significant = comparison.p_adjusted < alpha
    if significant and comparison.change > 0:
        return replace(comparison, verdict="regression", severity=_severity(comparison, thresholds))
    if significant and comparison.change < 0:
        return replace(comparison, verdict="improvement", severity="none")
    if _within_noise_band(comparison, thresholds, unit_scale):
        return replace(comparison, verdict="unchanged", severity="none")
    return replace(comparison, verdict="inconclusive", severity="none")


def _severity(comparison: Comparison, thresholds: Thresholds) -> Severity:
    """The highest threshold the whole interval clears ("none": a real change below every threshold)."""
    if thresholds.scale == "absolute":
        scale = comparison.absolute_change / comparison.change if comparison.change else 0.0
        return thresholds.severity(comparison.ci_low * scale)
    return thresholds.severity(comparison.ci_low)


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
    """Benjamini-Hochberg over one run's comparisons of each threshold family, then verdicts
    re-decided, each with the thresholds ``thresholds_for`` gives its benchmark (default: the
    settings').

    One family per question the suite is asked (is any time worse: wall and CPU time together;
    is any memory worse; any GC worse): pooling them all made the memory and GC comparisons,
    nearly all null, dilute the times' evidence."""
    adjusted = [0.0] * len(comparisons)
    for name in dict.fromkeys(spec_for(c.metric).family for c in comparisons):
        family = [i for i, c in enumerate(comparisons) if spec_for(c.metric).family == name]
        for i, p in zip(family, benjamini_hochberg([comparisons[i].p_value for i in family]), strict=True):
            adjusted[i] = p
    result = []
    for comparison, p_adjusted in zip(comparisons, adjusted, strict=True):
        if comparison.spread_source == "exact":
            result.append(comparison)
            continue
        spec = spec_for(comparison.metric)
        thresholds = thresholds_for(comparison) if thresholds_for else settings.thresholds
        updated = replace(comparison, p_adjusted=p_adjusted)
        result.append(decide(updated, settings.alpha, thresholds[spec.family], spec.unit_scale))
    return result


def benjamini_hochberg(p_values: Sequence[float]) -> list[float]:
    """Step-up adjusted p-values (scipy's false_discovery_control)."""
    if len(p_values) == 0:
        return []
    return [float(p) for p in scipy_stats.false_discovery_control(np.asarray(p_values, dtype=float), method="bh")]


def _exact(benchmark: str, spec: MetricSpec, base: SideEstimate, cand: SideEstimate, difference: float,
           log_scale: bool, thresholds: Thresholds) -> Comparison:
    """No spread at all (e.g. deterministic counts): any difference is real."""
    change = _relative(difference, _denominator(spec, base.centre, log_scale), log_scale)
    base_natural = _natural(base.centre, log_scale)
    absolute = (change * base_natural if log_scale else difference) / spec.unit_scale
    verdict: Verdict = "unchanged" if difference == 0 else ("regression" if difference > 0 else "improvement")
    growth = absolute if thresholds.scale == "absolute" else change
    severity: Severity = thresholds.severity(growth) if verdict == "regression" else "none"
    return Comparison(
        benchmark=benchmark, metric=spec.name, verdict=verdict, severity=severity, change=change,
        ci_low=change, ci_high=change, p_value=0.0 if difference else 1.0, p_adjusted=0.0 if difference else 1.0,
        baseline_centre=base_natural, candidate_centre=_natural(cand.centre, log_scale),
        absolute_change=absolute, spread_source="exact",
        baseline_processes=base.processes, candidate_processes=cand.processes,
    )


MAX_LOG_CHANGE = 50.0  # e^50: beyond any real change; keeps absurd spreads finite


def _relative(difference: float, denominator: float, log_scale: bool) -> float:
    if log_scale:
        return math.expm1(max(-MAX_LOG_CHANGE, min(MAX_LOG_CHANGE, difference)))
    return difference / denominator if denominator else (0.0 if difference == 0 else math.copysign(1.0, difference))


def _natural(centre: float, log_scale: bool) -> float:
    return math.exp(centre) if log_scale else centre


def _check_finite(benchmark: str, metric: str, *series: Sequence[float]) -> None:
    for values in series:
        if len(values) == 0:
            raise ValueError(f"{benchmark}: no {metric} samples on one side")
        if not all(math.isfinite(v) for v in values):
            raise ValueError(f"{benchmark}: {metric} holds a non-finite value")
