"""Tests of benchtrack.importers on real files: pytest-benchmark and pyperf run here in
subprocesses (once per module, ~2-5 s each) and every assertion reads what they wrote."""

from __future__ import annotations

import gzip
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from benchtrack.errors import ResultFormatError
from benchtrack.importers import detect_format, load_any
from benchtrack.importers.pytest_benchmark import SAVE_DATA_HINT
from benchtrack.results import WALL, RunResult, dumps_results, run_result_to_dict

TIMEOUT_S = 180
SLEEP_S = 0.002
PEDANTIC_ITERATIONS = 3
PYPERF_LOOPS = 10
PYPERF_OPTIONS = ("--processes", "3", "--values", "3", "--warmups", "1", "--loops", str(PYPERF_LOOPS))

PYTEST_BENCHMARK_TESTS = f"""
    import time

    import pytest


    @pytest.mark.parametrize("n", [10_000, 100_000])  # slow enough calls keep rounds (and samples) few
    def test_sum(benchmark, n):
        benchmark(sum, range(n))


    def test_sleep(benchmark):
        # {PEDANTIC_ITERATIONS} calls per round: the importer must report seconds per call, not per round
        benchmark.pedantic(time.sleep, args=({SLEEP_S},), rounds=5, iterations={PEDANTIC_ITERATIONS})
"""

PYPERF_SLEEP = f"""
    import time

    import pyperf

    # processes=6 only sets what --fast halves; every run here passes --processes or --fast.
    pyperf.Runner(processes=6).bench_func("sleep", time.sleep, {SLEEP_S})
"""

PYPERF_CLOCK = """
    import pyperf


    def one_second_per_loop(loops):
        # The time a sample reports is ours to give: exactly 1 s per loop, whatever the machine does.
        return float(loops)


    pyperf.Runner(processes=6).bench_time_func("clock", one_second_per_loop)
"""

PYPERF_COMMIT = "0123456789abcdef0123456789abcdef01234567"
PYPERF_SUMS = f"""
    import pyperf


    def ten_sums():
        for _ in range(10):
            sum(range(100))


    # pyperformance records the benchmarked commit under these metadata names.
    commit = {{"commit_id": "{PYPERF_COMMIT}", "commit_branch": "main"}}
    pyperf.Runner(processes=6).bench_func("ten-sums", ten_sums, inner_loops=10, metadata=commit)
"""


def _clean_env() -> dict[str, str]:
    # Neither the caller's pytest options nor its git config or repository may leak in.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "PYTEST_"))}
    return env | {"GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}


def _run(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(args, cwd=cwd, env=env or _clean_env(), capture_output=True, text=True,
                          timeout=TIMEOUT_S, check=False)
    assert done.returncode == 0, f"{args} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout.strip()


def _git(repo: Path, *args: str) -> str:
    return _run(["git", "-c", "user.email=t@t", "-c", "user.name=t", "-c", "commit.gpgsign=false", *args], repo)


def _run_pytest_benchmark(folder: Path, *options: str) -> None:
    # Autoloading every installed plugin costs seconds and could change the run; load only ours.
    env = _clean_env() | {"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    _run([sys.executable, "-m", "pytest", "-p", "pytest_benchmark.plugin", "test_workload.py", "-q",
          "-p", "no:cacheprovider", "--benchmark-min-rounds=5", "--benchmark-max-time=0.05", *options], folder, env)


def _write_workload(folder: Path) -> None:
    (folder / "test_workload.py").write_text(textwrap.dedent(PYTEST_BENCHMARK_TESTS), encoding="utf-8")


@pytest.fixture(scope="module")
def pytest_benchmark_session(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder where one real pytest-benchmark session ran, in a git repository with one commit.

    It wrote out.json with --benchmark-json, which always holds the raw timings, and, with
    --benchmark-autosave but no --benchmark-save-data, a storage file under store/ without them:
    one session gives both kinds of file.
    """
    pytest.importorskip("pytest_benchmark", reason="pytest-benchmark is not installed, so it cannot write a file")
    folder = tmp_path_factory.mktemp("pytest-benchmark")
    _write_workload(folder)
    if shutil.which("git"):
        _git(folder, "-c", "init.defaultBranch=main", "init", "-q")
        _git(folder, "add", "test_workload.py")
        _git(folder, "commit", "-q", "-m", "workload")
    _run_pytest_benchmark(folder, "--benchmark-json=out.json", "--benchmark-autosave",
                          f"--benchmark-storage=file://{folder / 'store'}")
    return folder


@pytest.fixture
def pytest_benchmark_file(pytest_benchmark_session: Path) -> Path:
    return pytest_benchmark_session / "out.json"


@pytest.fixture
def raw_pytest_benchmark(pytest_benchmark_file: Path) -> dict[str, Any]:
    return json.loads(pytest_benchmark_file.read_text(encoding="utf-8"))


@pytest.fixture
def write_json(tmp_path: Path) -> Callable[[object, str], Path]:
    def write(data: object, name: str = "edited.json") -> Path:
        path = tmp_path / name
        path.write_text(json.dumps(data), encoding="utf-8")  # allow_nan: NaN/Infinity are written as such
        return path

    return write


def _only(path: Path) -> RunResult:
    runs = load_any(path)
    assert len(runs) == 1
    return runs[0]


def _assert_one_line(excinfo: pytest.ExceptionInfo[ResultFormatError], path: Path) -> str:
    message = str(excinfo.value)
    assert "\n" not in message
    assert message.startswith(str(path))
    return message


# -- pytest-benchmark ------------------------------------------------------------------------------


def test_pytest_benchmark_file_gives_one_sample_per_round(pytest_benchmark_file: Path,
                                                          raw_pytest_benchmark: dict[str, Any]) -> None:
    run = _only(pytest_benchmark_file)
    entries = raw_pytest_benchmark["benchmarks"]

    assert (run.suite, run.level) == ("pytest-benchmark", "imported")
    assert [b.name for b in run.benchmarks] == [e["fullname"] for e in entries]
    assert "test_workload.py::test_sum[10000]" in {b.name for b in run.benchmarks}
    for benchmark, entry in zip(run.benchmarks, entries, strict=True):
        stats = entry["stats"]
        assert benchmark.kind == "time"
        assert benchmark.file == "test_workload.py"
        assert len(benchmark.samples) == len(stats["data"]) == stats["rounds"]
        assert benchmark.series(WALL) == stats["data"]
        assert {s.loops for s in benchmark.samples} == {stats["iterations"]}
        assert [s.index for s in benchmark.samples] == list(range(len(stats["data"])))
        assert benchmark.process_count == 1  # pytest-benchmark times everything in its own process
        assert statistics.fmean(benchmark.series(WALL)) == pytest.approx(stats["mean"])
    by_name = {b.name: b for b in run.benchmarks}
    assert by_name["test_workload.py::test_sum[100000]"].benchmark == "test_workload.py::test_sum"
    assert by_name["test_workload.py::test_sum[100000]"].params == {"n": "100000"}
    stamp = datetime.fromisoformat(raw_pytest_benchmark["datetime"]).timestamp()
    assert run.started_at == run.finished_at == stamp
    assert run.metadata["benchtrack.imported_from"] == f"pytest-benchmark {raw_pytest_benchmark['version']}"


FAKE_CLOCK = """
    _now = [0.0]


    def tick():
        # Every reading is one second later: each round of calls measures exactly 1.0 s.
        _now[0] += 1.0
        return _now[0]
"""

FAKE_CLOCK_TESTS = f"""
    def test_calls(benchmark):
        benchmark.pedantic(len, args=("x",), rounds=5, iterations={PEDANTIC_ITERATIONS})
"""


def test_pytest_benchmark_values_are_seconds_per_call(pytest_benchmark_file: Path, tmp_path: Path) -> None:
    sleep = next(b for b in _only(pytest_benchmark_file).benchmarks if b.name.endswith("::test_sleep"))
    values = sleep.series(WALL)

    assert {s.loops for s in sleep.samples} == {PEDANTIC_ITERATIONS}
    # One call sleeps >= SLEEP_S, so no value can be shorter than that.
    assert min(values) >= SLEEP_S

    # Per call, not per round, decided without the wall clock: under pytest-benchmark's
    # --benchmark-timer with a clock that advances 1 s per reading, a round of 3 calls lasts
    # exactly 1 s, so a per-call value is exactly 1/3 (per round it would be 1.0).
    (tmp_path / "fake_clock.py").write_text(textwrap.dedent(FAKE_CLOCK), encoding="utf-8")
    (tmp_path / "test_workload.py").write_text(textwrap.dedent(FAKE_CLOCK_TESTS), encoding="utf-8")
    env = _clean_env() | {"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1", "PYTHONPATH": str(tmp_path)}
    _run([sys.executable, "-m", "pytest", "-p", "pytest_benchmark.plugin", "test_workload.py", "-q",
          "-p", "no:cacheprovider", "--benchmark-timer=fake_clock.tick", "--benchmark-json=out.json"], tmp_path, env)
    (calls,) = _only(tmp_path / "out.json").benchmarks
    assert {s.loops for s in calls.samples} == {PEDANTIC_ITERATIONS}
    assert calls.series(WALL) == pytest.approx([1.0 / PEDANTIC_ITERATIONS] * 5)


def test_pytest_benchmark_metadata_names_commit_and_machine(pytest_benchmark_file: Path,
                                                            raw_pytest_benchmark: dict[str, Any]) -> None:
    if shutil.which("git") is None:
        pytest.skip("git is not installed, so the workload folder is no repository")
    metadata = _only(pytest_benchmark_file).metadata
    folder = pytest_benchmark_file.parent

    assert metadata["mlflow.source.git.commit"] == _git(folder, "rev-parse", "HEAD")
    assert metadata["benchtrack.git.branch"] == _git(folder, "rev-parse", "--abbrev-ref", "HEAD")
    assert metadata["benchtrack.git.dirty"] == "false"
    assert metadata["benchtrack.python.version"] == platform.python_version()
    assert metadata["benchtrack.cpu.model"] == raw_pytest_benchmark["machine_info"]["cpu"]["brand_raw"]


def test_pytest_benchmark_storage_file_without_data_asks_for_save_data(pytest_benchmark_session: Path) -> None:
    [saved] = (pytest_benchmark_session / "store").rglob("*.json")
    assert "data" not in json.loads(saved.read_text(encoding="utf-8"))["benchmarks"][0]["stats"]

    with pytest.raises(ResultFormatError) as excinfo:
        load_any(saved)
    message = _assert_one_line(excinfo, saved)
    assert "test_workload.py::test_sum[10000]" in message
    assert SAVE_DATA_HINT in message
    assert "--benchmark-save-data" in message


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), "1e999"], ids=["NaN", "Infinity", "overflow"])
def test_non_finite_pytest_benchmark_value_names_the_benchmark(raw_pytest_benchmark: dict[str, Any], bad: float | str,
                                                               write_json: Callable[..., Path]) -> None:
    entry = raw_pytest_benchmark["benchmarks"][1]
    entry["stats"]["data"][2] = 123.25 if isinstance(bad, str) else bad
    path = write_json(raw_pytest_benchmark)
    if isinstance(bad, str):  # JSON has no infinity, but a too large number parses as one
        path.write_text(path.read_text(encoding="utf-8").replace("123.25", bad), encoding="utf-8")

    with pytest.raises(ResultFormatError) as excinfo:
        load_any(path)
    message = _assert_one_line(excinfo, path)
    assert entry["fullname"] in message
    assert "sample 2" in message


def test_nan_outside_the_timings_is_refused_too(raw_pytest_benchmark: dict[str, Any],
                                                write_json: Callable[..., Path]) -> None:
    raw_pytest_benchmark["machine_info"]["cpu"]["hz"] = float("nan")
    path = write_json(raw_pytest_benchmark)

    with pytest.raises(ResultFormatError, match="non-finite number NaN") as excinfo:
        load_any(path)
    _assert_one_line(excinfo, path)


def test_duplicate_benchmark_names_are_refused(raw_pytest_benchmark: dict[str, Any],
                                               write_json: Callable[..., Path]) -> None:
    raw_pytest_benchmark["benchmarks"].append(raw_pytest_benchmark["benchmarks"][0])
    path = write_json(raw_pytest_benchmark)

    with pytest.raises(ResultFormatError, match="appears more than once") as excinfo:
        load_any(path)
    _assert_one_line(excinfo, path)


# -- pyperf ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pyperf_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Real pyperf files: sleep.json (3 worker processes, fixed loops) and fast.json (--fast: a
    calibration run, then 3 workers, of a benchmark with inner_loops); both run at once."""
    pytest.importorskip("pyperf", reason="pyperf is not installed (it comes with the test extras)")
    folder = tmp_path_factory.mktemp("pyperf")
    (folder / "sleep_bench.py").write_text(textwrap.dedent(PYPERF_SLEEP), encoding="utf-8")
    (folder / "sums_bench.py").write_text(textwrap.dedent(PYPERF_SUMS), encoding="utf-8")
    (folder / "clock_bench.py").write_text(textwrap.dedent(PYPERF_CLOCK), encoding="utf-8")
    commands = {
        "sleep": ["sleep_bench.py", *PYPERF_OPTIONS, "-o", "sleep.json"],
        "clock": ["clock_bench.py", *PYPERF_OPTIONS, "-o", "clock.json"],
        "fast": ["sums_bench.py", "--fast", "--min-time", "0.001", "-o", "fast.json"],
    }
    processes = {name: subprocess.Popen([sys.executable, *args, "-q"], cwd=folder, env=_clean_env(),
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                 for name, args in commands.items()}
    for name, process in processes.items():
        output, _ = process.communicate(timeout=TIMEOUT_S)
        assert process.returncode == 0, f"pyperf {name} failed:\n{output}"
    return {name: folder / f"{name}.json" for name in commands}


def _pyperf_values(path: Path, name: str | None = None) -> list[float]:
    import pyperf

    suite = pyperf.BenchmarkSuite.load(str(path))
    benchmark = suite.get_benchmark(name) if name else pyperf.Benchmark.load(str(path))
    return list(benchmark.get_values())


def test_pyperf_runs_become_worker_processes(pyperf_files: dict[str, Path]) -> None:
    before = time.time()
    path = pyperf_files["sleep"]
    run = _only(path)
    [sleep] = run.benchmarks

    assert (run.suite, run.level, sleep.name, sleep.kind) == ("pyperf", "imported", "sleep", "time")
    assert sorted({s.process for s in sleep.samples}) == [0, 1, 2]
    assert [s.index for s in sleep.samples] == [0, 1, 2] * 3
    assert sleep.series(WALL) == _pyperf_values(path)
    assert {s.loops for s in sleep.samples} == {PYPERF_LOOPS}
    assert sleep.warmups == 1
    assert before - 600 < run.started_at < run.finished_at <= before
    # pyperf's per-run load average comes along, so a comparison can see a busy machine
    loads = sleep.details["load"]
    assert len(loads) == 3
    assert all(set(load) == {"load1"} and load["load1"] >= 0 for load in loads)


def test_pyperf_values_are_seconds_per_loop(pyperf_files: dict[str, Path]) -> None:
    values = _only(pyperf_files["sleep"]).benchmarks[0].series(WALL)

    # Each value times PYPERF_LOOPS sleeps; per loop it is >= SLEEP_S.
    assert min(values) >= SLEEP_S
    # Per loop, not per sample, decided without the wall clock: a benchmark whose samples report
    # exactly 1 s per loop must import as 1.0 (per sample of 10 loops it would be 10.0).
    [clock] = _only(pyperf_files["clock"]).benchmarks
    assert {s.loops for s in clock.samples} == {PYPERF_LOOPS}
    assert clock.series(WALL) == pytest.approx([1.0] * len(clock.samples))
    assert len(clock.samples) == 9  # 3 processes x 3 values


def test_pyperf_inner_loops_count_in_the_loop_count(pyperf_files: dict[str, Path]) -> None:
    import pyperf

    path = pyperf_files["fast"]
    [sums] = _only(path).benchmarks
    written = pyperf.Benchmark.load(str(path))

    assert written.get_inner_loops() == 10
    assert {s.loops for s in sums.samples} == {written.get_loops() * 10}


def test_pyperf_metadata(pyperf_files: dict[str, Path]) -> None:
    path = pyperf_files["sleep"]
    metadata = _only(path).metadata
    written = json.loads(path.read_text(encoding="utf-8"))["metadata"]

    assert metadata["benchtrack.imported_from"] == "pyperf"
    assert metadata["benchtrack.python.version"] == platform.python_version()
    assert metadata["benchtrack.python.implementation"] == platform.python_implementation()
    assert metadata["benchtrack.cpu.model"] == written.get("cpu_model_name", "unknown")
    assert "mlflow.source.git.commit" not in metadata  # pyperf records no commit of its own
    fast = _only(pyperf_files["fast"]).metadata
    assert (fast["mlflow.source.git.commit"], fast["benchtrack.git.branch"]) == (PYPERF_COMMIT, "main")


def test_pyperf_fast_file_skips_the_calibration_run(pyperf_files: dict[str, Path]) -> None:
    path = pyperf_files["fast"]
    runs = json.loads(path.read_text(encoding="utf-8"))["benchmarks"][0]["runs"]
    measured = [r for r in runs if r.get("values")]
    assert len(measured) < len(runs), "pyperf --fast should have written a calibration run"
    [bench] = _only(path).benchmarks

    assert sorted({s.process for s in bench.samples}) == list(range(len(measured)))
    assert bench.series(WALL) == _pyperf_values(path)


def test_pyperf_suite_dump_with_several_benchmarks_gzip(pyperf_files: dict[str, Path], tmp_path: Path) -> None:
    import pyperf

    path = tmp_path / "suite.json.gz"
    benchmarks = [pyperf.Benchmark.load(str(pyperf_files[name])) for name in ("sleep", "fast")]
    pyperf.BenchmarkSuite(benchmarks).dump(str(path))
    assert path.read_bytes()[:2] == b"\x1f\x8b"

    run = _only(path)

    assert [b.name for b in run.benchmarks] == ["sleep", "ten-sums"]
    for benchmark in run.benchmarks:
        assert benchmark.series(WALL) == _pyperf_values(path, benchmark.name)
        assert benchmark.process_count == 3  # --fast halves the Runner's 6 processes


def test_pyperf_nan_value_names_the_benchmark(pyperf_files: dict[str, Path], write_json: Callable[..., Path]) -> None:
    data = json.loads(pyperf_files["fast"].read_text(encoding="utf-8"))
    data["benchmarks"][0]["runs"][1]["values"][0] = float("nan")
    path = write_json(data)

    with pytest.raises(ResultFormatError, match="'ten-sums'") as excinfo:
        load_any(path)
    _assert_one_line(excinfo, path)


def test_pyperf_benchmark_with_only_calibration_runs(pyperf_files: dict[str, Path], tmp_path: Path,
                                                      write_json: Callable[..., Path]) -> None:
    import pyperf

    suite_path = tmp_path / "suite.json"
    pyperf.BenchmarkSuite([pyperf.Benchmark.load(str(pyperf_files[name])) for name in ("sleep", "fast")]).dump(str(suite_path))
    data = json.loads(suite_path.read_text(encoding="utf-8"))
    for benchmark in data["benchmarks"]:
        benchmark["runs"] = [run for run in benchmark["runs"] if not run.get("values")] or benchmark["runs"]

    sleep, calibrated = _only(write_json(data, "one-calibrated.json")).benchmarks
    assert (sleep.ok, len(sleep.samples)) == (True, 9)  # the sleep runs had no calibration run to keep
    assert (calibrated.name, calibrated.ok, calibrated.samples) == ("ten-sums", False, ())

    data["benchmarks"] = data["benchmarks"][1:]
    path = write_json(data, "only-calibration.json")
    with pytest.raises(ResultFormatError, match="no benchmark in it has any measured value") as excinfo:
        load_any(path)
    _assert_one_line(excinfo, path)


def test_old_pyperf_format_is_refused_with_the_convert_hint(pyperf_files: dict[str, Path],
                                                            write_json: Callable[..., Path]) -> None:
    data = json.loads(pyperf_files["fast"].read_text(encoding="utf-8")) | {"version": 6}
    path = write_json(data)

    with pytest.raises(ResultFormatError, match="pyperf convert") as excinfo:
        load_any(path)
    _assert_one_line(excinfo, path)


# -- benchtrack files, format detection, broken files -----------------------------------------------


def test_benchtrack_file_round_trips(pytest_benchmark_file: Path, tmp_path: Path) -> None:
    imported = _only(pytest_benchmark_file)
    as_list, as_document = tmp_path / "list.json", tmp_path / "one.json"
    as_list.write_text(dumps_results([imported, imported]), encoding="utf-8")
    as_document.write_text(json.dumps(run_result_to_dict(imported)), encoding="utf-8")

    assert load_any(as_list) == [imported, imported]
    assert load_any(as_document) == [imported]


def test_detect_format_names_each_format(pytest_benchmark_file: Path, raw_pytest_benchmark: dict[str, Any],
                                         pyperf_files: dict[str, Path]) -> None:
    benchtrack_document = run_result_to_dict(_only(pytest_benchmark_file))

    assert detect_format(raw_pytest_benchmark) == "pytest-benchmark"
    assert detect_format(json.loads(pyperf_files["fast"].read_text(encoding="utf-8"))) == "pyperf"
    assert detect_format(benchtrack_document) == "benchtrack"
    assert detect_format([benchtrack_document]) == "benchtrack"
    with pytest.raises(ResultFormatError, match="not a benchtrack, pytest-benchmark or pyperf result file"):
        detect_format({"results": []})


def _truncated(text: str) -> bytes:
    return text[: len(text) // 2].encode()


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("object.json", lambda _: b'{"answer": 42, "results": [1, 2]}', "not a benchtrack, pytest-benchmark or pyperf"),
        ("list.json", lambda _: b"[1, 2, 3]", "not a benchtrack, pytest-benchmark or pyperf"),
        ("results.csv", lambda _: b"name,mean\nsum,0.5\n", "is not valid JSON"),
        ("truncated.json", _truncated, "is not valid JSON"),
        ("truncated.json.gz", lambda text: gzip.compress(text.encode())[:200], "is not a readable gzip file"),
        ("binary.json", lambda _: bytes(range(256)), "is not valid JSON"),
        ("newer.json", lambda _: b'{"schema": "benchtrack.result/99"}', "benchtrack.result/1"),
    ],
    ids=["json-object", "json-list", "csv", "truncated", "truncated-gzip", "binary", "newer-schema"],
)
def test_files_benchtrack_cannot_read_give_one_line(pytest_benchmark_file: Path, tmp_path: Path, name: str,
                                                    content: Callable[[str], bytes], expected: str) -> None:
    path = tmp_path / name
    path.write_bytes(content(pytest_benchmark_file.read_text(encoding="utf-8")))

    with pytest.raises(ResultFormatError, match=expected) as excinfo:
        load_any(path)
    _assert_one_line(excinfo, path)


def test_missing_file_gives_one_line(tmp_path: Path) -> None:
    with pytest.raises(ResultFormatError, match="cannot read"):
        load_any(tmp_path / "absent.json")
