"""Pre-fix against post-fix: compare two load runs (``benchtrack.load/1`` documents).

Each comparison carries a verdict: regression, improvement, unchanged or inconclusive.

Latency (p50, p95, p99). Requests of one run are not independent (a slow second slows every
request in it), so an interval built as if they were is far too narrow. The unit of resampling
is the time window instead: the statistic is the mean over windows of each window's percentile,
and its candidate/baseline ratio gets a percentile bootstrap interval (windows resampled with
replacement on each side, ``BOOTSTRAP_RESAMPLES``, seeded). Regression when the whole interval
is above ``1 + tolerance``, improvement when it is below ``1 - tolerance``, unchanged when it lies
inside ``1 +- tolerance``, inconclusive otherwise (or with fewer than ``MIN_WINDOWS`` windows on a
side). The overall percentiles decoded from both HDR histograms are reported beside it.

Success rate: two-proportion z-test (pooled), two-sided, and a Wald interval of the difference.
Regression or improvement when p < ``ALPHA``; unchanged when the interval lies within
+-``SUCCESS_TOLERANCE``; inconclusive otherwise. (Also treats requests as independent: an error
burst makes it overconfident, which is why the tolerance band is there.)

Memory slope: each run's Theil-Sen leak slope with its 95 % interval. Regression when the
candidate's interval lies wholly above the baseline's, improvement when wholly below (two 95 %
intervals that do not overlap: a conservative test, about p < 0.006 for equal widths), unchanged
when they overlap and both runs got the same leak verdict, inconclusive otherwise; skipped when a
run has no memory slope.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from benchtrack.errors import ResultFormatError

LOAD_SCHEMA = "benchtrack.load/1"
LOAD_COMPARE_SCHEMA = "benchtrack.load-compare/1"
PERCENTILES = (50, 95, 99)
BOOTSTRAP_RESAMPLES = 2000
MIN_WINDOWS = 3
LATENCY_TOLERANCE = 0.05  # ratio band around 1 that counts as "unchanged"
SUCCESS_TOLERANCE = 0.01  # success-rate band (absolute) that counts as "unchanged"
ALPHA = 0.01
HISTOGRAM_UNIT_MS = 0.001  # the generator records microseconds (generator.HISTOGRAM_RANGE_US)


@dataclass(frozen=True)
class LoadComparison:
    metric: str  # latency_p50 | latency_p95 | latency_p99 | success_rate | memory_slope
    verdict: str  # regression | improvement | unchanged | inconclusive | skipped
    baseline: float | None
    candidate: float | None
    change: float | None  # latency: ratio - 1; success rate: difference; slope: difference (MB/min)
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    method: str
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "verdict": self.verdict, "baseline": self.baseline, "candidate": self.candidate,
                "change": self.change, "ci_low": self.ci_low, "ci_high": self.ci_high, "p_value": self.p_value,
                "method": self.method, "detail": self.detail}


@dataclass(frozen=True)
class LoadSide:
    """What a comparison needs from one load document."""

    label: str
    scenario: str
    requests: int
    successes: int
    histogram: str | None
    window_percentiles: Mapping[int, tuple[float, ...]]  # percentile -> per-window values (ms), windows with answers
    slope: tuple[float, float, float] | None  # (slope, ci_low, ci_high) MB/min
    leak_detected: bool | None
    memory_times_s: tuple[float, ...] = ()
    memory_mb: tuple[float, ...] = ()


def is_load_document(data: object) -> bool:
    return isinstance(data, Mapping) and data.get("schema") == LOAD_SCHEMA


def side_from_document(document: Mapping[str, Any], label: str) -> LoadSide:
    """ResultFormatError (one line) when the document lacks what a comparison needs."""
    if not is_load_document(document):
        raise ResultFormatError(f"{label} is not a {LOAD_SCHEMA} document")
    try:
        # windows after the warm-up that got answers (an empty window's percentiles are 0)
        windows = [w for w in document["windows"] if not w.get("warmup") and float(w["p50_ms"]) > 0]
        percentiles = {p: tuple(float(w[f"p{p}_ms"]) for w in windows) for p in PERCENTILES}
        requests, successes = int(document["requests"]), int(document["successes"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ResultFormatError(f"{label}: a {LOAD_SCHEMA} document without usable windows or counts ({exc})") from None
    memory = document.get("memory")
    slope: tuple[float, float, float] | None = None
    detected: bool | None = None
    times: tuple[float, ...] = ()
    mb: tuple[float, ...] = ()
    if isinstance(memory, Mapping):
        leak = memory.get("leak", {})
        if leak.get("judged"):
            slope = (float(leak["slope_mb_per_min"]), float(leak["ci_low"]), float(leak["ci_high"]))
            detected = bool(leak["detected"])
        timeline = memory.get("timeline") or {}
        times = tuple(float(t) for t in timeline.get("times_s", ()))
        mb = tuple(float(b) / 2**20 for b in timeline.get("memory_bytes", ()))
    return LoadSide(label, str(document.get("scenario", "")), requests, successes, document.get("histogram"),
                    percentiles, slope, detected, times, mb)


def compare_load(baseline: LoadSide, candidate: LoadSide, *, seed: int = 0) -> tuple[LoadComparison, ...]:
    rng = np.random.default_rng(seed)
    latency = tuple(_compare_latency(baseline, candidate, p, rng) for p in PERCENTILES)
    return (*latency, _compare_success(baseline, candidate), _compare_slopes(baseline, candidate))


def compare_document(baseline: LoadSide, candidate: LoadSide, comparisons: Sequence[LoadComparison]) -> dict[str, Any]:
    counts = {v: sum(1 for c in comparisons if c.verdict == v)
              for v in ("regression", "improvement", "unchanged", "inconclusive", "skipped")}
    return {
        "schema": LOAD_COMPARE_SCHEMA,
        "baseline": baseline.label,
        "candidate": candidate.label,
        "scenario": [baseline.scenario, candidate.scenario],
        "comparisons": [c.as_dict() for c in comparisons],
        "summary": {**counts, "failed": counts["regression"] > 0},
    }


def histogram_percentiles(encoded: str | None, percentiles: Sequence[float] = PERCENTILES) -> dict[float, float] | None:
    """Percentiles (ms) of a base64 HDR histogram; None when there is none or it is empty."""
    if not encoded:
        return None
    from benchtrack.load.generator import decode_histogram

    try:
        histogram = decode_histogram(encoded)
    except Exception as exc:  # noqa: BLE001 - hdrh raises bare errors on a corrupt payload
        raise ResultFormatError(f"an HDR histogram that cannot be decoded: {exc}") from None
    if histogram.get_total_count() == 0:
        return None
    return {p: histogram.get_value_at_percentile(p) * HISTOGRAM_UNIT_MS for p in percentiles}


# --- latency -----------------------------------------------------------------------------------


def _compare_latency(baseline: LoadSide, candidate: LoadSide, percentile: int, rng: np.random.Generator) -> LoadComparison:
    metric = f"latency_p{percentile}"
    method = f"bootstrap over windows of the mean per-window p{percentile} ({BOOTSTRAP_RESAMPLES} resamples)"
    base = np.asarray(baseline.window_percentiles[percentile], dtype=float)
    cand = np.asarray(candidate.window_percentiles[percentile], dtype=float)
    overall = _overall(baseline, percentile), _overall(candidate, percentile)
    described = f"overall p{percentile} {_ms(overall[0])} -> {_ms(overall[1])}"
    if base.size < MIN_WINDOWS or cand.size < MIN_WINDOWS or base.mean() <= 0:
        return LoadComparison(metric, "inconclusive", overall[0], overall[1], None, None, None, None, method,
                              f"too few windows with answers ({base.size} and {cand.size}, need {MIN_WINDOWS}); {described}")
    ratio = cand.mean() / base.mean()
    resampled = (rng.choice(cand, (BOOTSTRAP_RESAMPLES, cand.size)).mean(axis=1)
                 / np.maximum(rng.choice(base, (BOOTSTRAP_RESAMPLES, base.size)).mean(axis=1), 1e-12))
    low, high = (float(v) for v in np.percentile(resampled, [2.5, 97.5]))
    if low > 1 + LATENCY_TOLERANCE:
        verdict = "regression"
    elif high < 1 - LATENCY_TOLERANCE:
        verdict = "improvement"
    elif low >= 1 - LATENCY_TOLERANCE and high <= 1 + LATENCY_TOLERANCE:
        verdict = "unchanged"
    else:
        verdict = "inconclusive"
    detail = (f"mean window p{percentile} {base.mean():.3g} -> {cand.mean():.3g} ms ({ratio - 1:+.1%}, 95% CI "
              f"{low - 1:+.1%} to {high - 1:+.1%}); {described}")
    return LoadComparison(metric, verdict, _or(overall[0], float(base.mean())), _or(overall[1], float(cand.mean())),
                          float(ratio - 1), low - 1, high - 1, None, method, detail)


def _overall(side: LoadSide, percentile: int) -> float | None:
    values = histogram_percentiles(side.histogram)
    return None if values is None else float(values[percentile])


def _or(value: float | None, fallback: float) -> float:
    return fallback if value is None else value


def _ms(value: float | None) -> str:
    return "?" if value is None else f"{value:.3g} ms"


# --- success rate ------------------------------------------------------------------------------


def _compare_success(baseline: LoadSide, candidate: LoadSide) -> LoadComparison:
    method = "two-proportion z-test (pooled), Wald interval of the difference"
    n1, n2 = baseline.requests, candidate.requests
    if n1 == 0 or n2 == 0:
        return LoadComparison("success_rate", "inconclusive", None, None, None, None, None, None, method,
                              "a run sent no request after its warm-up")
    p1, p2 = baseline.successes / n1, candidate.successes / n2
    diff = p2 - p1
    pooled = (baseline.successes + candidate.successes) / (n1 + n2)
    pooled_se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    p_value = 1.0 if pooled_se == 0 else float(2 * stats.norm.sf(abs(diff) / pooled_se))
    se = math.sqrt(p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2)
    z = float(stats.norm.ppf(0.975))
    low, high = diff - z * se, diff + z * se
    if p_value < ALPHA:
        verdict = "regression" if diff < 0 else "improvement"
    elif low >= -SUCCESS_TOLERANCE and high <= SUCCESS_TOLERANCE:
        verdict = "unchanged"
    else:
        verdict = "inconclusive"
    detail = f"{p1:.1%} of {n1} -> {p2:.1%} of {n2} ({diff * 100:+.1f} points, p = {p_value:.2g})"
    return LoadComparison("success_rate", verdict, p1, p2, diff, low, high, p_value, method, detail)


# --- memory slope ------------------------------------------------------------------------------


def _compare_slopes(baseline: LoadSide, candidate: LoadSide) -> LoadComparison:
    method = "Theil-Sen leak slopes and their 95% intervals (disjoint intervals = a change)"
    if baseline.slope is None or candidate.slope is None:
        missing = " and ".join(s.label for s in (baseline, candidate) if s.slope is None)
        return LoadComparison("memory_slope", "skipped", _first(baseline.slope), _first(candidate.slope), None, None,
                              None, None, method, f"no memory slope for {missing} (no monitor, or too few samples)")
    (b, b_low, b_high), (c, c_low, c_high) = baseline.slope, candidate.slope
    if c_low > b_high:
        verdict = "regression"
    elif c_high < b_low:
        verdict = "improvement"
    elif baseline.leak_detected == candidate.leak_detected:
        verdict = "unchanged"
    else:
        verdict = "inconclusive"
    detail = (f"{b:.3g} MB/min (CI {b_low:.3g} to {b_high:.3g}) -> {c:.3g} MB/min (CI {c_low:.3g} to {c_high:.3g}); "
              f"leak {_leak(baseline.leak_detected)} -> {_leak(candidate.leak_detected)}")
    return LoadComparison("memory_slope", verdict, b, c, c - b, c_low - b_high, c_high - b_low, None, method, detail)


def _first(slope: tuple[float, float, float] | None) -> float | None:
    return None if slope is None else slope[0]


def _leak(detected: bool | None) -> str:
    return "detected" if detected else "not detected"

