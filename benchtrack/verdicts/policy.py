"""From two sets of benchmark results (plus history) to verdicts, anomalies and a pass/fail.

No mlflow and no typer here: the store is read by the caller, which hands in plain records.

The order of judging one pair of runs:
1. each benchmark and metric: both sides' centres and within-run spreads;
2. each metric over the suite: the suite-wide shift (taken out, and reported) and the spread of
   the other benchmarks' changes (one source of the noise between invocations);
3. each benchmark: the noise between invocations from its history (after change points, with
   earlier invocations' shifts taken out), an A/A calibration, the suite, or a prior;
4. Benjamini-Hochberg over every comparison of the run;
5. contention: a wall-time verdict that CPU time does not confirm, with a contended side, is
   no regression (nor improvement);
6. a slowdown left inconclusive is named with what would decide it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from benchtrack import results as r
from benchtrack.analysis.anomaly import AnomalyResult, detect_anomaly
from benchtrack.analysis.compare import (
    COMPARED_METRICS,
    MIN_HISTORY_RUNS,
    Comparison,
    ComparisonSettings,
    History,
    MetricSpec,
    PooledBaseline,
    RunNoise,
    Shift,
    Side,
    Thresholds,
    adjust_for_multiplicity,
    compare_metric,
    estimate_side,
    history_run_noise,
    pool_with_history,
    process_centres,
    spec_for,
    within_terms,
)
from benchtrack.analysis.contention import CONTENTION_SD, Contention
from benchtrack.analysis.features import HistoryRun, anomaly_features, contention, metric_side
from benchtrack.analysis.noise import (
    PairedChange,
    choose_run_noise,
    suite_offset,
    suite_run_noise,
    suite_shift,
    without_invocation_shifts,
)
from benchtrack.config import Config, Level
from benchtrack.errors import ResultFormatError
from benchtrack.results import BenchmarkResult
from benchtrack.verdicts.calibration import Calibration
from benchtrack.verdicts.history import usable_history

VERDICTS = ("regression", "improvement", "unchanged", "inconclusive")
SHIFT_REPORTED = 0.03  # a suite-wide shift is worth a line from 3% on


@dataclass(frozen=True)
class SuiteShift:
    metric: str
    change: float  # relative
    benchmarks: int
    moved_together: int

    @property
    def suite_wide(self) -> bool:
        return abs(self.change) >= SHIFT_REPORTED and self.moved_together * 3 >= self.benchmarks * 2

    @property
    def worth_a_line(self) -> bool:
        return abs(self.change) >= SHIFT_REPORTED

    def describe(self) -> str:
        if not self.suite_wide:
            return (f"{self.metric}: changes are judged against a shift of {self.change:+.1%} that the unchanged "
                    "benchmarks shared (the machine between the two runs)")
        return (f"suite-wide shift {self.change:+.1%} in {self.metric} ({self.moved_together} of {self.benchmarks} "
                "benchmarks moved together): as likely the machine as the code; each benchmark is judged "
                "against it, not against zero")


@dataclass(frozen=True)
class Report:
    comparisons: tuple[Comparison, ...]
    anomalies: Mapping[str, AnomalyResult] = field(default_factory=dict)
    only_in_baseline: tuple[str, ...] = ()
    only_in_candidate: tuple[str, ...] = ()
    skipped: Mapping[str, str] = field(default_factory=dict)  # benchmark -> why it was not compared
    contention: Mapping[str, tuple[Contention, Contention]] = field(default_factory=dict)  # (baseline, candidate)
    shifts: tuple[SuiteShift, ...] = ()
    # (benchmark, metric) -> per-process centres (baseline, candidate), natural units: for charts
    process_centres: Mapping[tuple[str, str], tuple[tuple[float, ...], tuple[float, ...]]] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        return {verdict: sum(1 for c in self.comparisons if c.verdict == verdict) for verdict in VERDICTS}

    def failing(self, level: Level) -> list[Comparison]:
        """Regressions whose severity reaches the level's fail_on, and, when the level says so,
        slowdowns left undecided whose point estimate reaches it."""
        failing = [c for c in self.comparisons if c.verdict == "regression" and level.fails(c.severity)]
        if level.fail_on_undecided:
            failing += [c for c in self.undecided(level) if c not in failing]
        return failing

    def undecided(self, level: Level) -> list[Comparison]:
        """Inconclusive slowdowns whose point estimate reaches the major threshold."""
        return [c for c in self.comparisons if c.undecided_slowdown and _point_severity(c, level) in ("major", "critical")]

    def improved(self, benchmark: str) -> bool:
        mine = [c for c in self.comparisons if c.benchmark == benchmark]
        primary = [c for c in mine if c.metric == r.WALL]
        return bool(primary) and primary[0].verdict == "improvement" and not any(c.verdict == "regression" for c in mine)

    def regressed(self, benchmark: str) -> bool:
        return any(c.verdict == "regression" for c in self.comparisons if c.benchmark == benchmark)

    def contended(self, benchmark: str) -> bool:
        sides = self.contention.get(benchmark)
        return bool(sides and (sides[0].contended or sides[1].contended))


def _point_severity(c: Comparison, level: Level) -> str:
    thresholds = level.thresholds.get(spec_for(c.metric).family)
    if thresholds is None:
        return "none"
    return thresholds.severity(c.absolute_change if thresholds.scale == "absolute" else c.change)


@dataclass(frozen=True)
class _Pending:
    name: str
    spec: MetricSpec
    base: Side
    cand: Side
    history: History
    settings: ComparisonSettings


def compare_results(
    baseline: Mapping[str, BenchmarkResult],
    candidate: Mapping[str, BenchmarkResult],
    config: Config,
    level: Level,
    history: Mapping[str, Sequence[HistoryRun]] | None = None,
    seed: int = 0,
    calibration: Calibration | None = None,
    cpus: int = 0,
    candidate_level: str = "",
) -> Report:
    """Compare every benchmark present on both sides, with false-discovery control over all of
    them. ``history`` is as the store returns it; it is filtered here (comparable settings,
    after the last change point). ``cpus``: the machine's CPU count, for the contention rule;
    ``candidate_level``: the level the candidate was measured at (history of other levels is
    not comparable)."""
    history = history or {}
    skipped: dict[str, str] = {}
    anomalies: dict[str, AnomalyResult] = {}
    pending: list[_Pending] = []
    contended: dict[str, tuple[Contention, Contention]] = {}
    usable: dict[str, list[HistoryRun]] = {}
    common = sorted(set(baseline) & set(candidate))
    for name in common:
        base, cand = baseline[name], candidate[name]
        reason = _not_comparable(base, cand)
        if reason:
            skipped[name] = reason
            continue
        settings = ComparisonSettings(alpha=config.alpha, thresholds=config.thresholds_for(level, name, cand.benchmark))
        usable[name] = usable_history(history.get(name, ()), cand, candidate_level)
        contended[name] = (contention(base, cpus), contention(cand, cpus))
        pending.extend(_pending_metrics(name, base, cand, settings, usable[name]))
    for name in sorted(set(candidate) - set(baseline)):
        # No baseline yet, but history may exist: a first baseline must not be an anomalous run.
        if candidate[name].ok and candidate[name].samples and history.get(name):
            anomalies[name] = _anomaly(candidate[name], history[name], seed)
    raw, shifts = _compare_pending(pending, calibration, contended)  # raises on bad input before anything else
    for name, runs in usable.items():
        anomalies[name] = _anomaly(candidate[name], runs, seed)

    def thresholds_for(comparison: Comparison) -> Mapping[str, Thresholds]:
        bench = candidate[comparison.benchmark]
        return config.thresholds_for(level, bench.name, bench.benchmark)

    adjusted = adjust_for_multiplicity(raw, ComparisonSettings(alpha=config.alpha), thresholds_for)
    judged = [_explain_undecided(c) for c in _apply_contention(adjusted, contended)]
    return Report(
        comparisons=tuple(judged),
        anomalies=anomalies,
        only_in_baseline=tuple(sorted(set(baseline) - set(candidate))),
        only_in_candidate=tuple(sorted(set(candidate) - set(baseline))),
        skipped=skipped,
        contention=contended,
        shifts=tuple(shifts),
        process_centres={(p.name, p.spec.name): (_centres(p.base, p.spec), _centres(p.cand, p.spec)) for p in pending},
    )


def _centres(side: Side, spec: MetricSpec) -> tuple[float, ...]:
    return tuple(float(v) for v in process_centres(side, log_scale=False, centre=spec.centre))


def _not_comparable(base: BenchmarkResult, cand: BenchmarkResult) -> str | None:
    if not base.ok or not cand.ok:
        return "failed on one side"
    if cand.kind == "track" or base.kind == "track":
        return "track benchmarks report their own metrics (no direction to judge)"
    if not base.samples or not cand.samples:
        return "no samples on one side"
    return None


def _pending_metrics(name: str, base: BenchmarkResult, cand: BenchmarkResult, settings: ComparisonSettings,
                     runs: Sequence[HistoryRun]) -> list[_Pending]:
    pending = []
    for spec in COMPARED_METRICS:
        base_side, cand_side = metric_side(base, spec.name), metric_side(cand, spec.name)
        if base_side is None or cand_side is None:
            continue
        past = tuple(s for s in (run.statistics(spec.name) for run in runs) if s is not None)
        pending.append(_Pending(name, spec, base_side, cand_side, History(past), settings))
    return pending


def _compare_pending(pending: Sequence[_Pending], calibration: Calibration | None,
                     contended: Mapping[str, tuple[Contention, Contention]]) -> tuple[list[Comparison], list[SuiteShift]]:
    comparisons: list[Comparison] = []
    shifts: list[SuiteShift] = []
    for spec in COMPARED_METRICS:
        mine = [p for p in pending if p.spec.name == spec.name]
        if not mine:
            continue
        histories = without_invocation_shifts({p.name: p.history for p in mine})
        known = {p.name: history_run_noise(histories[p.name], spec.centre) or (calibration.run_noise(p.name, spec.name)
                                                                  if calibration else None) for p in mine}
        try:
            # only times move with the machine: a suite-wide shift of instruction counts is the code
            shared = spec.log_scale and spec.family == "time"
            pooled = _pooled_baselines(mine, histories, known) if shared else {}
            changes = [_paired_change(p, pooled.get(p.name)) for p in mine] if shared else []
        except ValueError as exc:
            raise ResultFormatError(str(exc)) from None
        shift = suite_shift([c for c in changes if c is not None])
        suite_noise = suite_run_noise([c for c in changes if c is not None], shift) if shift else None
        if shift is not None:
            shifts.append(SuiteShift(spec.name, math.expm1(shift.log_shift), shift.benchmarks, shift.moved_together))
        for p in mine:
            noise = choose_run_noise(known[p.name], suite_noise)
            comparisons.append(_compare(p, histories[p.name], noise, shift, contended.get(p.name), pooled.get(p.name)))
    return comparisons, shifts


def _pooled_baselines(mine: Sequence[_Pending], histories: Mapping[str, History],
                      known: Mapping[str, RunNoise | None]) -> dict[str, PooledBaseline]:
    """Each baseline centre pooled with its history, where the history measured the noise and
    agrees with the baseline (compare.pool_with_history)."""
    positive = [p for p in mine if min(p.base.values) > 0 and p.spec.centre == "fastest-process"]
    centres = {p.name: estimate_side(p.base, p.spec, log_scale=True).centre for p in positive}
    found = suite_offset(centres, histories)
    if found is None:
        return {}
    offset, offset_variance = found
    pooled = {}
    for p in positive:
        noise = known.get(p.name)
        one = pool_with_history(centres[p.name], histories[p.name], offset, noise, offset_variance) if noise else None
        if one is not None:
            pooled[p.name] = one
    return pooled


def _paired_change(p: _Pending, pooled: PooledBaseline | None) -> PairedChange | None:
    if min(*p.base.values, *p.cand.values) <= 0:
        return None
    base = estimate_side(p.base, p.spec, log_scale=True)
    cand = estimate_side(p.cand, p.spec, log_scale=True)
    terms, _ = within_terms(base, cand, p.history, p.spec.centre)
    base_centre = pooled.centre if pooled is not None else base.centre
    return PairedChange(p.name, cand.centre - base_centre, sum(t.variance for t in terms),
                        single_process=min(base.processes, cand.processes) < 2)


def _compare(p: _Pending, history: History, noise: RunNoise | None, shift: Shift | None,
             sides: tuple[Contention, Contention] | None, pooled: PooledBaseline | None) -> Comparison:
    contended = sum(side.contended for side in sides) if sides else 0
    extra = contended * CONTENTION_SD**2 if p.spec.family == "time" else 0.0
    try:
        return compare_metric(p.name, p.spec, p.base, p.cand, p.settings, history, noise, shift, extra, pooled)
    except ValueError as exc:
        raise ResultFormatError(str(exc)) from None


def _apply_contention(comparisons: Sequence[Comparison],
                      contended: Mapping[str, tuple[Contention, Contention]]) -> list[Comparison]:
    """A wall-time verdict on a contended pair stands only when CPU time says the same."""
    cpu = {c.benchmark: c for c in comparisons if c.metric == r.CPU}
    result = []
    for c in comparisons:
        sides = contended.get(c.benchmark)
        if c.metric != r.WALL or not sides or not (sides[0].contended or sides[1].contended):
            result.append(c)
            continue
        which = " and ".join(label for label, side in zip(("baseline", "candidate"), sides, strict=True) if side.contended)
        reasons = "; ".join(side.reason for side in sides if side.contended)
        confirm = cpu.get(c.benchmark)
        note = f"measured under contention ({which}: {reasons})"
        if c.verdict in ("regression", "improvement") and (confirm is None or confirm.verdict != c.verdict):
            cpu_text = f"CPU time {confirm.change:+.1%}" if confirm else "no CPU time to confirm it"
            note = (f"wall time {c.change:+.1%} under contention ({which}: {reasons}), {cpu_text}: "
                    "not judged from wall time")
            result.append(replace(c, verdict="inconclusive", severity="none", notes=(*c.notes, note)))
        else:
            result.append(replace(c, notes=(*c.notes, note)))
    return result


def _explain_undecided(c: Comparison) -> Comparison:
    """A slowdown the data could not decide is named, with what would decide it."""
    if not c.undecided_slowdown or c.change < 0.05:
        return c
    if any("under contention" in note for note in c.notes):
        remedy = "it was measured under contention: a run on a quiet machine would decide it"
    elif c.run_noise_share >= 0.5:
        remedy = ("noise between invocations dominates: more runs of history on this machine, an A/A calibration, "
                  "or measuring both commits side by side would decide it")
    else:
        remedy = "the spread inside the run dominates: more worker processes (--processes) would decide it"
    note = f"undecided: point estimate {c.change:+.1%}, interval [{c.ci_low:+.1%}, {c.ci_high:+.1%}]; {remedy}"
    return replace(c, notes=(*c.notes, note))


def _anomaly(cand: BenchmarkResult, runs: Sequence[HistoryRun], seed: int) -> AnomalyResult:
    current = anomaly_features(cand)
    # Seven runs before judging: with fewer, a robust z over the features false-alarms ~4%.
    return detect_anomaly([run.features() for run in runs], current, seed=seed, min_history_z=7)


@dataclass(frozen=True)
class PromotionDecision:
    promote: bool
    reason: str


def promotion_decision(level: Level, config: Config, metadata: Mapping[str, str], bench: BenchmarkResult,
                       has_baseline: bool, report: Report | None) -> PromotionDecision:
    """Promote when a clean run on the baseline branch passed, is not anomalous, and either
    has no baseline yet or improved on it with enough evidence: noise between invocations
    measured by history or a calibration (not guessed from one pair), so a lucky run does not
    become the bar every later run fails against (the winner's curse)."""
    refusals = (
        (not level.promote, f"level {level.name} does not promote"),
        (metadata.get("benchtrack.git.branch") != config.baseline_branch,
         f"branch {metadata.get('benchtrack.git.branch', 'unknown')} is not the baseline branch {config.baseline_branch}"),
        (metadata.get("benchtrack.git.dirty") != "false", "the work tree had uncommitted changes"),
        (not bench.ok, "the benchmark failed"),
    )
    for refused, reason in refusals:
        if refused:
            return PromotionDecision(False, reason)
    anomaly = report.anomalies.get(bench.name) if report else None
    if anomaly is not None and anomaly.anomalous:
        return PromotionDecision(False, "the run is anomalous against its history")
    if not has_baseline:
        return PromotionDecision(True, "first baseline")
    refusal = _improvement_refusal(report, bench.name)
    return PromotionDecision(refusal is None, refusal or "improvement")


def _improvement_refusal(report: Report | None, benchmark: str) -> str | None:
    """Why an improvement is not enough evidence to become the baseline, or None."""
    if report is None or not report.improved(benchmark):
        return "not an improvement"
    if report.contended(benchmark):
        return "improvement measured under contention"
    wall = next(c for c in report.comparisons if c.benchmark == benchmark and c.metric == r.WALL)
    if not wall.spread_source.split("/", 1)[-1].startswith(("history", "calibration")):
        return (f"improvement not promoted yet: needs {MIN_HISTORY_RUNS} comparable runs of history or an A/A "
                "calibration to rule out a lucky run")
    return None
