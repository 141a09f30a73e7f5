"""Load shapes: factors over time, the open model's send schedule, the closed model's active users."""

from __future__ import annotations

import itertools

import pytest

from benchtrack.load.patterns import active_users, factor, peak_factor, peak_users, pieces, scheduled_sends, send_times
from benchtrack.load.scenario import Pattern

RAMP = Pattern("ramp", start=0.0, end=1.0, up_s=10.0, hold_s=5.0, down_s=5.0)
SPIKE = Pattern("spike", at_s=3.0, length_s=1.0, factor=5.0)
BURST = Pattern("burst", every_s=10.0, length_s=2.0, factor=3.0)
STEPS = Pattern("steps", levels=(0.25, 0.5, 1.0), step_s=20.0)


@pytest.mark.parametrize(("pattern", "t", "expected"), [
    (Pattern(), 123.0, 1.0),
    (RAMP, 0.0, 0.0), (RAMP, 5.0, 0.5), (RAMP, 10.0, 1.0), (RAMP, 14.9, 1.0), (RAMP, 17.5, 0.5), (RAMP, 30.0, 0.0),
    (Pattern("ramp", start=0.2, end=1.0, up_s=4.0), 100.0, 1.0),  # no down: stays up
    (SPIKE, 2.99, 1.0), (SPIKE, 3.0, 5.0), (SPIKE, 3.99, 5.0), (SPIKE, 4.0, 1.0),
    (BURST, 1.0, 1.0), (BURST, 10.0, 3.0), (BURST, 11.9, 3.0), (BURST, 12.0, 1.0), (BURST, 21.0, 3.0),
    (STEPS, 0.0, 0.25), (STEPS, 19.9, 0.25), (STEPS, 20.0, 0.5), (STEPS, 45.0, 1.0), (STEPS, 500.0, 1.0),
])
def test_factor_follows_the_shape(pattern: Pattern, t: float, expected: float) -> None:
    assert factor(pattern, t) == pytest.approx(expected)


@pytest.mark.parametrize("pattern", [Pattern(), RAMP, SPIKE, BURST, STEPS])
def test_pieces_agree_with_the_factor_and_cover_the_run(pattern: Pattern) -> None:
    parts = pieces(pattern, 30.0)
    assert parts[0].t0 == 0.0
    assert parts[-1].t1 == 30.0
    assert all(a.t1 == b.t0 for a, b in itertools.pairwise(parts))
    for part in parts:
        middle = (part.t0 + part.t1) / 2
        assert (part.f0 + part.f1) / 2 == pytest.approx(factor(pattern, middle))


def test_constant_rate_sends_are_evenly_spaced_and_complete() -> None:
    times = list(send_times(Pattern(), 10.0, 3.0))
    assert len(times) == 30
    assert times[0] == pytest.approx(0.05)
    gaps = {round(b - a, 9) for a, b in itertools.pairwise(times)}
    assert gaps == {0.1}
    assert times[-1] < 3.0


@pytest.mark.parametrize("pattern", [RAMP, SPIKE, BURST, STEPS])
def test_schedule_holds_the_integral_of_the_rate(pattern: Pattern) -> None:
    times = list(send_times(pattern, 20.0, 30.0))
    assert times == sorted(times)
    assert abs(len(times) - scheduled_sends(pattern, 20.0, 0.0, 30.0)) <= 1
    # and locally: the sends within each second match that second's rate
    for second in range(30):
        expected = scheduled_sends(pattern, 20.0, float(second), float(second + 1))
        actual = sum(1 for moment in times if second <= moment < second + 1)
        assert abs(actual - expected) <= 1.0, (second, actual, expected)


def test_spike_sends_five_times_as_fast_during_the_spike() -> None:
    times = list(send_times(SPIKE, 10.0, 6.0))
    during = [moment for moment in times if 3.0 <= moment < 4.0]
    before = [moment for moment in times if 1.0 <= moment < 2.0]
    assert len(during) == 50
    assert len(before) == 10


def test_ramp_from_zero_starts_sending_when_the_rate_has_built_up() -> None:
    # rate 10 * t/10 = t requests/s: the integral reaches 1/2 at t = 1
    assert next(send_times(RAMP, 10.0, 30.0)) == pytest.approx(1.0)
    assert scheduled_sends(RAMP, 10.0, 0.0, 30.0) == pytest.approx(125.0)


def test_closed_model_active_users_follow_the_pattern() -> None:
    assert [active_users(STEPS, 4, t) for t in (0.0, 25.0, 45.0)] == [1, 2, 4]
    assert active_users(Pattern("steps", levels=(0.1, 1.0), step_s=1.0), 3, 0.5) == 1  # a share of a user is one
    assert active_users(RAMP, 3, 30.0) == 0  # factor 0: nobody
    assert peak_users(SPIKE, 3, 10.0) == 15
    assert peak_factor(BURST, 5.0) == 1.0  # the first burst starts after 10 s
    assert peak_factor(BURST, 15.0) == 3.0
