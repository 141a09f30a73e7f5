"""The CLI in-process (typer's CliRunner, stdout and stderr apart): output, exit codes, one-line
errors, and that measured data reaches the store or a spool file. Plus one subprocess smoke test
of the installed console script."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from support import (
    ERROR_PREFIX,
    Invoked,
    assert_one_error_line,
    child_runs,
    fresh_store_uri,
    levels_toml,
    parent_runs,
)

from benchtrack.errors import TrackingError
from benchtrack.results import BenchmarkResult, RunResult, load_results_file
from benchtrack.session import SPOOL_FOLDER, RunOptions, Session, prepare

Invoke = Callable[..., Invoked]
OpenClient = Callable[[str], Any]

ONE_PROCESS = levels_toml(processes=1, samples=2, extra="""
[levels.nightly]
processes = 1
samples = 2
warmups = 0
min_sample_time = 0.001
""")

GOOD = """
    from benchtrack import benchmark


    @benchmark(params={"size": [10, 20]}, tags=["math"])
    def add(size):
        return sum(range(size))


    @benchmark(levels=["nightly"])
    def nightly_only():
        pass
"""

# Writes a marker file whenever a worker measures it: proves "nothing was measured" after bad input.
MARKED = """
    from pathlib import Path

    from benchtrack import benchmark


    @benchmark
    def marked():
        Path({marker!r}).touch()
"""

FAILING = """
    from benchtrack import benchmark


    @benchmark
    def first():
        pass


    @benchmark
    def broken():
        raise KeyError("missing [key]")


    @benchmark
    def last():
        pass
"""


@pytest.fixture
def good(bench_folder: Callable[..., Path]) -> Path:
    return bench_folder({"bench_good.py": GOOD}, levels=ONE_PROCESS, name="suite")


@pytest.fixture
def marked(bench_folder: Callable[..., Path], tmp_path: Path) -> tuple[Path, Path]:
    marker = tmp_path / "measured.marker"
    return bench_folder({"bench_marked.py": MARKED.format(marker=str(marker))}, levels=ONE_PROCESS), marker


# --- run ---------------------------------------------------------------------------------------


def test_run_prints_a_table_and_exits_0(invoke: Invoke, good: Path, store_uri: str, open_client: OpenClient) -> None:
    result = invoke(["run", good, "--tracking-uri", store_uri])
    assert result.exit_code == 0, result
    assert result.error_lines == []
    assert "benchtrack run - level quick" in result.stdout
    assert "add[size=10]" in result.stdout  # the brackets are data, not rich markup
    assert "add[size=20]" in result.stdout
    assert "nightly_only" not in result.stdout  # not at level quick
    assert "ok" in result.stdout
    assert f"logged to {store_uri}" in result.stderr
    assert set(child_runs(open_client(store_uri), "suite")) == {"add[size=10]", "add[size=20]"}


def test_run_json_is_the_only_thing_on_stdout(invoke: Invoke, good: Path, store_uri: str) -> None:
    result = invoke(["run", good, "--tracking-uri", store_uri, "--format", "json", "--level", "nightly"])
    assert result.exit_code == 0, result
    document = json.loads(result.stdout)  # the whole of stdout is one JSON document
    assert document["schema"] == "benchtrack.run/1"
    assert document["level"] == "nightly"
    assert document["tracking_uri"] == store_uri
    assert document["tracking_error"] is None
    assert document["unsaved_results"] is None
    assert document["summary"] == {"benchmarks": 3, "failed": 0, "file_errors": 0}
    (suite,) = document["suites"]
    assert suite["suite"] == "suite"
    assert suite["parent_run_id"]
    benchmarks = {b["name"]: b for b in suite["benchmarks"]}
    assert set(benchmarks) == {"add[size=10]", "add[size=20]", "nightly_only"}
    add = benchmarks["add[size=10]"]
    assert add["status"] == "ok"
    assert add["run_id"]
    assert add["samples"] == 2
    assert add["processes"] == 1
    assert add["summary"]["wall_s"]["median"] > 0


def test_run_no_track_writes_no_store(invoke: Invoke, good: Path, chdir_tmp: Path) -> None:
    result = invoke(["run", good, "--no-track", "--format", "json", "-b", "add[size=20]"])
    assert result.exit_code == 0, result
    document = json.loads(result.stdout)
    assert [b["name"] for b in document["suites"][0]["benchmarks"]] == ["add[size=20]"]
    assert document["tracking_uri"] is None
    assert not list(chdir_tmp.rglob("mlflow.db"))


def test_a_failing_benchmark_exits_1_and_the_others_are_stored(
    invoke: Invoke, bench_folder: Callable[..., Path], store_uri: str, open_client: OpenClient,
) -> None:
    folder = bench_folder({"bench_fail.py": FAILING}, levels=ONE_PROCESS)
    result = invoke(["run", folder, "--tracking-uri", store_uri])
    assert result.exit_code == 1, result
    assert "Traceback" not in result.stderr
    assert "failed: KeyError: 'missing [key]'" in result.stdout  # the error text is not markup either
    runs = child_runs(open_client(store_uri), "bench")
    assert set(runs) == {"first", "broken", "last"}
    assert runs["broken"].info.status == "FAILED"
    assert runs["broken"].data.tags["benchtrack.status"] == "failed"
    assert runs["broken"].data.tags["benchtrack.error"].startswith("KeyError: 'missing [key]' at bench_fail.py:")
    assert runs["last"].info.status == "FINISHED"
    assert runs["last"].data.metrics["samples"] == 2


# --- list --------------------------------------------------------------------------------------


def test_list_shows_benchmarks_with_params(invoke: Invoke, good: Path) -> None:
    result = invoke(["list", good])
    assert result.exit_code == 0, result
    for text in ("add[size=10]", "add[size=20]", "size=10", "nightly_only", "nightly", "math", "bench_good.py"):
        assert text in result.stdout
    assert result.stderr == ""


def test_list_json(invoke: Invoke, good: Path) -> None:
    result = invoke(["list", good, "--format", "json", "--level", "quick"])
    assert result.exit_code == 0, result
    document = json.loads(result.stdout)
    assert document["schema"] == "benchtrack.list/1"
    assert document["level"] == "quick"
    assert document["benchmarks"] == [
        {"suite": "suite", "name": "add[size=10]", "file": "bench_good.py", "kind": "time",
         "params": {"size": "10"}, "tags": ["math"], "levels": ["all"]},
        {"suite": "suite", "name": "add[size=20]", "file": "bench_good.py", "kind": "time",
         "params": {"size": "20"}, "tags": ["math"], "levels": ["all"]},
    ]
    assert document["file_errors"] == []


def test_list_reports_a_broken_file_in_one_line(invoke: Invoke, bench_folder: Callable[..., Path]) -> None:
    folder = bench_folder({"bench_good.py": GOOD, "bench_bad.py": "raise RuntimeError('[/] not markup')\n"})
    result = invoke(["list", folder])
    assert_one_error_line(result, "bench_bad.py", "RuntimeError: [/] not markup")
    assert "add[size=10]" in result.stdout


# --- bad input: exit 2, one line, nothing measured ---------------------------------------------


def test_missing_folder(invoke: Invoke, tmp_path: Path, store_uri: str) -> None:
    result = invoke(["run", tmp_path / "nowhere", "--tracking-uri", store_uri])
    assert_one_error_line(result, "benchmark folder not found", "nowhere")


def test_unknown_level(invoke: Invoke, marked: tuple[Path, Path], store_uri: str) -> None:
    folder, marker = marked
    result = invoke(["run", folder, "--level", "weekly", "--tracking-uri", store_uri])
    assert_one_error_line(result, "unknown level 'weekly'", "(known: nightly, quick)")
    assert not marker.exists()


def test_malformed_levels_file(invoke: Invoke, bench_folder: Callable[..., Path], tmp_path: Path, store_uri: str) -> None:
    marker = tmp_path / "measured.marker"
    folder = bench_folder({"bench_marked.py": MARKED.format(marker=str(marker))}, levels="schema = [\n")
    result = invoke(["run", folder, "--tracking-uri", store_uri])
    assert_one_error_line(result, "levels.toml is not valid TOML")
    assert not marker.exists()


def test_levels_file_with_a_bad_value(invoke: Invoke, bench_folder: Callable[..., Path], store_uri: str) -> None:
    folder = bench_folder({"bench_good.py": GOOD}, levels=levels_toml().replace("samples = 3", "samples = -3"))
    assert_one_error_line(invoke(["run", folder, "--tracking-uri", store_uri]), "levels.quick.samples must be an integer")


def test_unknown_benchmark_name(invoke: Invoke, marked: tuple[Path, Path], store_uri: str) -> None:
    folder, marker = marked
    result = invoke(["run", folder, "--benchmark", "nope", "--tracking-uri", store_uri])
    assert_one_error_line(result, "unknown benchmark 'nope'")
    assert not marker.exists()


def test_unwritable_store(invoke: Invoke, marked: tuple[Path, Path], tmp_path: Path) -> None:
    folder, marker = marked
    not_a_folder = tmp_path / "afile.txt"
    not_a_folder.write_text("a regular file, where the store's folder should be\n", encoding="utf-8")
    result = invoke(["run", folder, "--tracking-uri", f"sqlite:///{not_a_folder}/mlflow.db"])
    assert_one_error_line(result, "cannot create the tracking store", "afile.txt")
    assert not marker.exists()
    assert not_a_folder.is_file()


def test_unsupported_tracking_uri(invoke: Invoke, marked: tuple[Path, Path]) -> None:
    folder, marker = marked
    assert_one_error_line(invoke(["run", folder, "--tracking-uri", "ftp://example.invalid/x"]), "unsupported tracking URI")
    assert not marker.exists()


@pytest.mark.slow
def test_unreachable_tracking_server_fails_before_measuring(invoke: Invoke, marked: tuple[Path, Path]) -> None:
    folder, marker = marked
    result = invoke(["run", folder, "--tracking-uri", "http://127.0.0.1:9"])
    assert_one_error_line(result, "cannot open the tracking store http://127.0.0.1:9")
    assert not marker.exists()


@pytest.mark.parametrize(
    "args",
    [["--processes", "0"], ["--format", "xml"], ["--no-such-option"], ["--peak-probe", "magic"]],
)
def test_bad_options_are_click_usage_errors(invoke: Invoke, marked: tuple[Path, Path], args: list[str]) -> None:
    folder, marker = marked
    result = invoke(["run", folder, "--no-track", *args])
    assert result.exit_code == 2, result
    assert "Usage:" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert result.stdout == ""
    assert not marker.exists()


def test_a_broken_benchmark_file_is_one_line_and_the_rest_is_logged(
    invoke: Invoke, bench_folder: Callable[..., Path], store_uri: str, open_client: OpenClient,
) -> None:
    folder = bench_folder({"bench_good.py": GOOD, "bench_syntax.py": "def broken(:\n    pass\n"}, levels=ONE_PROCESS)
    result = invoke(["run", folder, "--tracking-uri", store_uri])
    line = assert_one_error_line(result, "bench_syntax.py", "SyntaxError")
    assert line.startswith(f"{ERROR_PREFIX} bench_syntax.py: SyntaxError:")
    assert "add[size=10]" in result.stdout
    assert set(child_runs(open_client(store_uri), "bench")) == {"add[size=10]", "add[size=20]"}


# --- a store that fails mid-run keeps the data --------------------------------------------------

CORRUPTING = """
    from pathlib import Path

    from benchtrack import benchmark


    @benchmark
    def a_first():
        pass


    @benchmark
    def b_corrupts_the_store():
        path = Path({db!r})  # the tracking database, overwritten while the run goes on
        path.write_bytes(b"not a database!\\n" * (path.stat().st_size // 16 + 1))


    @benchmark
    def c_last():
        pass
"""


def _benchmarks(result: RunResult) -> dict[str, BenchmarkResult]:
    return {b.name: b for b in result.benchmarks}


def test_a_store_failing_mid_run_spools_and_import_logs_it(
    invoke: Invoke, bench_folder: Callable[..., Path], store_uri: str, chdir_tmp: Path,
    store_template: Path, open_client: OpenClient,
) -> None:
    db = store_uri.removeprefix("sqlite:///")
    folder = bench_folder({"bench_corrupt.py": CORRUPTING.format(db=db)}, levels=ONE_PROCESS)
    result = invoke(["run", folder, "--tracking-uri", store_uri])
    line = assert_one_error_line(result, "results kept in", "benchtrack import")
    (spool,) = (chdir_tmp / SPOOL_FOLDER).glob("*.json")
    assert str(spool) in line
    assert "c_last" in result.stdout  # measuring went on after the store broke

    (spooled,) = load_results_file(spool)
    # a_first reached the store before it broke; only what the store did not take is kept.
    assert set(_benchmarks(spooled)) == {"b_corrupts_the_store", "c_last"}
    assert all(len(b.samples) == 2 for b in spooled.benchmarks)

    second_uri = fresh_store_uri(store_template, chdir_tmp / "second")
    imported = invoke(["import", spool, "--tracking-uri", second_uri])
    assert imported.exit_code == 0, imported
    assert "imported 2 benchmarks of suite bench" in imported.stdout
    client = open_client(second_uri)
    runs = child_runs(client, "bench")
    assert set(runs) == {"b_corrupts_the_store", "c_last"}
    (parent,) = parent_runs(client, "bench")
    assert parent.info.status == "FINISHED"
    for name, bench in _benchmarks(spooled).items():
        history = sorted((m.step, m.value) for m in client.get_metric_history(runs[name].info.run_id, "1 time/wall_s"))
        assert [value for _, value in history] == bench.series("wall_s")


class FailingStore:
    """A Store whose writes fail the way a lost database does (a fake only for the failure)."""

    uri = "fake://store"

    def __init__(self) -> None:
        self.logged: list[str] = []

    def start_invocation(self, result_shell: RunResult, invocation_id: str) -> str:  # noqa: ARG002
        return "parent-1"

    def log_benchmark(self, parent_run_id: str, run: RunResult, bench: BenchmarkResult) -> object:  # noqa: ARG002
        if self.logged:
            raise TrackingError("cannot log benchmark: disk I/O error")
        self.logged.append(bench.name)
        return None

    def finish_invocation(self, parent_run_id: str, run: RunResult) -> None:  # noqa: ARG002
        raise AssertionError("not called after a tracking error")


def test_session_spools_everything_when_the_store_fails(
    bench_folder: Callable[..., Path], tmp_path: Path, invoke: Invoke, store_uri: str, open_client: OpenClient,
) -> None:
    folder = bench_folder({"bench_fail.py": FAILING}, levels=levels_toml(processes=1, samples=1))
    options = RunOptions(folder=folder)
    discovery, _config, level, plans = prepare(options)
    store = FailingStore()
    invocation = Session(store, {"benchtrack.os": "test"}, spool_root=tmp_path).run(options, discovery, level, plans)

    assert store.logged == ["first"]
    assert invocation.tracking_error == "cannot log benchmark: disk I/O error"
    assert invocation.spool_path is not None
    assert invocation.spool_path.parent == tmp_path / SPOOL_FOLDER
    (spooled,) = load_results_file(invocation.spool_path)
    assert spooled == invocation.suites[0].result  # every benchmark, logged or not, exactly
    assert [b.name for b in spooled.benchmarks] == ["first", "broken", "last"]
    # the invocation id travels with every result, so comparisons can leave these runs out of history
    assert spooled.metadata == {"benchtrack.os": "test", "benchtrack.invocation": invocation.invocation_id}

    imported = invoke(["import", invocation.spool_path, "--tracking-uri", store_uri])
    assert imported.exit_code == 0, imported
    runs = child_runs(open_client(store_uri), "bench")
    assert set(runs) == {"first", "broken", "last"}
    assert runs["broken"].info.status == "FAILED"


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("{not json", "is not valid JSON"),
        ('{"schema": "benchtrack.result/9"}', "not a benchtrack.result/1 document"),
        ('{"schema": "benchtrack.result/1", "suite": "s"}', "malformed benchtrack.result/1 document"),
        ('[{"schema": "benchtrack.result/1", "suite": "s", "level": "q", "started_at": NaN}]', "non-finite"),
    ],
)
def test_import_of_a_malformed_file(invoke: Invoke, tmp_path: Path, content: str, fragment: str) -> None:
    path = tmp_path / "results.json"
    path.write_text(content, encoding="utf-8")
    # No store is opened for a file that cannot be read: the URI points nowhere usable.
    result = invoke(["import", path, "--tracking-uri", f"sqlite:///{tmp_path}/missing/mlflow.db"])
    assert_one_error_line(result, str(path), fragment)


def test_import_of_a_missing_file(invoke: Invoke, tmp_path: Path) -> None:
    result = invoke(["import", tmp_path / "gone.json", "--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db"])
    assert_one_error_line(result, "cannot read", "gone.json")


# --- the installed console script --------------------------------------------------------------


def test_console_script_smoke(good: Path, tmp_path: Path) -> None:
    script = shutil.which("benchtrack")
    assert script is not None, "benchtrack is not installed (pip install -e .)"
    helped = subprocess.run([script, "--help"], cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False)
    assert helped.returncode == 0, helped.stderr
    for command in ("run", "list", "check", "import", "ui"):
        assert command in helped.stdout
    listed = subprocess.run([script, "list", str(good), "--format", "json"], cwd=tmp_path, capture_output=True,
                            text=True, timeout=120, check=False)
    assert listed.returncode == 0, listed.stderr
    assert [b["name"] for b in json.loads(listed.stdout)["benchmarks"]] == ["add[size=10]", "add[size=20]", "nightly_only"]
    assert listed.stderr == ""
