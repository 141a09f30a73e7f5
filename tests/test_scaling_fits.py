"""Pure scaling fits (benchtrack.analysis.scaling) on seeded synthetic data, and the scaling chart."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import matplotlib.image
import matplotlib.pyplot as plt
import numpy as np
import pytest

from benchtrack.analysis.scaling import MIN_LEVELS, choose, fit_scaling, reset_check
from benchtrack.report.scaling_chart import scaling_chart

LEVELS = np.array([5.0, 10.0, 20.0, 40.0, 80.0])


def _noisy(truth: np.ndarray, sd: float, seed: int) -> np.ndarray:
    return truth + np.random.default_rng(seed).normal(0.0, sd, truth.shape)


def test_linear_truth_is_chosen_linear_with_the_slope_inside_its_interval() -> None:
    covered = 0
    for seed in range(50):
        analysis = fit_scaling(LEVELS, _noisy(2.45 * LEVELS + 312.5, 3.0, seed), quantity="memory_mb", load="users")
        assert analysis.best is not None
        assert analysis.best.model == "linear", (seed, [(f.model, f.aic) for f in analysis.fits])
        low, high = analysis.best.slope_ci
        covered += low <= 2.45 <= high
        assert analysis.warnings == ()
    assert covered >= 44  # a 95 % interval: about 47.5 of 50, never far below


def test_linear_formula_reads_like_the_fit() -> None:
    analysis = fit_scaling([10, 20, 40, 80], [2.45 * x + 312.5 for x in (10, 20, 40, 80)], quantity="memory_mb", load="load")
    assert analysis.best is not None
    assert analysis.best.formula == "memory_mb = 2.45 * load + 312.5"
    assert analysis.best.r2 == pytest.approx(1.0)
    assert analysis.best.predict(100) == pytest.approx(557.5)
    negative = fit_scaling([1, 2, 3, 4], [1.5, 3.5, 5.5, 7.5], quantity="cpu_percent", load="rate")
    assert negative.best is not None
    assert negative.best.formula == "cpu_percent = 2 * rate - 0.5"


def test_quadratic_power_law_is_chosen_power_with_exponent_two_in_its_interval() -> None:
    for seed in range(20):
        truth = 0.5 * LEVELS**2
        analysis = fit_scaling(LEVELS, truth * (1 + np.random.default_rng(seed).normal(0, 0.03, LEVELS.shape)))
        assert analysis.best is not None
        assert analysis.best.model == "power", seed
        low, high = analysis.best.slope_ci
        assert low < 2.0 < high or abs(analysis.best.slope - 2.0) < 0.05
        assert "^" in analysis.best.formula


def test_exponential_truth_is_chosen_exponential_and_warned_about() -> None:
    for seed in range(20):
        truth = 50 * np.exp(0.04 * LEVELS)
        analysis = fit_scaling(LEVELS, truth * (1 + np.random.default_rng(seed).normal(0, 0.03, LEVELS.shape)),
                               quantity="memory_mb", load="users")
        assert analysis.best is not None
        assert analysis.best.model == "exponential", seed
        assert analysis.best.slope == pytest.approx(0.04, rel=0.15)
        assert analysis.warnings == ("memory_mb grows exponentially with users",)
        assert analysis.best.formula.startswith("memory_mb = ")
        assert "e^(" in analysis.best.formula


def test_logarithmic_truth_is_not_mistaken_for_linear() -> None:
    models = Counter(fit_scaling(LEVELS, _noisy(40 * np.log(LEVELS) + 100, 1.0, seed)).best.model  # type: ignore[union-attr]
                     for seed in range(30))
    assert models["linear"] == 0
    assert models["exponential"] == 0
    assert models["logarithmic"] >= 20  # power with a small exponent is its close cousin


def test_every_feasible_model_is_reported_with_r2_on_the_values_own_scale() -> None:
    analysis = fit_scaling(LEVELS, _noisy(3 * LEVELS + 100, 2.0, 1))
    assert [f.model for f in analysis.fits] == ["linear", "power", "logarithmic", "exponential"]
    y = np.asarray(analysis.values)
    for fit in analysis.fits:
        predicted = np.array([fit.predict(x) for x in LEVELS])
        expected = 1 - np.sum((y - predicted) ** 2) / np.sum((y - y.mean()) ** 2)
        assert fit.r2 == pytest.approx(expected)
    assert analysis.best is not None
    assert analysis.best.r2 == max(f.r2 for f in analysis.fits if f.model == "linear")


def test_models_outside_their_domain_are_skipped_with_a_reason() -> None:
    analysis = fit_scaling([0, 10, 20, 40], [0.0, 12.0, 25.0, 49.0], quantity="cpu_percent")
    assert [f.model for f in analysis.fits] == ["linear"]
    assert analysis.skipped == ("power: needs every load level > 0", "logarithmic: needs every load level > 0",
                                "exponential: needs every value > 0")
    assert analysis.best is not None
    assert analysis.best.model == "linear"


def test_too_few_levels_fit_nothing_and_say_so() -> None:
    analysis = fit_scaling([10, 10, 20, 20], [1.0, 2.0, 3.0, 4.0])
    assert analysis.best is None
    assert analysis.fits == ()
    assert analysis.note == f"not enough levels: 2 distinct load levels, at least {MIN_LEVELS} are needed"


def test_a_constant_series_is_flat_not_an_error() -> None:
    analysis = fit_scaling([5, 10, 20, 40], [300.0] * 4, quantity="memory_mb", load="users")
    assert analysis.best is not None
    assert (analysis.best.model, analysis.best.slope, analysis.best.slope_ci) == ("linear", 0.0, (0.0, 0.0))
    assert analysis.note == "memory_mb does not change with users"


def test_bad_input_is_a_clear_value_error() -> None:
    with pytest.raises(ValueError, match="one length"):
        fit_scaling([1, 2, 3], [1.0, 2.0])
    with pytest.raises(ValueError, match="finite"):
        fit_scaling([1, 2, 3], [1.0, math.nan, 2.0])


def test_choose_keeps_linear_unless_a_challenger_is_clearly_better() -> None:
    analysis = fit_scaling(LEVELS, _noisy(0.5 * LEVELS**2, 1.0, 3))
    by_model = {f.model: f for f in analysis.fits}
    span = float(np.ptp(LEVELS))
    assert choose(list(analysis.fits), span) is by_model["power"]
    assert choose([by_model["linear"]], span) is by_model["linear"]
    assert choose([], span) is None


def test_a_flat_exponential_is_not_chosen_over_a_line() -> None:
    # A straight line with a large intercept plus a chance bend: the exponential fits better, but
    # grows only 1.5x over the levels, so linear stays (seed 2 is such a series).
    analysis = fit_scaling(LEVELS, _noisy(2.45 * LEVELS + 312.5, 3.0, 2))
    by_model = {f.model: f for f in analysis.fits}
    assert by_model["exponential"].aic < by_model["linear"].aic - 6
    assert analysis.best is by_model["linear"]
    assert analysis.warnings == ()


def test_reset_check_passes_within_tolerance_and_fails_beyond() -> None:
    kept = reset_check(200.0, 215.0, 0.10)
    assert (kept.retained_mb, kept.allowed_mb, kept.passed) == (15.0, 20.0, True)
    leaked = reset_check(200.0, 260.0, 0.10)
    assert (leaked.retained_mb, leaked.passed) == (60.0, False)
    small = reset_check(20.0, 24.0, 0.10)  # 10 % of 20 MB is 2 MB: the 5 MB floor applies
    assert (small.allowed_mb, small.passed) == (5.0, True)
    with pytest.raises(ValueError, match="negative"):
        reset_check(1.0, 1.0, -0.1)


def test_scaling_chart_draws_every_fit_and_is_deterministic(tmp_path: Path) -> None:
    memory = fit_scaling(LEVELS, _noisy(2.45 * LEVELS + 312.5, 3.0, 1), quantity="memory_mb", load="users")
    cpu = fit_scaling(LEVELS, 50 * np.exp(0.04 * LEVELS), quantity="cpu_percent", load="users")
    first = scaling_chart(tmp_path / "a.png", [memory, cpu], title="checkout: resources against users")
    second = scaling_chart(tmp_path / "b.png", [memory, cpu], title="checkout: resources against users")
    assert first == tmp_path / "a.png"
    data = first.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert data == second.read_bytes()
    image = matplotlib.image.imread(first)
    assert image.shape[1] >= 1200  # two panels side by side
    # the best fits' colours are on the canvas: linear green in the memory panel, exponential red in the CPU one
    pixels = (image[..., :3] * 255).round().astype(int).reshape(-1, 3)
    for colour in ("#2a7f62", "#c92a2a"):
        rgb = np.array([int(colour[i:i + 2], 16) for i in (1, 3, 5)])
        assert int((np.abs(pixels - rgb).sum(axis=1) <= 6).sum()) > 200, colour
    assert plt.get_fignums() == []


def test_scaling_chart_of_too_few_levels_shows_the_note(tmp_path: Path) -> None:
    path = scaling_chart(tmp_path / "few.png", [fit_scaling([5, 10], [1.0, 2.0])], title="few")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="at least one"):
        scaling_chart(tmp_path / "none.png", [], title="none")
