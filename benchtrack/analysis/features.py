"""Per-run features computed from raw samples: metric series by process, the statistics later
comparisons use as history, and the summary vector the anomaly check scores (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from benchtrack import results as r
from benchtrack.analysis.compare import COMPARED_METRICS, RunStatistics, Side, run_statistics
from benchtrack.analysis.stats import between_process_cv, summarize
from benchtrack.results import BenchmarkResult

GC_COLLECTIONS = "gc_collections"
# Summary metrics logged with every benchmark run so later comparisons find their history in
# one query instead of downloading every earlier run's samples.
HISTORY_CENTRE = "history.{metric}.centre"
HISTORY_PROCESS_VARIANCE = "history.{metric}.process_variance"


def metric_side(bench: BenchmarkResult, metric: str) -> Side | None:
    """The samples of one metric with their process indices; gc_collections sums generations."""
    values, processes = [], []
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
    return Side(tuple(values), tuple(processes)) if values else None


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
        stats = run_statistics(side, spec.log_scale)
        metrics[HISTORY_CENTRE.format(metric=spec.name)] = stats.centre
        metrics[HISTORY_PROCESS_VARIANCE.format(metric=spec.name)] = stats.process_variance
    metrics.update({f"anomaly.{k}": v for k, v in anomaly_features(bench).items()})
    return metrics


def anomaly_features(bench: BenchmarkResult) -> dict[str, float]:
    features: dict[str, float] = {}
    wall = bench.series(r.WALL)
    if wall:
        stats = summarize(wall)
        features["centre"] = stats.median
        features["spread"] = stats.iqr / stats.median if stats.median else 0.0
        features["between_process_cv"] = between_process_cv(wall, [s.process for s in bench.samples if r.WALL in s.values])
    peak = bench.series(r.RSS_PEAK)
    if peak:
        features["peak_rss"] = max(peak)
    pause = bench.series(r.GC_PAUSE)
    if pause:
        features["gc_pause"] = summarize(pause).mean
    return features


@dataclass(frozen=True)
class HistoryRun:
    """One earlier run of a benchmark as the store returns it: its history.* and anomaly.* metrics."""

    run_id: str
    metrics: Mapping[str, float]
    processes: int

    def statistics(self, metric: str) -> RunStatistics | None:
        centre = self.metrics.get(HISTORY_CENTRE.format(metric=metric))
        variance = self.metrics.get(HISTORY_PROCESS_VARIANCE.format(metric=metric))
        if centre is None or variance is None:
            return None
        return RunStatistics(centre, variance, self.processes)

    def features(self) -> dict[str, float]:
        return {k.removeprefix("anomaly."): v for k, v in self.metrics.items() if k.startswith("anomaly.")}


