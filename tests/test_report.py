"""`benchtrack report` and the report artifacts every run leaves: real runs of a tiny benchmark
folder into a real MLflow store (a commit, then a commit whose benchmark does 30x the work),
hand-built documents for the rarer cases, and the HTML in headless Chromium."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from benchtrack.report.charts import distribution_chart
from benchtrack.report.markdown import GITHUB_SUMMARY_LIMIT, render_markdown
from benchtrack.report.model import REPORT_SCHEMA, build_report
from tests.browser_support import browser_page
from tests.support import (
    assert_one_error_line,
    fresh_store_uri,
    invoke_cli,
    isolated_git_env,
    levels_toml,
    write_bench_folder,
)

BENCH = """\
from benchtrack import benchmark


@benchmark
def work():
    return sorted(range(2000 * {factor}))


@benchmark
def steady():
    return sorted(range(200))
"""
LEVELS = levels_toml(processes=3, samples=5)


@dataclass(frozen=True)
class Runs:
    repo: Path
    store_uri: str
    documents: tuple[dict[str, Any], ...]  # `benchtrack run --format json`, oldest first
    exit_codes: tuple[int, ...]
    stderr: tuple[str, ...]


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.email=t@t", "-c", "user.name=t", "-c", "commit.gpgsign=false", *args], cwd=repo,
                   env=isolated_git_env(repo.parent), capture_output=True, text=True, check=True, timeout=60)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, store_template: Path) -> Runs:
    """Two real runs on main into one store: the first becomes the baseline, the second's `work`
    does 30x the work (a critical regression; `steady` stays as it was)."""
    repo = tmp_path_factory.mktemp("repo")
    store_uri = fresh_store_uri(store_template, tmp_path_factory.mktemp("store"))
    write_bench_folder(repo / "bench", {"bench_work.py": BENCH.format(factor=1)}, LEVELS)
    _git(repo, "init", "-q", "-b", "main")
    documents, codes, stderr = [], [], []
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(repo)
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        for factor in (1, 30):
            (repo / "bench" / "bench_work.py").write_text(textwrap.dedent(BENCH.format(factor=factor)), encoding="utf-8")
            _git(repo, "add", "-A")
            _git(repo, "commit", "-q", "-m", f"work x{factor}")
            result = invoke_cli(["run", "bench", "--tracking-uri", store_uri, "--format", "json"])
            assert result.exception is None, result
            documents.append(json.loads(result.stdout))
            codes.append(result.exit_code)
            stderr.append(result.stderr)
    return Runs(repo, store_uri, tuple(documents), tuple(codes), tuple(stderr))


def _verdicts(document: dict[str, Any]) -> dict[str, Any]:
    return dict(document["verdicts"]["bench"])


def _entry(compared: dict[str, Any], benchmark: str, metric: str = "wall_s") -> dict[str, Any]:
    return dict(next(c for c in compared["comparisons"] if c["benchmark"] == benchmark and c["metric"] == metric))


@pytest.fixture(scope="module")
def mixed(runs: Runs) -> dict[str, Any]:
    """The real regressing run, plus the rarer cases by hand: an improvement, an inconclusive
    slowdown and a failing leak check."""
    document = copy.deepcopy(runs.documents[1])
    compared = document["verdicts"]["bench"]
    steady = _entry(compared, "steady")
    compared["comparisons"] += [
        {**steady, "benchmark": "faster", "verdict": "improvement", "severity": "none", "change": -0.4, "ci_low": -0.5,
         "ci_high": -0.3, "fails": False},
        {**steady, "benchmark": "undecided", "verdict": "inconclusive", "severity": "none", "change": 0.35,
         "ci_low": -0.05, "ci_high": 0.9, "fails": False,
         "notes": ["undecided: point estimate +35.0%; more runs would decide it"]},
    ]
    document["memory_checks"].append({"suite": "bench", "benchmark": "grows", "check": "leak", "passed": False,
                                      "severity": "major", "fails": True, "detail": "+1.500 MB per 1,000 operations"})
    return document


def test_a_real_regression_is_judged_and_per_process_centres_are_in_the_verdicts(runs: Runs) -> None:
    assert runs.exit_codes == (0, 1), runs.stderr
    work = _entry(_verdicts(runs.documents[1]), "work")
    assert (work["verdict"], work["severity"]) == ("regression", "critical")
    centres = work["process_centres"]
    assert len(centres["baseline"]) == len(centres["candidate"]) == 3  # one centre per worker process
    assert min(centres["candidate"]) > 5 * max(centres["baseline"])
    assert work["processes"] == [3, 3]  # the existing field is untouched
    suite = runs.documents[1]["suites"][0]
    assert suite["branch"] == "main"
    assert len(suite["commit"]) == 40
    assert suite["fingerprint"]


def test_every_run_leaves_its_report_on_the_parent_and_charts_on_changed_children(runs: Runs, open_client: Any) -> None:
    client = open_client(runs.store_uri)
    for document in runs.documents:
        [suite] = document["suites"]
        names = {a.path for a in client.list_artifacts(suite["parent_run_id"], "benchtrack")}
        assert {"benchtrack/report.md", "benchtrack/report.html", "benchtrack/report.json"} <= names
    [suite] = runs.documents[1]["suites"]
    children = {b["name"]: b["run_id"] for b in suite["benchmarks"]}
    charts = {a.path: a.file_size for a in client.list_artifacts(children["work"], "benchtrack/charts")}
    assert list(charts) == ["benchtrack/charts/work.png"]
    assert 2_000 < charts["benchtrack/charts/work.png"] < 60_000
    [first] = runs.documents[0]["suites"]
    assert client.list_artifacts(first["benchmarks"][0]["run_id"], "benchtrack/charts") == []  # nothing compared yet
    stored = json.loads(Path(client.download_artifacts(suite["parent_run_id"], "benchtrack/report.json")).read_text())
    assert stored["schema"] == REPORT_SCHEMA
    assert stored["failed"] is True
    assert stored["verdicts"][0]["benchmark"] == "work"


def test_a_run_id_renders_its_report_even_from_a_benchmark_run(runs: Runs, tmp_path: Path) -> None:
    [suite] = runs.documents[1]["suites"]
    child = next(b["run_id"] for b in suite["benchmarks"] if b["name"] == "steady")
    result = invoke_cli(["report", child, "--tracking-uri", runs.store_uri, "--format", "md"])
    assert result.exit_code == 0, result
    assert "| 🔴 | work | wall_s |" in result.stdout
    unknown = invoke_cli(["report", "0" * 32, "--tracking-uri", runs.store_uri])
    assert_one_error_line(unknown, "unknown run id")


def test_markdown_has_the_headline_then_the_table_worst_first_then_details(mixed: dict[str, Any]) -> None:
    text = render_markdown(build_report(mixed))
    assert text.startswith("## ❌ benchtrack run: bench — fails level quick")
    assert re.search(r"\*\*\d+ regressions \(2 critical[,)].*, 1 improvement, \d+ inconclusive, \d+ unchanged, 1 leak\*\*", text)
    assert "fails on `major`" in text
    rows = [line for line in text.splitlines() if line.startswith("| ") and "wall_s" in line]
    order = [line.split(" | ")[1] for line in rows]
    assert order.index("work") < order.index("undecided") < order.index("faster")  # regression, undecided, improvement
    assert "<details><summary>Leaks (1)</summary>" in text
    assert "bench/grows: major: +1.500 MB" in text
    assert "<details><summary>Memory and GC checks (1)</summary>" in text
    assert "undecided: point estimate +35.0%" in text


def test_json_report_counts_every_verdict(mixed: dict[str, Any], tmp_path: Path) -> None:
    path = tmp_path / "run.json"
    path.write_text(json.dumps(mixed), encoding="utf-8")
    result = invoke_cli(["report", path, "--format", "json"])
    assert result.exit_code == 0, result
    report = json.loads(result.stdout)
    assert report["schema"] == REPORT_SCHEMA
    assert report["kind"] == "run"
    headline = report["headline"]
    assert headline["regressions"]["critical"] == 2
    assert headline["improvements"] == 1
    assert headline["leaks"] == 1
    assert headline["inconclusive"] >= 1
    assert headline["compared"] == len(mixed["verdicts"]["bench"]["comparisons"])
    assert report["verdicts"][0]["fails"] is True


def test_output_writes_and_append_appends_for_a_step_summary(mixed: dict[str, Any], tmp_path: Path) -> None:
    source = tmp_path / "run.json"
    source.write_text(json.dumps(mixed), encoding="utf-8")
    summary = tmp_path / "summary.md"
    summary.write_text("# earlier step\n", encoding="utf-8")
    assert invoke_cli(["report", source, "--output", summary, "--append"]).exit_code == 0
    text = summary.read_text(encoding="utf-8")
    assert text.startswith("# earlier step\n## ❌")
    assert invoke_cli(["report", source, "--output", summary]).exit_code == 0
    assert summary.read_text(encoding="utf-8").startswith("## ❌")
    assert_one_error_line(invoke_cli(["report", source, "--append"]), "--append needs --output")


def test_html_is_self_contained_sorts_on_click_and_fetches_nothing(mixed: dict[str, Any], tmp_path: Path) -> None:
    source = tmp_path / "run.json"
    source.write_text(json.dumps(mixed), encoding="utf-8")
    page_path = tmp_path / "report.html"
    result = invoke_cli(["report", source, "--format", "html", "--output", page_path])
    assert result.exit_code == 0, result
    html = page_path.read_text(encoding="utf-8")
    assert "http://" not in html
    assert "https://" not in html
    moved = {c["benchmark"] for c in mixed["verdicts"]["bench"]["comparisons"] if c["verdict"] != "unchanged"}
    assert {"work", "undecided", "faster"} <= moved
    assert html.count("data:image/png;base64,") == len(moved)  # one chart per benchmark that moved or stayed undecided
    requests: list[str] = []
    with browser_page() as (page, errors):
        page.on("request", lambda request: requests.append(request.url))
        page.goto(page_path.as_uri())
        first_column = "#verdicts tbody tr td:nth-child(2)"
        assert page.locator(first_column).first.text_content() == "work"  # worst first
        page.click("#verdicts th:has-text('change')")
        changes = [float(v) for v in page.eval_on_selector_all(
            "#verdicts tbody tr td:nth-child(6)", "cells => cells.map(c => c.getAttribute('data-sort'))")]
        assert changes == sorted(changes)
        assert changes[0] == -0.4
        page.click("#verdicts th:has-text('change')")
        assert page.locator(first_column).first.text_content() == "work"  # descending: the biggest slowdown
        assert page.locator("img").count() == len(moved)
        assert errors == []
    assert requests, "the page made no request at all: the recorder saw nothing"
    assert all(url.startswith(("data:", "file:", "about:")) for url in requests), requests


def _big_compare(benchmarks: int) -> dict[str, Any]:
    """A comparison of a large suite: mostly unchanged, some regressions, every row with notes."""
    comparisons = []
    for index in range(benchmarks):
        regressed = index % 25 == 0
        for metric in ("wall_s", "cpu_s", "rss_peak_bytes", "tracemalloc_peak_bytes", "gc_pause_s", "gc_collections"):
            comparisons.append({
                "benchmark": f"group_{index // 50}/benchmark_with_a_long_name_{index}[param=value-{index}]",
                "metric": metric, "verdict": "regression" if regressed else "unchanged",
                "severity": "critical" if regressed else "none", "change": 0.6 if regressed else 0.001,
                "ci_low": 0.5 if regressed else -0.02, "ci_high": 0.7 if regressed else 0.02, "p_value": 0.001,
                "p_adjusted": 0.002, "baseline": 0.001, "candidate": 0.0016, "absolute_change": 0.0006,
                "spread_source": "processes/history", "processes": [5, 5],
                "process_centres": {"baseline": [0.001] * 5, "candidate": [0.0016] * 5}, "degrees_of_freedom": 8.0,
                "suite_shift_removed": 0.0, "anomalous": False, "fails": regressed,
                "notes": [f"measured under contention (candidate: other programs used 1.{index % 10} of 2 CPUs) " * 3],
            })
    return {"schema": "benchtrack.compare/1", "baseline": "main baselines", "candidate": "this run", "level": "nightly",
            "fail_on": "major", "comparisons": comparisons, "anomalies": {}, "skipped": {}, "only_in_baseline": [],
            "only_in_candidate": [], "promotions": {}, "suite_shifts": [], "contention": {}, "undecided": [],
            "summary": {"failed": True}}


def test_a_500_benchmark_summary_stays_under_githubs_limit_and_keeps_the_regressions() -> None:
    report = build_report(_big_compare(500))
    text = render_markdown(report)
    assert len(text.encode("utf-8")) < GITHUB_SUMMARY_LIMIT
    assert text.count("| 🔴 |") == 20 * 6  # every regression row of every metric
    small = render_markdown(report, budget=40_000)
    assert len(small.encode("utf-8")) <= 40_000
    assert small.count("| 🔴 |") == 120  # regressions come first, so they survive the cut
    assert "rows left out to stay under GitHub's 1 MiB summary limit (" in small
    assert "more left out to stay under GitHub's 1 MiB summary limit" in small
    assert small.rstrip().endswith("</details>")


def test_distribution_charts_are_small_and_deterministic() -> None:
    first = distribution_chart("work", "wall_s", [0.0011, 0.0010, 0.0012], [0.0020, 0.0021, 0.0019], subtitle="x")
    again = distribution_chart("work", "wall_s", [0.0011, 0.0010, 0.0012], [0.0020, 0.0021, 0.0019], subtitle="x")
    other = distribution_chart("work", "wall_s", [0.0011, 0.0010, 0.0012], [0.0030, 0.0021, 0.0019], subtitle="x")
    assert first.startswith(b"\x89PNG")
    assert first == again
    assert first != other
    assert len(first) < 60_000


def _watch_document(timeline: dict[str, Any]) -> dict[str, Any]:
    return {"schema": "benchtrack.watch/1", "target": "python leaky.py", "kind": "command", "samples": 4,
            "duration_s": 3.0, "start_mb": 10.0, "end_mb": 40.0, "peak_mb": 40.0, "peak_time_s": 3.0, "limit_mb": None,
            "leak": {"detected": True, "slope_mb_per_min": 600.0, "ci_low": 550.0, "ci_high": 650.0, "severity": "critical",
                     "growth_mb": 30.0, "judged": True, "samples": 4, "warmup_s": 0.0, "reasons": []},
            "oom_events": [{"time_s": 2.5, "kind": "exit_137", "detail": "killed"}], "exit_code": 137, "level": "quick",
            "failed": True, "run_id": None, "timeline": timeline}


def test_watches_and_profiles_render_with_their_memory_timeline(tmp_path: Path) -> None:
    from benchtrack.profiler import MemoryProfiler

    with MemoryProfiler(interval=0.01) as profiler, profiler.phase("allocate"):
        block = bytearray(20 * 1024 * 1024)
    assert block
    profile = profiler.save_json(tmp_path / "profile.json")
    saved = json.loads(profile.read_text(encoding="utf-8"))
    assert saved["schema"] == "benchtrack.profile/1"
    assert "allocate" in saved["phases"]
    markdown = invoke_cli(["report", profile])
    assert markdown.exit_code == 0, markdown
    assert "memory profile:" in markdown.stdout
    assert "allocate:" in markdown.stdout
    html = invoke_cli(["report", profile, "--format", "html"])
    assert html.stdout.count("data:image/png;base64,") == 1  # the memory timeline

    watch = tmp_path / "watch.json"
    watch.write_text(json.dumps(_watch_document(saved["timeline"])), encoding="utf-8")
    text = invoke_cli(["report", watch]).stdout
    assert "**LEAK (critical)**" in text
    assert "exit_137" in text
    assert "| exit code | 137 |" in text
    assert invoke_cli(["report", watch, "--format", "html"]).stdout.count("data:image/png;base64,") == 1


@pytest.mark.parametrize(("content", "fragments"), [
    (None, ["'missing.json' is neither a file nor an MLflow run id"]),
    ("{not json", ["is not JSON"]),
    ('{"schema": "benchtrack.result/1"}', ["schema='benchtrack.result/1'"]),
    ('{"schema": "benchtrack.compare/1", "comparisons": [{"change": NaN}]}', ["NaN is not allowed"]),
    ('{"schema": "benchtrack.compare/1", "comparisons": []}', ["malformed benchtrack.compare/1 document"]),
    ('[1, 2]', ["schema=None"]),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: str | None,
                                         fragments: list[str]) -> None:
    monkeypatch.chdir(tmp_path)
    if content is not None:
        Path("missing.json").write_text(content, encoding="utf-8")
    assert_one_error_line(invoke_cli(["report", "missing.json"]), *fragments)


def test_a_store_failure_while_logging_the_report_costs_nothing(runs: Runs, store_template: Path, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from benchtrack.tracking import reports

    def broken(*_: object) -> None:
        raise reports.TrackingError("the artifact store is gone")

    monkeypatch.setattr(reports, "log_report", broken)
    monkeypatch.chdir(runs.repo)
    uri = fresh_store_uri(store_template, tmp_path / "store")
    result = invoke_cli(["run", "bench", "--tracking-uri", uri, "--format", "json", "-b", "steady"])
    assert result.exit_code == 0, result
    assert "benchtrack: warning: could not log the report of suite bench: the artifact store is gone" in result.stderr
    assert json.loads(result.stdout)["suites"][0]["benchmarks"][0]["run_id"]  # measured and logged all the same
