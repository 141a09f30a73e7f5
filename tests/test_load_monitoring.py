"""Resource monitoring under load (alerts, CPU readers, ResourceMonitor), the pass criteria and
the pre/post-fix comparison maths. The monitor is tested against a real child process."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from benchtrack.load.compare import compare_load, side_from_document
from benchtrack.load.criteria import RunFigures, evaluate
from benchtrack.load.monitoring import (
    AlertState,
    CgroupCpu,
    ProcessTreeCpu,
    ResourceMonitor,
    cgroup_cpu_reader,
    trailing_growth_mb_per_min,
)
from benchtrack.load.scenario import AlertSpec, CriteriaSpec
from benchtrack.probes.targets import ProcessTarget
from benchtrack.results import Timeline

MIB = 1024 * 1024


# --- growth and alerts -------------------------------------------------------------------------


def test_one_noisy_sample_does_not_make_growth() -> None:
    times = [float(t) for t in range(10)]
    memory = [100 * MIB] * 10
    memory[6] = 300 * MIB  # one wild sample: a least-squares slope would be ~+670 MB/min here
    slope = trailing_growth_mb_per_min(times, memory)
    assert slope == pytest.approx(0.0)
    ols = np.polyfit(np.asarray(times) / 60, np.asarray(memory) / MIB, 1)[0]
    assert ols > 100  # the robust slope is what keeps this from firing


def test_steady_growth_is_measured_over_the_trailing_window() -> None:
    times = [float(t) for t in range(30)]
    memory = [100 * MIB] * 20 + [(100 + 2 * (t - 19)) * MIB for t in range(20, 30)]  # flat, then +2 MB/s
    assert trailing_growth_mb_per_min(times, memory, window=10) == pytest.approx(120.0)
    assert trailing_growth_mb_per_min(times[:4], memory[:4]) is None  # too few samples


def test_alert_fires_once_per_crossing_and_rearms() -> None:
    state = AlertState(AlertSpec(memory_mb=100, cpu_percent=90))
    fired = [state.check(float(t), "memory", mb) for t, mb in enumerate([50, 120, 130, 90, 140])]
    kinds = [(a.time_s, a.value) for a in fired if a is not None]
    assert kinds == [(1.0, 120), (4.0, 140)]
    assert state.check(0.0, "growth", 1e9) is None  # that alert is off
    alert = state.check(5.0, "cpu", 95.0)
    assert alert is not None
    assert alert.unit == "%"
    assert "CPU 95.0 % above 90 %" in alert.message


# --- CPU readers -------------------------------------------------------------------------------


def test_cgroup_v2_cpu_counter_is_read_from_cpu_stat(tmp_path: Path) -> None:
    group = tmp_path / "grp"
    group.mkdir()
    (group / "memory.current").write_text("1000\n")
    (group / "cpu.stat").write_text("usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\n")
    reader = cgroup_cpu_reader(group, roots=(tmp_path,))
    assert isinstance(reader, CgroupCpu)
    assert reader.cpu_seconds() == pytest.approx(2.5)


def test_cgroup_v1_cpu_counter_is_found_in_the_cpuacct_hierarchy(tmp_path: Path) -> None:
    memory_root, cpu_root = tmp_path / "memory", tmp_path / "cpu,cpuacct"
    (memory_root / "web").mkdir(parents=True)
    (memory_root / "web" / "memory.usage_in_bytes").write_text("1000\n")
    (cpu_root / "web").mkdir(parents=True)
    (cpu_root / "web" / "cpuacct.usage").write_text("1500000000\n")
    reader = cgroup_cpu_reader(memory_root / "web", roots=(memory_root,))
    assert reader is not None
    assert reader.cpu_seconds() == pytest.approx(1.5)
    assert cgroup_cpu_reader(tmp_path / "memory", roots=(tmp_path / "elsewhere",)) is None


ALLOCATOR = textwrap.dedent("""
    import sys, time
    hoard = []
    print("ready", flush=True)
    end = time.monotonic() + float(sys.argv[1])
    while time.monotonic() < end:
        hoard.append(b"x" * (1024 * 1024))  # 1 MB, touched
        spin = time.monotonic() + 0.04
        while time.monotonic() < spin:  # busy: CPU to measure
            pass
    sys.stdin.read()
""")


@pytest.fixture
def allocator(tmp_path: Path) -> Any:
    script = tmp_path / "allocate.py"
    script.write_text(ALLOCATOR)
    process = subprocess.Popen([sys.executable, str(script), "60"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               text=True)
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "ready"
    with process:  # closes its pipes
        yield process
        process.kill()


@pytest.mark.slow
def test_resource_monitor_follows_a_growing_busy_process_and_fires_alerts(allocator: Any) -> None:
    monitor = ResourceMonitor(ProcessTarget(allocator.pid), interval_s=0.1,
                              alerts=AlertSpec(growth_mb_per_min=5, cpu_percent=1))
    seen: list[Any] = []
    monitor.add_alert_callback(seen.append)
    monitor.start()
    deadline_samples = 25
    import time

    while len(monitor.timeline.times_s) < deadline_samples:
        time.sleep(0.05)
    record = monitor.stop()
    timeline: Timeline = record.timeline
    assert len(timeline.times_s) >= deadline_samples
    assert timeline.memory_bytes[-1] - timeline.memory_bytes[0] > 5 * MIB  # it grows ~20 MB/s
    assert record.cpu_available
    assert len(record.cpu) >= deadline_samples - 1
    assert max(s.percent for s in record.cpu) > 5  # a spinning process
    kinds = [a.kind for a in record.alerts]
    assert "growth" in kinds
    assert "cpu" in kinds
    assert kinds.count("growth") == 1  # fired once on the crossing, not once per sample
    assert [a.kind for a in seen] == kinds  # the callbacks saw each alert as it fired


def test_process_tree_cpu_counts_from_first_sight(allocator: Any) -> None:
    reader = ProcessTreeCpu(allocator.pid)
    first = reader.cpu_seconds()
    assert first == 0.0  # CPU used before we looked is not this run's
    import time

    time.sleep(0.3)
    second = reader.cpu_seconds()
    assert second is not None
    assert second > 0


# --- criteria ----------------------------------------------------------------------------------


def figures(**overrides: Any) -> RunFigures:
    values: dict[str, Any] = {"mean_response_ms": 40.0, "success_rate": 0.99, "timeouts": 0, "answered": 100,
                              "growth_mb_per_hour": 1.0, "start_mb": 100.0, "peak_mb": 110.0}
    return RunFigures(**{**values, **overrides})


def test_all_five_criteria_hold_on_a_healthy_run() -> None:
    verdict = evaluate(CriteriaSpec(), figures())
    assert (verdict.passed, verdict.met, verdict.of, verdict.required) == (True, 5, 5, 4)


def test_four_of_five_pass_and_three_fail() -> None:
    one_down = evaluate(CriteriaSpec(), figures(timeouts=3))
    assert one_down.passed
    assert one_down.met == 4
    two_down = evaluate(CriteriaSpec(), figures(timeouts=3, peak_mb=160.0))
    assert not two_down.passed
    assert two_down.met == 3
    held = {c.name: c.held for c in two_down.criteria}
    assert held == {"memory_growth": True, "mean_response": True, "success_rate": True, "timeouts": False,
                    "peak_memory": False}


def test_thresholds_come_from_the_scenario_criteria() -> None:
    strict = CriteriaSpec(growth_mb_per_hour=0.5, mean_response_s=0.01, required=5)
    verdict = evaluate(strict, figures())
    assert not verdict.passed
    assert {c.name for c in verdict.criteria if c.held is False} == {"memory_growth",
                                                                                              "mean_response"}


def test_without_a_monitor_the_memory_criteria_do_not_apply_and_required_scales() -> None:
    no_memory = figures(growth_mb_per_hour=None, start_mb=None, peak_mb=None)
    verdict = evaluate(CriteriaSpec(), no_memory)
    assert (verdict.of, verdict.required, verdict.met, verdict.passed) == (3, 3, 3, True)
    assert [c.held for c in verdict.criteria if c.name in ("memory_growth", "peak_memory")] == [None, None]
    failing = evaluate(CriteriaSpec(), figures(growth_mb_per_hour=None, start_mb=None, peak_mb=None, success_rate=0.5))
    assert not failing.passed  # ceil(4 * 3 / 5) = 3: every request criterion must hold
    no_slope = evaluate(CriteriaSpec(), figures(growth_mb_per_hour=None))
    assert (no_slope.of, no_slope.required) == (4, 4)


def test_nothing_answered_fails_the_mean_response() -> None:
    verdict = evaluate(CriteriaSpec(), figures(answered=0, mean_response_ms=0.0))
    assert next(c for c in verdict.criteria if c.name == "mean_response").held is False


# --- comparison maths --------------------------------------------------------------------------


def load_doc(rng: np.random.Generator, p50: float, *, windows: int = 20, requests: int = 400, successes: int = 400,
             slope: tuple[float, float, float] | None = None, detected: bool = False) -> dict[str, Any]:
    rows = []
    for index in range(windows):
        centre = p50 * rng.normal(1.0, 0.02)
        rows.append({"start_s": float(index), "end_s": float(index + 1), "requests": 20, "successes": 20, "errors": 0,
                     "timeouts": 0, "throughput_rps": 20.0, "p50_ms": centre, "p95_ms": centre * 1.5,
                     "p99_ms": centre * 2.0, "warmup": False})
    rows.append({**rows[0], "p50_ms": 0.0, "p95_ms": 0.0, "p99_ms": 0.0})  # an empty window is left out
    memory = None
    if slope is not None:
        memory = {"leak": {"judged": True, "detected": detected, "slope_mb_per_min": slope[0], "ci_low": slope[1],
                           "ci_high": slope[2]}, "timeline": {"times_s": [0.0, 1.0], "memory_bytes": [MIB, 2 * MIB]}}
    return {"schema": "benchtrack.load/1", "scenario": "s", "requests": requests, "successes": successes,
            "windows": rows, "histogram": "", "memory": memory}


def verdicts(base: dict[str, Any], cand: dict[str, Any]) -> dict[str, str]:
    comparisons = compare_load(side_from_document(base, "a"), side_from_document(cand, "b"), seed=3)
    return {c.metric: c.verdict for c in comparisons}


def test_a_fix_shows_as_improvements_and_the_reverse_as_regressions() -> None:
    rng = np.random.default_rng(7)
    before = load_doc(rng, 40.0, successes=320, slope=(200.0, 190.0, 210.0), detected=True)
    after = load_doc(rng, 2.0, successes=400, slope=(0.1, -0.5, 0.6))
    assert verdicts(before, after) == {"latency_p50": "improvement", "latency_p95": "improvement",
                                       "latency_p99": "improvement", "success_rate": "improvement",
                                       "memory_slope": "improvement"}
    assert set(verdicts(after, before).values()) == {"regression"}


def test_the_same_service_twice_is_unchanged() -> None:
    rng = np.random.default_rng(11)
    first = load_doc(rng, 10.0, slope=(0.2, -0.5, 0.8))
    second = load_doc(rng, 10.0, slope=(0.1, -0.6, 0.7))
    assert set(verdicts(first, second).values()) == {"unchanged"}


def test_too_few_windows_or_no_memory_say_so() -> None:
    rng = np.random.default_rng(5)
    short = load_doc(rng, 10.0, windows=2)
    result = verdicts(short, load_doc(rng, 10.0))
    assert result["latency_p50"] == "inconclusive"
    assert result["memory_slope"] == "skipped"
