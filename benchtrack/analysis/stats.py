"""Summary statistics of a sample series (pure: numbers in, a frozen record out)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

STATISTICS: tuple[str, ...] = ("median", "mean", "stdev", "min", "max", "p95", "iqr", "cv")


@dataclass(frozen=True)
class Summary:
    count: int
    median: float
    mean: float
    stdev: float
    min: float
    max: float
    p95: float
    iqr: float
    cv: float

    def as_dict(self) -> dict[str, float]:
        values = asdict(self)
        values.pop("count")
        return values


def summarize(values: Sequence[float]) -> Summary:
    """Median, mean, sample stdev (0 for one value), extremes, p95, IQR and CV (stdev/mean,
    0 when the mean is 0)."""
    if len(values) == 0:
        raise ValueError("cannot summarise an empty series")
    data = np.asarray(values, dtype=float)
    q25, median, q75, p95 = np.percentile(data, [25, 50, 75, 95])
    mean = float(data.mean())
    stdev = float(data.std(ddof=1)) if data.size > 1 else 0.0
    return Summary(
        count=int(data.size),
        median=float(median),
        mean=mean,
        stdev=stdev,
        min=float(data.min()),
        max=float(data.max()),
        p95=float(p95),
        iqr=float(q75 - q25),
        cv=stdev / abs(mean) if mean else 0.0,
    )


def between_process_cv(values: Sequence[float], processes: Sequence[int]) -> float:
    """Coefficient of variation of the per-process medians: the noise that separate worker
    processes reveal and a single process hides (0 with fewer than two processes)."""
    groups: dict[int, list[float]] = {}
    for value, process in zip(values, processes, strict=True):
        groups.setdefault(process, []).append(value)
    if len(groups) < 2:
        return 0.0
    medians = np.array([np.median(g) for g in groups.values()])
    mean = float(medians.mean())
    return float(medians.std(ddof=1) / abs(mean)) if mean else 0.0
