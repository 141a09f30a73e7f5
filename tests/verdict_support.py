"""Builders for the verdict tests: seeded synthetic measurements as benchtrack's own records.

Every value comes from a numpy Generator the caller seeds, so each test sees the same numbers
on every run. The noise model is the one the comparator is built for: each worker process has
its own offset (between-process noise), and samples scatter around it (within-process noise),
both multiplicative (log-normal), as timings are.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchtrack import results as r
from benchtrack.analysis.compare import Side
from benchtrack.analysis.features import HistoryRun, history_metrics
from benchtrack.results import BenchmarkResult, RunResult, Sample, dumps_results

MIB = 1024 * 1024
BASE_SECONDS = 1e-3  # a 1 ms benchmark
BASE_RSS = 100 * MIB
FINGERPRINT = "0123456789abcdef"


def noisy(rng: np.random.Generator, centre: float, processes: int, per_process: int, between_cv: float,
          within_cv: float) -> tuple[list[float], list[int]]:
    """values, process indices: a log-normal offset per process, then log-normal samples around it."""
    offsets = rng.normal(0.0, between_cv, size=processes)
    noise = rng.normal(0.0, within_cv, size=(processes, per_process))
    values = centre * np.exp(offsets[:, None] + noise)
    return [float(v) for v in values.ravel()], [p for p in range(processes) for _ in range(per_process)]


def side(rng: np.random.Generator, centre: float, processes: int = 5, per_process: int = 10,
         between_cv: float = 0.01, within_cv: float = 0.01) -> Side:
    values, procs = noisy(rng, centre, processes, per_process, between_cv, within_cv)
    return Side(tuple(values), tuple(procs))


def constant_side(value: float, processes: int = 3, per_process: int = 4) -> Side:
    return Side((value,) * (processes * per_process), tuple(p for p in range(processes) for _ in range(per_process)))


def samples(rng: np.random.Generator, wall: float = BASE_SECONDS, rss: float = BASE_RSS, processes: int = 5,
            per_process: int = 10, between_cv: float = 0.02, within_cv: float = 0.01,
            rss_sd_bytes: float = 64 * 1024.0, gc_collections: float = 2.0) -> tuple[Sample, ...]:
    """Samples like a time benchmark's: wall and cpu time, peak RSS, GC pause and collections."""
    walls, procs = noisy(rng, wall, processes, per_process, between_cv, within_cv)
    rss_offsets = rng.normal(0.0, rss_sd_bytes, size=processes)
    built = []
    for i, (value, process) in enumerate(zip(walls, procs, strict=True)):
        built.append(Sample(process=process, index=i % per_process, loops=16, values={
            r.WALL: value,
            r.CPU: value * 0.98,
            r.RSS_PEAK: float(rss + rss_offsets[process] + rng.normal(0.0, rss_sd_bytes / 4)),
            r.GC_PAUSE: 0.0,
            r.gc_generation_metric(0): gc_collections,
        }))
    return tuple(built)


def bench(name: str, sample_list: Sequence[Sample] = (), *, kind: str = "time", error: str | None = None,
          base: str | None = None) -> BenchmarkResult:
    return BenchmarkResult(name=name, benchmark=base or name.split("[", 1)[0], file="bench_synthetic.py", kind=kind,
                           samples=tuple(sample_list), error=error)


def run_result(benches: Sequence[BenchmarkResult], suite: str = "synthetic",
               metadata: Mapping[str, str] | None = None) -> RunResult:
    meta = {"benchtrack.git.branch": "main", "benchtrack.git.dirty": "false",
            "benchtrack.machine.fingerprint": FINGERPRINT} if metadata is None else dict(metadata)
    return RunResult(suite=suite, level="comprehensive", started_at=1_700_000_000.0, finished_at=1_700_000_010.0,
                     metadata=meta, benchmarks=tuple(benches))


def write_results(path: Path, *runs: RunResult) -> Path:
    path.write_text(dumps_results(runs), encoding="utf-8")
    return path


def history_runs(seed: int, count: int, name: str = "work", **sample_options: Any) -> list[HistoryRun]:
    """count earlier runs of one benchmark as the store hands them back (history.* and anomaly.*)."""
    rng = np.random.default_rng(seed)
    runs = []
    for i in range(count):
        past = bench(name, samples(rng, **sample_options))
        runs.append(HistoryRun(f"run{i:03d}", history_metrics(past), past.process_count))
    return runs
