"""`benchtrack watch`: the sampling loop (fake clock), targets (real processes, fake and real
cgroups) and the command end to end (in-process CLI, real children, a real MLflow store).

Real children come from tests/leaky_child.py, whose memory follows the wall clock (see its
docstring). Runs are short (10-30 s), so the leak thresholds are scaled down with them: minor
2 MB, major 5 MB, critical 10 MB of growth after warm-up (SHORT_RUN), instead of the 5/20/50 MB
meant for runs of many minutes; the CLI tests set the same through levels.toml's [memory].
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from support import Invoked, assert_one_error_line

from benchtrack.analysis.leaks import LeakThresholds
from benchtrack.errors import UsageError
from benchtrack.monitor import judge_timeline, summarize_timeline, watch
from benchtrack.probes.targets import CgroupTarget, CommandTarget, NoSuchTarget, ProcessTarget, TargetReading
from benchtrack.results import OomEvent, Timeline, timeline_from_dict

CHILD = Path(__file__).with_name("leaky_child.py")
MIB = 1024 * 1024
SHORT_RUN = LeakThresholds(minor_mb=2.0, major_mb=5.0, critical_mb=10.0)
SHORT_RUN_LEVELS = """\
schema = "benchtrack.levels/1"

[levels.nightly]
fail_on = "minor"

[levels.relaxed]
fail_on = "none"

[memory]
leak_minor_mb = 2
leak_major_mb = 5
leak_critical_mb = 10
"""
CGROUP_V1_MEMORY = Path("/sys/fs/cgroup/memory")


def child_command(*args: str) -> list[str]:
    return [sys.executable, str(CHILD), *args]


@pytest.fixture
def spawn() -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """spawn(*leaky_child args) -> a running child, killed at the end of the test."""
    started: list[subprocess.Popen[bytes]] = []

    def start(*args: str) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(child_command(*args), stdout=subprocess.DEVNULL)
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait()


@pytest.fixture
def levels_file(tmp_path: Path) -> Path:
    path = tmp_path / "levels.toml"
    path.write_text(SHORT_RUN_LEVELS, encoding="utf-8")
    return path


# --- the loop, with a fake clock -----------------------------------------------------------------


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.sleeps.append(seconds)
        self.now += seconds


class ScriptedTarget:
    """Memory = 1 MiB per second of fake time; reads cost read_cost (or slow[i] for read i)."""

    description = "scripted"

    def __init__(self, fake: FakeTime, *, read_cost: float = 0.1, slow: dict[int, float] | None = None,
                 dies_after: int | None = None, oom_on: tuple[int, ...] = (), limit: float | None = None) -> None:
        self.fake, self.read_cost, self.slow = fake, read_cost, slow or {}
        self.dies_after, self.oom_on, self.limit = dies_after, oom_on, limit
        self.reads = 0
        self.closed = False

    def read(self) -> TargetReading:
        index = self.reads
        self.reads += 1
        self.fake.now += self.slow.get(index, self.read_cost)
        alive = self.dies_after is None or index < self.dies_after
        return TargetReading((self.fake.now - 1000.0) * MIB if alive else 0.0, self.limit, alive, {})

    def new_oom_events(self, time_s: float) -> list[OomEvent]:
        return [OomEvent(time_s, "oom_kill", f"read {self.reads - 1}")] if self.reads - 1 in self.oom_on else []

    def close(self) -> None:
        self.closed = True


def fake_watch(target: ScriptedTarget, fake: FakeTime, **options: Any) -> Timeline:
    return watch(target, clock=fake.clock, sleep=fake.sleep, wall_clock=lambda: 1.7e9, **options)


def test_samples_are_stamped_with_the_measured_time_at_the_interval_until_the_duration() -> None:
    fake = FakeTime()
    target = ScriptedTarget(fake, read_cost=0.1)
    timeline = fake_watch(target, fake, interval_s=1.0, duration_s=5.0)
    # Midpoint of each 0.1 s read, one at time 0 and one at the end of the duration.
    assert timeline.times_s == pytest.approx([0.05, 1.05, 2.05, 3.05, 4.05, 5.05])
    assert timeline.memory_bytes == pytest.approx([0.1 * MIB, 1.1 * MIB, 2.1 * MIB, 3.1 * MIB, 4.1 * MIB, 5.1 * MIB])
    assert timeline.started_at == 1.7e9
    assert timeline.target == "scripted"
    assert not target.closed  # the caller owns the target


def test_a_late_sample_keeps_its_real_time_and_missed_ticks_are_skipped_not_burst() -> None:
    fake = FakeTime()
    target = ScriptedTarget(fake, read_cost=0.0, slow={2: 2.5})  # read 2 takes 2.5 s (a stall)
    timeline = fake_watch(target, fake, interval_s=1.0, duration_s=7.0)
    assert timeline.times_s == pytest.approx([0.0, 1.0, 3.25, 5.0, 6.0, 7.0])
    gaps = [b - a for a, b in zip(timeline.times_s, timeline.times_s[1:], strict=False)]
    assert min(gaps) >= 0.75  # no burst of catch-up samples after the stall


def test_the_watch_ends_when_the_target_dies_and_collects_oom_events_and_the_limit() -> None:
    fake = FakeTime()
    target = ScriptedTarget(fake, read_cost=0.0, dies_after=4, oom_on=(1, 4), limit=64 * MIB)
    seen: list[tuple[float, bool, int]] = []
    timeline = fake_watch(target, fake, interval_s=0.5, duration_s=None,
                          on_sample=lambda t, reading, events: seen.append((t, reading.alive, len(events))))
    assert timeline.times_s == pytest.approx([0.0, 0.5, 1.0, 1.5])  # the dead reading is no sample
    assert [e.detail for e in timeline.oom_events] == ["read 1", "read 4"]
    assert [e.time_s for e in timeline.oom_events] == pytest.approx([0.5, 2.0])
    assert timeline.limit_bytes == 64 * MIB
    assert seen[-1] == (pytest.approx(2.0), False, 1)


def test_without_stop_when_dead_the_watch_runs_to_its_duration() -> None:
    fake = FakeTime()
    target = ScriptedTarget(fake, read_cost=0.0, dies_after=2)
    timeline = fake_watch(target, fake, interval_s=1.0, duration_s=4.0, stop_when_dead=False)
    assert timeline.times_s == pytest.approx([0.0, 1.0])
    assert target.reads == 5


def test_summary_and_phases_of_a_timeline() -> None:
    timeline = Timeline("t", 0.0, tuple(float(i) for i in range(20)), tuple(float(i % 5) * MIB for i in range(20)))
    summary = summarize_timeline(timeline)
    assert (summary.samples, summary.duration_s, summary.start_mb, summary.end_mb, summary.peak_mb) == (20, 19.0, 0.0, 4.0, 4.0)
    judged, leak = judge_timeline(timeline, SHORT_RUN, warmup_s=5.0)
    assert leak.warmup_s == 5.0
    assert [(p.name, p.start_s, p.end_s) for p in judged.phases] == [("warm-up", 0.0, 5.0), ("analysed", 5.0, 19.0)]
    empty = summarize_timeline(Timeline("t", 0.0, (), ()))
    assert (empty.samples, empty.peak_mb) == (0, 0.0)


# --- cgroup files ------------------------------------------------------------------------------


def write_files(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text, encoding="ascii")
    return folder


def test_cgroup_v2_files_are_parsed_and_a_rising_oom_kill_counter_is_one_event_per_kill(tmp_path: Path) -> None:
    events = "low 0\nhigh 0\nmax 7\noom 1\noom_kill {kills}\noom_group_kill 0\n"
    group = write_files(tmp_path / "app.slice", {"memory.current": "52428800\n", "memory.max": "max\n",
                                                 "memory.events": events.format(kills=1), "cgroup.procs": "12\n34\n"})
    target = CgroupTarget(group)
    assert target.version == 2
    reading = target.read()
    assert reading == TargetReading(50 * MIB, None, True, {"max": 7.0, "oom": 1.0, "high": 0.0, "oom_kill": 1.0,
                                                           "processes": 2.0})
    assert target.new_oom_events(1.0) == []  # kills from before the watch are not ours to report
    write_files(group, {"memory.max": "67108864\n", "memory.events": events.format(kills=3)})
    reading = target.read()
    assert reading.limit_bytes == 64 * MIB
    kills = target.new_oom_events(2.5)
    assert [(e.time_s, e.kind) for e in kills] == [(2.5, "oom_kill"), (2.5, "oom_kill")]
    assert "oom_kill counter 1 -> 3" in kills[0].detail
    assert target.new_oom_events(3.0) == []


def test_cgroup_v1_files_are_parsed_and_an_unlimited_limit_is_none(tmp_path: Path) -> None:
    control = "oom_kill_disable 0\nunder_oom 0\noom_kill {kills}\n"
    group = write_files(tmp_path / "v1", {"memory.usage_in_bytes": "1048576", "memory.limit_in_bytes": "9223372036854771712",
                                          "memory.failcnt": "0", "memory.oom_control": control.format(kills=0)})
    target = CgroupTarget(group)
    assert target.version == 1
    assert target.read() == TargetReading(float(MIB), None, True, {"failcnt": 0.0, "under_oom": 0.0, "oom_kill": 0.0})
    write_files(group, {"memory.limit_in_bytes": str(64 * MIB), "memory.failcnt": "12",
                        "memory.oom_control": control.format(kills=1)})
    reading = target.read()
    assert (reading.limit_bytes, reading.extra["failcnt"]) == (64 * MIB, 12.0)
    assert [e.kind for e in target.new_oom_events(1.0)] == ["oom_kill"]
    for name in ("memory.usage_in_bytes", "memory.limit_in_bytes", "memory.failcnt", "memory.oom_control"):
        (group / name).unlink()
    group.rmdir()
    assert target.read().alive is False  # the cgroup was removed


def test_missing_or_invalid_cgroups_are_usage_errors(tmp_path: Path) -> None:
    with pytest.raises(NoSuchTarget, match="no such cgroup"):
        CgroupTarget(tmp_path / "nope")
    with pytest.raises(UsageError, match="not a memory cgroup"):
        CgroupTarget(tmp_path)
    write_files(tmp_path / "bad", {"memory.current": "lots\n", "memory.max": "max\n"})
    with pytest.raises(UsageError, match="cannot read the memory cgroup"):
        CgroupTarget(tmp_path / "bad")


def test_a_missing_pid_is_a_usage_error() -> None:
    with pytest.raises(NoSuchTarget, match="no such process"):
        ProcessTarget(unused_pid())
    assert issubclass(NoSuchTarget, UsageError)


def unused_pid() -> int:
    pid_max = int(Path("/proc/sys/kernel/pid_max").read_text(encoding="ascii"))
    return pid_max + 1  # above pid_max: never a process


# --- real children, watched at once -----------------------------------------------------------


def test_four_real_children_watched_concurrently_only_the_leak_is_called_a_leak(spawn: Any) -> None:
    """30 s each, all four at once from threads: a 30 MB/min leak, a cache that fills 40 MB in 10 s
    and plateaus, a 40 MB sawtooth (3 s period) and a steady process."""
    rate = 30.0
    shapes = {"leak": ("leak", str(rate)), "plateau": ("plateau",), "sawtooth": ("sawtooth",), "steady": ("steady",)}
    children = {name: spawn(*args) for name, args in shapes.items()}
    timelines: dict[str, Timeline] = {}
    errors: list[BaseException] = []

    def follow(name: str) -> None:
        try:
            timelines[name] = watch(ProcessTarget(children[name].pid), interval_s=0.25, duration_s=30.0)
        except Exception as exc:  # noqa: BLE001 - surfaced below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=follow, args=(name,)) for name in shapes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    verdicts = {name: judge_timeline(timeline, SHORT_RUN)[1] for name, timeline in timelines.items()}
    report = {name: (v.detected, v.severity, round(v.slope_mb_per_min, 2), v.reasons[-1]) for name, v in verdicts.items()}
    print(report)  # visible with -s: the measured slopes

    for name, timeline in timelines.items():
        gaps = sorted(b - a for a, b in zip(timeline.times_s, timeline.times_s[1:], strict=False))
        assert len(timeline.times_s) >= 100, name
        assert gaps[len(gaps) // 2] == pytest.approx(0.25, abs=0.05), name  # real timestamps at the interval
    leak = verdicts["leak"]
    assert leak.detected, leak.reasons
    assert abs(leak.slope_mb_per_min - rate) / rate < 0.20, leak.slope_mb_per_min
    for name in ("plateau", "sawtooth", "steady"):
        assert not verdicts[name].detected, (name, verdicts[name].reasons)
    swing = (max(timelines["sawtooth"].memory_bytes) - min(timelines["sawtooth"].memory_bytes[40:])) / MIB
    assert swing > 30  # the sawtooth really swung
    plateau = timelines["plateau"].memory_bytes
    assert (plateau[-1] - plateau[0]) / MIB > 30  # and the cache really filled


# --- the command ---------------------------------------------------------------------------------


WATCH_KEYS = {"schema": str, "samples": int, "duration_s": float, "start_mb": float, "end_mb": float, "peak_mb": float,
              "leak": dict, "oom_events": list}
LEAK_KEYS = {"detected": bool, "slope_mb_per_min": float, "ci_low": float, "ci_high": float, "severity": str}


def watch_json(result: Invoked) -> dict[str, Any]:
    assert result.exception is None, result
    document = json.loads(result.stdout, parse_constant=lambda name: pytest.fail(f"{name} in the JSON"))
    for key, kind in WATCH_KEYS.items():
        assert isinstance(document[key], kind), (key, document[key])
    for key, kind in LEAK_KEYS.items():
        assert isinstance(document["leak"][key], kind), (key, document["leak"][key])
    assert document["schema"] == "benchtrack.watch/1"
    assert document["leak"]["severity"] in ("critical", "major", "minor", "none")
    for event in document["oom_events"]:
        assert set(event) == {"time_s", "kind", "detail"}
    return document


def test_watching_a_leaking_command_fails_at_minor_and_logs_the_run_to_mlflow(
        invoke: Any, levels_file: Path, store_uri: str, open_client: Any, tmp_path: Path) -> None:
    rate = 60.0
    chart = tmp_path / "watch.png"
    started = time.monotonic()
    result = invoke(["watch", "--levels", levels_file, "--level", "nightly", "--interval", "0.2", "--duration", "8s",
                     "--tracking-uri", store_uri, "--chart", chart, "--format", "json",
                     "--", *child_command("leak", str(rate))])
    elapsed = time.monotonic() - started
    assert result.exit_code == 1, result
    document = watch_json(result)
    assert document["leak"]["detected"] is True
    assert document["leak"]["severity"] in ("minor", "major", "critical")
    assert abs(document["leak"]["slope_mb_per_min"] - rate) / rate < 0.2, document["leak"]
    assert document["leak"]["ci_low"] <= document["leak"]["slope_mb_per_min"] <= document["leak"]["ci_high"]
    assert 32 <= document["samples"] <= 45
    assert document["duration_s"] == pytest.approx(8.0, abs=0.5)
    assert document["peak_mb"] >= document["end_mb"] > document["start_mb"]
    assert document["oom_events"] == []
    assert document["exit_code"] == -signal.SIGTERM  # we ended it when the duration passed
    assert document["kind"] == "command"
    assert elapsed < 30

    client = open_client(store_uri)
    experiment = client.get_experiment_by_name("benchtrack/watch")
    runs = client.search_runs([experiment.experiment_id])
    assert [run.info.run_id for run in runs] == [document["run_id"]]
    run = runs[0]
    assert run.data.tags["benchtrack.watch.kind"] == "command"
    assert "leaky_child.py leak" in run.data.tags["benchtrack.watch.target"]
    assert len(run.data.tags["benchtrack.machine.fingerprint"]) == 16
    assert run.data.tags["benchtrack.leak.detected"] == "true"
    assert run.data.metrics["peak_mb"] == pytest.approx(document["peak_mb"])
    assert run.data.metrics["slope_mb_per_min"] == pytest.approx(document["leak"]["slope_mb_per_min"])
    history = sorted(client.get_metric_history(run.info.run_id, "memory_mb"), key=lambda m: m.step)
    assert [m.step for m in history] == list(range(document["samples"]))
    assert max(m.value for m in history) == pytest.approx(document["peak_mb"])
    artifacts = {Path(a.path).name for a in client.list_artifacts(run.info.run_id, "benchtrack")}
    assert "timeline.json" in artifacts
    local = client.download_artifacts(run.info.run_id, "benchtrack/timeline.json", str(tmp_path))
    timeline = timeline_from_dict(json.loads(Path(local).read_text(encoding="utf-8")))
    assert len(timeline.times_s) == document["samples"]
    assert [p.name for p in timeline.phases] == ["warm-up", "analysed"]
    # Real timestamps: each point is stamped at started_at + its measured time.
    assert [m.timestamp for m in history] == [round((timeline.started_at + t) * 1000) for t in timeline.times_s]
    if charts_available():
        assert chart.is_file()
        assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert "timeline.png" in artifacts
    else:
        assert "charts are not available" in result.stderr


def charts_available() -> bool:
    try:
        import benchtrack.report.charts  # noqa: F401
    except ImportError:
        return False
    return True


def test_watching_a_running_pid_reports_no_leak_and_leaves_the_process_alone(invoke: Any, spawn: Any,
                                                                                levels_file: Path) -> None:
    child = spawn("steady", "30")
    time.sleep(0.5)
    result = invoke(["watch", "--pid", str(child.pid), "--levels", levels_file, "--level", "nightly",
                     "--interval", "0.2", "--duration", "3", "--no-track", "--format", "json"])
    assert result.exit_code == 0, result
    document = watch_json(result)
    assert document["kind"] == "process"
    assert document["leak"]["detected"] is False
    assert document["samples"] >= 12
    assert 25 < document["peak_mb"] < 60  # 30 MiB held plus the interpreter
    assert document["run_id"] is None
    assert child.poll() is None  # never touch a process we did not start


def test_table_output_names_the_verdict(invoke: Any, spawn: Any, levels_file: Path) -> None:
    child = spawn("steady")
    result = invoke(["watch", "--pid", str(child.pid), "--levels", levels_file, "--interval", "0.2",
                     "--duration", "1", "--no-track", "--level", "relaxed"])
    assert result.exit_code == 0, result
    assert "benchtrack watch" in result.stdout
    assert "too few samples" in result.stdout  # 1 s is too short to judge: said, not guessed


@pytest.mark.parametrize(("script", "exit_code", "events"), [
    ("kill -9 $$", -9, ["exit_137"]),
    ("exit 137", 137, ["exit_137"]),
    ("exit 3", 3, []),
])
def test_a_command_killed_by_sigkill_is_an_oom_event_and_short_runs_give_no_nan(
        invoke: Any, script: str, exit_code: int, events: list[str]) -> None:
    result = invoke(["watch", "--interval", "0.1", "--no-track", "--format", "json", "--", "sh", "-c", script])
    assert result.exit_code == 0, result  # an OOM kill is reported; only a leak fails the watch
    document = watch_json(result)
    assert document["exit_code"] == exit_code
    assert [e["kind"] for e in document["oom_events"]] == events
    leak = document["leak"]
    assert (leak["detected"], leak["severity"], leak["judged"]) == (False, "none", False)
    assert (leak["slope_mb_per_min"], leak["ci_low"], leak["ci_high"]) == (0.0, 0.0, 0.0)
    assert "too few samples" in leak["reasons"][0]


def test_the_whole_process_tree_of_a_command_is_ended_when_the_duration_passes(invoke: Any, tmp_path: Path) -> None:
    pidfile = tmp_path / "pids"
    started = time.monotonic()
    result = invoke(["watch", "--interval", "0.2", "--duration", "2", "--no-track", "--format", "json",
                     "--", *child_command("tree", str(pidfile))])
    elapsed = time.monotonic() - started
    assert result.exit_code == 0, result
    child, grandchild = (int(pid) for pid in pidfile.read_text(encoding="ascii").split())
    for pid in (child, grandchild):
        assert gone(pid), pid
    assert elapsed < 2 + 3
    document = watch_json(result)
    assert document["exit_code"] == -signal.SIGTERM
    assert document["peak_mb"] > 5  # the grandchild's memory counted with its parent's


def test_a_descendant_that_ignores_sigterm_gets_sigkill_after_the_grace(tmp_path: Path) -> None:
    pidfile = tmp_path / "pids"
    target = CommandTarget(child_command("tree", str(pidfile), "stubborn"), grace_s=0.5)
    try:
        deadline = time.monotonic() + 10
        while not pidfile.exists() or len(pidfile.read_text(encoding="ascii").split()) < 2:
            assert time.monotonic() < deadline, "the tree did not start"
            time.sleep(0.05)
        assert target.read().extra["processes"] == 2
    finally:
        target.close()
    child, grandchild = (int(pid) for pid in pidfile.read_text(encoding="ascii").split())
    assert gone(child)
    assert gone(grandchild)


def gone(pid: int, wait_s: float = 2.0) -> bool:
    """Exited (a zombie waiting for init to reap it counts as exited)."""
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


def test_command_target_close_is_idempotent_and_records_the_exit_code() -> None:
    target = CommandTarget(["sleep", "30"])
    assert target.read().alive
    target.close()
    target.close()
    assert target.exit_code == -signal.SIGTERM
    assert target.stopped_by_us
    assert target.read().alive is False
    assert target.new_oom_events(1.0) == []  # we killed it: not an OOM


@pytest.mark.parametrize(("args", "fragments"), [
    (["--pid", "PID"], ["no such process", "PID"]),
    (["--", "benchtrack-no-such-command-xyz"], ["command not found: benchtrack-no-such-command-xyz"]),
    ([], ["nothing to watch"]),
    (["--pid", "1", "--cgroup", "/sys/fs/cgroup/memory"], ["exactly one target", "--pid and --cgroup"]),
    (["--pid", "1", "--", "sleep", "1"], ["exactly one target"]),
    (["--cgroup", "/nonexistent/benchtrack-cgroup"], ["no such cgroup"]),
    (["--bogus"], ["no such option: --bogus"]),
    (["--pid", "1", "--duration", "soon"], ["invalid duration"]),
    (["--pid", "1", "--level", "weekly"], ["unknown level"]),
])
def test_bad_input_is_one_line_and_exit_2(invoke: Any, args: list[str], fragments: list[str]) -> None:
    pid = str(unused_pid())
    args = [pid if a == "PID" else a for a in args]
    fragments = [pid if f == "PID" else f for f in fragments]
    assert_one_error_line(invoke(["watch", "--no-track", *args]), *fragments)


def test_an_unreachable_container_engine_is_one_line(invoke: Any, tmp_path: Path) -> None:
    result = invoke(["watch", "--no-track", "--container", "web", "--docker-url", f"unix://{tmp_path}/no.sock"])
    assert_one_error_line(result)


# --- a real cgroup v1, a real OOM kill ---------------------------------------------------------


@contextlib.contextmanager
def memory_cgroup(limit_bytes: int) -> Iterator[Path]:
    """A fresh v1 memory cgroup with a limit (memsw too when swap is accounted), removed after."""
    if os.geteuid() != 0:
        pytest.skip("creating a memory cgroup needs root")
    if not (CGROUP_V1_MEMORY / "memory.usage_in_bytes").is_file():
        pytest.skip(f"no cgroup v1 memory controller at {CGROUP_V1_MEMORY}")
    group = CGROUP_V1_MEMORY / f"benchtrack-test-{uuid.uuid4().hex[:12]}"
    try:
        group.mkdir()
    except OSError as exc:
        pytest.skip(f"creating a memory cgroup is not permitted here: {exc}")
    try:
        (group / "memory.limit_in_bytes").write_text(str(limit_bytes), encoding="ascii")
        memsw = group / "memory.memsw.limit_in_bytes"
        if memsw.exists():
            memsw.write_text(str(limit_bytes), encoding="ascii")
        yield group
    finally:
        for _ in range(50):  # a killed process leaves the cgroup a moment after it is reaped
            try:
                group.rmdir()
                break
            except OSError:
                time.sleep(0.1)
        else:
            pytest.fail(f"could not remove {group}")


def test_a_real_oom_kill_in_a_v1_memory_cgroup_is_reported(invoke: Any) -> None:
    with memory_cgroup(64 * MIB) as group:
        # The shell moves itself into the cgroup, then becomes the child: it waits 1 s, then
        # grabs 256 MiB at 200 MiB/s, far past the 64 MiB limit.
        hog = subprocess.Popen(["sh", "-c", f'echo $$ > {group}/cgroup.procs && exec "$0" "$@"',
                                *child_command("hog", "256", "1")])
        try:
            result = invoke(["watch", "--cgroup", str(group), "--interval", "0.1", "--duration", "4",
                             "--no-track", "--format", "json"])
            hog.wait(timeout=10)
        finally:
            if hog.poll() is None:
                hog.kill()
                hog.wait()
        assert hog.returncode == -signal.SIGKILL  # the kernel's OOM killer
        assert result.exit_code == 0, result
        document = watch_json(result)
        assert document["kind"] == "cgroup"
        assert [e["kind"] for e in document["oom_events"]] == ["oom_kill"]
        assert "oom_kill counter 0 -> 1" in document["oom_events"][0]["detail"]
        assert document["limit_mb"] == 64
        assert 30 < document["peak_mb"] <= 64
        assert document["end_mb"] < document["peak_mb"]  # the kill gave the memory back
        after = CgroupTarget(group).read()
        # failcnt is no OOM signal: with memory.memsw.limit_in_bytes set too, this kernel (6.18)
        # leaves failcnt (and memsw.failcnt) at 0 through the kill; oom_kill is what counts.
        assert "failcnt" in after.extra
        assert after.extra["oom_kill"] == 1
        assert after.extra["processes"] == 0


def test_no_nan_in_the_document_even_without_samples() -> None:
    from benchtrack.cli.watch_cmd import watch_document

    timeline, leak = judge_timeline(Timeline("t", 0.0, (), ()), SHORT_RUN)
    assert math.isnan(leak.slope_mb_per_min)
    document = watch_document(timeline, leak, summarize_timeline(timeline).as_dict(), kind="process", level="quick",
                              exit_code=None, run_id=None, failing=False)
    text = json.dumps(document, allow_nan=False)
    assert json.loads(text)["leak"]["slope_mb_per_min"] == 0.0
