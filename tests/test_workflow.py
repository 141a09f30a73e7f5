"""The CI workflow: its structure, and the whole CI story played on a real git repository and a
real store: a comprehensive run on main, a second one after a change, and a pull request's quick
run, each job's steps taken from .github/workflows/benchtrack.yml and run by tests/workflow_runner.py."""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.workflow_runner import WORKFLOW, Context, WorkflowRunner, evaluate, load_workflow

PINNED = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")


# --- structure ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def workflow() -> dict[str, Any]:
    return load_workflow()


def _steps(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    return [step for job in workflow["jobs"].values() for step in job["steps"]]


def _timeout(job: dict[str, Any], event: str) -> int:
    value = str(job["timeout-minutes"])
    found = re.fullmatch(r"\$\{\{\s*(.*?)\s*\}\}", value)
    if found is None:
        return int(value)
    status = {"success": True, "failure": False, "always": True, "cancelled": False}
    return int(evaluate(found.group(1), {"github": Context({"event_name": event})}, status))


def test_triggers_levels_and_least_privilege(workflow: dict[str, Any]) -> None:
    assert set(workflow["on"]) == {"pull_request", "push", "schedule"}
    assert workflow["on"]["push"]["branches"] == ["main"]
    assert workflow["permissions"] == {"contents": "read"}
    for job in workflow["jobs"].values():
        assert "permissions" not in job or job["permissions"] == {"contents": "read"}
        for event in ("pull_request", "push", "schedule"):
            assert 0 < _timeout(job, event) <= 300, (job, event)
    picker = next(step for step in _steps(workflow) if step.get("id") == "level")["run"]
    assert all(level in picker for level in ("nightly", "comprehensive", "quick"))


def test_actions_are_pinned_to_commits_and_credentials_are_not_kept(workflow: dict[str, Any]) -> None:
    uses = [step for step in _steps(workflow) if "uses" in step]
    assert uses
    for step in uses:
        assert PINNED.match(step["uses"]), step["uses"]
        if step["uses"].startswith("actions/checkout@"):
            assert step["with"]["persist-credentials"] is False
    text = WORKFLOW.read_text(encoding="utf-8")
    assert all(re.search(r"@[0-9a-f]{40} # v\d", line) for line in text.splitlines() if "uses:" in line)


def test_the_store_is_kept_by_main_and_read_by_pull_requests(workflow: dict[str, Any]) -> None:
    steps = workflow["jobs"]["benchmarks"]["steps"]
    restore = next(s for s in steps if str(s.get("uses", "")).startswith("actions/cache/restore@"))
    save = next(s for s in steps if str(s.get("uses", "")).startswith("actions/cache/save@"))
    assert restore["with"]["path"] == save["with"]["path"]
    assert {"mlflow.db", "mlartifacts"} <= set(save["with"]["path"].split())
    assert "github.run_id" in save["with"]["key"]  # a key per run: cache entries are immutable
    assert save["with"]["key"].startswith(restore["with"]["restore-keys"].strip())
    assert "github.event_name != 'pull_request'" in save["if"]  # pull requests read, never write
    assert "always()" in save["if"]  # a failing level still keeps what it measured


def test_every_job_reports_and_pull_requests_compare_side_by_side(workflow: dict[str, Any]) -> None:
    scripts = [str(step.get("run", "")) for step in workflow["jobs"]["benchmarks"]["steps"]]
    assert any("benchtrack run experiments" in s and '--output "$GITHUB_STEP_SUMMARY"' in s for s in scripts)
    assert any("compare" in s and "--rerun" in s and "merge-base" in s for s in scripts)
    assert any("baseline export" in s for s in scripts)
    uploads = [s for s in workflow["jobs"]["benchmarks"]["steps"] if str(s.get("uses", "")).startswith("actions/upload")]
    assert any("report.html" in s["with"]["path"] for s in uploads)
    assert any("baselines" in s["with"]["path"] for s in uploads)


def test_actionlint_finds_nothing_where_it_is_installed() -> None:
    actionlint = shutil.which("actionlint")
    if actionlint is None:
        pytest.skip("actionlint is not installed here (it is a Go binary outside pip and Debian's archive)")
    done = subprocess.run([actionlint, str(WORKFLOW)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


# --- the CI story ---------------------------------------------------------------------------------

LEVELS = """\
schema = "benchtrack.levels/1"

[levels.quick]
processes = 3
samples = 3
warmups = 0
min_sample_time = 0.002
timeout = 60
fail_on = "critical"
promote = false

[levels.comprehensive]
processes = 5
samples = 3
warmups = 0
min_sample_time = 0.002
timeout = 60
fail_on = "major"

[rerun]
max_rounds = 16
budget_minutes = 4
"""

BENCHMARKS = """\
from benchtrack import benchmark
import work

@benchmark(name="parse")
def parse():
    return work.spin(work.PARSE)

@benchmark(name="render")
def render():
    return work.spin(work.RENDER)

@benchmark(name="hash")
def hash_():
    return work.spin(2000)
"""

WORK = """\
PARSE = {parse}
RENDER = {render}

def spin(n):
    total = 0
    for i in range(n):
        total += i * i % 7
    return total
"""


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def _commit(repo: Path, parse: int, render: int, message: str) -> str:
    (repo / "experiments" / "examples" / "work.py").write_text(WORK.format(parse=parse, render=render), encoding="utf-8")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", message)
    return _git(repo, "rev-parse", "HEAD")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    repo = tmp_path / "project"
    examples = repo / "experiments" / "examples"
    examples.mkdir(parents=True)
    (repo / "experiments" / "levels.toml").write_text(LEVELS, encoding="utf-8")
    (examples / "bench_app.py").write_text(textwrap.dedent(BENCHMARKS), encoding="utf-8")
    (repo / ".gitignore").write_text("mlflow.db*\nmlartifacts/\n.benchtrack/\n*.json\n*.html\nsnapshots/\n",
                                     encoding="utf-8")
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "config", "user.email", "ci@example.com")
    _git(repo, "config", "user.name", "ci")
    return repo


def _runner(project: Path, tmp_path: Path, **event: Any) -> WorkflowRunner:
    bin_dir = str(Path(sys.executable).parent)
    return WorkflowRunner(workspace=project, cache=tmp_path / "cache", artifacts=tmp_path / f"artifacts-{event['run_id']}",
                          event={"run_attempt": 1, **event},
                          extra_env={"PATH": bin_dir + ":" + __import__("os").environ["PATH"]})


def _fresh_workspace(project: Path) -> None:
    """A new job starts from a clean checkout: nothing of the last job's files survives."""
    _git(project, "clean", "-qfdx")


@pytest.mark.slow
def test_main_keeps_the_store_catches_a_regression_and_pull_requests_read_it(project: Path, tmp_path: Path) -> None:
    (tmp_path / "cache").mkdir()
    first = _commit(project, 3000, 3000, "first")

    # 1. push to main: no baseline yet, so the comprehensive run promotes
    job1 = _runner(project, tmp_path, event_name="push", run_id=101, sha=first, ref="refs/heads/main").run_job("benchmarks")
    assert job1.succeeded, "\n".join(job1.logs)
    assert job1.restored_key is None
    assert "no baseline yet" in job1.summary.lower() or "promoted" in job1.summary.lower(), job1.summary
    assert list((tmp_path / "artifacts-101" / "benchtrack-baselines-comprehensive" / "baselines").glob("*.json"))
    saved_after_first = tmp_path / "cache" / "benchtrack-store-main-101-1"
    assert (saved_after_first / "mlflow.db").is_file()

    # 2. push to main: parse does 20x the work; judged against the first run's baselines
    _fresh_workspace(project)
    second = _commit(project, 60000, 3000, "slow parse")
    job2 = _runner(project, tmp_path, event_name="push", run_id=102, sha=second, ref="refs/heads/main").run_job("benchmarks")
    assert job2.restored_key == "benchtrack-store-main-101-1"
    assert job2.restored_db_bytes == (saved_after_first / "mlflow.db").read_bytes()
    assert job2.outcomes["run and judge"] == "failure", job2.summary + "\n".join(job2.logs)  # major fails here
    assert _regressed_rows(job2.summary) == ["parse"], job2.summary
    assert (tmp_path / "artifacts-102" / "benchtrack-report-comprehensive" / "report.html").is_file()
    saved_after_second = tmp_path / "cache" / "benchtrack-store-main-102-1"
    assert (saved_after_second / "mlflow.db").is_file()  # kept although the level failed

    # 3. a pull request off the second commit slows render: it restores main's newest store
    _fresh_workspace(project)
    _git(project, "checkout", "-q", "-b", "feature")
    head = _commit(project, 60000, 60000, "slow render")
    _git(project, "update-ref", "refs/remotes/origin/main", second)
    saved_bytes = (saved_after_second / "mlflow.db").read_bytes()
    job3 = _runner(project, tmp_path, event_name="pull_request", run_id=103, sha=head, base_ref="main",
                   ref="refs/pull/1/merge", event={"pull_request": {"head": {"sha": head}}}).run_job("benchmarks")
    assert job3.restored_key == "benchtrack-store-main-102-1", "\n".join(job3.logs)
    assert hashlib.sha256(job3.restored_db_bytes or b"").digest() == hashlib.sha256(saved_bytes).digest()
    assert not (tmp_path / "cache" / "benchtrack-store-main-103-1").exists()  # pull requests never save
    assert job3.outcomes["export the baselines"] == "skipped"
    side_by_side = job3.summary.split("compare", 1)[-1]
    assert "render" in _regressed_rows(job3.summary), job3.summary
    assert "render" in side_by_side, job3.summary
    assert (tmp_path / "artifacts-103" / "benchtrack-report-quick" / "rerun.json").is_file()


def _regressed_rows(markdown: str) -> list[str]:
    """Benchmarks on rows of the Markdown report's tables whose verdict is a regression."""
    names: set[str] = set()
    column: int | None = None
    for line in markdown.splitlines():
        if not line.lstrip().startswith("|"):
            column = None
            continue
        cells = [cell.strip(" `*") for cell in line.strip().strip("|").split("|")]
        if "benchmark" in cells:
            column = cells.index("benchmark")
        elif column is not None and any(cell.lower().startswith("regression") for cell in cells):
            names.add(cells[column])
    return sorted(names)


@pytest.mark.slow
def test_a_first_quick_run_says_how_to_reach_a_verdict_and_the_next_one_reaches_it(project: Path) -> None:
    _commit(project, 3000, 3000, "first")
    env = {**__import__("os").environ, "MLFLOW_TRACKING_URI": ""}

    def run(level: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "benchtrack", "run", "experiments", "--level", level], cwd=project,
                              env=env, capture_output=True, text=True, check=False, timeout=600)

    first = run("quick")
    assert first.returncode == 0, first.stderr
    assert "examples: no baseline yet" in first.stdout
    assert "level quick never sets one: run `benchtrack run experiments --level comprehensive` once on branch main" \
        in " ".join(first.stderr.split()), first.stderr
    assert run("comprehensive").returncode == 0
    again = run("quick")
    assert again.returncode in (0, 1), again.stderr
    assert "examples: against main baselines" in again.stdout, again.stdout
    assert "never sets one" not in again.stderr
