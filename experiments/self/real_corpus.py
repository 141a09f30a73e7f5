"""Scoring verdicts on the real-run noise corpus (noise_corpus/, made by make_noise_corpus.py).

Pairs: a baseline invocation of identical code (factor 1.00 for every benchmark) against every
other invocation of the same tool, null or changed. Each benchmark of the candidate carries its
true factor (1.00, or 1.05 / 1.10 / 1.20 when it did that much more work), so one pair scores
false alarms and detection at once, as a real commit that slows a few benchmarks does.

benchtrack judges each pair of invocations as `benchtrack compare` does (the whole suite at
once: shift, suite noise, Benjamini-Hochberg), without history, and with every other quiet null
invocation as history. The anchors judge each benchmark by their own default rule.
"""

from __future__ import annotations

import gzip
import itertools
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from scipy import stats

from benchtrack.analysis.features import HistoryRun, history_metrics, loops_of
from benchtrack.config import Config, Level
from benchtrack.results import BenchmarkResult, RunResult, run_result_from_dict
from benchtrack.verdicts import compare_results

CORPUS = Path(__file__).resolve().parent / "noise_corpus"
LEVEL = Level("corpus", processes=10, samples=5, fail_on="none", promote=False)
FACTORS = (1.05, 1.10, 1.20)
METRICS = ("wall_s", "cpu_s")


@dataclass(frozen=True)
class Invocation:
    file: str
    tool: str
    condition: str
    load: str
    factors: dict[str, float]
    run: RunResult

    def factor(self, benchmark: str) -> float:
        return self.factors.get(benchmark, 1.0)

    @property
    def null(self) -> bool:
        return not self.factors

    def benchmarks(self) -> dict[str, BenchmarkResult]:
        return {b.name: b for b in self.run.benchmarks}


def load_corpus(folder: Path = CORPUS) -> list[Invocation]:
    index = json.loads((folder / "index.json").read_text(encoding="utf-8"))
    found = []
    for entry in index["entries"]:
        document = json.loads(gzip.decompress((folder / entry["file"]).read_bytes()))
        run = run_result_from_dict(document)
        # Tools name benchmarks differently (pytest-benchmark: test_noise[cpu.arith]); use the corpus names.
        renamed = tuple(_renamed(b) for b in run.benchmarks)
        metadata = {**run.metadata, "benchtrack.invocation": entry["file"], "benchtrack.cpu.count": "2"}
        found.append(Invocation(entry["file"], entry["tool"], _condition(entry), entry["load"],
                                {str(k): float(v) for k, v in entry["factors"].items()},
                                RunResult(run.suite, run.level, run.started_at, run.finished_at, metadata, renamed)))
    return found


QUIET_BUSY_CPUS = 1.3  # the tool's own CPU and a little; more means something else ran meanwhile


def _condition(entry: dict[str, object]) -> str:
    """Quiet only when nothing else ran: a run planned as quiet that measured the machine busier
    (other work on this shared machine while the corpus was made) counts as loaded."""
    if entry["condition"] == "quiet" and float(entry["busy_cpus"]) > QUIET_BUSY_CPUS:  # type: ignore[arg-type]
        return "loaded"
    return str(entry["condition"])


def _renamed(bench: BenchmarkResult) -> BenchmarkResult:
    name = bench.name
    if "[" in name and name.endswith("]"):
        name = name[name.index("[") + 1 : -1]
    return replace(bench, name=name, benchmark=name)


@dataclass(frozen=True)
class Outcome:
    """One benchmark and metric of one pair, as a rule judged it."""

    tool: str
    conditions: str  # "quiet" when both sides were quiet, else "loaded"
    benchmark: str
    metric: str
    factor: float
    verdict: str  # regression | improvement | unchanged | inconclusive
    severity: str
    history: bool


def pairs(invocations: list[Invocation], tool: str) -> Iterator[tuple[Invocation, Invocation]]:
    mine = [i for i in invocations if i.tool == tool]
    nulls = [i for i in mine if i.null]
    for base, cand in itertools.product(nulls, mine):
        if base.file == cand.file or (cand.null and cand.file < base.file):
            continue  # null-null pairs once each
        yield base, cand


def _conditions(base: Invocation, cand: Invocation) -> str:
    return "quiet" if base.condition == cand.condition == "quiet" else "loaded"


def history_of(invocations: list[Invocation], tool: str, exclude: set[str]) -> dict[str, list[HistoryRun]]:
    """Every other quiet null invocation of the tool, as the store would return it."""
    history: dict[str, list[HistoryRun]] = {}
    for inv in invocations:
        if inv.tool != tool or not inv.null or inv.condition != "quiet" or inv.file in exclude:
            continue
        for run in _history_runs(inv):
            history.setdefault(run.run_id.split(":", 1)[1], []).append(run)
    return history


_HISTORY_CACHE: dict[tuple[str, int], list[HistoryRun]] = {}


def _history_runs(inv: Invocation) -> list[HistoryRun]:
    """What the store would hold for each benchmark of one invocation (computed once)."""
    key = (inv.file, id(inv))
    if key not in _HISTORY_CACHE:
        _HISTORY_CACHE[key] = [HistoryRun(f"{inv.file}:{bench.name}", history_metrics(bench), bench.process_count,
                                          invocation=inv.file, level=inv.run.level, loops=loops_of(bench))
                               for bench in inv.run.benchmarks]
    return _HISTORY_CACHE[key]


def benchtrack_outcomes(invocations: list[Invocation], tool: str, with_history: bool) -> list[Outcome]:
    config = Config({LEVEL.name: LEVEL})
    outcomes = []
    for base, cand in pairs(invocations, tool):
        history = history_of(invocations, tool, {base.file, cand.file}) if with_history else {}
        report = compare_results(base.benchmarks(), cand.benchmarks(), config, LEVEL, history, cpus=2,
                                 candidate_level=cand.run.level)
        for c in report.comparisons:
            if c.metric in METRICS:
                outcomes.append(Outcome(tool, _conditions(base, cand), c.benchmark, c.metric, cand.factor(c.benchmark),
                                        c.verdict, c.severity, with_history))
    return outcomes


# -- the anchors, each with its tool's default decision rule -------------------------------------

def _values(bench: BenchmarkResult, metric: str) -> np.ndarray:
    return np.asarray(bench.series(metric), dtype=float)


def pyperf_rule(base: BenchmarkResult, cand: BenchmarkResult, metric: str) -> int:
    """pyperf compare_to: significant by a two-sample t-test (p < 0.05) -> the sign of the change."""
    a, b = _values(base, metric), _values(cand, metric)
    if stats.ttest_ind(b, a).pvalue >= 0.05:
        return 0
    return 1 if b.mean() > a.mean() else -1


def asv_rule(base: BenchmarkResult, cand: BenchmarkResult, metric: str) -> int:
    """asv compare: ratio of medians beyond --factor 1.1 and Mann-Whitney U significant."""
    a, b = _values(base, metric), _values(cand, metric)
    ratio = np.median(b) / np.median(a)
    if 1 / 1.1 <= ratio <= 1.1:
        return 0
    if stats.mannwhitneyu(b, a, alternative="two-sided").pvalue >= 0.05:
        return 0
    return 1 if ratio > 1 else -1


def pytest_benchmark_rule(base: BenchmarkResult, cand: BenchmarkResult, metric: str) -> int:
    """--benchmark-compare-fail=mean:5% (on the exact mean pytest-benchmark recorded, when kept)."""
    a, b = _mean(base, metric), _mean(cand, metric)
    if b > a * 1.05:
        return 1
    return -1 if a > b * 1.05 else 0


def _mean(bench: BenchmarkResult, metric: str) -> float:
    kept = bench.details.get("mean_s")
    return float(kept) if metric == "wall_s" and kept is not None else float(_values(bench, metric).mean())


ANCHORS: dict[str, Callable[[BenchmarkResult, BenchmarkResult, str], int]] = {
    "pyperf_ttest": pyperf_rule, "asv_factor_mwu": asv_rule, "pytest_benchmark_mean5": pytest_benchmark_rule,
}


def anchor_outcomes(invocations: list[Invocation], tool: str, name: str) -> list[Outcome]:
    rule = ANCHORS[name]
    outcomes = []
    for base, cand in pairs(invocations, tool):
        left, right = base.benchmarks(), cand.benchmarks()
        for bench in sorted(set(left) & set(right)):
            for metric in METRICS:
                if not left[bench].series(metric) or not right[bench].series(metric):
                    continue
                sign = rule(left[bench], right[bench], metric)
                verdict = {1: "regression", -1: "improvement", 0: "unchanged"}[sign]
                outcomes.append(Outcome(tool, _conditions(base, cand), bench, metric, cand.factor(bench), verdict,
                                        "none", False))
    return outcomes


def rates(outcomes: list[Outcome]) -> dict[str, float]:
    """False alarms (regression or improvement on identical code) and detection per factor."""
    result: dict[str, float] = {}
    nulls = [o for o in outcomes if o.factor == 1.0]
    result["false_alarms"] = _share(o.verdict in ("regression", "improvement") for o in nulls)
    result["null_pairs"] = float(len(nulls))
    for factor in FACTORS:
        changed = [o for o in outcomes if o.factor == factor]
        result[f"detect_{round((factor - 1) * 100)}pct"] = _share(o.verdict == "regression" for o in changed)
    result["critical_on_true_change_le_20pct"] = float(sum(o.severity == "critical" for o in outcomes))
    return result


def _share(flags: Iterator[bool] | object) -> float:
    values = list(flags)  # type: ignore[call-overload]
    return float(np.mean(values)) if values else float("nan")


def score(invocations: list[Invocation]) -> dict[str, float]:
    """Every figure of the acceptance: per tool's files, rule, metric and condition."""
    report: dict[str, float] = {}
    for tool in sorted({i.tool for i in invocations}):
        label = tool.replace("-", "_")
        sets = {
            "benchtrack": benchtrack_outcomes(invocations, tool, with_history=False),
            "benchtrack_history": benchtrack_outcomes(invocations, tool, with_history=True),
            **{name: anchor_outcomes(invocations, tool, name) for name in ANCHORS},
        }
        for rule_name, outcomes in sets.items():
            for metric in METRICS:
                for condition in ("quiet", "loaded", "all"):
                    chosen = [o for o in outcomes if o.metric == metric and condition in ("all", o.conditions)]
                    if not chosen:
                        continue
                    for key, value in rates(chosen).items():
                        report[f"{label}.{rule_name}.{metric}.{condition}.{key}"] = value
    return report


# -- which centre: the evidence ------------------------------------------------------------------

ESTIMATORS: dict[str, Callable[[np.ndarray], float]] = {
    "min": lambda v: float(np.min(v)),
    "q10": lambda v: float(np.quantile(v, 0.10)),
    "q25": lambda v: float(np.quantile(v, 0.25)),
    "median": lambda v: float(np.median(v)),
    "trimmed_mean": lambda v: float(stats.trim_mean(v, 0.2)),
    "mean": lambda v: float(np.mean(v)),
}


ACROSS: dict[str, Callable[[np.ndarray], float]] = {
    "mean": lambda v: float(np.mean(v)),
    "median": lambda v: float(np.median(v)),
    "min": lambda v: float(np.min(v)),
}


def _centre(bench: BenchmarkResult, metric: str, estimator: Callable[[np.ndarray], float],
            across: Callable[[np.ndarray], float] = ACROSS["mean"]) -> float | None:
    """A side's log centre: ``estimator`` over each process's samples, ``across`` the processes."""
    by_process: dict[int, list[float]] = {}
    for sample in bench.samples:
        if metric in sample.values and sample.values[metric] > 0:
            by_process.setdefault(sample.process, []).append(np.log(sample.values[metric]))
    if not by_process:
        return None
    return across(np.array([estimator(np.asarray(v)) for v in by_process.values()]))


def estimator_evidence(invocations: list[Invocation], tool: str = "benchtrack") -> dict[str, float]:
    """Per estimator and metric, on null invocations of identical code: the spread of a
    benchmark's centre from invocation to invocation (after each invocation's suite-wide shift
    is taken out; median and worst benchmark), and the +20% signal it keeps, as a ratio."""
    report: dict[str, float] = {}
    for condition in ("quiet", "loaded"):
        nulls = [i for i in invocations if i.tool == tool and i.null and i.condition == condition]
        changed = [i for i in invocations if i.tool == tool and i.condition == condition and 1.2 in i.factors.values()]
        if len(nulls) < 3:
            continue
        for metric, (name, estimator), (across_name, across) in itertools.product(
                METRICS, ESTIMATORS.items(), ACROSS.items()):
            table = {inv.file: {b.name: _centre(b, metric, estimator, across) for b in inv.run.benchmarks}
                     for inv in nulls}
            names = sorted(set.intersection(*({k for k, v in t.items() if v is not None} for t in table.values())))
            if not names:
                continue
            matrix = np.array([[table[f][n] for n in names] for f in table])  # invocations x benchmarks
            centred = matrix - np.median(matrix, axis=0)
            shifts = np.median(centred, axis=1, keepdims=True)
            spread = np.std(centred - shifts, axis=0, ddof=1)
            raw = np.std(centred, axis=0, ddof=1)
            key = f"estimators.{condition}.{metric}.{name}.{across_name}"
            report[f"{key}.noise_median"] = float(np.median(spread))
            report[f"{key}.noise_worst"] = float(np.max(spread))
            report[f"{key}.noise_without_shift_median"] = float(np.median(raw))
            signals = []
            for inv in changed:
                moved = {b.name: (_centre(b, metric, estimator, across) or 0.0)
                         - float(np.median(matrix[:, names.index(b.name)]))
                         for b in inv.run.benchmarks if b.name in names}
                shift = float(np.median([v for n, v in moved.items() if inv.factor(n) == 1.0]))
                signals += [v - shift for n, v in moved.items() if inv.factor(n) == 1.2]
            if signals:
                # the +20% of work as this centre sees it (log 1.2 = 0.182), after the invocation's shift
                report[f"{key}.signal_median"] = float(np.median(signals))
    return report


def noise_profile(invocations: list[Invocation], tool: str, condition: str) -> dict[str, float]:
    """The structure of the noise in null invocations, in log terms, for setting real and
    synthetic data side by side: how far whole invocations shift (SD over invocations of the
    median change of their benchmarks), how much each benchmark moves beyond that shift between
    invocations (median and 90th percentile over benchmarks of its SD), how far processes of one
    invocation disagree, how noisy samples are, and how often samples are descheduled."""
    nulls = [i for i in invocations if i.tool == tool and i.null and i.condition == condition]
    if len(nulls) < 3:
        return {}
    q25 = ESTIMATORS["q25"]
    names = sorted(set.intersection(*(set(i.benchmarks()) for i in nulls)))
    matrix = np.array([[_centre(i.benchmarks()[n], "cpu_s", q25) or 0.0 for n in names] for i in nulls])
    centred = matrix - np.median(matrix, axis=0)
    shifts = np.median(centred, axis=1)
    run_sd = np.std(centred - shifts[:, None], axis=0, ddof=1)
    process_sd, sample_cv, desched = [], [], []
    for inv in nulls:
        for bench in inv.run.benchmarks:
            by_process: dict[int, list[float]] = {}
            for sample in bench.samples:
                by_process.setdefault(sample.process, []).append(np.log(sample.values["cpu_s"]))
                desched.append(float(sample.values.get("ctx_involuntary", 0) >= 1
                                     and sample.values["wall_s"] > 1.05 * sample.values["cpu_s"]))
            centres = [q25(np.asarray(v)) for v in by_process.values()]
            if len(centres) >= 2:
                process_sd.append(float(np.std(centres, ddof=1)))
            sample_cv += [float(stats.median_abs_deviation(v, scale="normal")) for v in by_process.values()]
    return {
        "invocations": float(len(nulls)),
        "shift_sd": float(np.std(shifts, ddof=1)),
        "shift_max_abs": float(np.max(np.abs(shifts - np.median(shifts)))),
        "run_sd_median": float(np.median(run_sd)),
        "run_sd_p90": float(np.quantile(run_sd, 0.9)),
        "process_sd_median": float(np.median(process_sd)) if process_sd else float("nan"),
        "sample_sd_median": float(np.median(sample_cv)),
        "descheduled_share": float(np.mean(desched)),
    }
