"""Is a new run of a benchmark unusual against that benchmark's history of runs? (pure)

Each run is summarised by the caller as a feature vector, e.g. ``{"centre": median wall time,
"spread": IQR/median, "peak_rss": bytes, "gc_pause": mean per op, "between_process_cv": ...}``;
the caller also filters the history to the same machine fingerprint and branch. Numbers in, a
frozen :class:`AnomalyResult` out; no I/O, no clock, deterministic for a given seed.

How a run is judged
-------------------
1. Features: the keys of the current run that at least ``min_key_fraction`` of the history rows
   record with a finite value (sorted by name). History rows lacking any of them, or holding a
   non-finite value for one, are dropped; what is left is the usable history.
2. Transform: a feature whose history values and current value are all positive (times, bytes,
   ratios) is compared on a log scale, so "40 % slower" means the same on every benchmark;
   any other feature stays linear.
3. Robust z per feature: ``(x - median) / scale`` with median and scale from the usable history.
   The scale is a robust standard deviation: the mean absolute deviation from the median over the
   closest 80 % of the history (the farthest fifth, at least one run, is trimmed so noisy runs in
   the history do not mask a regression), made consistent for normal data, times a small-sample
   factor ``t(n-1, 0.995) / z(0.995)`` (1.79 for 5 runs, 1.26 for 10, 1.11 for 20, -> 1). It never falls below
   a floor: 1 % on the log scale, or 1 % of the median on the linear scale (so a constant history
   does not divide by zero and an identical value scores 0).

   Why not the plain ``1.4826 * MAD``: with a handful of runs the MAD is often tiny by chance
   (3 of 5 runs close together is enough), and the plain z then raises false alarms on about 30 %
   of typical runs at 5 history runs and 5 % at 10 (five independent normal features, threshold 5);
   this scale brings that to about 4 % and 0.7 % while keeping the detection of large shifts
   (simulated; tests/test_anomaly.py checks the rates of this scale).
4. Method by usable history size n:
   - ``n >= min_history_forest``: an IsolationForest (``n_estimators=200``, ``random_state=seed``,
     ``contamination``) is fitted on the robust-scaled history alone and scores the current run.
     ``score = -score_samples`` and ``threshold = -offset_`` (the same units, so "score above
     threshold" is exactly ``decision_function < 0``). The run is anomalous when the forest puts
     it beyond the threshold AND some feature's |z| exceeds ``FOREST_Z_FLOOR`` (3), so a forest
     quirk alone does not flag a run that is typical on every axis; OR, as with fewer runs, when
     some feature's |z| exceeds ``z_threshold``. The second rule is needed: a forest over a few
     dozen runs barely notices a shift along one feature out of five (splits on the other
     features dilute it), so a 40 % slower centre scored beyond the threshold in only about a
     fifth of the trials; a feature constant over the history is wholly invisible to it. So
     ``score`` may sit below ``threshold`` on an anomalous run; ``reasons`` say which features.
   - ``min_history_z <= n < min_history_forest``: anomalous when the largest |z| exceeds
     ``z_threshold``; ``score`` is that largest |z|.
   - fewer runs: method ``"none"``, never anomalous.

``reasons`` name the deviating features, most deviating first, e.g.
``"centre 11.2 robust SD above the history median (1.40x)"``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

METHOD_FOREST = "isolation-forest"
METHOD_ROBUST_Z = "robust-z"
METHOD_NONE = "none"

N_ESTIMATORS = 200
FOREST_Z_FLOOR = 3.0  # a forest verdict also needs one feature at least this many robust SDs out
MIN_KEY_FRACTION = 0.8  # a feature is used when at least this share of the history records it
TRIM_FRACTION = 0.2  # share of the largest deviations (at least one) left out of the scale
SMALL_SAMPLE_QUANTILE = 0.995  # the scale is widened by t(n-1, q) / z(q) for small histories
LOG_SCALE_FLOOR = 0.01  # robust SD floor on the log scale: a 1 % change
LINEAR_SCALE_FLOOR = 0.01  # robust SD floor on the linear scale, relative to |median|
ABSOLUTE_SCALE_FLOOR = 1e-12  # ... and in absolute terms when the median is 0
_Z_LIMIT = 1e12  # forest inputs are clipped to this many robust SDs

_FloatArray = np.ndarray[Any, np.dtype[np.float64]]
_BoolArray = np.ndarray[Any, np.dtype[np.bool_]]


@dataclass(frozen=True)
class AnomalyResult:
    anomalous: bool
    method: str  # "isolation-forest" | "robust-z" | "none" (no or too little history)
    score: float  # higher = more anomalous: forest -score_samples, robust-z max |z|, none 0
    threshold: float  # forest -offset_, robust-z z_threshold, none inf
    history_size: int  # usable history rows (after dropping rows missing a feature)
    features: tuple[str, ...]
    reasons: tuple[str, ...]  # human lines, most deviating feature first

    def as_dict(self) -> dict[str, object]:
        """Plain JSON-ready values (an infinite threshold becomes None)."""
        return {
            "anomalous": self.anomalous,
            "method": self.method,
            "score": self.score,
            "threshold": self.threshold if math.isfinite(self.threshold) else None,
            "history_size": self.history_size,
            "features": list(self.features),
            "reasons": list(self.reasons),
        }


def detect_anomaly(
    history: Sequence[Mapping[str, float]],
    current: Mapping[str, float],
    *,
    seed: int = 0,
    min_history_forest: int = 20,
    min_history_z: int = 5,
    z_threshold: float = 5.0,
    contamination: float = 0.02,
    min_key_fraction: float = MIN_KEY_FRACTION,
) -> AnomalyResult:
    """Judge one run against its history (see the module docstring for the method).

    >>> history = [{"centre": 1.0 + 0.01 * (i % 5)} for i in range(10)]
    >>> detect_anomaly(history, {"centre": 1.4}).anomalous
    True

    Raises ValueError for a non-finite or non-numeric value in the current run and for inconsistent
    options; a current run with no features at all gets method "none".
    """
    return detect_anomalies(
        history, [current], seed=seed, min_history_forest=min_history_forest, min_history_z=min_history_z,
        z_threshold=z_threshold, contamination=contamination, min_key_fraction=min_key_fraction,
    )[0]


def detect_anomalies(
    history: Sequence[Mapping[str, float]],
    currents: Sequence[Mapping[str, float]],
    *,
    seed: int = 0,
    min_history_forest: int = 20,
    min_history_z: int = 5,
    z_threshold: float = 5.0,
    contamination: float = 0.02,
    min_key_fraction: float = MIN_KEY_FRACTION,
) -> tuple[AnomalyResult, ...]:
    """Judge several candidate runs against one history (e.g. a backtest over the last runs).

    Result ``i`` equals ``detect_anomaly(history, currents[i], ...)``; the forest is fitted once
    per distinct feature set instead of once per run.
    """
    _check_options(min_history_forest, min_history_z, z_threshold, contamination, min_key_fraction)
    runs = [_parse_current(current, index) for index, current in enumerate(currents)]
    rows = [_finite_entries(row) for row in history]
    coverage: dict[str, int] = {}
    for entries in rows:
        for key in entries:
            coverage[key] = coverage.get(key, 0) + 1
    needed = min_key_fraction * len(rows)

    results: list[AnomalyResult | None] = [None] * len(runs)
    usable_by_features: dict[tuple[str, ...], _FloatArray] = {}
    groups: dict[tuple[tuple[str, ...], tuple[bool, ...]], list[int]] = {}
    for index, run in enumerate(runs):
        features = tuple(sorted(key for key in run if coverage.get(key, 0) >= needed))
        if not run:
            results[index] = _no_verdict(features, 0, "the run has no features to check")
            continue
        if not features:
            results[index] = _no_verdict(features, 0, f"no feature of this run is recorded in at least "
                                                       f"{min_key_fraction:.0%} of the history ({len(rows)} runs)")
            continue
        if features not in usable_by_features:
            usable_by_features[features] = _usable_matrix(rows, features)
        usable = usable_by_features[features]
        if usable.shape[0] < min_history_z:
            results[index] = _no_verdict(features, usable.shape[0], f"too little history ({usable.shape[0]} runs)")
            continue
        logged = tuple(bool(np.all(usable[:, j] > 0) and run[name] > 0) for j, name in enumerate(features))
        groups.setdefault((features, logged), []).append(index)

    for (features, logged), indices in groups.items():
        baseline = _Baseline.fit(usable_by_features[features], features, logged)
        current_matrix = np.array([[runs[i][name] for name in features] for i in indices], dtype=float)
        z = baseline.z(current_matrix)
        if baseline.size >= min_history_forest:
            scores, threshold = _forest_scores(baseline.scaled_history, z, seed, contamination)
            for row, index in enumerate(indices):
                results[index] = _forest_verdict(baseline, current_matrix[row], z[row], float(scores[row]),
                                                 threshold, z_threshold)
        else:
            for row, index in enumerate(indices):
                results[index] = _robust_z_verdict(baseline, current_matrix[row], z[row], z_threshold)
    return tuple(result for result in results if result is not None)


@dataclass(frozen=True)
class _Baseline:
    """The usable history of one feature set, on the compared (log or linear) scale."""

    features: tuple[str, ...]
    logged: tuple[bool, ...]
    median: _FloatArray  # per feature, on the compared scale
    scale: _FloatArray  # robust SD per feature, floored, > 0
    constant: _BoolArray  # the feature takes one value over the whole history
    scaled_history: _FloatArray  # (history - median) / scale, one row per run

    @property
    def size(self) -> int:
        return int(self.scaled_history.shape[0])

    @classmethod
    def fit(cls, history: _FloatArray, features: tuple[str, ...], logged: tuple[bool, ...]) -> _Baseline:
        transformed = _transform(history, logged)
        median = np.median(transformed, axis=0)
        scale = np.array([_robust_sd(transformed[:, j], float(median[j]), logged[j]) for j in range(len(features))])
        constant = np.ptp(transformed, axis=0) == 0
        return cls(features, logged, median, scale, constant, (transformed - median) / scale)

    def z(self, values: _FloatArray) -> _FloatArray:
        """Robust z of each row of raw feature values (rows, features)."""
        z: _FloatArray = (_transform(values, self.logged) - self.median) / self.scale
        return z

    def reasons(self, values: _FloatArray, z: _FloatArray, above: float) -> tuple[str, ...]:
        """One line per feature with |z| > above, most deviating first."""
        order = sorted(np.flatnonzero(np.abs(z) > above), key=lambda j: (-abs(float(z[j])), self.features[j]))
        return tuple(self._reason(int(j), float(values[j]), float(z[j])) for j in order)

    def _reason(self, j: int, value: float, z: float) -> str:
        direction = "above" if z > 0 else "below"
        if self.logged[j]:
            detail = f"{math.exp(math.log(value) - float(self.median[j])):.2f}x"
        else:
            detail = f"{value:.4g} vs {float(self.median[j]):.4g}"
        if self.constant[j]:
            detail += ", history constant"
        size = f"{abs(z):.1f}" if abs(z) < 1e4 else f"{abs(z):.3g}"
        return f"{self.features[j]} {size} robust SD {direction} the history median ({detail})"


def _robust_sd(column: _FloatArray, median: float, logged: bool) -> float:
    """Trimmed mean absolute deviation from the median, consistent for normal data, widened for
    small samples, floored (see the module docstring)."""
    n = column.size
    keep = n - max(1, math.floor(TRIM_FRACTION * n))
    sd = 0.0
    if keep > 0:
        deviations = np.sort(np.abs(column - median))[:keep]
        share = keep / n
        cut = stats.norm.ppf(0.5 + share / 2)
        consistency = 2 * (stats.norm.pdf(0.0) - stats.norm.pdf(cut)) / share  # E|Z| over the kept share
        small_sample = stats.t.ppf(SMALL_SAMPLE_QUANTILE, n - 1) / stats.norm.ppf(SMALL_SAMPLE_QUANTILE)
        sd = float(deviations.mean()) / consistency * small_sample
    floor = LOG_SCALE_FLOOR if logged else max(LINEAR_SCALE_FLOOR * abs(median), ABSOLUTE_SCALE_FLOOR)
    return max(sd, floor)


def _forest_scores(scaled_history: _FloatArray, z: _FloatArray, seed: int,
                   contamination: float) -> tuple[_FloatArray, float]:
    """-score_samples of each current row and -offset_ of a forest fitted on the history."""
    try:
        from sklearn.ensemble import IsolationForest  # ~2 s to import: only when a forest is due
    except ImportError as error:  # pragma: no cover - scikit-learn is a dependency
        raise ImportError("the isolation-forest anomaly check needs scikit-learn: pip install scikit-learn") from error
    forest = IsolationForest(n_estimators=N_ESTIMATORS, contamination=contamination, random_state=seed)
    # Finite inputs stay finite here, but a z can overflow to inf on absurd values (1e300 s).
    forest.fit(np.clip(scaled_history, -_Z_LIMIT, _Z_LIMIT))
    scores: _FloatArray = -forest.score_samples(np.clip(z, -_Z_LIMIT, _Z_LIMIT))
    return scores, float(-forest.offset_)


def _forest_verdict(baseline: _Baseline, values: _FloatArray, z: _FloatArray, score: float, threshold: float,
                    z_threshold: float) -> AnomalyResult:
    beyond = score > threshold  # exactly decision_function < 0
    largest = float(np.max(np.abs(z)))
    by_forest = beyond and largest > FOREST_Z_FLOOR
    anomalous = by_forest or largest > z_threshold  # the robust-z rule still holds (module docstring)
    if anomalous:
        reasons = baseline.reasons(values, z, FOREST_Z_FLOOR if by_forest else z_threshold)
    elif beyond:
        reasons = (f"the isolation forest scores the run beyond its threshold, but no feature is more than "
                   f"{FOREST_Z_FLOOR:g} robust SD from the history median",)
    else:
        reasons = ()
    return AnomalyResult(anomalous, METHOD_FOREST, score, threshold, baseline.size, baseline.features, reasons)


def _robust_z_verdict(baseline: _Baseline, values: _FloatArray, z: _FloatArray, z_threshold: float) -> AnomalyResult:
    largest = float(np.max(np.abs(z)))
    anomalous = largest > z_threshold
    reasons = baseline.reasons(values, z, z_threshold) if anomalous else ()
    return AnomalyResult(anomalous, METHOD_ROBUST_Z, largest, z_threshold, baseline.size, baseline.features, reasons)


def _no_verdict(features: tuple[str, ...], size: int, reason: str) -> AnomalyResult:
    return AnomalyResult(False, METHOD_NONE, 0.0, math.inf, size, features, (reason,))


def _transform(values: _FloatArray, logged: tuple[bool, ...]) -> _FloatArray:
    mask = np.array(logged, dtype=bool)
    out = np.array(values, dtype=float)
    out[..., mask] = np.log(out[..., mask])
    return out


def _usable_matrix(rows: Sequence[Mapping[str, float]], features: tuple[str, ...]) -> _FloatArray:
    usable = [[row[name] for name in features] for row in rows if all(name in row for name in features)]
    return np.array(usable, dtype=float).reshape(len(usable), len(features))


def _as_float(value: object) -> float | None:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _finite_entries(row: Mapping[str, float]) -> dict[str, float]:
    """The finite numeric entries of a history row (a non-finite one counts as missing)."""
    entries = {}
    for key, value in row.items():
        number = _as_float(value)
        if number is not None:
            entries[key] = number
    return entries


def _parse_current(current: Mapping[str, float], index: int) -> dict[str, float]:
    parsed = {}
    for key, value in current.items():
        number = _as_float(value)
        if number is None:
            raise ValueError(f"current run #{index}: feature {key!r} is not a finite number ({value!r})")
        parsed[key] = number
    return parsed


def _check_options(min_history_forest: int, min_history_z: int, z_threshold: float, contamination: float,
                   min_key_fraction: float) -> None:
    if min_history_z < 2:
        raise ValueError(f"min_history_z must be at least 2, got {min_history_z}")
    if min_history_forest < min_history_z:
        raise ValueError(f"min_history_forest ({min_history_forest}) must not be below min_history_z ({min_history_z})")
    if not (math.isfinite(z_threshold) and z_threshold > 0):
        raise ValueError(f"z_threshold must be a positive number, got {z_threshold}")
    if not 0 < contamination <= 0.5:
        raise ValueError(f"contamination must be in (0, 0.5], got {contamination}")
    if not 0 < min_key_fraction <= 1:
        raise ValueError(f"min_key_fraction must be in (0, 1], got {min_key_fraction}")
