"""What `benchtrack run` stores in MLflow is exactly what it measured.

One small suite is run once through the CLI (in-process) into a real SQLite store; every test in
the first part reads that store back with MlflowClient and compares it with the --output file.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import verdict_support
from support import (
    child_runs,
    fresh_store_uri,
    invoke_cli,
    make_git_repo,
    mlflow_client,
    parent_runs,
    sqlite_uri,
    write_bench_folder,
)

from benchtrack import results as r
from benchtrack.analysis.features import history_metrics
from benchtrack.probes.environment import GIT_COMMIT_TAG, machine_fingerprint
from benchtrack.results import BenchmarkResult, RunResult, load_results_file
from benchtrack.tracking.store import (
    FEATURES_TAG,
    FEATURES_VERSION,
    PROCESS_METRIC,
    RESULT_ARTIFACT,
    MlflowStore,
    _BatchWriter,
    _SqlBulkWriter,
    features_tag_value,
    measuring_window_ms,
    run_features,
    sample_metric_key,
    summary_metric_key,
)

SECRET_NAME = "BENCHTRACK_TEST_SECRET_TOKEN"  # noqa: S105 - a variable name, not a value
SECRET_VALUE = "hunter2-s3cr3t-7d1f"  # noqa: S105 - a planted fake: it must appear nowhere in the store
PROCESSES = 3
SAMPLES = 3
SUITE_NAME = "bench"

SUITE = """
    from benchtrack import benchmark


    @benchmark(params={"size": [10, 100]}, tags=["math"])
    def add(size):
        return sum(range(size))


    @benchmark
    def cycles():
        for _ in range(1500):
            node = []
            node.append(node)


    @benchmark(kind="memory", processes=2, samples=2)
    def alloc():
        return len(bytearray(5 * 2**20))
"""
EXPECTED = {"add[size=10]": (PROCESSES, SAMPLES), "add[size=100]": (PROCESSES, SAMPLES),
            "cycles": (PROCESSES, SAMPLES), "alloc": (2, 2)}


@dataclass(frozen=True)
class Logged:
    uri: str
    client: Any
    commit: str
    document: dict[str, Any]  # the --format json output
    result: RunResult  # the --output file
    tmp: Path

    def bench(self, name: str) -> BenchmarkResult:
        return next(b for b in self.result.benchmarks if b.name == name)


@pytest.fixture(scope="module")
def logged(tmp_path_factory: pytest.TempPathFactory, store_template: Path) -> Logged:
    tmp = tmp_path_factory.mktemp("tracking")
    folder = write_bench_folder(tmp / SUITE_NAME, {"bench_track.py": SUITE},
                                levels=textwrap.dedent(f"""\
                                    schema = "benchtrack.levels/1"
                                    [levels.quick]
                                    processes = {PROCESSES}
                                    samples = {SAMPLES}
                                    warmups = 0
                                    min_sample_time = 0.001
                                    """))
    commit = make_git_repo(folder)
    uri = fresh_store_uri(store_template, tmp / "store")
    output = tmp / "results.json"
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(tmp)
        patch.setenv(SECRET_NAME, SECRET_VALUE)
        patch.setenv("GIT_CONFIG_GLOBAL", "/dev/null")
        patch.setenv("GIT_CEILING_DIRECTORIES", str(tmp))
        done = invoke_cli(["run", folder, "--tracking-uri", uri, "--output", output, "--format", "json"])
    assert done.exit_code == 0, done
    (result,) = load_results_file(output)
    return Logged(uri, mlflow_client(uri), commit, json.loads(done.stdout), result, tmp)


def _history(client: Any, run_id: str, metric: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, metric))


def _children(logged: Logged) -> dict[str, Any]:
    return child_runs(logged.client, SUITE_NAME)


def test_one_experiment_per_suite(logged: Logged) -> None:
    names = [e.name for e in logged.client.search_experiments() if e.name.startswith("benchtrack/")]
    # benchtrack/_<name> experiments are benchtrack's own bookkeeping (e.g. _baselines), not suites
    assert [name for name in names if not name.startswith("benchtrack/_")] == [f"benchtrack/{SUITE_NAME}"]


def test_one_parent_run_with_a_child_per_benchmark(logged: Logged) -> None:
    (parent,) = parent_runs(logged.client, SUITE_NAME)
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["benchtrack.suite"] == SUITE_NAME
    assert parent.data.tags["benchtrack.level"] == "quick"
    assert parent.data.tags["benchtrack.invocation"] == logged.document["invocation"]
    assert parent.data.tags["benchtrack.failed"] == "0"
    assert parent.data.metrics["benchmarks_total"] == len(EXPECTED)
    assert parent.data.metrics["benchmarks_failed"] == 0
    (suite_doc,) = logged.document["suites"]
    assert suite_doc["parent_run_id"] == parent.info.run_id

    children = _children(logged)
    assert set(children) == set(EXPECTED)
    run_ids = {b["name"]: b["run_id"] for b in suite_doc["benchmarks"]}
    for name, child in children.items():
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert child.data.tags["benchtrack.status"] == "ok"
        assert child.info.status == "FINISHED"
        assert child.info.run_name == name
        assert child.info.run_id == run_ids[name]
        assert child.info.experiment_id == parent.info.experiment_id


def test_the_output_file_holds_what_was_planned(logged: Logged) -> None:
    assert logged.result.suite == SUITE_NAME
    for name, (processes, samples) in EXPECTED.items():
        bench = logged.bench(name)
        assert bench.ok, bench.error
        assert len(bench.samples) == processes * samples
        assert sorted({s.process for s in bench.samples}) == list(range(processes))


def test_every_sample_is_stored_as_a_metric_step(logged: Logged) -> None:
    children = _children(logged)
    for name in EXPECTED:
        bench = logged.bench(name)
        run_id = children[name].info.run_id
        count = len(bench.samples)
        assert _history(logged.client, run_id, sample_metric_key(PROCESS_METRIC)) == \
            [(i, float(s.process)) for i, s in enumerate(bench.samples)]
        for metric in bench.metric_names():
            expected = [(i, s.values[metric]) for i, s in enumerate(bench.samples)]
            assert len(expected) == count
            assert _history(logged.client, run_id, sample_metric_key(metric)) == expected, (name, metric)


def test_key_metrics_are_stored_exactly(logged: Logged) -> None:
    children = _children(logged)
    add = logged.bench("add[size=10]")
    memory = logged.bench("alloc")
    for bench, metrics in ((add, (r.WALL, r.RSS_PEAK, r.gc_generation_metric(0))),
                           (memory, (r.WALL, r.RSS_PEAK, r.TRACEMALLOC_PEAK))):
        run_id = children[bench.name].info.run_id
        for metric in metrics:
            stored = [value for _, value in _history(logged.client, run_id, sample_metric_key(metric))]
            assert stored == bench.series(metric)
            assert len(stored) == len(bench.samples)
            # the latest value MLflow shows in its runs table is the last step's
            assert children[bench.name].data.metrics[sample_metric_key(metric)] == bench.samples[-1].values[metric]


def _numpy_summary(values: Sequence[float], processes: Sequence[int]) -> dict[str, float]:
    data = np.asarray(values, dtype=float)
    q25, q75 = np.percentile(data, [25, 75])
    stdev = float(data.std(ddof=1))
    medians = [float(np.median([v for v, p in zip(values, processes, strict=True) if p == process]))
               for process in sorted(set(processes))]
    return {
        "median": float(np.median(data)),
        "mean": float(np.mean(data)),
        "stdev": stdev,
        "min": float(np.min(data)),
        "max": float(np.max(data)),
        "p95": float(np.percentile(data, 95)),
        "iqr": float(q75 - q25),
        "cv": stdev / abs(float(np.mean(data))) if np.mean(data) else 0.0,
        "between_process_cv": float(np.std(medians, ddof=1) / abs(np.mean(medians))) if np.mean(medians) else 0.0,
    }


def test_summary_metrics_equal_numpy_on_the_samples(logged: Logged) -> None:
    children = _children(logged)
    for name in EXPECTED:
        bench = logged.bench(name)
        metrics = children[name].data.metrics
        assert metrics["samples"] == len(bench.samples)
        assert metrics["processes"] == bench.process_count
        processes = [s.process for s in bench.samples]
        for metric in bench.metric_names():
            for statistic, value in _numpy_summary(bench.series(metric), processes).items():
                stored = metrics[summary_metric_key(metric, statistic)]
                assert stored == pytest.approx(value, rel=1e-12, abs=1e-300), (name, metric, statistic)


def test_between_process_variance_is_recorded(logged: Logged) -> None:
    children = _children(logged)
    add = logged.bench("add[size=100]")
    run_id = children[add.name].info.run_id
    processes = {value for _, value in _history(logged.client, run_id, sample_metric_key(PROCESS_METRIC))}
    assert processes == {0.0, 1.0, 2.0}
    assert "summary/wall_s.between_process_cv" in children[add.name].data.metrics
    assert children[add.name].data.metrics["summary/wall_s.between_process_cv"] >= 0
    doc = next(b for b in logged.document["suites"][0]["benchmarks"] if b["name"] == add.name)
    assert doc["processes"] == PROCESSES
    assert doc["summary"]["wall_s"]["between_process_cv"] == pytest.approx(
        children[add.name].data.metrics["summary/wall_s.between_process_cv"], rel=1e-12)


def test_params_describe_the_measurement(logged: Logged) -> None:
    children = _children(logged)
    params = children["add[size=100]"].data.params
    add = logged.bench("add[size=100]")
    assert params == {
        "param.size": "100",
        "level": "quick",
        "kind": "time",
        "processes": str(PROCESSES),
        "samples_per_process": str(SAMPLES),
        "warmups": "0",
        "loops": ",".join(str(n) for n in sorted({s.loops for s in add.samples})),
    }
    assert children["alloc"].data.params["kind"] == "memory"
    assert children["alloc"].data.params["loops"] == "1"
    tags = children["add[size=100]"].data.tags
    assert tags["benchtrack.benchmark.base"] == "add"
    assert tags["benchtrack.benchmark.tags"] == "math"
    assert tags["benchtrack.benchmark.file"] == "bench_track.py"


def test_source_and_machine_tags(logged: Logged) -> None:
    (parent,) = parent_runs(logged.client, SUITE_NAME)
    for run in (parent, *_children(logged).values()):
        tags = run.data.tags
        assert tags[GIT_COMMIT_TAG] == logged.commit
        assert tags["benchtrack.git.branch"] == "main"
        assert tags["benchtrack.git.dirty"] == "false"
        assert tags["benchtrack.machine.fingerprint"] == machine_fingerprint()
    assert parent.info.run_name.endswith(logged.commit[:8])
    assert logged.result.metadata[GIT_COMMIT_TAG] == logged.commit


def test_no_environment_values_are_recorded(logged: Logged) -> None:
    (parent,) = parent_runs(logged.client, SUITE_NAME)
    for run in (parent, *_children(logged).values()):
        texts = [*run.data.tags, *run.data.tags.values(), *run.data.params, *run.data.params.values()]
        assert not [text for text in texts if SECRET_VALUE in text or SECRET_NAME in text], run.info.run_name
        artifact = Path(logged.client.download_artifacts(run.info.run_id, "", str(logged.tmp / run.info.run_id)))
        for path in artifact.rglob("*"):
            if path.is_file():
                assert SECRET_VALUE not in path.read_text(encoding="utf-8")
    assert SECRET_VALUE not in json.dumps(r.run_result_to_dict(logged.result))


def test_raw_samples_artifact_round_trips(logged: Logged) -> None:
    store = MlflowStore(logged.uri)
    for name, child in _children(logged).items():
        artifacts = [a.path for a in logged.client.list_artifacts(child.info.run_id, "benchtrack")]
        assert artifacts == [RESULT_ARTIFACT]
        loaded = store.load_benchmark_result(child.info.run_id)
        assert loaded.suite == SUITE_NAME
        assert loaded.level == "quick"
        assert loaded.metadata == logged.result.metadata
        assert loaded.benchmarks == (logged.bench(name),)  # same samples, values, loops, processes


def test_child_runs_span_the_measuring_time(logged: Logged) -> None:
    children = _children(logged)
    for name in EXPECTED:
        bench = logged.bench(name)
        assert bench.started_at is not None
        assert bench.finished_at is not None
        assert logged.result.started_at <= bench.started_at < bench.finished_at <= logged.result.finished_at
        info = children[name].info
        assert (info.start_time, info.end_time) == (int(bench.started_at * 1000), int(bench.finished_at * 1000))
    (parent,) = parent_runs(logged.client, SUITE_NAME)
    assert parent.info.start_time <= min(c.info.start_time for c in children.values())


def test_features_are_one_tag_and_no_metric(logged: Logged) -> None:
    for name, child in _children(logged).items():
        keys = set(child.data.metrics)
        assert not [k for k in keys if k.startswith(("history.", "anomaly."))], name
        assert run_features(child) == pytest.approx(history_metrics(logged.bench(name)), rel=1e-15)
        assert json.loads(child.data.tags[FEATURES_TAG])["v"] == FEATURES_VERSION


def test_metric_keys_put_time_first_and_summaries_after_the_samples(logged: Logged) -> None:
    """MLflow's run page orders chart sections by the key's part before the last "/" (sorted),
    then the unprefixed ones; the wall and CPU time charts must open the page."""
    child = _children(logged)["add[size=10]"]
    sections = sorted({key.rpartition("/")[0] for key in child.data.metrics if "/" in key})
    assert sections[:4] == ["1 time", "2 memory", "3 gc", "4 process"]
    assert sections[-1] == "summary"
    first = sorted(key for key in child.data.metrics if key.startswith(sections[0] + "/"))
    assert first == ["1 time/cpu_s", "1 time/wall_s"]
    assert {k for k in child.data.metrics if "/" not in k} <= {"samples", "processes", "contention.descheduled_fraction",
                                                               "contention.others_cpus"}


def _history_store(store_uri: str) -> tuple[MlflowStore, BenchmarkResult, RunResult]:
    rng = np.random.default_rng(7)
    bench = verdict_support.bench("work", verdict_support.samples(rng, processes=3, per_process=4))
    return MlflowStore(store_uri), bench, verdict_support.run_result([bench])


def test_history_reads_features_from_the_tag(store_uri: str) -> None:
    store, bench, run = _history_store(store_uri)
    parent = store.start_invocation(run, "inv-tag")
    logged = store.log_benchmark(parent, run, bench)
    (found,) = store.history(run.suite, "main", verdict_support.FINGERPRINT)["work"]
    assert found.run_id == logged.run_id
    assert found.metrics == pytest.approx(history_metrics(bench), rel=1e-15)
    assert found.statistics(r.WALL) is not None
    assert set(found.features()) == {"spread", "tail", "between_process_cv"}


def test_history_still_reads_features_logged_as_metrics(store_uri: str) -> None:
    """Stores written before the features tag kept history.* and anomaly.* as metrics."""
    store, bench, run = _history_store(store_uri)
    parent = store.start_invocation(run, "inv-legacy")
    run_id = store.log_benchmark(parent, run, bench).run_id
    client = store.client
    client.delete_tag(run_id, FEATURES_TAG)
    legacy = history_metrics(bench)
    for key, value in legacy.items():
        client.log_metric(run_id, key, value, step=0)
    (found,) = store.history(run.suite, "main", verdict_support.FINGERPRINT)["work"]
    assert dict(found.metrics) == legacy


@pytest.mark.parametrize(("tag", "expected"), [
    ('{"v":1,"features":{"history.v2.wall_s.centre":-6.9,"anomaly.tail":1.5}}',
     {"history.v2.wall_s.centre": -6.9, "anomaly.tail": 1.5}),
    ('{"v":1,"features":{"history.v2.wall_s.centre":-6.9', {}),  # clipped
    ('{"v":2,"features":{"anomaly.tail":1.5}}', {}),  # a later format is not guessed at
    ('{"v":1,"features":{"anomaly.tail":"x","anomaly.spread":true,"anomaly.ok":2}}', {"anomaly.ok": 2.0}),
])
def test_run_features_of_a_tag(tag: str, expected: dict[str, float]) -> None:
    run = SimpleNamespace(data=SimpleNamespace(tags={FEATURES_TAG: tag}, metrics={"anomaly.tail": 9.0}))
    assert run_features(run) == expected


def test_features_tag_leaves_non_finite_values_out() -> None:
    text = features_tag_value({"anomaly.tail": float("nan"), "anomaly.spread": 0.25, "history.v2.x.centre": -float("inf")})
    assert json.loads(text) == {"v": FEATURES_VERSION, "features": {"anomaly.spread": 0.25}}
    run = SimpleNamespace(data=SimpleNamespace(tags={FEATURES_TAG: text}, metrics={}))
    assert run_features(run) == {"anomaly.spread": 0.25}


def test_measuring_times_round_trip_and_stay_optional() -> None:
    timed = verdict_support.bench("work", verdict_support.samples(np.random.default_rng(1), processes=1, per_process=2))
    timed = replace(timed, started_at=1_700_000_001.25, finished_at=1_700_000_002.5)
    document = r.run_result_to_dict(verdict_support.run_result([timed, replace(timed, name="old", started_at=None,
                                                                              finished_at=None)]))
    assert "started_at" not in document["benchmarks"][1]  # files stay as older readers know them
    loaded = r.run_result_from_dict(json.loads(json.dumps(document)))
    assert loaded.benchmarks[0] == timed
    assert (loaded.benchmarks[1].started_at, loaded.benchmarks[1].finished_at) == (None, None)
    run = verdict_support.run_result([loaded.benchmarks[1]])
    assert measuring_window_ms(run, loaded.benchmarks[1]) == (int(run.started_at * 1000), int(run.finished_at * 1000))
    assert measuring_window_ms(run, timed) == (1_700_000_001_250, 1_700_000_002_500)


# --- metric writers ----------------------------------------------------------------------------

POINTS = [
    ("a", 1.0, 1_000, 0),
    ("a", 2.0, 1_000, 1),
    ("a", 0.5, 900, 2),  # a later step with an earlier timestamp is still the latest
    ("a", 2.0, 1_000, 1),  # an exact duplicate
    ("b", 3.0, 1_000, 0),
    ("b", 4.0, 2_000, 0),  # same step, later timestamp
    ("c", -1.5, 1_000, 5),
    ("c", 7.0, 1_000, 5),  # same step and timestamp: the larger value wins
    ("d", 1e300, 1, 0),
    ("e", 0.0, 5, 3),
    ("e", -0.25, 5, 2),
    *[("many", float(i % 7) / 3, 10_000 + i, i) for i in range(1_500)],  # more than one log_batch
]


def test_bulk_sql_writer_and_log_batch_store_the_same(logged: Logged) -> None:
    store = MlflowStore(logged.uri)
    assert store.bulk_writes  # SQLite gets the bulk path by default
    client = logged.client
    experiment = store.experiment_id("writers")
    bulk_run = client.create_run(experiment).info.run_id
    batch_run = client.create_run(experiment).info.run_id
    _SqlBulkWriter(client._tracking_client.store).write(bulk_run, POINTS)  # the backend store under test
    _BatchWriter(client).write(batch_run, POINTS)

    def stored(run_id: str) -> tuple[dict[str, list[tuple[int, int, float]]], dict[str, float]]:
        histories = {key: sorted((m.step, m.timestamp, m.value) for m in client.get_metric_history(run_id, key))
                     for key in {p[0] for p in POINTS}}
        return histories, client.get_run(run_id).data.metrics

    bulk_histories, bulk_latest = stored(bulk_run)
    batch_histories, batch_latest = stored(batch_run)
    assert bulk_histories == batch_histories
    assert bulk_latest == batch_latest
    assert bulk_latest == {"a": 0.5, "b": 4.0, "c": 7.0, "d": 1e300, "e": 0.0, "many": (1_499 % 7) / 3}
    assert len(bulk_histories["many"]) == 1_500


# --- a fresh store opened by several processes at once -----------------------------------------

RACER = """
import pathlib, sys, time
from benchtrack.tracking.store import MlflowStore

uri, folder, me = sys.argv[1], pathlib.Path(sys.argv[2]), sys.argv[3]
(folder / f"ready-{me}").touch()
deadline = time.monotonic() + 120
while not (folder / "go").exists():
    if time.monotonic() > deadline:
        sys.exit("never told to go")
    time.sleep(0.01)
store = MlflowStore(uri)
print(store.experiment_id("race"))
"""


@pytest.mark.slow
def test_processes_opening_a_fresh_store_at_once_all_succeed(tmp_path: Path) -> None:
    db = tmp_path / "fresh" / "mlflow.db"
    db.parent.mkdir()
    uri = sqlite_uri(db)
    racers = [
        subprocess.Popen([sys.executable, "-c", RACER, uri, str(tmp_path), str(i)], cwd=tmp_path,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for i in range(3)
    ]
    try:
        for _ in range(12_000):  # imports take a few seconds; all three then start together
            if all((tmp_path / f"ready-{i}").exists() for i in range(3)) or any(p.poll() is not None for p in racers):
                break
            time.sleep(0.01)
        (tmp_path / "go").touch()
        outcomes = [p.communicate(timeout=300) for p in racers]
    finally:
        for p in racers:
            if p.poll() is None:
                p.kill()
    for process, (_, err) in zip(racers, outcomes, strict=True):
        assert process.returncode == 0, err
    experiment_ids = {out.strip() for out, _ in outcomes}
    assert len(experiment_ids) == 1
    assert not (tmp_path / "mlflow.db").exists()
    names = [e.name for e in mlflow_client(uri).search_experiments()]
    assert names.count("benchtrack/race") == 1
