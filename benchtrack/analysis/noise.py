"""Noise between whole invocations, estimated rather than assumed (pure).

A whole invocation runs slower or faster together, every benchmark with it. Two consequences:
- the median change of a suite's benchmarks between two invocations (the *suite-wide shift*) is
  mostly the machine, and is taken out of each benchmark's change and reported;
- what remains varies from benchmark to benchmark; its size comes from the best source there is:
  the benchmark's history (after the last change point, with each earlier invocation's own shift
  taken out), an A/A calibration of this machine, or the spread of the other benchmarks'
  changes in this very pair; a prior only when none of them exists.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
from scipy import stats

from benchtrack.analysis.compare import History, RunNoise, Shift

TRIM_SDS = 3.0
TRUNCATION_CORRECTION = 1.0 / 0.9733  # E[x^2 | |x| < 3 sd] = 0.9733 sd^2 for normal x
SHIFT_TRIM_SDS = 2.5
HALF_WIDTH_IN_SDS = 0.674  # half the width of the middle half of a normal distribution, in SDs
MIN_SUITE = 5  # benchmarks of one metric needed to estimate a shift and a spread from the suite
MOVED = 0.02  # a benchmark "moved" when its change exceeds 2%


@dataclass(frozen=True)
class PairedChange:
    """One benchmark's change between the two sides (log scale) and its within-run variance."""

    benchmark: str
    difference: float
    within_variance: float
    single_process: bool = False


def suite_shift(changes: Sequence[PairedChange]) -> Shift | None:
    """The median change of the benchmarks that moved together, and its uncertainty; None for
    suites too small to tell. The benchmarks that really changed (up to a third of a suite, as a
    commit may slow many) are trimmed off first, so they pull neither the shift nor the spread."""
    differences = np.array([c.difference for c in changes])
    if len(differences) < MIN_SUITE:
        return None
    kept = null_cluster(differences, SHIFT_TRIM_SDS, small_sample=False)
    if len(kept) < MIN_SUITE:
        return None
    median = float(np.median(kept))
    moved = int(max(np.sum(differences > MOVED), np.sum(differences < -MOVED))) if abs(median) > MOVED else 0
    # The variance of a median is 1 / (4 n f^2), f the density at the centre: set by the bulk of
    # the benchmarks, not by the few noisy ones in the tails, so the scale is a robust one (MAD).
    scale = float(stats.median_abs_deviation(kept, scale="normal"))
    variance = (math.pi / 2.0) * scale**2 / len(kept)
    return Shift(median, variance, max(1.0, len(kept) - 1.0), len(differences), moved)


def suite_run_noise(changes: Sequence[PairedChange], shift: Shift) -> RunNoise:
    """Between-run variance of one invocation from the spread of the other benchmarks' changes
    around the shift, the benchmarks that really changed trimmed off, less what their own
    within-run spread explains."""
    residuals = np.array([c.difference - shift.log_shift for c in changes])
    # One process a side (pytest-benchmark): each invocation is a single draw of the speed modes,
    # so a benchmark that jumped by a mode is noise, not a change to trim off.
    kept = residuals if any(c.single_process for c in changes) else null_cluster(residuals)
    within = float(np.median([c.within_variance for c in changes]))
    spread = float(np.mean((kept - np.median(kept)) ** 2)) * TRUNCATION_CORRECTION
    variance = max(0.0, (spread - within) / 2.0)  # floored per comparison (compare.RUN_NOISE_FLOOR)
    return RunNoise(variance, max(1.0, len(kept) - 1.0), "suite")


def null_cluster(values: np.ndarray, trim_sds: float = TRIM_SDS, small_sample: bool = True) -> np.ndarray:
    """The values that agree with the bulk. The bulk is found by the shortest interval holding
    half of the values (least median of squares): unlike the median and the MAD it is not
    dragged by a third of the values moving one way, as when a commit slows many benchmarks.
    Its half-width gives the scale (0.674 SD for normal noise); values beyond ``trim_sds`` of
    those SDs from its middle are dropped, once (trimming again would shrink to a tight core).
    A window of a third instead found a real pair's shift better (six changed and two jumped
    benchmarks of 16) but, in simulation, took a tight group of 5 of 12 benchmarks sharing a +12%
    regression for the machine's shift in 91% of trials (23% with half): half it stays.

    The shift is found with a tight trim (the changed benchmarks must not drag it: on the real-run
    corpus a looser one cut the detection of +20% changes with history from 60% to 47%); the
    noise with a loose one and the small-sample factor (a tight one under-estimates the spread of
    the unchanged benchmarks and false-alarms)."""
    if len(values) < 3:
        return values
    ordered = np.sort(values)
    size = len(ordered) // 2 + 1
    widths = ordered[size - 1 :] - ordered[: len(ordered) - size + 1]
    start = int(np.argmin(widths))
    centre = float((ordered[start] + ordered[start + size - 1]) / 2.0)
    # the shortest of many windows is short by chance too: Rousseeuw and Leroy's small-sample factor
    factor = 1.0 + 5.0 / (len(values) - 1) if small_sample else 1.0
    scale = float(widths[start]) / 2.0 / HALF_WIDTH_IN_SDS * factor
    if scale <= 0:
        return values
    return values[np.abs(values - centre) <= trim_sds * scale]




def without_invocation_shifts(histories: Mapping[str, History]) -> dict[str, History]:
    """Each earlier invocation's own suite-wide shift taken out of its runs' centres, so the
    history's spread is the benchmark's own noise (the shift of this pair is taken out too)."""
    centre_of = {name: float(np.median([r.centre for r in h.runs])) for name, h in histories.items() if h.runs}
    offsets: dict[str, list[float]] = {}
    for name, history in histories.items():
        for run in history.runs:
            if run.invocation:
                offsets.setdefault(run.invocation, []).append(run.centre - centre_of[name])
    shift_of = {inv: float(np.median(v)) for inv, v in offsets.items() if len(v) >= MIN_SUITE}
    return {
        name: History(tuple(replace(r, centre=r.centre - shift_of.get(r.invocation, 0.0)) for r in history.runs))
        for name, history in histories.items()
    }


def choose_run_noise(known: RunNoise | None, suite: RunNoise | None) -> RunNoise | None:
    """The benchmark's own measured noise (history, else calibration), widened to the suite's
    spread in this very pair when that is larger; without it, the suite's own spread, with its
    degrees of freedom capped: one pooled spread stands for benchmarks that differ in
    noisiness (GC-heavy and system-call benchmarks moved 3-4x more than the median one here),
    so its tails must be heavy.

    Why widen: noise between invocations comes in bursts. On the real-run corpus of 2026-12-02
    (10 processes x 5 samples, quiet machine) most invocations matched their history within 2%,
    but in four of nineteen a third of the benchmarks moved by 10-37% at once, and history of
    8-9 runs, which seldom holds such a burst, gave 6.9% false alarms. The other benchmarks of
    the same pair show the burst: judged with the larger of the two spreads, fewer (1.4% with the
    shift's uncertainty, compare.SHIFT_RESPONSE_SD). The widened noise stays the history's in
    kind: it replaces the spread of whole earlier runs, which already held their sampling
    noise, so no within-run part is added to it. The suite's figure is net of its benchmarks'
    own sampling spread, so widening errs on the side of happening too seldom."""
    if known is not None and suite is not None and suite.variance > known.variance:
        return RunNoise(suite.variance, min(suite.df, SUITE_ONLY_DF), f"{known.source}+suite")
    if known is not None:
        return known
    return None if suite is None else replace(suite, df=min(suite.df, SUITE_ONLY_DF))


SUITE_ONLY_DF = 10.0


def suite_offset(baseline_centres: Mapping[str, float], histories: Mapping[str, History]) -> tuple[float, float] | None:
    """How far the baseline invocation as a whole sits from its history's level (median over
    the benchmarks of baseline centre minus the history's median centre), and the variance of
    that median; None when too few benchmarks have history to tell."""
    gaps = np.array([centre - float(np.median([r.centre for r in histories[name].runs]))
                     for name, centre in baseline_centres.items() if histories.get(name) and histories[name].runs])
    if len(gaps) < MIN_SUITE:
        return None
    scale = float(stats.median_abs_deviation(gaps, scale="normal"))
    return float(np.median(gaps)), (math.pi / 2.0) * scale**2 / len(gaps)
