"""Change points in a benchmark's history (pure): a landed 10% speed-up is a step, not noise,
and the history a comparison uses starts after the last step.

Histories of real benchmarks are log-times with 2-7% noise between runs and now and then one run
10-40% off (a busy machine, a speed mode). The detector is built for that:

1. Noise scale from the differences of neighbouring runs (MAD, then a winsorized sd): steps and
   slow drift hardly move it, a one-off spike cannot inflate it.
2. Spike screening: a run further than SPIKE_LIMIT noise sds from the median of its MEDIAN_SPAN
   neighbours is replaced by that median. A median over 5 runs keeps every segment of 3 or more runs
   and removes any excursion of 1-2 runs, so a single outlying run never makes a segment.
3. Localised segmentation: at each candidate position, the mean of up to WINDOW runs after it
   against the mean of up to WINDOW runs before it (never across a change point already found),
   in units of the noise scale, with a t-distribution for the scale's uncertainty. The strongest
   candidate is a change point when its p-value, Bonferroni-corrected for the positions tried, is
   below alpha; then the next strongest, until none is. Comparing neighbouring windows rather
   than whole segments keeps slow drift from looking like steps: drifting by b per run moves two
   windows of W runs apart by only b*W.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as scipy_stats

MIN_SEGMENT = 3
# For showing a history: on the seeded corpus (experiments/self/bench_changepoints.py) it finds as
# many steps as Otava with a third of its false change points; verdicts cut history at 0.01.
ALPHA = 0.05
WINDOW = 8  # runs each side on the local scale: a 3-sd step gives z ~ 6 there
SCALES = ("window", "segment")  # each position is tested on both (Bonferroni counts both)
MEDIAN_SPAN = 5  # keeps segments of >= 3 runs (MIN_SEGMENT), removes excursions of 1-2 runs
SPIKE_LIMIT = 3.0  # noise sds from the local median; normal noise reaches it about once in 300 runs
MAD_TO_SD = 1.4826
DIFF_CLIP = 2.5  # the winsorized sd of differences clips at 2.5 robust sds...
DIFF_CLIP_VARIANCE = 0.97756  # ...which keeps this fraction of a normal variance (corrected for)
DOF_PER_DIFFERENCE = 2.0 / 3.0  # neighbouring differences share a run: (n - 1) of them carry ~2/3 as many dof


@dataclass(frozen=True)
class ChangePoint:
    """A step in a series: ``index`` is the first run of the new segment (oldest first)."""

    index: int
    before: float  # median of the segment before, in the series' own units (log values stay logs)
    after: float  # median of the segment after
    relative_change: float | None  # after vs before on the linear scale; None when before is 0
    p_value: float  # Bonferroni-corrected for the candidate positions


@dataclass(frozen=True)
class Segment:
    start: int
    stop: int  # exclusive
    centre: float  # median of the segment's values


@dataclass(frozen=True)
class _Candidate:
    index: int
    p_value: float


def change_points(values: Sequence[float], alpha: float = ALPHA, min_segment: int = MIN_SEGMENT,
                  window: int = WINDOW, log_scale: bool = False) -> tuple[ChangePoint, ...]:
    """Every change point of an oldest-first series, oldest first. ``log_scale``: the values are
    logarithms (history centres of times), so relative changes are exp(after - before) - 1."""
    x = np.asarray(values, dtype=float)
    positions = len(x) - 2 * min_segment + 1
    if positions < 1:
        return ()
    scale, dof = noise_scale(x)
    cleaned = screened(x, scale)
    tests = positions * len(SCALES)
    found: list[_Candidate] = []
    while (next_one := _next_change_point(cleaned, sorted(c.index for c in found), min_segment, window, scale, dof,
                                          tests, alpha)) is not None:
        found.append(next_one)
    return _described(x, sorted(found, key=lambda c: c.index), log_scale)


def last_segment_start(chronological: Sequence[float], alpha: float = 0.01, min_segment: int = MIN_SEGMENT) -> int:
    """Index (in oldest-first order) of the first run after the last change point (0: none)."""
    found = change_points(chronological, alpha, min_segment)
    return found[-1].index if found else 0


def segments(values: Sequence[float], points: Sequence[ChangePoint]) -> tuple[Segment, ...]:
    """The runs between change points, with their medians."""
    x = np.asarray(values, dtype=float)
    bounds = [0, *(p.index for p in points), len(x)]
    return tuple(Segment(a, b, float(np.median(x[a:b]))) for a, b in itertools.pairwise(bounds) if b > a)


def noise_scale(x: np.ndarray) -> tuple[float, float]:
    """(sd of one run's noise, its degrees of freedom), from neighbouring differences: a robust
    MAD first, then the sd of the differences winsorized at DIFF_CLIP of it (more efficient)."""
    differences = np.diff(x)
    if len(differences) == 0:
        return 0.0, 1.0
    centre = float(np.median(differences))
    mad = MAD_TO_SD * float(np.median(np.abs(differences - centre)))
    if mad == 0:
        mad = float(np.mean(np.abs(differences - centre))) * math.sqrt(math.pi / 2)
    clipped = np.clip(differences, centre - DIFF_CLIP * mad, centre + DIFF_CLIP * mad)
    spread = float(np.sqrt(np.mean((clipped - centre) ** 2) / DIFF_CLIP_VARIANCE))
    return spread / math.sqrt(2.0), max(1.0, DOF_PER_DIFFERENCE * len(differences))


def screened(x: np.ndarray, scale: float) -> np.ndarray:
    """The series with every run further than SPIKE_LIMIT noise sds from the median of its
    MEDIAN_SPAN neighbours replaced by that median (near the ends the span shifts inwards, so
    an excursion of the first or last two runs is screened too)."""
    span = min(MEDIAN_SPAN, len(x))
    starts = np.clip(np.arange(len(x)) - span // 2, 0, len(x) - span)
    medians = np.array([np.median(x[start: start + span]) for start in starts])
    return np.where(np.abs(x - medians) > SPIKE_LIMIT * scale, medians, x)


def _next_change_point(x: np.ndarray, found: list[int], min_segment: int, window: int, scale: float, dof: float,
                       tests: int, alpha: float) -> _Candidate | None:
    """The strongest candidate step that is significant and better explained by a step than by a
    straight line over the runs it was judged on (a drift is a line, not a step); None when the
    strongest remaining candidates are no longer significant."""
    drifting: list[tuple[int, int, int]] = []  # (scale, first, last + 1) of candidates a line explained
    for z, k, scale_index, start, stop in sorted(_candidates(x, found, min_segment, window, scale), reverse=True):
        p_value = min(1.0, float(2 * scipy_stats.t.sf(z, dof)) * tests)
        if p_value >= alpha:
            return None
        if any(s == scale_index and a <= k < b for s, a, b in drifting):
            continue  # trying its weaker neighbours until one passes by chance would undo the check
        if _step_beats_line(x[start:stop], k - start):
            return _Candidate(k, p_value)
        drifting.append((scale_index, k - window, k + window))
    return None


def _candidates(x: np.ndarray, found: list[int], min_segment: int, window: int,
                scale: float) -> list[tuple[float, int, int, int, int]]:
    """(standardised step, position, scale, first and last+1 run compared) at every position at
    least min_segment from a change point or an end, on both SCALES: WINDOW runs each side, and
    the whole segments either side."""
    bounds = [0, *found, len(x)]
    steps = []
    for lo, hi in itertools.pairwise(bounds):
        for k in range(lo + min_segment, hi - min_segment + 1):
            for scale_index, (start, stop) in enumerate(((max(lo, k - window), min(hi, k + window)), (lo, hi))):
                left, right = x[start:k], x[k:stop]
                step = abs(float(right.mean() - left.mean()))
                spread = scale * math.sqrt(1 / len(left) + 1 / len(right))
                z = step / spread if spread > 0 else (math.inf if step > 0 else 0.0)
                steps.append((z, k, scale_index, start, stop))
    return steps


def _step_beats_line(y: np.ndarray, split: int) -> bool:
    """The step is not a drift: two flat levels fit these runs better than one straight line,
    and a step fitted together with a common slope keeps at least half its size."""
    runs = np.arange(len(y), dtype=float)
    after = (runs >= split).astype(float)
    flat = np.column_stack([np.ones_like(runs), after])
    sloped = np.column_stack([np.ones_like(runs), runs, after])
    line = np.column_stack([np.ones_like(runs), runs])
    (_, step), step_residual = _least_squares(flat, y)
    (_, _, sloped_step), _ = _least_squares(sloped, y)
    _, line_residual = _least_squares(line, y)
    return step_residual < line_residual and sloped_step * step > 0 and abs(sloped_step) >= abs(step) / 2


def _least_squares(design: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
    coefficients = np.linalg.lstsq(design, y, rcond=None)[0]
    return coefficients, float(np.sum((y - design @ coefficients) ** 2))


def _described(x: np.ndarray, found: list[_Candidate], log_scale: bool) -> tuple[ChangePoint, ...]:
    bounds = [0, *(c.index for c in found), len(x)]
    points = []
    for i, candidate in enumerate(found):
        before = float(np.median(x[bounds[i]: bounds[i + 1]]))
        after = float(np.median(x[bounds[i + 1]: bounds[i + 2]]))
        points.append(ChangePoint(candidate.index, before, after, _relative(before, after, log_scale), candidate.p_value))
    return tuple(points)


def _relative(before: float, after: float, log_scale: bool) -> float | None:
    if log_scale:
        return math.expm1(after - before)
    return (after - before) / abs(before) if before else None
