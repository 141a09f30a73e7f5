"""Detection quality of benchtrack's verdicts against the anchors' rules, in one run:

- on the committed real-run corpus (noise_corpus/, real benchmarks in separate invocations on
  this machine, quiet and loaded, identical code and 5/10/20% more work; see real_corpus.py),
  for wall time and CPU time, benchtrack's files and pytest-benchmark's and pyperf's files of
  the same benchmarks, benchtrack with and without history, next to pyperf's t-test, asv's
  x1.1 + Mann-Whitney rule and pytest-benchmark's mean:5%;
- on the extended synthetic corpus (detection_corpus.py), false alarms at every noise level;
- the evidence for the centre estimator (noise of each candidate on the real corpus).

    benchtrack run experiments/self -b verdicts.detection_quality --level comprehensive --no-track --format json
"""

from __future__ import annotations

from benchtrack import benchmark


def _corpora() -> object:
    import detection_corpus
    import real_corpus

    return real_corpus.load_corpus(), detection_corpus.generate()


@benchmark(name="verdicts.detection_quality", kind="track", setup=_corpora, processes=1, samples=1, warmups=0,
           timeout=3600, tags=("analysis", "slow"),
           targets={
               "track.real.benchtrack.false_alarms_max.max": 0.01,
               "track.real.benchtrack.quiet_miss_20pct.max": 0.40,
               "track.real.benchtrack_history.quiet_miss_20pct.max": 0.10,
               "track.real.benchtrack.critical_on_true_change_le_20pct.max": 0.0,
               "track.synthetic.false_alarms_max.max": 0.01,
           })
def detection_quality(corpora: object) -> dict[str, float]:
    import real_corpus

    real, synthetic = corpora  # type: ignore[misc]
    report = {f"real.{k}": v for k, v in real_corpus.score(real).items()}
    report.update({f"real.{k}": v for k, v in real_corpus.estimator_evidence(real).items()})
    report.update(_acceptance(report))
    report.update(_synthetic(real_corpus, synthetic))
    # the synthetic model set beside what real runs show (noise_profile): it must model the real noise
    for condition in ("quiet", "loaded"):
        profile = real_corpus.noise_profile(real, "benchtrack", condition)
        report.update({f"profile.real.{condition}.{k}": v for k, v in profile.items()})
    for (sigma_inv, sigma_run), invocations in synthetic.items():
        profile = real_corpus.noise_profile(invocations, "synthetic", "quiet")
        label = f"profile.synthetic.inv{round(sigma_inv * 100)}_run{round(sigma_run * 100)}"
        report.update({f"{label}.{k}": v for k, v in profile.items()})
    return report


def _acceptance(report: dict[str, float]) -> dict[str, float]:
    """The acceptance figures for benchtrack's own files: worst false-alarm rate over metrics and
    conditions, and the weaker metric's quiet detection of +20%."""
    summary = {}
    for rule in ("benchtrack", "benchtrack_history"):
        prefix = f"real.benchtrack.{rule}."
        alarms = [v for k, v in report.items() if k.startswith(prefix) and k.endswith(".all.false_alarms")]
        detect = [report[key] for key in (f"{prefix}{m}.quiet.detect_20pct" for m in ("wall_s", "cpu_s")) if key in report]
        critical = [v for k, v in report.items() if k.startswith(prefix) and k.endswith(".all.critical_on_true_change_le_20pct")]
        summary[f"real.{rule}.false_alarms_max"] = max(alarms, default=float("nan"))
        summary[f"real.{rule}.quiet_detect_20pct_min"] = min(detect, default=float("nan"))
        summary[f"real.{rule}.quiet_miss_20pct"] = 1.0 - summary[f"real.{rule}.quiet_detect_20pct_min"]
        summary[f"real.{rule}.critical_on_true_change_le_20pct"] = sum(critical)
    return summary


def _synthetic(real_corpus: object, levels: object) -> dict[str, float]:
    report: dict[str, float] = {}
    worst = 0.0
    for (sigma_inv, sigma_run), invocations in levels.items():  # type: ignore[attr-defined]
        label = f"synthetic.inv{round(sigma_inv * 100)}_run{round(sigma_run * 100)}"
        for with_history in (False, True):
            outcomes = real_corpus.benchtrack_outcomes(invocations, "synthetic", with_history)  # type: ignore[attr-defined]
            suffix = "history" if with_history else "no_history"
            for metric in ("wall_s", "cpu_s"):
                rates = real_corpus.rates([o for o in outcomes if o.metric == metric])  # type: ignore[attr-defined]
                report[f"{label}.{suffix}.{metric}.false_alarms"] = rates["false_alarms"]
                report[f"{label}.{suffix}.{metric}.detect_20pct"] = rates["detect_20pct"]
                worst = max(worst, rates["false_alarms"])
    report["synthetic.false_alarms_max"] = worst
    return report
