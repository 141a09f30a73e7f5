"""Tests of benchtrack.runner with real worker processes (each costs ~0.3 s, so one module-wide
run of a small suite serves most assertions), plus calibration with an injected clock."""

from __future__ import annotations

import dataclasses
import json
import statistics
import textwrap
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from support import write_bench_folder

from benchtrack import results as r
from benchtrack.config import Level
from benchtrack.results import BenchmarkResult, RunResult
from benchtrack.runner import worker
from benchtrack.runner.runner import Progress, Runner, make_plan
from benchtrack.suite import discover

MIN_SAMPLE_TIME = 0.005
PROCESSES = 2
SAMPLES = 3
MB = 2**20

SUITE = """
    import os
    import time

    from benchtrack import benchmark


    @benchmark
    def fast():
        pass


    @benchmark
    def slow():
        time.sleep(0.01)  # one call always lasts longer than min_sample_time


    @benchmark
    def raises():
        raise ValueError("broken on purpose")


    @benchmark
    def after_raises():
        pass


    @benchmark(timeout=2)
    def hangs():
        time.sleep(60)


    @benchmark
    def exits():
        os._exit(3)


    @benchmark(kind="memory", processes=1, samples=2)
    def allocates():
        block = bytearray(50 * 2**20)
        return len(block)


    @benchmark
    def makes_cycles():
        for _ in range(2000):
            node = []
            node.append(node)


    @benchmark(processes=1, samples=2, uss=True)
    def with_uss():
        pass


    @benchmark(params={"n": [1, 2]}, setup=lambda n: list(range(n)), processes=1, samples=2)
    def with_setup(values):
        assert isinstance(values, list)
        return sum(values)
"""

GC_METRICS = (
    r.GC_PAUSE, r.GC_COLLECTED, r.GC_UNCOLLECTABLE,
    r.gc_generation_metric(0), r.gc_generation_metric(1), r.gc_generation_metric(2),
)


@pytest.fixture(scope="module")
def measured(tmp_path_factory: pytest.TempPathFactory) -> tuple[RunResult, list[Progress], list[str]]:
    folder = write_bench_folder(tmp_path_factory.mktemp("runner") / "suite", {"bench_runner.py": SUITE}, levels="")
    suite = discover(folder).suites[0]
    level = Level("test", processes=PROCESSES, samples=SAMPLES, warmups=0, min_sample_time=MIN_SAMPLE_TIME, timeout=60)
    events: list[Progress] = []
    finished: list[str] = []
    result = Runner(on_progress=events.append).run_plan(
        make_plan(suite, level), {"meta": "data"}, on_result=lambda b: finished.append(b.name),
    )
    return result, events, finished


@pytest.fixture(scope="module")
def by_name(measured: tuple[RunResult, list[Progress], list[str]]) -> dict[str, BenchmarkResult]:
    return {b.name: b for b in measured[0].benchmarks}


def test_every_benchmark_is_run_in_order_and_reported(measured: tuple[RunResult, list[Progress], list[str]]) -> None:
    result, events, finished = measured
    names = [b.name for b in result.benchmarks]
    assert names == [
        "fast", "slow", "raises", "after_raises", "hangs", "exits", "allocates", "makes_cycles", "with_uss",
        "with_setup[n=1]", "with_setup[n=2]",
    ]
    # on_result is called as each benchmark finishes: processes run in rounds over the suite, so
    # the single-process ones finish in the first round, the rest in the last
    assert sorted(finished) == sorted(names)
    assert result.suite == "suite"
    assert result.level == "test"
    assert result.metadata == {"meta": "data"}
    assert result.started_at <= result.finished_at
    assert {b.name for b in result.failed} == {"raises", "hangs", "exits"}
    # One progress event per worker process; a failing benchmark stops after its first process.
    per_benchmark = {name: [e.process for e in events if e.item.name == name] for name in names}
    assert per_benchmark["fast"] == [0, 1]
    assert per_benchmark["raises"] == [0]
    assert per_benchmark["allocates"] == [0]


def test_samples_carry_process_and_index(by_name: dict[str, BenchmarkResult]) -> None:
    for name in ("fast", "slow", "after_raises", "makes_cycles"):
        bench = by_name[name]
        assert bench.ok, bench.error
        assert len(bench.samples) == PROCESSES * SAMPLES
        assert [(s.process, s.index) for s in bench.samples] == [
            (p, i) for p in range(PROCESSES) for i in range(SAMPLES)
        ]
        assert bench.process_count == PROCESSES
        assert bench.warmups == 0
        assert bench.kind == "time"
        assert bench.file == "bench_runner.py"


def test_calibrated_loops_are_shared_by_all_processes(by_name: dict[str, BenchmarkResult]) -> None:
    fast = by_name["fast"]
    loops = {s.loops for s in fast.samples}
    assert len(loops) == 1, "the first process calibrates, the others reuse its loop count"
    (count,) = loops
    assert count > 1
    assert count & (count - 1) == 0, "calibration doubles or quadruples from 1"
    # A sample is `loops` calls; wall_s is per call. The calibration run lasted >= min_sample_time;
    # allow 4x for noise between that run and the samples (this is no timing assertion).
    assert statistics.median(fast.series(r.WALL)) * count >= MIN_SAMPLE_TIME / 4


def test_a_call_longer_than_min_sample_time_gets_one_loop(by_name: dict[str, BenchmarkResult]) -> None:
    slow = by_name["slow"]
    assert {s.loops for s in slow.samples} == {1}
    assert min(slow.series(r.WALL)) * 1 >= MIN_SAMPLE_TIME  # sleep(0.01) never returns early


def test_time_samples_hold_time_memory_and_gc_metrics(by_name: dict[str, BenchmarkResult]) -> None:
    for sample in by_name["fast"].samples:
        values = sample.values
        for metric in (r.WALL, r.CPU, r.RSS_BEFORE, r.RSS_AFTER, r.RSS_PEAK, *GC_METRICS):
            assert metric in values, metric
        assert values[r.WALL] > 0
        assert values[r.RSS_PEAK] >= max(values[r.RSS_BEFORE], values[r.RSS_AFTER]) > 0
        assert r.TRACEMALLOC_PEAK not in values  # tracemalloc only for kind="memory"
        assert r.USS_AFTER not in values  # USS only when asked for
    assert by_name["fast"].probes["tracemalloc"] == "off"
    assert by_name["fast"].probes["peak_rss"] in {"kernel-hwm", "sampler-thread"}


def test_gc_activity_is_counted(by_name: dict[str, BenchmarkResult]) -> None:
    cycles = by_name["makes_cycles"]
    assert sum(cycles.series(r.gc_generation_metric(0))) > 0
    assert sum(cycles.series(r.GC_COLLECTED)) > 0
    assert all(value >= 0 for value in cycles.series(r.GC_PAUSE))
    assert sum(by_name["slow"].series(r.GC_COLLECTED)) == 0


def test_a_raising_benchmark_is_failed_with_its_error_line(by_name: dict[str, BenchmarkResult]) -> None:
    raises = by_name["raises"]
    assert not raises.ok
    assert raises.samples == ()
    line = textwrap.dedent(SUITE).splitlines().index('    raise ValueError("broken on purpose")') + 1
    assert raises.error == f"ValueError: broken on purpose at bench_runner.py:{line}"
    after = by_name["after_raises"]
    assert after.ok
    assert len(after.samples) == PROCESSES * SAMPLES


def test_a_hanging_benchmark_times_out_and_the_run_goes_on(by_name: dict[str, BenchmarkResult]) -> None:
    hangs = by_name["hangs"]
    assert not hangs.ok
    assert hangs.error == "timed out after 2 s"
    assert hangs.samples == ()
    assert by_name["exits"].error is not None  # the run continued past the timeout


def test_a_worker_that_exits_is_failed_with_the_exit_code(by_name: dict[str, BenchmarkResult]) -> None:
    exits = by_name["exits"]
    assert not exits.ok
    assert exits.error is not None
    assert exits.error.startswith("worker exited with code 3")
    assert by_name["allocates"].ok


def test_memory_kind_measures_peaks_of_one_call(by_name: dict[str, BenchmarkResult]) -> None:
    memory = by_name["allocates"]
    assert memory.ok, memory.error
    assert memory.kind == "memory"
    assert len(memory.samples) == 2
    assert memory.probes["tracemalloc"] == "separate-call"
    for sample in memory.samples:
        values = sample.values
        assert sample.loops == 1
        assert values[r.TRACEMALLOC_PEAK] >= 40 * MB
        if memory.probes["peak_rss"] == "kernel-hwm":  # exact peak; a sampler thread may miss it
            assert values[r.RSS_PEAK] - values[r.RSS_BEFORE] >= 40 * MB
        for metric in GC_METRICS:
            assert metric in values


def test_uss_is_recorded_when_asked(by_name: dict[str, BenchmarkResult]) -> None:
    uss = by_name["with_uss"]
    assert uss.ok, uss.error
    for sample in uss.samples:
        assert 0 < sample.values[r.USS_AFTER] <= sample.values[r.RSS_PEAK]


def test_setup_and_params_reach_the_worker(by_name: dict[str, BenchmarkResult]) -> None:
    for name in ("with_setup[n=1]", "with_setup[n=2]"):
        bench = by_name[name]
        assert bench.ok, bench.error
        assert bench.benchmark == "with_setup"
        assert len(bench.samples) == 2
    assert by_name["with_setup[n=2]"].params == {"n": "2"}


# --- calibration with an injected clock --------------------------------------------------------


class FakeClock:
    """perf_counter_ns that advances only when the measured call runs."""

    def __init__(self, cost_ns: int) -> None:
        self.now = 0
        self.cost_ns = cost_ns
        self.calls = 0

    def read(self) -> int:
        return self.now

    def call(self) -> None:
        self.calls += 1
        self.now += self.cost_ns


def _calibrate_with(clock: FakeClock, min_sample_time: float) -> int:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(worker.time, "perf_counter_ns", clock.read)
        return worker.calibrate_loops(clock.call, min_sample_time)


@given(cost_ns=st.integers(10_000, 10**8), min_sample_time=st.floats(1e-4, 0.1))  # <= ~2e4 fake calls
def test_calibration_picks_the_smallest_power_of_two_that_lasts(cost_ns: int, min_sample_time: float) -> None:
    clock = FakeClock(cost_ns)
    loops = _calibrate_with(clock, min_sample_time)
    target_ns = min_sample_time * 1e9
    assert loops & (loops - 1) == 0
    assert loops * cost_ns >= target_ns
    assert loops == 1 or (loops // 2) * cost_ns < target_ns


def test_calibration_examples() -> None:
    clock = FakeClock(1_000)  # 1 us per call, 100 us wanted
    assert _calibrate_with(clock, 1e-4) == 128
    assert clock.calls == 1 + 4 + 16 + 64 + 128  # x4 while far below target, then x2
    assert _calibrate_with(FakeClock(5_000_000), 1e-3) == 1


def test_calibration_in_real_time_for_a_sleeping_call() -> None:
    assert worker.calibrate_loops(lambda: time.sleep(0.002), 0.001) == 1


def test_worker_reports_an_unknown_benchmark(tmp_path: Path) -> None:
    folder = write_bench_folder(tmp_path / "s", {"bench_one.py": "from benchtrack import benchmark\n"
                                                  "@benchmark\ndef one():\n    pass\n"}, levels="")
    request = worker.WorkerRequest(file=str(folder / "bench_one.py"), name="two", process=0, samples=1,
                                   warmups=0, min_sample_time=0.001)
    reply_path = tmp_path / "reply.json"
    request_path = tmp_path / "request.json"
    request_path.write_text(json.dumps(dataclasses.asdict(request)), encoding="utf-8")
    assert worker.main([str(request_path), str(reply_path)]) == 0
    reply = json.loads(reply_path.read_text(encoding="utf-8"))
    assert reply["samples"] == []
    assert "unknown benchmark 'two'" in reply["error"]
