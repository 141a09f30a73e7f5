"""Thresholds in levels.toml, compare_results over whole runs (one-sided, skipped, per-benchmark
thresholds, anomalies against a history) and the promotion policy. Pure: seeded synthetic data."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from verdict_support import BASE_RSS, BASE_SECONDS, MIB, bench, history_runs, samples

from benchtrack.analysis.compare import DEFAULT_THRESHOLDS, SEVERITIES, Thresholds, benjamini_hochberg
from benchtrack.analysis.features import HistoryRun, history_metrics
from benchtrack.config import DEFAULT_LEVELS, Config, Level, load_config
from benchtrack.errors import ConfigError, ResultFormatError
from benchtrack.results import BenchmarkResult, Sample
from benchtrack.verdicts import PromotionDecision, Report, compare_results, promotion_decision

HEADER = 'schema = "benchtrack.levels/1"\n'
THRESHOLDS_TOML = HEADER + """
[thresholds.time]
minor = 0.10
major = 0.20
critical = 0.40

[levels.quick]
processes = 2

[levels.ci]
fail_on = "minor"
promote = false

[levels.ci.thresholds.time]
minor = 0.05
major = 0.10
critical = 0.20

[levels.ci.thresholds.memory_mb]
minor = 1
major = 2
critical = 3

[benchmarks.roundtrip.thresholds.time]
minor = 0.3
major = 0.6
critical = 0.9

[benchmarks."roundtrip[size=100]".thresholds.time]
minor = 0.5
major = 1.0
critical = 2.0

[benchmarks.alloc.thresholds.memory_mb]
minor = 50
major = 100
critical = 200

[baseline]
branch = "trunk"
alpha = 0.05
"""

CLEAN_MAIN = {"benchtrack.git.branch": "main", "benchtrack.git.dirty": "false"}
DEFAULT_CONFIG = Config(dict(DEFAULT_LEVELS))
COMPREHENSIVE = DEFAULT_LEVELS["comprehensive"]


def write_levels(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "levels.toml"
    path.write_text(text, encoding="utf-8")
    return path


def timed(name: str, seed: int, factor: float = 1.0, *, rss: float = BASE_RSS, **options: Any) -> BenchmarkResult:
    """A time benchmark measured `factor` times as slow as the 1 ms reference, seeded."""
    return bench(name, samples(np.random.default_rng(seed), wall=factor * BASE_SECONDS, rss=rss, **options))


# Earlier runs of "work" as the store returns them: with them the noise between invocations is
# measured, without them a wide prior makes single-benchmark verdicts inconclusive.
WORK_HISTORY = {"work": history_runs(seed=42, count=25)}


def by_name(*benches: BenchmarkResult) -> dict[str, BenchmarkResult]:
    return {b.name: b for b in benches}


def wall(report: Report, benchmark: str) -> str:
    [comparison] = [c for c in report.comparisons if c.benchmark == benchmark and c.metric == "wall_s"]
    return comparison.verdict


# --- thresholds in levels.toml ---------------------------------------------------------------------


def test_threshold_precedence_benchmark_full_name_then_base_name_then_level_then_defaults(tmp_path: Path) -> None:
    config = load_config(write_levels(tmp_path, THRESHOLDS_TOML))
    quick, ci = config.levels["quick"], config.levels["ci"]
    file_time = Thresholds(0.10, 0.20, 0.40)

    # the file's [thresholds] replace the built-in defaults for every level; other families stay built in
    assert config.thresholds_for(quick, "other", "other") == {**DEFAULT_THRESHOLDS, "time": file_time}
    # a level's own thresholds beat the file's
    assert config.thresholds_for(ci, "other", "other") == {
        "time": Thresholds(0.05, 0.10, 0.20), "memory": Thresholds(1.0, 2.0, 3.0, scale="absolute"),
        "gc": DEFAULT_THRESHOLDS["gc"],
        "instructions": DEFAULT_THRESHOLDS["instructions"],
    }
    # a benchmark's base name beats the level, its full name beats its base name
    assert config.thresholds_for(ci, "roundtrip[size=10]", "roundtrip")["time"] == Thresholds(0.3, 0.6, 0.9)
    assert config.thresholds_for(ci, "roundtrip[size=100]", "roundtrip")["time"] == Thresholds(0.5, 1.0, 2.0)
    assert config.thresholds_for(ci, "roundtrip", "roundtrip")["time"] == Thresholds(0.3, 0.6, 0.9)
    # only the families a benchmark names are overridden
    assert config.thresholds_for(ci, "roundtrip[size=100]", "roundtrip")["memory"] == Thresholds(1.0, 2.0, 3.0, "absolute")
    assert config.thresholds_for(quick, "alloc", "alloc")["memory"] == Thresholds(50.0, 100.0, 200.0, "absolute")
    assert config.thresholds_for(quick, "alloc", "alloc")["time"] == file_time

    assert (ci.fail_on, ci.promote, quick.fail_on, quick.promote) == ("minor", False, "major", True)
    assert (config.baseline_branch, config.alpha) == ("trunk", 0.05)


def test_files_without_thresholds_get_the_defaults(tmp_path: Path) -> None:
    config = load_config(write_levels(tmp_path, HEADER + "[levels.quick]\nprocesses = 2\n"))
    quick = config.levels["quick"]
    assert config.thresholds_for(quick, "x[a=1]", "x") == dict(DEFAULT_THRESHOLDS)
    assert (quick.fail_on, quick.promote, config.baseline_branch, config.alpha) == ("major", True, "main", 0.01)
    assert load_config(None) == DEFAULT_CONFIG


def bounds(minor: object = 0.1, major: object = 0.2, critical: object = 0.3) -> str:
    return f"minor = {minor}\nmajor = {major}\ncritical = {critical}\n"


@pytest.mark.parametrize(("text", "message"), [
    ("[levels.quick]\n[levels.quick.thresholds.time]\n" + bounds(0.3, 0.2, 0.4),
     r"levels.quick.thresholds.time must satisfy minor <= major <= critical"),
    ("[levels.quick]\n[thresholds.time]\n" + bounds(0.1, 0.5, 0.4), r"thresholds.time must satisfy minor"),
    ("[levels.quick]\n[thresholds.latency]\n" + bounds(), r"thresholds.latency is not one of time, gc, memory_mb"),
    ("[levels.quick]\n[thresholds.memory]\n" + bounds(), r"thresholds.memory is not one of"),
    ("[levels.quick]\n[thresholds.time]\nminor = 0.1\nmajor = 0.2\n", "needs exactly minor, major and critical"),
    ("[levels.quick]\n[thresholds.time]\n" + bounds() + "blocker = 0.9\n", "needs exactly minor, major and critical"),
    ("[levels.quick]\n[thresholds.time]\n" + bounds(-0.1), r"thresholds.time.minor must be a number"),
    ("[levels.quick]\n[thresholds.time]\n" + bounds('"0.1"'), r"thresholds.time.minor must be a number"),
    ("[levels.quick]\n[thresholds.time]\n" + bounds("nan"), r"thresholds.time.minor must be a number"),
    ("thresholds = 3\n[levels.quick]\n", r"\[thresholds\] must be a table"),
    ("[levels.quick]\n[thresholds]\ntime = 0.2\n", r"\[thresholds.time\] must be a table"),
    ("[levels.quick]\nthresholds = 1\n", r"\[levels.quick.thresholds\] must be a table"),
    ("[levels.quick]\n[benchmarks.work.thresholds.memory_mb]\n" + bounds(5, 1, 9),
     r"benchmarks.work.thresholds.memory_mb must satisfy"),
    ("[levels.quick]\n[benchmarks.work.thresholds.cpu]\n" + bounds(), r"benchmarks.work.thresholds.cpu is not one of"),
    ("benchmarks = 3\n[levels.quick]\n", r"\[benchmarks\] must be a table"),
    ("[levels.quick]\n[benchmarks]\nwork = 3\n", r"\[benchmarks.work\] must be a table"),
    ("[levels.quick]\n[benchmarks.work.time]\n" + bounds(), r"\[benchmarks.work\] has unknown keys: time"),
    ("[levels.quick]\nfail_on = \"severe\"\n", r"levels.quick.fail_on must be one of none, minor, major, critical"),
    ("[levels.quick]\npromote = \"yes\"\n", r"levels.quick.promote must be true or false"),
    ("[levels.quick]\n[baseline]\nalpha = 0.9\n", r"baseline.alpha must be a number in \[1e-06, 0.5\]"),
    ("[levels.quick]\n[baseline]\nbranch = \"\"\n", r"baseline.branch must be a non-empty string"),
    ("[levels.quick]\n[baseline]\nbrnach = \"main\"\n", r"\[baseline\] has unknown keys: brnach"),
    ("baseline = \"main\"\n[levels.quick]\n", r"\[baseline\] must be a table"),
])
def test_bad_threshold_and_policy_tables_are_one_line_config_errors(tmp_path: Path, text: str, message: str) -> None:
    path = write_levels(tmp_path, HEADER + text)
    with pytest.raises(ConfigError, match=message) as caught:
        load_config(path)
    assert str(caught.value).startswith(f"{path}: ")
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("fail_on", SEVERITIES)
def test_level_fails_at_and_above_its_fail_on(fail_on: str) -> None:
    level = Level("ci", fail_on=fail_on)
    expected = {
        "none": {"none": False, "minor": False, "major": False, "critical": False},
        "minor": {"none": False, "minor": True, "major": True, "critical": True},
        "major": {"none": False, "minor": False, "major": True, "critical": True},
        "critical": {"none": False, "minor": False, "major": False, "critical": True},
    }[fail_on]
    assert {severity: level.fails(severity) for severity in SEVERITIES} == expected


def test_default_levels_fail_where_documented() -> None:
    assert DEFAULT_LEVELS["quick"].fail_on == "critical"
    assert DEFAULT_LEVELS["comprehensive"].fail_on == "major"
    assert DEFAULT_LEVELS["nightly"].fail_on == "major"


# --- compare_results -------------------------------------------------------------------------------


def test_benchmarks_on_one_side_only_are_listed_not_compared() -> None:
    baseline = by_name(timed("a", 1), timed("b", 2))
    candidate = by_name(timed("b", 3), timed("c", 4))
    report = compare_results(baseline, candidate, DEFAULT_CONFIG, COMPREHENSIVE)
    assert report.only_in_baseline == ("a",)
    assert report.only_in_candidate == ("c",)
    assert {c.benchmark for c in report.comparisons} == {"b"}
    assert set(report.anomalies) == {"b"}
    assert report.skipped == {}
    assert sum(report.counts().values()) == len(report.comparisons)
    assert [c.metric for c in report.comparisons] == ["wall_s", "cpu_s", "rss_peak_bytes", "gc_pause_s", "gc_collections"]


def test_failed_track_and_empty_benchmarks_are_skipped_with_reasons() -> None:
    baseline = by_name(
        timed("ok", 1), timed("broke_later", 2), bench("broke_before", error="KeyError: x"),
        bench("tracked", samples(np.random.default_rng(3)), kind="track"), bench("empty"),
    )
    candidate = by_name(
        timed("ok", 4), bench("broke_later", error="ZeroDivisionError: boom"), timed("broke_before", 5),
        bench("tracked", samples(np.random.default_rng(6)), kind="track"), timed("empty", 7),
    )
    report = compare_results(baseline, candidate, DEFAULT_CONFIG, COMPREHENSIVE)
    assert report.skipped == {
        "broke_later": "failed on one side",
        "broke_before": "failed on one side",
        "tracked": "track benchmarks report their own metrics (no direction to judge)",
        "empty": "no samples on one side",
    }
    assert {c.benchmark for c in report.comparisons} == {"ok"}
    assert set(report.anomalies) == {"ok"}


def test_per_benchmark_thresholds_decide_severity_and_failure(tmp_path: Path) -> None:
    config = load_config(write_levels(tmp_path, HEADER + """
[levels.comprehensive]
fail_on = "major"

[benchmarks.strict.thresholds.time]
minor = 0.05
major = 0.10
critical = 0.15

[benchmarks."lenient[n=1]".thresholds.time]
minor = 0.5
major = 0.8
critical = 0.9
"""))
    level = config.levels["comprehensive"]
    names = ("strict", "plain", "lenient[n=1]")
    baseline = by_name(*(timed(name, 10 + i, between_cv=0.005) for i, name in enumerate(names)))
    candidate = by_name(*(timed(name, 20 + i, 1.3, between_cv=0.005) for i, name in enumerate(names)))
    history = {name: history_runs(seed=60 + i, count=12, name=name) for i, name in enumerate(names)}
    report = compare_results(baseline, candidate, config, level, history)
    severity = {c.benchmark: c.severity for c in report.comparisons if c.metric == "wall_s"}
    assert all(wall(report, name) == "regression" for name in names)
    # severity: the highest threshold of that benchmark that the whole interval clears
    for c in report.comparisons:
        if c.metric == "wall_s":
            assert c.severity == config.thresholds_for(level, c.benchmark, c.benchmark)["time"].severity(c.ci_low)
    assert severity == {"strict": "critical", "plain": "minor", "lenient[n=1]": "none"}
    assert {(c.benchmark, c.metric) for c in report.failing(level)} == {("strict", "wall_s"), ("strict", "cpu_s")}
    assert report.regressed("plain")
    assert not report.improved("plain")


def test_false_discovery_control_spans_the_whole_run_metric_by_metric() -> None:
    baseline = by_name(*(timed(f"b{i}", i) for i in range(4)))
    candidate = by_name(*(timed(f"b{i}", 100 + i, 1.3 if i == 0 else 1.0) for i in range(4)))
    history = {f"b{i}": history_runs(seed=70 + i, count=12, name=f"b{i}") for i in range(4)}
    report = compare_results(baseline, candidate, DEFAULT_CONFIG, COMPREHENSIVE, history)
    non_exact = [c for c in report.comparisons if c.spread_source != "exact"]
    assert len(non_exact) == 12  # wall, cpu and rss of four benchmarks; gc pause and counts are constant
    expected = {}
    for metric in {c.metric for c in report.comparisons}:  # one family per metric, over every benchmark of the run
        family = [c for c in report.comparisons if c.metric == metric]
        expected.update(zip(((c.benchmark, c.metric) for c in family), benjamini_hochberg([c.p_value for c in family]),
                            strict=True))
    for c in non_exact:
        assert c.p_adjusted == pytest.approx(expected[c.benchmark, c.metric])
    assert wall(report, "b0") == "regression"
    assert report.counts()["regression"] == 2  # b0's wall and cpu time
    regressions = [c for c in report.comparisons if c.verdict == "regression"]
    assert all(c.severity in ("minor", "major") for c in regressions)
    assert report.failing(COMPREHENSIVE) == [c for c in regressions if c.severity == "major"]


def test_a_memory_regression_is_judged_in_mib() -> None:
    baseline = by_name(timed("alloc", 1))
    candidate = by_name(timed("alloc", 2, rss=BASE_RSS + 40 * MIB))
    report = compare_results(baseline, candidate, DEFAULT_CONFIG, COMPREHENSIVE)
    [rss] = [c for c in report.comparisons if c.metric == "rss_peak_bytes"]
    assert (rss.verdict, rss.severity) == ("regression", "major")  # the interval clears 20 MiB, not 50
    assert rss.absolute_change == pytest.approx(40, rel=0.05)
    assert report.failing(COMPREHENSIVE) == [rss]
    assert report.regressed("alloc")


def test_non_finite_samples_are_a_result_format_error() -> None:
    broken = bench("work", (Sample(0, 0, 1, {"wall_s": float("nan")}), Sample(1, 0, 1, {"wall_s": 1.0})))
    with pytest.raises(ResultFormatError, match="work: wall_s holds a non-finite value"):
        compare_results(by_name(timed("work", 1)), by_name(broken), DEFAULT_CONFIG, COMPREHENSIVE)


# --- anomalies against a history ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def history() -> Mapping[str, list[HistoryRun]]:
    return {"work": history_runs(seed=42, count=25)}


def test_a_run_far_noisier_than_its_history_is_anomalous(history: Mapping[str, list[HistoryRun]]) -> None:
    baseline = by_name(timed("work", 1))
    noisy = timed("work", 2, between_cv=0.3, within_cv=0.2)
    report = compare_results(baseline, by_name(noisy), DEFAULT_CONFIG, COMPREHENSIVE, history)
    anomaly = report.anomalies["work"]
    assert anomaly.anomalous
    assert anomaly.method == "isolation-forest"
    assert anomaly.history_size == 25
    assert anomaly.reasons[0].startswith(("spread", "between_process_cv", "tail"))


def test_a_run_twice_as_slow_is_a_regression_not_an_anomaly(history: Mapping[str, list[HistoryRun]]) -> None:
    """The anomaly check scores how noisy a run was, never where its centre lies."""
    baseline = by_name(timed("work", 1))
    report = compare_results(baseline, by_name(timed("work", 2, 2.0)), DEFAULT_CONFIG, COMPREHENSIVE, history)
    assert not report.anomalies["work"].anomalous
    assert wall(report, "work") == "regression"
    assert next(c for c in report.comparisons if c.metric == "wall_s").spread_source == "processes/history"


def test_a_typical_run_is_not_anomalous(history: Mapping[str, list[HistoryRun]]) -> None:
    baseline = by_name(timed("work", 1))
    report = compare_results(baseline, by_name(timed("work", 3)), DEFAULT_CONFIG, COMPREHENSIVE, history)
    anomaly = report.anomalies["work"]
    assert not anomaly.anomalous
    assert anomaly.method == "isolation-forest"
    assert wall(report, "work") in ("unchanged", "inconclusive")


def test_too_little_history_never_flags(history: Mapping[str, list[HistoryRun]]) -> None:
    short = {"work": history["work"][:6]}
    report = compare_results(by_name(timed("work", 1)), by_name(timed("work", 2, 2.0)), DEFAULT_CONFIG, COMPREHENSIVE, short)
    assert (report.anomalies["work"].anomalous, report.anomalies["work"].method) == (False, "none")


def test_a_typical_history_keeps_a_regression_a_regression(history: Mapping[str, list[HistoryRun]]) -> None:
    report = compare_results(by_name(timed("work", 1)), by_name(timed("work", 2, 10.0)), DEFAULT_CONFIG, COMPREHENSIVE,
                             {"work": history["work"][:10]})
    assert wall(report, "work") == "regression"
    assert report.failing(COMPREHENSIVE)


def test_one_regressed_run_in_the_history_does_not_hide_the_regression(history: Mapping[str, list[HistoryRun]]) -> None:
    # After a regression lands on the baseline branch (not promoted), its run joins the history of
    # every later comparison. With a plain variance of run centres, that 10x step counted as noise
    # between runs and the next run of the same slow code came out "inconclusive" (+890 %
    # [-21 %, +12000 %]): the regression failed CI once. The spread is now a scaled MAD.
    slow = bench("work", samples(np.random.default_rng(77), wall=10 * BASE_SECONDS))
    regressed = HistoryRun("regressed", history_metrics(slow), slow.process_count)
    report = compare_results(by_name(timed("work", 1)), by_name(timed("work", 2, 10.0)), DEFAULT_CONFIG, COMPREHENSIVE,
                             {"work": [*history["work"][:10], regressed]})
    assert wall(report, "work") == "regression"


# --- promotion ---------------------------------------------------------------------------------------


def judged(factor: float, *, rss: float = BASE_RSS,
           history: Mapping[str, list[HistoryRun]] | None = WORK_HISTORY) -> tuple[Report, BenchmarkResult]:
    """A candidate `factor` times as slow as its baseline, compared; with its report."""
    candidate = timed("work", 2, factor, rss=rss)
    report = compare_results(by_name(timed("work", 1)), by_name(candidate), DEFAULT_CONFIG, COMPREHENSIVE, history)
    return report, candidate


def decide(report: Report | None, candidate: BenchmarkResult, *, level: Level = COMPREHENSIVE,
           config: Config = DEFAULT_CONFIG, metadata: Mapping[str, str] = CLEAN_MAIN,
           has_baseline: bool = True) -> PromotionDecision:
    return promotion_decision(level, config, metadata, candidate, has_baseline, report)


def test_an_improvement_on_a_clean_baseline_branch_is_promoted() -> None:
    report, candidate = judged(0.7)
    assert report.improved("work")
    assert decide(report, candidate) == PromotionDecision(True, "improvement")


def test_the_first_run_without_a_baseline_is_promoted() -> None:
    candidate = timed("work", 1)
    assert decide(None, candidate, has_baseline=False) == PromotionDecision(True, "first baseline")
    empty = compare_results({}, by_name(candidate), DEFAULT_CONFIG, COMPREHENSIVE)
    assert empty.only_in_candidate == ("work",)
    assert decide(empty, candidate, has_baseline=False) == PromotionDecision(True, "first baseline")


@pytest.mark.parametrize("factor", [1.3, 1.0])
def test_a_regression_or_no_change_is_not_promoted(factor: float) -> None:
    report, candidate = judged(factor)
    assert decide(report, candidate) == PromotionDecision(False, "not an improvement")


def test_faster_but_a_memory_regression_is_not_an_improvement() -> None:
    report, candidate = judged(0.7, rss=BASE_RSS + 30 * MIB)
    assert wall(report, "work") == "improvement"
    assert not report.improved("work")
    assert decide(report, candidate) == PromotionDecision(False, "not an improvement")


@pytest.mark.parametrize(("change", "reason"), [
    ({"level": replace(COMPREHENSIVE, promote=False)}, "level comprehensive does not promote"),
    ({"metadata": {**CLEAN_MAIN, "benchtrack.git.branch": "feature/x"}}, "branch feature/x is not the baseline branch main"),
    ({"metadata": {"benchtrack.git.dirty": "false"}}, "branch unknown is not the baseline branch main"),
    ({"config": replace(DEFAULT_CONFIG, baseline_branch="trunk")}, "branch main is not the baseline branch trunk"),
    ({"metadata": {**CLEAN_MAIN, "benchtrack.git.dirty": "true"}}, "the work tree had uncommitted changes"),
    ({"metadata": {**CLEAN_MAIN, "benchtrack.git.dirty": "unknown"}}, "the work tree had uncommitted changes"),
])
def test_refusals_come_before_any_verdict(change: dict[str, Any], reason: str) -> None:
    report, candidate = judged(0.7)  # an improvement: promoted unless something refuses it
    for has_baseline in (True, False):
        assert decide(report, candidate, has_baseline=has_baseline, **change) == PromotionDecision(False, reason)


def test_a_failed_benchmark_is_never_promoted() -> None:
    failed = bench("work", error="RuntimeError: x")
    report = compare_results(by_name(timed("work", 1)), by_name(failed), DEFAULT_CONFIG, COMPREHENSIVE)
    assert report.skipped == {"work": "failed on one side"}
    for has_baseline in (True, False):
        assert decide(report, failed, has_baseline=has_baseline) == PromotionDecision(False, "the benchmark failed")


def test_an_anomalous_run_is_not_promoted_even_when_faster(history: Mapping[str, list[HistoryRun]]) -> None:
    candidate = timed("work", 2, 0.5, between_cv=0.3, within_cv=0.2)
    report = compare_results(by_name(timed("work", 1)), by_name(candidate), DEFAULT_CONFIG, COMPREHENSIVE, history)
    assert report.anomalies["work"].anomalous
    assert report.improved("work")
    assert decide(report, candidate) == PromotionDecision(False, "the run is anomalous against its history")
    typical, candidate = judged(1.0, history=history)
    assert not typical.anomalies["work"].anomalous
    assert decide(typical, candidate) == PromotionDecision(False, "not an improvement")
