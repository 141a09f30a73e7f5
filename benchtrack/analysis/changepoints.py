"""Change points in a benchmark's history (pure): a landed 10% speed-up is a step, not noise,
and the history a comparison uses starts after the last step.

Binary segmentation: the split that maximises Welch's t between the two segments (each at least
MIN_SEGMENT runs) is a change point when its p-value, Bonferroni-corrected for the splits tried,
is below alpha; the newer segment is searched again until no split is significant.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats as scipy_stats

MIN_SEGMENT = 3


def best_split(values: np.ndarray, min_segment: int = MIN_SEGMENT) -> tuple[int, float] | None:
    """(index where the newer segment starts, Bonferroni-corrected p-value), or None."""
    candidates = range(min_segment, len(values) - min_segment + 1)
    best: tuple[int, float] | None = None
    for split in candidates:
        left, right = values[:split], values[split:]
        if np.ptp(left) == 0 and np.ptp(right) == 0:
            p = 0.0 if left[0] != right[0] else 1.0
        else:
            p = float(scipy_stats.ttest_ind(left, right, equal_var=False).pvalue)
        if best is None or p < best[1]:
            best = (split, p)
    if best is None:
        return None
    return best[0], min(1.0, best[1] * len(candidates))


def last_segment_start(chronological: Sequence[float], alpha: float = 0.01, min_segment: int = MIN_SEGMENT) -> int:
    """Index (in oldest-first order) of the first run after the last change point (0: none)."""
    values = np.asarray(chronological, dtype=float)
    start = 0
    while len(values) - start >= 2 * min_segment:
        found = best_split(values[start:], min_segment)
        if found is None or found[1] >= alpha:
            break
        start += found[0]
    return start
