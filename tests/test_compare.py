"""benchtrack.analysis.compare, pure: verdicts, severities, where the spread comes from, history
pooling, Benjamini-Hochberg, and the error rates on seeded synthetic data (no clock, no I/O)."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as scipy_stats
from verdict_support import BASE_SECONDS, MIB, constant_side, noisy, side

from benchtrack.analysis.compare import (
    COMPARED_METRICS,
    DEFAULT_THRESHOLDS,
    Comparison,
    ComparisonSettings,
    History,
    MetricSpec,
    RunNoise,
    RunStatistics,
    Side,
    Thresholds,
    adjust_for_multiplicity,
    benjamini_hochberg,
    compare_metric,
    run_statistics,
)

SPECS = {spec.name: spec for spec in COMPARED_METRICS}
RSS, GC_COLLECTIONS = SPECS["rss_peak_bytes"], SPECS["gc_collections"]
# The t machinery, tested on a mean-of-processes time; the fastest-process centre that wall and
# CPU time use has its tests in test_noise_model.py and its evidence in the real-run corpus.
WALL = MetricSpec("wall_s", "time", log_scale=True, centre="trimmed-mean")
SETTINGS = ComparisonSettings()
ALPHA = SETTINGS.alpha
TIME = DEFAULT_THRESHOLDS["time"]


def rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


# These tests check the within-invocation machinery: a calibration that says whole invocations
# do not differ on this (imaginary) machine. The between-run part has tests of its own below and
# in test_noise_model.py.
STEADY = RunNoise(0.0, math.inf, "none")


@pytest.fixture(autouse=True)
def no_run_noise_floor(monkeypatch: pytest.MonkeyPatch) -> None:
    """The floor of the noise between invocations (2%) has its own test in test_noise_model.py."""
    monkeypatch.setattr("benchtrack.analysis.compare.RUN_NOISE_FLOOR", 0.0)


def compare_wall(baseline: Side, candidate: Side, history: History | None = None,
                 noise: RunNoise | None = STEADY) -> Comparison:
    return compare_metric("work", WALL, baseline, candidate, SETTINGS, history, noise if history is None else None)


def compare_steady(spec: MetricSpec, baseline: Side, candidate: Side, settings: ComparisonSettings = SETTINGS) -> Comparison:
    return compare_metric("work", spec, baseline, candidate, settings, None, STEADY)


def memory_side(generator: np.random.Generator, mib: float, processes: int = 5) -> Side:
    values, procs = noisy(generator, mib * MIB, processes, 10, between_cv=0.001, within_cv=0.0005)
    return Side(tuple(values), tuple(procs))


def width(c: Comparison) -> float:
    return c.ci_high - c.ci_low


# --- the four verdicts ----------------------------------------------------------------------------


def test_thirty_percent_slower_is_a_regression() -> None:
    g = rng(1)
    c = compare_wall(side(g, BASE_SECONDS), side(g, 1.3 * BASE_SECONDS))
    assert c.verdict == "regression"
    assert c.p_value < 1e-6
    assert c.p_adjusted == c.p_value  # one comparison: nothing to adjust yet
    assert c.ci_low < 0.30 < c.ci_high
    assert 0.25 < c.change < 0.35
    assert c.severity == TIME.severity(c.change)
    assert c.severity in ("minor", "major")
    assert c.spread_source == "processes/none"
    assert (c.baseline_processes, c.candidate_processes) == (5, 5)
    assert c.baseline_centre == pytest.approx(BASE_SECONDS, rel=0.03)
    assert c.candidate_centre == pytest.approx(1.3 * BASE_SECONDS, rel=0.03)
    # on the log scale the relative change is exactly the ratio of the centres
    assert c.change == pytest.approx(c.candidate_centre / c.baseline_centre - 1, rel=1e-9)
    assert c.absolute_change == pytest.approx(c.candidate_centre - c.baseline_centre, rel=1e-9)


def test_thirty_percent_faster_is_an_improvement_without_severity() -> None:
    g = rng(1)
    c = compare_wall(side(g, BASE_SECONDS), side(g, 0.7 * BASE_SECONDS))
    assert c.verdict == "improvement"
    assert c.severity == "none"
    assert c.ci_low < -0.30 < c.ci_high < 0


def test_identical_distributions_are_unchanged_with_a_tight_interval() -> None:
    g = rng(1)
    c = compare_wall(side(g, BASE_SECONDS), side(g, BASE_SECONDS))
    assert c.verdict == "unchanged"
    assert c.severity == "none"
    assert -TIME.minor < c.ci_low <= c.change <= c.ci_high < TIME.minor
    assert c.ci_high - c.ci_low < 0.1
    assert c.p_value > ALPHA


def test_two_very_noisy_processes_and_a_modest_change_are_inconclusive() -> None:
    g = rng(2)
    noisy_side = {"processes": 2, "per_process": 5, "between_cv": 0.3, "within_cv": 0.05}
    c = compare_wall(side(g, BASE_SECONDS, **noisy_side), side(g, 1.1 * BASE_SECONDS, **noisy_side))
    assert c.verdict == "inconclusive"
    assert c.severity == "none"
    # neither significant nor narrow enough to rule out a minor change
    assert c.p_value > ALPHA
    assert c.ci_low < -TIME.minor or c.ci_high > TIME.minor


# --- severity ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("change", "severity"), [
    (0.0, "none"), (0.1499, "none"), (0.15, "minor"), (0.2999, "minor"), (0.30, "major"), (0.4999, "major"),
    (0.50, "critical"), (3.0, "critical"), (-0.9, "none"),
])
def test_relative_severity_boundaries_are_inclusive(change: float, severity: str) -> None:
    assert TIME.severity(change) == severity


@pytest.mark.parametrize(("mib", "severity"), [
    (4.99, "none"), (5.0, "minor"), (19.99, "minor"), (20.0, "major"), (49.99, "major"), (50.0, "critical"),
])
def test_memory_severity_boundaries_are_mib(mib: float, severity: str) -> None:
    memory = DEFAULT_THRESHOLDS["memory"]
    assert memory.scale == "absolute"
    assert memory.severity(mib) == severity


@pytest.mark.parametrize(("factor", "severity"), [(1.2, "minor"), (1.4, "major"), (1.7, "critical")])
def test_time_regression_severity_follows_the_relative_change(factor: float, severity: str) -> None:
    g = rng(3)
    c = compare_wall(side(g, BASE_SECONDS, between_cv=0.005), side(g, factor * BASE_SECONDS, between_cv=0.005))
    assert c.verdict == "regression"
    assert c.severity == severity


@pytest.mark.parametrize(("base_mib", "growth_mib", "severity"), [
    (100, 25, "major"),  # the brief's example: +25 MiB with 5/20/50
    (1000, 25, "major"),  # 2.5 % relative, still 25 MiB: memory severity is absolute
    (10, 4, "none"),  # 40 % relative but under 5 MiB: a regression, yet below every threshold
    (100, 7, "minor"),
    (100, 60, "critical"),
])
def test_memory_regression_severity_is_absolute_mib(base_mib: float, growth_mib: float, severity: str) -> None:
    g = rng(4)
    c = compare_steady(RSS, memory_side(g, base_mib), memory_side(g, base_mib + growth_mib))
    assert c.verdict == "regression"
    assert c.absolute_change == pytest.approx(growth_mib, rel=0.02)
    assert c.change == pytest.approx(growth_mib / base_mib, rel=0.05)
    assert c.severity == severity


def test_custom_thresholds_change_the_severity() -> None:
    g = rng(3)
    strict = ComparisonSettings(thresholds={**DEFAULT_THRESHOLDS, "time": Thresholds(0.05, 0.1, 0.15)})
    c = compare_steady(WALL, side(g, BASE_SECONDS, between_cv=0.005), side(g, 1.2 * BASE_SECONDS, between_cv=0.005),
                       strict)
    assert (c.verdict, c.severity) == ("regression", "critical")


# --- where a one-process side gets its spread -------------------------------------------------------


def one_process(g: np.random.Generator, centre: float) -> Side:
    return side(g, centre, processes=1, per_process=10)


def test_one_process_sides_use_the_history() -> None:
    # one-process runs are one draw of the speed modes each: twelve of them make a usable history
    centres = [math.log(BASE_SECONDS) + d for d in (-0.005, 0.0, 0.005, 0.0025, -0.0025, 0.001) * 2]
    history = History(tuple(RunStatistics(centre, 0.0, 1) for centre in centres))
    g = rng(5)
    c = compare_wall(one_process(g, BASE_SECONDS), one_process(g, 1.1 * BASE_SECONDS), history)
    assert c.spread_source == "samples/history"
    assert (c.baseline_processes, c.candidate_processes) == (1, 1)
    assert c.verdict == "regression"  # the history says whole runs agree: 10 % is real


def test_history_of_one_process_runs_gives_the_spread_of_run_centres() -> None:
    centres = [math.log(BASE_SECONDS) + d for d in (-0.01, 0.0, 0.01, 0.005, -0.005, 0.002) * 2]
    history = History(tuple(RunStatistics(centre, 0.0, 1) for centre in centres))
    assert history.pooled_process_variance() is None
    g = rng(5)
    c = compare_wall(one_process(g, BASE_SECONDS), one_process(g, 1.1 * BASE_SECONDS), history)
    assert c.spread_source == "samples/history"


def test_a_one_process_side_takes_its_spread_from_its_own_samples() -> None:
    g = rng(5)
    c = compare_wall(one_process(g, BASE_SECONDS), side(g, 1.1 * BASE_SECONDS))
    assert c.spread_source == "processes+samples/none"
    c = compare_wall(side(g, BASE_SECONDS), one_process(g, 1.1 * BASE_SECONDS))
    assert c.spread_source == "processes+samples/none"


def test_one_process_on_both_sides_and_no_history_uses_the_wide_prior() -> None:
    g = rng(5)
    c = compare_wall(one_process(g, BASE_SECONDS), one_process(g, 1.1 * BASE_SECONDS), noise=None)
    assert c.spread_source == "samples/prior"
    assert c.verdict == "inconclusive"  # a guess would be a 10 % regression
    assert c.ci_low < 0 < c.ci_high
    assert c.ci_high > 0.1


def test_history_with_too_few_runs_is_not_used_for_a_one_process_side() -> None:
    history = History((RunStatistics(math.log(BASE_SECONDS), 0.0, 1), RunStatistics(math.log(BASE_SECONDS), 0.0, 1)))
    assert not history.usable
    g = rng(5)
    c = compare_wall(one_process(g, BASE_SECONDS), one_process(g, 1.1 * BASE_SECONDS), history)
    assert c.spread_source == "samples/prior"


# --- history pooling ----------------------------------------------------------------------------------


def two_process_sides() -> tuple[Side, Side]:
    g = rng(6)
    return side(g, BASE_SECONDS, processes=2, between_cv=0.03), side(g, 1.05 * BASE_SECONDS, processes=2, between_cv=0.03)


def test_pooling_the_history_adds_degrees_of_freedom_and_narrows_the_interval() -> None:
    base, cand = two_process_sides()
    # a mean of two processes: its variance times 2 is the variance between processes
    own = [run_statistics(s, log_scale=True).centre_variance * 2 for s in (base, cand)]
    # History runs with exactly the sides' own process variance: pooling changes only the degrees of freedom.
    pooled_variance = float(np.mean(own))
    centre = math.log(BASE_SECONDS)
    history = History(tuple(RunStatistics(centre, pooled_variance / 5, 5) for _ in range(10)))
    assert history.pooled_process_variance() == pytest.approx((pooled_variance, 40.0))

    alone = compare_wall(base, cand)
    pooled = compare_wall(base, cand, history)
    assert alone.spread_source == "processes/none"
    assert pooled.spread_source == "processes+history/history"
    assert pooled.change == alone.change  # the centres come from this run only
    assert width(pooled) < width(alone) / 2  # t(0.995, ~2) is 9.9, t(0.995, ~80) is 2.6
    assert pooled.p_value < alone.p_value


def test_excess_variance_between_runs_widens_the_interval() -> None:
    base, cand = two_process_sides()
    centre = math.log(BASE_SECONDS)
    steady = History(tuple(RunStatistics(centre, 0.03**2 / 5, 5) for _ in range(10)))
    offsets = rng(7).normal(0.0, 0.10, size=10)  # whole runs wander by 10 %, far beyond process noise
    wandering = History(tuple(RunStatistics(centre + d, 0.03**2 / 5, 5) for d in offsets))
    calm, shaky = compare_wall(base, cand, steady), compare_wall(base, cand, wandering)
    assert calm.change == shaky.change
    assert width(shaky) > 2 * width(calm)
    assert shaky.p_value > calm.p_value
    assert shaky.verdict == "inconclusive"  # a 5 % change cannot be told from runs wandering by 10 %


# --- Benjamini-Hochberg -------------------------------------------------------------------------------


def test_benjamini_hochberg_by_hand() -> None:
    # sorted: 0.005 (rank 1), 0.01 (2), 0.03 (3), 0.04 (4); p * 4 / rank = 0.02, 0.02, 0.04, 0.04
    assert benjamini_hochberg([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.02, 0.04, 0.04, 0.02])
    # step-up: a later rank's smaller value carries down (0.04 * 3 / 2 = 0.06 > 0.045 * 3 / 3)
    assert benjamini_hochberg([0.02, 0.04, 0.045]) == pytest.approx([0.045, 0.045, 0.045])
    assert benjamini_hochberg([0.5, 0.9]) == pytest.approx([0.9, 0.9])
    assert benjamini_hochberg([0.7]) == [0.7]
    assert benjamini_hochberg([]) == []


@settings(deadline=None)  # a loaded machine must not turn a slow example into a failure
@given(st.lists(st.floats(min_value=0.0, max_value=1.0, allow_nan=False), min_size=1, max_size=40))
def test_benjamini_hochberg_is_monotone_capped_and_never_below_raw(p_values: list[float]) -> None:
    adjusted = benjamini_hochberg(p_values)
    assert len(adjusted) == len(p_values)
    for raw, adj in zip(p_values, adjusted, strict=True):
        assert raw <= adj + 1e-12
        assert 0.0 <= adj <= 1.0
    for i, pi in enumerate(p_values):
        for j, pj in enumerate(p_values):
            if pi <= pj:
                assert adjusted[i] <= adjusted[j] + 1e-12
    assert min(adjusted) <= min(p_values) * len(p_values) + 1e-12
    assert benjamini_hochberg(list(reversed(p_values))) == pytest.approx(list(reversed(adjusted)))


def test_a_borderline_regression_alone_is_not_significant_among_many_nulls() -> None:
    g = rng(5)
    borderline = compare_wall(side(g, BASE_SECONDS, between_cv=0.05), side(g, 1.1 * BASE_SECONDS, between_cv=0.05))
    assert ALPHA / 20 < borderline.p_value < ALPHA  # precondition: significant alone, not after 20 tests
    assert borderline.verdict == "regression"
    assert adjust_for_multiplicity([borderline], SETTINGS) == [borderline]

    nulls = []
    for seed in range(100, 119):
        gn = rng(seed)
        nulls.append(compare_wall(side(gn, BASE_SECONDS, between_cv=0.05), side(gn, BASE_SECONDS, between_cv=0.05)))
    adjusted = adjust_for_multiplicity([borderline, *nulls], SETTINGS)
    first = adjusted[0]
    assert first.p_value == borderline.p_value
    assert first.p_adjusted > ALPHA
    assert first.verdict == "inconclusive"
    assert first.severity == "none"
    assert all(c.verdict in ("unchanged", "inconclusive") for c in adjusted)
    assert [c.p_adjusted for c in adjusted] == pytest.approx(benjamini_hochberg([c.p_value for c in adjusted]))


def test_a_clear_regression_survives_the_adjustment() -> None:
    g = rng(1)
    clear = compare_wall(side(g, BASE_SECONDS), side(g, 1.3 * BASE_SECONDS))
    nulls = [compare_wall(side(g, BASE_SECONDS), side(g, BASE_SECONDS)) for _ in range(19)]
    assert adjust_for_multiplicity([clear, *nulls], SETTINGS)[0].verdict == "regression"


def test_unknown_metric_names_are_adjusted_as_times() -> None:
    g = rng(1)
    custom = MetricSpec("track.latency_s", "time", log_scale=True)
    c = compare_steady(custom, side(g, BASE_SECONDS), side(g, 1.3 * BASE_SECONDS))
    assert adjust_for_multiplicity([c], SETTINGS)[0].verdict == "regression"


# --- bad input and exact comparisons ------------------------------------------------------------------


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_values_are_value_errors(bad: float) -> None:
    good = constant_side(1.0)
    broken = Side((1.0, bad, 1.0), (0, 0, 1))
    with pytest.raises(ValueError, match="non-finite"):
        compare_wall(good, broken)
    with pytest.raises(ValueError, match="non-finite"):
        compare_wall(broken, good)


def test_an_empty_side_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="no wall_s samples"):
        compare_wall(Side((), ()), constant_side(1.0))


def test_equal_constants_are_exactly_unchanged() -> None:
    c = compare_metric("work", GC_COLLECTIONS, constant_side(3.0), constant_side(3.0), SETTINGS)
    assert (c.verdict, c.severity, c.spread_source) == ("unchanged", "none", "exact")
    assert (c.change, c.ci_low, c.ci_high, c.p_value, c.p_adjusted) == (0.0, 0.0, 0.0, 1.0, 1.0)


def test_a_constant_that_grows_is_an_exact_regression() -> None:
    c = compare_metric("work", GC_COLLECTIONS, constant_side(3.0), constant_side(5.0), SETTINGS)
    assert (c.verdict, c.spread_source, c.p_value) == ("regression", "exact", 0.0)
    assert c.change == pytest.approx(2 / 3)
    assert c.ci_low == c.ci_high == c.change
    assert c.severity == "critical"  # gc: 15/30/50 %
    shrunk = compare_metric("work", GC_COLLECTIONS, constant_side(5.0), constant_side(3.0), SETTINGS)
    assert (shrunk.verdict, shrunk.severity) == ("improvement", "none")


def test_exact_times_compare_on_the_log_scale() -> None:
    # two processes: their mean log is exactly each one's (with three, rounding leaves a spread of ~1e-36)
    c = compare_wall(constant_side(2e-3, processes=2), constant_side(2.8e-3, processes=2))
    assert (c.verdict, c.spread_source, c.severity) == ("regression", "exact", "major")
    assert c.change == pytest.approx(0.4)
    assert c.absolute_change == pytest.approx(0.8e-3)


def test_exact_comparisons_are_left_alone_by_the_adjustment() -> None:
    exact = compare_metric("work", GC_COLLECTIONS, constant_side(3.0), constant_side(4.0), SETTINGS)
    g = rng(1)
    nulls = [compare_wall(side(g, BASE_SECONDS), side(g, BASE_SECONDS)) for _ in range(9)]
    assert adjust_for_multiplicity([exact, *nulls], SETTINGS)[0] == exact


def test_zero_values_are_compared_linearly() -> None:
    zero = constant_side(0.0)
    c = compare_metric("work", GC_COLLECTIONS, zero, zero, SETTINGS)
    assert (c.verdict, c.change) == ("unchanged", 0.0)
    grows = compare_metric("work", GC_COLLECTIONS, zero, constant_side(2.0), SETTINGS)
    # from zero, the change is relative to the metric's floor (0.01 collections per call)
    assert (grows.verdict, grows.change, grows.severity) == ("regression", 200.0, "critical")


def test_comparisons_are_frozen_and_verdicts_are_not_mutated_in_place() -> None:
    g = rng(1)
    c = compare_wall(side(g, BASE_SECONDS), side(g, 1.3 * BASE_SECONDS))
    copy = replace(c)
    adjust_for_multiplicity([c] * 5, SETTINGS)
    assert c == copy


# --- error rates on seeded simulations -------------------------------------------------------------------

TRIALS = 500


def simulate(seed: int, factor: float) -> str:
    g = rng(seed)
    options = {"processes": 5, "per_process": 10, "between_cv": 0.05, "within_cv": 0.02}
    return compare_wall(side(g, BASE_SECONDS, **options), side(g, factor * BASE_SECONDS, **options)).verdict


def test_false_positive_rate_on_null_pairs_is_at_most_alpha() -> None:
    verdicts = [simulate(seed, 1.0) for seed in range(TRIALS)]
    false_alarms = sum(v in ("regression", "improvement") for v in verdicts)
    assert false_alarms <= 0.01 * TRIALS, false_alarms
    # and the test is not silent: most null pairs at 5 % process noise are called unchanged
    assert verdicts.count("unchanged") > 0.5 * TRIALS


def test_twenty_percent_slowdowns_are_detected_at_least_ninety_percent_of_the_time() -> None:
    verdicts = [simulate(10_000 + seed, 1.2) for seed in range(TRIALS)]
    assert verdicts.count("regression") >= 0.9 * TRIALS, verdicts.count("regression")
    assert "improvement" not in verdicts


def test_interval_width_matches_the_t_quantile_of_the_welch_degrees_of_freedom() -> None:
    # Two processes a side, no history: df = 2 when both sides are equally spread.
    base = Side((1.0, 1.0, 1.2, 1.2), (0, 0, 1, 1))
    cand = Side((1.1, 1.1, 1.3, 1.3), (0, 0, 1, 1))
    spec = MetricSpec("gc_pause_s", "gc", log_scale=False)
    c = compare_steady(spec, base, cand)
    se = math.sqrt(0.02 / 2 + 0.02 / 2)
    half = scipy_stats.t.ppf(1 - ALPHA / 2, 2.0) * se
    assert c.absolute_change == pytest.approx(0.1)
    assert c.ci_low == pytest.approx((0.1 - half) / 1.1)
    assert c.ci_high == pytest.approx((0.1 + half) / 1.1)
    assert c.p_value == pytest.approx(2 * scipy_stats.t.sf(0.1 / se, 2.0))
