"""How fast benchtrack logs to MLflow: 50 benchmarks x 100 samples x 10 metrics into a fresh
SQLite store, through the same MlflowStore.log_benchmark path `benchtrack run` uses, against
naive per-point `mlflow.log_metric` measured in the same sample."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchtrack import benchmark
from benchtrack.results import BenchmarkResult, RunResult, Sample

BENCHMARKS, SAMPLES, METRICS = 50, 100, 10
PROCESSES = 4  # the 100 samples of each synthetic benchmark come from 4 worker processes
NAIVE_POINTS = 300  # per-point logging is ~15-20 ms a point, so it is measured on a slice


@dataclass
class Fixture:
    folder: Path
    template: Path
    run: RunResult
    counter: int = 0


def _synthetic_run() -> RunResult:
    benches = []
    for b in range(BENCHMARKS):
        samples = tuple(
            Sample(process=i % PROCESSES, index=i // PROCESSES, loops=1024,
                   values={f"metric_{m}": 1e-3 * (1 + b + m) * (1 + 0.01 * (i % 7)) for m in range(METRICS)})
            for i in range(SAMPLES)
        )
        benches.append(BenchmarkResult(name=f"bench_{b:02d}", benchmark=f"bench_{b:02d}", file="bench_x.py",
                                       kind="time", samples=samples))
    return RunResult("self-logging", "bench", time.time(), time.time(), {"benchtrack.machine.fingerprint": "x"},
                     tuple(benches))


def _setup() -> Fixture:
    """A template store with MLflow's schema already created (5-10 s, once per process);
    each sample then logs into a fresh copy of it."""
    from benchtrack.tracking.store import MlflowStore

    folder = Path(tempfile.mkdtemp(prefix="benchtrack-self-"))
    template = folder / "template.db"
    MlflowStore(f"sqlite:///{template}")
    return Fixture(folder, template, _synthetic_run())


def _teardown(fixture: Fixture) -> None:
    shutil.rmtree(fixture.folder, ignore_errors=True)


def _fresh_store(fixture: Fixture) -> Any:
    from benchtrack.tracking.store import MlflowStore

    fixture.counter += 1
    path = fixture.folder / f"store-{fixture.counter}.db"
    shutil.copyfile(fixture.template, path)
    return MlflowStore(f"sqlite:///{path}")


def _naive_seconds_per_point(fixture: Fixture) -> float:
    import mlflow

    store = _fresh_store(fixture)
    mlflow.set_tracking_uri(store.uri)
    experiment = store.experiment_id("naive")
    values = [s.values for s in fixture.run.benchmarks[0].samples]
    with mlflow.start_run(experiment_id=experiment):
        start = time.perf_counter()
        logged = 0
        for step, sample in enumerate(values):
            for key, value in sample.items():
                mlflow.log_metric(key, value, step=step)
                logged += 1
                if logged == NAIVE_POINTS:
                    return (time.perf_counter() - start) / logged
    return (time.perf_counter() - start) / max(logged, 1)


@benchmark(name="tracking.log_50x100x10", kind="track", setup=_setup, teardown=_teardown,
           processes=2, samples=2, warmups=0, timeout=900, tags=("tracking",),
           targets={"track.bulk_s.median": 5.0})
def log_throughput(fixture: Fixture) -> dict[str, float]:
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    store = _fresh_store(fixture)
    start = time.perf_counter()
    parent = store.start_invocation(fixture.run, "self-benchmark")
    for bench in fixture.run.benchmarks:
        store.log_benchmark(parent, fixture.run, bench)
    store.finish_invocation(parent, fixture.run)
    bulk_s = time.perf_counter() - start
    points = BENCHMARKS * SAMPLES * METRICS
    naive_point_s = _naive_seconds_per_point(fixture)
    return {
        "points": points,
        "bulk_s": bulk_s,
        "bulk_points_per_s": points / bulk_s,
        "naive_point_s": naive_point_s,
        "naive_extrapolated_s": naive_point_s * points,
        "speedup_vs_naive": naive_point_s * points / bulk_s,
        "bulk_sql_path": 1.0 if store.bulk_writes else 0.0,
    }
