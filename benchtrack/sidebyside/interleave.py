"""Measure two checkouts side by side: rounds of one worker process per side, in random order.

Each side runs its own benchmark files with its own code on the workers' PYTHONPATH; the loop
count is calibrated once, by the first process of the first round, and both sides reuse it, so
both time the same amount of work. Benchmarks take their rounds in turn (round 0 of every
benchmark, then round 1 in reverse order...), as `run` does with processes, so a slow spell of
the machine touches several benchmarks' rounds, and both sides of each. After each planned look
(analysis.paired.looks) a benchmark whose verdict is decided stops; every benchmark stops at the
maximum number of rounds or when the time budget is spent.

Duet mode (Bulej et al., "Duet Benchmarking", ICPE 2020): after the first round has calibrated
the loop count, the two sides of a round run at the same time, each pinned to its own CPU, the
CPUs swapped every round; interference that arrives then hits both at once, and the pairing
takes it out. Instruction counts, when asked for, are taken once the first round has timed
each benchmark (so the time budget covers them), with the same operations per counted part on
both sides.
"""

from __future__ import annotations

import contextlib
import os
import random
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from benchtrack.analysis.leaks import LeakThresholds
from benchtrack.config import Level, RerunSettings
from benchtrack.probes.instructions import loops_for
from benchtrack.results import BenchmarkResult, RunResult
from benchtrack.runner.runner import ItemState, Plan, PlanItem, Progress, Runner, make_plan, median_seconds, run_together
from benchtrack.sidebyside.worktrees import Checkout
from benchtrack.suite import FileError, discover

SIDES = ("baseline", "candidate")


@dataclass(frozen=True)
class SidePlan:
    checkout: Checkout
    plan: Plan
    environment: Mapping[str, str]
    file_errors: tuple[FileError, ...] = ()


@dataclass(frozen=True)
class Interleaved:
    """What was measured: one RunResult per side, and for each benchmark its rounds and why it stopped."""

    baseline: RunResult
    candidate: RunResult
    rounds: Mapping[str, int]
    stopped: Mapping[str, str]  # "decided" | "max rounds" | "time budget" | "failed"
    seed: int
    order: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # per benchmark, which side went first each round


@contextlib.contextmanager
def importable(paths: Sequence[Path]) -> Iterator[None]:
    """The checkout's code importable while its benchmark files are discovered in this
    process; modules imported meanwhile are forgotten afterwards, so the other checkout's
    discovery imports its own versions."""
    before = set(sys.modules)
    added = [str(p) for p in paths]
    sys.path[:0] = added
    try:
        yield
    finally:
        for entry in added:
            with contextlib.suppress(ValueError):
                sys.path.remove(entry)
        for name in set(sys.modules) - before:
            if name != "benchtrack" and not name.startswith("benchtrack."):  # benchtrack itself stays loaded
                del sys.modules[name]


def importable_from(checkout: Checkout, settings: RerunSettings) -> tuple[str, ...]:
    """The checkout's folders for the workers' PYTHONPATH: the levels file's [rerun] pythonpath,
    and by default the checkout's root and its src/ folder when there is one. Without src/ on the
    path, a src-layout project installed in editable mode imports the main work tree's code on
    both sides and the comparison silently measures one version against itself."""
    if settings.pythonpath is not None:
        return settings.pythonpath
    return ("src", ".") if (checkout.root / "src").is_dir() else (".",)


def side_plan(checkout: Checkout, folder: Path, level: Level, only: tuple[str, ...], settings: RerunSettings) -> SidePlan:
    """The checkout's suite under ``folder`` (relative to the repository root), planned at level."""
    paths = [checkout.root / entry for entry in importable_from(checkout, settings)]
    with importable(paths):
        discovery = discover(checkout.root / folder)
    plans = [p for p in (make_plan(suite, level, only) for suite in discovery.suites) if p.items]
    if len(plans) > 1:
        # one suite at a time: each side is logged as one run of its suite, and names repeat across suites
        raise ValueError(f"{folder} holds {len(plans)} suites ({', '.join(p.suite.name for p in plans)}): "
                         "--rerun measures one, name its folder with --folder")
    if not plans and (only and discovery.suites):  # names this side lacks: the selection check says which
        plans = [Plan(discovery.suites[0], level, ())]
    if not plans:
        raise ValueError(f"no benchmarks under {folder} in {checkout.label} at level {level.name}")
    items, suite = plans[0].items, plans[0].suite
    existing = os.environ.get("PYTHONPATH", "")
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([*map(str, paths), *([existing] if existing else [])])}
    return SidePlan(checkout, Plan(suite, level, items), environment, discovery.errors)


Decide = Callable[[str, BenchmarkResult, BenchmarkResult], bool]


def duet_cores() -> tuple[int, int]:
    """Two CPUs this process may run on, one per side of a duet."""
    if not hasattr(os, "sched_getaffinity"):
        raise ValueError("duet mode pins workers to CPUs, which this operating system does not allow")
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) < 2:
        raise ValueError(f"duet mode runs both sides at once on two CPUs; this process may use {len(allowed)}")
    return allowed[0], allowed[1]


class InterleavedRunner:
    def __init__(self, sides: tuple[SidePlan, SidePlan], settings: RerunSettings, seed: int,
                 on_progress: Callable[[Progress], None] = lambda _: None,
                 clock: Callable[[], float] = time.monotonic, peak_probe: str = "auto",
                 leak_thresholds: LeakThresholds | None = None,
                 instructions: Callable[[PlanItem], bool] = lambda _: False, duet: bool = False) -> None:
        self._sides = sides
        self._cores = duet_cores() if duet else None
        self._settings = settings
        self._seed = seed
        self._clock = clock
        self._runners = tuple(Runner(peak_probe=peak_probe, on_progress=on_progress, environment=s.environment,
                                     leak_thresholds=leak_thresholds, instructions=instructions) for s in sides)

    def run(self, metadata: tuple[Mapping[str, str], Mapping[str, str]], decide: Decide,
            looks: Sequence[int]) -> Interleaved:
        base_items = {item.name: item for item in self._sides[0].plan.items}
        cand_items = {item.name: item for item in self._sides[1].plan.items}
        names = [name for name in base_items if name in cand_items]
        states = {name: (ItemState(base_items[name]), ItemState(cand_items[name])) for name in names}
        rng = random.Random(self._seed)
        started, started_wall = self._clock(), time.time()
        rounds: dict[str, int] = dict.fromkeys(names, 0)
        stopped: dict[str, str] = {}
        order: dict[str, list[str]] = {name: [] for name in names}
        for index in range(self._settings.max_rounds):
            active = [n for n in (names if index % 2 == 0 else reversed(names)) if n not in stopped]
            if not active:
                break
            for name in active:
                if self._clock() - started > self._settings.budget_s:
                    break
                first = rng.randrange(2)
                order[name].append(SIDES[first])
                self._round(states[name], index, first)
                rounds[name] = index + 1
                if any(state.error for state in states[name]):
                    stopped[name] = "failed"
            if index == 0 and self._clock() - started <= self._settings.budget_s:
                # counted once the first round has timed each benchmark, inside the budget
                self._count_instructions_of([states[n] for n in names if n not in stopped])
            if self._clock() - started > self._settings.budget_s:
                for name in names:
                    stopped.setdefault(name, "time budget")
                break
            if index + 1 in looks:
                for name in active:
                    if name not in stopped and decide(name, *self._results(states[name])):
                        stopped[name] = "decided"
        for name in names:
            stopped.setdefault(name, "max rounds")
        finished = time.time()
        results = {name: self._results(states[name]) for name in names}
        sides = tuple(
            RunResult(suite=side.plan.suite.name, level=side.plan.level.name, started_at=started_wall,
                      finished_at=finished, metadata=dict(meta),
                      benchmarks=tuple(results[name][position] for name in names))
            for position, (side, meta) in enumerate(zip(self._sides, metadata, strict=True))
        )
        return Interleaved(sides[0], sides[1], rounds, stopped, self._seed,
                           {name: tuple(o) for name, o in order.items()})

    def _round(self, states: tuple[ItemState, ItemState], index: int, first: int) -> None:
        """One worker process per side, ``first`` side first; the loop count of the very first
        process is shared by both sides for every later one. In duet mode, once the loop count
        is known, both sides run at the same time, each pinned to its own CPU, the CPUs swapped
        every round, so both meet the same interference at the same moment."""
        loops = states[0].loops or states[1].loops
        if self._cores is not None and loops is not None:
            cores = self._cores if index % 2 == 0 else self._cores[::-1]
            launches = [self._runners[p].launch(states[p].item, index, loops, cpus=frozenset({cores[p]})) for p in (0, 1)]
            for state, reply in zip(states, run_together(launches), strict=True):
                state.add(reply)
            return
        for position in (first, 1 - first):
            state = states[position]
            reply = self._runners[position].spawn(state.item, index, states[0].loops or states[1].loops)
            state.add(reply)

    def _count_instructions_of(self, benchmarks: Sequence[tuple[ItemState, ItemState]]) -> None:
        for states in benchmarks:
            self._count_instructions(states)

    def _count_instructions(self, states: tuple[ItemState, ItemState]) -> None:
        """Both sides' instructions per operation, with the same operations per counted part."""
        if not all(runner.wants_instructions(state) for runner, state in zip(self._runners, states, strict=True)):
            return
        loops = loops_for(median_seconds(states[0].samples))
        for runner, state in zip(self._runners, states, strict=True):
            runner.add_instruction_counts(state, loops, process=self._settings.max_rounds)  # after every round

    def _results(self, states: tuple[ItemState, ItemState]) -> tuple[BenchmarkResult, BenchmarkResult]:
        return self._runners[0].result(states[0]), self._runners[1].result(states[1])
