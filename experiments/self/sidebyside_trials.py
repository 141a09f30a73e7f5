"""Comparing two commits on this machine, three ways, under this script's own load: false alarms
and detection of `compare --rerun` in interleaved rounds and in duet mode, of the stored-baseline
way (two separate `benchtrack run` invocations, compared as `compare` compares files, without
history), and of instruction counts.

A temporary git repository holds a copy of the noise suite (_noise_suite/bench_noise.py) whose
work comes from a committed work.json (100 units of work per call, so 102, 105 and 110 units are
exactly +2, +5 and +10%): a base commit, a commit of identical code, and commits in which half of
ten benchmarks do 2, 5 or 10% more work (the other half stay identical, so every comparison
also holds unchanged benchmarks). Each trial compares the base commit with each of them, every
way, on a quiet machine or while the script loads it (a CPU burner and a memory-bandwidth hog,
started before and killed after each comparison).

    python experiments/self/sidebyside_trials.py --trials 2 --out /tmp/sidebyside.json
    python experiments/self/sidebyside_trials.py --trials 1 --factors 1.10 --ways duet --conditions quiet  # a try

It prints one JSON document: per way, metric and condition, false alarms on identical code and
detection per factor, with counts, and the longest comparison in seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

HERE = Path(__file__).resolve().parent
NOISE_SUITE = HERE / "_noise_suite" / "bench_noise.py"
BENCHMARKS = ("alloc.dicts", "alloc.tree_cycles", "cpu.arith", "cpu.float_math", "cpu.json_roundtrip", "cpu.regex",
              "cpu.sha256", "cpu.sort_records", "io.tempfile_8kib", "tiny.method_call")
CHANGED = BENCHMARKS[::2]
UNITS = 100
FACTORS = (1.00, 1.02, 1.05, 1.10)
WAYS = ("interleaved", "duet", "stored")
CONDITIONS = ("quiet", "loaded")
LEVELS = """\
schema = "benchtrack.levels/1"

[levels.comprehensive]
processes = 10
samples = 5
warmups = 2
min_sample_time = 0.02
timeout = 600
fail_on = "major"

[rerun]
max_rounds = 64
budget_minutes = 10
"""
METRICS = ("wall_s", "cpu_s", "instructions")


@dataclass(frozen=True)
class Outcome:
    trial: int
    condition: str  # "quiet" | "loaded"
    way: str
    metric: str
    benchmark: str
    factor: float  # true factor of this benchmark's work
    verdict: str
    change: float
    seconds: float  # the whole comparison's
    rounds: int = 0  # side by side: rounds this benchmark took, and why it stopped
    stopped: str = ""


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", "-c", "user.email=t@t", "-c", "user.name=trials", "-c", "commit.gpgsign=false", *args],
                          cwd=repo, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def make_repository(root: Path, factors: Sequence[float]) -> dict[float, str]:
    """The repository and its commits: factor -> commit (1.00: identical code, a later commit)."""
    folder = root / "experiments"
    folder.mkdir(parents=True)
    shutil.copy(NOISE_SUITE, folder / "bench_noise.py")
    (folder / "levels.toml").write_text(LEVELS, encoding="utf-8")
    _git(root, "init", "-q", "-b", "main")
    commits = {0.0: _commit(root, {}, "base")}
    for factor in factors:
        (root / "NOTES").write_text(f"factor {factor}\n", encoding="utf-8")  # identical code still gets its own commit
        commits[factor] = _commit(root, {} if factor == 1.0 else dict.fromkeys(CHANGED, factor), f"work x{factor}")
    return commits


def _commit(root: Path, factors: dict[str, float], message: str) -> str:
    (root / "experiments" / "work.json").write_text(json.dumps({"units": UNITS, "factors": factors}), encoding="utf-8")
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", message)
    return _git(root, "rev-parse", "HEAD")


def compare(way: str, root: Path, base: str, cand: str, seed: int) -> tuple[list[object], float, dict[str, tuple[int, str]]]:
    """Comparisons of base against cand by one way, the seconds it took, and side by side each
    benchmark's rounds and why it stopped."""
    from benchtrack.config import ALL_BENCHMARKS, load_config

    config = load_config(root / "experiments" / "levels.toml")
    level = config.levels["comprehensive"]
    started = time.monotonic()
    rounds: dict[str, tuple[int, str]] = {}
    if way == "stored":
        found = _stored(root, base, cand, config, level)
    else:
        from benchtrack.sidebyside.rerun import compare_side_by_side

        mode = "duet" if way == "duet" else "interleaved"
        config = replace(config, rerun=replace(config.rerun, mode=mode))
        # instruction counts do not depend on the way: taken with the interleaved rounds only
        counted = replace(level, instructions=(ALL_BENCHMARKS,)) if way == "interleaved" else level
        outcome = compare_side_by_side(root, base, cand, Path("experiments"), BENCHMARKS, config, counted, None, seed)
        found = list(outcome.report.comparisons)
        rounds = {name: (count, outcome.measured.stopped.get(name, "")) for name, count in outcome.measured.rounds.items()}
    return found, time.monotonic() - started, rounds


def _stored(root: Path, base: str, cand: str, config: object, level: object) -> list[object]:
    """Two separate `benchtrack run` invocations, one per commit, compared as files."""
    from benchtrack.importers import load_any
    from benchtrack.sidebyside.worktrees import checkouts
    from benchtrack.verdicts import compare_results

    results = []
    with checkouts(root, [base, cand]) as trees, tempfile.TemporaryDirectory() as tmp:
        for index, tree in enumerate(trees):
            out = Path(tmp, f"side{index}.json")
            only = [arg for name in BENCHMARKS for arg in ("-b", name)]
            subprocess.run([sys.executable, "-m", "benchtrack", "run", str(tree.root / "experiments"), "--level",
                            "comprehensive", "--no-track", "--output", str(out), "--format", "json", *only],
                           cwd=tree.root, capture_output=True, check=False,
                           env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"})
            results.append({b.name: b for b in load_any(out)[0].benchmarks})
    report = compare_results(results[0], results[1], config, level, cpus=os.cpu_count() or 0)  # type: ignore[arg-type]
    return list(report.comparisons)


def trials(count: int, factors: Sequence[float], ways: Sequence[str], seed: int,
           conditions: Sequence[str] = CONDITIONS) -> Iterator[Outcome]:
    import make_noise_corpus

    with tempfile.TemporaryDirectory(prefix="benchtrack-trials-") as tmp:
        root = Path(tmp, "project")
        commits = make_repository(root, factors)
        for trial in range(count):
            for condition in conditions:
                for factor in factors:
                    for way in ways:
                        with make_noise_corpus.machine_load("none" if condition == "quiet" else "cpu+membw"):
                            found, seconds, rounds = compare(way, root, commits[0.0], commits[factor], seed + trial)
                        for c in found:
                            metric = getattr(c, "metric", "")
                            if metric not in METRICS:
                                continue
                            name = getattr(c, "benchmark", "")
                            true = factor if name in CHANGED else 1.0
                            outcome = Outcome(trial, condition, way, metric, name, true, c.verdict,  # type: ignore[attr-defined]
                                              c.change, seconds, *rounds.get(name, (0, "")))  # type: ignore[attr-defined]
                            print(json.dumps(asdict(outcome)), file=sys.stderr, flush=True)
                            yield outcome


def score(outcomes: Sequence[Outcome]) -> dict[str, float]:
    """Per way, metric and condition: false alarms (identical code called regression or
    improvement) and detection per factor (called regression), with their counts."""
    report: dict[str, float] = {}
    keys = sorted({(o.way, o.metric, o.condition) for o in outcomes})
    for way, metric, condition in keys:
        mine = [o for o in outcomes if (o.way, o.metric, o.condition) == (way, metric, condition)]
        label = f"{way}.{metric}.{condition}"
        null = [o for o in mine if o.factor == 1.0]
        report[f"{label}.null_comparisons"] = len(null)
        if null:  # a track metric must be finite: no figure rather than NaN
            report[f"{label}.false_alarms"] = _share(o.verdict in ("regression", "improvement") for o in null)
        for factor in sorted({o.factor for o in mine} - {1.0}):
            changed = [o for o in mine if o.factor == factor]
            percent = round((factor - 1) * 100)
            report[f"{label}.detect_{percent}pct"] = _share(o.verdict == "regression" for o in changed)
            report[f"{label}.miss_{percent}pct"] = 1.0 - report[f"{label}.detect_{percent}pct"]
            report[f"{label}.changed_{percent}pct"] = len(changed)
    for way in sorted({o.way for o in outcomes}):
        report[f"{way}.longest_comparison_s"] = max(o.seconds for o in outcomes if o.way == way)
    return report


def _share(flags: Iterator[bool] | object) -> float:
    values = list(flags)  # type: ignore[call-overload]
    return sum(values) / len(values)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=2)
    parser.add_argument("--factors", type=float, nargs="+", default=list(FACTORS))
    parser.add_argument("--ways", nargs="+", choices=WAYS, default=list(WAYS))
    parser.add_argument("--conditions", nargs="+", choices=CONDITIONS, default=list(CONDITIONS))
    parser.add_argument("--seed", type=int, default=20261202)
    parser.add_argument("--out", type=Path, help="also write every outcome here (JSON lines)")
    args = parser.parse_args()
    sys.path.insert(0, str(HERE))
    outcomes = list(trials(args.trials, args.factors, args.ways, args.seed, args.conditions))
    if args.out:
        args.out.write_text("".join(json.dumps(asdict(o)) + "\n" for o in outcomes), encoding="utf-8")
    print(json.dumps(score(outcomes), indent=1, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
