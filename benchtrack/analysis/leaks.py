"""Is memory leaking? A trend verdict on one memory series (pure: numbers in, a frozen record out).

Input: timestamps in seconds and memory in bytes (RSS of a watched process, a container's usage,
the samples of a leak benchmark), optionally the cumulative operation count at each sample. No
I/O, no clock, no randomness. "MB" here is MiB (1,048,576 bytes), as in the memory thresholds of
:mod:`benchtrack.analysis.compare`.

Why this method
---------------
Simulated 30-minute series with warm-up and an allocator sawtooth (FIELD_NOTES "Leak trends"):
ordinary least squares over the whole run flags every clean series (the warm-up ramp alone makes
a slope). Theil-Sen after discarding the warm-up, with its confidence bound above zero, gives no
false alarms on clean series, but a one-off retention step (memory jumps once, then stays flat)
still passes about 80 % of the time: a single jump makes every pair of samples across it slope
upwards. So the slope must also *persist*.

How a series is judged
----------------------
1. Warm-up: the first ``max(warmup_fraction * duration, min_warmup_s)`` seconds are discarded.
   With fewer than ``MIN_SAMPLES`` samples left there is no verdict (not detected, NaN numbers).
2. Slope: Theil-Sen (``scipy.stats.theilslopes``) of MB against minutes, with its 95 % confidence
   interval (``CI_LEVEL``). Long series are thinned evenly to ``MAX_THEIL_SEN_POINTS`` first
   (the estimator is O(n^2) in time and memory); thinning only widens the interval.
3. Trend test: Mann-Kendall (:func:`mann_kendall`, pymannkendall's original test), one-sided
   for an increase, with the tie-corrected variance and the continuity correction; thinned
   evenly to ``MAX_MANN_KENDALL_POINTS``.
4. Persistence, both of:
   - halves: the analysed span is cut in two at its middle time; each half's Theil-Sen slope must
     be at least ``PERSIST_FRACTION`` of the overall slope. A step leaves one half flat, a cache
     that fills then plateaus leaves the second half flat.
     (Why not "each half's CI lower bound > 0"? It asks for significance, not size: a cache that
     fills exponentially and plateaus by 60 % of a 30-minute run still creeps enough in the second
     half to pass it in every simulated series.)
   - floor: the span is cut into ``2 * FLOOR_WINDOWS_PER_HALF`` windows of equal time; the minimum
     of each window (the bottom of an allocator or GC sawtooth) is a floor point, and each half's
     Theil-Sen slope of its floor points must also reach ``PERSIST_FRACTION`` of the overall
     slope. A sawtooth's peaks move with its phase, its floor does not.
5. Detected when all hold: Mann-Kendall p < ``alpha``; CI lower bound > 0; persistent; and either
   the projected growth reaches ``minor_mb`` or the run is long (``duration_s >= long_run_s``)
   and the slope reaches ``rate_flag_mb_per_min``.
6. Growth is the slope projected over the analysed span (last minus first post-warm-up time),
   not end minus start, so one spike at either end does not move it. Severity compares it with
   minor / major / critical; a leak flagged by its rate alone is at least "minor". Not detected
   means severity "none", whatever the growth.
7. Operations (cumulative counts): Theil-Sen of MB against the operation count over the same
   post-warm-up samples, times 1,000: MB per 1,000 operations (None without operations, or when
   the count does not move after warm-up). It describes the leak; it does not decide it.

Measured on the synthetic series of tests/test_leaks.py (page-rounded RSS, jitter, spikes,
warm-up, sawtooths): no false alarm on 200 clean 30-minute series, 100 sawtooths (30 MB, 20 s),
100 caches that plateau, 100 warm-up ramps, and 100 one-off 25 MB steps at mid-run (all 100 of
which would be flagged without the persistence check). Detected: every one of 200 leaks of
2 MB/min over 10 minutes (slope within 1.5 %, 95 % CI coverage 97 %), 100 of 0.5 MB/min over
30 minutes, and 100 of 3 MB/min under a 30 MB sawtooth (slope within 8 %).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from scipy import stats

MIB = 1024.0 * 1024.0
CI_LEVEL = 0.95  # confidence of the Theil-Sen intervals
MIN_SAMPLES = 8  # fewer post-warm-up samples: no verdict
MIN_HALF_SAMPLES = 3  # a half with fewer samples cannot show persistence
PERSIST_FRACTION = 0.5  # each half (series and floor) must rise at least this share of the overall slope
FLOOR_WINDOWS_PER_HALF = 6  # floor windows in each half of the analysed span (fewer on short series)
MAX_THEIL_SEN_POINTS = 1000  # Theil-Sen is O(n^2): ~40 ms at 1,000 points, ~140 ms at 2,000 here
MAX_MANN_KENDALL_POINTS = 2000  # Mann-Kendall is O(n^2) too

Severity = Literal["critical", "major", "minor", "none"]
_FloatArray = np.ndarray[Any, np.dtype[np.float64]]
# Sequences of numbers, or numpy arrays of them (what monitors and loaders usually hand over).
SeriesLike = Sequence[float] | np.ndarray[Any, Any]


@dataclass(frozen=True)
class LeakThresholds:
    """Seed defaults; callers load them from config. Growth bounds in MB (MiB)."""

    minor_mb: float = 5.0
    major_mb: float = 20.0
    critical_mb: float = 50.0
    rate_flag_mb_per_min: float = 1.0  # above this slope a long run is flagged even if total growth is small
    long_run_s: float = 600.0  # what counts as a long run for the rate flag

    def __post_init__(self) -> None:
        values = (self.minor_mb, self.major_mb, self.critical_mb, self.rate_flag_mb_per_min, self.long_run_s)
        if not all(math.isfinite(v) for v in values):
            raise ValueError("leak thresholds must be finite")
        if not 0 < self.minor_mb <= self.major_mb <= self.critical_mb:
            raise ValueError(f"leak thresholds need 0 < minor <= major <= critical, got {self.minor_mb}, "
                             f"{self.major_mb}, {self.critical_mb}")
        if self.rate_flag_mb_per_min <= 0 or self.long_run_s < 0:
            raise ValueError("rate_flag_mb_per_min must be > 0 and long_run_s >= 0")

    def severity(self, growth_mb: float) -> Severity:
        """The severity a growth of ``growth_mb`` reaches (bounds inclusive); "none" below minor."""
        if growth_mb >= self.critical_mb:
            return "critical"
        if growth_mb >= self.major_mb:
            return "major"
        if growth_mb >= self.minor_mb:
            return "minor"
        return "none"


@dataclass(frozen=True)
class LeakVerdict:
    detected: bool
    severity: Severity  # "critical" | "major" | "minor" | "none" ("none" whenever not detected)
    slope_mb_per_min: float  # Theil-Sen over the post-warm-up series (NaN: too few samples)
    ci_low: float  # 95 % CI of the slope, MB/min
    ci_high: float
    growth_mb: float  # the slope projected over the analysed (post-warm-up) span
    mb_per_1000_ops: float | None  # when operation counts are given and move after warm-up
    mann_kendall_p: float  # one-sided (increasing), tie-corrected, continuity-corrected
    persistent: bool  # both halves and the floor of both halves rise with the overall slope
    warmup_s: float  # discarded warm-up
    samples: int  # samples analysed (after warm-up)
    duration_s: float  # span of the whole series, warm-up included
    reasons: tuple[str, ...]  # human lines explaining the decision


@dataclass(frozen=True)
class MannKendall:
    """Mann-Kendall trend test of values against time (or sample order)."""

    s: int  # sum over pairs i < j of sign(t_j - t_i) * sign(x_j - x_i)
    variance: float  # variance of S under no trend, corrected for ties
    z: float
    p_increasing: float  # one-sided p-value for an increasing trend
    n: int  # points used (after thinning)


def mann_kendall(values: SeriesLike, *, autocorrelated: bool = True,
                 max_points: int = MAX_MANN_KENDALL_POINTS) -> MannKendall:
    """Mann-Kendall test for an increasing trend over sample order (pymannkendall).

    With ``autocorrelated``, Hamed and Rao's variance correction for samples that are not
    independent. Leak verdicts use the classic test (Kendall's tie-corrected variance): with the
    correction, a 3 MB/min leak under a 30 MB allocator sawtooth (10 minutes at 1 s) was no
    longer significant, since the sawtooth's autocorrelation counts against the trend; what the
    correction guards against (a wandering series taken for a trend) the persistence checks
    (both halves and the floor must rise) already catch. The p-value is the upper
    normal tail of the continuity-corrected Z. Series longer than ``max_points`` are thinned to
    evenly spaced samples.
    """
    import pymannkendall

    x = np.asarray(values, dtype=float)
    if x.ndim != 1:
        raise ValueError("values must be one-dimensional")
    if not np.all(np.isfinite(x)):
        raise ValueError("values must be finite")
    if max_points < 3:
        raise ValueError("max_points must be at least 3")
    x = x[_even_subsample(x.size, max_points)]
    n = int(x.size)
    if n < 3 or np.ptp(x) == 0:
        return MannKendall(s=0, variance=0.0, z=0.0, p_increasing=0.5, n=n)
    with np.errstate(divide="ignore", invalid="ignore"):
        result = pymannkendall.hamed_rao_modification_test(x) if autocorrelated else pymannkendall.original_test(x)
        if not math.isfinite(float(result.var_s)):  # residuals of a perfect line have no autocorrelation to measure
            result = pymannkendall.original_test(x)
    variance = float(result.var_s)
    if not math.isfinite(variance) or variance <= 0:
        return MannKendall(s=round(float(result.s)), variance=0.0, z=0.0, p_increasing=0.5, n=n)
    z = float(result.z)
    return MannKendall(s=round(float(result.s)), variance=variance, z=z, p_increasing=float(stats.norm.sf(z)), n=n)


def detect_leak(times_s: SeriesLike, memory_bytes: SeriesLike, *, operations: SeriesLike | None = None,
                thresholds: LeakThresholds = LeakThresholds(), warmup_fraction: float = 0.2, min_warmup_s: float = 0.0,
                alpha: float = 0.01) -> LeakVerdict:
    """Leak verdict for one memory series; see the module docstring for the method.

    ``times_s`` must be finite and non-decreasing, ``memory_bytes`` finite and non-negative,
    ``operations`` (cumulative counts) finite and non-decreasing, all of one length: otherwise
    ValueError. Too few samples after warm-up give a "not detected" verdict, never an error.
    """
    times, memory, ops = _validated(times_s, memory_bytes, operations)
    _check_options(warmup_fraction, min_warmup_s, alpha)
    duration = float(times[-1] - times[0]) if times.size else 0.0
    warmup = max(warmup_fraction * duration, min_warmup_s)
    start = float(times[0]) if times.size else 0.0
    keep = times >= start + warmup
    t_min = (times[keep] - start) / 60.0
    mb = memory[keep] / MIB
    n = int(t_min.size)
    if n < MIN_SAMPLES or np.unique(t_min).size < 2:
        return LeakVerdict(
            detected=False, severity="none", slope_mb_per_min=math.nan, ci_low=math.nan, ci_high=math.nan,
            growth_mb=math.nan, mb_per_1000_ops=None, mann_kendall_p=math.nan, persistent=False,
            warmup_s=warmup, samples=n, duration_s=duration,
            reasons=(f"too few samples after a {_seconds(warmup)} warm-up: {n} (need at least {MIN_SAMPLES}); no verdict",),
        )

    span_min = float(t_min[-1] - t_min[0])
    fit = _theil_sen(t_min, mb)
    growth = fit.slope * span_min
    trend = mann_kendall(mb, autocorrelated=False)  # see mann_kendall: the persistence checks guard instead
    persistence = _persistence(t_min, mb, fit.slope)
    per_1000 = _per_1000_ops(ops[keep], mb) if ops is not None else None

    significant = trend.p_increasing < alpha
    bounded = fit.low > 0
    by_growth = growth >= thresholds.minor_mb
    by_rate = duration >= thresholds.long_run_s and fit.slope >= thresholds.rate_flag_mb_per_min
    detected = significant and bounded and persistence.persistent and (by_growth or by_rate)
    severity: Severity = "none"
    if detected:
        severity = thresholds.severity(growth)
        if severity == "none":
            severity = "minor"  # flagged by its rate on a long run

    reasons = [
        f"analysed {n} samples over {_seconds(span_min * 60)} after a {_seconds(warmup)} warm-up",
        f"Theil-Sen slope {fit.slope:.3g} MB/min ({CI_LEVEL:.0%} CI {fit.low:.3g} to {fit.high:.3g})"
        + ("" if bounded else ": the interval does not exclude zero"),
        f"Mann-Kendall p = {trend.p_increasing:.2g} for an increasing trend"
        + (f" (significant at alpha {alpha:g})" if significant else f" (not significant at alpha {alpha:g})"),
        *persistence.reasons,
        f"projected growth {growth:.3g} MB over the analysed span"
        + (f" (>= minor {thresholds.minor_mb:g} MB)" if by_growth else f" (< minor {thresholds.minor_mb:g} MB)"),
    ]
    if by_rate and not by_growth:
        reasons.append(f"long run ({_seconds(duration)} >= {_seconds(thresholds.long_run_s)}) with slope >= "
                       f"{thresholds.rate_flag_mb_per_min:g} MB/min")
    if per_1000 is not None:
        reasons.append(f"{per_1000:.3g} MB per 1,000 operations")
    reasons.append(f"leak detected: {severity}" if detected else "no leak detected")
    return LeakVerdict(
        detected=detected, severity=severity, slope_mb_per_min=fit.slope, ci_low=fit.low, ci_high=fit.high,
        growth_mb=growth, mb_per_1000_ops=per_1000, mann_kendall_p=trend.p_increasing,
        persistent=persistence.persistent, warmup_s=warmup, samples=n, duration_s=duration, reasons=tuple(reasons),
    )


@dataclass(frozen=True)
class _Fit:
    slope: float
    low: float
    high: float


@dataclass(frozen=True)
class _Persistence:
    persistent: bool
    reasons: tuple[str, ...]


def _theil_sen(x: _FloatArray, y: _FloatArray) -> _Fit:
    index = _even_subsample(x.size, MAX_THEIL_SEN_POINTS)
    result = stats.theilslopes(y[index], x[index], alpha=CI_LEVEL)
    return _Fit(float(result.slope), float(result.low_slope), float(result.high_slope))


def _median_slope(x: _FloatArray, y: _FloatArray) -> float:
    """Theil-Sen slope without the interval (for a handful of floor points)."""
    dx = x[None, :] - x[:, None]
    upper = dx > 0
    return float(np.median((y[None, :] - y[:, None])[upper] / dx[upper]))


def _persistence(t_min: _FloatArray, mb: _FloatArray, overall: float) -> _Persistence:
    start, end = float(t_min[0]), float(t_min[-1])
    middle = (start + end) / 2.0
    halves = (t_min < middle, t_min >= middle)
    if overall <= 0:
        return _Persistence(False, ("no persistent rise: the overall slope is not positive",))
    if any(np.unique(t_min[h]).size < MIN_HALF_SAMPLES for h in halves):
        return _Persistence(False, ("persistence unknown: too few samples in a half of the analysed span",))
    half_fits = [_theil_sen(t_min[h], mb[h]) for h in halves]

    windows = 2 * max(2, min(FLOOR_WINDOWS_PER_HALF, t_min.size // 8))
    edges = np.linspace(start, end, windows + 1)
    position = np.clip(np.searchsorted(edges, t_min, side="right") - 1, 0, windows - 1)
    floor_t: list[float] = []
    floor_mb: list[float] = []
    floor_half: list[int] = []
    for w in range(windows):
        members = np.flatnonzero(position == w)
        if members.size:
            lowest = members[np.argmin(mb[members])]
            floor_t.append(float(t_min[lowest]))
            floor_mb.append(float(mb[lowest]))
            floor_half.append(0 if w < windows // 2 else 1)
    ft, fm, fh = np.asarray(floor_t), np.asarray(floor_mb), np.asarray(floor_half)
    floor_slopes = [_median_slope(ft[fh == k], fm[fh == k]) if np.unique(ft[fh == k]).size >= 2 else math.nan
                    for k in (0, 1)]

    need = PERSIST_FRACTION * overall
    halves_ok = all(f.slope >= need for f in half_fits)
    floor_ok = all(math.isfinite(s) and s >= need for s in floor_slopes)
    reasons = [
        "half slopes {:.3g} and {:.3g} MB/min (CIs {:.3g} to {:.3g}, {:.3g} to {:.3g}) {} {:.0%} of the overall slope".format(
            half_fits[0].slope, half_fits[1].slope, half_fits[0].low, half_fits[0].high, half_fits[1].low,
            half_fits[1].high, "reach" if halves_ok else "do not both reach", PERSIST_FRACTION),
        "floor (minimum of {} windows) slopes {:.3g} and {:.3g} MB/min in the two halves {} {:.0%} of it".format(
            windows, floor_slopes[0], floor_slopes[1], "reach" if floor_ok else "do not both reach", PERSIST_FRACTION),
    ]
    if not halves_ok:
        reasons.append("the rise does not persist through the run: a one-off step, or growth that levels off")
    elif not floor_ok:
        reasons.append("the floor does not rise with it: a sawtooth or a one-off step, not a steady leak")
    return _Persistence(halves_ok and floor_ok, tuple(reasons))


def _per_1000_ops(ops: _FloatArray, mb: _FloatArray) -> float | None:
    if np.unique(ops).size < 2:
        return None
    return _theil_sen(ops, mb).slope * 1000.0


def _seconds(value: float) -> str:
    return f"{value:.0f} s" if abs(value) >= 10 else f"{value:.3g} s"


def _even_subsample(n: int, limit: int) -> np.ndarray[Any, np.dtype[np.intp]]:
    if n <= limit:
        return np.arange(n)
    return np.unique(np.round(np.linspace(0, n - 1, limit)).astype(np.intp))


def _validated(times_s: SeriesLike, memory_bytes: SeriesLike,
               operations: SeriesLike | None) -> tuple[_FloatArray, _FloatArray, _FloatArray | None]:
    times = np.asarray(times_s, dtype=float)
    memory = np.asarray(memory_bytes, dtype=float)
    if times.ndim != 1 or memory.ndim != 1:
        raise ValueError("times and memory must be one-dimensional sequences")
    if times.size != memory.size:
        raise ValueError(f"times and memory differ in length: {times.size} != {memory.size}")
    if not (np.all(np.isfinite(times)) and np.all(np.isfinite(memory))):
        raise ValueError("times and memory must be finite (no NaN or infinity)")
    if np.any(np.diff(times) < 0):
        raise ValueError("times must be sorted (non-decreasing)")
    if np.any(memory < 0):
        raise ValueError("memory must be non-negative bytes")
    ops: _FloatArray | None = None
    if operations is not None:
        ops = np.asarray(operations, dtype=float)
        if ops.ndim != 1 or ops.size != times.size:
            raise ValueError(f"operations differ in length from times: {ops.size} != {times.size}")
        if not np.all(np.isfinite(ops)):
            raise ValueError("operations must be finite")
        if np.any(np.diff(ops) < 0):
            raise ValueError("operations must be cumulative counts (non-decreasing)")
    return times, memory, ops


def _check_options(warmup_fraction: float, min_warmup_s: float, alpha: float) -> None:
    if not (math.isfinite(warmup_fraction) and 0 <= warmup_fraction < 1):
        raise ValueError(f"warmup_fraction must be in [0, 1), got {warmup_fraction}")
    if not (math.isfinite(min_warmup_s) and min_warmup_s >= 0):
        raise ValueError(f"min_warmup_s must be finite and >= 0, got {min_warmup_s}")
    if not (math.isfinite(alpha) and 0 < alpha < 1):
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
