"""Both commits measured side by side in one job (pure: numbers in, frozen records out).

An interleaved comparison runs rounds: in each round one worker process of the baseline and
one of the candidate, in random order, back to back (or at once, in duet mode). Each process
gives one centre (the log low quantile of its samples). The change is the difference of the two
sides' lower quartiles of those centres, and its p-value comes from a permutation test that
swaps the two processes of a round: under "no change" they are exchangeable (same code, same
moment, order drawn at random), so the test is exact whatever the shape of the noise, with as
few rounds as there are (with R <= 13 rounds the smallest two-sided p-value is 2 / 2^R; beyond,
1 / the number of swaps drawn). The interval is the set of shifts the test keeps (test inversion).

Why the lower quartile of the process centres and not the mean change within rounds: on this
machine whole worker processes land in a slow mode of their own, 1.3-2x slower, about one in
three, independently of the other process of the round, while processes in the fast mode agree
within a few percent (experiments/self/sidebyside_trials.py; 24 rounds of ten real benchmarks,
quiet: within-round changes had a spread (sd) of 0.13-0.19 in log for pure-Python benchmarks, so
the signed-rank test found 2 of 5 real +10% changes; the lower quartiles of the two sides moved
by under 1.1% on the five unchanged benchmarks and by 9.2-10.8% on the five that did 10% more
work). The quartile reads the fast mode as long as at least a quarter of each side's processes
reach it; pairing still counts, because the permutation only swaps within a round.

Sequential: the comparison is looked at after MIN_ROUNDS (16) rounds and then each time the
rounds have doubled (32, 64...) up to the maximum, so a long comparison pays for few looks;
each look's p-value is multiplied by the number of planned looks (Bonferroni over looks), so
stopping early keeps the error rate. A comparison cut short by the time budget is judged at the
rounds it has, in place of the planned looks it never reached.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np

MIN_ROUNDS = 16  # the first look: at 8 rounds the smallest p-value, 2/256 times the looks, cannot reach alpha = 0.01
QUANTILE = 0.25  # of the process centres of a side
EXACT_UP_TO = 13  # rounds: every one of the 2^R swaps; beyond, a seeded random sample of them
PERMUTATIONS = 16384  # the sample's size beyond EXACT_UP_TO (the identity is always one of them)
# a p-value this sample can barely resolve is worked out again on MORE_PERMUTATION_BATCHES more
# such samples, so it can fall to ~4e-6: small enough for a suite of hundreds of benchmarks
# (false-discovery control over them, and the early stop's alpha / tests)
FEW_EXCEEDANCES = 32
MORE_PERMUTATION_BATCHES = 16
PERMUTATION_SEED = 20261202  # fixed, so the same rounds always give the same p-value
BISECTION_STEPS = 14  # the interval to 1/16384 of its search range: far below what rounds resolve
MAX_LOG_CHANGE = 50.0


@dataclass(frozen=True)
class Round:
    """One round: the log centre of the baseline's process and of the candidate's."""

    baseline: float
    candidate: float


@dataclass(frozen=True)
class PairedResult:
    change: float  # relative point estimate: +0.10 = candidate 10% slower
    ci_low: float
    ci_high: float
    p_value: float  # two-sided, already multiplied by the number of planned looks
    rounds: int
    baseline_centre: float  # natural scale: the lower quartile of the baseline's process centres
    candidate_centre: float


def looks(max_rounds: int) -> list[int]:
    """The round counts at which a comparison is examined."""
    planned = []
    rounds = MIN_ROUNDS
    while rounds <= max_rounds:
        planned.append(rounds)
        rounds *= 2
    if not planned or planned[-1] != max_rounds:
        planned.append(max_rounds)
    return planned


@cache
def swaps(count: int) -> np.ndarray:
    """Which rounds each permutation swaps (True: the sides trade places), the identity first:
    all 2^count patterns up to EXACT_UP_TO rounds, a seeded sample of PERMUTATIONS beyond."""
    if count <= EXACT_UP_TO:
        codes = np.arange(2**count, dtype=np.int64)
        patterns = ((codes[:, None] >> np.arange(count)) & 1).astype(bool)
    else:
        drawn = np.random.default_rng(PERMUTATION_SEED + count).random((PERMUTATIONS - 1, count)) < 0.5
        patterns = np.vstack([np.zeros((1, count), dtype=bool), drawn])
    patterns.setflags(write=False)  # cached: shared by every later call
    return patterns


def _exceedances(baseline: np.ndarray, moved: np.ndarray, pattern: np.ndarray, observed: float) -> int:
    null = np.abs(quartile_change(np.where(pattern, moved, baseline), np.where(pattern, baseline, moved)))
    return int(np.sum(null >= observed - 1e-12))


def lower_quartile(values: np.ndarray) -> np.ndarray:
    """np.quantile(values, QUANTILE, axis=-1) (linear interpolation), by one sort: many times
    faster on thousands of permuted rows."""
    ordered = np.sort(values, axis=-1)
    position = QUANTILE * (values.shape[-1] - 1)
    below = math.floor(position)
    above = min(below + 1, values.shape[-1] - 1)
    fraction = position - below
    return ordered[..., below] * (1.0 - fraction) + ordered[..., above] * fraction


def quartile_change(baseline: np.ndarray, candidate: np.ndarray) -> np.ndarray:
    """Lower quartile of the candidate's centres minus the baseline's, along the last axis."""
    return lower_quartile(candidate) - lower_quartile(baseline)


def permutation_p(baseline: np.ndarray, candidate: np.ndarray, shift: float = 0.0, precise: bool = False) -> float:
    """Two-sided p-value of "the candidate is the baseline moved by shift": the share of
    within-round swaps whose quartile change is at least as far from zero as the observed one.
    ``precise``: a p-value the first sample barely resolves is worked out on more swaps."""
    moved = candidate - shift
    observed = abs(float(quartile_change(baseline, moved)))
    pattern = swaps(len(baseline))
    hits = _exceedances(baseline, moved, pattern, observed)
    if not precise or len(baseline) <= EXACT_UP_TO or hits >= FEW_EXCEEDANCES:
        return hits / len(pattern)
    rng = np.random.default_rng(PERMUTATION_SEED - len(baseline))
    total = len(pattern)
    for _ in range(MORE_PERMUTATION_BATCHES):
        hits += _exceedances(baseline, moved, rng.random(pattern.shape) < 0.5, observed)
        total += len(pattern)
    return hits / total


def paired_test(rounds: Sequence[Round], alpha: float, max_rounds: int) -> PairedResult:
    """The permutation test of the rounds so far, its p-value corrected for the planned looks,
    and the (1 - alpha / looks) interval of the change by test inversion."""
    if len(rounds) < 2:
        raise ValueError("a paired comparison needs at least two rounds")
    baseline = np.array([r.baseline for r in rounds])
    candidate = np.array([r.candidate for r in rounds])
    if not (np.all(np.isfinite(baseline)) and np.all(np.isfinite(candidate))):
        raise ValueError("a paired comparison needs finite centres")
    planned = len(looks(max_rounds))
    estimate = float(quartile_change(baseline, candidate))
    p_value = min(1.0, permutation_p(baseline, candidate, precise=True) * planned)
    level = alpha / planned
    reach = float(np.ptp(np.concatenate([baseline, candidate]))) + abs(estimate) + 1e-6
    low = _bound(baseline, candidate, level, estimate, estimate - reach)
    high = _bound(baseline, candidate, level, estimate, estimate + reach)
    low, high = max(low, -MAX_LOG_CHANGE), min(high, MAX_LOG_CHANGE)  # finite, for JSON; e^50 is "unbounded"
    centre = float(lower_quartile(baseline))
    return PairedResult(math.expm1(estimate), math.expm1(low), math.expm1(high), p_value, len(rounds),
                        math.exp(centre), math.exp(centre + estimate))


def _bound(baseline: np.ndarray, candidate: np.ndarray, level: float, inside: float, outside: float) -> float:
    """The edge of the set of shifts the test keeps, between a kept one and a rejected one
    (bisection). When even a shift beyond every difference is kept (too few rounds for this
    level: the smallest p-value above it), no shift is rejected and the interval is unbounded
    that way."""
    if permutation_p(baseline, candidate, outside) > level:
        return math.copysign(math.inf, outside - inside)
    for _ in range(BISECTION_STEPS):
        middle = (inside + outside) / 2.0
        if permutation_p(baseline, candidate, middle) > level:
            inside = middle
        else:
            outside = middle
    return (inside + outside) / 2.0
