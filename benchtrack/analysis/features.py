"""Per-run features computed from raw samples: metric series by process, the statistics later
comparisons use as history, contention, and the noise vector the anomaly check scores (pure)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from benchtrack import results as r
from benchtrack.analysis.compare import COMPARED_METRICS, LOW_QUANTILE, RunStatistics, Side, run_statistics
from benchtrack.analysis.contention import Contention, descheduled, side_contention
from benchtrack.analysis.stats import between_process_cv, summarize
from benchtrack.results import BenchmarkResult

GC_COLLECTIONS = "gc_collections"
# Features stored with every benchmark run (tracking.store keeps them in one tag) so later
# comparisons find their history in one query instead of downloading every earlier run's
# samples. The version is part of the name:
# when the statistics change (v2: low-quantile centres for times, descheduled samples left out),
# older runs' figures are not mixed with new ones.
HISTORY_VERSION = 2
HISTORY_CENTRE = "history.v2.{metric}.centre"
HISTORY_CENTRE_VARIANCE = "history.v2.{metric}.centre_variance"


def metric_side(bench: BenchmarkResult, metric: str) -> Side | None:
    """The samples of one metric with their process indices; gc_collections sums generations;
    wall-time samples that were descheduled are marked to be left out of the centre."""
    values, processes, excluded = [], [], []
    for sample in bench.samples:
        if metric == GC_COLLECTIONS:
            generations = [v for k, v in sample.values.items() if k.startswith("gc_gen") and k.endswith("_collections")]
            if not generations:
                continue
            value = sum(generations)
        elif metric in sample.values:
            value = sample.values[metric]
        else:
            continue
        values.append(value)
        processes.append(sample.process)
        excluded.append(metric == r.WALL and descheduled(sample.values))
    if not values:
        return None
    return Side(tuple(values), tuple(processes), tuple(excluded) if any(excluded) else ())


def contention(bench: BenchmarkResult, cpus: int) -> Contention:
    loads = bench.details.get("load") or []
    return side_contention([s.values for s in bench.timed_samples], [x for x in loads if isinstance(x, Mapping)], cpus)


def cpu_count(metadata: Mapping[str, str]) -> int:
    """The logical CPU count recorded with a run (0 when unknown, e.g. imported files)."""
    text = metadata.get("benchtrack.cpu.count", "")
    return int(text) if text.isdigit() else 0


def metric_summaries(bench: BenchmarkResult) -> dict[str, dict[str, float]]:
    """Summary statistics of every metric, with the spread between its worker processes."""
    summaries: dict[str, dict[str, float]] = {}
    for name in bench.metric_names():
        series = bench.series(name)
        stats = summarize(series).as_dict()
        stats["between_process_cv"] = between_process_cv(series, [s.process for s in bench.samples if name in s.values])
        summaries[name] = stats
    return summaries


def history_metrics(bench: BenchmarkResult) -> dict[str, float]:
    """What a run stores for the history of later comparisons and anomaly checks."""
    metrics: dict[str, float] = {}
    for spec in COMPARED_METRICS:
        side = metric_side(bench, spec.name)
        if side is None:
            continue
        stats = run_statistics(side, spec.log_scale, spec.centre)
        metrics[HISTORY_CENTRE.format(metric=spec.name)] = stats.centre
        metrics[HISTORY_CENTRE_VARIANCE.format(metric=spec.name)] = stats.centre_variance
    metrics.update({f"anomaly.{k}": v for k, v in anomaly_features(bench).items()})
    return metrics


def anomaly_features(bench: BenchmarkResult) -> dict[str, float]:
    """How noisy the run was, never where its centre lies: a real speed-up or slow-down must not
    look anomalous (that would refuse to promote improvements and hide regressions)."""
    features: dict[str, float] = {}
    wall = bench.series(r.WALL)
    if wall:
        stats = summarize(wall)
        features["spread"] = stats.iqr / stats.median if stats.median else 0.0
        features["tail"] = stats.p95 / stats.median if stats.median else 1.0
        features["between_process_cv"] = between_process_cv(wall, [s.process for s in bench.samples if r.WALL in s.values])
    return features


@dataclass(frozen=True)
class HistoryRun:
    """One earlier run of a benchmark as the store returns it: its history.* and anomaly.* features,
    and what makes it comparable (its invocation, level and loop counts)."""

    run_id: str
    metrics: Mapping[str, float]
    processes: int
    invocation: str = ""
    level: str = ""
    loops: str = ""

    def statistics(self, metric: str) -> RunStatistics | None:
        centre = self.metrics.get(HISTORY_CENTRE.format(metric=metric))
        variance = self.metrics.get(HISTORY_CENTRE_VARIANCE.format(metric=metric))
        if centre is None or variance is None:
            return None
        return RunStatistics(centre, variance, self.processes, self.invocation)

    def features(self) -> dict[str, float]:
        return {k.removeprefix("anomaly."): v for k, v in self.metrics.items() if k.startswith("anomaly.")}


def loops_of(bench: BenchmarkResult) -> str:
    """The loop counts of a run, as the store records them (a param)."""
    return ",".join(str(n) for n in sorted({s.loops for s in bench.timed_samples})) or "0"


def process_low_quantiles(bench: BenchmarkResult, metric: str) -> dict[int, float]:
    """Each worker process's log LOW_QUANTILE of ``metric``, by process index (in a side-by-side
    run the index is the round): how time centres start."""
    by_process: dict[int, list[float]] = {}
    for sample in bench.samples:
        value = sample.values.get(metric)
        if value is not None and value > 0 and math.isfinite(value):
            by_process.setdefault(sample.process, []).append(math.log(value))
    return {p: float(np.quantile(v, LOW_QUANTILE)) for p, v in sorted(by_process.items())}
