"""Tests of benchtrack.analysis.anomaly: seeded synthetic histories, no clock.

A forest fit costs ~0.5 s (200 trees), so the rate measurements score many runs per fit through
detect_anomalies, and module fixtures share those fits between tests.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benchtrack.analysis.anomaly import (
    METHOD_FOREST,
    METHOD_NONE,
    METHOD_ROBUST_Z,
    AnomalyResult,
    detect_anomalies,
    detect_anomaly,
)

# Typical value and log-scale spread of each feature of a run (lognormal, independent).
FEATURES: dict[str, tuple[float, float]] = {
    "centre": (0.010, 0.03),  # seconds
    "spread": (0.05, 0.15),  # IQR / median
    "peak_rss": (50e6, 0.01),  # bytes
    "gc_pause": (2e-6, 0.10),  # seconds per op
    "between_process_cv": (0.02, 0.25),
}
# Regressions the check must catch: 40 % slower, peak memory doubled, spread 5x.
SHIFTS: dict[str, float] = {"centre": 1.4, "peak_rss": 2.0, "spread": 5.0}
TRIALS = 210


def runs(rng: np.random.Generator, count: int) -> list[dict[str, float]]:
    return [{name: typical * math.exp(rng.normal(0.0, sigma)) for name, (typical, sigma) in FEATURES.items()}
            for _ in range(count)]


def shifted(run: Mapping[str, float], feature: str) -> dict[str, float]:
    return {**run, feature: run[feature] * SHIFTS[feature]}


@dataclasses.dataclass
class Trials:
    typical: list[AnomalyResult]
    shifted: dict[str, list[AnomalyResult]]

    def false_alarm_rate(self) -> float:
        return sum(r.anomalous for r in self.typical) / len(self.typical)

    def detection_rate(self, feature: str) -> float:
        return sum(r.anomalous for r in self.shifted[feature]) / len(self.shifted[feature])

    def named_first_rate(self, feature: str) -> float:
        results = self.shifted[feature]
        return sum(bool(r.reasons) and r.reasons[0].startswith(f"{feature} ") for r in results) / len(results)


def run_trials(history_size: int, histories: int) -> Trials:
    """TRIALS typical runs and TRIALS runs per shift, spread over `histories` seeded histories."""
    per_history = TRIALS // histories
    trials = Trials([], {feature: [] for feature in SHIFTS})
    for index in range(histories):
        rng = np.random.default_rng(1000 + index)
        history = runs(rng, history_size)
        typical = runs(rng, per_history)
        candidates = typical + [shifted(run, feature) for feature in SHIFTS for run in typical]
        results = detect_anomalies(history, candidates, seed=index)
        trials.typical += results[:per_history]
        for position, feature in enumerate(SHIFTS, start=1):
            trials.shifted[feature] += results[position * per_history:(position + 1) * per_history]
    return trials


@pytest.fixture(scope="module")
def forest_trials() -> Trials:
    return run_trials(history_size=40, histories=3)  # 3 forest fits


@pytest.fixture(scope="module")
def z_trials() -> Trials:
    return run_trials(history_size=10, histories=20)


@pytest.fixture(scope="module")
def history() -> list[dict[str, float]]:
    return runs(np.random.default_rng(7), 30)


# -- rates ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("trials_fixture", "method"), [("forest_trials", METHOD_FOREST), ("z_trials", METHOD_ROBUST_Z)])
def test_typical_runs_are_rarely_flagged(trials_fixture: str, method: str, request: pytest.FixtureRequest) -> None:
    trials: Trials = request.getfixturevalue(trials_fixture)
    assert {r.method for r in trials.typical} == {method}
    assert trials.false_alarm_rate() <= 0.025, trials.false_alarm_rate()


@pytest.mark.parametrize("feature", list(SHIFTS))
@pytest.mark.parametrize("trials_fixture", ["forest_trials", "z_trials"])
def test_regressions_are_flagged_naming_the_feature_first(trials_fixture: str, feature: str,
                                                           request: pytest.FixtureRequest) -> None:
    trials: Trials = request.getfixturevalue(trials_fixture)
    assert trials.detection_rate(feature) >= 0.95, trials.detection_rate(feature)
    assert trials.named_first_rate(feature) >= 0.95, trials.named_first_rate(feature)


def test_five_run_history_keeps_false_alarms_low_and_catches_big_shifts() -> None:
    # The hardest case of the robust-z method: the plain 1.4826 * MAD scale flags ~30 % of typical
    # runs here; the small-sample scale keeps it near 4 % and still catches most regressions.
    trials = run_trials(history_size=5, histories=100)
    assert trials.false_alarm_rate() <= 0.06, trials.false_alarm_rate()
    assert trials.detection_rate("peak_rss") == 1.0
    assert trials.detection_rate("centre") >= 0.8, trials.detection_rate("centre")
    assert trials.detection_rate("spread") >= 0.75, trials.detection_rate("spread")


# -- single verdicts --------------------------------------------------------------------------


def test_faster_run_is_reported_below() -> None:
    history = runs(np.random.default_rng(3), 10)
    current = dict(history[0]) | {"centre": float(np.median([r["centre"] for r in history])) * 0.6}
    result = detect_anomaly(history, current)
    assert result.anomalous
    assert result.method == METHOD_ROBUST_Z
    assert result.score == result.score > result.threshold == 5.0
    assert result.reasons[0].startswith("centre ")
    assert "below the history median (0.60x)" in result.reasons[0]


def test_typical_run_has_no_reasons(history: list[dict[str, float]]) -> None:
    medians = {name: float(np.median([r[name] for r in history])) for name in FEATURES}
    result = detect_anomaly(history[:15], medians)
    assert not result.anomalous
    assert result.reasons == ()
    assert result.score < 1.0


def test_slower_run_is_explained_the_same_way_every_time(history: list[dict[str, float]]) -> None:
    # Also the upper boundary of the default sizes: exactly min_history_forest (20) runs.
    history = history[:20]
    current = dict(history[0]) | {"centre": float(np.median([r["centre"] for r in history])) * 1.4}
    result = detect_anomaly(history, current, seed=3)
    assert result.anomalous
    assert result.method == METHOD_FOREST
    assert result.history_size == 20
    assert result.features == tuple(sorted(FEATURES))
    assert result.reasons[0].startswith("centre ")
    assert "robust SD above the history median (1.40x)" in result.reasons[0]
    # Same input, same output; scoring in a batch does not change a verdict (one more fit each).
    assert detect_anomalies(history, [history[1], current], seed=3)[1] == result


# -- history size boundaries ------------------------------------------------------------------


@pytest.mark.parametrize(("size", "method"), [(0, METHOD_NONE), (4, METHOD_NONE), (5, METHOD_ROBUST_Z),
                                              (19, METHOD_ROBUST_Z)])  # 20 runs: test_slower_run_is_explained...
def test_method_follows_the_default_boundaries(size: int, method: str, history: list[dict[str, float]]) -> None:
    result = detect_anomaly(history[:size], history[-1])
    assert (result.method, result.history_size) == (method, size)
    if method == METHOD_NONE:
        assert not result.anomalous
        assert result.reasons == (f"too little history ({size} runs)",)
        assert result.threshold == math.inf


@pytest.mark.parametrize(("size", "method"), [(2, METHOD_NONE), (3, METHOD_ROBUST_Z), (7, METHOD_ROBUST_Z),
                                              (8, METHOD_FOREST)])
def test_method_follows_custom_boundaries(size: int, method: str, history: list[dict[str, float]]) -> None:
    result = detect_anomaly(history[:size], history[-1], min_history_z=3, min_history_forest=8)
    assert result.method == method


def test_rows_dropped_for_missing_or_non_finite_values_do_not_count(history: list[dict[str, float]]) -> None:
    rows = [dict(r) for r in history[:20]]
    rows[0]["centre"] = math.nan
    rows[1]["peak_rss"] = math.inf
    result = detect_anomaly(rows, history[-1])
    assert (result.method, result.history_size) == (METHOD_ROBUST_Z, 18)
    assert result.features == tuple(sorted(FEATURES))


# -- missing keys -----------------------------------------------------------------------------


def test_feature_missing_from_much_of_the_history_is_left_out(history: list[dict[str, float]]) -> None:
    rows = [dict(r) for r in history[:10]]
    for row in rows[:3]:  # 70 % coverage < 80 %
        del row["gc_pause"]
    current = history[-1] | {"gc_pause": 1.0}  # wildly off, but not comparable
    result = detect_anomaly(rows, current)
    assert "gc_pause" not in result.features
    assert result.history_size == 10
    assert not result.anomalous


def test_feature_missing_from_few_rows_is_kept_and_those_rows_dropped(history: list[dict[str, float]]) -> None:
    rows = [dict(r) for r in history[:10]]
    for row in rows[:2]:  # 80 % coverage
        del row["gc_pause"]
    result = detect_anomaly(rows, history[-1] | {"gc_pause": 1.0})
    assert "gc_pause" in result.features
    assert result.history_size == 8
    assert result.anomalous
    assert result.reasons[0].startswith("gc_pause ")
    assert detect_anomaly(rows, history[-1], min_key_fraction=0.9).features == tuple(
        sorted(set(FEATURES) - {"gc_pause"}))


def test_only_features_of_the_current_run_are_compared(history: list[dict[str, float]]) -> None:
    current = {"centre": history[-1]["centre"], "new_metric": 3.0}
    result = detect_anomaly(history[:10], current)
    assert result.features == ("centre",)
    assert result.method == METHOD_ROBUST_Z


def test_no_shared_feature_gives_no_verdict(history: list[dict[str, float]]) -> None:
    result = detect_anomaly(history[:10], {"new_metric": 3.0})
    assert result.method == METHOD_NONE
    assert not result.anomalous
    assert result.features == ()
    assert "no feature" in result.reasons[0]


# -- degenerate histories ---------------------------------------------------------------------


@pytest.mark.parametrize("size", [10, 20])
def test_constant_history_flags_a_clear_change_only(size: int) -> None:
    run = {"centre": 0.01, "peak_rss": 50e6, "gc_pause": 0.0, "between_process_cv": 0.0}
    same, within_floor, doubled = detect_anomalies([run] * size, [run, run | {"peak_rss": 50.5e6},
                                                                  run | {"peak_rss": 100e6}])
    assert same.method == (METHOD_ROBUST_Z if size < 20 else METHOD_FOREST)
    assert not same.anomalous
    assert math.isfinite(same.score)
    assert math.isfinite(same.threshold)
    if size < 20:
        assert same.score == 0.0
    assert not within_floor.anomalous  # 1 % is within the scale floor
    # The forest cannot split a feature constant over the history; the robust z still sees it.
    assert doubled.anomalous
    assert doubled.reasons == ("peak_rss 69.3 robust SD above the history median (2.00x, history constant)",)


def test_zero_valued_feature_is_compared_on_a_linear_scale() -> None:
    rng = np.random.default_rng(5)
    history = [{"between_process_cv": float(abs(rng.normal(0.0, 0.01)))} for _ in range(9)] + [
        {"between_process_cv": 0.0}]
    assert not detect_anomaly(history, {"between_process_cv": 0.01}).anomalous
    result = detect_anomaly(history, {"between_process_cv": 0.5})
    assert result.anomalous
    assert "0.5 vs" in result.reasons[0]


# -- input errors -----------------------------------------------------------------------------


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, "fast", None])
def test_non_finite_current_is_a_value_error(value: object, history: list[dict[str, float]]) -> None:
    with pytest.raises(ValueError, match="'centre' is not a finite number"):
        detect_anomaly(history[:5], history[-1] | {"centre": value})  # type: ignore[arg-type]


def test_run_without_features_gets_no_verdict(history: list[dict[str, float]]) -> None:
    # e.g. a failed benchmark that produced no samples: nothing to judge, nothing to raise
    result = detect_anomaly(history, {})
    assert (result.anomalous, result.method, result.features) == (False, METHOD_NONE, ())
    assert result.reasons == ("the run has no features to check",)


@pytest.mark.parametrize("options", [{"min_history_z": 1}, {"min_history_z": 6, "min_history_forest": 5},
                                     {"z_threshold": 0.0}, {"z_threshold": math.nan}, {"contamination": 0.0},
                                     {"contamination": 0.6}, {"min_key_fraction": 0.0}])
def test_bad_options_are_value_errors(options: dict[str, float], history: list[dict[str, float]]) -> None:
    with pytest.raises(ValueError, match="must"):
        detect_anomaly(history, history[-1], **options)  # type: ignore[arg-type]


def test_result_as_dict_is_json_ready(history: list[dict[str, float]]) -> None:
    none = json.loads(json.dumps(detect_anomaly(history[:2], history[-1]).as_dict()))
    assert none["threshold"] is None
    assert none["reasons"] == ["too little history (2 runs)"]
    z = detect_anomaly(history[:10], history[-1]).as_dict()
    assert z["threshold"] == 5.0
    assert z["features"] == sorted(FEATURES)


# -- properties -------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(values=st.lists(st.floats(0.5, 2.0), min_size=5, max_size=19),
       current=st.floats(0.1, 10.0), factor=st.floats(1e-6, 1e6))
def test_log_scaled_verdict_does_not_depend_on_units(values: list[float], current: float, factor: float) -> None:
    history = [{"centre": v} for v in values]
    base = detect_anomaly(history, {"centre": current})
    scaled = detect_anomaly([{"centre": v * factor} for v in values], {"centre": current * factor})
    assert base.method == scaled.method == METHOD_ROBUST_Z
    assert scaled.score == pytest.approx(base.score, rel=1e-6, abs=1e-6)
    if abs(base.score - base.threshold) > 1e-6:
        assert scaled.anomalous == base.anomalous
