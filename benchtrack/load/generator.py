"""The load generator: aiohttp requests paced by a scenario, latencies into HDR histograms.

Open model (as wrk2): every request has an intended send time from the pattern's schedule and its
latency runs FROM THAT TIME, so a server stall shows in the percentiles instead of silently slowing
the sender (no coordinated omission). A send that starts more than MISSED_SEND_TOLERANCE_S late
(the loop was busy) is still sent and counted in missed_sends.
Closed model: `users` tasks each send, await the answer, think; latency runs from the actual send.

Retry-After (429/503, when the scenario honours it): a closed-model user waits max(think, Retry-After)
before its next send; the open model pauses sends to that endpoint (method + path) until Retry-After
has passed and skips the sends scheduled meanwhile, counting them as deferrals in rate_limited
(and deferred_sends), never as requests.

Several processes split the open schedule (process i takes every N-th intended send) or the users
(process i runs users i, i+N, ...); they start on one shared clock and their histograms and windows merge.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import math
import multiprocessing
import queue
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

import aiohttp
from hdrh.histogram import HdrHistogram

from benchtrack.errors import BenchtrackError
from benchtrack.load import patterns
from benchtrack.load.result import MISSED_SEND_TOLERANCE_S, LatencySummary, LoadResult, LoadWindow
from benchtrack.load.scenario import Endpoint, Scenario

WINDOW_S = 1.0
HISTOGRAM_RANGE_US = (1, 60_000_000)  # 1 us .. 60 s
HISTOGRAM_DIGITS = 3
MAX_CONNECTIONS = 1000  # per run, split over the processes
# A busy 2-core machine deschedules the sender for 5-20 ms now and then: late sends are counted
# (and their latency counts from the intended time), but only a sustained share means saturation.
SATURATION_MISSED_SHARE = 0.05
SATURATION_MISSED_MIN = 20
CATCH_UP_BATCH = 16
SEND_BATCH_S = 0.001  # sends due within a millisecond share a wake-up (as wrk2's 1 ms timer)
SATURATION_RATE_SHARE = 0.9
_START_MARGIN_S = 0.2  # between the last worker process reporting ready and the shared start
_RETRY_STATUSES = (429, 503)


class LoadRunError(BenchtrackError):
    """The load run itself failed (a worker process died), not a request."""


def new_histogram() -> HdrHistogram:
    return HdrHistogram(*HISTOGRAM_RANGE_US, HISTOGRAM_DIGITS)


def decode_histogram(encoded: str) -> HdrHistogram:
    """A histogram from LoadResult.histogram (merge several with `.add`)."""
    histogram = new_histogram()
    if encoded:
        histogram.decode_and_add(encoded.encode("ascii"))
    return histogram


def summarize_histogram(histogram: HdrHistogram) -> LatencySummary:
    """Milliseconds from a histogram of microseconds; all zeros when it is empty."""
    if histogram.get_total_count() == 0:
        return LatencySummary(0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    at = _percentiles_ms(histogram, (50, 90, 95, 99, 99.9))
    return LatencySummary(count=histogram.get_total_count(), mean_ms=histogram.get_mean_value() / 1000.0,
                          p50_ms=at[50], p90_ms=at[90], p95_ms=at[95], p99_ms=at[99], p999_ms=at[99.9],
                          max_ms=histogram.get_max_value() / 1000.0)


def _percentiles_ms(histogram: HdrHistogram, percentiles: tuple[float, ...]) -> dict[float, float]:
    """In one pass over the counts (a pass per percentile cost the generator a tenth of its rate)."""
    values = histogram.get_percentile_to_value_dict(list(percentiles))
    return {p: values.get(p, 0) / 1000.0 for p in percentiles}


def _encode(histogram: HdrHistogram) -> str:
    return histogram.encode().decode("ascii") if histogram.get_total_count() else ""


def _record_latency(histogram: HdrHistogram, latency_s: float) -> None:
    low, high = HISTOGRAM_RANGE_US
    histogram.record_value(min(max(round(latency_s * 1e6), low), high))


@dataclass(frozen=True)
class WindowPart:
    """One process's share of a window, picklable so worker processes can send it to the parent."""

    index: int
    end_s: float
    requests: int
    successes: int
    timeouts: int
    histogram: str


@dataclass(frozen=True)
class ProcessOutcome:
    """One process's counts after warm-up (windows went out as they closed)."""

    requests: int
    successes: int
    timeouts: int
    errors: dict[str, int]
    rate_limited: int
    deferred_sends: int
    missed_sends: int
    sends: int  # open model, after warm-up: sends started (missed or not)
    last_send_s: float
    end_s: float  # when the last request completed (or the duration, if later)
    pool_waits: int
    pool_size: int
    histogram: str
    started_at: float


@dataclass
class _Window:
    requests: int = 0
    successes: int = 0
    timeouts: int = 0
    histogram: HdrHistogram = field(default_factory=new_histogram)


class _Recorder:
    """Counts and histograms of one process: whole-run windows, and totals after warm-up."""

    def __init__(self, warmup_s: float, on_part: Callable[[WindowPart], None]) -> None:
        self.warmup_s = warmup_s
        self.on_part = on_part
        self.histogram = new_histogram()
        self.errors: Counter[str] = Counter()
        self.requests = self.successes = self.timeouts = 0
        self.windows: dict[int, _Window] = {}
        self.next_window = 0
        self.last_done_s = 0.0

    def record(self, sent_s: float, done_s: float, latency_s: float, outcome: str) -> None:
        """outcome: "ok", "status_<code>", "timeout", "connect" or "other:<Exception>"."""
        index = int(done_s // WINDOW_S)
        window = self.windows.get(index)
        if window is None:  # not setdefault: that would build a histogram (~40 us) per request
            window = self.windows[index] = _Window()
        window.requests += 1
        answered = outcome == "ok" or outcome.startswith("status_")
        if outcome == "ok":
            window.successes += 1
        if outcome == "timeout":
            window.timeouts += 1
        if answered:
            _record_latency(window.histogram, latency_s)
        self.last_done_s = max(self.last_done_s, done_s)
        if sent_s < self.warmup_s:
            return
        self.requests += 1
        if outcome == "ok":
            self.successes += 1
        else:
            self.errors[outcome] += 1
        if outcome == "timeout":
            self.timeouts += 1
        if answered:
            _record_latency(self.histogram, latency_s)

    def close_windows(self, before_index: int) -> None:
        """Hand on every window below `before_index` (empty ones too, so timelines have no holes)."""
        for index in range(self.next_window, before_index):
            self._hand_on(index, (index + 1) * WINDOW_S)
        self.next_window = max(self.next_window, before_index)

    def close_all(self, end_s: float) -> None:
        """At the end of the run: the rest, the last window ending at end_s (usually a part window)."""
        last = max(math.ceil(end_s / WINDOW_S) - 1, *self.windows, 0)
        if self.next_window > last:  # the ticker got there first
            return
        self.close_windows(last)
        self._hand_on(last, end_s if end_s > last * WINDOW_S else (last + 1) * WINDOW_S)
        self.next_window = last + 1

    def _hand_on(self, index: int, end_s: float) -> None:
        window = self.windows.pop(index, _Window())
        self.on_part(WindowPart(index, end_s, window.requests, window.successes, window.timeouts,
                                _encode(window.histogram)))


class _ProcessRun:
    """The load one process sends: its share of the schedule (open) or of the users (closed)."""

    session: aiohttp.ClientSession

    def __init__(self, scenario: Scenario, index: int, processes: int, seed: int,
                 on_part: Callable[[WindowPart], None]) -> None:
        self.scenario = scenario
        self.index = index
        self.processes = processes
        self.rng = random.Random(seed * 1_000_003 + index)
        self.recorder = _Recorder(scenario.warmup_s, on_part)
        self.weights = [endpoint.weight for endpoint in scenario.endpoints]
        self.paused_until: dict[tuple[str, str], float] = {}
        self.inflight: set[asyncio.Task[float | None]] = set()
        self.rate_limited = self.deferred_sends = self.missed_sends = self.sends = self.pool_waits = 0
        self.last_send_s = 0.0
        self.pool_size = self._pool_size()
        self.t0 = 0.0
        self.finished = False

    def _pool_size(self) -> int:
        model, scenario = self.scenario.model, self.scenario
        if model.kind == "closed":
            total = patterns.peak_users(scenario.pattern, model.users or 1, scenario.duration_s)
        else:
            peak_rate = (model.rate or 0.0) * patterns.peak_factor(scenario.pattern, scenario.duration_s)
            # enough connections for every request that may be in flight before the timeout ends it
            total = math.ceil(peak_rate * scenario.timeout_s)
        return max(1, math.ceil(min(max(total, 10), MAX_CONNECTIONS) / self.processes))

    def now(self) -> float:
        return asyncio.get_running_loop().time() - self.t0

    async def run(self, start_wall: float | None) -> ProcessOutcome:
        loop = asyncio.get_running_loop()
        connector = aiohttp.TCPConnector(limit=self.pool_size, limit_per_host=0)
        timeout = aiohttp.ClientTimeout(total=self.scenario.timeout_s)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            self.session = session
            start_wall = start_wall if start_wall is not None else time.time()
            self.t0 = loop.time() + (start_wall - time.time())
            await asyncio.sleep(max(0.0, self.t0 - loop.time()))
            ticker = asyncio.create_task(self._tick_windows())
            try:
                if self.scenario.model.kind == "open":
                    await self._drive_open()
                else:
                    await self._drive_closed()
            finally:
                self.finished = True
                ticker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await ticker
        end_s = max(self.scenario.duration_s, self.recorder.last_done_s)
        self.recorder.close_all(end_s)
        return self._outcome(start_wall, end_s)

    def _outcome(self, started_at: float, end_s: float) -> ProcessOutcome:
        recorder = self.recorder
        return ProcessOutcome(requests=recorder.requests, successes=recorder.successes, timeouts=recorder.timeouts,
                              errors=dict(recorder.errors), rate_limited=self.rate_limited,
                              deferred_sends=self.deferred_sends, missed_sends=self.missed_sends, sends=self.sends,
                              last_send_s=self.last_send_s, end_s=end_s, pool_waits=self.pool_waits,
                              pool_size=self.pool_size, histogram=_encode(recorder.histogram), started_at=started_at)

    async def _tick_windows(self) -> None:
        while not self.finished:
            next_index = int(self.now() // WINDOW_S) + 1
            await asyncio.sleep(max(0.0, next_index * WINDOW_S - self.now()))
            self.recorder.close_windows(int(self.now() // WINDOW_S))

    def _my_share(self, items: Iterator[float]) -> Iterator[float]:
        for position, item in enumerate(items):
            if position % self.processes == self.index:
                yield item

    async def _drive_open(self) -> None:
        scenario = self.scenario
        schedule = patterns.send_times(scenario.pattern, scenario.model.rate or 0.0, scenario.duration_s)
        previous_s = -math.inf
        for position, intended_s in enumerate(self._my_share(schedule)):
            delay = intended_s - self.now()
            if delay > 0:
                # at high rates wake a little after this send's time, so the sends due meanwhile go out
                # together: a wake-up per send caps the rate the loop holds (each still counts from its
                # intended time); at low rates wake on time
                dense = intended_s - previous_s < SEND_BATCH_S
                await asyncio.sleep(delay + (SEND_BATCH_S if dense else 0.0))
            elif position % CATCH_UP_BATCH == 0:
                # behind: send the overdue ones back to back, yielding now and then so the requests
                # already started make progress (a yield per send halved the rate the loop could hold)
                await asyncio.sleep(0)
            previous_s = intended_s
            endpoint = self._pick()
            now = self.now()
            if self.paused_until.get(_key(endpoint), -math.inf) > now:
                if intended_s >= scenario.warmup_s:
                    self.deferred_sends += 1
                    self.rate_limited += 1
                continue
            if intended_s >= scenario.warmup_s:
                self.sends += 1
                if now - intended_s > MISSED_SEND_TOLERANCE_S:
                    self.missed_sends += 1
            if len(self.inflight) >= self.pool_size:
                self.pool_waits += 1
            self.last_send_s = now
            task = asyncio.create_task(self._one(endpoint, intended_s))
            self.inflight.add(task)
            task.add_done_callback(self.inflight.discard)
        if self.inflight:
            await asyncio.gather(*self.inflight)

    async def _drive_closed(self) -> None:
        model = self.scenario.model
        total = patterns.peak_users(self.scenario.pattern, model.users or 1, self.scenario.duration_s)
        await asyncio.gather(*(self._user(user) for user in range(self.index, total, self.processes)))

    async def _user(self, user: int) -> None:
        scenario = self.scenario
        while (now := self.now()) < scenario.duration_s:
            if user >= patterns.active_users(scenario.pattern, scenario.model.users or 1, now):
                await asyncio.sleep(min(0.05, scenario.duration_s - now))  # inactive until the pattern needs this user
                continue
            retry_after = await self._one(self._pick(), None)
            wait_s = scenario.model.think_s
            if retry_after is not None and scenario.honour_retry_after:
                wait_s = max(wait_s, retry_after)
            if wait_s > 0:
                await asyncio.sleep(min(wait_s, max(0.0, scenario.duration_s - self.now())))

    def _pick(self) -> Endpoint:
        endpoints = self.scenario.endpoints
        return endpoints[0] if len(endpoints) == 1 else self.rng.choices(endpoints, self.weights)[0]

    async def _one(self, endpoint: Endpoint, intended_s: float | None) -> float | None:
        """Send one request, record it; the Retry-After it carried (429/503), in seconds, or None."""
        sent_s = self.now()
        outcome, retry_after = await self._send(endpoint)
        done_s = self.now()
        start_s = sent_s if intended_s is None else intended_s
        self.recorder.record(start_s, done_s, done_s - start_s, outcome)
        if retry_after is not None:
            self.rate_limited += start_s >= self.scenario.warmup_s
            if self.scenario.honour_retry_after:
                self.paused_until[_key(endpoint)] = max(self.paused_until.get(_key(endpoint), -math.inf),
                                                        done_s + retry_after)
        return retry_after

    async def _send(self, endpoint: Endpoint) -> tuple[str, float | None]:
        try:
            async with self.session.request(endpoint.method, self.scenario.base_url + endpoint.path,
                                            headers=dict(endpoint.headers), data=endpoint.body,
                                            json=endpoint.json) as response:
                await response.read()
                retry_after = _retry_after(response) if response.status in _RETRY_STATUSES else None
                return ("ok" if response.status < 400 else f"status_{response.status}"), retry_after
        except TimeoutError:
            return "timeout", None
        except (aiohttp.ClientOSError, aiohttp.ServerDisconnectedError, ConnectionError):
            return "connect", None
        except Exception as exc:  # noqa: BLE001 - any other failure is one request's outcome, counted by its class
            return f"other:{type(exc).__name__}", None


def _key(endpoint: Endpoint) -> tuple[str, str]:
    return endpoint.method, endpoint.path


def _retry_after(response: aiohttp.ClientResponse) -> float | None:
    """Retry-After as seconds (delta-seconds or an HTTP date); None when absent or unreadable."""
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    with contextlib.suppress(ValueError):
        return max(0.0, float(value))
    with contextlib.suppress(TypeError, ValueError):
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
    return None


class _WindowMerger:
    """Joins the processes' parts of each window; hands on a window once every process sent its part."""

    def __init__(self, processes: int, warmup_s: float, deliver: Callable[[LoadWindow], None]) -> None:
        self.processes = processes
        self.warmup_s = warmup_s
        self.deliver = deliver
        self.parts: dict[int, list[WindowPart]] = {}
        self.windows: list[LoadWindow] = []
        self.next_index = 0

    def add(self, part: WindowPart) -> None:
        self.parts.setdefault(part.index, []).append(part)
        while len(self.parts.get(self.next_index, ())) == self.processes:
            self._emit(self.next_index)

    def flush(self) -> None:
        """At the end: windows some process never reached (it finished earlier) go out with what they have."""
        for index in sorted(self.parts):
            self._emit(index)

    def _emit(self, index: int) -> None:
        parts = self.parts.pop(index)
        histogram = new_histogram()
        for part in parts:
            if part.histogram:
                histogram.decode_and_add(part.histogram.encode("ascii"))
        start_s, end_s = index * WINDOW_S, max(part.end_s for part in parts)
        requests = sum(part.requests for part in parts)
        successes = sum(part.successes for part in parts)
        at = _percentiles_ms(histogram, (50, 95, 99)) if histogram.get_total_count() else {50: 0.0, 95: 0.0, 99: 0.0}
        window = LoadWindow(start_s=start_s, end_s=end_s, requests=requests, successes=successes,
                            errors=requests - successes, timeouts=sum(part.timeouts for part in parts),
                            throughput_rps=requests / (end_s - start_s), p50_ms=at[50],
                            p95_ms=at[95], p99_ms=at[99], warmup=end_s <= self.warmup_s)
        self.windows.append(window)
        self.next_index = index + 1
        self.deliver(window)


class _CallbackThread:
    """Runs on_window off the generator's event loop, in order, so a slow callback cannot delay sends."""

    def __init__(self, on_window: Callable[[LoadWindow], None] | None) -> None:
        self.on_window = on_window
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="load-windows") if on_window else None
        self.futures: list[Future[None]] = []

    def __call__(self, window: LoadWindow) -> None:
        if self.executor and self.on_window:
            self.futures.append(self.executor.submit(self.on_window, window))

    def finish(self) -> None:
        """Wait for the callbacks; re-raise the first one that failed."""
        if self.executor:
            self.executor.shutdown(wait=True)
        for future in self.futures:
            future.result()


def run_load(scenario: Scenario, *, processes: int = 1, seed: int = 0, tag: str | None = None,
             on_window: Callable[[LoadWindow], None] | None = None) -> LoadResult:
    """Run the scenario's load and measure it. Blocking; runs its own event loop(s), so it can run in a
    thread while another samples the target. on_window gets each window as it closes (in another thread)."""
    if processes < 1:
        raise LoadRunError(f"processes must be at least 1, got {processes}")
    if processes == 1:
        return asyncio.run(run_load_async(scenario, seed=seed, tag=tag, on_window=on_window))
    callbacks = _CallbackThread(on_window)
    merger = _WindowMerger(processes, scenario.warmup_s, callbacks)
    try:
        outcomes = _run_processes(scenario, processes, seed, merger)
        merger.flush()
    finally:
        callbacks.finish()
    return _result(scenario, outcomes, tuple(merger.windows), tag)


async def run_load_async(scenario: Scenario, *, seed: int = 0, tag: str | None = None,
                         on_window: Callable[[LoadWindow], None] | None = None) -> LoadResult:
    """run_load in the running event loop, one process (whatever else runs in this loop delays sends,
    and shows in missed_sends)."""
    callbacks = _CallbackThread(on_window)
    merger = _WindowMerger(1, scenario.warmup_s, callbacks)
    try:
        outcome = await _ProcessRun(scenario, 0, 1, seed, merger.add).run(None)
        merger.flush()
    finally:
        callbacks.finish()
    return _result(scenario, [outcome], tuple(merger.windows), tag)


def run_level(scenario: Scenario, value: float, duration_s: float, *, warmup_s: float = 0.0, processes: int = 1,
              seed: int = 0, tag: str | None = None, on_window: Callable[[LoadWindow], None] | None = None) -> LoadResult:
    """One load level (scaling): the scenario at another rate (open) or number of users (closed) for duration_s,
    statistics after warmup_s (a level's settle time)."""
    model = scenario.model
    model = replace(model, rate=float(value)) if model.kind == "open" else replace(model, users=max(1, round(value)))
    level = replace(scenario, model=model, duration_s=duration_s, warmup_s=warmup_s)
    return run_load(level, processes=processes, seed=seed, tag=tag, on_window=on_window)


def _run_processes(scenario: Scenario, processes: int, seed: int, merger: _WindowMerger) -> list[ProcessOutcome]:
    context = multiprocessing.get_context("spawn")
    messages: Any = context.Queue()
    start = context.Value("d", 0.0)
    go = context.Event()
    workers = [context.Process(target=_worker_main, args=(scenario, index, processes, seed, messages, start, go),
                               daemon=True, name=f"benchtrack-load-{index}") for index in range(processes)]
    for worker in workers:
        worker.start()
    outcomes: dict[int, ProcessOutcome] = {}
    ready = 0
    try:
        while len(outcomes) < processes:
            kind, index, payload = _next_message(messages, workers)
            if kind == "ready":
                ready += 1
                if ready == processes:
                    start.value = time.time() + _START_MARGIN_S  # one clock for every process
                    go.set()
            elif kind == "window":
                merger.add(payload)
            elif kind == "done":
                outcomes[index] = payload
            else:
                raise LoadRunError(f"load worker process {index} failed: {payload}")
    finally:
        for worker in workers:
            worker.join(timeout=5)
            if worker.is_alive():
                worker.kill()
    return [outcomes[index] for index in range(processes)]


def _next_message(messages: Any, workers: list[Any]) -> tuple[str, int, Any]:
    while True:
        try:
            return messages.get(timeout=1.0)
        except queue.Empty:
            dead = [worker for worker in workers if worker.exitcode not in (None, 0)]
            if dead:
                raise LoadRunError(f"load worker process {dead[0].name} exited with code {dead[0].exitcode}") from None


def _worker_main(scenario: Scenario, index: int, processes: int, seed: int, messages: Any, start: Any, go: Any) -> None:
    """A worker process: report ready, wait for the shared start time, run its share, report."""
    try:
        messages.put(("ready", index, None))
        go.wait()
        run = _ProcessRun(scenario, index, processes, seed, lambda part: messages.put(("window", index, part)))
        messages.put(("done", index, asyncio.run(run.run(start.value))))
    except Exception as exc:  # noqa: BLE001 - reported to the parent as one line, which raises it there
        messages.put(("failed", index, f"{type(exc).__name__}: {exc}"))


def _result(scenario: Scenario, outcomes: list[ProcessOutcome], windows: tuple[LoadWindow, ...],
            tag: str | None) -> LoadResult:
    histogram = new_histogram()
    for outcome in outcomes:
        if outcome.histogram:
            histogram.decode_and_add(outcome.histogram.encode("ascii"))
    errors: Counter[str] = Counter()
    for outcome in outcomes:
        errors.update(outcome.errors)
    requests = sum(outcome.requests for outcome in outcomes)
    span_s = max(outcome.end_s for outcome in outcomes) - scenario.warmup_s
    requested_rps = None
    if scenario.model.kind == "open":
        requested_rps = patterns.scheduled_sends(scenario.pattern, scenario.model.rate or 0.0, scenario.warmup_s,
                                                 scenario.duration_s) / (scenario.duration_s - scenario.warmup_s)
    saturated, warnings = _judge_generator(scenario, outcomes, requested_rps)
    return LoadResult(
        scenario=scenario.name, base_url=scenario.base_url, model=scenario.model.kind, tag=tag,
        started_at=min(outcome.started_at for outcome in outcomes), duration_s=span_s, requests=requests,
        successes=sum(outcome.successes for outcome in outcomes), timeouts=sum(outcome.timeouts for outcome in outcomes),
        errors=dict(sorted(errors.items())), rate_limited=sum(outcome.rate_limited for outcome in outcomes),
        missed_sends=sum(outcome.missed_sends for outcome in outcomes), requested_rps=requested_rps,
        throughput_rps=requests / span_s, latency=summarize_histogram(histogram), histogram=_encode(histogram),
        windows=windows, saturated=saturated, warnings=warnings,
        deferred_sends=sum(outcome.deferred_sends for outcome in outcomes),
        pool_waits=sum(outcome.pool_waits for outcome in outcomes), processes=len(outcomes),
    )


def _judge_generator(scenario: Scenario, outcomes: list[ProcessOutcome],
                     requested_rps: float | None) -> tuple[bool, tuple[str, ...]]:
    """Did the generator, rather than the server, limit the load? Open model: over 5% of the sends (and
    at least SATURATION_MISSED_MIN) started late, or sends started at under 90% of the requested rate;
    the send loop does not wait for answers, so a slow server causes neither."""
    warnings = []
    sends = sum(outcome.sends for outcome in outcomes)
    missed = sum(outcome.missed_sends for outcome in outcomes)
    deferred = sum(outcome.deferred_sends for outcome in outcomes)
    saturated = False
    if requested_rps is not None and sends:
        send_span_s = max(scenario.duration_s, *(outcome.last_send_s for outcome in outcomes)) - scenario.warmup_s
        achieved_rps = (sends + deferred) / send_span_s
        too_many_missed = missed > SATURATION_MISSED_SHARE * sends and missed >= SATURATION_MISSED_MIN
        if too_many_missed or achieved_rps < SATURATION_RATE_SHARE * requested_rps:
            saturated = True
            warnings.append(f"the generator, not the server, limited the rate: {missed} of {sends} sends started "
                            f"more than {MISSED_SEND_TOLERANCE_S * 1000:g} ms late, {achieved_rps:.1f} of "
                            f"{requested_rps:.1f} requests/s sent: use processes=N")
    pool_waits = sum(outcome.pool_waits for outcome in outcomes)
    if pool_waits:
        pool = sum(outcome.pool_size for outcome in outcomes)
        warnings.append(f"{pool_waits} sends found all {pool} connections busy and queued in the generator "
                        "(their wait counts in their latency)")
    return saturated, tuple(warnings)
