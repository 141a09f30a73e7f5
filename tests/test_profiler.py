"""MemoryProfiler: real readings of this process, phases with known allocations, the sampling
thread's life cycle, and logging a profile into a real SQLite MLflow store.

Timing assertions are ranges (a factor either side), never speeds."""

from __future__ import annotations

import gc
import itertools
import json
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from benchtrack import MemoryProfiler
from benchtrack.profiler import MIB, PhaseStats
from benchtrack.results import timeline_from_dict

BLOCK_MB = 50
PAGE = 4096


def _touched_block(mb: int) -> bytearray:
    """mb MiB really resident: bytearray(n) is calloc'ed lazily, so write a byte on every page."""
    block = bytearray(mb * 1024 * 1024)
    block[::PAGE] = b"\x01" * len(range(0, len(block), PAGE))
    return block


def _busy(seconds: float) -> int:
    """CPU-bound pure Python: the main thread holds the GIL, as in a real workload."""
    end, count = time.perf_counter() + seconds, 0
    while time.perf_counter() < end:
        count += 1
    return count


def _profiler_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "benchtrack-memory-profiler"]


@pytest.fixture
def gc_starts() -> Iterator[list[int]]:
    """Generations of the collections that start while the fixture is active, automatic GC off
    (explicit gc.collect() calls still run and are still reported)."""
    generations: list[int] = []

    def callback(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            generations.append(int(info["generation"]))

    was_enabled = gc.isenabled()
    gc.disable()
    gc.callbacks.append(callback)
    try:
        yield generations
    finally:
        gc.callbacks.remove(callback)
        if was_enabled:
            gc.enable()


def test_phases_measure_known_allocations() -> None:
    with MemoryProfiler(interval=0.02, name="alloc and free") as profiler:
        with profiler.phase("alloc"):
            block = _touched_block(BLOCK_MB)
            time.sleep(0.15)
        with profiler.phase("free"):
            del block
            time.sleep(0.15)
    stats = profiler.phase_stats()
    assert list(stats) == ["alloc", "free"]
    alloc, free = stats["alloc"], stats["free"]
    assert isinstance(alloc, PhaseStats)
    assert BLOCK_MB - 10 <= alloc.delta_mb <= BLOCK_MB + 10
    assert alloc.peak_mb - alloc.start_mb >= BLOCK_MB - 10
    assert alloc.delta_mb == pytest.approx(alloc.end_mb - alloc.start_mb)
    assert alloc.peak_mb >= max(alloc.start_mb, alloc.end_mb)
    assert -BLOCK_MB - 10 <= free.delta_mb <= -(BLOCK_MB - 10)
    assert free.start_mb == pytest.approx(alloc.end_mb, abs=1.0)  # consecutive boundaries
    for phase in (alloc, free):
        assert 0.1 <= phase.duration_s <= 5.0
        assert phase.samples >= 3  # both boundary readings and at least one from the thread


def test_phase_stats_come_from_the_boundary_readings() -> None:
    with MemoryProfiler(interval=0.02) as profiler:
        profiler.mark_start("work")
        block = _touched_block(20)
        time.sleep(0.1)
        profiler.mark_end("work")
        del block
    timeline = profiler.timeline
    (phase,) = timeline.phases
    stats = profiler.phase_stats()["work"]
    by_time = dict(zip(timeline.times_s, timeline.memory_bytes, strict=True))
    assert stats.start_mb == by_time[phase.start_s] / MIB
    assert stats.end_mb == by_time[phase.end_s] / MIB
    within = [m for t, m in by_time.items() if phase.start_s <= t <= phase.end_s]
    assert stats.peak_mb == max(within) / MIB
    assert stats.samples == len(within)
    assert stats.duration_s == pytest.approx(phase.end_s - phase.start_s)


def test_readings_carry_their_real_timestamps_under_a_cpu_bound_thread() -> None:
    requested = 0.05
    before = time.time()
    with MemoryProfiler(interval=requested) as profiler:
        _busy(1.0)
    timeline = profiler.timeline
    times = timeline.times_s
    assert all(b > a for a, b in itertools.pairwise(times))  # strictly increasing
    assert len(times) == len(timeline.memory_bytes)
    assert 8 <= len(times) <= 60  # ~21 at 50 ms over 1 s
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert 0.5 * requested <= statistics.median(gaps) <= 3 * requested
    assert profiler.intervals() == pytest.approx(gaps)
    assert times[0] < 0.5
    assert 0.8 <= times[-1] <= 5.0
    assert before - 1 <= timeline.started_at <= time.time()


def test_check_memory_with_force_sample_records_a_reading() -> None:
    with MemoryProfiler(interval=30.0) as profiler:  # the thread will not sample during the test
        count = len(profiler.timeline.times_s)
        plain = profiler.check_memory()
        assert len(profiler.timeline.times_s) == count
        forced = profiler.check_memory(force_sample=True)
        timeline = profiler.timeline
        assert len(timeline.times_s) == count + 1
        assert forced == timeline.memory_bytes[-1] / MIB
        assert forced == pytest.approx(plain, abs=5.0)
        assert 1.0 < forced < 100_000
    assert profiler.check_memory(force_sample=True) > 1.0  # stopped: still answers, records nothing
    assert len(profiler.timeline.times_s) == count + 2  # only stop()'s final reading was added


def test_mark_start_and_mark_end_nested_overlapping_and_repeated() -> None:
    with MemoryProfiler(interval=0.01) as profiler:
        profiler.mark_start("outer")
        with profiler.phase("step"):
            time.sleep(0.02)
        profiler.mark_start("overlap")
        with profiler.phase("step"):
            time.sleep(0.02)
        profiler.mark_end("outer")
        time.sleep(0.02)
        profiler.mark_end("overlap")
    phases = {p.name: p for p in profiler.timeline.phases if p.name != "step"}
    assert phases["outer"].start_s < phases["overlap"].start_s < phases["outer"].end_s < phases["overlap"].end_s
    assert [p.name for p in profiler.timeline.phases].count("step") == 2
    stats = profiler.phase_stats()
    assert set(stats) == {"outer", "overlap", "step", "step#2"}
    assert stats["outer"].duration_s > stats["step"].duration_s + stats["step#2"].duration_s


def test_mark_end_of_an_unknown_phase_is_a_value_error() -> None:
    with MemoryProfiler(interval=0.05) as profiler:
        with pytest.raises(ValueError, match="no open phase named 'nope'"):
            profiler.mark_end("nope")
        profiler.mark_start("once")
        profiler.mark_end("once")
        with pytest.raises(ValueError, match="'once'"):
            profiler.mark_end("once")
    assert [p.name for p in profiler.timeline.phases] == ["once"]


def test_phases_left_open_are_closed_at_the_final_reading() -> None:
    with MemoryProfiler(interval=0.05) as profiler:
        profiler.mark_start("never ended")
    (phase,) = profiler.timeline.phases
    assert phase.end_s == profiler.timeline.times_s[-1]
    assert "never ended" in profiler.phase_stats()


def test_the_thread_stops_on_exit_even_when_the_body_raises() -> None:
    profiler = MemoryProfiler(interval=0.01)
    alive_inside = []

    def failing_body() -> None:
        with profiler, profiler.phase("failing"):
            alive_inside.append(profiler.thread_alive)
            raise KeyError("boom")

    with pytest.raises(KeyError, match="boom"):
        failing_body()
    assert alive_inside == [True]
    assert not profiler.thread_alive
    assert not profiler.running
    assert _profiler_threads() == []
    (phase,) = profiler.timeline.phases  # the phase context closed it on the way out
    assert phase.name == "failing"
    count = len(profiler.timeline.times_s)
    time.sleep(0.05)
    assert len(profiler.timeline.times_s) == count  # nothing samples any more


def test_a_profiler_runs_once_and_refuses_phases_when_not_running() -> None:
    profiler = MemoryProfiler(interval=0.05)
    with pytest.raises(RuntimeError, match="not running"):
        profiler.mark_start("early")
    with profiler:
        pass
    with pytest.raises(RuntimeError, match="runs once"), profiler:
        pass
    with pytest.raises(RuntimeError, match="not running"):
        profiler.mark_end("late")


@pytest.mark.parametrize("interval", [0.0, -1.0, float("nan"), float("inf"), 0.0001])
def test_invalid_interval_is_refused(interval: float) -> None:
    with pytest.raises(ValueError, match="interval"):
        MemoryProfiler(interval=interval)


def test_gc_at_boundaries_collects_at_every_boundary(gc_starts: list[int]) -> None:
    with MemoryProfiler(interval=0.05, gc_at_boundaries=True) as profiler:
        with profiler.phase("a"):
            pass
        profiler.mark_start("b")
        profiler.mark_end("b")
    assert gc_starts.count(2) == 4  # a full collection at each of the four boundaries


def test_no_gc_at_boundaries_by_default(gc_starts: list[int]) -> None:
    with MemoryProfiler(interval=0.05) as profiler, profiler.phase("a"):
        pass
    assert gc_starts == []


def test_gc_at_boundaries_shows_memory_freed_by_the_collector() -> None:
    def cyclic_garbage() -> None:
        # > 32 MiB: glibc always maps such blocks and unmaps them when freed (smaller ones may come
        # from the heap once its dynamic mmap threshold has risen, and then stay resident)
        node: dict[str, Any] = {"payload": _touched_block(40)}
        node["self"] = node  # only the cycle collector frees it

    results = {}
    for collect in (False, True):
        gc.disable()
        try:
            with MemoryProfiler(interval=0.05, gc_at_boundaries=collect) as profiler, profiler.phase("garbage"):
                cyclic_garbage()
                profiler.check_memory(force_sample=True)  # a reading while the garbage is resident
        finally:
            gc.enable()
            gc.collect()
        results[collect] = profiler.phase_stats()["garbage"]
    assert results[False].delta_mb >= 30  # the cycle is still resident at the end boundary
    assert results[True].delta_mb <= 10  # collected before the end reading
    assert results[True].peak_mb - results[True].start_mb >= 30  # but the peak saw it


def test_track_children_adds_the_rss_of_child_processes() -> None:
    code = ("import sys\nblock = bytearray(40 * 1024 * 1024)\nblock[::4096] = b'1' * (len(block) // 4096)\n"
            "print('ready', flush=True)\nsys.stdin.read()\n")
    with subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          text=True) as child:
        assert child.stdin is not None
        assert child.stdout is not None
        try:
            assert child.stdout.readline().strip() == "ready"
            with MemoryProfiler(interval=0.05, track_children=True) as with_children:
                time.sleep(0.1)
                total = with_children.check_memory(force_sample=True)
            with MemoryProfiler(interval=0.05) as own:
                alone = own.check_memory(force_sample=True)
        finally:
            child.stdin.close()
            child.wait(timeout=30)
    assert total - alone >= 35
    assert with_children.timeline.target.endswith("(with children)")


def test_leak_verdict_and_chart(tmp_path: Path) -> None:
    with MemoryProfiler(interval=0.01, name="flat") as profiler:
        _busy(0.3)
    verdict = profiler.leak_verdict()
    assert not verdict.detected
    path = profiler.save_chart(tmp_path / "flat.png", leak=verdict)
    assert path == tmp_path / "flat.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_importing_benchtrack_loads_no_heavy_dependency() -> None:
    code = ("import sys, benchtrack; from benchtrack import MemoryProfiler; "
            "print(sorted({'mlflow', 'numpy', 'matplotlib', 'scipy'} & set(sys.modules)))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_log_to_mlflow_records_readings_phases_and_artifacts(store_uri: str, open_client: Any,
                                                            tmp_path: Path) -> None:
    with MemoryProfiler(interval=0.02, name="logged job") as profiler:
        with profiler.phase("alloc"):
            block = _touched_block(20)
            time.sleep(0.08)
        with profiler.phase("free/all"):  # "/" is allowed in MLflow metric names
            del block
            time.sleep(0.05)
    run_id = profiler.log_to_mlflow(tracking_uri=store_uri)
    timeline = profiler.timeline

    client = open_client(store_uri)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "logged job"
    assert run.data.tags["benchtrack.type"] == "profile"
    assert client.get_experiment(run.info.experiment_id).name == "benchtrack/profiles"
    history = sorted(client.get_metric_history(run_id, "memory_mb"), key=lambda m: m.step)
    assert len(history) == len(timeline.times_s)
    assert [m.step for m in history] == list(range(len(history)))
    assert [m.value for m in history] == pytest.approx([b / MIB for b in timeline.memory_bytes])
    expected_ms = [int(timeline.started_at * 1000 + t * 1000) for t in timeline.times_s]
    assert [m.timestamp for m in history] == expected_ms  # real reading times, not assumed spacing

    stats = profiler.phase_stats()
    metrics = run.data.metrics
    for name, key in (("alloc", "alloc"), ("free/all", "free/all")):
        assert metrics[f"phase.{key}.peak_mb"] == pytest.approx(stats[name].peak_mb)
        assert metrics[f"phase.{key}.delta_mb"] == pytest.approx(stats[name].delta_mb)
        assert metrics[f"phase.{key}.duration_s"] == pytest.approx(stats[name].duration_s)
    assert metrics["samples"] == len(timeline.times_s)
    assert metrics["peak_mb"] == pytest.approx(max(timeline.memory_bytes) / MIB)
    assert run.data.params["interval_s"] == "0.02"

    names = {a.path for a in client.list_artifacts(run_id, "benchtrack")}
    assert names == {"benchtrack/timeline.json", "benchtrack/memory.png", "benchtrack/report.md", "benchtrack/report.html",
                     "benchtrack/report.json"}
    local = Path(client.download_artifacts(run_id, "benchtrack", str(tmp_path)))
    assert timeline_from_dict(json.loads((local / "timeline.json").read_text(encoding="utf-8"))) == timeline
    assert (local / "memory.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_log_to_mlflow_into_a_named_experiment(store_uri: str, open_client: Any) -> None:
    with MemoryProfiler(interval=0.05) as profiler, profiler.phase("odd name: #1 (x)"):
        pass
    run_id = profiler.log_to_mlflow(tracking_uri=store_uri, experiment="team profiles", run_name="nightly")
    client = open_client(store_uri)
    run = client.get_run(run_id)
    assert client.get_experiment(run.info.experiment_id).name == "team profiles"
    assert run.info.run_name == "nightly"
    assert "phase.odd name: _1 _x_.peak_mb" in run.data.metrics
    again = profiler.log_to_mlflow(tracking_uri=store_uri, experiment="team profiles")
    assert client.get_run(again).info.experiment_id == run.info.experiment_id


def test_the_profilers_own_samples_do_not_keep_freed_small_objects_resident() -> None:
    """Samples kept as Python floats land among the program's small objects and pin their
    arenas after the program frees them (measured: ~36 of 132 MB stayed resident)."""
    with MemoryProfiler(interval=0.001) as profiler:
        with profiler.phase("load"):
            load = [{"id": i, "payload": "x" * 100, "tags": [i, i + 1]} for i in range(300_000)]
        with profiler.phase("free"):
            del load
            gc.collect()
    stats = profiler.phase_stats()
    assert stats["load"].delta_mb > 50
    assert -stats["free"].delta_mb >= 0.9 * stats["load"].delta_mb
