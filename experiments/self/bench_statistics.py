"""benchtrack's statistics and result handling over large sample sets."""

from __future__ import annotations

import random

from benchtrack import benchmark
from benchtrack.analysis.stats import between_process_cv, summarize
from benchtrack.results import BenchmarkResult, RunResult, Sample, dumps_results, run_result_from_dict


def _values(count: int) -> tuple[list[float], list[int]]:
    rng = random.Random(count)
    return [rng.lognormvariate(0, 0.2) for _ in range(count)], [i % 10 for i in range(count)]


@benchmark(name="stats.summarize", params={"count": [1_000, 100_000]}, setup=_values, tags=("analysis",))
def summarize_series(data: tuple[list[float], list[int]]) -> object:
    return summarize(data[0])


@benchmark(name="stats.between_process_cv", params={"count": [100_000]}, setup=_values, tags=("analysis",))
def process_cv(data: tuple[list[float], list[int]]) -> float:
    return between_process_cv(*data)


def _big_run(samples: int) -> str:
    rng = random.Random(samples)
    bench = BenchmarkResult(
        name="x", benchmark="x", file="bench_x.py", kind="time",
        samples=tuple(Sample(i % 10, i // 10, 64, {f"m{k}": rng.random() for k in range(12)}) for i in range(samples)),
    )
    return dumps_results([RunResult("s", "quick", 0.0, 1.0, {}, (bench,))])


@benchmark(name="results.json_roundtrip", params={"samples": [10_000]}, setup=_big_run, tags=("analysis",))
def results_roundtrip(text: str) -> object:
    import json

    return run_result_from_dict(json.loads(text)[0])
