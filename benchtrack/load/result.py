"""The records a load run produces: latency summary, one-second windows and the run result.

These are the contract between the generator (generator.py) and its consumers (CLI, MLflow
tracking, criteria, scaling): extend them only by adding fields with defaults.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

# A send started later than this after its intended time counts as a missed send (wrk2-style pacing check).
MISSED_SEND_TOLERANCE_S = 0.005


@dataclass(frozen=True)
class LatencySummary:
    """Latency in milliseconds, read from an HDR histogram (1 us .. 60 s, 3 significant digits)."""

    count: int
    mean_ms: float
    p50_ms: float
    p90_ms: float
    p95_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float


@dataclass(frozen=True)
class LoadWindow:
    """One time window (default 1 s) of the run, for timelines and MLflow metric steps.

    start_s/end_s are seconds since the start of the run (warm-up included, so windows line up with
    the monitor's timeline; `warmup` marks windows that end within the warm-up). A request belongs to
    the window in which it completed (answered, failed or timed out): requests = successes + errors,
    and errors include the timeouts. Percentiles cover the answered requests, as in LoadResult.latency.
    """

    start_s: float
    end_s: float
    requests: int
    successes: int
    errors: int
    timeouts: int
    throughput_rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    warmup: bool = False


@dataclass(frozen=True)
class LoadResult:
    """The outcome of one load run; counts and statistics cover the requests sent after warm-up
    (open model: intended after it), windows the whole run.

    duration_s runs from the end of the warm-up to the later of the scenario's end and the last
    completion; throughput_rps = requests / duration_s. errors holds every failure class, the
    "timeout" class included (also counted in `timeouts`); requests = successes + sum(errors).

    latency covers every request that got an answer (successes and HTTP errors); timeouts and
    connection errors have no answer and are excluded (they are counted in `timeouts` / `errors`).
    missed_sends (open model) counts sends started more than MISSED_SEND_TOLERANCE_S after their
    intended time; they are still sent and their latency still runs from the intended time.
    rate_limited counts 429/503 answers that carried Retry-After, plus (open model, when the scenario
    honours Retry-After) the sends skipped while an endpoint was paused; deferred_sends is that second
    part. Skipped sends are not requests. pool_waits counts sends that found every pooled connection
    busy (they queued in the generator; their wait is part of their latency).
    """

    scenario: str
    base_url: str
    model: str  # "open" | "closed"
    tag: str | None  # pre-fix | post-fix | baseline | None
    started_at: float  # wall clock start, time.time()
    duration_s: float  # measured span after warm-up
    requests: int
    successes: int
    timeouts: int
    errors: Mapping[str, int]  # error class -> count: "status_500", "status_429", "connect", "timeout", "other:X"
    rate_limited: int  # 429/503 answers with Retry-After (and, open model, sends deferred because of them)
    missed_sends: int
    requested_rps: float | None
    throughput_rps: float
    latency: LatencySummary
    histogram: str  # HDR histogram, base64 (hdrh encode), for merging and comparing
    windows: tuple[LoadWindow, ...]
    saturated: bool
    warnings: tuple[str, ...]
    deferred_sends: int = 0
    pool_waits: int = 0
    processes: int = 1

    @property
    def success_rate(self) -> float:
        """Share of requests after warm-up that succeeded (2xx/3xx); 0.0 when nothing was sent."""
        return self.successes / self.requests if self.requests else 0.0

