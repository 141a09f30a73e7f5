"""Contention, for real: two CPU burners share the worker's CPU during one side of a real
comparison (separate `benchtrack run --output` invocations pinned to one CPU). The burned side
is flagged as contended, its descheduled samples are visible, and wall time alone reports no
regression; the busy-machine warning of `run` is checked with the same burners."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import invoke_cli, write_bench_folder

from benchtrack.results import load_results_file

pytestmark = pytest.mark.slow

CPU = 0
BENCH = """
    from benchtrack import benchmark


    @benchmark
    def spin():
        total = 0
        for i in range(20_000):
            total += i * i
        return total
"""
LEVELS = """\
schema = "benchtrack.levels/1"

[levels.quick]
processes = 3
samples = 6
warmups = 1
min_sample_time = 0.02
timeout = 120
fail_on = "minor"
"""

needs_affinity = pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="CPU pinning needs Linux")


@contextlib.contextmanager
def burners_on(cpu: int, count: int = 2) -> Iterator[None]:
    """Busy loops pinned to one CPU, killed afterwards whatever happens."""
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    try:
        for hog in hogs:
            os.sched_setaffinity(hog.pid, {cpu})
        yield
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()


def run_pinned(folder: Path, output: Path) -> subprocess.CompletedProcess[str]:
    """`benchtrack run --output` with the CLI and therefore its workers on one CPU."""
    command = [sys.executable, "-m", "benchtrack", "run", str(folder), "--no-track", "--output", str(output)]
    return subprocess.run(command, preexec_fn=lambda: os.sched_setaffinity(0, {CPU}), capture_output=True,
                          text=True, timeout=300, check=False, cwd=folder.parent)


@needs_affinity
def test_a_burned_side_is_contended_and_wall_time_alone_reports_no_regression(tmp_path: Path,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    folder = write_bench_folder(tmp_path / "bench", {"bench_spin.py": BENCH}, LEVELS)
    quiet = run_pinned(folder, tmp_path / "quiet.json")
    assert quiet.returncode == 0, quiet.stderr
    with burners_on(CPU):
        burned = run_pinned(folder, tmp_path / "burned.json")
    assert burned.returncode == 0, burned.stderr

    [run] = load_results_file(tmp_path / "burned.json")
    samples = run.benchmarks[0].samples
    # the wall clock did see the burners' time: most samples were preempted, wall far above CPU
    preempted = [s for s in samples if s.values["ctx_involuntary"] >= 1 and s.values["wall_s"] > 1.5 * s.values["cpu_s"]]
    assert len(preempted) >= len(samples) // 2, [s.values for s in samples]

    monkeypatch.chdir(tmp_path)
    result = invoke_cli(["compare", "quiet.json", "burned.json", "--format", "json", "--fail-on", "minor"])
    assert result.exit_code == 0, result
    document = json.loads(result.stdout)
    wall = next(c for c in document["comparisons"] if c["metric"] == "wall_s")
    assert wall["verdict"] != "regression", wall  # the burners' time is not blamed on the code
    assert any("under contention" in note for note in wall["notes"]), wall
    contention = document["contention"]["spin"]
    assert contention["candidate"]["contended"] is True
    # the quiet side may share the machine with other work too, but far less of its time was taken
    assert contention["candidate"]["descheduled_fraction"] > contention["baseline"]["descheduled_fraction"] + 0.3

    table = invoke_cli(["compare", "quiet.json", "burned.json"])
    assert "(contended)" in table.stdout, table


@needs_affinity
def test_run_warns_at_its_start_when_the_machine_is_busy(tmp_path: Path) -> None:
    folder = write_bench_folder(tmp_path / "bench", {"bench_spin.py": BENCH}, LEVELS)
    with burners_on(CPU), burners_on(1 if os.cpu_count() and os.cpu_count() > 1 else CPU):  # type: ignore[operator]
        result = subprocess.run([sys.executable, "-m", "benchtrack", "run", str(folder), "--no-track", "-b", "spin",
                                 "--samples", "1", "--processes", "1"],
                                capture_output=True, text=True, timeout=300, check=False, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "benchtrack: warning:" in result.stderr
    assert "busy" in result.stderr
