"""Detection quality of benchtrack's verdicts against the anchors' rules, on a seeded labelled
corpus (see detection_corpus.py): false-positive rate on null pairs and detection rate per
slowdown size, for benchtrack and, in the same run, pyperf's t-test, asv's factor + Mann-Whitney
U and pytest-benchmark's mean:5% (as shipped, and tuned to benchtrack's false-positive rate)."""

from __future__ import annotations

from benchtrack import benchmark


def _corpus() -> object:
    import detection_corpus

    return detection_corpus.generate()


@benchmark(name="verdicts.detection_quality", kind="track", setup=_corpus, processes=1, samples=1, warmups=0,
           timeout=1800, tags=("analysis", "slow"),
           targets={
               "track.benchtrack_fp_rate.max": 0.01,
               "track.benchtrack_miss_10pct_cv_le_3pct.max": 0.10,
               "track.anchors_not_beaten.max": 0.0,
           })
def detection_quality(pairs: object) -> dict[str, float]:
    import detection_corpus

    report = detection_corpus.evaluate(pairs)  # type: ignore[arg-type]
    report["benchtrack_miss_10pct_cv_le_3pct"] = 1.0 - report["benchtrack_detect_10pct_cv_le_3pct"]
    no_history = detection_corpus.rates(
        pairs,  # type: ignore[arg-type]
        [v == "regression" for v in detection_corpus.benchtrack_flags(pairs, use_history=False)],  # type: ignore[arg-type]
    )
    report.update({f"benchtrack_no_history_{k}": v for k, v in no_history.items()})
    return report
