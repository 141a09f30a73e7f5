"""The noise model of the verdicts, with seeded numbers: between-run variance and its degrees of
freedom, the suite-wide shift, change points, comparable history, severity from the interval,
floors for near-zero GC baselines, contention, calibration and undecided slowdowns."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from scipy import stats
from verdict_support import BASE_SECONDS, bench, history_runs, samples

from benchtrack import results as r
from benchtrack.analysis.changepoints import last_segment_start
from benchtrack.analysis.compare import (
    CPU_SPEC,
    WALL_SPEC,
    ComparisonSettings,
    History,
    MetricSpec,
    RunNoise,
    RunStatistics,
    Shift,
    Side,
    adjust_for_multiplicity,
    compare_metric,
    estimate_side,
    pool_with_history,
    within_terms,
)
from benchtrack.analysis.contention import descheduled, side_contention
from benchtrack.analysis.features import HistoryRun, history_metrics
from benchtrack.analysis.noise import (
    PairedChange,
    choose_run_noise,
    suite_offset,
    suite_run_noise,
    suite_shift,
    without_invocation_shifts,
)
from benchtrack.config import DEFAULT_LEVELS, Config
from benchtrack.errors import ResultFormatError
from benchtrack.results import Sample
from benchtrack.runner.runner import leak_details
from benchtrack.verdicts import compare_results, promotion_decision
from benchtrack.verdicts.calibration import CALIBRATION_SCHEMA, load_calibration
from benchtrack.verdicts.history import usable_history

LEVEL = DEFAULT_LEVELS["comprehensive"]
CONFIG = Config(dict(DEFAULT_LEVELS))


def tight_side(rng: np.random.Generator, centre: float, processes: int = 5, per_process: int = 10) -> Side:
    values = centre * np.exp(rng.normal(0.0, 0.002, size=processes * per_process))
    return Side(tuple(values.tolist()), tuple(p for p in range(processes) for _ in range(per_process)))


def noisy_history(rng: np.random.Generator, runs: int, run_sd: float, processes: int = 5) -> History:
    """Runs whose centres scatter by run_sd between invocations while their processes agree closely."""
    return History(tuple(RunStatistics(float(rng.normal(np.log(BASE_SECONDS), run_sd)), 0.002**2, processes)
                         for _ in range(runs)))


# --- Welch-Satterthwaite with the between-run part ----------------------------------------------


def test_between_run_variance_sets_the_degrees_of_freedom_when_it_dominates() -> None:
    """Six history runs scatter by 10% while processes agree to 0.2%: the between-run part is
    estimated from 5 degrees of freedom, so the test must have about that many, not ~infinitely
    many (which would make the interval far too narrow exactly when run noise dominates)."""
    rng = np.random.default_rng(1)
    history = noisy_history(rng, 6, 0.10)
    comparison = compare_metric("b", WALL_SPEC, tight_side(rng, BASE_SECONDS), tight_side(rng, BASE_SECONDS * 1.25),
                                ComparisonSettings(), history)
    assert comparison.spread_source == "processes/history"
    assert comparison.df < 7.0
    assert comparison.run_noise_share > 0.99
    variance = ((math.log1p(comparison.ci_high) - math.log1p(comparison.ci_low)) / 2) ** 2
    # the half-width uses t(df), far wider than the normal quantile the old infinite df gave
    assert math.sqrt(variance) > stats.norm.ppf(0.995) * math.sqrt(2 * np.var([x.centre for x in history.runs], ddof=1)) * 1.2


def test_pooled_history_is_one_estimate_counted_once() -> None:
    rng = np.random.default_rng(2)
    mean_of_processes = MetricSpec("rss_peak_bytes", "memory", log_scale=False)
    base = estimate_side(tight_side(rng, BASE_SECONDS, processes=4), mean_of_processes, log_scale=False)
    cand = estimate_side(tight_side(rng, BASE_SECONDS, processes=6), mean_of_processes, log_scale=False)
    history = History(tuple(RunStatistics(0.0, 0.01, 5) for _ in range(10)))  # 10 x 4 = 40 df pooled
    terms, source = within_terms(base, cand, history, mean_of_processes.centre)
    assert source == "processes+history"
    assert len(terms) == 1  # not one per side, each claiming the history's 40 df
    assert terms[0].df == 40 + 3 + 5


def test_one_process_sides_use_their_own_spread_plus_the_between_run_part() -> None:
    """pytest-benchmark files: one process a side; its rounds give the within part, history the rest."""
    rng = np.random.default_rng(3)
    one = Side(tuple((BASE_SECONDS * np.exp(rng.normal(0, 0.05, 200))).tolist()), (0,) * 200)
    other = Side(tuple((BASE_SECONDS * 1.3 * np.exp(rng.normal(0, 0.05, 200))).tolist()), (0,) * 200)
    quiet = compare_metric("b", WALL_SPEC, one, other, ComparisonSettings(), noisy_history(rng, 12, 0.01, processes=1))
    noisy = compare_metric("b", WALL_SPEC, one, other, ComparisonSettings(), noisy_history(rng, 12, 0.15, processes=1))
    assert quiet.spread_source == "samples/history"
    assert quiet.verdict == "regression"
    assert noisy.verdict == "inconclusive"  # the same files, judged against a noisier machine's history


# --- severity from the interval; floors --------------------------------------------------------


def test_severity_is_the_highest_threshold_the_whole_interval_clears() -> None:
    """+60% measured with a wide interval: the point estimate is 'critical' territory but the
    interval reaches down below +30%, so the severity cannot be more than minor."""
    rng = np.random.default_rng(4)
    history = noisy_history(rng, 30, 0.06)
    comparison = compare_metric("b", WALL_SPEC, tight_side(rng, BASE_SECONDS), tight_side(rng, BASE_SECONDS * 1.6),
                                ComparisonSettings(), history)
    assert comparison.verdict == "regression"
    assert comparison.change > 0.5
    assert comparison.ci_low < 0.3
    assert comparison.severity == "minor"  # the old rule took the point estimate: "critical"


def test_a_near_zero_gc_baseline_never_gives_a_relative_critical() -> None:
    spec = MetricSpec("gc_collections", "gc", log_scale=False, floor=0.01)
    processes = tuple(p for p in range(5) for _ in range(10))
    zero = Side((0.0,) * 50, processes)
    rng = np.random.default_rng(5)
    tiny = Side(tuple(rng.choice([0.0, 0.001], size=50).tolist()), processes)
    comparison = compare_metric("b", spec, zero, tiny, ComparisonSettings())
    assert comparison.severity in ("none", "minor")
    assert abs(comparison.change) < 0.15  # 0.0005 more collections per call against a floor of 0.01


# --- the suite-wide shift -----------------------------------------------------------------------


def suite_benches(rng: np.random.Generator, factor: float, count: int = 12, slower: dict[int, float] | None = None) -> dict:
    slower = slower or {}
    return {f"b{i}": bench(f"b{i}", samples(rng, wall=BASE_SECONDS * (1 + i / 10) * factor * slower.get(i, 1.0),
                                            between_cv=0.005, within_cv=0.005))
            for i in range(count)}


def test_a_whole_invocation_running_slower_is_a_suite_wide_shift_not_regressions() -> None:
    rng = np.random.default_rng(6)
    report = compare_results(suite_benches(rng, 1.0), suite_benches(rng, 1.35), CONFIG, LEVEL)
    assert report.counts()["regression"] == 0
    [shift] = [s for s in report.shifts if s.metric == r.WALL]
    assert shift.suite_wide
    assert shift.change == pytest.approx(0.35, abs=0.03)
    assert "suite-wide shift +3" in shift.describe()


def test_one_benchmark_slower_inside_a_shifted_invocation_is_still_found() -> None:
    rng = np.random.default_rng(7)
    report = compare_results(suite_benches(rng, 1.0), suite_benches(rng, 1.3, slower={3: 1.5}), CONFIG, LEVEL)
    verdicts = {c.benchmark: c.verdict for c in report.comparisons if c.metric == r.WALL}
    assert verdicts["b3"] == "regression"
    assert [name for name, v in verdicts.items() if v in ("regression", "improvement")] == ["b3"]


def test_suite_noise_ignores_the_benchmarks_that_really_changed() -> None:
    changes = [PairedChange(f"b{i}", 0.01 * ((i % 3) - 1), 1e-6) for i in range(15)]
    clean = suite_run_noise(changes, suite_shift(changes))  # type: ignore[arg-type]
    changes[0] = PairedChange("b0", 0.5, 1e-6)
    with_outlier = suite_run_noise(changes, suite_shift(changes))  # type: ignore[arg-type]
    assert with_outlier.variance == pytest.approx(clean.variance, rel=0.5)
    assert with_outlier.df == 13


def test_a_tight_group_of_regressed_benchmarks_is_not_taken_for_the_machine() -> None:
    # 7 unchanged benchmarks scattering 4%, 5 sharing a +12% regression within 1%: a window of a
    # third of the suite centred on the regressed group and took the regression out as "shift"
    unchanged = [-0.06, -0.03, -0.01, 0.0, 0.02, 0.035, 0.05]
    regressed = [0.105, 0.11, 0.113, 0.117, 0.12]
    shift = suite_shift([PairedChange(f"b{i}", d, 1e-6) for i, d in enumerate([*unchanged, *regressed])])
    assert shift is not None
    assert shift.log_shift < 0.05


def test_the_shifts_uncertainty_comes_from_the_bulk_not_the_noisy_few() -> None:
    rng = np.random.default_rng(17)
    draws = rng.normal(0.0, 0.01, size=16).tolist()
    calm = suite_shift([PairedChange(f"b{i}", d, 1e-6) for i, d in enumerate(draws)])
    # two noisy benchmarks at 4 SDs: a mean of squares would double the shift's SD
    wild = suite_shift([PairedChange(f"b{i}", d, 1e-6) for i, d in enumerate([*draws[:14], 0.04, -0.04])])
    assert calm is not None
    assert wild is not None
    assert math.sqrt(wild.variance) < 1.5 * math.sqrt(calm.variance)
    assert math.sqrt(calm.variance) == pytest.approx(math.sqrt(math.pi / 2 * 0.01**2 / 16), rel=0.5)


def test_each_threshold_family_is_its_own_family_for_false_discovery_control() -> None:
    rng = np.random.default_rng(21)
    settings = ComparisonSettings()
    history = noisy_history(rng, 10, 0.02)
    memory = MetricSpec("rss_peak_bytes", "memory", log_scale=False)
    wall = compare_metric("b", WALL_SPEC, tight_side(rng, BASE_SECONDS), tight_side(rng, 1.2 * BASE_SECONDS), settings,
                          history)
    nulls = [compare_metric(f"n{i}", memory, tight_side(rng, BASE_SECONDS), tight_side(rng, BASE_SECONDS), settings)
             for i in range(60)]
    adjusted = adjust_for_multiplicity([wall, *nulls], settings)
    assert adjusted[0].p_adjusted == wall.p_value  # alone among times: the 60 memory nulls do not dilute it
    assert adjusted[0].verdict == "regression"
    cpu_nulls = [compare_metric(f"n{i}", CPU_SPEC, tight_side(rng, BASE_SECONDS), tight_side(rng, BASE_SECONDS),
                                settings, history) for i in range(3)]
    together = adjust_for_multiplicity([wall, *cpu_nulls], settings)
    assert together[0].p_adjusted > wall.p_value  # wall and CPU time answer one question: one family


def pooled_case(rng: np.random.Generator, base_level: float) -> tuple[Side, Side, History, RunNoise]:
    history = noisy_history(rng, 9, 0.02)
    noise = RunNoise(0.02**2, 8.0, "history")
    return tight_side(rng, base_level), tight_side(rng, 1.12 * BASE_SECONDS), history, noise


def test_a_baseline_that_agrees_with_its_history_is_pooled_with_it() -> None:
    rng = np.random.default_rng(23)
    base, cand, history, noise = pooled_case(rng, BASE_SECONDS)
    base_centre = estimate_side(base, WALL_SPEC, log_scale=True).centre
    pooled = pool_with_history(base_centre, history, 0.0, noise)
    assert pooled is not None
    assert pooled.runs == 10
    assert pooled.centre == pytest.approx((sum(r.centre for r in history.runs) + base_centre) / 10)
    settings = ComparisonSettings()
    alone = compare_metric("b", WALL_SPEC, base, cand, settings, history, noise)
    joined = compare_metric("b", WALL_SPEC, base, cand, settings, history, noise, pooled=pooled)
    assert joined.spread_source.endswith("+pooled10")
    # one run's noise on the baseline side becomes a tenth of it: the interval narrows by ~sqrt(2 / 1.1)
    assert (alone.ci_high - alone.ci_low) / (joined.ci_high - joined.ci_low) == pytest.approx(math.sqrt(2 / 1.1), rel=0.1)


def test_a_baseline_apart_from_its_history_must_be_beaten_against_both() -> None:
    rng = np.random.default_rng(29)
    base, _, history, noise = pooled_case(rng, 1.3 * BASE_SECONDS)  # a run in a slow mode, or changed code
    apart = pool_with_history(estimate_side(base, WALL_SPEC, log_scale=True).centre, history, 0.0, noise)
    assert apart is not None
    assert apart.apart
    assert apart.centre == pytest.approx(float(np.mean([r.centre for r in history.runs])))  # the history's alone
    assert pool_with_history(0.0, history, 0.0, replace(noise, source="calibration")) is None
    settings = ComparisonSettings()
    # identical code back at the history's level: against the slow baseline alone it looks 23% faster
    same = tight_side(rng, BASE_SECONDS)
    alone = compare_metric("b", WALL_SPEC, base, same, settings, history, noise)
    both = compare_metric("b", WALL_SPEC, base, same, settings, history, noise, pooled=apart)
    assert alone.verdict == "improvement"
    assert both.verdict != "improvement"
    assert both.spread_source.endswith("+apart")
    assert both.change == pytest.approx(alone.change)  # the estimate is still against the baseline run
    # slower than the baseline and than the history: a regression either way
    slower = compare_metric("b", WALL_SPEC, base, tight_side(rng, 1.6 * BASE_SECONDS), settings, history, noise,
                            pooled=apart)
    assert slower.verdict == "regression"


def test_the_baseline_invocations_offset_from_its_history_is_the_median_gap() -> None:
    histories = {f"b{i}": History(tuple(RunStatistics(float(i), 0.0, 5) for _ in range(6))) for i in range(6)}
    centres = {f"b{i}": i + 0.05 + (0.3 if i == 0 else 0.0) for i in range(6)}
    found = suite_offset(centres, histories)
    assert found is not None
    offset, variance = found
    assert offset == pytest.approx(0.05)
    assert variance == pytest.approx(0.0, abs=1e-12)  # five of six gaps agree exactly: the median is sure
    assert suite_offset({"b0": 0.0}, histories) is None


def test_history_is_read_with_each_earlier_invocations_shift_taken_out() -> None:
    histories = {}
    shifts = [0.3, -0.2, 0.1, 0.0, 0.25]
    for b in range(6):
        histories[f"b{b}"] = History(tuple(RunStatistics(float(b) + shift, 0.0, 5, f"inv{i}")
                                           for i, shift in enumerate(shifts)))
    adjusted = without_invocation_shifts(histories)
    for history in adjusted.values():
        assert np.ptp([run.centre for run in history.runs]) == pytest.approx(0.0, abs=1e-12)


# --- history: change points, comparable settings, versioned statistics --------------------------


def test_a_landed_speed_up_splits_the_history() -> None:
    rng = np.random.default_rng(8)
    chronological = list(rng.normal(0.0, 0.01, 12)) + list(rng.normal(-0.10, 0.01, 6))
    assert last_segment_start(chronological) == 12
    assert last_segment_start(list(rng.normal(0.0, 0.01, 18))) == 0


def test_usable_history_starts_after_the_change_point_and_keeps_comparable_runs() -> None:
    slow = history_runs(9, 8, wall=BASE_SECONDS * 1.1)
    fast = history_runs(10, 6, wall=BASE_SECONDS)
    runs = [replace(run, level="comprehensive", loops="16") for run in fast + slow]  # newest first
    other_level = [replace(run, run_id=f"q{i}", level="quick", loops="16") for i, run in enumerate(fast)]
    other_loops = [replace(run, run_id=f"l{i}", level="comprehensive", loops="1024") for i, run in enumerate(fast)]
    candidate = bench("work", samples(np.random.default_rng(11)))
    kept = usable_history(runs + other_level + other_loops, candidate, "comprehensive")
    assert [run.run_id for run in kept] == [run.run_id for run in runs[:6]]


def test_history_statistics_carry_their_version() -> None:
    metrics = history_metrics(bench("work", samples(np.random.default_rng(12))))
    assert "history.v2.wall_s.centre" in metrics
    old = HistoryRun("old", {"history.wall_s.centre": -6.9, "history.wall_s.process_variance": 0.0}, 5)
    assert old.statistics(r.WALL) is None  # figures of another version are never mixed in


# --- contention --------------------------------------------------------------------------------


def test_descheduled_samples_need_a_preemption_and_a_wall_cpu_gap() -> None:
    assert descheduled({"wall_s": 2.0, "cpu_s": 1.0, "ctx_involuntary": 3})
    assert not descheduled({"wall_s": 2.0, "cpu_s": 1.0, "ctx_involuntary": 0})  # waited on I/O, not preempted
    assert not descheduled({"wall_s": 1.01, "cpu_s": 1.0, "ctx_involuntary": 2})  # preempted for a moment
    found = side_contention([{"wall_s": 2.0, "cpu_s": 1.0, "ctx_involuntary": 1}] * 3
                            + [{"wall_s": 1.0, "cpu_s": 1.0, "ctx_involuntary": 0}] * 7, [{"others_cpus": 0.2}], 2)
    assert found.contended
    assert "30% of samples descheduled" in found.reason
    busy = side_contention([{"wall_s": 1.0, "cpu_s": 1.0, "ctx_involuntary": 0}] * 10, [{"others_cpus": 1.8}], 2)
    assert busy.contended
    assert "other programs used 1.8 of 2 CPUs" in busy.reason


def test_a_load_average_stands_in_for_other_programs_cpu_where_that_was_not_measured() -> None:
    """pyperf files carry the 1-minute load average of each run, which includes the worker itself."""
    calm = side_contention([{"wall_s": 1.0}] * 5, [{"load1": 1.1}, {"load1": 1.2}], 2)
    busy = side_contention([{"wall_s": 1.0}] * 5, [{"load1": 2.3}, {"load1": 2.0}], 2)
    assert not calm.contended
    assert busy.contended
    assert busy.others_cpus == pytest.approx(1.15)


def contended_samples(rng: np.random.Generator, wall: float) -> tuple[Sample, ...]:
    built = []
    for sample in samples(rng, wall=wall, between_cv=0.005, within_cv=0.005):
        values = dict(sample.values)
        values[r.CPU] = values[r.WALL]
        values["ctx_involuntary"] = 0.0
        if rng.random() < 0.6:
            values[r.WALL] *= float(rng.uniform(1.8, 2.5))
            values["ctx_involuntary"] = 4.0
        built.append(replace(sample, values=values))
    return tuple(built)


def test_a_wall_time_change_cpu_time_does_not_show_is_contention_not_a_regression() -> None:
    rng = np.random.default_rng(13)
    base = {"work": bench("work", samples(rng, between_cv=0.005, within_cv=0.005))}
    cand = {"work": bench("work", contended_samples(rng, BASE_SECONDS))}
    report = compare_results(base, cand, CONFIG, LEVEL, cpus=2)
    wall = next(c for c in report.comparisons if c.metric == r.WALL)
    assert report.contended("work")
    assert wall.verdict != "regression"
    assert any("contention" in note for note in wall.notes)


# --- anomaly, promotion, leaks, undecided -------------------------------------------------------


def test_a_real_improvement_is_not_anomalous_and_needs_history_to_be_promoted() -> None:
    rng = np.random.default_rng(14)
    metadata = {"benchtrack.git.branch": "main", "benchtrack.git.dirty": "false"}
    history = {"work": history_runs(15, 12, between_cv=0.005, within_cv=0.005)}
    base = {"work": bench("work", samples(rng, between_cv=0.005, within_cv=0.005))}
    faster = bench("work", samples(rng, wall=BASE_SECONDS * 0.7, between_cv=0.005, within_cv=0.005))
    with_history = compare_results(base, {"work": faster}, CONFIG, LEVEL, history)
    assert not with_history.anomalies["work"].anomalous
    decision = promotion_decision(LEVEL, CONFIG, metadata, faster, True, with_history)
    assert decision == decision.__class__(True, "improvement")
    much_faster = bench("work", samples(rng, wall=BASE_SECONDS * 0.3, between_cv=0.005, within_cv=0.005))
    without = compare_results(base, {"work": much_faster}, CONFIG, LEVEL)  # nothing but a prior for run noise
    assert without.improved("work")
    refused = promotion_decision(LEVEL, CONFIG, metadata, much_faster, True, without)
    assert not refused.promote
    assert "needs" in refused.reason


def test_leak_severity_agrees_with_detection_across_processes() -> None:
    def process(index: int, mb_per_batch: float) -> list[Sample]:
        return [Sample(index, i, 100, {r.LEAK_ELAPSED: float(i), r.LEAK_OPERATIONS: 100.0 * (i + 1),
                                       r.LEAK_RSS: 100 * 2**20 + i * mb_per_batch * 2**20}) for i in range(24)]
    # two of three processes leak 2 MB per batch; the median by rate is a leaking one only by luck
    details = leak_details(process(0, 2.0) + process(1, 0.0) + process(2, 3.0), thresholds=_leak_thresholds())
    assert details["detected"]
    assert details["severity"] != "none"
    quiet = leak_details(process(0, 0.0) + process(1, 0.0) + process(2, 3.0), thresholds=_leak_thresholds())
    assert not quiet["detected"]
    assert quiet["severity"] == "none"


def _leak_thresholds():
    from benchtrack.analysis.leaks import LeakThresholds

    return LeakThresholds()


def test_an_undecided_large_slowdown_is_named_and_can_fail_the_level() -> None:
    rng = np.random.default_rng(16)
    base = {"work": bench("work", samples(rng, processes=2, between_cv=0.2, within_cv=0.01))}
    cand = {"work": bench("work", samples(rng, wall=BASE_SECONDS * 1.6, processes=2, between_cv=0.2, within_cv=0.01))}
    report = compare_results(base, cand, CONFIG, LEVEL)
    wall = next(c for c in report.comparisons if c.metric == r.WALL)
    assert wall.verdict == "inconclusive"
    assert any(note.startswith("undecided: point estimate +") for note in wall.notes)
    assert wall in report.undecided(LEVEL)
    assert report.failing(LEVEL) == []
    strict = replace(LEVEL, fail_on_undecided=True)
    assert wall in report.failing(strict)


# --- calibration -------------------------------------------------------------------------------


def test_a_stored_calibration_is_a_source_of_between_run_noise(tmp_path: Path) -> None:
    path = tmp_path / "calibration.json"
    path.write_text(json.dumps({"schema": CALIBRATION_SCHEMA, "fingerprint": "f", "created_at": 0.0, "entries": [
        {"benchmark": "*", "metric": "wall_s", "variance": 0.0004, "df": 30},
        {"benchmark": "*", "metric": "cpu_s", "variance": 0.0004, "df": 30}]}), encoding="utf-8")
    calibration = load_calibration(path)
    assert calibration.run_noise("anything", "wall_s") == RunNoise(0.0004, 30.0, "calibration")
    rng = np.random.default_rng(17)
    base = {"work": bench("work", samples(rng, between_cv=0.005, within_cv=0.005))}
    cand = {"work": bench("work", samples(rng, wall=BASE_SECONDS * 1.2, between_cv=0.005, within_cv=0.005))}
    report = compare_results(base, cand, CONFIG, LEVEL, calibration=calibration)
    wall = next(c for c in report.comparisons if c.metric == r.WALL)
    assert wall.spread_source.endswith("/calibration")
    assert wall.verdict == "regression"
    path.write_text('{"schema": "benchtrack.calibration/1", "entries": [{"variance": "x"}]}', encoding="utf-8")
    with pytest.raises(ResultFormatError, match="malformed calibration"):
        load_calibration(path)


def test_times_are_judged_by_their_fastest_process() -> None:
    assert WALL_SPEC.centre == CPU_SPEC.centre == "fastest-process"
    # five processes, two in a 30% slower mode: the side is what its fastest process measures
    values, processes = [], []
    for process, mode in enumerate((1.0, 1.3, 1.0, 1.3, 1.01)):
        values += [BASE_SECONDS * mode * (1 + 0.01 * i) for i in range(6)]
        processes += [process] * 6
    estimate = estimate_side(Side(tuple(values), tuple(processes)), WALL_SPEC, log_scale=True)
    assert math.exp(estimate.centre) == pytest.approx(BASE_SECONDS * 1.005, rel=0.01)


def test_no_history_is_trusted_to_be_quieter_than_the_floor() -> None:
    """Ten identical history runs say invocations never differ; a 3% change must still not be
    significant: no real machine repeats a time more closely than RUN_NOISE_FLOOR."""
    from benchtrack.analysis.compare import RUN_NOISE_FLOOR

    rng = np.random.default_rng(21)
    history = History(tuple(RunStatistics(math.log(BASE_SECONDS), 0.0, 5) for _ in range(10)))
    comparison = compare_metric("b", WALL_SPEC, tight_side(rng, BASE_SECONDS), tight_side(rng, BASE_SECONDS * 1.03),
                                ComparisonSettings(), history)
    assert RUN_NOISE_FLOOR == 0.02
    assert comparison.verdict != "regression"
    assert comparison.ci_low < 0 < comparison.ci_high


def test_history_noise_is_widened_to_a_disturbed_pairs_suite_spread() -> None:
    history = RunNoise(0.02**2, 8.0, "history")
    calm = RunNoise(0.01**2, 15.0, "suite")
    burst = RunNoise(0.12**2, 15.0, "suite")  # a third of the suite moved 10-37% in this pair
    assert choose_run_noise(history, calm) == history
    widened = choose_run_noise(history, burst)
    assert widened is not None
    assert widened.variance == burst.variance
    assert widened.df == 10.0  # the suite's cap
    assert widened.source == "history+suite"
    # it is still the history's: one run's spread, pooled baselines, no within-run part added
    rng = np.random.default_rng(31)
    base, cand, past, _ = pooled_case(rng, BASE_SECONDS)
    c = compare_metric("b", WALL_SPEC, base, cand, ComparisonSettings(), past, widened)
    assert c.spread_source == "processes/history+suite"
    assert c.run_noise_share == pytest.approx(1.0)


def test_a_large_suite_shift_leaves_each_benchmarks_share_of_it_uncertain() -> None:
    rng = np.random.default_rng(37)
    base, cand = tight_side(rng, BASE_SECONDS), tight_side(rng, 1.5 * BASE_SECONDS)
    noise = RunNoise(0.02**2, 8.0, "history")

    def shifted(log_shift: float) -> float:
        c = compare_metric("b", WALL_SPEC, base, cand, ComparisonSettings(), None, noise,
                           Shift(log_shift, 0.0, math.inf, 16, 16))
        return math.log1p(c.ci_high) - math.log1p(c.ci_low)

    # a 40% slower machine: each benchmark's own answer to it is uncertain by half of it (noise from history)
    assert shifted(math.log(1.4)) > 3 * shifted(0.0)
