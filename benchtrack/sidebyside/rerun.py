"""`benchtrack compare A B --rerun` as a library call: check both commits out, measure them
interleaved, judge the pairs, log both sides to MLflow as runs of their commits, tagged as one
comparison. The CLI only parses options and prints."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from benchtrack import results as r
from benchtrack.analysis.compare import spec_for
from benchtrack.analysis.paired import looks
from benchtrack.config import Config, Level
from benchtrack.errors import UsageError
from benchtrack.probes.environment import collect_metadata
from benchtrack.results import BenchmarkResult
from benchtrack.runner.runner import Progress
from benchtrack.session import INVOCATION_KEY, RERUN_MODE_KEY, Session
from benchtrack.sidebyside.interleave import SIDES, Interleaved, InterleavedRunner, SidePlan, side_plan
from benchtrack.sidebyside.worktrees import Checkout, checkouts, repository_root
from benchtrack.verdicts.policy import Report
from benchtrack.verdicts.sidebyside import decided, judge_interleaved, paired_comparison

COMPARISON_TAG = "benchtrack.rerun.id"
SIDE_TAG = "benchtrack.rerun.side"
MODE_TAG = RERUN_MODE_KEY


@dataclass(frozen=True)
class SideBySide:
    measured: Interleaved
    report: Report
    labels: tuple[str, str]
    comparison_id: str
    parent_run_ids: tuple[str | None, str | None]
    tracking_error: str | None
    spool_path: Path | None
    file_errors: tuple[str, ...] = ()  # benchmark files of either side that failed to import

    @property
    def failed(self) -> list[str]:
        """Benchmarks that failed on either side (not judged)."""
        return sorted(name for name, why in self.measured.stopped.items() if why == "failed")


def compare_side_by_side(start: Path, baseline_ref: str, candidate_ref: str | None, folder: Path,
                         only: tuple[str, ...], config: Config, level: Level, open_store: Callable[[], Any] | None,
                         seed: int, on_progress: Callable[[Progress], None] = lambda _: None,
                         stop_early: bool = True) -> SideBySide:
    """``open_store`` is called once both checkouts are planned and before anything is measured:
    bad refs and folders leave no empty store behind, and an unreachable store is an input
    error before minutes of measuring, not after."""
    repo = repository_root(start)
    folder_in_repo = _relative_folder(start, folder, repo)
    comparison_id = uuid.uuid4().hex
    with checkouts(repo, [baseline_ref, candidate_ref]) as (base_checkout, cand_checkout):
        sides = (_plan(base_checkout, folder_in_repo, level, only, config),
                 _plan(cand_checkout, folder_in_repo, level, only, config))
        _check_selection(sides, only)
        mode = config.rerun.mode
        metadata = tuple(_metadata(side.checkout, name, comparison_id, mode) for side, name in zip(sides, SIDES, strict=True))
        try:
            runner = InterleavedRunner(sides, config.rerun, seed, on_progress, leak_thresholds=config.leak,
                                       instructions=lambda item: level.counts_instructions(item.name, item.instance.spec.name),
                                       duet=mode == "duet")
        except ValueError as exc:  # duet mode on one CPU
            raise UsageError(str(exc)) from None
        store = open_store() if open_store else None  # before measuring: an unreachable store is an input error
        tests = 2 * len({i.name for i in sides[0].plan.items} & {i.name for i in sides[1].plan.items})

        def settled(name: str, base: BenchmarkResult, cand: BenchmarkResult) -> bool:
            if not stop_early:
                return False
            thresholds = config.thresholds_for(level, name, cand.benchmark)[spec_for(r.WALL).family]
            return all(
                decided(paired_comparison(name, metric, base, cand, config.alpha, config.rerun.max_rounds, thresholds),
                        config.alpha, tests, config.rerun.resolution, thresholds)
                for metric in (r.WALL, r.CPU))

        measured = runner.run((metadata[0], metadata[1]), settled, looks(config.rerun.max_rounds))
    # logged (or spooled) before judging, so nothing measured is lost to an error in judging
    session = Session(store, {})
    outcomes, spool = session.log_measured([measured.baseline, measured.candidate], f"rerun-{comparison_id}")
    report = judge_interleaved(_by_name(measured.baseline.benchmarks), _by_name(measured.candidate.benchmarks),
                               config, level, config.rerun.max_rounds, seed, mode)
    names = [{i.name for i in side.plan.items} for side in sides]
    report = replace(report, only_in_baseline=tuple(sorted(names[0] - names[1])),
                     only_in_candidate=tuple(sorted(names[1] - names[0])))
    file_errors = tuple(f"{side.checkout.label}: {e.relative}: {e.message}" for side in sides for e in side.file_errors)
    return SideBySide(measured, report, (base_checkout.label, cand_checkout.label), comparison_id,
                      (outcomes[0].parent_run_id, outcomes[1].parent_run_id), session.tracking_error, spool, file_errors)


def _relative_folder(start: Path, folder: Path, repo: Path) -> Path:
    absolute = (start / folder).resolve()
    try:
        return absolute.relative_to(repo.resolve())
    except ValueError:
        raise UsageError(f"benchmark folder {folder} is not inside the repository {repo}") from None


def _plan(checkout: Checkout, folder: Path, level: Level, only: tuple[str, ...], config: Config) -> SidePlan:
    if not (checkout.root / folder).is_dir():
        raise UsageError(f"{checkout.label} has no benchmark folder {folder}")
    try:
        return side_plan(checkout, folder, level, only, config.rerun)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _check_selection(sides: tuple[SidePlan, SidePlan], only: tuple[str, ...]) -> None:
    names = [{item.name for item in side.plan.items} | {item.instance.spec.name for item in side.plan.items}
             for side in sides]
    for name in only:
        if name not in names[0] and name not in names[1]:
            raise UsageError(f"unknown benchmark {name!r} on both sides (see: benchtrack list)")
    if not {i.name for i in sides[0].plan.items} & {i.name for i in sides[1].plan.items}:
        raise UsageError("the two commits have no benchmark in common at this level")


def _metadata(checkout: Checkout, side: str, comparison_id: str, mode: str) -> Mapping[str, str]:
    found = collect_metadata(checkout.root)
    return {**found, INVOCATION_KEY: uuid.uuid4().hex, COMPARISON_TAG: comparison_id, SIDE_TAG: side, MODE_TAG: mode}


def _by_name(benchmarks: tuple[BenchmarkResult, ...]) -> dict[str, BenchmarkResult]:
    return {b.name: b for b in benchmarks}
