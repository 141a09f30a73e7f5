"""Baselines: one current baseline per (suite, benchmark, branch, machine fingerprint).

MLflow has no compare-and-set: "search, then tag the baseline" under racing CI jobs leaves
several runs tagged, and a single pointer (an experiment tag, a model alias) is last-writer-wins.
So a promotion never overwrites anything. Each one APPENDS a record, and the current baseline
is derived from all records by one deterministic rule that every reader applies identically.
Two jobs promoting at the same moment both leave their record; afterwards everyone agrees.

Records
    One MLflow run per promotion in the experiment ``benchtrack/_baselines``, status FINISHED,
    tagged ``benchtrack.type=promotion``, the key (``benchtrack.suite``, ``benchtrack.benchmark``,
    ``benchtrack.git.branch``, ``benchtrack.machine.fingerprint``: the same tag names the
    benchmark runs carry) and ``benchtrack.promotion.run`` (the promoted benchmark run),
    ``.source_start_ms``, ``.reason``, ``.commit`` and ``.nonce`` (makes a retried write
    idempotent). The record run's start time is ``recorded_ms``, its run id ``record_id``.

Resolution rule
    Take every active (not deleted) record of the key and order them by

        (source_start_ms, recorded_ms, record_id)   descending;

    the first is the current baseline. ``source_start_ms`` is when the promoted run was
    MEASURED: the start time of its parent invocation run (``RunResult.started_at``), or the
    benchmark run's own start time if it has no parent. (A child run's own start time is when it
    was logged, which for a spooled or imported result can be much later than the measurement.)
    ``recorded_ms`` is when the promotion was recorded, ``record_id`` the record's MLflow run id.
    So:
    - the newest measured run wins, even if its promotion was recorded a moment earlier than
      an older run's;
    - ties break on the recording time, then on the record id, identically for every reader;
    - promoting an older run again does not make it current while a newer-measured run has a
      record; to roll back, delete the newer record run(s) (``MlflowClient.delete_run``): deleted
      records are ignored and every reader falls back to the next one;
    - a record missing a tag or holding a malformed one is ignored (by every reader alike).

SQLite under several writers can answer "database is locked"; promote retries briefly with
backoff (bounded, then TrackingError), and reads retry the same way.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from benchtrack.baseline_snapshot import BaselineSnapshot, SnapshotEntry, write_snapshot
from benchtrack.errors import TrackingError
from benchtrack.tracking.store import EXPERIMENT_PREFIX, MAX_TAG_VALUE, MlflowStore

BASELINE_EXPERIMENT = "benchtrack/_baselines"
# The store names experiments EXPERIMENT_PREFIX + suite; it creates this one (race-safe) as a "suite".
BASELINE_SUITE = BASELINE_EXPERIMENT.removeprefix(EXPERIMENT_PREFIX)

TYPE_TAG = "benchtrack.type"
PROMOTION_TYPE = "promotion"
BENCHMARK_TYPE = "benchmark"
SUITE_TAG = "benchtrack.suite"
BENCHMARK_TAG = "benchtrack.benchmark"
BRANCH_TAG = "benchtrack.git.branch"
FINGERPRINT_TAG = "benchtrack.machine.fingerprint"
STATUS_TAG = "benchtrack.status"
COMMIT_TAG = "mlflow.source.git.commit"
PARENT_TAG = "mlflow.parentRunId"
RUN_TAG = "benchtrack.promotion.run"
SOURCE_START_TAG = "benchtrack.promotion.source_start_ms"
REASON_TAG = "benchtrack.promotion.reason"
RECORD_COMMIT_TAG = "benchtrack.promotion.commit"
NONCE_TAG = "benchtrack.promotion.nonce"

# Backoff between attempts when SQLite answers "database is locked" (MLflow already waits up to
# 20 s per statement through busy_timeout, so this covers the rare error that still escapes).
RETRY_DELAYS_S: tuple[float, ...] = (0.05, 0.1, 0.2, 0.4, 0.8, 1.6)
_LOCK_MESSAGES = ("database is locked", "database table is locked", "sqlite_busy")
_PAGE_SIZE = 1000

_T = TypeVar("_T")


@dataclass(frozen=True)
class BaselineKey:
    suite: str
    benchmark: str
    branch: str
    fingerprint: str


@dataclass(frozen=True)
class PromotionRecord:
    key: BaselineKey
    run_id: str
    source_start_ms: int
    recorded_ms: int
    record_id: str
    reason: str
    commit: str | None


def resolution_order(records: Iterable[PromotionRecord]) -> list[PromotionRecord]:
    """The resolution rule: (source_start_ms, recorded_ms, record_id) descending; first is current."""
    return sorted(records, key=lambda r: (r.source_start_ms, r.recorded_ms, r.record_id), reverse=True)


class BaselineRegistry:
    """Promotion records in the store, and the current baseline they resolve to."""

    def __init__(self, store: MlflowStore) -> None:
        self._store = store
        self._experiment_id: str | None = None

    @property
    def store(self) -> MlflowStore:
        return self._store

    # --- reading benchmark runs -------------------------------------------------------------

    def key_of(self, run_id: str) -> BaselineKey:
        """The baseline key of a benchmark child run, from its tags."""
        return _key_from_tags(run_id, self._get_run(run_id).data.tags)

    def _get_run(self, run_id: str) -> Any:
        client = self._store.client

        def get() -> Any:
            try:
                return client.get_run(run_id)
            except Exception as exc:
                if _is_locked(exc):
                    raise
                if _error_code(exc) == "RESOURCE_DOES_NOT_EXIST" or "not found" in str(exc).lower():
                    raise TrackingError(f"unknown run id {run_id!r} in the tracking store") from None
                raise TrackingError(f"cannot read run {run_id!r}: {_first_line(exc)}") from exc

        return _retry_on_lock(get, f"cannot read run {run_id!r}")

    def _source_start_ms(self, run: Any) -> int:
        parent_id = run.data.tags.get(PARENT_TAG)
        if parent_id:
            try:
                return int(self._get_run(parent_id).info.start_time)
            except TrackingError as exc:
                if "unknown run id" not in str(exc):
                    raise
        return int(run.info.start_time)

    # --- writing ------------------------------------------------------------------------------

    def promote(self, run_id: str, reason: str) -> PromotionRecord:
        """Append one promotion record for a successful benchmark run; returns it."""
        run = self._get_run(run_id)
        tags = run.data.tags
        key = _key_from_tags(run_id, tags)
        status = tags.get(STATUS_TAG)
        if status != "ok":
            raise TrackingError(f"run {run_id} is not a successful benchmark run (benchtrack.status={status}); "
                                "only successful runs can become baselines")
        if run.info.lifecycle_stage != "active" or run.info.status != "FINISHED":
            raise TrackingError(f"run {run_id} cannot become a baseline: it is {run.info.lifecycle_stage}, "
                                f"status {run.info.status}")
        source_start_ms = self._source_start_ms(run)
        commit = tags.get(COMMIT_TAG) or None
        nonce = uuid.uuid4().hex
        record_tags = {
            TYPE_TAG: PROMOTION_TYPE,
            SUITE_TAG: key.suite,
            BENCHMARK_TAG: key.benchmark,
            BRANCH_TAG: key.branch,
            FINGERPRINT_TAG: key.fingerprint,
            RUN_TAG: run_id,
            SOURCE_START_TAG: str(source_start_ms),
            REASON_TAG: reason[:MAX_TAG_VALUE],
            NONCE_TAG: nonce,
            **({RECORD_COMMIT_TAG: commit} if commit else {}),
        }
        created = self._create_record(record_tags, nonce, f"promote {key.benchmark}"[:250])
        record_id = str(created.info.run_id)
        client = self._store.client
        if created.info.status != "FINISHED":
            _retry_on_lock(lambda: client.set_terminated(record_id, "FINISHED"),
                           f"cannot finish promotion record {record_id}")
        record = _record_from_run(created)
        if record is None:  # cannot happen: we wrote every tag it needs
            raise TrackingError(f"promotion record {record_id} was written malformed")
        return record

    def _create_record(self, tags: dict[str, str], nonce: str, run_name: str) -> Any:
        """create_run, retried on "database is locked". A write may commit and still report an
        error, so before each retry look for our nonce: at most one record per promote call."""
        client = self._store.client
        what = f"cannot record the promotion of run {tags[RUN_TAG]}"
        attempts = len(RETRY_DELAYS_S) + 1
        for attempt in range(attempts):
            try:
                if attempt > 0:
                    existing = self._find_nonce(nonce)
                    if existing is not None:
                        return existing
                experiment_id = self._store.experiment_id(BASELINE_SUITE)
                self._experiment_id = experiment_id
                return client.create_run(experiment_id, start_time=int(time.time() * 1000), tags=tags,
                                         run_name=run_name)
            except Exception as exc:
                if not _is_locked(exc):
                    raise TrackingError(f"{what}: {_first_line(exc)}") from exc
                if attempt == attempts - 1:
                    raise TrackingError(f"{what}: the store stayed locked through {attempts} attempts") from exc
            time.sleep(RETRY_DELAYS_S[attempt] * random.uniform(0.5, 1.5))
        raise AssertionError("unreachable")

    def _find_nonce(self, nonce: str) -> Any:
        experiment_id = self._lookup_experiment()
        if experiment_id is None:
            return None
        found = self._store.client.search_runs(
            [experiment_id], f"tags.`{NONCE_TAG}` = '{nonce}'", max_results=1,
        )
        return found[0] if found else None

    # --- resolving ------------------------------------------------------------------------------

    def current(self, key: BaselineKey) -> PromotionRecord | None:
        records = self.history(key)
        return records[0] if records else None

    def history(self, key: BaselineKey) -> list[PromotionRecord]:
        """Every active record of key, in resolution order (current first)."""
        conditions = {SUITE_TAG: key.suite, BENCHMARK_TAG: key.benchmark, BRANCH_TAG: key.branch,
                      FINGERPRINT_TAG: key.fingerprint}
        return resolution_order(r for r in self._records(conditions) if r.key == key)

    def current_for(self, suite: str, branch: str, fingerprint: str) -> dict[str, PromotionRecord]:
        """Benchmark name -> current record, for every benchmark of the suite with a baseline on this
        branch and machine: one search (paginated), resolved here."""
        conditions = {SUITE_TAG: suite, BRANCH_TAG: branch, FINGERPRINT_TAG: fingerprint}
        grouped: dict[str, list[PromotionRecord]] = {}
        for record in self._records(conditions):
            key = record.key
            if (key.suite, key.branch, key.fingerprint) == (suite, branch, fingerprint):
                grouped.setdefault(key.benchmark, []).append(record)
        return {name: resolution_order(records)[0] for name, records in sorted(grouped.items())}

    def _lookup_experiment(self) -> str | None:
        """The records' experiment id, or None while nothing was ever promoted (reads create nothing)."""
        if self._experiment_id is None:
            client = self._store.client
            experiment = _retry_on_lock(lambda: client.get_experiment_by_name(BASELINE_EXPERIMENT),
                                        "cannot look up the baseline experiment")
            if experiment is None:
                return None
            self._experiment_id = str(experiment.experiment_id)
        return self._experiment_id

    def _records(self, conditions: dict[str, str]) -> list[PromotionRecord]:
        experiment_id = self._lookup_experiment()
        if experiment_id is None:
            return []
        filter_string = promotion_filter(conditions)
        records = []
        for run in self._search(experiment_id, filter_string):
            record = _record_from_run(run)
            if record is not None:
                records.append(record)
        return records

    def _search(self, experiment_id: str, filter_string: str) -> Iterator[Any]:
        client = self._store.client
        token: str | None = None
        while True:
            page_token = token

            def page(page_token: str | None = page_token) -> Any:
                return client.search_runs([experiment_id], filter_string, max_results=_PAGE_SIZE,
                                          page_token=page_token)

            runs = _retry_on_lock(page, "cannot search the promotion records")
            yield from runs
            token = runs.token
            if not token:
                return


def export_snapshot(registry: BaselineRegistry, suite: str, branch: str, fingerprint: str, folder: Path,
                    exported_at: float) -> Path:
    """Write the current baselines of (suite, branch, fingerprint) with their raw samples to a
    snapshot file (see benchtrack.baseline_snapshot); returns its path. No baselines: an empty one."""
    entries = []
    for name, record in registry.current_for(suite, branch, fingerprint).items():
        result = registry.store.load_benchmark_result(record.run_id)
        names = [b.name for b in result.benchmarks]
        if names != [name]:
            raise TrackingError(f"the samples of baseline run {record.run_id} hold {names!r}, expected [{name!r}]")
        entries.append(SnapshotEntry(benchmark=name, run_id=record.run_id, commit=record.commit,
                                     promoted_reason=record.reason, result=result))
    snapshot = BaselineSnapshot(suite=suite, branch=branch, fingerprint=fingerprint, exported_at=exported_at,
                                entries=tuple(entries))
    return write_snapshot(snapshot, folder)


# --- helpers ------------------------------------------------------------------------------------


def quote_value(value: str) -> str | None:
    """A quoted search-filter literal that MLflow reads back as exactly value, or None if there is
    none. MLflow only strips the outer quotes (no unescaping), and its tokenizer treats a backslash
    before a quote as an escape, so values with a backslash or with both quote kinds have no safe
    literal; callers then leave that condition out and compare in Python."""
    if "\\" in value:
        return None
    if "'" not in value:
        return f"'{value}'"
    if '"' not in value:
        return f'"{value}"'
    return None


def promotion_filter(conditions: dict[str, str]) -> str:
    """tags.`benchtrack.type` = 'promotion' AND each quotable tag condition. Readers always
    re-check every condition in Python, so an unquotable value only widens the search."""
    clauses = [f"tags.`{TYPE_TAG}` = '{PROMOTION_TYPE}'"]
    for tag, value in conditions.items():
        literal = quote_value(value)
        if literal is not None:
            clauses.append(f"tags.`{tag}` = {literal}")
    return " and ".join(clauses)


def _key_from_tags(run_id: str, tags: dict[str, str]) -> BaselineKey:
    kind = tags.get(TYPE_TAG)
    if kind != BENCHMARK_TYPE:
        raise TrackingError(f"run {run_id} is not a benchtrack benchmark run (benchtrack.type={kind})")
    missing = [tag for tag in (SUITE_TAG, BENCHMARK_TAG, BRANCH_TAG, FINGERPRINT_TAG) if not tags.get(tag)]
    if missing:
        raise TrackingError(f"benchmark run {run_id} lacks the tag(s) {', '.join(missing)}, so it has no baseline key")
    return BaselineKey(tags[SUITE_TAG], tags[BENCHMARK_TAG], tags[BRANCH_TAG], tags[FINGERPRINT_TAG])


def _record_from_run(run: Any) -> PromotionRecord | None:
    tags = run.data.tags
    try:
        if tags[TYPE_TAG] != PROMOTION_TYPE:
            return None
        key = BaselineKey(tags[SUITE_TAG], tags[BENCHMARK_TAG], tags[BRANCH_TAG], tags[FINGERPRINT_TAG])
        return PromotionRecord(
            key=key,
            run_id=tags[RUN_TAG],
            source_start_ms=int(tags[SOURCE_START_TAG]),
            recorded_ms=int(run.info.start_time),
            record_id=str(run.info.run_id),
            reason=tags.get(REASON_TAG, ""),
            commit=tags.get(RECORD_COMMIT_TAG) or None,
        )
    except (KeyError, TypeError, ValueError):
        return None


def _retry_on_lock(action: Callable[[], _T], what: str) -> _T:
    """Run an idempotent action, retrying with backoff while SQLite reports a lock."""
    attempts = len(RETRY_DELAYS_S) + 1
    for attempt in range(attempts):
        try:
            return action()
        except Exception as exc:
            last = attempt == attempts - 1
            if isinstance(exc, TrackingError) and (last or not _is_locked(exc)):
                raise
            if not _is_locked(exc):
                raise TrackingError(f"{what}: {_first_line(exc)}") from exc
            if last:
                raise TrackingError(f"{what}: the store stayed locked through {attempts} attempts") from exc
        time.sleep(RETRY_DELAYS_S[attempt] * random.uniform(0.5, 1.5))
    raise AssertionError("unreachable")


def _is_locked(exc: BaseException) -> bool:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        text = str(current).lower()
        if any(message in text for message in _LOCK_MESSAGES):
            return True
        current = current.__cause__ or current.__context__
    return False


def _error_code(exc: BaseException) -> str | None:
    code = getattr(exc, "error_code", None)
    return code if isinstance(code, str) else None


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return (lines[0] if lines else type(exc).__name__)[:300]
