"""`benchtrack compare`, the verdicts and promotions of `benchtrack run`, and the baseline commands,
in-process with CliRunner on real things: result files, pytest-benchmark and pyperf files those
tools write here, a real MLflow store and a real git repository measured by real worker processes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from support import (
    Invoked,
    assert_one_error_line,
    child_runs,
    fresh_store_uri,
    invoke_cli,
    isolated_git_env,
    mlflow_client,
    parent_runs,
    write_bench_folder,
)
from verdict_support import BASE_SECONDS, FINGERPRINT, bench, run_result, samples, write_results

from benchtrack.analysis.compare import SEVERITIES
from benchtrack.baseline_snapshot import SNAPSHOT_SCHEMA
from benchtrack.verdicts import VERDICTS

TIMEOUT_S = 180
COMPARISON_TYPES: dict[str, type | tuple[type, ...]] = {
    "benchmark": str, "metric": str, "verdict": str, "severity": str, "change": float, "ci_low": float,
    "ci_high": float, "p_value": float,
}


def one_document(result: Invoked) -> dict[str, Any]:
    """stdout is exactly one JSON document (nothing before or after it)."""
    text = result.stdout
    document, end = json.JSONDecoder().raw_decode(text.lstrip())
    assert text.lstrip()[end:].strip() == "", result
    assert isinstance(document, dict)
    return document


def check_compare_document(document: dict[str, Any], baseline: str, candidate: str) -> None:
    assert document["schema"] == "benchtrack.compare/1"
    assert (document["baseline"], document["candidate"]) == (baseline, candidate)
    assert document["comparisons"], document
    for entry in document["comparisons"]:
        for key, kind in COMPARISON_TYPES.items():
            assert isinstance(entry[key], kind), (key, entry)
        assert entry["verdict"] in VERDICTS
        assert entry["severity"] in SEVERITIES
        assert 0.0 <= entry["p_value"] <= 1.0
        assert entry["ci_low"] <= entry["change"] <= entry["ci_high"]
        if entry["verdict"] != "regression":
            assert entry["severity"] == "none"
    summary = document["summary"]
    assert set(summary) == {*VERDICTS, "failed"}
    for verdict in VERDICTS:
        assert type(summary[verdict]) is int
        assert summary[verdict] == sum(1 for c in document["comparisons"] if c["verdict"] == verdict)
    assert type(summary["failed"]) is bool
    assert summary["failed"] == any(c["fails"] for c in document["comparisons"])


def comparison(document: dict[str, Any], benchmark: str, metric: str = "wall_s") -> dict[str, Any]:
    [entry] = [c for c in document["comparisons"] if (c["benchmark"], c["metric"]) == (benchmark, metric)]
    return entry


def benchmarks_of(document: dict[str, Any]) -> set[str]:
    return {c["benchmark"] for c in document["comparisons"]}


# --- two benchtrack result files ------------------------------------------------------------------


@pytest.fixture(scope="module")
def result_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """base.json, slow.json (work 60 % slower), same.json (a fresh draw of base), partial.json
    (work only): 5 processes x 10 samples each, seeded."""
    folder = tmp_path_factory.mktemp("results")

    def measured(seed: int, work_factor: float, names: Sequence[str] = ("work[n=1]", "steady")) -> Any:
        rng = np.random.default_rng(seed)
        factors = {"work[n=1]": work_factor, "steady": 1.0}
        return run_result([bench(name, samples(rng, wall=factors[name] * BASE_SECONDS)) for name in names])

    write_results(folder / "base.json", measured(1, 1.0))
    write_results(folder / "slow.json", measured(2, 1.6))
    write_results(folder / "same.json", measured(3, 1.0))
    write_results(folder / "partial.json", measured(4, 1.0, names=("work[n=1]",)))
    # an A/A calibration of the files' machine: whole invocations differ by 1% there
    calibration = {"schema": "benchtrack.calibration/1", "fingerprint": FINGERPRINT, "created_at": time.time(),
                   "entries": [{"benchmark": "*", "metric": m, "variance": 0.01**2, "df": 30} for m in ("wall_s", "cpu_s")]}
    (folder / "calibration.json").write_text(json.dumps(calibration), encoding="utf-8")
    return folder


@pytest.fixture
def files(result_files: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The result files, copied into the working folder (tmp_path): operands are relative names."""
    for path in result_files.iterdir():
        shutil.copy(path, tmp_path / path.name)
    stored = tmp_path / ".benchtrack" / "calibration" / f"{FINGERPRINT}.json"  # where compare looks by default
    stored.parent.mkdir(parents=True)
    shutil.copy(result_files / "calibration.json", stored)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_a_sixty_percent_slowdown_fails_the_default_level(files: Path) -> None:
    """Severity is the highest threshold the whole interval clears: 60% measured, at least 30%
    for sure (the floor of the noise between invocations keeps the interval from being tighter)."""
    result = invoke_cli(["compare", "base.json", "slow.json", "--format", "json"])
    assert result.exit_code == 1, result
    assert result.error_lines == []
    document = one_document(result)
    check_compare_document(document, "base.json", "slow.json")
    assert (document["level"], document["fail_on"]) == ("comprehensive", "major")
    assert benchmarks_of(document) == {"work[n=1]", "steady"}
    work = comparison(document, "work[n=1]")
    assert (work["verdict"], work["severity"], work["fails"]) == ("regression", "major", True)
    assert 0.55 < work["change"] < 0.65
    assert 0.3 < work["ci_low"] < 0.5 < work["ci_high"]
    assert work["p_value"] < 1e-4
    assert work["spread_source"] == "processes/calibration"
    assert work["processes"] == [5, 5]
    assert comparison(document, "steady")["verdict"] in ("unchanged", "inconclusive")
    assert document["summary"]["regression"] >= 2  # wall and cpu time of work
    assert document["summary"]["failed"] is True
    assert document["only_in_baseline"] == document["only_in_candidate"] == []
    assert document["skipped"] == {}
    assert document["promotions"] == {}
    assert set(document["anomalies"]) == {"work[n=1]", "steady"}
    assert all(a["method"] == "none" and a["threshold"] is None for a in document["anomalies"].values())
    assert not (files / "mlflow.db").exists()  # two files need no store


@pytest.mark.parametrize(("fail_on", "code"), [("minor", 1), ("major", 1), ("critical", 0), ("none", 0)])
def test_fail_on_sets_the_severity_that_fails(files: Path, fail_on: str, code: int) -> None:
    result = invoke_cli(["compare", "base.json", "slow.json", "--format", "json", "--fail-on", fail_on])
    assert result.exit_code == code, result
    document = one_document(result)
    assert document["fail_on"] == fail_on
    assert document["summary"]["failed"] is bool(code)
    assert comparison(document, "work[n=1]")["verdict"] == "regression"


def test_identical_files_pass(files: Path) -> None:
    result = invoke_cli(["compare", "base.json", "base.json", "--format", "json", "--fail-on", "minor"])
    assert result.exit_code == 0, result
    document = one_document(result)
    check_compare_document(document, "base.json", "base.json")
    assert document["summary"]["regression"] == document["summary"]["improvement"] == 0
    assert all(c["change"] == 0.0 for c in document["comparisons"])


def test_two_draws_of_the_same_distribution_pass(files: Path) -> None:
    result = invoke_cli(["compare", "base.json", "same.json", "--format", "json", "--fail-on", "minor"])
    assert result.exit_code == 0, result
    document = one_document(result)
    assert document["summary"]["regression"] == document["summary"]["improvement"] == 0
    assert comparison(document, "work[n=1]")["verdict"] == "unchanged"


def test_the_table_names_the_failing_benchmark(files: Path) -> None:
    result = invoke_cli(["compare", "base.json", "slow.json"])
    assert result.exit_code == 1, result
    assert "work[n=1]" in result.stdout  # brackets are data, not rich markup
    assert "regression" in result.stdout
    assert "FAIL" in result.stdout
    assert "fail on: major" in result.stdout


def test_benchmark_option_compares_only_that_one(files: Path) -> None:
    result = invoke_cli(["compare", "base.json", "slow.json", "-b", "steady", "--format", "json"])
    assert result.exit_code == 0, result
    assert benchmarks_of(one_document(result)) == {"steady"}


def test_allow_missing_skips_benchmarks_present_on_one_side(files: Path) -> None:
    result = invoke_cli(["compare", "base.json", "partial.json", "--allow-missing", "--format", "json"])
    assert result.exit_code == 0, result
    document = one_document(result)
    assert benchmarks_of(document) == {"work[n=1]"}
    assert document["only_in_baseline"] == ["steady"]
    assert document["only_in_candidate"] == []


def test_levels_file_thresholds_and_levels_apply(files: Path) -> None:
    (files / "levels.toml").write_text(textwrap.dedent("""\
        schema = "benchtrack.levels/1"

        [levels.ci]
        fail_on = "critical"

        [benchmarks.work.thresholds.time]
        minor = 0.1
        major = 0.2
        critical = 0.3
        """), encoding="utf-8")
    result = invoke_cli(["compare", "base.json", "slow.json", "--levels", "levels.toml", "--level", "ci", "--format", "json"])
    assert result.exit_code == 1, result
    document = one_document(result)
    assert (document["level"], document["fail_on"]) == ("ci", "critical")
    assert comparison(document, "work[n=1]")["severity"] == "critical"  # the base name's thresholds


# --- bad input: one line, exit 2 ----------------------------------------------------------------------


@pytest.mark.parametrize(("args", "fragments"), [
    (["base.json", "garbage"], ["'garbage' is not a result file, an MLflow run id or a git ref"]),
    (["base.json", "HEAD~1"], ["'HEAD~1' is not a result file"]),  # not in a git repository here
    (["missing.json", "base.json"], ["no such result file: missing.json"]),
    (["base.json", "sub/missing"], ["no such result file: sub/missing"]),
    (["base.json", "data.csv"], ["data.csv", "is not valid JSON"]),
    (["base.json", "object.json"], ["object.json", "not a benchtrack, pytest-benchmark or pyperf result file"]),
    (["base.json", "future.json"], ["future.json", "benchtrack.result/1"]),
    (["base.json", "nan.json"], ["nan.json", "non-finite number NaN"]),
    (["base.json", "partial.json"], ["benchmarks missing on one side: steady (only in base.json)", "--allow-missing"]),
    (["base.json", "twice.json"], ["twice.json: benchmark", "appears twice"]),
    (["base.json", "slow.json", "-b", "nope"], ["benchmark 'nope' is missing from base.json"]),
    (["base.json", "slow.json", "--level", "weekly"], ["unknown level 'weekly'"]),
    (["base.json", "slow.json", "--fail-on", "severe"], ["--fail-on must be minor, major, critical or none, got 'severe'"]),
    (["base.json", "slow.json", "--levels", "none.toml"], ["no such levels file: none.toml"]),
    (["base.json", "slow.json", "--levels", "bad_levels.toml"], ["bad_levels.toml", "expected schema"]),
])
def test_bad_operands_and_options_are_one_line_errors(files: Path, args: list[str], fragments: list[str]) -> None:
    (files / "data.csv").write_text("benchmark,seconds\nwork,0.001\n", encoding="utf-8")
    (files / "object.json").write_text(json.dumps({"hello": "world", "values": [1, 2]}), encoding="utf-8")
    base = json.loads((files / "base.json").read_text(encoding="utf-8"))
    (files / "future.json").write_text(json.dumps([{**base[0], "schema": "benchtrack.result/9"}]), encoding="utf-8")
    base_text = (files / "base.json").read_text(encoding="utf-8")
    first_value = json.dumps(base[0]["benchmarks"][0]["samples"][0]["values"]["wall_s"])
    assert first_value in base_text
    (files / "nan.json").write_text(base_text.replace(first_value, "NaN", 1), encoding="utf-8")
    (files / "twice.json").write_text(json.dumps(base + base), encoding="utf-8")
    (files / "bad_levels.toml").write_text("[levels.quick]\n", encoding="utf-8")

    result = invoke_cli(["compare", *args, "--format", "json"])
    assert_one_error_line(result, *fragments)
    assert result.stdout == ""
    assert not (files / "mlflow.db").exists()


def test_no_benchmark_in_common_is_an_error_even_when_missing_ones_are_allowed(files: Path) -> None:
    other = run_result([bench("elsewhere", samples(np.random.default_rng(9)))])
    write_results(files / "other.json", other)
    result = invoke_cli(["compare", "base.json", "other.json", "--allow-missing"])
    assert_one_error_line(result, "base.json and other.json have no benchmark in common")


# --- file vs file never imports mlflow ----------------------------------------------------------------

NO_MLFLOW_WRAPPER = """
import json
import sys

from benchtrack.cli import app

code = "no exit code"
try:
    code = app(sys.argv[1:], prog_name="benchtrack", standalone_mode=False)
finally:
    loaded = sorted(name for name in sys.modules if name == "mlflow" or name.startswith("mlflow."))
    print("WRAPPER " + json.dumps({"code": code, "mlflow": loaded}), file=sys.stderr)
"""


def test_comparing_two_files_does_not_import_mlflow(result_files: Path, tmp_path: Path) -> None:
    wrapper = tmp_path / "wrapper.py"
    wrapper.write_text(NO_MLFLOW_WRAPPER, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    done = subprocess.run(
        [sys.executable, str(wrapper), "compare", str(result_files / "base.json"), str(result_files / "slow.json"),
         "--format", "json", "--calibration", str(result_files / "calibration.json")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=TIMEOUT_S, check=False,
    )
    [line] = [line for line in done.stderr.splitlines() if line.startswith("WRAPPER ")]
    report = json.loads(line.removeprefix("WRAPPER "))
    assert report == {"code": 1, "mlflow": []}, done.stderr
    assert json.loads(done.stdout)["schema"] == "benchtrack.compare/1"  # it did compare
    assert not (tmp_path / "mlflow.db").exists()


# --- real pytest-benchmark and pyperf files -------------------------------------------------------------

PYTEST_WORKLOAD = """
    import os
    import time


    def test_sleepy(benchmark):
        benchmark(time.sleep, float(os.environ["BT_SLEEP_S"]))


    def test_sum(benchmark):
        benchmark(sum, range(20_000))
"""

PYPERF_SCRIPT = """
    import time

    import pyperf

    pyperf.Runner().bench_func("sleepy", time.sleep, {sleep})
"""
PYPERF_OPTIONS = ("--processes", "5", "--values", "3", "--warmups", "1", "--loops", "4", "-q")
# Ten times: on a loaded machine a 1 ms sleep can take 3 ms in one worker process and 1 ms in the next.
FAST_S, SLOW_S = 0.001, 0.010


def _tool_env(**extra: str) -> dict[str, str]:
    # Neither the caller's pytest options nor its git config or repository may leak in.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "PYTEST_")) and k != "MLFLOW_TRACKING_URI"}
    return env | {"GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1", **extra}


@pytest.fixture(scope="module")
def tool_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """pb_fast.json / pb_slow.json (pytest --benchmark-json, test_sleepy sleeping 1 ms / 10 ms) and
    pp_fast.json / pp_slow.json (a pyperf Runner, 5 worker processes): two tool runs at a time, so
    pyperf's workers do not compete with pytest-benchmark's busy loops."""
    pytest.importorskip("pytest_benchmark", reason="pytest-benchmark writes the files")
    pytest.importorskip("pyperf", reason="pyperf writes the files")
    folder = tmp_path_factory.mktemp("tools")
    (folder / "test_workload.py").write_text(textwrap.dedent(PYTEST_WORKLOAD), encoding="utf-8")
    for name, sleep in (("fast", FAST_S), ("slow", SLOW_S)):
        (folder / f"pp_{name}.py").write_text(textwrap.dedent(PYPERF_SCRIPT.format(sleep=sleep)), encoding="utf-8")
    pytest_args = [sys.executable, "-m", "pytest", "-p", "pytest_benchmark.plugin", "-p", "no:cacheprovider", "-q",
                   "test_workload.py", "--benchmark-min-rounds=5", "--benchmark-max-time=0.05"]
    commands = {
        "pb_fast": ([*pytest_args, "--benchmark-json=pb_fast.json"], {"BT_SLEEP_S": str(FAST_S)}),
        "pb_slow": ([*pytest_args, "--benchmark-json=pb_slow.json"], {"BT_SLEEP_S": str(SLOW_S)}),
        "pp_fast": ([sys.executable, "pp_fast.py", *PYPERF_OPTIONS, "-o", "pp_fast.json"], {}),
        "pp_slow": ([sys.executable, "pp_slow.py", *PYPERF_OPTIONS, "-o", "pp_slow.json"], {}),
    }
    for tool in ("pb_", "pp_"):
        running = {
            name: subprocess.Popen(args, cwd=folder, env=_tool_env(PYTEST_DISABLE_PLUGIN_AUTOLOAD="1", **extra),
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            for name, (args, extra) in commands.items() if name.startswith(tool)
        }
        for name, process in running.items():
            output, _ = process.communicate(timeout=TIMEOUT_S)
            assert process.returncode == 0, f"{name} failed:\n{output}"
            assert (folder / f"{name}.json").is_file(), output
    return folder


PB_SLEEPY, PB_SUM = "test_workload.py::test_sleepy", "test_workload.py::test_sum"


def assert_judged_slower(result: Invoked, document: dict[str, Any], benchmark: str) -> dict[str, Any]:
    """The 10x slower sleep is never an improvement and a regression is critical. These are real
    timings on a shared machine: a one-process pytest-benchmark side is judged on a 10 % prior, and
    under heavy load a 1 ms sleep sometimes lasts several ms, so a regression is not demanded here
    (the seeded tests and the repository below demand it)."""
    entry = comparison(document, benchmark)
    assert entry["change"] > 1.0, entry  # the candidate's centre is more than twice the baseline's
    assert entry["verdict"] in ("regression", "inconclusive"), entry
    if entry["verdict"] == "regression":
        assert (entry["severity"], entry["fails"]) == ("critical", True), entry
    assert result.exit_code == int(document["summary"]["failed"]), result
    return entry


def test_pytest_benchmark_files_compare_by_fullname(tool_files: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tool_files)
    result = invoke_cli(["compare", "pb_fast.json", "pb_slow.json", "--format", "json"])
    assert result.exit_code in (0, 1), result
    document = one_document(result)
    check_compare_document(document, "pb_fast.json", "pb_slow.json")
    assert benchmarks_of(document) == {PB_SLEEPY, PB_SUM}  # pytest-benchmark's fullnames
    assert {c["metric"] for c in document["comparisons"]} == {"wall_s"}  # all pytest-benchmark records
    sleepy = assert_judged_slower(result, document, PB_SLEEPY)
    assert sleepy["spread_source"] == "samples/prior"  # pytest-benchmark measures in one process
    assert sleepy["processes"] == [1, 1]


def test_pyperf_files_compare_by_name(tool_files: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tool_files)
    result = invoke_cli(["compare", "pp_fast.json", "pp_slow.json", "--format", "json"])
    assert result.exit_code in (0, 1), result
    document = one_document(result)
    check_compare_document(document, "pp_fast.json", "pp_slow.json")
    assert benchmarks_of(document) == {"sleepy"}  # pyperf's benchmark name
    sleepy = assert_judged_slower(result, document, "sleepy")
    assert (sleepy["spread_source"], sleepy["processes"]) == ("processes/prior", [5, 5])  # pyperf's workers
    same = invoke_cli(["compare", "pp_fast.json", "pp_fast.json", "--format", "json", "--fail-on", "minor"])
    assert same.exit_code == 0, same
    assert comparison(one_document(same), "sleepy")["verdict"] in ("unchanged", "inconclusive")


def test_files_of_different_tools_share_no_benchmark(tool_files: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tool_files)
    result = invoke_cli(["compare", "pb_fast.json", "pp_fast.json"])
    assert_one_error_line(result, "benchmarks missing on one side", PB_SLEEPY, "sleepy (only in pp_fast.json)")


def _imported_run_id(result: Invoked) -> str:
    assert result.exit_code == 0, result
    [line] = result.stdout.splitlines()
    return line.rsplit(" as run ", 1)[1]


def test_import_stores_foreign_files_and_run_ids_compare(tool_files: Path, store_uri: str,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tool_files)
    ids = {}
    for name in ("pb_fast", "pb_slow", "pp_fast", "pp_slow"):
        result = invoke_cli(["import", f"{name}.json", "--tracking-uri", store_uri])
        ids[name] = _imported_run_id(result)
        suite = "pytest-benchmark" if name.startswith("pb") else "pyperf"
        count = 2 if name.startswith("pb") else 1
        assert result.stdout.startswith(f"imported {count} benchmarks of suite {suite} as run "), result

    client = mlflow_client(store_uri)
    assert set(child_runs(client, "pytest-benchmark")) == {PB_SLEEPY, PB_SUM}
    assert set(child_runs(client, "pyperf")) == {"sleepy"}
    assert len(parent_runs(client, "pytest-benchmark")) == 2
    assert len(parent_runs(client, "pyperf")) == 2
    sleepy_runs = [r for r in client.search_runs([client.get_experiment_by_name("benchtrack/pyperf").experiment_id])
                   if r.data.tags.get("benchtrack.benchmark") == "sleepy"]
    assert len(sleepy_runs) == 2
    assert all(r.data.tags["benchtrack.machine.fingerprint"] for r in sleepy_runs)

    # what was imported compares by run id just as the files do
    result = invoke_cli(["compare", ids["pp_fast"], ids["pp_slow"], "--tracking-uri", store_uri, "--format", "json"])
    document = one_document(result)
    check_compare_document(document, ids["pp_fast"], ids["pp_slow"])
    # the store kept every sample: the centres are the files' (the spread may also use the store's history)
    from_files = one_document(invoke_cli(["compare", "pp_fast.json", "pp_slow.json", "--format", "json"]))
    centres = [[(c["metric"], c["baseline"], c["candidate"], c["change"]) for c in d["comparisons"]]
               for d in (document, from_files)]
    assert centres[0] == centres[1]
    assert_judged_slower(result, document, "sleepy")


# --- a git repository measured by `benchtrack run` ------------------------------------------------------

BENCH_SOURCE = """
    from benchtrack import benchmark

    FACTOR = {factor}


    @benchmark
    def work():
        total = 0
        for i in range(2000 * FACTOR):
            total += i
        return total


    @benchmark
    def steady():
        return sorted(range(200))
"""

SLOWDOWN = 30
REPO_LEVELS = """\
schema = "benchtrack.levels/1"

[levels.quick]
processes = 3
samples = 5
warmups = 0
min_sample_time = 0.001
timeout = 60
fail_on = "minor"
"""


@dataclass(frozen=True)
class MeasuredRepo:
    path: Path
    store_uri: str
    commits: tuple[str, ...]  # oldest first
    runs: tuple[Invoked, ...]  # `benchtrack run --format json` at each commit
    outputs: tuple[Path, ...]  # and the --output file each run wrote

    def document(self, index: int) -> dict[str, Any]:
        return one_document(self.runs[index])

    def verdicts(self, index: int) -> dict[str, Any]:
        return self.document(index)["verdicts"]["bench"]

    def parent_run_id(self, index: int) -> str:
        [suite] = self.document(index)["suites"]
        return str(suite["parent_run_id"])

    def child_run_id(self, index: int, benchmark: str) -> str:
        [suite] = self.document(index)["suites"]
        [run_id] = [b["run_id"] for b in suite["benchmarks"] if b["name"] == benchmark]
        return str(run_id)


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", "-c", "user.email=t@t", "-c", "user.name=t", "-c", "commit.gpgsign=false", *args],
                          cwd=repo, env=isolated_git_env(repo.parent), capture_output=True, text=True, check=True,
                          timeout=60)
    return done.stdout.strip()


def _commit(repo: Path, message: str) -> str:
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", message)
    return _git(repo, "rev-parse", "HEAD")


@pytest.fixture(scope="module")
def measured_repo(tmp_path_factory: pytest.TempPathFactory, store_template: Path) -> MeasuredRepo:
    """A repository on main with three commits, each measured once by `benchtrack run` into one
    store: the first, a docs-only change, and one making `work` 30x slower.

    Tiny, but not smaller: on a shared 2-core machine whole worker processes run 2x slow at times.
    With 2 processes a side the spread has 1 degree of freedom and a 10x slowdown came out
    inconclusive about once in twenty runs; 3 processes, 5 samples (the fewest the trimmed mean
    trims, so one preempted sample does not move a process) and 30x keep the verdict clear."""
    repo = tmp_path_factory.mktemp("repo")
    store_uri = fresh_store_uri(store_template, tmp_path_factory.mktemp("repo-store"))
    write_bench_folder(repo / "bench", {"bench_work.py": BENCH_SOURCE.format(factor=1)}, REPO_LEVELS)
    _git(repo, "init", "-q", "-b", "main")
    commits, runs, outputs = [], [], []
    output_folder = tmp_path_factory.mktemp("outputs")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(repo)
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        for step in range(3):
            if step == 1:
                (repo / "README.md").write_text("benchmarks\n", encoding="utf-8")
            if step == 2:
                (repo / "bench" / "bench_work.py").write_text(textwrap.dedent(BENCH_SOURCE.format(factor=SLOWDOWN)),
                                                             encoding="utf-8")
            commits.append(_commit(repo, f"step {step}"))
            outputs.append(output_folder / f"run{step}.json")
            runs.append(invoke_cli(["run", "bench", "--tracking-uri", store_uri, "--format", "json",
                                    "--output", outputs[-1]]))
    return MeasuredRepo(repo, store_uri, tuple(commits), tuple(runs), tuple(outputs))


@pytest.fixture
def in_repo(measured_repo: MeasuredRepo, monkeypatch: pytest.MonkeyPatch) -> MeasuredRepo:
    monkeypatch.chdir(measured_repo.path)
    return measured_repo


def test_the_first_clean_run_on_main_is_promoted_as_first_baseline(measured_repo: MeasuredRepo) -> None:
    result = measured_repo.runs[0]
    assert result.exit_code == 0, result
    document = measured_repo.document(0)
    [suite] = document["suites"]
    assert {b["name"] for b in suite["benchmarks"]} == {"work", "steady"}
    verdicts = measured_repo.verdicts(0)
    assert verdicts["schema"] == "benchtrack.compare/1"
    assert verdicts["comparisons"] == []
    assert sorted(verdicts["only_in_candidate"]) == ["steady", "work"]
    assert verdicts["promotions"] == {name: {"promoted": True, "reason": "first baseline"} for name in ("work", "steady")}


def test_the_next_commit_is_judged_against_the_baselines(measured_repo: MeasuredRepo) -> None:
    result = measured_repo.runs[1]
    assert result.exit_code in (0, 1), result  # 2 processes of noise at fail_on minor may flag either way
    verdicts = measured_repo.verdicts(1)
    assert verdicts["baseline"] == "main baselines"
    check_compare_document(verdicts, "main baselines", "this run")
    assert benchmarks_of(verdicts) == {"work", "steady"}
    for name, decision in verdicts["promotions"].items():
        assert decision["reason"] in ("improvement", "not an improvement"), name


def test_a_much_slower_commit_fails_and_is_not_promoted(measured_repo: MeasuredRepo) -> None:
    result = measured_repo.runs[2]
    assert result.exit_code == 1, result
    assert result.error_lines == []
    verdicts = measured_repo.verdicts(2)
    work = comparison(verdicts, "work")
    assert (work["verdict"], work["severity"], work["fails"]) == ("regression", "critical", True)
    assert work["change"] > 3.0
    assert verdicts["summary"]["failed"] is True
    assert verdicts["promotions"]["work"] == {"promoted": False, "reason": "not an improvement"}
    assert measured_repo.document(2)["summary"]["failed"] == 0  # it failed on its verdict, not on a crash


def test_baseline_show_lists_the_promoted_runs(in_repo: MeasuredRepo) -> None:
    result = invoke_cli(["baseline", "show", "--tracking-uri", in_repo.store_uri, "--format", "json"])
    assert result.exit_code == 0, result
    document = one_document(result)
    assert document["schema"] == "benchtrack.baselines/1"
    assert document["branch"] == "main"
    current = {entry["benchmark"]: entry for entry in document["baselines"]}
    assert set(current) == {"work", "steady"}
    for name, entry in current.items():
        # a later run replaced the first one only where it was promoted (an improvement, which noise
        # can make of `steady`); `work` of the slow commit never is
        index = max(i for i in range(3) if in_repo.verdicts(i)["promotions"][name]["promoted"])
        assert entry["run_id"] == in_repo.child_run_id(index, name)
        assert entry["commit"] == in_repo.commits[index]
        assert entry["reason"] == ("first baseline" if index == 0 else "improvement")
        assert entry["suite"] == "bench"
    assert current["work"]["commit"] != in_repo.commits[2]


def test_git_refs_resolve_to_the_runs_of_their_commits(in_repo: MeasuredRepo) -> None:
    uri = ["--tracking-uri", in_repo.store_uri, "--format", "json"]
    earlier = invoke_cli(["compare", "HEAD~2", "HEAD~1", *uri])
    assert earlier.exit_code in (0, 1), earlier
    document = one_document(earlier)
    check_compare_document(document, "HEAD~2", "HEAD~1")
    assert benchmarks_of(document) == {"work", "steady"}

    slower = invoke_cli(["compare", "HEAD~1", "HEAD", *uri])
    assert slower.exit_code == 1, slower
    document = one_document(slower)
    check_compare_document(document, "HEAD~1", "HEAD")
    work = comparison(document, "work")
    assert (work["verdict"], work["severity"]) == ("regression", "critical")
    # the store's history of this branch and machine joins the comparison
    assert work["spread_source"].startswith("processes/")

    by_sha = invoke_cli(["compare", in_repo.commits[1][:12], "main", *uri])
    assert by_sha.exit_code == 1, by_sha
    assert comparison(one_document(by_sha), "work")["verdict"] == "regression"


def test_the_same_two_runs_get_the_same_verdict_by_git_ref_run_id_and_file(in_repo: MeasuredRepo) -> None:
    """Neither run being compared is ever part of the history the comparison reads, however the
    runs are named, and files read the store's history too: one verdict for one pair of runs."""
    uri = ["--tracking-uri", in_repo.store_uri, "--format", "json"]
    by_ref = one_document(invoke_cli(["compare", "HEAD~1", "HEAD", *uri]))
    by_id = one_document(invoke_cli(["compare", in_repo.parent_run_id(1), in_repo.parent_run_id(2), *uri]))
    by_file = one_document(invoke_cli(["compare", in_repo.outputs[1], in_repo.outputs[2], *uri]))

    def verdicts(document: dict[str, Any]) -> dict[tuple[str, str], tuple[Any, ...]]:
        return {(c["benchmark"], c["metric"]): (c["verdict"], c["severity"], round(c["change"], 12),
                                                round(c["ci_low"], 12), round(c["ci_high"], 12), c["spread_source"])
                for c in document["comparisons"]}

    assert verdicts(by_ref) == verdicts(by_id) == verdicts(by_file)
    # only the first run is history here: its processes are pooled (peak RSS, a mean of processes),
    # and neither compared run is
    # (steady: work's loop count changed 30x with its code, so its old runs are no comparable history)
    assert comparison(by_file, "steady", "rss_peak_bytes")["spread_source"].startswith("processes+history/")


def test_run_ids_compare_parent_and_child_runs(in_repo: MeasuredRepo) -> None:
    uri = ["--tracking-uri", in_repo.store_uri, "--format", "json"]
    first = in_repo.parent_run_id(0)
    itself = invoke_cli(["compare", first, first, *uri, "--fail-on", "minor"])
    assert itself.exit_code == 0, itself
    document = one_document(itself)
    check_compare_document(document, first, first)
    assert benchmarks_of(document) == {"work", "steady"}
    assert all(c["change"] == 0.0 and c["verdict"] in ("unchanged", "inconclusive") for c in document["comparisons"])

    children = [in_repo.child_run_id(0, "work"), in_repo.child_run_id(2, "work")]
    child = invoke_cli(["compare", *children, *uri])
    assert child.exit_code == 1, child
    document = one_document(child)
    assert benchmarks_of(document) == {"work"}
    assert comparison(document, "work")["verdict"] == "regression"


@pytest.mark.parametrize(("args", "fragments"), [
    (["HEAD", "nosuchref"], ["'nosuchref' is not a result file, an MLflow run id or a git ref"]),
    (["HEAD", "0" * 32], ["unknown run id", "0" * 32]),
    (["HEAD", "--", "-x"], ["'-x' is not a result file"]),
])
def test_unknown_refs_and_run_ids_are_one_line_errors(in_repo: MeasuredRepo, args: list[str],
                                                      fragments: list[str]) -> None:
    result = invoke_cli(["compare", "--tracking-uri", in_repo.store_uri, *args])
    assert_one_error_line(result, *fragments)


def test_a_commit_without_a_run_is_a_one_line_error(in_repo: MeasuredRepo, tmp_path: Path, store_template: Path) -> None:
    empty = fresh_store_uri(store_template, tmp_path / "empty")
    result = invoke_cli(["compare", "HEAD~1", "HEAD", "--tracking-uri", empty])
    assert_one_error_line(result, "no benchtrack run of HEAD~1", in_repo.commits[1][:12])


def test_exported_baselines_judge_a_run_without_a_store(in_repo: MeasuredRepo, tmp_path: Path) -> None:
    exported = invoke_cli(["baseline", "export", "--tracking-uri", in_repo.store_uri, "--folder", tmp_path])
    assert exported.exit_code == 0, exported
    [snapshot] = (tmp_path / "baselines").glob("*.json")
    assert exported.stdout.strip() == f"wrote {snapshot}"
    saved = json.loads(snapshot.read_text(encoding="utf-8"))
    assert saved["schema"] == SNAPSHOT_SCHEMA
    assert {entry["benchmark"] for entry in saved["entries"]} == {"work", "steady"}
    parents_before = len(parent_runs(mlflow_client(in_repo.store_uri), "bench"))

    # HEAD is the slow commit: against the exported baselines its work benchmark is judged
    result = invoke_cli(["run", "bench", "--baseline", snapshot, "--no-track", "--format", "json"])
    assert result.exit_code in (0, 1), result  # 2 processes a side and no history: 10x may still be inconclusive
    verdicts = one_document(result)["verdicts"]["bench"]
    check_compare_document(verdicts, "snapshot (main)", "this run")
    assert benchmarks_of(verdicts) == {"work", "steady"}
    work = comparison(verdicts, "work")
    assert work["change"] > 3.0
    assert work["verdict"] in ("regression", "inconclusive")
    assert work["spread_source"].startswith("processes/")  # no store, so no history
    assert verdicts["promotions"] == {}  # a snapshot is read, never promoted to
    assert result.exit_code == int(verdicts["summary"]["failed"])
    assert len(parent_runs(mlflow_client(in_repo.store_uri), "bench")) == parents_before


def test_snapshots_of_another_machine_or_branch_warn_and_two_of_one_suite_are_refused(in_repo: MeasuredRepo,
                                                                                    tmp_path: Path) -> None:
    exported = invoke_cli(["baseline", "export", "--tracking-uri", in_repo.store_uri, "--folder", tmp_path])
    assert exported.exit_code == 0, exported
    [snapshot] = (tmp_path / "baselines").glob("*.json")
    foreign = json.loads(snapshot.read_text(encoding="utf-8"))
    foreign["fingerprint"], foreign["branch"] = "ffffffffffffffff", "release"
    other = tmp_path / "other-machine.json"
    other.write_text(json.dumps(foreign), encoding="utf-8")

    twice = invoke_cli(["run", "bench", "--baseline", snapshot, "--baseline", other, "--no-track", "-b", "steady"])
    assert_one_error_line(twice, str(snapshot), str(other), "both baseline snapshots of suite 'bench'")

    result = invoke_cli(["run", "bench", "--baseline", other, "--no-track", "--format", "json", "-b", "steady"])
    assert result.exit_code in (0, 1), result
    warnings = [line for line in result.stderr.splitlines() if line.startswith("benchtrack: warning: baseline snapshot")]
    assert len(warnings) == 2, result.stderr
    assert "another machine (fingerprint ffffffffffffffff" in warnings[0]
    assert "branch 'release', not of the baseline branch 'main'" in warnings[1]
    verdicts = one_document(result)["verdicts"]["bench"]
    assert verdicts["baseline"] == "snapshot (release) from ANOTHER MACHINE (ffffffffffffffff)"
