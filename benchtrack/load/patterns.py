"""Load shapes over time (pure: no clock, no I/O).

A pattern gives a factor f(t) of the model's value: the open model sends at rate * f(t) requests/s,
the closed model keeps ceil(users * f(t)) users active. Every shape is piecewise linear, so the open
model's send schedule is exact: the k-th send is where the integral of the rate reaches k + 1/2
(evenly spaced at the instantaneous rate, like wrk2's constant-throughput schedule, centred so a
constant rate r over D seconds gives round(r * D) sends).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass

from benchtrack.load.scenario import Pattern


@dataclass(frozen=True)
class Piece:
    """The factor moves linearly from `f0` at `t0` to `f1` at `t1`."""

    t0: float
    t1: float
    f0: float
    f1: float


def factor(pattern: Pattern, t: float) -> float:
    """The load factor at `t` seconds into the run."""
    if pattern.kind == "ramp":
        return _ramp_factor(pattern, t)
    if pattern.kind == "spike":
        return pattern.factor if pattern.at_s <= t < pattern.at_s + pattern.length_s else 1.0
    if pattern.kind == "burst":
        return pattern.factor if t >= pattern.every_s and t % pattern.every_s < pattern.length_s else 1.0
    if pattern.kind == "steps":
        return pattern.levels[min(int(t // pattern.step_s), len(pattern.levels) - 1)]
    return 1.0


def _ramp_factor(pattern: Pattern, t: float) -> float:
    up_end = pattern.up_s
    down_start = up_end + pattern.hold_s
    if t < up_end:
        return pattern.start + (pattern.end - pattern.start) * t / up_end
    if t < down_start or pattern.down_s == 0:
        return pattern.end
    if t < down_start + pattern.down_s:
        return pattern.end + (pattern.start - pattern.end) * (t - down_start) / pattern.down_s
    return pattern.start


def pieces(pattern: Pattern, duration_s: float) -> list[Piece]:
    """The pattern over [0, duration_s) as linear pieces (steps are pieces with f0 == f1)."""
    breaks = sorted({0.0, duration_s, *(point for point in _break_points(pattern, duration_s) if 0 < point < duration_s)})
    result = []
    for t0, t1 in itertools.pairwise(breaks):
        # the end value is taken just before t1, so a step at t1 belongs to the next piece
        f0 = factor(pattern, t0)
        f1 = factor(pattern, math.nextafter(t1, -math.inf))
        result.append(Piece(t0, t1, f0, f1))
    return result


def _break_points(pattern: Pattern, duration_s: float) -> list[float]:
    if pattern.kind == "ramp":
        up_end = pattern.up_s
        return [up_end, up_end + pattern.hold_s, up_end + pattern.hold_s + pattern.down_s]
    if pattern.kind == "spike":
        return [pattern.at_s, pattern.at_s + pattern.length_s]
    if pattern.kind == "burst":
        starts = (pattern.every_s * k for k in range(1, int(duration_s // pattern.every_s) + 1))
        return [point for start in starts for point in (start, start + pattern.length_s)]
    if pattern.kind == "steps":
        return [pattern.step_s * k for k in range(1, len(pattern.levels))]
    return []


def peak_factor(pattern: Pattern, duration_s: float) -> float:
    """The highest factor the pattern reaches during the run."""
    return max(max(piece.f0, piece.f1) for piece in pieces(pattern, duration_s))


def send_times(pattern: Pattern, rate: float, duration_s: float) -> Iterator[float]:
    """Intended send times (seconds from the start, increasing) of the open model over [0, duration_s)."""
    sent = 0.0  # integral of the rate up to the current piece's start
    next_target = 0.5
    for piece in pieces(pattern, duration_s):
        span = piece.t1 - piece.t0
        r0, r1 = rate * piece.f0, rate * piece.f1
        slope = (r1 - r0) / span
        piece_total = (r0 + r1) / 2 * span
        while next_target < sent + piece_total:
            yield piece.t0 + _time_to_reach(next_target - sent, r0, slope)
            next_target += 1.0
        sent += piece_total


def _time_to_reach(amount: float, r0: float, slope: float) -> float:
    """tau with r0 * tau + slope * tau^2 / 2 == amount (amount > 0, reachable inside the piece).

    Written as 2a / (r0 + sqrt(r0^2 + 2 slope a)): stable when slope is ~0 and when r0 is 0.
    """
    return 2 * amount / (r0 + math.sqrt(max(r0 * r0 + 2 * slope * amount, 0.0)))


def scheduled_sends(pattern: Pattern, rate: float, start_s: float, end_s: float) -> float:
    """The number of sends the open model intends over [start_s, end_s) (the integral of the rate)."""
    total = 0.0
    for piece in pieces(pattern, end_s):
        t0, t1 = max(piece.t0, start_s), piece.t1
        if t1 <= t0:
            continue
        total += rate * (_factor_in(piece, t0) + _factor_in(piece, t1)) / 2 * (t1 - t0)
    return total


def _factor_in(piece: Piece, t: float) -> float:
    return piece.f0 + (piece.f1 - piece.f0) * (t - piece.t0) / (piece.t1 - piece.t0)


def active_users(pattern: Pattern, users: int, t: float) -> int:
    """Closed model: how many of the users are active at `t` (a factor above 0 keeps at least one)."""
    return math.ceil(users * factor(pattern, t) - 1e-9)


def peak_users(pattern: Pattern, users: int, duration_s: float) -> int:
    return math.ceil(users * peak_factor(pattern, duration_s) - 1e-9)
