"""MLflow adapter: the only module that imports mlflow.

One experiment per suite (``benchtrack/<suite>``), a parent run per `benchtrack run`
invocation, a nested child run per benchmark instance (started and ended when its samples were
taken) with per-sample values as metric steps, summary metrics, params, the features later
comparisons read as one tag, and the raw samples as a versioned JSON artifact.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchtrack import results as r
from benchtrack.analysis.features import HistoryRun, contention, cpu_count, history_metrics, metric_summaries
from benchtrack.errors import TrackingError
from benchtrack.results import BenchmarkResult, RunResult, run_result_to_dict
from benchtrack.session import RERUN_MODE_KEY
from benchtrack.tracking.uri import ARTIFACTS_FOLDER, sqlite_path

EXPERIMENT_PREFIX = "benchtrack/"
CALIBRATION_EXPERIMENT = EXPERIMENT_PREFIX + "_calibration"  # "_": not a suite, never searched for history
CALIBRATION_FINGERPRINT_TAG = "benchtrack.calibration.fingerprint"
CALIBRATION_ARTIFACT = "calibration.json"
RESULT_ARTIFACT = "benchtrack/result.json"
PROCESS_METRIC = "process_index"
MAX_METRICS_PER_BATCH = 1000  # MLflow's log_batch limits
MAX_PARAMS_PER_BATCH = 100
MAX_TAG_VALUE = 5000
MAX_PARAM_VALUE = 6000
# The history.* and anomaly.* features of analysis.features, as one compact JSON tag
# {"v": 1, "features": {name: value}}: MLflow would draw each as a chart nobody reads. Runs
# logged before this tag kept them as metrics; run_features reads both.
FEATURES_TAG = "benchtrack.features"
FEATURES_VERSION = 1
_LEGACY_FEATURE_PREFIXES = ("history.", "anomaly.")

# Metric keys, laid out for MLflow's run page: it groups charts into sections by the part of the
# key before the last "/", shows those sections sorted by name ahead of the unprefixed "Model
# metrics", and sorts charts by key inside a section. The numbers make that order the reading
# order: what a benchmark tracks itself, time, memory, GC, the worker process; then the
# summaries ("summary/wall_s.median"); run facts (samples, processes, contention.*) come last.
SUMMARY_SECTION = "summary"

# Quiet by default: no telemetry, no "View run at" lines on stdout (they break --format json),
# no INFO chatter, and a dead server fails in seconds rather than after minutes of retries.
_QUIET_ENVIRONMENT = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
    "MLFLOW_LOGGING_LEVEL": "WARNING",
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "20",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
}


def quiet_mlflow_environment() -> None:
    for key, value in _QUIET_ENVIRONMENT.items():
        os.environ.setdefault(key, value)


@dataclass(frozen=True)
class LoggedBenchmark:
    name: str
    run_id: str
    points: int


@dataclass(frozen=True)
class StoredBenchmarkRun:
    """One successful run of one benchmark, as `benchtrack history` shows it."""

    suite: str
    run_id: str
    start_ms: int
    commit: str
    level: str
    features: Mapping[str, float]


class MlflowStore:
    """A tracking store reached through MlflowClient; created with an explicit URI only."""

    def __init__(self, uri: str) -> None:
        quiet_mlflow_environment()
        self.uri = uri
        self._db_path = sqlite_path(uri)
        if self._db_path is not None:
            _check_sqlite_location(self._db_path)
        with _translate_errors(f"cannot open the tracking store {uri}"):
            from mlflow.tracking import MlflowClient

            with self._schema_lock():
                self._client = MlflowClient(tracking_uri=uri)
                self._client.search_experiments(max_results=1)
                if self._db_path is not None:
                    _use_write_ahead_log(self._db_path)
        self._writer = _make_metric_writer(self._client)
        self._experiments: dict[str, str] = {}

    @contextlib.contextmanager
    def _schema_lock(self) -> Iterator[None]:
        """Several processes creating a fresh SQLite schema at once crash MLflow's migration
        ('duplicate column name'); a file lock lets the first one create it alone."""
        if self._db_path is None:
            yield
            return
        lock_path = self._db_path.with_name(self._db_path.name + ".lock")
        with open(lock_path, "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    @property
    def client(self) -> Any:
        return self._client

    @property
    def bulk_writes(self) -> bool:
        return isinstance(self._writer, _SqlBulkWriter)

    def experiment_id(self, suite: str) -> str:
        return self.experiment_id_for(EXPERIMENT_PREFIX + suite, folder=suite)

    def experiment_id_for(self, name: str, folder: str | None = None) -> str:
        """Find or create an experiment by its full name; artifacts of an embedded store go to
        mlartifacts/<folder> beside the database (folder defaults to the name)."""
        if name not in self._experiments:
            self._experiments[name] = self._find_or_create_experiment(name, folder or name)
        return self._experiments[name]

    def _find_or_create_experiment(self, name: str, folder: str) -> str:
        with _translate_errors(f"cannot create experiment {name!r}"):
            existing = self._client.get_experiment_by_name(name)
            if existing is not None:
                return str(existing.experiment_id)
            try:
                return str(self._client.create_experiment(name, artifact_location=self._artifact_location(folder)))
            except Exception:
                # Another process created it between our lookup and create.
                existing = self._client.get_experiment_by_name(name)
                if existing is None:
                    raise
                return str(existing.experiment_id)

    def write_points(self, run_id: str, points: Sequence[Point]) -> None:
        """Metric points (key, value, timestamp ms, step) of a run this store just created."""
        self._writer.write(run_id, points)

    def log_params(self, run_id: str, params: Mapping[str, object]) -> None:
        from mlflow.entities import Param

        items = [Param(k, str(v)[:MAX_PARAM_VALUE]) for k, v in params.items()]
        for start in range(0, len(items), MAX_PARAMS_PER_BATCH):
            self._client.log_batch(run_id, params=items[start : start + MAX_PARAMS_PER_BATCH])

    def _artifact_location(self, suite: str) -> str | None:
        if self._db_path is None:
            return None  # a server decides where artifacts live
        folder = self._db_path.parent / ARTIFACTS_FOLDER / suite.replace("/", "_")
        return folder.as_uri()

    def start_invocation(self, result_shell: RunResult, invocation_id: str) -> str:
        """Create the parent run of one suite in one invocation; benchmarks are added as they finish."""
        experiment_id = self.experiment_id(result_shell.suite)
        tags = {
            **result_shell.metadata,
            "benchtrack.type": "invocation",
            "benchtrack.suite": result_shell.suite,
            "benchtrack.level": result_shell.level,
            "benchtrack.invocation": invocation_id,
        }
        with _translate_errors("cannot create the parent run"):
            run = self._client.create_run(
                experiment_id,
                start_time=int(result_shell.started_at * 1000),
                tags=_clip_tags(tags),
                run_name=f"{result_shell.suite} {result_shell.level} {_short_commit(result_shell.metadata)}".strip(),
            )
        return str(run.info.run_id)

    def log_benchmark(self, parent_run_id: str, run: RunResult, bench: BenchmarkResult) -> LoggedBenchmark:
        experiment_id = self.experiment_id(run.suite)
        start_ms, end_ms = measuring_window_ms(run, bench)
        tags = {
            **run.metadata,
            "mlflow.parentRunId": parent_run_id,
            "benchtrack.type": "benchmark",
            "benchtrack.suite": run.suite,
            "benchtrack.level": run.level,
            "benchtrack.benchmark": bench.name,
            "benchtrack.benchmark.base": bench.benchmark,
            "benchtrack.benchmark.file": bench.file,
            "benchtrack.benchmark.kind": bench.kind,
            "benchtrack.benchmark.tags": ",".join(bench.tags),
            "benchtrack.status": "ok" if bench.ok else "failed",
            **{f"benchtrack.probe.{k}": v for k, v in bench.probes.items()},
        }
        if bench.error:
            tags["benchtrack.error"] = bench.error
        if bench.samples:
            found = contention(bench, cpu_count(run.metadata))
            tags["benchtrack.contended"] = "true" if found.contended else "false"
            if found.contended:
                tags["benchtrack.contention"] = found.reason
        if bench.ok and bench.samples:
            tags[FEATURES_TAG] = features_tag_value(history_metrics(bench))
        with _translate_errors(f"cannot log benchmark {bench.name!r}"):
            child = self._client.create_run(experiment_id, start_time=start_ms, tags=_clip_tags(tags), run_name=bench.name)
            run_id = str(child.info.run_id)
            points = sample_points(bench, end_ms)
            summary_points = [(key, value, end_ms, 0) for key, value in summary_metrics(bench).items()]
            self.write_points(run_id, points + summary_points)
            self.log_params(run_id, _params(bench, run))
            document = run_result_to_dict(_single_benchmark_result(run, bench))
            folder, name = RESULT_ARTIFACT.rsplit("/", 1)
            log_artifact_files(child.info.artifact_uri, folder,
                               {name: json.dumps(document, separators=(",", ":"), allow_nan=False)})
            self._client.set_terminated(run_id, "FINISHED" if bench.ok else "FAILED", end_time=end_ms)
        return LoggedBenchmark(bench.name, run_id, len(points) + len(summary_points))

    def finish_invocation(self, parent_run_id: str, run: RunResult) -> None:
        now_ms = int(time.time() * 1000)
        failed = len(run.failed)
        metrics = [
            ("benchmarks_total", float(len(run.benchmarks)), now_ms, 0),
            ("benchmarks_failed", float(failed), now_ms, 0),
            ("duration_s", run.finished_at - run.started_at, now_ms, 0),
        ]
        with _translate_errors("cannot finish the parent run"):
            self.write_points(parent_run_id, metrics)
            self._client.set_tag(parent_run_id, "benchtrack.failed", str(failed))
            cpus = cpu_count(run.metadata)
            contended = [b.name for b in run.benchmarks if b.samples and contention(b, cpus).contended]
            self._client.set_tag(parent_run_id, "benchtrack.contended", str(len(contended)))
            self._client.set_terminated(parent_run_id, "FINISHED", end_time=int(run.finished_at * 1000))

    def load_benchmark_result(self, run_id: str) -> RunResult:
        """Read back the raw-sample artifact of a benchmark child run, exactly as measured."""
        from benchtrack.results import run_result_from_dict

        with _translate_errors(f"cannot read the samples of run {run_id}"), tempfile.TemporaryDirectory() as tmp:
            path = self._client.download_artifacts(run_id, RESULT_ARTIFACT, tmp)
            text = Path(path).read_text(encoding="utf-8")
        return run_result_from_dict(json.loads(text))


    # Reading runs back: comparisons, history and git-ref resolution.

    def run_tags(self, run_id: str) -> dict[str, str]:
        with _translate_errors(f"cannot read run {run_id}"):
            try:
                run = self._client.get_run(run_id)
            except Exception as exc:
                if "RESOURCE_DOES_NOT_EXIST" in str(exc) or "not found" in str(exc).lower():
                    raise TrackingError(f"unknown run id {run_id!r} in the tracking store") from None
                raise
        return dict(run.data.tags)

    def load_run(self, run_id: str) -> RunResult:
        """A benchmark child run, or every benchmark of an invocation's parent run."""
        tags = self.run_tags(run_id)
        kind = tags.get("benchtrack.type")
        if kind == "benchmark":
            return self.load_benchmark_result(run_id)
        if kind != "invocation":
            raise TrackingError(f"run {run_id} is not a benchtrack run")
        results = [self.load_benchmark_result(child) for child in self._children(run_id, tags)]
        if not results:
            raise TrackingError(f"run {run_id} has no benchmark runs")
        first = results[0]
        benches = sorted((result.benchmarks[0] for result in results), key=lambda b: b.name)
        return RunResult(first.suite, first.level, first.started_at, first.finished_at, first.metadata, tuple(benches))

    def child_run_ids(self, parent_run_id: str) -> list[str]:
        return self._children(parent_run_id, self.run_tags(parent_run_id))

    def _children(self, parent_run_id: str, parent_tags: Mapping[str, str]) -> list[str]:
        children = self._search(
            [self.experiment_id(parent_tags.get("benchtrack.suite", ""))],
            f"tags.`mlflow.parentRunId` = '{parent_run_id}' and tags.`benchtrack.type` = 'benchmark'",
        )
        return [str(c.info.run_id) for c in children]

    def newest_invocation(self, commit: str, fingerprint: str) -> str | None:
        """The newest parent run measured at this commit on this machine fingerprint."""
        experiments = self._benchtrack_experiments()
        if not experiments:
            return None
        runs = self._search(
            experiments,
            f"tags.`benchtrack.type` = 'invocation' and tags.`mlflow.source.git.commit` = '{commit}' "
            f"and tags.`benchtrack.machine.fingerprint` = '{fingerprint}'",
            max_results=1,
        )
        return str(runs[0].info.run_id) if runs else None

    def history(self, suite: str, branch: str, fingerprint: str, exclude: frozenset[str] = frozenset(),
                per_benchmark: int = 30) -> dict[str, list[HistoryRun]]:
        """Earlier successful runs of every benchmark of a suite on this branch and machine,
        newest first, in one query: their history.* and anomaly.* features. ``exclude``
        holds run ids and invocation ids; a benchmark run is left out when it, its parent or its
        invocation is excluded."""
        name = EXPERIMENT_PREFIX + suite
        with _translate_errors(f"cannot read the history of {name}"):
            experiment = self._client.get_experiment_by_name(name)
        if experiment is None:
            return {}
        from benchtrack.tracking.baselines import quote_value

        wanted = {"benchtrack.git.branch": branch, "benchtrack.machine.fingerprint": fingerprint}
        conditions = ["tags.`benchtrack.type` = 'benchmark'", "tags.`benchtrack.status` = 'ok'"]
        conditions += [f"tags.`{k}` = {quote_value(v)}" for k, v in wanted.items() if quote_value(v) is not None]
        runs = self._search([str(experiment.experiment_id)], " and ".join(conditions), max_results=5000)
        history: dict[str, list[HistoryRun]] = {}
        for run in runs:
            benchmark = run.data.tags.get("benchtrack.benchmark", "")
            if any(run.data.tags.get(k) != v for k, v in wanted.items()):
                continue  # values MLflow's filter syntax cannot quote are checked here
            ids = (run.info.run_id, run.data.tags.get("mlflow.parentRunId"), run.data.tags.get("benchtrack.invocation"))
            excluded = any(i in exclude for i in ids if i) or bool(run.data.tags.get(RERUN_MODE_KEY))
            if excluded or len(history.get(benchmark, [])) >= per_benchmark:
                continue
            metrics = run_features(run)
            processes = int(run.data.metrics.get("processes", 1))
            tags = run.data.tags
            invocation = tags.get("benchtrack.invocation") or tags.get("mlflow.parentRunId", "")
            history.setdefault(benchmark, []).append(HistoryRun(
                run.info.run_id, metrics, processes, invocation=invocation, level=tags.get("benchtrack.level", ""),
                loops=run.data.params.get("loops", "")))
        return history

    def benchmark_runs(self, benchmark: str, suites: Sequence[str], branch: str | None = None,
                       fingerprint: str | None = None, limit: int = 5000) -> list[StoredBenchmarkRun]:
        """The newest ``limit`` successful runs of one benchmark in these suites (on this branch and
        machine fingerprint when given), newest first; runs of `compare --rerun` are left out, as
        history() does."""
        experiments = {}
        for suite in suites:
            with _translate_errors(f"cannot read the experiment of suite {suite}"):
                experiment = self._client.get_experiment_by_name(EXPERIMENT_PREFIX + suite)
            if experiment is not None:
                experiments[str(experiment.experiment_id)] = suite
        if not experiments:
            return []
        from benchtrack.tracking.baselines import quote_value

        wanted = {"benchtrack.benchmark": benchmark, "benchtrack.git.branch": branch,
                  "benchtrack.machine.fingerprint": fingerprint}
        wanted_set = {k: v for k, v in wanted.items() if v is not None}
        conditions = ["tags.`benchtrack.type` = 'benchmark'", "tags.`benchtrack.status` = 'ok'"]
        conditions += [f"tags.`{k}` = {quote_value(v)}" for k, v in wanted_set.items() if quote_value(v) is not None]
        found = []
        for run in self._search(list(experiments), " and ".join(conditions), max_results=5000):
            tags = run.data.tags
            if any(tags.get(k) != v for k, v in wanted_set.items()) or tags.get(RERUN_MODE_KEY):
                continue  # values MLflow's filter syntax cannot quote are checked here
            found.append(StoredBenchmarkRun(experiments[str(run.info.experiment_id)], str(run.info.run_id),
                                            int(run.info.start_time or 0), tags.get("mlflow.source.git.commit", ""),
                                            tags.get("benchtrack.level", ""), run_features(run)))
        return found[:limit]

    def log_calibration(self, fingerprint: str, created_at: float, document: str) -> str:
        """An A/A calibration (benchtrack.calibration/1 JSON) as a run of its own experiment,
        tagged with its machine fingerprint and date; history never reads that experiment."""
        experiment_id = self.experiment_id_for(CALIBRATION_EXPERIMENT, folder="_calibration")
        tags = {CALIBRATION_FINGERPRINT_TAG: fingerprint, "benchtrack.type": "calibration",
                "benchtrack.calibration.created_at": f"{created_at:.0f}"}
        with _translate_errors("cannot log the calibration"):
            run = self._client.create_run(experiment_id, start_time=int(created_at * 1000), tags=tags,
                                          run_name=f"calibration {fingerprint}")
            log_artifact_files(run.info.artifact_uri, "", {CALIBRATION_ARTIFACT: document})
            self._client.set_terminated(run.info.run_id, end_time=int(time.time() * 1000))
        return str(run.info.run_id)

    def latest_calibration(self, fingerprint: str) -> str | None:
        """The newest calibration document stored for this fingerprint, or None."""
        with _translate_errors("cannot read calibrations"):
            experiment = self._client.get_experiment_by_name(CALIBRATION_EXPERIMENT)
        if experiment is None:
            return None
        found = self._search([str(experiment.experiment_id)],
                             f"tags.`{CALIBRATION_FINGERPRINT_TAG}` = '{fingerprint}'", max_results=1)
        if not found:
            return None
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

        with _translate_errors("cannot read the calibration"), tempfile.TemporaryDirectory() as tmp:
            repository = get_artifact_repository(found[0].info.artifact_uri)  # this store's, not mlflow's global one
            return Path(repository.download_artifacts(CALIBRATION_ARTIFACT, tmp)).read_text(encoding="utf-8")

    def _benchtrack_experiments(self) -> list[str]:
        with _translate_errors("cannot list experiments"):
            experiments = self._client.search_experiments(filter_string=f"name LIKE '{EXPERIMENT_PREFIX}%'")
        return [str(e.experiment_id) for e in experiments if not e.name.startswith(EXPERIMENT_PREFIX + "_")]

    def _search(self, experiment_ids: list[str], filter_string: str, max_results: int = 1000) -> list[Any]:
        with _translate_errors("cannot search runs"):
            runs: list[Any] = []
            token = None
            while True:
                page = self._client.search_runs(experiment_ids, filter_string, max_results=min(max_results, 1000),
                                                order_by=["attributes.start_time DESC"], page_token=token)
                runs.extend(page)
                token = page.token
                if not token or len(runs) >= max_results:
                    return runs[:max_results]


Point = tuple[str, float, int, int]


def run_features(run: Any) -> dict[str, float]:
    """A benchmark run's history.* and anomaly.* features (see analysis.features), as the store
    returned the run; the one place that knows where they are kept: the FEATURES_TAG, else (runs
    logged before it) metrics of those names."""
    text = run.data.tags.get(FEATURES_TAG)
    if text is None:
        return {k: float(v) for k, v in run.data.metrics.items() if k.startswith(_LEGACY_FEATURE_PREFIXES)}
    try:
        document = json.loads(text)
    except ValueError:
        return {}  # a clipped or hand-edited tag: the run has no usable history, like one without features
    if not isinstance(document, dict) or document.get("v") != FEATURES_VERSION:
        return {}  # a newer benchtrack's format: not ours to guess
    features = document.get("features")
    if not isinstance(features, dict):
        return {}
    return {str(k): float(v) for k, v in features.items() if isinstance(v, int | float) and not isinstance(v, bool)}


def features_tag_value(features: Mapping[str, float]) -> str:
    """The FEATURES_TAG text: compact JSON; non-finite values are left out (a missing feature
    and a non-finite one are both dropped by the history readers)."""
    finite = {k: float(v) for k, v in features.items() if math.isfinite(v)}
    text = json.dumps({"v": FEATURES_VERSION, "features": finite}, separators=(",", ":"), allow_nan=False)
    if len(text) > MAX_TAG_VALUE:
        raise TrackingError(f"the run's features take {len(text)} characters, more than an MLflow tag holds "
                            f"({MAX_TAG_VALUE})")
    return text


def measuring_window_ms(run: RunResult, bench: BenchmarkResult) -> tuple[int, int]:
    """When the benchmark was measured (its first sample's start, its last sample's end), in
    epoch milliseconds; results without those times (older files, imports) take the run's."""
    if bench.started_at is not None and bench.finished_at is not None:
        return int(bench.started_at * 1000), int(bench.finished_at * 1000)
    finished = run.finished_at if run.finished_at > run.started_at else time.time()
    return int(run.started_at * 1000), int(finished * 1000)


def sample_metric_key(name: str) -> str:
    """The MLflow key of a per-sample metric: its chart section, "/", its name."""
    if name.startswith(r.TRACK_PREFIX):
        section = "0 tracked"
    elif name in (r.WALL, r.CPU, r.INSTRUCTIONS):
        section = "1 time"
    elif name.startswith(("rss_", "uss_", "tracemalloc_")):
        section = "2 memory"
    elif name.startswith("gc_"):
        section = "3 gc"
    elif name in (PROCESS_METRIC, r.CTX_INVOLUNTARY):
        section = "4 process"
    else:
        section = "5 other"
    return f"{section}/{name}"


def summary_metric_key(name: str, statistic: str) -> str:
    """The MLflow key of a summary statistic, e.g. "summary/wall_s.median"."""
    return f"{SUMMARY_SECTION}/{name}.{statistic}"


def log_artifact_files(artifact_uri: str, folder: str, files: Mapping[str, str | Path]) -> None:
    """Write artifacts straight to a run's artifact repository: MlflowClient.log_text would
    first fetch the whole run again just to learn the artifact URI we already hold.
    ``files`` maps the artifact's name to its text, or to a file whose bytes it takes."""
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    repository = get_artifact_repository(artifact_uri)
    with tempfile.TemporaryDirectory(prefix="benchtrack-artifact-") as tmp:
        for name, content in files.items():
            path = Path(tmp) / name
            if isinstance(content, Path):
                path.write_bytes(content.read_bytes())
            else:
                path.write_text(content, encoding="utf-8")
            repository.log_artifact(str(path), folder or None)


def sample_points(bench: BenchmarkResult, timestamp_ms: int) -> list[Point]:
    """Each sample becomes one step, its process index logged beside its values."""
    points: list[Point] = []
    process_key = sample_metric_key(PROCESS_METRIC)
    for step, sample in enumerate(bench.samples):
        points.append((process_key, float(sample.process), timestamp_ms, step))
        points.extend((sample_metric_key(key), float(value), timestamp_ms, step) for key, value in sample.values.items())
    return points


def summary_metrics(bench: BenchmarkResult) -> dict[str, float]:
    metrics = {
        summary_metric_key(name, statistic): value
        for name, stats in metric_summaries(bench).items()
        for statistic, value in stats.items()
    }
    metrics["samples"] = float(len(bench.timed_samples))
    if bench.samples:
        found = contention(bench, 0)
        metrics["contention.descheduled_fraction"] = found.descheduled_fraction
        if found.others_cpus is not None:
            metrics["contention.others_cpus"] = found.others_cpus
    metrics["processes"] = float(bench.process_count)
    return metrics


def _params(bench: BenchmarkResult, run: RunResult) -> dict[str, str]:
    loops = sorted({s.loops for s in bench.timed_samples})
    values = {
        **{f"param.{k}": v for k, v in bench.params.items()},
        "level": run.level,
        "kind": bench.kind,
        "processes": str(bench.process_count),
        "samples_per_process": str(_samples_per_process(bench)),
        "warmups": str(bench.warmups),
        "loops": ",".join(str(n) for n in loops) or "0",
    }
    return dict(list(values.items())[:MAX_PARAMS_PER_BATCH])


def _samples_per_process(bench: BenchmarkResult) -> int:
    timed = bench.timed_samples
    if not timed:
        return 0
    return max(sum(1 for s in timed if s.process == p) for p in {s.process for s in timed})


def _single_benchmark_result(run: RunResult, bench: BenchmarkResult) -> RunResult:
    """The benchmark as its own result; a run still in progress ends when this benchmark did."""
    finished = run.finished_at if run.finished_at > run.started_at else time.time()
    return RunResult(run.suite, run.level, run.started_at, finished, run.metadata, (bench,))


def _clip_tags(tags: Mapping[str, str]) -> dict[str, str]:
    return {k: str(v)[:MAX_TAG_VALUE] for k, v in tags.items()}


def _short_commit(metadata: Mapping[str, str]) -> str:
    return metadata.get("mlflow.source.git.commit", "")[:8]


class _BatchWriter:
    """Portable path: MlflowClient.log_batch in chunks of MLflow's 1,000-item limit."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def write(self, run_id: str, points: Sequence[Point]) -> None:
        from mlflow.entities import Metric

        for start in range(0, len(points), MAX_METRICS_PER_BATCH):
            chunk = points[start : start + MAX_METRICS_PER_BATCH]
            self._client.log_batch(run_id, metrics=[Metric(k, v, t, s) for k, v, t, s in chunk])


class _SqlBulkWriter:
    """Fast path for SQL stores (SQLite, PostgreSQL): one multi-row INSERT into MLflow's own
    metrics tables per run, plus the latest-value rows MLflow's ORM path would maintain.
    log_batch spends ~200 ms per 1,000 points in ORM bookkeeping; this is ~10x faster.
    Only used for runs benchtrack itself just created, so no earlier rows exist to merge."""

    EXPECTED_COLUMNS = frozenset({"key", "value", "timestamp", "step", "is_nan", "run_uuid"})

    def __init__(self, store: Any) -> None:
        from mlflow.store.tracking.dbmodels.models import SqlLatestMetric, SqlMetric

        self._store = store
        self._metrics = SqlMetric.__table__
        self._latest = SqlLatestMetric.__table__

    @classmethod
    def supports(cls, store: Any) -> bool:
        try:
            from mlflow.store.tracking.dbmodels.models import SqlLatestMetric, SqlMetric
            from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
        except ImportError:
            return False
        columns = {c.name for c in SqlMetric.__table__.columns}
        latest_columns = {c.name for c in SqlLatestMetric.__table__.columns}
        return (isinstance(store, SqlAlchemyStore) and columns == cls.EXPECTED_COLUMNS
                and latest_columns == cls.EXPECTED_COLUMNS)

    def write(self, run_id: str, points: Sequence[Point]) -> None:
        rows = _unique_rows(run_id, points)
        if not rows:
            return
        latest: dict[str, dict[str, Any]] = {}
        for row in rows:
            current = latest.get(row["key"])
            if current is None or (row["step"], row["timestamp"], row["value"]) > (
                current["step"], current["timestamp"], current["value"]
            ):
                latest[row["key"]] = row
        with self._store.ManagedSessionMaker() as session:
            session.execute(self._metrics.insert(), rows)
            session.execute(self._latest.insert(), list(latest.values()))


def _unique_rows(run_id: str, points: Sequence[Point]) -> list[dict[str, Any]]:
    seen: set[tuple[str, float, int, int]] = set()
    rows = []
    for key, value, timestamp, step in points:
        identity = (key, value, timestamp, step)
        if identity in seen:
            continue
        seen.add(identity)
        rows.append({"key": key, "value": value, "timestamp": timestamp, "step": step,
                     "is_nan": False, "run_uuid": run_id})
    return rows


def _make_metric_writer(client: Any) -> _BatchWriter | _SqlBulkWriter:
    store = client._tracking_client.store
    if _SqlBulkWriter.supports(store):
        return _SqlBulkWriter(store)
    return _BatchWriter(client)


def _use_write_ahead_log(db_path: Path) -> None:
    """WAL lets `benchtrack ui` read while a run writes and makes each commit cheaper; the
    mode is stored in the database file, so it is set once."""
    import sqlite3

    connection = sqlite3.connect(db_path, timeout=30)
    try:
        if connection.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            connection.execute("PRAGMA journal_mode=WAL").fetchall()
    finally:
        connection.close()


def _check_sqlite_location(db_path: Path) -> None:
    folder = db_path.parent
    if folder.exists() and not folder.is_dir():
        raise TrackingError(f"cannot create the tracking store {db_path}: {folder} is a file, not a folder")
    if not folder.is_dir():
        raise TrackingError(f"cannot create the tracking store {db_path}: folder {folder} does not exist")
    if db_path.exists() and not os.access(db_path, os.W_OK):
        raise TrackingError(f"the tracking store {db_path} is not writable")
    if not db_path.exists() and not os.access(folder, os.W_OK):
        raise TrackingError(f"cannot create the tracking store {db_path}: folder {folder} is not writable")


@contextlib.contextmanager
def _translate_errors(what: str) -> Iterator[None]:
    """Every failure of the store becomes one TrackingError line naming what was attempted."""
    try:
        yield
    except TrackingError:
        raise
    except Exception as exc:
        raise TrackingError(f"{what}: {_first_line(exc)}") from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    message = text[0] if text else type(exc).__name__
    return message[:300]
