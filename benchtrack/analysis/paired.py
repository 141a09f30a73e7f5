"""Both commits measured side by side in one job (pure: numbers in, frozen records out).

An interleaved comparison runs rounds: in each round one worker process of the baseline and
one of the candidate, in random order, back to back. The test pairs the rounds: the change
within each round (log candidate - log baseline), then Wilcoxon's signed-rank test over the
rounds, the Hodges-Lehmann estimate (median of the Walsh averages) and its distribution-free
interval by test inversion.

Why pair: on this machine the speed of worker processes comes in spells that both processes of
a round share. In a real +15% comparison (tests/test_rerun.py's repository, the machine busy)
the rounds' levels moved by 0.5 in log (a 1.6x spell) while 14 of 16 within-round changes lay
within +0.09..+0.21 of each other (log 1.15 = 0.14). Under "no change" the two processes of a
round are exchangeable (same code, same moment, order drawn at random), so each change is
symmetric about zero and the signed-rank test is exact, whatever the shape of the noise, with
as few rounds as there are: with R rounds the smallest two-sided p-value is 2 / 2^R.

Sequential: the comparison is looked at after MIN_ROUNDS (8) and then every LOOK_EVERY (8)
rounds up to the maximum; each look's p-value is multiplied by the number of planned looks
(Bonferroni over looks), so stopping early keeps the error rate.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

MIN_ROUNDS = 8
LOOK_EVERY = 8
EXACT_UP_TO = 50  # rounds: scipy's exact signed-rank distribution; beyond, its normal approximation
BISECTION_STEPS = 30
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
    baseline_centre: float  # natural scale: median of the baseline's process centres
    candidate_centre: float


def looks(max_rounds: int) -> list[int]:
    """The round counts at which a comparison is examined."""
    planned = list(range(MIN_ROUNDS, max_rounds + 1, LOOK_EVERY))
    if not planned or planned[-1] != max_rounds:
        planned.append(max_rounds)
    return planned


def signed_rank_p(changes: np.ndarray, shift: float = 0.0) -> float:
    """Two-sided p-value of "the within-round changes are symmetric about shift"."""
    centred = changes - shift
    if not np.any(centred):
        return 1.0
    method = "exact" if len(centred) <= EXACT_UP_TO else "approx"
    return float(stats.wilcoxon(centred, zero_method="zsplit", method=method).pvalue)


def hodges_lehmann(changes: np.ndarray) -> float:
    """Median of the Walsh averages (every pairwise mean, each value with itself included)."""
    i, j = np.triu_indices(len(changes))
    return float(np.median((changes[i] + changes[j]) / 2.0))


def paired_test(rounds: Sequence[Round], alpha: float, max_rounds: int) -> PairedResult:
    """The signed-rank test of the rounds so far, its p-value corrected for the planned looks,
    and the (1 - alpha / looks) interval of the change by test inversion."""
    if len(rounds) < 2:
        raise ValueError("a paired comparison needs at least two rounds")
    changes = np.array([r.candidate - r.baseline for r in rounds])
    planned = len(looks(max_rounds))
    estimate = hodges_lehmann(changes)
    p_value = min(1.0, signed_rank_p(changes) * planned)
    level = alpha / planned
    reach = float(np.ptp(changes)) + abs(estimate) + 1e-6
    low = _bound(changes, level, estimate, estimate - reach)
    high = _bound(changes, level, estimate, estimate + reach)
    baseline = float(np.median([r.baseline for r in rounds]))
    candidate = float(np.median([r.candidate for r in rounds]))
    low, high = max(low, -MAX_LOG_CHANGE), min(high, MAX_LOG_CHANGE)  # finite, for JSON; e^50 is "unbounded"
    return PairedResult(math.expm1(estimate), math.expm1(low), math.expm1(high), p_value, len(rounds),
                        math.exp(baseline), math.exp(candidate))


def _bound(changes: np.ndarray, level: float, inside: float, outside: float) -> float:
    """The edge of the set of shifts the test keeps, between a kept one and a rejected one
    (bisection). When even a shift beyond every change is kept (too few rounds for this level:
    2 / 2^R above it), no shift is rejected and the interval is unbounded that way."""
    if signed_rank_p(changes, outside) > level:
        return math.copysign(math.inf, outside - inside)
    for _ in range(BISECTION_STEPS):
        middle = (inside + outside) / 2.0
        if signed_rank_p(changes, middle) > level:
            inside = middle
        else:
            outside = middle
    return (inside + outside) / 2.0
