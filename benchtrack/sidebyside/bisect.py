"""`benchtrack bisect GOOD BAD --benchmark NAME`: the first commit at which NAME regressed,
narrowed like `git bisect` (asv's `asv find` is the anchor), each step an interleaved
side-by-side comparison of GOOD with the commit under test.

A step calls the commit *bad* when it is a significant regression against GOOD, *good* when
not; an inconclusive step is measured once more before it is taken by its point estimate
(nearer GOOD's level or BAD's); a commit whose benchmark fails to run is skipped, as `git bisect
skip` does, and its neighbour takes its place.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from benchtrack import results as r
from benchtrack.config import Config, Level
from benchtrack.errors import UsageError
from benchtrack.runner.runner import Progress
from benchtrack.sidebyside.rerun import SideBySide, compare_side_by_side
from benchtrack.sidebyside.worktrees import repository_root, resolve_commit


@dataclass(frozen=True)
class BisectStep:
    commit: str
    outcome: str  # "bad" | "good" | "skipped"
    verdict: str  # the wall-time verdict against GOOD ("" when skipped)
    change: float
    ci_low: float
    ci_high: float
    rounds: int
    remeasured: bool = False


@dataclass(frozen=True)
class BisectResult:
    good: str
    bad: str
    first_bad: str | None
    end_to_end: BisectStep
    steps: tuple[BisectStep, ...]
    message: str


Measure = Callable[[str, str, int], BisectStep]


def ancestry(repo: Path, good: str, bad: str) -> list[str]:
    """Commits after GOOD up to and including BAD on the path between them, oldest first."""
    done = subprocess.run(["git", "-C", str(repo), "rev-list", "--reverse", "--ancestry-path", f"{good}..{bad}"],
                          capture_output=True, text=True, check=False)
    commits = done.stdout.split()
    if done.returncode != 0 or not commits:
        raise UsageError(f"{bad} is not a descendant of {good}: nothing to bisect")
    return commits


def bisect_commits(good: str, commits: list[str], measure: Measure) -> tuple[str | None, BisectStep, list[BisectStep], str]:
    """The narrowing itself, over ``commits`` (oldest first, the last one BAD), with ``measure``
    comparing GOOD with a commit (pure control flow: tests drive it with recorded outcomes)."""
    end = measure(good, commits[-1], 1)
    if end.outcome == "undecided":
        end = replace(measure(good, commits[-1], 2), remeasured=True)
    if end.outcome != "bad":
        return None, end, [], (f"no regression between the ends: {commits[-1][:10]} is {end.change:+.1%} against GOOD "
                               f"({end.verdict}); nothing to bisect")
    candidates = list(commits)
    low, high = 0, len(candidates) - 1  # candidates[high] is known bad; every commit before low is good
    steps: list[BisectStep] = []
    while low < high:
        middle = (low + high) // 2
        step = measure(good, candidates[middle], 1)
        if step.outcome == "undecided":
            step = replace(_settle(measure(good, candidates[middle], 2), end), remeasured=True)
        steps.append(step)
        if step.outcome == "skipped":
            del candidates[middle]
            high -= 1
            continue
        if step.outcome == "bad":
            high = middle
        else:
            low = middle + 1
    first = candidates[high]
    return first, end, steps, f"first bad commit: {first[:10]}"


def _settle(step: BisectStep, end: BisectStep) -> BisectStep:
    """A step still undecided after a second measurement goes by its point estimate: bad when
    nearer the end-to-end change than no change at all."""
    if step.outcome != "undecided":
        return step
    return replace(step, outcome="bad" if step.change >= end.change / 2.0 else "good")


def bisect(start: Path, good_ref: str, bad_ref: str, benchmark: str, folder: Path, config: Config, level: Level,
           seed: int = 0, on_progress: Callable[[Progress], None] = lambda _: None) -> BisectResult:
    repo = repository_root(start)
    good, bad = resolve_commit(repo, good_ref), resolve_commit(repo, bad_ref)
    commits = ancestry(repo, good, bad)

    def measure(base: str, commit: str, attempt: int) -> BisectStep:
        rounds = config.rerun.max_rounds * attempt
        settings = replace(config, rerun=replace(config.rerun, max_rounds=rounds, budget_s=config.rerun.budget_s * attempt))
        try:
            # steps are not logged, and go by time (the level's instruction counts are not asked for)
            outcome = compare_side_by_side(start, base, commit, folder, (benchmark,), settings,
                                           replace(level, instructions=()), None, seed + attempt, on_progress)
        except UsageError:
            if commit == bad:
                raise  # the ends must run: a bad name or folder is an input error, not a skipped commit
            return BisectStep(commit, "skipped", "", 0.0, 0.0, 0.0, 0)
        return _step(commit, outcome)

    first, end, steps, message = bisect_commits(good, commits, measure)
    return BisectResult(good, bad, first, end, tuple(steps), message)


def _step(commit: str, outcome: SideBySide) -> BisectStep:
    wall = [c for c in outcome.report.comparisons if c.metric == r.WALL]
    if not wall:
        return BisectStep(commit, "skipped", "", 0.0, 0.0, 0.0, 0)
    c = wall[0]
    rounds = max(outcome.measured.rounds.values(), default=0)
    kind = {"regression": "bad", "improvement": "good", "unchanged": "good"}.get(c.verdict, "undecided")
    return BisectStep(commit, kind, c.verdict, c.change, c.ci_low, c.ci_high, rounds)
