"""benchtrack's load generator against locust and wrk, on one core each, and how honest its latency is.

A minimal aiohttp server (load_server.py) runs in its own process, pinned to CPU 0 when there are
two CPUs or more; the worker (and so every generator it starts) is pinned to CPU 1. Then:

- sustained rate, closed model (USERS connections, no think time, DURATION_S each):
  benchtrack's generator (one process), locust (FastHttpUser, headless, one process) and
  wrk (-t1); the ratios benchtrack/locust and benchtrack/wrk. Target: at least locust's rate.
  wrk is written in C and usually saturates the one-core server, so benchtrack/wrk < 1 is expected;
- latency accuracy: the open model's own maximum (the highest of 500, 1000, 2000, ... requests/s
  it sends without saturating; it pays a task and a timer per request, so it holds less than the
  closed model), then half of it against an endpoint that sleeps 20 ms. The server reports how long
  it really held those requests (its sleep overshoots: 20.4-20.9 ms here); the reported p50 should
  be within 2 ms of that (``open_p50_error_ms``; ``open_p50_vs_nominal_ms`` against 20 ms). The
  same at a calm CALM_RATE for reference (``calm_p50_ms``);
- coordinated omission: the server stalls its event loop for 1 s mid-run. The open model measures
  latency from each request's intended send time, so the requests that should have gone out during
  the stall carry it, and its p99 shows the stall; benchtrack's closed model just stops sending
  while it waits, and its p99 hardly moves. wrk is closed too, but wrk 4 corrects its latency
  histogram afterwards (``stats_correct``: every latency of at least twice the mean interval
  between a connection's requests is back-filled with the values a steady sender would have
  seen), so its p99 shows the stall as well. All three p99s are reported.

locust lives in its own virtual environment, created on first use under
.benchtrack/venvs/locust at the repository root (`pip install locust`, a minute or two); without
it (no package index) the locust figures are left out and ``locust_available`` is 0. wrk is the
Debian package (`apt-get install wrk`); without it the wrk figures are left out. About two and a
half minutes once the environment exists:

    benchtrack run experiments/self -b load.generator --level nightly --no-track --format json
"""

from __future__ import annotations

import contextlib
import csv
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import venv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from benchtrack import benchmark
from benchtrack.load.result import LoadResult

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
LOCUST_VENV = ROOT / ".benchtrack" / "venvs" / "locust"
DURATION_S = 10.0
USERS = 50  # concurrent connections for the closed-model rates: enough to keep one core busy
DELAY_MS = 20.0
OPEN_PROBE_S = 4.0  # seconds per probed rate
OPEN_PROBE_CAP = 32_000.0
CALM_RATE = 200.0  # requests/s: the 20 ms endpoint's p50 at a rate far below the generator's limit, for reference
STALL_S = 1.0
STALL_RATE_CAP = 300.0  # open-model requests/s in the stall run: bounds the connections the stall piles up
SERVER_CPU, GENERATOR_CPU = 0, 1

LOCUSTFILE = """
from locust import FastHttpUser, constant, task


class Quick(FastHttpUser):
    wait_time = constant(0)

    @task
    def fast(self):
        self.client.get("/fast")
"""


@dataclass
class Fixture:
    server: subprocess.Popen[bytes]
    base_url: str
    pinned: bool
    scratch: Path


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _pinnable() -> bool:
    return hasattr(os, "sched_setaffinity") and len(os.sched_getaffinity(0)) >= 2 and \
        {SERVER_CPU, GENERATOR_CPU} <= os.sched_getaffinity(0)


def _setup() -> Fixture:
    from benchtrack.load.scaling import wait_until_accepting

    port = _free_port()
    server = subprocess.Popen([sys.executable, str(HERE / "load_server.py"), str(port)], stdin=subprocess.DEVNULL)
    pinned = _pinnable()
    if pinned:
        os.sched_setaffinity(server.pid, {SERVER_CPU})
        os.sched_setaffinity(0, {GENERATOR_CPU})  # this worker, and every generator it starts from now on
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_until_accepting(base_url, 30.0)
    except BaseException:
        server.kill()
        raise
    return Fixture(server, base_url, pinned, Path(tempfile.mkdtemp(prefix="benchtrack-load-")))


def _teardown(fixture: Fixture) -> None:
    fixture.server.terminate()
    try:
        fixture.server.wait(10)
    except subprocess.TimeoutExpired:
        fixture.server.kill()
        fixture.server.wait()
    shutil.rmtree(fixture.scratch, ignore_errors=True)


# --- the three generators ----------------------------------------------------------------------


def _benchtrack(url: str, *, users: int | None = None, rate: float | None = None, duration_s: float = DURATION_S) -> LoadResult:
    from benchtrack.load.generator import run_load
    from benchtrack.load.scenario import adhoc_scenario

    return run_load(adhoc_scenario(url, users=users, rate=rate, duration_s=duration_s, timeout_s=30.0), seed=1)


def _open_maximum(url: str) -> float:
    """The highest of 500, 1000, 2000, ... requests/s the open model sends without saturating."""
    rate, held = 500.0, 0.0
    while rate <= OPEN_PROBE_CAP:
        probe = _benchtrack(url, rate=rate, duration_s=OPEN_PROBE_S)
        if probe.saturated:
            break
        held, rate = rate, rate * 2
    return held or 250.0


def _held_ms(base_url: str) -> float:
    """The server's median hold time of /delay requests since the last call (see load_server.py)."""
    with urllib.request.urlopen(f"{base_url}/held", timeout=10) as answer:  # noqa: S310 - our own loopback server
        return float(answer.read().decode())


def _wrk(url: str, connections: int, duration_s: float = DURATION_S) -> tuple[float, float] | None:
    """(requests/s, p99 ms) from `wrk -t1 --latency`; None when wrk is not installed."""
    wrk = shutil.which("wrk")
    if wrk is None:
        return None
    out = subprocess.run([wrk, "-t1", f"-c{connections}", f"-d{round(duration_s)}s", "--latency", "--timeout", "30s", url],
                         capture_output=True, text=True, check=True).stdout
    rate = re.search(r"Requests/sec:\s*([\d.]+)", out)
    p99 = re.search(r"^\s*99%\s+([\d.]+)(us|ms|s)\s*$", out, re.MULTILINE)
    if rate is None or p99 is None:
        raise RuntimeError(f"cannot read wrk's output:\n{out}")
    return float(rate.group(1)), float(p99.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]


def _locust_python() -> Path | None:
    """The locust environment's interpreter, created on first use; None when it cannot be made."""
    python = LOCUST_VENV / "bin" / "python"
    if (LOCUST_VENV / "bin" / "locust").exists():
        return python
    try:
        venv.EnvBuilder(with_pip=True, clear=True).create(LOCUST_VENV)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "locust"], check=True, timeout=900,
                       stdout=sys.stderr)
    except (OSError, subprocess.SubprocessError) as exc:
        print(f"locust is not available ({exc}); its figures are left out", file=sys.stderr)
        return None
    return python


def _locust(base_url: str, users: int, scratch: Path, duration_s: float = DURATION_S) -> float | None:
    """Requests/s from locust's aggregated stats (headless, one process); None without locust."""
    python = _locust_python()
    if python is None:
        return None
    locustfile = scratch / "locustfile.py"
    locustfile.write_text(LOCUSTFILE, encoding="utf-8")
    prefix = scratch / "locust"
    subprocess.run([str(LOCUST_VENV / "bin" / "locust"), "-f", str(locustfile), "--headless", "-u", str(users),
                    "-r", str(users), "-t", f"{round(duration_s)}s", "-H", base_url, "--only-summary",
                    "--csv", str(prefix), "--loglevel", "WARNING"], check=True, timeout=duration_s + 120,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=scratch)
    with (scratch / "locust_stats.csv").open(encoding="utf-8") as stats:
        aggregated = next(row for row in csv.DictReader(stats) if row["Name"] == "Aggregated")
    return float(aggregated["Requests/s"])


@contextlib.contextmanager
def _stall_at(base_url: str, at_s: float) -> Iterator[None]:
    """Ask the server to stall for STALL_S, at_s seconds from now, while the body runs."""

    def stall() -> None:
        time.sleep(at_s)
        with urllib.request.urlopen(f"{base_url}/stall?s={STALL_S}", timeout=30):  # noqa: S310 - our own 127.0.0.1 server
            pass

    thread = threading.Thread(target=stall, daemon=True)
    thread.start()
    try:
        yield
    finally:
        thread.join()


# --- the benchmark -----------------------------------------------------------------------------


@benchmark(name="load.generator", kind="track", setup=_setup, teardown=_teardown, processes=1, samples=1, warmups=0,
           timeout=1800, levels=("nightly", "comprehensive"), tags=("load", "slow"),
           targets={"track.locust_over_benchtrack.median": 1.0, "track.open_p50_error_ms.median": 2.0})
def generator(fixture: Fixture) -> dict[str, float]:
    fast, delay = f"{fixture.base_url}/fast", f"{fixture.base_url}/delay?ms={DELAY_MS:g}"
    closed = _benchtrack(fast, users=USERS)
    metrics = {"pinned": float(fixture.pinned), "benchtrack_rps": closed.throughput_rps,
               "benchtrack_success_rate": closed.success_rate}
    locust_rps = _locust(fixture.base_url, USERS, fixture.scratch)
    metrics["locust_available"] = float(locust_rps is not None)
    if locust_rps is not None:
        metrics |= {"locust_rps": locust_rps, "benchtrack_over_locust": closed.throughput_rps / locust_rps,
                    "locust_over_benchtrack": locust_rps / closed.throughput_rps}
    wrk = _wrk(fast, USERS)
    metrics["wrk_available"] = float(wrk is not None)
    if wrk is not None:
        metrics |= {"wrk_rps": wrk[0], "benchtrack_over_wrk": closed.throughput_rps / wrk[0]}

    # the open model's own maximum: it pays a task and a timer per request, so it holds less than the
    # closed model's rate; the accuracy target is at half of what it holds
    half = _open_maximum(delay) / 2
    _held_ms(fixture.base_url)  # forget what came before
    paced = _benchtrack(delay, rate=half)
    held = _held_ms(fixture.base_url)  # what the server really took: its sleep overshoots 20 ms
    metrics |= {"open_max_rps": half * 2, "open_rate_rps": half, "open_throughput_rps": paced.throughput_rps,
                "open_p50_ms": paced.latency.p50_ms,
                "open_server_held_p50_ms": held, "open_p50_error_ms": abs(paced.latency.p50_ms - held),
                "open_p50_vs_nominal_ms": abs(paced.latency.p50_ms - DELAY_MS), "open_p99_ms": paced.latency.p99_ms,
                "open_missed_sends": float(paced.missed_sends)}
    calm = _benchtrack(delay, rate=CALM_RATE)
    calm_held = _held_ms(fixture.base_url)
    metrics |= {"calm_p50_ms": calm.latency.p50_ms, "calm_server_held_p50_ms": calm_held,
                "calm_p50_error_ms": abs(calm.latency.p50_ms - calm_held)}

    stall_rate = min(half, STALL_RATE_CAP)
    with _stall_at(fixture.base_url, DURATION_S / 2):
        open_stalled = _benchtrack(fast, rate=stall_rate)
    with _stall_at(fixture.base_url, DURATION_S / 2):
        closed_stalled = _benchtrack(fast, users=USERS)
    metrics |= {"stall_open_rate_rps": stall_rate, "stall_open_p99_ms": open_stalled.latency.p99_ms,
                "stall_open_max_ms": open_stalled.latency.max_ms, "stall_closed_p99_ms": closed_stalled.latency.p99_ms,
                "stall_closed_max_ms": closed_stalled.latency.max_ms}
    if wrk is not None:
        with _stall_at(fixture.base_url, DURATION_S / 2):
            stalled_wrk = _wrk(fast, USERS)
        assert stalled_wrk is not None
        metrics["stall_wrk_p99_ms"] = stalled_wrk[1]
    return metrics
