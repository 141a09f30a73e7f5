"""A seeded, labelled corpus of benchmark pairs with a realistic noise structure, and the
decision rules of the tools benchtrack is measured against (the anchors).

Noise model per sample: base x exp(run effect + within-run noise). Each worker process is a
"run" in pyperf's sense and draws its own effect (between-run CV 1-30%); inside a run the noise
has one of three shapes: log-normal, bimodal (a second mode 12% slower, 30% of samples) or
heavy-tailed (rare outliers up to several times slower). Candidates are the baseline scaled by
1 + slowdown (0 for null pairs).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
from scipy import stats

from benchtrack.analysis.compare import (
    ComparisonSettings,
    History,
    MetricSpec,
    Side,
    adjust_for_multiplicity,
    compare_metric,
    run_statistics,
)

SHAPES = ("lognormal", "bimodal", "heavy-tailed")
BETWEEN_RUN_CVS = (0.01, 0.02, 0.03, 0.05, 0.10, 0.20, 0.30)
SLOWDOWNS = (0.02, 0.05, 0.10, 0.20)
RUN_SIZE = 10  # comparisons per simulated `benchtrack run`, the family for FDR control
HISTORY_RUNS = 8  # earlier baseline runs benchtrack finds in MLflow for the same benchmark
WALL = MetricSpec("wall_s", "time", log_scale=True)


@dataclass(frozen=True)
class Pair:
    shape: str
    between_cv: float
    slowdown: float  # 0.0 for a null pair
    processes: int
    baseline: Side
    candidate: Side
    history: History


def _within(rng: np.random.Generator, shape: str, count: int) -> np.ndarray:
    if shape == "lognormal":
        return rng.normal(0.0, 0.02, count)
    if shape == "bimodal":
        return rng.normal(0.0, 0.01, count) + np.where(rng.random(count) < 0.3, np.log(1.12), 0.0)
    outliers = np.where(rng.random(count) < 0.05, np.log1p(rng.exponential(0.3, count)), 0.0)
    return rng.normal(0.0, 0.01, count) + outliers


def _side(rng: np.random.Generator, shape: str, between_cv: float, processes: int, samples: int,
          factor: float) -> Side:
    values, indices = [], []
    for process in range(processes):
        run_effect = rng.normal(0.0, between_cv)
        log_values = np.log(1e-3 * factor) + run_effect + _within(rng, shape, samples)
        values.extend(np.exp(log_values).tolist())
        indices.extend([process] * samples)
    return Side(tuple(values), tuple(indices))


def generate(seed: int = 20261122, nulls: int = 60, per_size: int = 30, processes: int = 5,
             samples: int = 10, history_runs: int = HISTORY_RUNS) -> list[Pair]:
    rng = np.random.default_rng(seed)
    pairs = []
    for shape in SHAPES:
        for cv in BETWEEN_RUN_CVS:
            for slowdown in (0.0,) * nulls + tuple(s for s in SLOWDOWNS for _ in range(per_size)):
                baseline = _side(rng, shape, cv, processes, samples, 1.0)
                candidate = _side(rng, shape, cv, processes, samples, 1.0 + slowdown)
                history = History(tuple(
                    run_statistics(_side(rng, shape, cv, processes, samples, 1.0), log_scale=True)
                    for _ in range(history_runs)
                ))
                pairs.append(Pair(shape, cv, slowdown, processes, baseline, candidate, history))
    return pairs


def benchtrack_flags(pairs: list[Pair], seed: int = 7, use_history: bool = True) -> list[str]:
    """benchtrack's verdict per pair; pairs are dealt at random into runs of RUN_SIZE and
    Benjamini-Hochberg runs over each run's comparisons, as `benchtrack compare` does."""
    settings = ComparisonSettings()
    order = np.random.default_rng(seed).permutation(len(pairs))
    verdicts = [""] * len(pairs)
    for start in range(0, len(order), RUN_SIZE):
        members = order[start : start + RUN_SIZE]
        raw = [
            compare_metric(f"pair{i}", WALL, pairs[i].baseline, pairs[i].candidate, settings,
                           pairs[i].history if use_history else None)
            for i in members
        ]
        for index, comparison in zip(members, adjust_for_multiplicity(raw, settings), strict=True):
            verdicts[index] = comparison.verdict
    return verdicts


# The anchors, each as its tool decides by default, with the knob that trades false alarms for detection.

def pyperf_t_test(pair: Pair, alpha: float = 0.05) -> bool:
    """pyperf compare_to: Student's two-sample t-test on all values, significant and slower."""
    base, cand = np.asarray(pair.baseline.values), np.asarray(pair.candidate.values)
    result = stats.ttest_ind(cand, base)
    return bool(result.pvalue < alpha and cand.mean() > base.mean())


def asv_rule(pair: Pair, factor: float = 1.1) -> bool:
    """asv compare: ratio beyond --factor (default 1.1) and Mann-Whitney U significant."""
    base, cand = np.asarray(pair.baseline.values), np.asarray(pair.candidate.values)
    if np.median(cand) <= factor * np.median(base):
        return False
    return bool(stats.mannwhitneyu(cand, base, alternative="greater").pvalue < 0.05)


def pytest_benchmark_rule(pair: Pair, percent: float = 5.0) -> bool:
    """pytest-benchmark --benchmark-compare-fail=mean:5%."""
    return bool(np.mean(pair.candidate.values) > np.mean(pair.baseline.values) * (1 + percent / 100))


@dataclass(frozen=True)
class Anchor:
    name: str
    rule: Callable[[Pair, float], bool]
    default: float
    sweep: tuple[float, ...]  # settings from least to most conservative


ANCHORS = (
    Anchor("pyperf_ttest", pyperf_t_test, 0.05, (0.05, 0.01, 1e-3, 1e-4, 1e-5, 1e-6, 1e-8, 1e-10, 1e-12, 1e-15)),
    Anchor("asv_factor_mwu", asv_rule, 1.1, (1.1, 1.15, 1.2, 1.3, 1.4, 1.5, 1.75, 2.0, 2.5, 3.0)),
    Anchor("pytest_benchmark_mean5", pytest_benchmark_rule, 5.0, (5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 75.0, 100.0)),
)


def rates(pairs: list[Pair], flagged: list[bool]) -> dict[str, float]:
    """False-positive rate on nulls, and detection per slowdown size (overall and CV <= 3%)."""
    result = {"fp_rate": _mean(f for p, f in zip(pairs, flagged, strict=True) if p.slowdown == 0.0)}
    for size in SLOWDOWNS:
        label = f"{round(size * 100)}pct"
        result[f"detect_{label}"] = _mean(f for p, f in zip(pairs, flagged, strict=True) if p.slowdown == size)
        result[f"detect_{label}_cv_le_3pct"] = _mean(
            f for p, f in zip(pairs, flagged, strict=True) if p.slowdown == size and p.between_cv <= 0.03
        )
    return result


def _mean(flags: Iterator[bool] | object) -> float:
    values = list(flags)  # type: ignore[call-overload]
    return float(np.mean(values)) if values else float("nan")


def evaluate(pairs: list[Pair]) -> dict[str, float]:
    """benchtrack and every anchor on the same pairs; each anchor also at the setting whose
    false-positive rate is at or below benchtrack's, so detection is compared fairly."""
    verdicts = benchtrack_flags(pairs)
    ours = rates(pairs, [v == "regression" for v in verdicts])
    report = {f"benchtrack_{k}": v for k, v in ours.items()}
    report["benchtrack_false_improvement_rate"] = _mean(
        v == "improvement" for p, v in zip(pairs, verdicts, strict=True) if p.slowdown == 0.0
    )
    report["benchtrack_inconclusive_rate"] = _mean(v == "inconclusive" for v in verdicts)
    not_beaten = 0
    for anchor in ANCHORS:
        default = rates(pairs, [anchor.rule(p, anchor.default) for p in pairs])
        report.update({f"{anchor.name}_{k}": v for k, v in default.items()})
        matched = _matched(anchor, pairs, ours["fp_rate"])
        report.update({f"{anchor.name}_matched_{k}": v for k, v in matched.items()})
        if any(matched[f"detect_{round(s * 100)}pct"] > ours[f"detect_{round(s * 100)}pct"] for s in SLOWDOWNS):
            not_beaten += 1
    report["anchors_not_beaten"] = float(not_beaten)
    return report


def _matched(anchor: Anchor, pairs: list[Pair], fp_limit: float) -> dict[str, float]:
    nulls = [p for p in pairs if p.slowdown == 0.0]
    for setting in anchor.sweep:
        if _mean(anchor.rule(p, setting) for p in nulls) <= fp_limit:
            return {"setting": setting, **rates(pairs, [anchor.rule(p, setting) for p in pairs])}
    strictest = anchor.sweep[-1]
    return {"setting": strictest, **rates(pairs, [anchor.rule(p, strictest) for p in pairs])}
