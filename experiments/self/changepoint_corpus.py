"""Seeded benchmark histories with known change points, and the scoring of a detector on them
(pure: numbers in, numbers out; bench_changepoints.py runs the detectors).

Series are log-times, oldest first, shaped like the histories on this machine: 2-7% noise between
runs, now and then one run (or two in a row) 10-40% slow, sometimes a slow drift.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

TOLERANCE = 2  # a detection within this many runs of a true change point finds it
LENGTH = 60
NOISE_SDS = (0.02, 0.04, 0.07)

Maker = Callable[[np.random.Generator, float], tuple[np.ndarray, tuple[int, ...]]]


@dataclass(frozen=True)
class Series:
    family: str
    noise_sd: float
    values: tuple[float, ...]
    truth: tuple[int, ...]  # first run of each new segment


@dataclass(frozen=True)
class Score:
    found: int  # true change points with a detection within TOLERANCE runs
    missed: int
    false: int  # detections matching no true change point


def score(truth: Sequence[int], detected: Iterable[int], tolerance: int = TOLERANCE) -> Score:
    """Match each true change point to the nearest unmatched detection within ``tolerance``
    (one detection finds at most one change point); the unmatched detections are false."""
    unmatched = sorted(int(d) for d in detected)
    found = 0
    for true_index in truth:
        near = [d for d in unmatched if abs(d - true_index) <= tolerance]
        if near:
            unmatched.remove(min(near, key=lambda d: (abs(d - true_index), d)))
            found += 1
    return Score(found, len(truth) - found, len(unmatched))


def summarise(series: Sequence[Series], detections: Sequence[Iterable[int]]) -> dict[str, float]:
    """Per family and overall: detection rate of true change points (nan when the family has
    none) and false change points per series."""
    by_family: dict[str, list[Score]] = {}
    for item, detected in zip(series, detections, strict=True):
        by_family.setdefault(item.family, []).append(score(item.truth, detected))
    report: dict[str, float] = {}
    for family, scores in sorted(by_family.items()):
        report.update({f"{family}.{k}": v for k, v in _rates(scores).items()})
    report.update({f"all.{k}": v for k, v in _rates([s for scores in by_family.values() for s in scores]).items()})
    return report


def _rates(scores: Sequence[Score]) -> dict[str, float]:
    true_total = sum(s.found + s.missed for s in scores)
    return {
        "detected": sum(s.found for s in scores) / true_total if true_total else math.nan,
        "false_per_series": sum(s.false for s in scores) / len(scores),
        "series_with_false": sum(1 for s in scores if s.false) / len(scores),
    }


def generate(per_family: int = 10, seed: int = 20240611) -> list[Series]:
    """per_family series of each family at each noise level, seeded."""
    rng = np.random.default_rng(seed)
    corpus = []
    for noise_sd in NOISE_SDS:
        for family, make in _FAMILIES.items():
            for _ in range(per_family):
                values, truth = make(rng, noise_sd)
                corpus.append(Series(family, noise_sd, tuple(float(v) for v in values), truth))
    return corpus


def _noise(rng: np.random.Generator, sd: float, length: int = LENGTH) -> np.ndarray:
    return math.log(1e-3) + rng.normal(0.0, sd, length)


def _step_at(rng: np.random.Generator, low: int = 15, high: int = 45) -> int:
    return int(rng.integers(low, high + 1))


def _signed(rng: np.random.Generator, size: float) -> float:
    return size if rng.random() < 0.5 else -size


def _spiked(rng: np.random.Generator, x: np.ndarray, count: int, run_length: int = 1) -> np.ndarray:
    """count excursions of run_length consecutive runs, each 10-40% slow, apart from each other."""
    x = x.copy()
    starts = rng.choice(np.arange(2, len(x) - run_length, 6), size=count, replace=False)
    for start in starts:
        x[start: start + run_length] += math.log1p(rng.uniform(0.10, 0.40))
    return x


def _step(size_sd: float) -> Maker:
    def make(rng: np.random.Generator, sd: float) -> tuple[np.ndarray, tuple[int, ...]]:
        x, k = _noise(rng, sd), _step_at(rng)
        x[k:] += _signed(rng, size_sd * sd)
        return x, (k,)

    return make


def _two_steps(rng: np.random.Generator, sd: float) -> tuple[np.ndarray, tuple[int, ...]]:
    x = _noise(rng, sd)
    first, second = _step_at(rng, 15, 25), _step_at(rng, 35, 45)
    x[first:] += _signed(rng, 3 * sd)
    x[second:] += _signed(rng, 3 * sd)
    return x, (first, second)


def _noise_only(rng: np.random.Generator, sd: float) -> tuple[np.ndarray, tuple[int, ...]]:
    return _noise(rng, sd), ()


def _heavy_tails(rng: np.random.Generator, sd: float) -> tuple[np.ndarray, tuple[int, ...]]:
    """Student t with 3 dof, scaled to the same sd: many moderately odd runs, no clean spikes."""
    return math.log(1e-3) + rng.standard_t(3, LENGTH) * sd / math.sqrt(3.0), ()


def _spikes(rng: np.random.Generator, sd: float) -> tuple[np.ndarray, tuple[int, ...]]:
    return _spiked(rng, _noise(rng, sd), 3), ()


def _bursts(rng: np.random.Generator, sd: float) -> tuple[np.ndarray, tuple[int, ...]]:
    return _spiked(rng, _noise(rng, sd), 2, run_length=2), ()


def _drift(rng: np.random.Generator, sd: float) -> tuple[np.ndarray, tuple[int, ...]]:
    """A slow drift of 10-30% over the whole history: no step anywhere."""
    total = _signed(rng, math.log1p(rng.uniform(0.10, 0.30)))
    return _noise(rng, sd) + np.linspace(0.0, total, LENGTH), ()


def _step_with_spikes(rng: np.random.Generator, sd: float) -> tuple[np.ndarray, tuple[int, ...]]:
    x, truth = _step(3.0)(rng, sd)
    return _spiked(rng, x, 2), truth


def _short_step(rng: np.random.Generator, sd: float) -> tuple[np.ndarray, tuple[int, ...]]:
    """20 runs, a 4-sd step 6 runs before the end: what the verdicts' history looks like."""
    x = _noise(rng, sd, 20)
    x[14:] += _signed(rng, 4 * sd)
    return x, (14,)


_FAMILIES: dict[str, Maker] = {
    "noise": _noise_only,
    "heavy_tails": _heavy_tails,
    "spikes": _spikes,
    "bursts": _bursts,
    "drift": _drift,
    "step_1.5sd": _step(1.5),
    "step_2sd": _step(2.0),
    "step_3sd": _step(3.0),
    "step_5sd": _step(5.0),
    "two_steps_3sd": _two_steps,
    "step_3sd_spikes": _step_with_spikes,
    "short_step_4sd": _short_step,
}
