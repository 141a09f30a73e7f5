"""The load generator against a real aiohttp server on 127.0.0.1: what it counts matches what the server saw.

Each test sends at most a few hundred requests over a few seconds.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from pathlib import Path

import pytest
from load_server import LIMIT_AT, SLOW_S, load_server

from benchtrack.load.generator import decode_histogram, run_level, run_load, run_load_async
from benchtrack.load.result import LoadResult, LoadWindow
from benchtrack.load.scenario import Endpoint, LoadModel, Pattern, Scenario, load_scenario

pytestmark = pytest.mark.slow


def open_scenario(base_url: str, path: str, *, rate: float, duration_s: float, timeout_s: float = 5.0,
                  **changes: object) -> Scenario:
    return Scenario(name="test", base_url=base_url, duration_s=duration_s, timeout_s=timeout_s,
                    model=LoadModel("open", rate=rate), endpoints=(Endpoint(path=path),), **changes)  # type: ignore[arg-type]


def closed_scenario(base_url: str, path: str, *, users: int, think_s: float, duration_s: float,
                    **changes: object) -> Scenario:
    return Scenario(name="test", base_url=base_url, duration_s=duration_s, timeout_s=5.0,
                    model=LoadModel("closed", users=users, think_s=think_s), endpoints=(Endpoint(path=path),),
                    **changes)  # type: ignore[arg-type]


def test_open_model_sends_the_scheduled_requests_and_counts_what_the_server_answered() -> None:
    windows: list[LoadWindow] = []
    with load_server() as (url, log):
        result = run_load(open_scenario(url, "/fast", rate=50, duration_s=2.0), on_window=windows.append)
    assert log.received["/fast"] == 100  # 50/s for 2 s, none dropped
    assert result.requests == result.successes == 100
    assert result.success_rate == 1.0
    assert result.errors == {}
    assert result.latency.count == decode_histogram(result.histogram).get_total_count() == 100
    assert result.requested_rps == pytest.approx(50.0)
    assert result.model == "open"
    assert not result.saturated  # 50/s is far below what one process sends
    # windows: handed on as they closed, in order, covering the run without holes
    assert windows == list(result.windows)
    assert [window.start_s for window in windows] == [float(index) for index in range(len(windows))]
    assert sum(window.requests for window in windows) == 100


def test_every_fourth_request_failing_gives_a_success_rate_of_three_quarters() -> None:
    with load_server() as (url, log):
        result = run_load(open_scenario(url, "/fail", rate=100, duration_s=2.0))
    assert log.received["/fail"] == 200
    assert result.successes == log.statuses["/fail", 200] == 150
    assert result.errors == {"status_500": log.statuses["/fail", 500]} == {"status_500": 50}
    assert result.success_rate == pytest.approx(0.75)
    assert result.latency.count == 200  # HTTP errors got an answer: their latency counts
    assert sum(window.errors for window in result.windows) == 50


def test_latency_of_a_slow_endpoint_is_its_delay() -> None:
    with load_server() as (url, _log):
        result = run_load(open_scenario(url, "/slow", rate=40, duration_s=2.0))
    assert result.successes == 80
    # 20 ms of asyncio.sleep on the server; a generous bound for a shared 2-core machine
    assert SLOW_S * 1000 - 1 <= result.latency.p50_ms <= SLOW_S * 1000 + 8


def test_requests_past_the_timeout_count_as_timeouts_and_have_no_latency() -> None:
    with load_server() as (url, log):
        result = run_load(open_scenario(url, "/sleep", rate=10, duration_s=1.0, timeout_s=0.3))
    assert log.received["/sleep"] == 10
    assert result.timeouts == 10
    assert result.errors == {"timeout": 10}
    assert result.successes == 0
    assert result.latency.count == 0
    assert sum(window.timeouts for window in result.windows) == 10


def test_open_model_latency_shows_a_server_stall_from_the_intended_send_time() -> None:
    with load_server() as (url, log):
        result = run_load(open_scenario(url, "/stall", rate=100, duration_s=3.0))
    assert log.received["/stall"] == 300
    assert result.successes == 300
    # the requests due during the 1 s stall waited for it: measured from their intended send time,
    # the slowest of them took about the whole second
    assert result.latency.p99_ms >= 900
    assert result.latency.p50_ms < 500
    stalled = [window for window in result.windows if window.p99_ms >= 500]
    assert stalled, [window.p99_ms for window in result.windows]


def test_a_blocked_event_loop_shows_as_missed_sends_and_saturation() -> None:
    async def blocked_run() -> LoadResult:
        # the generator shares this loop: block it for 1 s half a second in (sends due then are late)
        asyncio.get_running_loop().call_later(0.5, time.sleep, 1.0)
        return await run_load_async(open_scenario(url, "/fast", rate=50, duration_s=2.0))

    with load_server() as (url, log):
        result = asyncio.run(blocked_run())
    assert log.received["/fast"] == 100  # late, but sent: nothing dropped
    assert result.requests == 100
    assert result.missed_sends >= 40  # about 50 sends fell due during the block
    assert result.saturated  # half the sends late is not a busy machine's hiccup
    assert any("processes=N" in warning for warning in result.warnings)
    # their latency runs from the intended time, so the block shows in it
    assert result.latency.max_ms >= 800


def _gap_after_limit(arrivals: list[float], limited_at: float) -> float:
    later = [moment for moment in arrivals if moment > limited_at]
    return later[0] - limited_at


def test_closed_model_user_waits_retry_after_before_its_next_send() -> None:
    with load_server() as (url, log):
        result = run_load(closed_scenario(url, "/limited", users=1, think_s=0.05, duration_s=2.0))
    assert log.limited_at is not None
    assert _gap_after_limit(log.arrivals["/limited"], log.limited_at) >= 0.95  # Retry-After: 1
    assert result.rate_limited == 1
    assert result.errors == {"status_429": 1}
    assert result.requests == log.received["/limited"]


def test_closed_model_ignoring_retry_after_sends_again_after_its_think_time() -> None:
    with load_server() as (url, log):
        run_load(closed_scenario(url, "/limited", users=1, think_s=0.05, duration_s=1.0, honour_retry_after=False))
    assert log.limited_at is not None
    assert _gap_after_limit(log.arrivals["/limited"], log.limited_at) < 0.5


def test_open_model_pauses_a_rate_limited_endpoint_and_counts_the_skipped_sends() -> None:
    with load_server() as (url, log):
        result = run_load(open_scenario(url, "/limited", rate=20, duration_s=2.5))
    assert log.limited_at is not None
    assert _gap_after_limit(log.arrivals["/limited"], log.limited_at) >= 0.95
    # about 1 s of sends at 20/s skipped, never sent
    assert 15 <= result.deferred_sends <= 21
    assert result.rate_limited == 1 + result.deferred_sends
    assert result.requests == log.received["/limited"] == 50 - result.deferred_sends
    assert log.received["/limited"] > LIMIT_AT


def test_two_processes_split_the_schedule_and_merge_their_histograms() -> None:
    windows: list[LoadWindow] = []
    with load_server() as (url, log):
        result = run_load(open_scenario(url, "/fast", rate=60, duration_s=2.0), processes=2, on_window=windows.append)
    assert result.processes == 2
    assert log.received["/fast"] == 120
    assert result.requests == result.successes == 120
    assert result.latency.count == decode_histogram(result.histogram).get_total_count() == 120
    assert sum(window.requests for window in result.windows) == 120
    assert windows == list(result.windows)


def test_closed_model_pattern_sets_the_active_users() -> None:
    # steps: one user in the first second, two in the next; each user sends every ~20 ms + think
    steps = Pattern("steps", levels=(0.5, 1.0), step_s=1.0)
    with load_server() as (url, log):
        result = run_load(closed_scenario(url, "/slow", users=2, think_s=0.080, duration_s=2.0, pattern=steps))
    first, second = result.windows[0], result.windows[1]
    assert result.model == "closed"
    assert result.requests == log.received["/slow"]
    assert 6 <= first.requests <= 11  # one user: 1 s / (20 ms + 80 ms)
    assert second.requests >= first.requests * 1.6  # two users


def test_endpoints_are_picked_by_weight_and_connection_errors_are_counted() -> None:
    endpoints = (Endpoint(path="/fast", weight=3), Endpoint(path="/slow", weight=1))
    with load_server() as (url, log):
        result = run_load(replace(open_scenario(url, "/fast", rate=100, duration_s=2.0), endpoints=endpoints), seed=7)
    assert result.requests == 200
    assert 130 <= log.received["/fast"] <= 170
    assert log.received["/fast"] + log.received["/slow"] == 200
    # the server is gone now: nothing listens on that port
    refused = run_level(open_scenario(url, "/fast", rate=10, duration_s=1.0), 20, 0.5)
    assert refused.requests == 10
    assert refused.errors == {"connect": 10}
    assert refused.requested_rps == pytest.approx(20.0)


def test_a_scenario_file_drives_the_load_and_warm_up_is_left_out_of_the_statistics(tmp_path: Path) -> None:
    with load_server() as (url, log):
        path = tmp_path / "scenario.toml"
        path.write_text(f"""
schema = "benchtrack.scenario/1"
name = "echo"
base_url = "{url}"
duration = "2s"
warmup = "1s"
timeout = "2s"

[model]
kind = "open"
rate = 20

[[endpoints]]
method = "POST"
path = "/echo"
headers = {{ X-Test = "yes" }}
json = {{ item = 7 }}
""", encoding="utf-8")
        result = run_load(load_scenario(path), tag="pre-fix")
    assert log.received["/echo"] == 40
    assert log.echoed == [("yes", {"item": 7})] * 40
    assert result.requests == result.successes == 20  # the second second only
    assert result.latency.count == 20
    assert (result.scenario, result.tag, result.requested_rps) == ("echo", "pre-fix", pytest.approx(20.0))
    assert [window.warmup for window in result.windows[:2]] == [True, False]
    assert sum(window.requests for window in result.windows) == 40  # windows cover the warm-up too
