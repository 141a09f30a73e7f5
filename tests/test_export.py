"""`benchtrack export --prometheus`: the text format read back with prometheus_client's own parser,
from a run JSON file and from the newest report of a real store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from tests.support import assert_one_error_line, invoke_cli, write_bench_folder

STRANGE = 'odd "name"\\with\nnewline'


def _run_document() -> dict[str, Any]:
    def entry(benchmark: str, verdict: str, severity: str, change: float) -> dict[str, Any]:
        return {"benchmark": benchmark, "metric": "wall_s", "verdict": verdict, "severity": severity, "change": change,
                "ci_low": change - 0.1, "ci_high": change + 0.1, "p_value": 0.001, "p_adjusted": 0.002, "baseline": 0.001,
                "candidate": 0.001 * (1 + change), "fails": severity == "critical", "notes": [], "anomalous": False,
                "process_centres": {"baseline": [0.001], "candidate": [0.0015]}}

    suite = {"suite": "bench", "level": "quick", "parent_run_id": None, "commit": "a" * 40, "branch": "main",
             "fingerprint": "f00d", "finished_at": 1767000000.5,
             "benchmarks": [{"name": "slow", "status": "ok", "summary": {"wall_s": {"median": 0.0016}}},
                            {"name": STRANGE, "status": "ok", "summary": {"wall_s": {"median": 0.002}}}]}
    compared = {"schema": "benchtrack.compare/1", "baseline": "main baselines", "candidate": "this run", "level": "quick",
                "fail_on": "major", "comparisons": [entry("slow", "regression", "critical", 0.6),
                                                    entry(STRANGE, "improvement", "none", -0.3)],
                "summary": {"failed": True}}
    return {"schema": "benchtrack.run/1", "invocation": "x", "level": "quick", "suites": [suite],
            "verdicts": {"bench": compared}, "memory_checks": []}


def _families(path: Path) -> dict[str, Any]:
    return {family.name: family for family in text_string_to_metric_families(path.read_text(encoding="utf-8"))}


def _value(family: Any, **labels: str) -> float:
    [sample] = [s for s in family.samples if all(s.labels.get(k) == v for k, v in labels.items())]
    return float(sample.value)


def test_a_run_file_exports_verdicts_wall_times_and_the_run_time(tmp_path: Path) -> None:
    source = tmp_path / "run.json"
    source.write_text(json.dumps(_run_document()), encoding="utf-8")
    target = tmp_path / "textfile" / "benchtrack.prom"
    target.parent.mkdir()
    result = invoke_cli(["export", "--prometheus", target, "--from", source])
    assert result.exit_code == 0, result
    assert sorted(p.name for p in target.parent.iterdir()) == ["benchtrack.prom"]  # no temporary file left behind
    text = target.read_text(encoding="utf-8")
    assert "# HELP benchtrack_change_ratio " in text
    assert "# TYPE benchtrack_regression gauge" in text
    families = _families(target)
    where = {"suite": "bench", "branch": "main", "fingerprint": "f00d"}
    assert _value(families["benchtrack_change_ratio"], benchmark="slow", metric="wall_s", **where) == 0.6
    regression = families["benchtrack_regression"]
    assert _value(regression, benchmark="slow", severity="critical") == 1.0
    assert _value(regression, benchmark="slow", severity="major") == 0.0
    assert _value(regression, benchmark=STRANGE, severity="none") == 0.0  # label values survive escaping
    assert _value(families["benchtrack_improvement"], benchmark=STRANGE) == 1.0
    assert _value(families["benchtrack_wall_seconds"], benchmark="slow", **where) == 0.0016
    assert _value(families["benchtrack_last_run_timestamp_seconds"], **where) == 1767000000.5
    assert _value(families["benchtrack_suite_failed"], **where) == 1.0


def test_export_reads_the_newest_report_of_each_suite_from_the_store(tmp_path: Path, store_uri: str,
                                                                       monkeypatch: Any) -> None:
    monkeypatch.chdir(tmp_path)
    write_bench_folder(tmp_path / "bench", {"bench_one.py": """\
        from benchtrack import benchmark


        @benchmark
        def tiny():
            return sum(range(100))
        """})
    for _ in range(2):
        run = invoke_cli(["run", "bench", "--tracking-uri", store_uri])
        assert run.exit_code in (0, 1), run
    target = tmp_path / "out.prom"
    result = invoke_cli(["export", "--prometheus", target, "--tracking-uri", store_uri])
    assert result.exit_code == 0, result
    assert "wrote 1 report(s)" in result.stderr
    families = _families(target)
    [stamp] = families["benchtrack_last_run_timestamp_seconds"].samples
    assert stamp.labels["suite"] == "bench"
    assert stamp.labels["fingerprint"]
    [wall] = families["benchtrack_wall_seconds"].samples
    assert wall.labels["benchmark"] == "tiny"
    assert 0 < wall.value < 1
    # the newest run was compared with the first one (no git: nothing promoted, so compared with nothing)
    assert {s.labels["benchmark"] for s in families["benchtrack_change_ratio"].samples} <= {"tiny"}


def test_bad_targets_and_sources_are_one_line_errors(tmp_path: Path) -> None:
    source = tmp_path / "run.json"
    source.write_text(json.dumps(_run_document()), encoding="utf-8")
    assert_one_error_line(invoke_cli(["export", "--prometheus", tmp_path / "nowhere" / "x.prom", "--from", source]),
                          "folder", "does not exist")
    assert_one_error_line(invoke_cli(["export", "--prometheus", tmp_path / "x.prom", "--from", tmp_path / "missing.json"]),
                          "cannot read")
    source.write_text('{"schema": "benchtrack.run/1", "suites": [{"x": NaN}]}', encoding="utf-8")
    assert_one_error_line(invoke_cli(["export", "--prometheus", tmp_path / "x.prom", "--from", source]), "NaN")
