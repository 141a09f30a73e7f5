"""Baselines on a real SQLite MLflow store: append-only promotion records, one deterministic
resolution rule, racing promoters in separate processes, and snapshots a CI job reads offline."""

from __future__ import annotations

import itertools
import json
import math
import multiprocessing
import queue
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from benchtrack.baseline_snapshot import (
    SNAPSHOT_SCHEMA,
    BaselineSnapshot,
    SnapshotEntry,
    load_snapshot,
    snapshot_path,
    write_snapshot,
)
from benchtrack.errors import ResultFormatError, TrackingError
from benchtrack.results import BenchmarkResult, RunResult, Sample
from benchtrack.tracking import baselines
from benchtrack.tracking.baselines import (
    BASELINE_EXPERIMENT,
    BaselineKey,
    BaselineRegistry,
    PromotionRecord,
    export_snapshot,
    promotion_filter,
    quote_value,
    resolution_order,
)
from benchtrack.tracking.store import EXPERIMENT_PREFIX, MlflowStore

SUITE = "bench_math"
BRANCH = "main"
FINGERPRINT = "0123456789abcdef"
T0 = 1_700_000_000.0  # started_at of the oldest simulated invocation
RACERS = 7


# --- logging real benchmark runs ---------------------------------------------------------------


def make_bench(name: str, values: Sequence[float] = (1.0, 1.1, 0.9, 1.05), error: str | None = None) -> BenchmarkResult:
    samples = tuple(Sample(process=i % 2, index=i // 2, loops=10, values={"wall_s": v, "cpu_s": v * 0.9})
                    for i, v in enumerate(values))
    return BenchmarkResult(name=name, benchmark=name.split("[", 1)[0], file="bench_math.py", kind="time",
                           samples=samples, error=error)


def metadata(branch: str, fingerprint: str, commit: str) -> dict[str, str]:
    return {"benchtrack.git.branch": branch, "benchtrack.machine.fingerprint": fingerprint,
            "mlflow.source.git.commit": commit, "benchtrack.git.dirty": "false"}


def log_invocation(store: MlflowStore, started_at: float, benches: Sequence[BenchmarkResult], *, suite: str = SUITE,
                   branch: str = BRANCH, fingerprint: str = FINGERPRINT) -> dict[str, str]:
    """One real `benchtrack run` invocation through MlflowStore; benchmark name -> child run id.
    The parent run starts at started_at: that is the source_start_ms a promotion records."""
    commit = uuid.uuid4().hex + "abcdefgh"
    shell = RunResult(suite, "quick", started_at, started_at, metadata(branch, fingerprint, commit), ())
    run = replace(shell, finished_at=started_at + 5.0, benchmarks=tuple(benches))
    parent = store.start_invocation(shell, uuid.uuid4().hex)
    ids = {bench.name: store.log_benchmark(parent, run, bench).run_id for bench in benches}
    store.finish_invocation(parent, run)
    return ids


def log_one(store: MlflowStore, started_at: float, name: str = "add[n=10]", **kwargs: Any) -> str:
    values = kwargs.pop("values", (1.0, 1.1, 0.9, 1.05))
    return log_invocation(store, started_at, [make_bench(name, values)], **kwargs)[name]


def key(name: str = "add[n=10]", branch: str = BRANCH, fingerprint: str = FINGERPRINT) -> BaselineKey:
    return BaselineKey(SUITE, name, branch, fingerprint)


@pytest.fixture
def store(store_uri: str) -> MlflowStore:
    return MlflowStore(store_uri)


@pytest.fixture
def registry(store: MlflowStore) -> BaselineRegistry:
    return BaselineRegistry(store)


def assert_one_line(exc: BaseException, *fragments: str) -> None:
    message = str(exc)
    assert "\n" not in message, message
    for fragment in fragments:
        assert fragment in message, message


# --- promote / current / history ---------------------------------------------------------------


def test_the_baseline_experiment_is_the_one_the_store_creates() -> None:
    assert BASELINE_EXPERIMENT == EXPERIMENT_PREFIX + baselines.BASELINE_SUITE


def test_newest_measured_run_wins_even_when_promoted_first(registry: BaselineRegistry, store: MlflowStore) -> None:
    old = log_one(store, T0)
    new = log_one(store, T0 + 60)
    assert registry.key_of(new) == key()
    assert registry.current(key()) is None
    assert registry.history(key()) == []

    new_record = registry.promote(new, "nightly green")
    old_record = registry.promote(old, "re-promoted by hand")  # recorded later, measured earlier

    assert old_record.recorded_ms >= new_record.recorded_ms
    assert new_record.source_start_ms == int((T0 + 60) * 1000)
    assert old_record.source_start_ms == int(T0 * 1000)
    assert new_record.key == key()
    assert new_record.reason == "nightly green"
    assert new_record.commit == store.client.get_run(new).data.tags["mlflow.source.git.commit"]
    assert registry.current(key()) == new_record
    assert registry.history(key()) == [new_record, old_record]

    newest = log_one(store, T0 + 120)
    newest_record = registry.promote(newest, "next")
    assert registry.current(key()) == newest_record
    assert [r.run_id for r in registry.history(key())] == [newest, new, old]

    record_run = store.client.get_run(newest_record.record_id)
    assert record_run.info.status == "FINISHED"
    assert record_run.data.tags["benchtrack.type"] == "promotion"
    assert record_run.data.tags["benchtrack.promotion.run"] == newest
    assert store.client.get_experiment(record_run.info.experiment_id).name == BASELINE_EXPERIMENT


def test_insertion_order_does_not_change_resolution(registry: BaselineRegistry, store: MlflowStore) -> None:
    # Benchmark a is promoted oldest-first, b newest-first: both resolve to their newest measured run.
    runs = {name: [log_one(store, T0 + 10 * i, name=name) for i in range(3)] for name in ("a", "b")}
    for run_id in runs["a"]:
        registry.promote(run_id, "in order")
    for run_id in reversed(runs["b"]):
        registry.promote(run_id, "reversed")
    for name in ("a", "b"):
        current = registry.current(key(name))
        assert current is not None
        assert current.run_id == runs[name][-1]
        assert [r.run_id for r in registry.history(key(name))] == runs[name][::-1]


def test_resolution_rule_is_a_total_order_independent_of_input_order() -> None:
    def record(source: int, recorded: int, record_id: str) -> PromotionRecord:
        return PromotionRecord(key(), f"run-{record_id}", source, recorded, record_id, "r", None)

    records = [
        record(1000, 5000, "aa"),  # oldest measurement, recorded last
        record(2000, 3000, "bb"),
        record(2000, 3000, "cc"),  # same measurement and recording moment: the record id decides
        record(2000, 2000, "ff"),
        record(1500, 9000, "dd"),
    ]
    expected = ["cc", "bb", "ff", "dd", "aa"]
    for permutation in itertools.permutations(records):
        assert [r.record_id for r in resolution_order(permutation)] == expected


def test_failed_runs_are_refused_and_leave_no_record(registry: BaselineRegistry, store: MlflowStore) -> None:
    failed = log_invocation(store, T0, [make_bench("broken", error="ZeroDivisionError: boom")])["broken"]
    with pytest.raises(TrackingError) as caught:
        registry.promote(failed, "should not happen")
    assert_one_line(caught.value, failed, "failed")
    assert registry.history(key("broken")) == []


def test_unknown_run_ids_and_non_benchmark_runs_are_one_line_errors(registry: BaselineRegistry,
                                                                      store: MlflowStore) -> None:
    with pytest.raises(TrackingError) as caught:
        registry.key_of("0" * 32)
    assert_one_line(caught.value, "unknown run id", "0" * 32)
    with pytest.raises(TrackingError) as caught:
        registry.promote("no-such-run", "x")
    assert_one_line(caught.value, "unknown run id", "no-such-run")

    child = log_one(store, T0)
    parent = store.client.get_run(child).data.tags["mlflow.parentRunId"]
    with pytest.raises(TrackingError) as caught:
        registry.promote(parent, "the invocation, not a benchmark")
    assert_one_line(caught.value, parent, "not a benchtrack benchmark run")
    record = registry.promote(child, "ok")
    with pytest.raises(TrackingError) as caught:
        registry.promote(record.record_id, "a record is not a benchmark run")
    assert_one_line(caught.value, "not a benchtrack benchmark run")


# Names with the characters the filter must survive; the last has a backslash and both quote kinds,
# which no MLflow literal can express: that condition is checked in Python instead.
AWKWARD_NAMES = ("sort[n=10,kind=a.b]", "parse[it's]", 'say["hi"]', "mixed['a\"b\\\\c']", "plain")


def test_current_for_resolves_every_benchmark_in_one_query(registry: BaselineRegistry, store: MlflowStore,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    old = log_invocation(store, T0, [make_bench(n) for n in AWKWARD_NAMES])
    new = log_invocation(store, T0 + 60, [make_bench(n, (2.0, 2.1)) for n in AWKWARD_NAMES[:-1]])
    other_branch = log_invocation(store, T0 + 90, [make_bench(n) for n in AWKWARD_NAMES], branch="feature/x")
    other_machine = log_invocation(store, T0 + 90, [make_bench(n) for n in AWKWARD_NAMES], fingerprint="ffffffffffffffff")
    for ids in (new, old, other_branch, other_machine):
        for run_id in ids.values():
            registry.promote(run_id, "setup")
    assert quote_value(AWKWARD_NAMES[3]) is None

    searches: list[str] = []
    real_search = store.client.search_runs

    def counting_search(*args: Any, **kwargs: Any) -> Any:
        searches.append(args[1])
        return real_search(*args, **kwargs)

    monkeypatch.setattr(store.client, "search_runs", counting_search)
    current = BaselineRegistry(store).current_for(SUITE, BRANCH, FINGERPRINT)
    assert len(searches) == 1, searches
    assert searches[0] == promotion_filter({"benchtrack.suite": SUITE, "benchtrack.git.branch": BRANCH,
                                            "benchtrack.machine.fingerprint": FINGERPRINT})

    assert sorted(current) == sorted(AWKWARD_NAMES)
    expected = {**old, **new}
    assert {name: record.run_id for name, record in current.items()} == expected
    for name in AWKWARD_NAMES:  # current() filters on the benchmark too, quoted or in Python
        assert registry.current(key(name)) == current[name]
        assert [r.run_id for r in registry.history(key(name, branch="feature/x"))] == [other_branch[name]]
    assert registry.current_for(SUITE, "feature/x", FINGERPRINT)["plain"].run_id == other_branch["plain"]
    assert registry.current_for(SUITE, "nope", FINGERPRINT) == {}
    assert registry.current_for("other-suite", BRANCH, FINGERPRINT) == {}


def test_reads_create_nothing_before_the_first_promotion(registry: BaselineRegistry, store: MlflowStore) -> None:
    assert registry.current_for(SUITE, BRANCH, FINGERPRINT) == {}
    assert registry.current(key()) is None
    assert store.client.get_experiment_by_name(BASELINE_EXPERIMENT) is None


def test_a_locked_write_is_retried_without_duplicating_the_record(registry: BaselineRegistry, store: MlflowStore,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    run_id = log_one(store, T0)
    monkeypatch.setattr(baselines, "RETRY_DELAYS_S", (0.0, 0.0, 0.0))
    real_create = store.client.create_run
    calls: list[str] = []

    def commits_then_reports_locked(*args: Any, **kwargs: Any) -> Any:
        calls.append("create")
        real_create(*args, **kwargs)
        raise RuntimeError("(sqlite3.OperationalError) database is locked")

    monkeypatch.setattr(store.client, "create_run", commits_then_reports_locked)
    record = registry.promote(run_id, "retried")
    assert calls == ["create"]  # the retry found the committed record by its nonce
    assert registry.history(key()) == [record]
    assert store.client.get_run(record.record_id).info.status == "FINISHED"

    def always_locked(*args: Any, **kwargs: Any) -> Any:
        calls.append("locked")
        raise RuntimeError("database is locked")

    monkeypatch.setattr(store.client, "create_run", always_locked)
    with pytest.raises(TrackingError) as caught:
        registry.promote(run_id, "never lands")
    assert_one_line(caught.value, "locked", "4 attempts")
    assert calls.count("locked") == 4
    assert registry.history(key()) == [record]


# --- racing promoters in separate processes ----------------------------------------------------


def _race_worker(uri: str, run_id: str, key_fields: tuple[str, str, str, str], start: Any, done: Any,
                 results: Any) -> None:
    """One CI job: open the store, wait for the others, promote at once, then resolve."""
    try:
        registry = BaselineRegistry(MlflowStore(uri))
        start.wait(timeout=120)
        began = time.time()
        record = registry.promote(run_id, f"race {run_id}")
        ended = time.time()
        done.wait(timeout=120)
        the_key = BaselineKey(*key_fields)
        current = registry.current(the_key)
        history = registry.history(the_key)
        assert current is not None
        results.put({"run_id": run_id, "record_id": record.record_id, "current": current.record_id,
                     "history": [r.record_id for r in history], "began": began, "ended": ended})
    except Exception as exc:  # noqa: BLE001 - a racer reports any failure to the parent
        start.abort()
        done.abort()
        results.put({"run_id": run_id, "error": f"{type(exc).__name__}: {exc}"})


@pytest.mark.slow
def test_seven_racing_promotions_all_land_and_everyone_agrees(store: MlflowStore, store_uri: str) -> None:
    # Five runs measured a minute apart, and two measured at the same moment as the newest: the
    # rule predicts one of those two, decided by recording time and then record id.
    starts = [T0 + 60 * i for i in range(RACERS - 2)] + [T0 + 60 * (RACERS - 3)] * 2
    run_ids = [log_one(store, started_at) for started_at in starts]
    newest = set(run_ids[RACERS - 3:])
    the_key = key()

    # Each racer is its own fresh process with its own connections. Spawning 7 interpreters that
    # each import mlflow (~3.5 s of CPU apiece) took ~100 s on a loaded 2-core machine, so the
    # racers come from a forkserver: a clean interpreter that imports mlflow once, opens nothing,
    # and forks each racer; every racer then opens the store itself, as a CI job would.
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__, "benchtrack.tracking.baselines", "mlflow.tracking",
                                    "mlflow.store.tracking.sqlalchemy_store"])
    start, done = context.Barrier(RACERS), context.Barrier(RACERS)
    results = context.Queue()
    workers = [context.Process(target=_race_worker, args=(store_uri, run_id, tuple(vars(the_key).values()), start,
                                                          done, results))
               for run_id in run_ids]
    for worker in workers:
        worker.start()
    reports = []
    try:
        for _ in workers:
            reports.append(results.get(timeout=180))
    except queue.Empty:
        pytest.fail(f"only {len(reports)} of {RACERS} racers reported: {reports}")
    finally:
        for worker in workers:
            worker.join(timeout=60)
            if worker.is_alive():
                worker.kill()
    errors = [r for r in reports if "error" in r]
    assert not errors, errors

    # None lost: exactly one record per racer, read straight from MLflow.
    client = store.client
    experiment = client.get_experiment_by_name(BASELINE_EXPERIMENT)
    raw = client.search_runs([experiment.experiment_id], "tags.`benchtrack.type` = 'promotion'", max_results=100)
    assert len(raw) == RACERS
    assert sorted(r.data.tags["benchtrack.promotion.run"] for r in raw) == sorted(run_ids)
    assert sorted(r.info.run_id for r in raw) == sorted(r["record_id"] for r in reports)

    # The rule, applied by hand to the raw MLflow rows, predicts the winner...
    predicted = max(raw, key=lambda r: (int(r.data.tags["benchtrack.promotion.source_start_ms"]), r.info.start_time,
                                        r.info.run_id))
    assert predicted.data.tags["benchtrack.promotion.run"] in newest
    # ...and every racer and the parent resolved exactly that one, with the same history.
    parent_view = BaselineRegistry(MlflowStore(store_uri))
    current = parent_view.current(the_key)
    assert current is not None
    assert {r["current"] for r in reports} == {predicted.info.run_id} == {current.record_id}
    parent_history = [r.record_id for r in parent_view.history(the_key)]
    assert all(r["history"] == parent_history for r in reports)
    spread = max(r["began"] for r in reports) - min(r["began"] for r in reports)
    print(f"\n{RACERS} racers: promote calls began within {spread * 1000:.0f} ms, took "
          f"{max(r['ended'] - r['began'] for r in reports) * 1000:.0f} ms at most; {len(raw)} records kept; "
          f"all resolved {current.run_id}")


# --- snapshots -------------------------------------------------------------------------------


def test_export_and_load_round_trip_the_artifact_samples(registry: BaselineRegistry, store: MlflowStore,
                                                         tmp_path: Path) -> None:
    old = log_invocation(store, T0, [make_bench(n, (1.0, 1.5)) for n in AWKWARD_NAMES])
    new = log_invocation(store, T0 + 60, [make_bench("plain", (0.125, 0.25, 0.375))])
    for run_id in [*old.values(), *new.values()]:
        registry.promote(run_id, f"promote {run_id}")

    path = export_snapshot(registry, SUITE, BRANCH, FINGERPRINT, tmp_path / "out", exported_at=T0 + 100)
    assert path == snapshot_path(tmp_path / "out", SUITE, BRANCH, FINGERPRINT)
    assert path.parent == tmp_path / "out" / "baselines"
    snapshot = load_snapshot(path)
    assert (snapshot.suite, snapshot.branch, snapshot.fingerprint, snapshot.exported_at) == (
        SUITE, BRANCH, FINGERPRINT, T0 + 100)
    assert [e.benchmark for e in snapshot.entries] == sorted(AWKWARD_NAMES)
    expected_runs = {**old, **new}
    for entry in snapshot.entries:
        assert entry.run_id == expected_runs[entry.benchmark]
        assert entry.result == store.load_benchmark_result(entry.run_id)
        assert entry.promoted_reason == f"promote {entry.run_id}"
        assert entry.commit == store.client.get_run(entry.run_id).data.tags["mlflow.source.git.commit"]
    plain = snapshot.entry("plain")
    assert plain is not None
    assert plain.result.benchmarks[0].series("wall_s") == [0.125, 0.25, 0.375]

    again = export_snapshot(registry, SUITE, BRANCH, FINGERPRINT, tmp_path / "again", exported_at=T0 + 100)
    assert again.read_bytes() == path.read_bytes()  # stable: same baselines, same bytes

    empty = export_snapshot(registry, SUITE, "no-such-branch", FINGERPRINT, tmp_path / "out", exported_at=T0)
    assert load_snapshot(empty).entries == ()


def snapshot_of(*names: str, branch: str = BRANCH) -> BaselineSnapshot:
    entries = tuple(
        SnapshotEntry(benchmark=name, run_id=f"run-{name}", commit=None if name == "b" else "c0ffee",
                      promoted_reason="why", result=RunResult(SUITE, "quick", T0, T0 + 1, {"k": "v"}, (make_bench(name),)))
        for name in names
    )
    return BaselineSnapshot(SUITE, branch, FINGERPRINT, T0, entries)


def test_snapshot_files_are_stable_and_safely_named(tmp_path: Path) -> None:
    forward = write_snapshot(snapshot_of("b", "a[x='1']"), tmp_path / "one")
    backward = write_snapshot(snapshot_of("a[x='1']", "b"), tmp_path / "two")
    assert forward.read_bytes() == backward.read_bytes()
    assert load_snapshot(forward) == load_snapshot(backward)
    assert load_snapshot(forward).entry("a[x='1']") == snapshot_of("a[x='1']").entries[0]

    slashed = write_snapshot(snapshot_of("a", branch="feature/x"), tmp_path)
    underscored = write_snapshot(snapshot_of("a", branch="feature_x"), tmp_path)
    assert slashed.parent == underscored.parent == tmp_path / "baselines"
    assert slashed != underscored
    assert slashed.name.startswith(f"{SUITE}__feature_x__{FINGERPRINT}__")
    assert underscored.name == f"{SUITE}__feature_x__{FINGERPRINT}.json"
    assert snapshot_path(tmp_path, "..", "../..", "x").parent == tmp_path / "baselines"
    assert load_snapshot(slashed).branch == "feature/x"


def test_snapshot_module_does_not_import_mlflow() -> None:
    code = "import sys, benchtrack.baseline_snapshot; print('mlflow' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def _document(tmp_path: Path) -> dict[str, Any]:
    return json.loads(write_snapshot(snapshot_of("a", "b"), tmp_path).read_text(encoding="utf-8"))


@pytest.mark.parametrize(
    ("case", "fragment"),
    [
        ("missing file", "cannot read baseline snapshot"),
        ("a folder", "cannot read baseline snapshot"),
        ("truncated", "not valid JSON"),
        ("NaN sample", "not valid JSON"),
        ("wrong schema", f"not a {SNAPSHOT_SCHEMA} document"),
        ("result schema", "not a benchtrack.result/1 document"),
        ("missing key", "missing key 'suite'"),
        ("missing entry key", "missing key 'run_id'"),
        ("two benchmarks in an entry", "exactly that one benchmark"),
        ("a list", "not a benchtrack.baseline/1 document"),
    ],
)
def test_unreadable_snapshots_are_one_line_result_format_errors(tmp_path: Path, case: str, fragment: str) -> None:
    document = _document(tmp_path / "good")
    path = tmp_path / "bad.json"
    text: str | None = None
    if case == "missing file":
        pass
    elif case == "a folder":
        path.mkdir()
    elif case == "truncated":
        text = json.dumps(document)[:-40]
    elif case == "NaN sample":
        text = json.dumps(document).replace('"wall_s": 1.0', '"wall_s": NaN', 1)
        assert "NaN" in text
    elif case == "wrong schema":
        text = json.dumps({**document, "schema": "benchtrack.baseline/99"})
    elif case == "result schema":
        document["entries"][0]["result"]["schema"] = "other/1"
        text = json.dumps(document)
    elif case == "missing key":
        del document["suite"]
        text = json.dumps(document)
    elif case == "missing entry key":
        del document["entries"][1]["run_id"]
        text = json.dumps(document)
    elif case == "two benchmarks in an entry":
        first = document["entries"][0]["result"]["benchmarks"]
        first.append({**first[0], "name": "extra"})
        text = json.dumps(document)
    elif case == "a list":
        text = json.dumps([document])
    if text is not None:
        path.write_text(text, encoding="utf-8")
    with pytest.raises(ResultFormatError) as caught:
        load_snapshot(path)
    assert_one_line(caught.value, str(path), fragment)


def test_writing_a_non_finite_value_is_refused(tmp_path: Path) -> None:
    snapshot = snapshot_of("a")
    entry = replace(snapshot.entries[0], result=replace(snapshot.entries[0].result,
                                                          benchmarks=(make_bench("a", (1.0, math.nan)),)))
    with pytest.raises(ResultFormatError) as caught:
        write_snapshot(replace(snapshot, entries=(entry,)), tmp_path)
    assert_one_line(caught.value, "cannot write the baseline snapshot")
    assert not (tmp_path / "baselines").exists() or not any((tmp_path / "baselines").iterdir())
    with pytest.raises(ResultFormatError):
        write_snapshot(replace(snapshot, exported_at=math.inf), tmp_path)
